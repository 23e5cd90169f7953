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
    /// With `prior_fit`: fit one Gaussian per digit class instead (class means `ν_c`, one pooled within-class
    /// covariance `C Cᵀ` plus the mean posterior variance), and give the card one more latent unit, first: a
    /// class selector `s`. A piecewise-linear staircase in `s` picks the class mean (class `c` on the interval
    /// of `s` that holds its share of the training digits under N(0, 1), joined to the next class by a linear
    /// ramp `prior_ramp` wide), so that the card's standard normal prior draws each digit in its training
    /// proportion from its own cluster instead of from one Gaussian over all of them, whose mass between the
    /// clusters decodes to blends. See [`ClassPrior`].
    pub prior_classes: bool,
    /// Width in `s` of each ramp between two classes of `prior_classes` (positive; the fraction of prior samples
    /// that fall on a ramp is about `9 · 0.3 · prior_ramp`).
    pub prior_ramp: f64,
    /// The within-class spread of `prior_classes`: the card's prior layers use `τ C` instead of `C` (positive and
    /// at most 1; below 1 the samples come from nearer each class mean, as in a GAN's truncated sampling).
    pub prior_temperature: f64,
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
            prior_classes: false,
            prior_ramp: 0.002,
            prior_temperature: 1.0,
            seed: 0,
            max_batches: None,
        }
    }
}

impl VaeConfig {
    /// The committed VAE (`fixtures/trained/vae-decoder.toml`, `generator-geometric.toml` and the configuration
    /// `fixtures/trained/geometric.toml`): geometry coordinates at 10°, 1.5 px and 10 % per latent unit, decoder
    /// widths 64/32/16, KL weight 3, σ = 0.1, the fitted class-conditional prior at temperature 0.8, seed 1.
    pub fn geometric(epochs: u64) -> VaeConfig {
        VaeConfig {
            epochs,
            widths: [64, 32, 16],
            sigma: 0.1,
            kl_weight: 3.0,
            geometry: Some(Geometry { rotation_deg: 10.0, translate_px: 1.5, scale_pct: 10.0 }),
            prior_fit: true,
            prior_classes: true,
            prior_temperature: 0.8,
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
    if cfg.prior_classes && !cfg.prior_fit {
        return Err(crate::error::Error::input("prior_classes = true needs prior_fit = true"));
    }
    if cfg.prior_classes && !(cfg.prior_ramp.is_finite() && cfg.prior_ramp > 0.0) {
        return Err(crate::error::Error::input(format!(
            "prior_ramp must be positive and finite, found {}",
            cfg.prior_ramp
        )));
    }
    if !(cfg.prior_temperature > 0.0 && cfg.prior_temperature <= 1.0) {
        return Err(crate::error::Error::input(format!(
            "prior_temperature must be in (0, 1], found {}",
            cfg.prior_temperature
        )));
    }
    if cfg.prior_temperature != 1.0 && !cfg.prior_classes {
        return Err(crate::error::Error::input("prior_temperature needs prior_classes = true"));
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
    // The prior is fitted after training, so runs that differ only in it share their checkpoints.
    let key = VaeConfig {
        epochs: 0,
        prior_fit: false,
        prior_classes: false,
        prior_ramp: 0.0,
        prior_temperature: 1.0,
        ..cfg.clone()
    };
    // "/2": geometry coordinates rotate and scale about the object's minimum-area rectangle (before: its
    // axis-aligned box), so checkpoints trained on the old targets are not resumed.
    let tag = format!("vae/2:{}:extra={tags:?}", serde_json::to_string(&key).unwrap_or_default());
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
    let (encoder, decoder) = match (cfg.prior_fit, cfg.prior_classes) {
        (true, false) => {
            let fitted = fit_prior(&encoder, &logvar, decoder, train, content)?;
            log(&format!("fitted the prior: {}", fitted.description.as_deref().unwrap_or("")));
            (encoder, fitted)
        }
        (true, true) => {
            let prior =
                ClassPrior::fit(&encoder, &logvar, train, content, cfg.prior_ramp, cfg.prior_temperature)?;
            log(&format!("fitted the class-conditional prior: {}", prior.describe()));
            prior.apply(encoder, decoder)?
        }
        (false, _) => (encoder, decoder),
    };
    crate::gan::recalibrate(&decoder, decoder.input_shapes[0][0], device, cfg.seed)?;
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

/// The encoder's posterior means and variances of the content units over a dataset (double precision, on the
/// models' device), which both prior fits start from.
fn posterior_moments(encoder: &Net, logvar: &Net, data: &Dataset, content: i64) -> Result<(Tensor, Tensor)> {
    let trunk = 0..encoder.layers.len() - 1;
    let head = encoder.layers.len() - 1..encoder.layers.len();
    tch::no_grad(|| {
        let h = encoder.forward_range(&data.images, trunk, false)?;
        let mu = encoder.forward_range(&h, head, false)?.narrow(1, 0, content).to_kind(Kind::Double);
        let var = logvar.forward(&h, false)?.narrow(1, 0, content).exp().to_kind(Kind::Double);
        Ok((mu, var))
    })
}

/// The Gaussian fit of `VaeConfig::prior_fit`: returns the decoder with the fitted input layer and folds the
/// inverse map into the encoder's last layer.
fn fit_prior(encoder: &Net, logvar: &Net, decoder: Net, train: &Dataset, content: i64) -> Result<Net> {
    use crate::nn::TchLayer;
    let k = decoder.input_shapes[0][0];
    let (mu, var) = posterior_moments(encoder, logvar, train, content)?;
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

/// The class-conditional prior of `VaeConfig::prior_classes`, fitted to the encoder's latent means of the
/// training digits.
///
/// The card's latent is `(s, u, g)`: the class selector `s`, the content coordinates `u` and the geometry
/// coordinates `g`, all standard normal under the card's prior. Five layers in front of the decoder (linear,
/// relu, linear, relu, linear) map it to the decoder's input `(ν(s) + C u, g)`:
///
/// * `ν(s) = ν_0 + Σ_j clamp((s − b_j)/h + 1/2, 0, 1) (ν_j − ν_{j−1})`, each term rising from 0 to 1 across
///   `[b_j − h/2, b_j + h/2]`; the boundaries are `b_j = Φ⁻¹(p_0 + … + p_{j−1})` for the classes' shares `p_c`
///   of the training digits, so `s ~ N(0, 1)` lands on class `c`'s plateau (where `ν(s) = ν_c` exactly) with
///   probability `p_c` less its share of the ramps. The clamp is `1 − relu(1 − relu(x))`, which is exactly 0
///   or 1 on a plateau even in f32 (the difference `relu(x) − relu(x − 1)` would cancel two large terms);
/// * `C` is `τ` (`VaeConfig::prior_temperature`) times the Cholesky factor of the pooled within-class
///   covariance of the means plus the mean posterior variance;
/// * `u` and `g` pass through the ReLU as `relu(x) − relu(−x)`, exactly.
///
/// The map is piecewise linear, so the card stays a PL generator. The encoder's card gives, for an image with
/// latent mean `μ`, the code `(s_0, C⁻¹(μ − ν_{c_0}), 0)`, where `s_0` is the middle of the plateau of the
/// class `c_0` that holds `s = 0`: the decoder gets `μ` back exactly, but the encoder does not know the digit,
/// so the code sits on class `c_0`'s plateau whatever the digit.
#[derive(Debug)]
pub struct ClassPrior {
    /// Class means `[classes, content]`.
    pub means: Tensor,
    /// `τ` times the Cholesky factor `[content, content]` of the pooled within-class covariance.
    pub chol: Tensor,
    /// Boundaries `b_1 … b_{classes−1}` in `s`.
    pub boundaries: Vec<f64>,
    /// Each class's share of the training digits.
    pub shares: Vec<f64>,
    /// Ramp width `h`.
    pub ramp: f64,
    /// The factor `τ` already applied to `chol`.
    pub temperature: f64,
}

impl ClassPrior {
    pub fn fit(
        encoder: &Net,
        logvar: &Net,
        train: &Dataset,
        content: i64,
        ramp: f64,
        temperature: f64,
    ) -> Result<ClassPrior> {
        use crate::error::Error;
        let (mu, var) = posterior_moments(encoder, logvar, train, content)?;
        let (mu, var) = (mu.to_device(Device::Cpu), var.to_device(Device::Cpu));
        let labels = Vec::<i64>::try_from(train.labels.to_device(Device::Cpu).to_kind(Kind::Int64))?;
        let classes = labels.iter().copied().max().unwrap_or(-1) + 1;
        let n = labels.len() as i64;
        let mut counts = vec![0i64; classes.max(0) as usize];
        for &l in &labels {
            if l < 0 {
                return Err(Error::input(format!("a class-conditional prior needs labels ≥ 0, found {l}")));
            }
            counts[l as usize] += 1;
        }
        if classes < 2 || counts.iter().any(|&c| c < 2) || n <= classes {
            return Err(Error::input(format!(
                "a class-conditional prior needs at least 2 classes and 2 training digits of each, found counts {counts:?}"
            )));
        }
        let label_t = Tensor::from_slice(&labels);
        let mut means = Vec::new();
        let mut centred = Vec::new();
        for c in 0..classes {
            let rows = mu.index_select(0, &label_t.eq(c).nonzero().squeeze_dim(1));
            let m = rows.mean_dim([0i64].as_slice(), false, Kind::Double);
            centred.push(&rows - m.unsqueeze(0));
            means.push(m);
        }
        let means = Tensor::stack(&means, 0);
        let centred = Tensor::cat(&centred, 0);
        let cov = centred.tr().matmul(&centred) / (n - classes) as f64
            + var.mean_dim([0i64].as_slice(), false, Kind::Double).diag_embed(0, -2, -1);
        let chol = cov.f_linalg_cholesky(false)? * temperature;
        let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
        let mut cum = 0.0;
        let mut boundaries = Vec::new();
        for p in &shares[..shares.len() - 1] {
            cum += p;
            boundaries.push(std::f64::consts::SQRT_2 * erfinv(2.0 * cum - 1.0));
        }
        // The ramps must not overlap, or a plateau would vanish.
        if boundaries.windows(2).any(|w| w[1] - w[0] <= ramp) {
            return Err(Error::input(format!(
                "prior_ramp {ramp} is wider than the gap between two class boundaries {boundaries:?}"
            )));
        }
        Ok(ClassPrior { means, chol, boundaries, shares, ramp, temperature })
    }

    /// The class whose plateau holds `s = 0` (the one above, when `0` is on a ramp), and the middle of that
    /// plateau (one unit from the boundary for the first and the last class).
    pub fn home(&self) -> (usize, f64) {
        let c = self.boundaries.iter().filter(|&&b| b - self.ramp / 2.0 < 0.0).count();
        let lo = if c == 0 { self.boundaries[0] - 2.0 } else { self.boundaries[c - 1] };
        let hi = self.boundaries.get(c).copied().unwrap_or(lo + 2.0);
        (c, 0.5 * (lo + hi))
    }

    pub fn describe(&self) -> String {
        let shares: Vec<String> = self.shares.iter().map(|p| format!("{:.3}", p)).collect();
        format!(
            "{} classes (shares {}), ramps {} wide, pooled within-class covariance at temperature {}",
            self.shares.len(),
            shares.join(" "),
            self.ramp,
            self.temperature
        )
    }

    /// The decoder's input for selector values `s` and latents `v = (u, g)` (double precision), as the card's
    /// prior layers compute it; for tests and for measuring the prior.
    pub fn map(&self, s: &[f64], v: &Tensor) -> Tensor {
        let content = self.chol.size()[0];
        let u = v.to_kind(Kind::Double).narrow(1, 0, content);
        let mut rows = Vec::new();
        for &si in s {
            let mut m = self.means.get(0).copy();
            for (j, &b) in self.boundaries.iter().enumerate() {
                let r = ((si - b) / self.ramp + 0.5).clamp(0.0, 1.0);
                m += (self.means.get(j as i64 + 1) - self.means.get(j as i64)) * r;
            }
            rows.push(m);
        }
        let content_out = Tensor::stack(&rows, 0) + u.matmul(&self.chol.tr());
        let rest = v.to_kind(Kind::Double).narrow(1, content, v.size()[1] - content);
        Tensor::cat(&[content_out, rest], 1)
    }

    /// The decoder with the prior's five layers in front (a latent one unit longer), and the encoder whose
    /// last layer gives `(s_0, C⁻¹(μ − ν_{c_0}), g)`.
    pub fn apply(&self, encoder: Net, decoder: Net) -> Result<(Net, Net)> {
        use crate::error::Error;
        use crate::nn::TchLayer;
        use gcert_core::card::LayerSpec;
        if decoder.layers.first().is_some_and(|l| !l.params.is_empty()) {
            return Err(Error::input("the decoder's first layer must be its reshape"));
        }
        let k = decoder.input_shapes[0][0];
        let content = self.chol.size()[0];
        let ramps = self.boundaries.len() as i64;
        let (kind, device) = (decoder.kind(), decoder.device());
        let opts = (Kind::Double, Device::Cpu);
        // Layer 0: (s, v) ↦ (x_j = (s − b_j)/h + 1/2, v, −v); relu.
        // Layer 2: (r_j, v⁺, v⁻) ↦ (1 − r_j, v⁺, v⁻); relu, so that q_j = 1 − clamp(x_j, 0, 1) is exactly 0 or 1
        // wherever the ramp is saturated, in f32 as in f64 (no cancellation of two large terms).
        // Layer 4: ν(s) = ν_last − Σ_j (ν_j − ν_{j−1}) q_j; C (u⁺ − u⁻); g⁺ − g⁻.
        let width = ramps + 2 * k;
        let w0 = Tensor::zeros([width, k + 1], opts);
        let b0 = Tensor::zeros([width], opts);
        let w2 = Tensor::eye(width, opts);
        let b2 = Tensor::zeros([width], opts);
        let w4 = Tensor::zeros([k, width], opts);
        let b4 = Tensor::zeros([k], opts);
        tch::no_grad(|| {
            for (j, &b) in self.boundaries.iter().enumerate() {
                let j = j as i64;
                let _ = w0.get(j).get(0).fill_(1.0 / self.ramp);
                let _ = b0.get(j).fill_(0.5 - b / self.ramp);
                let _ = w2.get(j).get(j).fill_(-1.0);
                let _ = b2.get(j).fill_(1.0);
                let step = self.means.get(j + 1) - self.means.get(j);
                w4.narrow(0, 0, content).select(1, j).copy_(&(-step));
            }
            let eye = Tensor::eye(k, opts);
            w0.narrow(0, ramps, k).narrow(1, 1, k).copy_(&eye);
            w0.narrow(0, ramps + k, k).narrow(1, 1, k).copy_(&(-&eye));
            // u ↦ C u; g passes through.
            let lin = Tensor::eye(k, opts);
            lin.narrow(0, 0, content).narrow(1, 0, content).copy_(&self.chol);
            w4.narrow(1, ramps, k).copy_(&lin);
            w4.narrow(1, ramps + k, k).copy_(&(-&lin));
            b4.narrow(0, 0, content).copy_(&self.means.get(ramps));
        });
        let linear = |name: &str, w: Tensor, b: Tensor| TchLayer {
            spec: LayerSpec::Linear { weight: format!("{name}.weight"), bias: Some(format!("{name}.bias")) },
            params: [
                ("weight", w.to_kind(kind).to_device(device)),
                ("bias", b.to_kind(kind).to_device(device)),
            ]
            .into_iter()
            .collect(),
        };
        let relu = || TchLayer { spec: LayerSpec::Relu, params: Default::default() };
        let mut layers = vec![
            linear("prior0", w0, b0),
            relu(),
            linear("prior2", w2, b2),
            relu(),
            linear("prior4", w4, b4),
        ];
        layers.extend(decoder.layers);
        let description = format!(
            "class-conditional prior: latent {} = (class selector s, content u, geometry g), linear {}→{}, relu, \
             linear {}→{}, relu, linear {}→{} (ν(s) + C u: a staircase of {} class means with ramps {} wide, g \
             passed through), {}",
            k + 1,
            k + 1,
            width,
            width,
            width,
            width,
            k,
            self.shares.len(),
            self.ramp,
            decoder.description.as_deref().unwrap_or("")
        );
        let decoder = Net {
            name: decoder.name,
            description: Some(description),
            input_shapes: vec![vec![k + 1]],
            layers,
        };

        // The encoder's last layer: (s_0, C⁻¹ (W h + b − ν_{c_0}), W_g h + b_g).
        let (home, s0) = self.home();
        let mut enc_layers = encoder.layers;
        let last = enc_layers.pop().ok_or_else(|| Error::input("the encoder has no layers"))?;
        let (w, b) = (&last.params["weight"], &last.params["bias"]);
        let (ekind, edevice) = (w.kind(), w.device());
        let w = w.to_kind(Kind::Double).to_device(Device::Cpu);
        let b = b.to_kind(Kind::Double).to_device(Device::Cpu);
        let inv = Tensor::f_linalg_inv(&self.chol)?;
        let rows = w.size()[1];
        let new_w = Tensor::zeros([k + 1, rows], opts);
        let new_b = Tensor::zeros([k + 1], opts);
        tch::no_grad(|| {
            let _ = new_b.get(0).fill_(s0);
            new_w.narrow(0, 1, content).copy_(&inv.matmul(&w.narrow(0, 0, content)));
            let bc = &b.narrow(0, 0, content) - self.means.get(home as i64);
            new_b.narrow(0, 1, content).copy_(&inv.matmul(&bc.unsqueeze(1)).squeeze_dim(1));
            new_w.narrow(0, 1 + content, k - content).copy_(&w.narrow(0, content, k - content));
            new_b.narrow(0, 1 + content, k - content).copy_(&b.narrow(0, content, k - content));
        });
        let spec = match &last.spec {
            LayerSpec::Linear { .. } => last.spec.clone(),
            _ => return Err(Error::input("the encoder's last layer must be linear")),
        };
        enc_layers.push(TchLayer {
            spec,
            params: [
                ("weight", new_w.to_kind(ekind).to_device(edevice)),
                ("bias", new_b.to_kind(ekind).to_device(edevice)),
            ]
            .into_iter()
            .collect(),
        });
        let description = format!(
            "{}; its last layer folds in the class-conditional prior: latent {} = (s = {s0:.4}, the middle of class \
             {home}'s plateau; C⁻¹(μ − ν_{home}); the geometry coordinates)",
            encoder.description.as_deref().unwrap_or("encoder"),
            k + 1
        );
        let encoder = Net { layers: enc_layers, description: Some(description), ..encoder };
        Ok((encoder, decoder))
    }
}

/// The inverse error function (libtorch's, in double precision), for the class boundaries
/// `Φ⁻¹(p) = √2 erfinv(2p − 1)`.
fn erfinv(x: f64) -> f64 {
    let t = Tensor::from_slice(&[x]).erfinv();
    t.double_value(&[0])
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

    /// Squares labelled by their shift, three classes with different shares.
    fn labelled_squares(n: usize) -> Dataset {
        let mut data = squares(n);
        let labels: Vec<i64> = (0..n as i64).map(|i| [0, 0, 0, 1, 1, 2][(i % 6) as usize]).collect();
        data.labels = Tensor::from_slice(&labels);
        data
    }

    #[test]
    fn the_class_prior_layers_compute_its_map_and_give_the_encoder_means_back() {
        let data = labelled_squares(48);
        let vs = VarStore::new(Device::Cpu);
        let (encoder, logvar) = models::encoder(&vs.root(), 7, "enc", 3);
        let decoder = models::generator(vs.root() / "dec", 7, [4, 4, 2], "dec", 3);
        let mu = encoder.forward(&data.images, false).unwrap().to_kind(Kind::Double);
        let prior = ClassPrior::fit(&encoder, &logvar, &data, 3, 0.002, 1.0).unwrap();
        assert_eq!(prior.shares.len(), 3);
        assert!((prior.shares[0] - 0.5).abs() < 1e-12 && (prior.shares[2] - 1.0 / 6.0).abs() < 1e-12);
        // b_1 = Φ⁻¹(1/2) = 0, b_2 = Φ⁻¹(5/6).
        assert!(prior.boundaries[0].abs() < 1e-9, "{:?}", prior.boundaries);
        assert!((prior.boundaries[1] - 0.967_421_566).abs() < 1e-6, "{:?}", prior.boundaries);
        let (home, s0) = prior.home();
        let zero = Tensor::zeros([1, 7], (Kind::Double, Device::Cpu));
        let at_home = prior.map(&[s0], &zero).narrow(1, 0, 3).squeeze_dim(0);
        let d = (at_home - prior.means.get(home as i64)).abs().max().double_value(&[]);
        assert!(d < 1e-12, "s0 = {s0} lies on class {home}'s plateau ({d})");
        let (enc, dec) = prior.apply(encoder, decoder).unwrap();
        assert_eq!(dec.input_shapes, vec![vec![8]]);
        assert_eq!(dec.output_shape().unwrap(), [1, 32, 32]);

        // Encoder then the decoder's three prior layers: the latent means again, content and geometry.
        let code = enc.forward(&data.images, false).unwrap();
        assert_eq!(code.size(), [48, 8]);
        let s = Vec::<f64>::try_from(code.select(1, 0).to_kind(Kind::Double)).unwrap();
        assert!(s.iter().all(|&x| (x - s0).abs() < 1e-6), "every code sits at s0 = {s0}");
        let back = dec.forward_range(&code, 0..5, false).unwrap().to_kind(Kind::Double);
        let d = (&back - &mu).abs().max().double_value(&[]);
        assert!(d < 1e-4, "ν(s0) + C u = μ ({d})");

        // The card's layers are the reference map, on the plateaus, on the ramps and beyond the ends.
        let ss = [-3.0, -0.0005, 0.0, 0.0004, 0.3, prior.boundaries[1], prior.boundaries[1] + 0.0009, 2.5];
        let v = Tensor::randn([ss.len() as i64, 7], (Kind::Double, Device::Cpu));
        let z =
            Tensor::cat(&[Tensor::from_slice(&ss).unsqueeze(1), v.shallow_clone()], 1).to_kind(Kind::Float);
        let card = dec.forward_range(&z, 0..5, false).unwrap().to_kind(Kind::Double);
        let reference = prior.map(&ss, &v);
        let d = (&card - &reference).abs().max().double_value(&[]);
        assert!(d < 1e-4, "card layers (f32) vs map ({d})");
        // On a plateau with u = 0 the content is the class mean exactly; the geometry passes through.
        let zero = Tensor::zeros([3, 7], (Kind::Double, Device::Cpu));
        let _ = zero.narrow(1, 3, 4).fill_(0.5);
        let at = prior.map(&[-2.0, 0.5, 2.0], &zero);
        let d = (at.narrow(1, 0, 3) - &prior.means).abs().max().double_value(&[]);
        assert!(d < 1e-12, "{d}");
        assert_eq!(at.narrow(1, 3, 4).sum(Kind::Double).double_value(&[]), 6.0);
    }

    #[test]
    fn a_class_prior_refuses_one_class_and_ramps_wider_than_a_plateau() {
        let vs = VarStore::new(Device::Cpu);
        let (encoder, logvar) = models::encoder(&vs.root(), 5, "enc", 3);
        let one = squares(12);
        let err = ClassPrior::fit(&encoder, &logvar, &one, 3, 0.002, 1.0).unwrap_err();
        assert!(err.to_string().contains("at least 2 classes"), "{err}");
        let three = labelled_squares(12);
        let err = ClassPrior::fit(&encoder, &logvar, &three, 3, 2.0, 1.0).unwrap_err();
        assert!(err.to_string().contains("prior_ramp 2"), "{err}");
        // Out-of-range knobs are refused before any training.
        let test = Dataset { images: three.images.shallow_clone(), labels: three.labels.shallow_clone() };
        for (cfg, what) in [
            (
                VaeConfig {
                    prior_fit: true,
                    prior_classes: true,
                    prior_temperature: 0.0,
                    ..VaeConfig::default()
                },
                "prior_temperature",
            ),
            (
                VaeConfig {
                    prior_fit: true,
                    prior_classes: true,
                    prior_temperature: f64::NAN,
                    ..VaeConfig::default()
                },
                "prior_temperature",
            ),
            (
                VaeConfig { prior_fit: true, prior_temperature: 0.8, ..VaeConfig::default() },
                "needs prior_classes",
            ),
            (
                VaeConfig { prior_fit: true, prior_classes: true, prior_ramp: -1.0, ..VaeConfig::default() },
                "prior_ramp",
            ),
            (VaeConfig { prior_classes: true, ..VaeConfig::default() }, "needs prior_fit"),
        ] {
            let err = train_vae(&cfg, &three, &test, Device::Cpu, &[], None, &mut |_| {}).unwrap_err();
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
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
