//! GAN inversion: the latent of a real image by minimising `‖G(z) − x‖² / n + prior · ‖z‖² / k` with Adam
//! from several seeded starting points, keeping the best.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::nn::Net;
use crate::optim::Adam;
use crate::random;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvertConfig {
    /// Starting points optimised together.
    pub restarts: usize,
    pub steps: usize,
    pub lr: f64,
    /// Weight of the Gaussian prior term (keeps `z` where the generator was trained).
    pub prior: f64,
    pub seed: u64,
}

impl Default for InvertConfig {
    fn default() -> Self {
        InvertConfig { restarts: 8, steps: 300, lr: 0.05, prior: 1e-3, seed: 0 }
    }
}

/// The best latent found and how well it reconstructs the image (one type with the pure-Rust inversion).
pub use gcert_core::measures::Inversion;

/// Inverts a single-input generator (`[k]` → image) for one image of the generator's output shape.
pub fn invert(generator: &Net, image: &Tensor, cfg: &InvertConfig) -> Result<Inversion> {
    if generator.input_shapes.len() != 1 || generator.input_shapes[0].len() != 1 {
        return Err(Error::input(format!(
            "{}: inversion needs a generator with a flat latent input, found input shapes {:?}",
            generator.name, generator.input_shapes
        )));
    }
    let k = generator.input_shapes[0][0];
    let out = generator.output_shape()?;
    let x = image.to_device(generator.device()).to_kind(generator.kind());
    let x = if x.size() == out { x.unsqueeze(0) } else { x };
    if x.size()[1..] != out[..] || x.size()[0] != 1 {
        return Err(Error::input(format!(
            "{}: the image has shape {:?}, the generator outputs {:?}",
            generator.name,
            image.size(),
            out
        )));
    }
    if cfg.restarts == 0 || cfg.steps == 0 {
        return Err(Error::input("inversion needs at least one restart and one step"));
    }
    let r = cfg.restarts as i64;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let z = random::normal(&mut rng, &[r, k], generator.device())
        .to_kind(generator.kind())
        .set_requires_grad(true);
    let mut opt = Adam::over(vec![("z".into(), z.shallow_clone())], cfg.lr, 0.9, 0.999);
    let target = x.expand([r, out[0], out[1], out[2]], false);
    let per_restart = |z: &Tensor| -> Result<Tensor> {
        let g = generator.forward(z, false)?;
        Ok((g - &target).pow_tensor_scalar(2).flatten(1, -1).mean_dim(1, false, Kind::Float))
    };
    for _ in 0..cfg.steps {
        let mse = per_restart(&z)?;
        let prior = z.pow_tensor_scalar(2).mean_dim(1, false, Kind::Float) * cfg.prior;
        // Summed over restarts: each restart's gradient is its own.
        opt.backward_step(&(mse + prior).sum(Kind::Float));
    }
    let mse = tch::no_grad(|| per_restart(&z))?;
    let restart_mse = Vec::<f64>::try_from(mse.to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
    let best = restart_mse.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
    let zb =
        Vec::<f64>::try_from(z.get(best as i64).detach().to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
    Ok(Inversion { z: zb, mse: restart_mse[best], restart_mse })
}

/// Inverts the generator card at `generator` for the `.npy` image at `image` and writes the latent to `out`
/// (`.npy`, shape `[k]`).
pub fn invert_files(
    generator: &Path,
    image: &Path,
    out: &Path,
    cfg: &InvertConfig,
    device: Device,
) -> Result<Inversion> {
    let g = Net::load_card(generator, Kind::Float, device)?;
    let img = gcert_core::npy::read_npy(image)?;
    let shape: Vec<i64> = img.shape.iter().map(|&d| d as i64).collect();
    let x = Tensor::from_slice(&img.data).reshape(shape.as_slice()).to_kind(Kind::Float);
    let inv = invert(&g, &x, cfg)?;
    gcert_core::npy::write_npy(out, &[inv.z.len()], &inv.z)?;
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models;
    use tch::nn::VarStore;

    #[test]
    fn recovers_an_image_the_generator_can_make() {
        let vs = VarStore::new(Device::Cpu);
        let g = models::generator(vs.root(), 8, [16, 8, 4], "g", 5);
        crate::gan::recalibrate(&g, 8, Device::Cpu, 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let z_true = random::normal(&mut rng, &[1, 8], Device::Cpu);
        let x = tch::no_grad(|| g.forward(&z_true, false)).unwrap().get(0);
        let before = x.pow_tensor_scalar(2).mean(Kind::Float).double_value(&[]);
        let cfg = InvertConfig { restarts: 4, steps: 200, ..InvertConfig::default() };
        let inv = invert(&g, &x, &cfg).unwrap();
        assert_eq!(inv.z.len(), 8);
        assert_eq!(inv.restart_mse.len(), 4);
        assert!(inv.mse < before * 0.05, "mse {} against {before}", inv.mse);

        let err = invert(&g, &Tensor::zeros([1, 28, 28], (Kind::Float, Device::Cpu)), &cfg).unwrap_err();
        assert!(
            err.to_string().contains("the image has shape [1, 28, 28], the generator outputs [1, 32, 32]"),
            "{err}"
        );
        let c = models::classifier(vs.root() / "c", models::ClassifierArch::Fc3, "c", 0);
        let err = invert(&c, &x, &cfg).unwrap_err();
        assert!(err.to_string().contains("flat latent input"), "{err}");
    }
}
