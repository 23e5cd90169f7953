//! Stylized mutations (paper §5.4.3, docs/stylized.md): style domains made from MNIST by randomised filters,
//! and CycleGAN-style translators `T(x, α)` whose extra scalar input `α` sets how far the style is applied.
//!
//! A translator is a piecewise-linear network with two inputs, the image `[1, 32, 32]` and the strength `α`
//! (`[1]`), joined by a `concat` that broadcasts `α` as one constant channel; it exports to a model card that
//! gcert-core loads, so the exact chain covers the segment `α ∈ [0, E]` with the image held fixed.
//!
//! Training ([`train_style`]) learns two translators, `T_XY` (real digits → style) and `T_YX` (back), with
//! least-squares adversarial losses against two critics, cycle consistency at `α = 1`, identity at `α = 0`
//! (`T(x, 0) ≈ x`), and any extra [`StrengthLoss`] terms (gcert-regulate's continuity in `α`). The final
//! `clamp(0, 1)` is left out while training ([`Net::forward_multi_before_clamp`]) and a range penalty
//! `mean(relu(−u) + relu(u − 1))` keeps the output `u` inside `[0, 1]`, so that a translator pushed outside the
//! range recovers instead of stalling on the clamp's zero gradient. Domain X is
//! real MNIST digits of the first half of the training split; domain Y is the style's filter applied to digits
//! of the second half, so the two domains never share a digit (unpaired).

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::data::{Dataset, SIDE};
use crate::error::{Error, Result};
use crate::models;
use crate::nn::{Net, NetBuilder};
use crate::objective::{strength_objective, StrengthLoss, StrengthStep};
use crate::optim::{Adam, Checkpoint, CheckpointMeta};
use crate::random;
use crate::train::Log;

/// A style domain: a randomised filter of real digits (each image draws its own parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Contrast loss plus low-frequency haze: `y = (1 − c) x + c h` with `c ~ U(0.45, 0.65)` and `h` a 4 × 4
    /// grid of grey levels `U(0.55, 0.95)` upsampled bilinearly to 32 × 32.
    Fog,
    /// Slanted streaks: sparse drops (2.5 % of pixels, brightness `U(0.35, 0.75)`) smeared along a line of
    /// 9 pixels at `U(60°, 80°)` from the horizontal, screen-blended over the digit dimmed to 85 %:
    /// `y = 1 − (1 − 0.85 x)(1 − s)`.
    Rain,
    /// Thicker strokes: `y = m x' + (1 − m) x` with `x'` the 3 × 3 grey dilation (max filter) of the digit and
    /// `m ~ U(0.7, 1)`.
    Thick,
}

impl Style {
    pub const ALL: [Style; 3] = [Style::Fog, Style::Rain, Style::Thick];

    pub fn name(self) -> &'static str {
        match self {
            Style::Fog => "fog",
            Style::Rain => "rain",
            Style::Thick => "thick",
        }
    }

    /// The filter, one line, for reports and card descriptions.
    pub fn describe(self) -> &'static str {
        match self {
            Style::Fog => {
                "fog: y = (1 − c) x + c h, c ~ U(0.45, 0.65), h a 4×4 grid of U(0.55, 0.95) upsampled bilinearly"
            }
            Style::Rain => {
                "rain: drops on 2.5 % of pixels (U(0.35, 0.75)) smeared along 9 px at U(60°, 80°), \
                 y = 1 − (1 − 0.85 x)(1 − s)"
            }
            Style::Thick => "thick: y = m·dilate3×3(x) + (1 − m) x, m ~ U(0.7, 1)",
        }
    }

    /// Applies the filter to a batch `[n, 1, 32, 32]` in `[0, 1]`; every random choice comes from `rng`.
    pub fn apply(self, images: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let s = images.size();
        if s.len() != 4 || s[1] != 1 {
            return Err(Error::input(format!("a style filter needs images [n, 1, h, w], found {s:?}")));
        }
        let (n, h, w) = (s[0], s[2], s[3]);
        let device = images.device();
        let x = images.to_kind(Kind::Float);
        let y: Tensor = match self {
            Style::Fog => {
                let c = random::uniform(rng, &[n, 1, 1, 1], 0.45, 0.65, device);
                let grid = random::uniform(rng, &[n, 1, 4, 4], 0.55, 0.95, device);
                let haze = grid.f_upsample_bilinear2d([h, w], false, None, None)?;
                (1.0 - &c) * &x + &c * haze
            }
            Style::Rain => {
                let drops =
                    random::uniform(rng, &[n, 1, h, w], 0.0, 1.0, device).lt(0.025).to_kind(Kind::Float)
                        * random::uniform(rng, &[n, 1, h, w], 0.35, 0.75, device);
                let k = 9i64;
                let mut kernels = vec![0f32; (n * k * k) as usize];
                for kernel in kernels.chunks_exact_mut((k * k) as usize) {
                    let theta = rng.gen_range(60f64..80.0).to_radians();
                    let half = (k / 2) as f64;
                    for step in -16..=16 {
                        let t = step as f64 * half / 16.0;
                        let (col, row) = ((half + t * theta.cos()).round(), (half - t * theta.sin()).round());
                        kernel[(row as i64 * k + col as i64) as usize] = 1.0;
                    }
                }
                let kernels = Tensor::from_slice(&kernels).reshape([n, 1, k, k]).to_device(device);
                let streaks = drops
                    .reshape([1, n, h, w])
                    .f_conv2d(&kernels, None::<&Tensor>, [1, 1], [k / 2, k / 2], [1, 1], n)?
                    .reshape([n, 1, h, w])
                    .clamp(0.0, 1.0);
                1.0 - (1.0 - &x * 0.85) * (1.0 - streaks)
            }
            Style::Thick => {
                let m = random::uniform(rng, &[n, 1, 1, 1], 0.7, 1.0, device);
                let dilated = x.f_max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false)?;
                &m * dilated + (1.0 - &m) * &x
            }
        };
        Ok(y.clamp(0.0, 1.0))
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Style> {
        Style::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| Error::input(format!("unknown style '{s}'; the styles are fog, rain and thick")))
    }
}

/// The image shape every translator takes and returns.
pub const IMAGE: [i64; 3] = [1, SIDE as i64, SIDE as i64];

/// A translator `T(x, α)`: `concat(x, α)` (α broadcast as a channel) → conv w k3 → relu → conv 2w k4 s2
/// (16 × 16) → relu → conv 2w k3 → relu → conv-transpose w k4 s2 (32 × 32) → relu → conv 1 k3 → clamp(0, 1).
pub fn translator(root: tch::nn::Path<'_>, name: &str, width: i64, seed: u64) -> Net {
    let w = width;
    NetBuilder::concat(root, name, &[IMAGE.to_vec(), vec![1]])
        .seeded(seed)
        .conv2d(w, 3, 1, 1)
        .relu()
        .conv2d(2 * w, 4, 2, 1)
        .relu()
        .conv2d(2 * w, 3, 1, 1)
        .relu()
        .conv_transpose2d(w, 4, 2, 1, true)
        .relu()
        .conv2d(1, 3, 1, 1)
        .clamp(0.0, 1.0)
        .build(format!(
            "style translator T(x, α): inputs image [1,32,32] and strength α [1] (broadcast as a channel), \
             concat, conv→{w} k3 p1, relu, conv→{} k4 s2 p1 (16×16), relu, conv→{} k3 p1, relu, convT→{w} k4 s2 p1 \
             (32×32), relu, conv→1 k3 p1, clamp(0,1)",
            2 * w,
            2 * w
        ))
}

/// `T(x, α)` on a batch of images with one strength for all (`α` as `[n, 1]`).
pub fn translate(t: &Net, x: &Tensor, alpha: f64, train: bool) -> Result<Tensor> {
    let a = Tensor::full([x.size()[0], 1], alpha, (x.kind(), x.device()));
    t.forward_multi(&[x, &a], train)
}

/// How a style's translators are trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StyleConfig {
    pub style: Style,
    /// Translator steps (each with one step of both critics).
    pub iters: u64,
    pub batch: usize,
    /// Channels of the translators' first layer (`w` in [`translator`]).
    pub width: i64,
    pub critic_width: i64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Weight of cycle consistency at `α = 1` (L1).
    pub cycle: f64,
    /// Weight of identity at `α = 0` (L1).
    pub identity: f64,
    /// Weight of the range penalty on the output before the final clamp.
    pub range: f64,
    pub seed: u64,
    pub log_every: u64,
    pub checkpoint_every: u64,
}

impl Default for StyleConfig {
    fn default() -> Self {
        StyleConfig {
            style: Style::Fog,
            iters: 3000,
            batch: 32,
            width: 16,
            critic_width: 16,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            cycle: 10.0,
            identity: 10.0,
            range: 10.0,
            seed: 0,
            log_every: 100,
            checkpoint_every: 250,
        }
    }
}

impl StyleConfig {
    /// Every value in range.
    pub fn check(&self) -> Result<()> {
        let finite_nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::input(format!("style.{name} must be finite and non-negative, found {v}")))
            }
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::input(format!("style.lr must be positive and finite, found {}", self.lr)));
        }
        finite_nonneg("cycle", self.cycle)?;
        finite_nonneg("identity", self.identity)?;
        finite_nonneg("range", self.range)?;
        if self.iters == 0 || self.batch == 0 || self.width <= 0 || self.critic_width <= 0 {
            return Err(Error::input(format!(
                "style.iters, style.batch, style.width and style.critic_width must be positive, found {}, {}, {}, {}",
                self.iters, self.batch, self.width, self.critic_width
            )));
        }
        if self.log_every == 0 || self.checkpoint_every == 0 {
            return Err(Error::input("style.log_every and style.checkpoint_every must be positive"));
        }
        Ok(())
    }
}

/// What a style run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleReport {
    pub style: Style,
    pub iters: u64,
    /// Wall-clock seconds of training (summed over resumes).
    pub seconds: f64,
    /// Means over the last logging window.
    pub adversarial: f64,
    pub cycle: f64,
    pub identity: f64,
    /// Each extra term's mean over the last logging window, by name.
    pub extra: Vec<(String, f64)>,
    pub device: String,
}

/// The two trained translators and their critics.
#[derive(Debug)]
pub struct TrainedStyle {
    pub vs: VarStore,
    /// `T_XY(x, α)`: real digits → the style.
    pub forward: Net,
    /// `T_YX(y, α)`: the style → real digits.
    pub reverse: Net,
    pub dvs: VarStore,
    pub report: StyleReport,
}

fn step_seed(seed: u64, it: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(it) ^ 0x5719_1E00
}

/// Least-squares GAN loss `mean((D(x) − target)²)`.
fn lsgan(score: &Tensor, target: f64) -> Tensor {
    (score - target).square().mean(Kind::Float)
}

/// Trains the translators of `cfg.style` on the training split `data`; `extra` terms are added to each
/// translator's loss (once for `T_XY`, once for `T_YX`).
pub fn train_style(
    cfg: &StyleConfig,
    data: &Dataset,
    device: Device,
    extra: &[Box<dyn StrengthLoss>],
    checkpoint: Option<&Checkpoint>,
    log: Log<'_>,
) -> Result<TrainedStyle> {
    cfg.check()?;
    data.check("training set")?;
    let half = data.len() / 2;
    if half == 0 {
        return Err(Error::input("the training set needs at least two digits (one per domain)"));
    }
    let mut vs = VarStore::new(device);
    let mut dvs = VarStore::new(device);
    let forward = translator(vs.root() / "xy", &format!("translator-{}", cfg.style), cfg.width, cfg.seed);
    let reverse =
        translator(vs.root() / "yx", &format!("translator-{}-reverse", cfg.style), cfg.width, cfg.seed + 1);
    let critic_y = models::critic(dvs.root() / "y", cfg.critic_width, cfg.seed);
    let critic_x = models::critic(dvs.root() / "x", cfg.critic_width, cfg.seed + 1);
    let mut opt_t = Adam::new(&vs, cfg.lr, cfg.beta1, cfg.beta2);
    let mut opt_d = Adam::new(&dvs, cfg.lr, cfg.beta1, cfg.beta2);
    let key = StyleConfig { iters: 0, log_every: 0, checkpoint_every: 0, ..cfg.clone() };
    let extra_tags: Vec<String> = extra.iter().map(|e| e.tag()).collect();
    let tag = format!("style:{}:extra={extra_tags:?}", serde_json::to_string(&key).unwrap_or_default());
    let (mut done, mut seconds) = (0, 0.0);
    if let Some(ck) = checkpoint.filter(|c| c.exists()) {
        let meta = ck.load(
            &tag,
            &mut [("t", &mut vs), ("d", &mut dvs)],
            &mut [("t", &mut opt_t), ("d", &mut opt_d)],
        )?;
        (done, seconds) = (meta.done, meta.seconds);
        log(&format!("resumed from {} at iteration {done}/{}", ck.dir.display(), cfg.iters));
    }
    let n = cfg.batch as i64;
    let ones = Tensor::ones([n, 1], (Kind::Float, device));
    let zeros = Tensor::zeros([n, 1], (Kind::Float, device));
    let (mut sums, mut window) = ([0.0f64; 4], 0u64);
    let mut extra_sums = vec![0.0; extra.len()];
    let mut last = [f64::NAN; 3];
    let mut last_extra = Vec::new();
    let mut t0 = Instant::now();
    for it in done..cfg.iters {
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(cfg.seed, it));
        let ix: Vec<i64> = (0..n).map(|_| rng.gen_range(0..half as i64)).collect();
        let iy: Vec<i64> = (0..n).map(|_| rng.gen_range(half as i64..data.len() as i64)).collect();
        let x = data.select(&ix).0;
        let y = cfg.style.apply(&data.select(&iy).0, &mut rng)?;

        // Translators: α = 1 and α = 0 of each direction in one pass, then the cycle back.
        let both = |t: &Net, v: &Tensor| -> Result<(Tensor, Tensor)> {
            let out = t.forward_multi_before_clamp(
                &[&Tensor::cat(&[v, v], 0), &Tensor::cat(&[&ones, &zeros], 0)],
                true,
            )?;
            let parts = out.split(n, 0);
            Ok((parts[0].shallow_clone(), parts[1].shallow_clone()))
        };
        let (x_to_y, x_same) = both(&forward, &x)?;
        let (y_to_x, y_same) = both(&reverse, &y)?;
        let x_back = reverse.forward_multi_before_clamp(&[&x_to_y, &ones], true)?;
        let y_back = forward.forward_multi_before_clamp(&[&y_to_x, &ones], true)?;
        let adv =
            lsgan(&critic_y.forward(&x_to_y, true)?, 1.0) + lsgan(&critic_x.forward(&y_to_x, true)?, 1.0);
        let cycle = (&x_back - &x).abs().mean(Kind::Float) + (&y_back - &y).abs().mean(Kind::Float);
        let identity = (&x_same - &x).abs().mean(Kind::Float) + (&y_same - &y).abs().mean(Kind::Float);
        let outside = |u: &Tensor| (u.neg().relu() + (u - 1.0).relu()).mean(Kind::Float);
        let range = outside(&x_to_y) + outside(&x_same) + outside(&y_to_x) + outside(&y_same);
        let base = &adv + &cycle * cfg.cycle + &identity * cfg.identity + &range * cfg.range;
        let steps = [
            StrengthStep {
                translator: &forward,
                x: &x,
                at0: &x_same,
                at1: &x_to_y,
                iteration: it,
                direction: 0,
            },
            StrengthStep {
                translator: &reverse,
                x: &y,
                at0: &y_same,
                at1: &y_to_x,
                iteration: it,
                direction: 1,
            },
        ];
        let (loss, parts) = strength_objective(base, &steps, extra)?;
        opt_t.backward_step(&loss);

        // Critics: real of their domain against the translators' (detached) output.
        let d_loss = lsgan(&critic_y.forward(&y, true)?, 1.0)
            + lsgan(&critic_y.forward(&x_to_y.detach(), true)?, 0.0)
            + lsgan(&critic_x.forward(&x, true)?, 1.0)
            + lsgan(&critic_x.forward(&y_to_x.detach(), true)?, 0.0);
        opt_d.backward_step(&(d_loss.shallow_clone() * 0.5));

        for (acc, v) in sums.iter_mut().zip([&adv, &cycle, &identity, &d_loss]) {
            *acc += v.double_value(&[]);
        }
        for (acc, (_, v)) in extra_sums.iter_mut().zip(&parts) {
            *acc += v;
        }
        window += 1;
        if (it + 1).is_multiple_of(cfg.log_every) || it + 1 == cfg.iters {
            let dt = t0.elapsed().as_secs_f64();
            seconds += dt;
            let w = window as f64;
            last = [sums[0] / w, sums[1] / w, sums[2] / w];
            last_extra = extra.iter().zip(&extra_sums).map(|(e, v)| (e.name().to_string(), v / w)).collect();
            let extras: String = last_extra.iter().map(|(name, v)| format!("  {name} {v:.4}")).collect();
            log(&format!(
                "iter {}/{}  adv {:.4}  cycle {:.4}  identity {:.4}  critics {:.4}{extras}  {:.1} it/s",
                it + 1,
                cfg.iters,
                last[0],
                last[1],
                last[2],
                sums[3] / w,
                w / dt.max(1e-9)
            ));
            (sums, window) = ([0.0; 4], 0);
            extra_sums.iter_mut().for_each(|v| *v = 0.0);
            t0 = Instant::now();
        }
        if let Some(ck) = checkpoint {
            if (it + 1).is_multiple_of(cfg.checkpoint_every) || it + 1 == cfg.iters {
                let meta = CheckpointMeta {
                    tag: tag.clone(),
                    done: it + 1,
                    seconds: seconds + t0.elapsed().as_secs_f64(),
                    steps: vec![opt_t.step, opt_d.step],
                };
                ck.save(&meta, &[("t", &vs), ("d", &dvs)], &[("t", &opt_t), ("d", &opt_d)])?;
            }
        }
    }
    let report = StyleReport {
        style: cfg.style,
        iters: cfg.iters,
        seconds,
        adversarial: last[0],
        cycle: last[1],
        identity: last[2],
        extra: last_extra,
        device: crate::device::describe(device),
    };
    Ok(TrainedStyle { vs, forward, reverse, dvs, report })
}

/// What a translator does on test digits: identity error at `α = 0`, and how a judge classifier labels
/// `T(x, 1)` and the filter's own output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleMetrics {
    pub digits: usize,
    /// Mean and largest per-image mean `|T(x, 0) − x|` (grey levels in `[0, 1]`).
    pub identity_mean_abs: f64,
    pub identity_max_abs: f64,
    /// The judge's accuracy on `x`, on `T(x, 1)` and on the real filter applied to `x`.
    pub accuracy_plain: Option<f64>,
    pub accuracy_translated: Option<f64>,
    pub accuracy_filtered: Option<f64>,
    /// Mean `|T(x, 1) − x|`: how much the full style changes a digit.
    pub change_at_one: f64,
}

/// Measures a translator on (up to) `limit` test digits.
pub fn measure(
    t: &Net,
    test: &Dataset,
    style: Style,
    judge: Option<&Net>,
    limit: usize,
    seed: u64,
) -> Result<StyleMetrics> {
    let k = limit.min(test.len()) as i64;
    let idx: Vec<i64> = (0..k).collect();
    let (x, labels) = test.select(&idx);
    let (at0, at1) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
        Ok((translate(t, &x, 0.0, false)?, translate(t, &x, 1.0, false)?))
    })?;
    let per_image = (&at0 - &x).abs().flatten(1, -1).mean_dim(1, false, Kind::Float);
    let filtered = style.apply(&x, &mut ChaCha8Rng::seed_from_u64(seed))?;
    let acc = |images: &Tensor| -> Result<Option<f64>> {
        let Some(j) = judge else { return Ok(None) };
        let pred = tch::no_grad(|| j.forward(images, false))?.argmax(-1, false);
        Ok(Some(pred.eq_tensor(&labels).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])))
    };
    Ok(StyleMetrics {
        digits: k as usize,
        identity_mean_abs: per_image.mean(Kind::Float).double_value(&[]),
        identity_max_abs: per_image.max().double_value(&[]),
        accuracy_plain: acc(&x)?,
        accuracy_translated: acc(&at1)?,
        accuracy_filtered: acc(&filtered)?,
        change_at_one: (&at1 - &x).abs().mean(Kind::Float).double_value(&[]),
    })
}

/// A strip grid: one row per digit, columns `T(x, α)` for `α = 0, 0.25, …, 1`, then the real filter.
pub fn strip_grid(t: &Net, x: &Tensor, style: Style, seed: u64) -> Result<Tensor> {
    let alphas = [0.0, 0.25, 0.5, 0.75, 1.0];
    let mut cols = Vec::new();
    for a in alphas {
        cols.push(tch::no_grad(|| translate(t, x, a, false))?);
    }
    cols.push(style.apply(x, &mut ChaCha8Rng::seed_from_u64(seed))?);
    let n = x.size()[0];
    let stacked = Tensor::stack(&cols, 1); // [n, cols, 1, h, w]
    Ok(stacked.reshape([n * cols.len() as i64, 1, SIDE as i64, SIDE as i64]))
}

/// The number of columns of [`strip_grid`].
pub const STRIP_COLUMNS: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> Tensor {
        let x = Tensor::zeros([4, 1, 32, 32], (Kind::Float, Device::Cpu));
        let _ = x.narrow(2, 8, 16).narrow(3, 14, 4).fill_(1.0);
        x
    }

    #[test]
    fn filters_stay_in_range_change_the_image_and_repeat() {
        for style in Style::ALL {
            let x = digits();
            let a = style.apply(&x, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
            let b = style.apply(&x, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
            assert_eq!(a.size(), x.size());
            assert!(a.equal(&b), "{style}: seeded filters repeat");
            let (lo, hi) = (a.min().double_value(&[]), a.max().double_value(&[]));
            assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi), "{style}: [{lo}, {hi}]");
            let change = (&a - &x).abs().mean(Kind::Float).double_value(&[]);
            assert!(change > 0.01, "{style} changes the image: {change}");
            assert_eq!(style.name().parse::<Style>().unwrap(), style);
        }
        assert!("snow".parse::<Style>().unwrap_err().to_string().contains("fog, rain and thick"));
        let err = Style::Fog
            .apply(&Tensor::zeros([2, 32], (Kind::Float, Device::Cpu)), &mut ChaCha8Rng::seed_from_u64(0));
        assert!(err.unwrap_err().to_string().contains("[n, 1, h, w]"));
    }

    #[test]
    fn a_translator_card_has_an_image_and_a_strength_and_matches_gcert_core() {
        let vs = VarStore::new(Device::Cpu);
        let t = translator(vs.root(), "t", 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let card = dir.path().join("t.toml");
        t.save_card(&card, false).unwrap();
        let net = gcert_core::Network::load(&card).unwrap();
        assert_eq!(net.input_shapes(), &[vec![1, 32, 32], vec![1]]);
        assert_eq!(net.output_shape(), &[1, 32, 32]);
        let x = Tensor::rand([1, 1, 32, 32], (Kind::Float, Device::Cpu));
        for alpha in [0.0, 0.4, 1.0] {
            let ours = Vec::<f64>::try_from(
                translate(&t, &x, alpha, false).unwrap().to_kind(Kind::Double).flatten(0, -1),
            )
            .unwrap();
            let mut input = Vec::<f64>::try_from(x.to_kind(Kind::Double).flatten(0, -1)).unwrap();
            input.push(alpha);
            let core = net.forward(&input, 1).unwrap();
            let worst = ours.iter().zip(&core).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "α = {alpha}: {worst}");
        }
    }

    #[test]
    fn a_short_run_learns_identity_resumes_and_reports() {
        let data = Dataset::rotated_squares(8);
        let cfg = StyleConfig {
            iters: 6,
            batch: 4,
            width: 4,
            critic_width: 4,
            log_every: 3,
            checkpoint_every: 3,
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint::new(dir.path().join("ck"));
        let mut lines = Vec::new();
        let full =
            train_style(&cfg, &data, Device::Cpu, &[], Some(&ck), &mut |l: &str| lines.push(l.to_string()))
                .unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(full.report.identity.is_finite() && full.report.adversarial.is_finite());
        // A second run with the same checkpoint folder finds it complete and trains nothing more.
        let again = train_style(&cfg, &data, Device::Cpu, &[], Some(&ck), &mut |_: &str| {}).unwrap();
        let x = data.images.narrow(0, 0, 2);
        let a = translate(&full.forward, &x, 0.5, false).unwrap();
        let b = translate(&again.forward, &x, 0.5, false).unwrap();
        assert!(a.allclose(&b, 0.0, 0.0, false));
        let other = StyleConfig { style: Style::Rain, ..cfg };
        let err = train_style(&other, &data, Device::Cpu, &[], Some(&ck), &mut |_: &str| {}).unwrap_err();
        assert!(err.to_string().contains("another configuration"), "{err}");
    }
}
