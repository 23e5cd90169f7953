//! On-the-fly geometric augmentation: random rotation, translation, scale and shear of a batch, applied with
//! libtorch's affine grid sampler (bilinear, zero padding), so it runs on the training device.

use rand::Rng;
use tch::Tensor;

use crate::error::{Error, Result};

/// Ranges of the random affine transform; each sample draws its own.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Rotation drawn from ±`rotation_deg`.
    pub rotation_deg: f64,
    /// Translation drawn from ±`translate` of the image side in each axis.
    pub translate: f64,
    /// Scale drawn from [`scale_min`, `scale_max`].
    pub scale_min: f64,
    pub scale_max: f64,
    /// Horizontal shear angle drawn from ±`shear_deg`.
    pub shear_deg: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment { rotation_deg: 30.0, translate: 0.1, scale_min: 0.85, scale_max: 1.15, shear_deg: 15.0 }
    }
}

impl Augment {
    /// The sampling matrices (`[n, 2, 3]`, normalised coordinates, output → input) for `n` random transforms.
    pub fn thetas(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * 6);
        for _ in 0..n {
            let ang = rng.gen_range(-self.rotation_deg..=self.rotation_deg).to_radians();
            let sh = rng.gen_range(-self.shear_deg..=self.shear_deg).to_radians().tan();
            let k = rng.gen_range(self.scale_min..=self.scale_max);
            // Normalised coordinates span 2 units over the image side.
            let tx = rng.gen_range(-self.translate..=self.translate) * 2.0;
            let ty = rng.gen_range(-self.translate..=self.translate) * 2.0;
            let (s, c) = ang.sin_cos();
            // Forward map A = R · Sh · k; the sampler needs the inverse: input = A⁻¹ (output − t).
            let a = [[c * k, (c * sh - s) * k], [s * k, (s * sh + c) * k]];
            let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
            let inv = [[a[1][1] / det, -a[0][1] / det], [-a[1][0] / det, a[0][0] / det]];
            let b0 = -(inv[0][0] * tx + inv[0][1] * ty);
            let b1 = -(inv[1][0] * tx + inv[1][1] * ty);
            out.extend([inv[0][0], inv[0][1], b0, inv[1][0], inv[1][1], b1].map(|v| v as f32));
        }
        out
    }

    /// A randomly transformed copy of a batch `[n, c, h, w]`; values stay in the input's range.
    pub fn apply(&self, images: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
        let size = images.size();
        if size.len() != 4 {
            return Err(Error::input(format!("augmentation needs a batch [n, c, h, w], found {size:?}")));
        }
        let n = size[0] as usize;
        let theta = Tensor::from_slice(&self.thetas(n, rng))
            .reshape([n as i64, 2, 3])
            .to_device(images.device())
            .to_kind(images.kind());
        let grid = Tensor::f_affine_grid_generator(&theta, size.as_slice(), false)?;
        // interpolation 0: bilinear; padding 0: zeros.
        Ok(images.f_grid_sampler(&grid, 0, 0, false)?.clamp(0.0, 1.0))
    }
}

/// Applies `aug` when given, else returns the batch unchanged (a shallow copy).
pub fn maybe(aug: Option<&Augment>, images: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
    match aug {
        Some(a) => a.apply(images, rng),
        None => Ok(images.shallow_clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SquareParams;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::{Device, Kind};

    fn square() -> Tensor {
        Tensor::from_slice(&SquareParams::IDENTITY.render()).reshape([1, 1, 32, 32])
    }

    #[test]
    fn zero_ranges_are_the_identity() {
        let aug =
            Augment { rotation_deg: 0.0, translate: 0.0, scale_min: 1.0, scale_max: 1.0, shear_deg: 0.0 };
        let x = square();
        let y = aug.apply(&x, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let diff = (&y - &x).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn transforms_are_random_seeded_and_keep_mass_roughly() {
        let x = square().repeat([8, 1, 1, 1]);
        let aug = Augment::default();
        let a = aug.apply(&x, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let b = aug.apply(&x, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        assert_eq!(a.size(), [8, 1, 32, 32]);
        assert_eq!((&a - &b).abs().max().double_value(&[]), 0.0, "same seed, same transforms");
        let first = a.get(0);
        let second = a.get(1);
        assert!((&first - &second).abs().max().double_value(&[]) > 0.1, "samples differ");
        // Area changes only by the scale (0.85² to 1.15²) and resampling.
        let areas: Vec<f64> = (0..8).map(|i| a.get(i).sum(Kind::Float).double_value(&[])).collect();
        assert!(areas.iter().all(|&s| (60.0..140.0).contains(&s)), "{areas:?}");
        assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
    }

    #[test]
    fn a_pure_translation_moves_the_centre() {
        let aug =
            Augment { rotation_deg: 0.0, translate: 0.1, scale_min: 1.0, scale_max: 1.0, shear_deg: 0.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let th = aug.thetas(1, &mut rng.clone());
        let y = aug.apply(&square(), &mut rng).unwrap();
        let (bx, by) = (-th[2] as f64 * 16.0, -th[5] as f64 * 16.0);
        let img = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
        let m: f32 = img.iter().sum();
        let cx = img.iter().enumerate().map(|(i, v)| v * ((i % 32) as f32 + 0.5)).sum::<f32>() / m;
        let cy = img.iter().enumerate().map(|(i, v)| v * ((i / 32) as f32 + 0.5)).sum::<f32>() / m;
        assert!(
            (cx as f64 - 16.0 - bx).abs() < 0.05 && (cy as f64 - 16.0 - by).abs() < 0.05,
            "{cx} {cy} {bx} {by}"
        );
    }

    #[test]
    fn wrong_rank_is_an_error() {
        let err = Augment::default()
            .apply(&Tensor::zeros([32, 32], (Kind::Float, Device::Cpu)), &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[n, c, h, w]"), "{err}");
    }
}
