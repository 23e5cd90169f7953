//! A VAE whose decoder is the PL generator (same architecture as the GAN's) and whose encoder gives the
//! latent (mean) of a real image.
//!
//! Two options shape it further. With `geometry`, the last four latent units are geometry coordinates
//! ([`Geometry`]): the encoder infers only the content units, each training image gets random coordinates
//! `g ~ N(0, I)`, and the decoder must draw the image rotated, moved and scaled as `g` says; a decoder so
//! trained offers the four transforms along its last four latent axes, at the configured rates. With
//! `adversarial`, a WGAN-GP critic compares decoded prior samples with training targets and the decoder also
//! minimises the critic's score of its prior samples (a VAE-GAN), which sharpens samples and fills the prior's
//! holes that the reconstruction term alone leaves.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::augment::{self, Augment, Geometry};
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
    /// Weight of the KL term (1: the evidence lower bound).
    pub kl_weight: f64,
    pub augment: Option<Augment>,
    /// The last four latent units are geometry coordinates (see the module documentation).
    pub geometry: Option<Geometry>,
    /// A critic on decoded prior samples (see the module documentation).
    pub adversarial: Option<Adversarial>,
    /// After training, fit a Gaussian to the encoder's aggregate posterior of the content units (mean `m`,
    /// covariance `Σ = L Lᵀ`: the covariance of the means plus the mean posterior variance) and put a linear
    /// input layer `u ↦ (m + L u_content, u_geometry)` in front of the decoder, so that the card's standard
    /// normal prior lands where the encoder put the training digits; the encoder's card maps to `u`.
    pub prior_fit: bool,
    pub seed: u64,
    pub max_batches: Option<usize>,
}

/// The adversarial term of a VAE-GAN: a WGAN-GP critic (the GAN's architecture) trained once per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adversarial {
    /// Weight of `−critic(decoder(z))`, `z` from the prior, in the decoder's loss.
    pub weight: f64,
    pub critic_width: i64,
    pub lambda_gp: f64,
    /// The critic's Adam learning rate (β = (0.5, 0.999)).
    pub lr: f64,
}

impl Default for Adversarial {
    fn default() -> Self {
        Adversarial { weight: 10.0, critic_width: 16, lambda_gp: 10.0, lr: 2e-4 }
    }
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
            kl_weight: 1.0,
            augment: None,
            geometry: None,
            adversarial: None,
            prior_fit: false,
            seed: 0,
            max_batches: None,
        }
    }
}

impl VaeConfig {
    /// The committed VAE (`fixtures/trained/vae-decoder.toml`, `generator-geometric.toml` and the configuration
    /// `fixtures/trained/geometric.toml`): geometry coordinates at 10°, 1.5 px and 10 % per latent unit, decoder
    /// widths 64/32/16, KL weight 3, σ = 0.25, the fitted prior, seed 1.
    pub fn geometric(epochs: u64) -> VaeConfig {
        VaeConfig {
            epochs,
            widths: [64, 32, 16],
            sigma: 0.25,
            kl_weight: 3.0,
            geometry: Some(Geometry { rotation_deg: 10.0, translate_px: 1.5, scale_pct: 10.0 }),
            prior_fit: true,
            seed: 1,
            ..VaeConfig::default()
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
    let geo = cfg.geometry;
    let content = cfg.latent - if geo.is_some() { Geometry::DIMS } else { 0 };
    if content < 1 {
        return Err(crate::error::Error::input(format!(
            "a VAE with geometry coordinates needs a latent of more than {} units, found {}",
            Geometry::DIMS,
            cfg.latent
        )));
    }
    let mut vs = VarStore::new(device);
    let (encoder, logvar) = models::encoder(&vs.root(), cfg.latent, "vae-encoder", cfg.seed);
    let decoder = models::generator(vs.root() / "dec", cfg.latent, cfg.widths, "vae-decoder", cfg.seed);
    let mut opt = Adam::new(&vs, cfg.lr, 0.9, 0.999);
    let mut cvs = VarStore::new(device);
    let adv = cfg.adversarial.as_ref();
    let critic = adv.map(|a| models::critic(cvs.root(), a.critic_width, cfg.seed ^ 2));
    let mut opt_c = adv.map(|a| Adam::new(&cvs, a.lr, 0.5, 0.999));
    let inv2s2 = 1.0 / (2.0 * cfg.sigma * cfg.sigma);
    let trunk = 0..encoder.layers.len() - 1;
    let head = encoder.layers.len() - 1..encoder.layers.len();
    let (mut seconds, mut final_loss, mut done) = (0.0, f64::NAN, 0);
    let mut names: Vec<&str> = extra.iter().map(|e| e.name()).collect();
    if adv.is_some() {
        names.extend(["adversarial", "W"]);
    }
    let tags: Vec<String> = extra.iter().map(|e| e.tag()).collect();
    let key = VaeConfig { epochs: 0, ..cfg.clone() };
    let tag = format!("vae:{}:extra={tags:?}", serde_json::to_string(&key).unwrap_or_default());
    if let Some(ck) = checkpoint.filter(|c| c.exists()) {
        let meta = match opt_c.as_mut() {
            Some(oc) => ck.load(
                &tag,
                &mut [("vae", &mut vs), ("critic", &mut cvs)],
                &mut [("opt", &mut opt), ("critic", oc)],
            )?,
            None => ck.load(&tag, &mut [("vae", &mut vs)], &mut [("opt", &mut opt)])?,
        };
        (done, seconds) = (meta.done, meta.seconds);
        log(&format!("resumed from {} at epoch {done}/{}", ck.dir.display(), cfg.epochs));
    }
    for epoch in done..cfg.epochs {
        let t0 = std::time::Instant::now();
        let seed = epoch_seed(cfg.seed, epoch);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xBEEF);
        let (mut sum, mut n, mut steps) = (0.0, 0usize, 0u64);
        let mut extra_sums = vec![0.0; names.len()];
        for (b, idx) in train.batches(cfg.batch, seed).iter().enumerate() {
            if cfg.max_batches.is_some_and(|m| b >= m) {
                break;
            }
            let (x, _) = train.select(idx);
            let x = augment::maybe(cfg.augment.as_ref(), &x, &mut rng)?;
            let h = encoder.forward_range(&x, trunk.clone(), true)?;
            let mu = encoder.forward_range(&h, head.clone(), true)?.narrow(1, 0, content);
            let lv = logvar.forward(&h, true)?.narrow(1, 0, content);
            let eps = random::normal(&mut rng, &mu.size(), device);
            let zc = &mu + (&lv * 0.5).exp() * eps;
            let bs = idx.len() as i64;
            let (z, target) = match &geo {
                Some(g) => {
                    let coords = random::normal(&mut rng, &[bs, Geometry::DIMS], device);
                    (Tensor::cat(&[&zc, &coords], 1), g.apply(&x, &coords)?)
                }
                None => (zc, x.shallow_clone()),
            };
            // Posterior and prior latents go through the decoder as one batch: one set of batch statistics.
            let prior = adv.map(|_| random::normal(&mut rng, &[bs, cfg.latent], device));
            let out = match &prior {
                Some(p) => decoder.forward(&Tensor::cat(&[&z, p], 0), true)?,
                None => decoder.forward(&z, true)?,
            };
            let xr = out.narrow(0, 0, bs);
            let bsf = bs as f64;
            let recon = (&xr - &target).pow_tensor_scalar(2).sum(Kind::Float) * (inv2s2 / bsf);
            let kl = ((&mu * &mu) + lv.exp() - &lv - 1.0).sum(Kind::Float) * (0.5 * cfg.kl_weight / bsf);
            let mut base = recon + kl;
            let mut adv_parts = Vec::new();
            if let (Some(a), Some(c), Some(oc)) = (adv, critic.as_ref(), opt_c.as_mut()) {
                let fake = out.narrow(0, bs, bs);
                let real = target.detach();
                let d_real = c.forward(&real, true)?.mean(Kind::Float);
                let d_fake = c.forward(&fake.detach(), true)?.mean(Kind::Float);
                let gp = crate::gan::gradient_penalty(c, &real, &fake.detach(), &mut rng)?;
                let w = (&d_real - &d_fake).double_value(&[]);
                oc.backward_step(&(&d_fake - &d_real + gp * a.lambda_gp));
                let g_adv = -c.forward(&fake, true)?.mean(Kind::Float) * a.weight;
                adv_parts = vec![g_adv.double_value(&[]), w];
                base += g_adv;
            }
            let step = GeneratorStep { generator: &decoder, z: &z, fake: &xr, iteration: opt.step as u64 };
            let (loss, parts) = generator_objective(base, &step, extra)?;
            for (acc, v) in extra_sums.iter_mut().zip(parts.iter().map(|p| p.1).chain(adv_parts)) {
                *acc += v;
            }
            // The critic's gradients from the decoder's loss are discarded by its next zero_grad.
            opt.backward_step(&loss);
            sum += loss.double_value(&[]) * bsf;
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
            match &opt_c {
                Some(oc) => {
                    ck.save(&meta, &[("vae", &vs), ("critic", &cvs)], &[("opt", &opt), ("critic", oc)])?
                }
                None => ck.save(&meta, &[("vae", &vs)], &[("opt", &opt)])?,
            }
        }
    }
    if geo.is_some() {
        // The encoder's card gives the content units and zeros for the geometry coordinates: an image is its
        // own untransformed self.
        let last = &encoder.layers[encoder.layers.len() - 1];
        tch::no_grad(|| {
            for p in last.params.values() {
                let _ = p.narrow(0, content, Geometry::DIMS).zero_();
            }
        });
    }
    let decoder = if cfg.prior_fit {
        let fitted = fit_prior(&encoder, &logvar, decoder, train, content)?;
        log(&format!("fitted the prior: {}", fitted.description.as_deref().unwrap_or("")));
        fitted
    } else {
        decoder
    };
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

/// The Gaussian fit of `VaeConfig::prior_fit`: returns the decoder with the fitted input layer and folds the
/// inverse map into the encoder's last layer.
fn fit_prior(encoder: &Net, logvar: &Net, decoder: Net, train: &Dataset, content: i64) -> Result<Net> {
    use crate::nn::TchLayer;
    let k = decoder.input_shapes[0][0];
    let trunk = 0..encoder.layers.len() - 1;
    let head = encoder.layers.len() - 1..encoder.layers.len();
    let (mu, var) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
        let h = encoder.forward_range(&train.images, trunk, false)?;
        let mu = encoder.forward_range(&h, head, false)?.narrow(1, 0, content).to_kind(Kind::Double);
        let var = logvar.forward(&h, false)?.narrow(1, 0, content).exp().to_kind(Kind::Double);
        Ok((mu, var))
    })?;
    let n = mu.size()[0] as f64;
    let m = mu.mean_dim([0i64].as_slice(), false, Kind::Double);
    let c = &mu - m.unsqueeze(0);
    let cov = c.tr().matmul(&c) / (n - 1.0)
        + var.mean_dim([0i64].as_slice(), false, Kind::Double).diag_embed(0, -2, -1);
    let l = cov.f_linalg_cholesky(false)?;
    let l_inv = Tensor::f_linalg_inv(&l)?;
    let (kind, device) = (decoder.kind(), decoder.device());
    let opts = (Kind::Double, device);
    let weight = Tensor::eye(k, opts);
    let bias = Tensor::zeros([k], opts);
    tch::no_grad(|| {
        weight.narrow(0, 0, content).narrow(1, 0, content).copy_(&l);
        bias.narrow(0, 0, content).copy_(&m);
        // The encoder's last layer: u = L⁻¹ (W h + b − m) on the content units.
        let last = &encoder.layers[encoder.layers.len() - 1].params;
        let (w, b) = (&last["weight"], &last["bias"]);
        let mut wc = w.narrow(0, 0, content);
        let mut bc = b.narrow(0, 0, content);
        let new_w = l_inv.matmul(&wc.to_kind(Kind::Double));
        let new_b = l_inv.matmul(&(bc.to_kind(Kind::Double) - &m).unsqueeze(1)).squeeze_dim(1);
        wc.copy_(&new_w.to_kind(w.kind()));
        bc.copy_(&new_b.to_kind(b.kind()));
    });
    let spec =
        gcert_core::card::LayerSpec::Linear { weight: "l0.weight".into(), bias: Some("l0.bias".into()) };
    let first = TchLayer {
        spec,
        params: [("weight", weight.to_kind(kind)), ("bias", bias.to_kind(kind))].into_iter().collect(),
    };
    if decoder.layers.first().is_some_and(|l| !l.params.is_empty()) {
        return Err(crate::error::Error::input("the decoder's first layer must be its reshape"));
    }
    let description = format!(
        "linear {k}→{k} (the fitted prior: content m + L u, geometry passed through), {}",
        decoder.description.as_deref().unwrap_or("")
    );
    let mut layers = vec![first];
    layers.extend(decoder.layers);
    Ok(Net { name: decoder.name, description: Some(description), input_shapes: decoder.input_shapes, layers })
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

    fn squares(n: usize) -> Dataset {
        let imgs: Vec<f32> = (0..n)
            .flat_map(|i| SquareParams { tx: (i % 8) as f64 - 4.0, ..SquareParams::IDENTITY }.render())
            .collect();
        Dataset {
            images: Tensor::from_slice(&imgs).reshape([n as i64, 1, 32, 32]),
            labels: Tensor::zeros([n as i64], (Kind::Int64, Device::Cpu)),
        }
    }

    #[test]
    fn the_fitted_prior_layer_undoes_the_folded_encoder() {
        let data = squares(24);
        let vs = VarStore::new(Device::Cpu);
        let (encoder, logvar) = models::encoder(&vs.root(), 7, "enc", 3);
        let decoder = models::generator(vs.root() / "dec", 7, [4, 4, 2], "dec", 3);
        let before = encoder.forward(&data.images, false).unwrap().narrow(1, 0, 3);
        let fitted = fit_prior(&encoder, &logvar, decoder, &data, 3).unwrap();
        let u = encoder.forward(&data.images, false).unwrap();
        let first = &fitted.layers[0];
        assert!(matches!(first.spec, gcert_core::card::LayerSpec::Linear { .. }));
        let back = u.matmul(&first.params["weight"].tr()) + &first.params["bias"];
        let d = (back.narrow(1, 0, 3) - &before).abs().max().double_value(&[]);
        assert!(d < 1e-4, "m + L u gives back the encoder's content means ({d})");
        // The geometry coordinates pass through unchanged.
        let g = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 1.0, -2.0, 0.5, 3.0]).reshape([1, 7]);
        let out = g.matmul(&first.params["weight"].tr()) + &first.params["bias"];
        let tail = (out.narrow(1, 3, 4) - g.narrow(1, 3, 4)).abs().max().double_value(&[]);
        assert!(tail < 1e-6, "{tail}");
        assert_eq!(fitted.output_shape().unwrap(), [1, 32, 32]);
    }

    #[test]
    fn geometry_coordinates_train_and_the_encoder_leaves_them_at_zero() {
        let data = squares(32);
        let cfg = VaeConfig {
            epochs: 2,
            batch: 16,
            widths: [8, 4, 4],
            latent: 7,
            kl_weight: 3.0,
            geometry: Some(Geometry::default()),
            adversarial: Some(Adversarial { critic_width: 4, ..Adversarial::default() }),
            prior_fit: true,
            ..VaeConfig::default()
        };
        let test = Dataset { images: data.images.shallow_clone(), labels: data.labels.shallow_clone() };
        let mut lines = Vec::new();
        let t = train_vae(&cfg, &data, &test, Device::Cpu, &[], None, &mut |l| lines.push(l.to_string()))
            .unwrap();
        assert!(lines.iter().any(|l| l.contains("adversarial") && l.contains(" W ")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("fitted the prior")), "{lines:?}");
        let z = t.encode(&data.images).unwrap();
        assert_eq!(z.size(), [32, 7]);
        assert_eq!(z.narrow(1, 3, 4).abs().max().double_value(&[]), 0.0, "geometry coordinates are 0");
        assert!(t.report.test_mse.is_finite());
        let bad = VaeConfig { latent: 4, ..cfg };
        let err = train_vae(&bad, &data, &test, Device::Cpu, &[], None, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("more than 4 units"), "{err}");
    }

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
