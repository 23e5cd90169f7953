//! WGAN-GP training of the PL generator (docs/mathematics.md §8): gradient penalty λ = 10, 3 critic
//! steps per generator step, Adam 2e-4 with β = (0.5, 0.999), on geometrically augmented MNIST.

use std::time::Instant;

use rand::{Rng, SeedableRng};
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
use crate::train::Log;

/// How the generator is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GanConfig {
    /// Generator steps.
    pub iters: u64,
    pub batch: usize,
    pub n_critic: usize,
    pub lambda_gp: f64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub latent: i64,
    /// Channels of the generator's first three transposed convolutions.
    pub widths: [i64; 3],
    pub critic_width: i64,
    pub augment: Option<Augment>,
    pub seed: u64,
    pub log_every: u64,
    pub checkpoint_every: u64,
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig {
            iters: 2000,
            batch: 64,
            n_critic: 3,
            lambda_gp: 10.0,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            latent: LATENT,
            widths: [16, 8, 4],
            critic_width: 16,
            augment: Some(Augment::default()),
            seed: 0,
            log_every: 100,
            checkpoint_every: 250,
        }
    }
}

/// What a GAN run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GanReport {
    pub iters: u64,
    pub seconds: f64,
    /// The critic's estimate of the Wasserstein distance (mean over the last logging window).
    pub wasserstein: f64,
    pub device: String,
}

/// The trained generator (eval-mode batch-norm statistics recalibrated) and its critic.
#[derive(Debug)]
pub struct TrainedGan {
    pub gvs: VarStore,
    pub generator: Net,
    pub dvs: VarStore,
    pub critic: Net,
    pub report: GanReport,
}

fn step_seed(seed: u64, it: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(it)
}

fn real_batch(data: &Dataset, n: usize, aug: Option<&Augment>, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let idx: Vec<i64> = (0..n).map(|_| rng.gen_range(0..data.len() as i64)).collect();
    augment::maybe(aug, &data.select(&idx).0, rng)
}

/// `mean((‖∇D(x̂)‖ − 1)²)` on random interpolates of real and fake images.
pub(crate) fn gradient_penalty(
    critic: &Net,
    real: &Tensor,
    fake: &Tensor,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let n = real.size()[0];
    let eps = random::uniform(rng, &[n, 1, 1, 1], 0.0, 1.0, real.device());
    let mix: Tensor = &eps * real + (1.0 - &eps) * fake;
    let xhat = mix.detach().set_requires_grad(true);
    let d = critic.forward(&xhat, true)?;
    let grads = Tensor::f_run_backward(&[d.sum(Kind::Float)], &[&xhat], true, true)?;
    let norm =
        (grads[0].flatten(1, -1).pow_tensor_scalar(2).sum_dim_intlist(1, false, Kind::Float) + 1e-12).sqrt();
    Ok((norm - 1.0).pow_tensor_scalar(2).mean(Kind::Float))
}

/// Trains a generator with WGAN-GP; `extra` terms are added to the generator's loss (issue 5's hook).
pub fn train_gan(
    cfg: &GanConfig,
    data: &Dataset,
    device: Device,
    extra: &[Box<dyn GeneratorLoss>],
    checkpoint: Option<&Checkpoint>,
    log: Log<'_>,
) -> Result<TrainedGan> {
    data.check("training set")?;
    let mut gvs = VarStore::new(device);
    let mut dvs = VarStore::new(device);
    let generator = models::generator(gvs.root(), cfg.latent, cfg.widths, "generator", cfg.seed);
    let critic = models::critic(dvs.root(), cfg.critic_width, cfg.seed);
    let mut opt_g = Adam::new(&gvs, cfg.lr, cfg.beta1, cfg.beta2);
    let mut opt_d = Adam::new(&dvs, cfg.lr, cfg.beta1, cfg.beta2);
    let extra_names: Vec<&str> = extra.iter().map(|e| e.name()).collect();
    // The schedule's length and logging are not part of the tag: a run may be resumed and extended.
    let key = GanConfig { iters: 0, log_every: 0, checkpoint_every: 0, ..cfg.clone() };
    let extra_tags: Vec<String> = extra.iter().map(|e| e.tag()).collect();
    let tag = format!("gan:{}:extra={extra_tags:?}", serde_json::to_string(&key).unwrap_or_default());
    let (mut done, mut seconds) = (0, 0.0);
    if let Some(ck) = checkpoint.filter(|c| c.exists()) {
        let meta = ck.load(
            &tag,
            &mut [("g", &mut gvs), ("d", &mut dvs)],
            &mut [("g", &mut opt_g), ("d", &mut opt_d)],
        )?;
        (done, seconds) = (meta.done, meta.seconds);
        log(&format!("resumed from {} at iteration {done}/{}", ck.dir.display(), cfg.iters));
    }
    let aug = cfg.augment.as_ref();
    let n = cfg.batch;
    let (mut w_sum, mut gp_sum, mut g_sum, mut window) = (0.0, 0.0, 0.0, 0u64);
    let mut extra_sums = vec![0.0; extra.len()];
    let mut wasserstein = f64::NAN;
    let mut t0 = Instant::now();
    for it in done..cfg.iters {
        // Everything random in this step derives from (seed, it): a resumed run repeats an uninterrupted one.
        let s = step_seed(cfg.seed, it);
        let mut rng = ChaCha8Rng::seed_from_u64(s);
        for _ in 0..cfg.n_critic {
            let real = real_batch(data, n, aug, &mut rng)?;
            let z = random::normal(&mut rng, &[n as i64, cfg.latent], device);
            let fake = generator.forward(&z, true)?.detach();
            let d_real = critic.forward(&real, true)?.mean(Kind::Float);
            let d_fake = critic.forward(&fake, true)?.mean(Kind::Float);
            let gp = gradient_penalty(&critic, &real, &fake, &mut rng)?;
            let loss = &d_fake - &d_real + &gp * cfg.lambda_gp;
            opt_d.backward_step(&loss);
            w_sum += (d_real - d_fake).double_value(&[]) / cfg.n_critic as f64;
            gp_sum += gp.double_value(&[]) / cfg.n_critic as f64;
        }
        let z = random::normal(&mut rng, &[n as i64, cfg.latent], device);
        let fake = generator.forward(&z, true)?;
        let adv = -critic.forward(&fake, true)?.mean(Kind::Float);
        let step = GeneratorStep { generator: &generator, z: &z, fake: &fake, iteration: it };
        let g_adv = adv.double_value(&[]);
        let (loss, parts) = generator_objective(adv, &step, extra)?;
        opt_g.backward_step(&loss);
        g_sum += g_adv;
        for (acc, (_, v)) in extra_sums.iter_mut().zip(&parts) {
            *acc += v;
        }
        window += 1;
        if (it + 1).is_multiple_of(cfg.log_every) || it + 1 == cfg.iters {
            let dt = t0.elapsed().as_secs_f64();
            seconds += dt;
            let w = window as f64;
            wasserstein = w_sum / w;
            let extras: String = extra_names
                .iter()
                .zip(&extra_sums)
                .map(|(name, v)| format!("  {name} {:.4}", v / w))
                .collect();
            log(&format!(
                "iter {}/{}  W {:.4}  gp {:.4}  g_loss {:.4}{extras}  {:.0} img/s (critic+generator)",
                it + 1,
                cfg.iters,
                wasserstein,
                gp_sum / w,
                g_sum / w,
                (w * n as f64 * (cfg.n_critic as f64 + 1.0)) / dt.max(1e-9)
            ));
            (w_sum, gp_sum, g_sum, window) = (0.0, 0.0, 0.0, 0);
            extra_sums.iter_mut().for_each(|v| *v = 0.0);
            t0 = Instant::now();
        }
        if let Some(ck) = checkpoint {
            if (it + 1).is_multiple_of(cfg.checkpoint_every) || it + 1 == cfg.iters {
                let partial = t0.elapsed().as_secs_f64();
                let meta = CheckpointMeta {
                    tag: tag.clone(),
                    done: it + 1,
                    seconds: seconds + partial,
                    steps: vec![opt_g.step, opt_d.step],
                };
                ck.save(&meta, &[("g", &gvs), ("d", &dvs)], &[("g", &opt_g), ("d", &opt_d)])?;
            }
        }
    }
    recalibrate(&generator, cfg.latent, device, cfg.seed)?;
    let report =
        GanReport { iters: cfg.iters, seconds, wasserstein, device: crate::device::describe(device) };
    Ok(TrainedGan { gvs, generator, dvs, critic, report })
}

/// Sets a generator's batch-norm statistics to averages over 20 batches of 500 prior samples.
pub fn recalibrate(generator: &Net, latent: i64, device: Device, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0BAD_5EED);
    let batches: Vec<Tensor> = (0..20).map(|_| random::normal(&mut rng, &[500, latent], device)).collect();
    generator.recalibrate_batch_norm(&batches)
}

/// `n` seeded samples of a generator in eval mode.
pub fn sample(generator: &Net, latent: i64, n: usize, seed: u64) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let z = random::normal(&mut rng, &[n as i64, latent], generator.device()).to_kind(generator.kind());
    tch::no_grad(|| generator.forward(&z, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_data() -> Dataset {
        Dataset::rotated_squares(16)
    }

    fn tiny_cfg(iters: u64) -> GanConfig {
        GanConfig {
            iters,
            batch: 8,
            widths: [8, 4, 4],
            critic_width: 4,
            log_every: 2,
            checkpoint_every: 2,
            ..GanConfig::default()
        }
    }

    #[test]
    fn a_few_steps_train_and_resume_exactly() {
        let data = tiny_data();
        let mut lines = Vec::new();
        let full = train_gan(&tiny_cfg(4), &data, Device::Cpu, &[], None, &mut |l| lines.push(l.to_string()))
            .unwrap();
        assert!(lines.iter().any(|l| l.starts_with("iter 4/4") && l.contains("img/s")), "{lines:?}");
        assert!(full.report.wasserstein.is_finite());

        // Two steps with a checkpoint, then resumed and extended to four: the same weights as the
        // uninterrupted run.
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint::new(dir.path().join("ck"));
        train_gan(&tiny_cfg(2), &data, Device::Cpu, &[], Some(&ck), &mut |_| {}).unwrap();
        let mut lines = Vec::new();
        let resumed =
            train_gan(&tiny_cfg(4), &data, Device::Cpu, &[], Some(&ck), &mut |l| lines.push(l.to_string()))
                .unwrap();
        assert!(lines[0].contains("resumed") && lines[0].contains("at iteration 2/4"), "{lines:?}");
        for ((n1, a), (n2, b)) in
            full.generator.named_tensors().iter().zip(resumed.generator.named_tensors().iter())
        {
            assert_eq!(n1, n2);
            let d = (a - b).abs().max().double_value(&[]);
            assert!(d < 1e-6, "{n1}: {d}");
        }
        let other = GanConfig { lr: 1e-3, ..tiny_cfg(4) };
        let err = train_gan(&other, &data, Device::Cpu, &[], Some(&ck), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("another configuration"), "{err}");

        let samples = sample(&full.generator, LATENT, 5, 1).unwrap();
        assert_eq!(samples.size(), [5, 1, 32, 32]);
        assert!(samples.min().double_value(&[]) >= 0.0 && samples.max().double_value(&[]) <= 1.0);
    }

    #[test]
    fn cuda_trains_when_present_and_is_refused_otherwise() {
        match crate::device::DeviceChoice::Cuda(0).resolve() {
            Ok(device) => {
                let cpu = tiny_data();
                let data =
                    Dataset { images: cpu.images.to_device(device), labels: cpu.labels.to_device(device) };
                let t = train_gan(&tiny_cfg(2), &data, device, &[], None, &mut |_| {}).unwrap();
                assert_eq!(t.generator.device(), device);
                assert!(t.report.wasserstein.is_finite());
                assert_eq!(sample(&t.generator, LATENT, 3, 0).unwrap().device(), device);
            }
            Err(e) => {
                assert!(!tch::Cuda::is_available());
                assert!(e.to_string().contains("sees no CUDA device"), "{e}");
            }
        }
    }
}
