//! A VAE whose decoder is the PL generator (same architecture as the GAN's) and whose encoder gives the
//! latent (mean) of a real image.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::augment::{self, Augment};
use crate::data::Dataset;
use crate::error::Result;
use crate::models::{self, LATENT};
use crate::nn::Net;
use crate::objective::{generator_objective, GeneratorLoss, GeneratorStep};
use crate::optim::{Adam, Checkpoint, CheckpointMeta};
use crate::random;
use crate::train::{epoch_seed, Log};

/// How the VAE is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeConfig {
    pub epochs: u64,
    pub batch: usize,
    pub lr: f64,
    pub latent: i64,
    pub widths: [i64; 3],
    /// Pixel noise of the Gaussian likelihood: the reconstruction term is `Σ (x̂ − x)² / (2σ²)`.
    pub sigma: f64,
    pub augment: Option<Augment>,
    pub seed: u64,
    pub max_batches: Option<usize>,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            epochs: 10,
            batch: 64,
            lr: 1e-3,
            latent: LATENT,
            widths: [16, 8, 4],
            sigma: 0.25,
            augment: None,
            seed: 0,
            max_batches: None,
        }
    }
}

/// What a VAE run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeReport {
    pub epochs: u64,
    pub seconds: f64,
    /// Per-pixel mean squared error of reconstructions (encoder mean → decoder) on the test set.
    pub test_mse: f64,
    pub final_loss: f64,
    pub device: String,
}

#[derive(Debug)]
pub struct TrainedVae {
    pub vs: VarStore,
    /// Image → latent mean (exported as a card).
    pub encoder: Net,
    pub logvar: Net,
    /// Latent → image, piecewise linear (exported as a card).
    pub decoder: Net,
    pub report: VaeReport,
}

impl TrainedVae {
    /// Latent means of a batch of images (eval mode).
    pub fn encode(&self, images: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| self.encoder.forward(images, false))
    }
}

/// Trains the VAE; `extra` terms are added to the decoder's objective (issue 5's hook).
pub fn train_vae(
    cfg: &VaeConfig,
    train: &Dataset,
    test: &Dataset,
    device: Device,
    extra: &[Box<dyn GeneratorLoss>],
    checkpoint: Option<&Checkpoint>,
    log: Log<'_>,
) -> Result<TrainedVae> {
    train.check("training set")?;
    test.check("test set")?;
    let mut vs = VarStore::new(device);
    let (encoder, logvar) = models::encoder(&vs.root(), cfg.latent, "vae-encoder", cfg.seed);
    let decoder = models::generator(vs.root() / "dec", cfg.latent, cfg.widths, "vae-decoder", cfg.seed);
    let mut opt = Adam::new(&vs, cfg.lr, 0.9, 0.999);
    let inv2s2 = 1.0 / (2.0 * cfg.sigma * cfg.sigma);
    let trunk = 0..encoder.layers.len() - 1;
    let head = encoder.layers.len() - 1..encoder.layers.len();
    let (mut seconds, mut final_loss, mut done) = (0.0, f64::NAN, 0);
    let names: Vec<&str> = extra.iter().map(|e| e.name()).collect();
    let tags: Vec<String> = extra.iter().map(|e| e.tag()).collect();
    let key = VaeConfig { epochs: 0, ..cfg.clone() };
    let tag = format!("vae:{}:extra={tags:?}", serde_json::to_string(&key).unwrap_or_default());
    if let Some(ck) = checkpoint.filter(|c| c.exists()) {
        let meta = ck.load(&tag, &mut [("vae", &mut vs)], &mut [("opt", &mut opt)])?;
        (done, seconds) = (meta.done, meta.seconds);
        log(&format!("resumed from {} at epoch {done}/{}", ck.dir.display(), cfg.epochs));
    }
    for epoch in done..cfg.epochs {
        let t0 = std::time::Instant::now();
        let seed = epoch_seed(cfg.seed, epoch);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xBEEF);
        let (mut sum, mut n, mut steps) = (0.0, 0usize, 0u64);
        let mut extra_sums = vec![0.0; extra.len()];
        for (b, idx) in train.batches(cfg.batch, seed).iter().enumerate() {
            if cfg.max_batches.is_some_and(|m| b >= m) {
                break;
            }
            let (x, _) = train.select(idx);
            let x = augment::maybe(cfg.augment.as_ref(), &x, &mut rng)?;
            let h = encoder.forward_range(&x, trunk.clone(), true)?;
            let mu = encoder.forward_range(&h, head.clone(), true)?;
            let lv = logvar.forward(&h, true)?;
            let eps = random::normal(&mut rng, &mu.size(), device);
            let z = &mu + (&lv * 0.5).exp() * eps;
            let xr = decoder.forward(&z, true)?;
            let bs = idx.len() as f64;
            let recon = (&xr - &x).pow_tensor_scalar(2).sum(Kind::Float) * (inv2s2 / bs);
            let kl = ((&mu * &mu) + lv.exp() - &lv - 1.0).sum(Kind::Float) * (0.5 / bs);
            let step = GeneratorStep { generator: &decoder, z: &z, fake: &xr, iteration: opt.step as u64 };
            let (loss, parts) = generator_objective(recon + kl, &step, extra)?;
            for (acc, (_, v)) in extra_sums.iter_mut().zip(&parts) {
                *acc += v;
            }
            opt.backward_step(&loss);
            sum += loss.double_value(&[]) * bs;
            n += idx.len();
            steps += 1;
        }
        let dt = t0.elapsed().as_secs_f64();
        seconds += dt;
        final_loss = sum / n.max(1) as f64;
        let extras: String = names
            .iter()
            .zip(&extra_sums)
            .map(|(name, v)| format!("  {name} {:.4}", v / steps.max(1) as f64))
            .collect();
        log(&format!(
            "epoch {}/{}  loss {final_loss:.2}{extras}  {:.0} samples/s  {steps} steps  {dt:.1} s",
            epoch + 1,
            cfg.epochs,
            n as f64 / dt.max(1e-9)
        ));
        if let Some(ck) = checkpoint {
            let meta = CheckpointMeta { tag: tag.clone(), done: epoch + 1, seconds, steps: vec![opt.step] };
            ck.save(&meta, &[("vae", &vs)], &[("opt", &opt)])?;
        }
    }
    crate::gan::recalibrate(&decoder, cfg.latent, device, cfg.seed)?;
    let mut t = TrainedVae {
        vs,
        encoder,
        logvar,
        decoder,
        report: VaeReport {
            epochs: cfg.epochs,
            seconds,
            test_mse: f64::NAN,
            final_loss,
            device: crate::device::describe(device),
        },
    };
    t.report.test_mse = reconstruction_mse(&t, test)?;
    Ok(t)
}

/// Per-pixel MSE of `decoder(encoder(x))` over a dataset.
pub fn reconstruction_mse(vae: &TrainedVae, data: &Dataset) -> Result<f64> {
    let z = vae.encode(&data.images)?;
    let xr = tch::no_grad(|| vae.decoder.forward(&z, false))?;
    Ok((xr - &data.images).pow_tensor_scalar(2).mean(Kind::Float).double_value(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SquareParams;

    #[test]
    fn a_few_steps_reduce_the_loss_and_encode_to_the_latent_size() {
        let imgs: Vec<f32> = (0..32)
            .flat_map(|i| SquareParams { tx: (i % 8) as f64 - 4.0, ..SquareParams::IDENTITY }.render())
            .collect();
        let data = Dataset {
            images: Tensor::from_slice(&imgs).reshape([32, 1, 32, 32]),
            labels: Tensor::zeros([32], (Kind::Int64, Device::Cpu)),
        };
        let cfg = VaeConfig { epochs: 3, batch: 16, widths: [8, 4, 4], latent: 6, ..VaeConfig::default() };
        let mut lines = Vec::new();
        let test = Dataset { images: data.images.shallow_clone(), labels: data.labels.shallow_clone() };
        let t = train_vae(&cfg, &data, &test, Device::Cpu, &[], None, &mut |l| lines.push(l.to_string()))
            .unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let first: f64 = lines[0].split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(t.report.final_loss < first, "{lines:?}");
        assert_eq!(t.encode(&data.images).unwrap().size(), [32, 6]);
        assert!(t.report.test_mse.is_finite() && t.report.test_mse < 0.2, "{}", t.report.test_mse);

        // Two epochs with a checkpoint, then resumed to three: the uninterrupted run's decoder.
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint::new(dir.path().join("ck"));
        let short = VaeConfig { epochs: 2, ..cfg.clone() };
        train_vae(&short, &data, &test, Device::Cpu, &[], Some(&ck), &mut |_| {}).unwrap();
        let mut lines = Vec::new();
        let resumed =
            train_vae(&cfg, &data, &test, Device::Cpu, &[], Some(&ck), &mut |l| lines.push(l.to_string()))
                .unwrap();
        assert!(lines[0].contains("resumed") && lines[0].contains("epoch 2/3"), "{lines:?}");
        for ((n, a), (_, b)) in t.decoder.named_tensors().iter().zip(resumed.decoder.named_tensors().iter()) {
            let d = (a - b).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{n}: {d}");
        }
    }
}
