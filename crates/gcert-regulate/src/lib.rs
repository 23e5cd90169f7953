//! Continuity regulation (paper Alg. 1, docs/mathematics.md §7): an extra generator loss that makes
//! a latent segment map to (close to) the straight, evenly paced path between its two end images.
//!
//! For latents `z1, z2` drawn from the standard normal prior and `γ ~ U(0, 1)` per pair, with
//! `z_γ = (1 − γ) z1 + γ z2`, the term is
//!
//! ```text
//! L = λ · mean ‖ G(z_γ) − ((1 − f(γ)) G(z1) + f(γ) G(z2)) ‖²,     f(γ) = γ by default
//! ```
//!
//! (the published artifact has the sign of the `G(z1)` term wrong; this is the corrected form). [`Continuity`]
//! implements gcert-torch's [`GeneratorLoss`], so every trainer that takes extra terms regulates with it
//! unchanged; [`continuity_loss`] is the unweighted term on given latents.
//!
//! ```
//! use gcert_regulate::Continuity;
//! use gcert_torch::models;
//! use gcert_torch::objective::{generator_objective, GeneratorLoss, GeneratorStep};
//! use tch::{nn::VarStore, Device, Kind, Tensor};
//!
//! let vs = VarStore::new(Device::Cpu);
//! let g = models::generator(vs.root(), 4, [4, 4, 2], "g", 0);
//! let z = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
//! let fake = g.forward(&z, true)?;
//! let step = GeneratorStep { generator: &g, z: &z, fake: &fake, iteration: 0 };
//! let extra: Vec<Box<dyn GeneratorLoss>> = vec![Box::new(Continuity::new(100.0, 7)?)];
//! let (total, parts) = generator_objective(Tensor::from(0.0f32), &step, &extra)?;
//! assert_eq!(parts[0].0, "continuity");
//! assert!(parts[0].1 > 0.0, "a random conv generator is not affine");
//! total.backward();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use gcert_torch::nn::Net;
use gcert_torch::objective::{GeneratorLoss, GeneratorStep, StrengthLoss, StrengthStep};
use gcert_torch::random;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// What can go wrong while configuring or evaluating the continuity term.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting of the term (weight, number of pairs) that is out of range.
    #[error("continuity: {0}")]
    Config(String),
    /// Latents, interpolation weights or a pace whose shapes or values do not fit.
    #[error("continuity: {0}")]
    Input(String),
    #[error(transparent)]
    Model(#[from] gcert_torch::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for gcert_torch::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Model(e) => e,
            Error::Torch(e) => gcert_torch::Error::Torch(e),
            other => gcert_torch::Error::Input(other.to_string()),
        }
    }
}

/// The pace `f` of the target path: where along the straight line from `G(z1)` to `G(z2)` the image of
/// `z_γ` should be. Pluggable so that a generator can be asked for another pacing than the even one.
pub trait Pace: std::fmt::Debug + Send + Sync {
    /// A short name for reports.
    fn name(&self) -> &str;
    /// `f(γ)` elementwise, with the shape of `gamma` (`[n]`, values in `[0, 1]`).
    fn pace(&self, gamma: &Tensor) -> Tensor;
}

/// The even pace `f(γ) = γ` (the paper's choice).
#[derive(Debug, Clone, Copy, Default)]
pub struct EvenPace;

impl Pace for EvenPace {
    fn name(&self) -> &str {
        "even"
    }
    fn pace(&self, gamma: &Tensor) -> Tensor {
        gamma.shallow_clone()
    }
}

/// How the squared deviations are averaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// The mean over every output element (pixel) of every pair: what docs/mathematics.md §7's λ refers to.
    #[default]
    PerElement,
    /// The mean over pairs of the squared norm `‖·‖²` (the per-element mean times the output size).
    PerSample,
}

/// The unweighted continuity term on given latents `z1, z2` (`[n, ...latent]`) and interpolation weights
/// `gamma` (`[n]`, in `[0, 1]`).
///
/// The latents and `gamma` are detached, so the gradient reaches only the generator's variables. The three
/// batches go through the generator as one batch of `3n`, so that in training mode (`train = true`) all of
/// them are normalised with the same batch statistics and the term measures one function; batch-norm running
/// statistics are updated by that pass as by any training-mode pass.
pub fn continuity_loss(
    generator: &Net,
    z1: &Tensor,
    z2: &Tensor,
    gamma: &Tensor,
    pace: &dyn Pace,
    reduction: Reduction,
    train: bool,
) -> Result<Tensor> {
    let shape = z1.size();
    if shape.len() < 2 || shape[0] == 0 {
        return Err(Error::Input(format!(
            "z1 must be a non-empty batch [n, ...latent], found shape {shape:?}"
        )));
    }
    if z2.size() != shape {
        return Err(Error::Input(format!("z1 and z2 differ in shape: {shape:?} against {:?}", z2.size())));
    }
    let n = shape[0];
    if gamma.size() != [n] {
        return Err(Error::Input(format!("gamma must have shape [{n}], found {:?}", gamma.size())));
    }
    let (lo, hi) = (gamma.min().double_value(&[]), gamma.max().double_value(&[]));
    if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) {
        return Err(Error::Input(format!("gamma must lie in [0, 1], found values in [{lo}, {hi}]")));
    }
    let (z1, z2) = (z1.detach(), z2.detach());
    let gamma = gamma.detach().to_kind(z1.kind()).to_device(z1.device());
    let f = pace.pace(&gamma);
    if f.size() != [n] {
        return Err(Error::Input(format!(
            "pace '{}' must return shape [{n}], found {:?}",
            pace.name(),
            f.size()
        )));
    }

    let column = |t: &Tensor, dims: usize| {
        let mut s = vec![n];
        s.resize(dims, 1);
        t.reshape(s.as_slice())
    };
    let g = column(&gamma, shape.len());
    let z_gamma = &z1 * (1.0 - &g) + &z2 * &g;
    let out = generator.forward(&Tensor::f_cat(&[&z1, &z2, &z_gamma], 0)?, train)?;
    let parts = out.f_split(n, 0)?;
    let [g1, g2, g_gamma] = parts.as_slice() else {
        return Err(Error::Input(format!(
            "the generator returned {} samples for a batch of {}",
            out.size().first().copied().unwrap_or(0),
            3 * n
        )));
    };
    let f = column(&f, out.dim());
    let target = g1 * (1.0 - &f) + g2 * &f;
    let sq = g_gamma.f_sub(&target)?.square();
    Ok(match reduction {
        Reduction::PerElement => sq.mean(sq.kind()),
        Reduction::PerSample => sq.flatten(1, -1).sum_dim_intlist(1, false, sq.kind()).mean(sq.kind()),
    })
}

/// The weighted continuity term as a generator loss: each step draws its own pairs from the prior with a
/// ChaCha stream seeded by `(seed, iteration)` (independent of the trainer's latents), so that runs repeat
/// exactly and a run resumed from a checkpoint draws what the uninterrupted run would have.
#[derive(Debug)]
pub struct Continuity {
    weight: f64,
    pairs: Option<i64>,
    pace: Box<dyn Pace>,
    reduction: Reduction,
    seed: u64,
}

impl Continuity {
    /// The term with weight `λ = weight` (finite, `≥ 0`), the even pace, the per-element mean, and as many
    /// pairs per step as the step has latents.
    pub fn new(weight: f64, seed: u64) -> Result<Self> {
        if !weight.is_finite() || weight < 0.0 {
            return Err(Error::Config(format!(
                "the weight λ must be finite and non-negative, found {weight}"
            )));
        }
        Ok(Continuity {
            weight,
            pairs: None,
            pace: Box::new(EvenPace),
            reduction: Reduction::default(),
            seed,
        })
    }

    /// Draws `pairs` pairs per step instead of one per latent of the step.
    pub fn with_pairs(mut self, pairs: usize) -> Result<Self> {
        let n = i64::try_from(pairs).ok().filter(|&n| n > 0);
        self.pairs = Some(n.ok_or_else(|| Error::Config(format!("pairs must be positive, found {pairs}")))?);
        Ok(self)
    }

    /// Replaces the pace `f`.
    pub fn with_pace(mut self, pace: impl Pace + 'static) -> Self {
        self.pace = Box::new(pace);
        self
    }

    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The weighted term for step `iteration` of a generator, with the latent shape, kind and device of `z`
    /// (`[batch, ...latent]`).
    pub fn weighted(&self, generator: &Net, z: &Tensor, iteration: u64, train: bool) -> Result<Tensor> {
        let size = z.size();
        if size.len() < 2 || size[0] == 0 {
            return Err(Error::Input(format!("latents must be a non-empty batch, found shape {size:?}")));
        }
        let n = self.pairs.unwrap_or(size[0]);
        let mut shape = vec![n];
        shape.extend_from_slice(&size[1..]);
        let (z1, z2, gamma) = {
            let mut rng = ChaCha8Rng::seed_from_u64(
                self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(iteration) ^ 0x000C_0471_4017,
            );
            let device = z.device();
            let z1 = random::normal(&mut rng, &shape, device);
            let z2 = random::normal(&mut rng, &shape, device);
            let gamma = random::uniform(&mut rng, &[n], 0.0, 1.0, device);
            (z1, z2, gamma)
        };
        let kind = z.kind();
        let (z1, z2) = (z1.to_kind(kind), z2.to_kind(kind));
        let loss = continuity_loss(generator, &z1, &z2, &gamma, self.pace.as_ref(), self.reduction, train)?;
        Ok(loss * self.weight)
    }
}

impl GeneratorLoss for Continuity {
    fn name(&self) -> &str {
        "continuity"
    }

    fn tag(&self) -> String {
        let pairs = self.pairs.map_or_else(|| "batch".to_string(), |n| n.to_string());
        let seed = self.seed;
        format!(
            "continuity(lambda={}, pairs={pairs}, pace={}, reduction={:?}, seed={seed})",
            self.weight,
            self.pace.name(),
            self.reduction
        )
    }

    fn loss(&self, step: &GeneratorStep<'_>) -> gcert_torch::Result<Tensor> {
        Ok(self.weighted(step.generator, step.z, step.iteration, true)?)
    }
}

/// Continuity in a style translator's strength (paper §5.4.3, docs/stylized.md): with `γ ~ U(0, 1)` per
/// image,
///
/// ```text
/// L = λ · mean ‖ T(x, γ) − ((1 − γ) T(x, 0) + γ T(x, 1)) ‖²
/// ```
///
/// so that the segment `α ∈ [0, 1]` at a fixed image maps to (close to) the straight, evenly paced path
/// between the image and its fully styled version. `T(x, 0)` and `T(x, 1)` are the trainer's own outputs of
/// the step (differentiable, as in the latent term); each step and translator draws its `γ` from a ChaCha
/// stream seeded by `(seed, iteration, direction)`, so runs repeat and resume exactly.
#[derive(Debug)]
pub struct StrengthContinuity {
    weight: f64,
    seed: u64,
}

impl StrengthContinuity {
    /// The term with weight `λ = weight` (finite, `≥ 0`).
    pub fn new(weight: f64, seed: u64) -> Result<Self> {
        if !weight.is_finite() || weight < 0.0 {
            return Err(Error::Config(format!(
                "the weight λ must be finite and non-negative, found {weight}"
            )));
        }
        Ok(StrengthContinuity { weight, seed })
    }

    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The unweighted term: the per-element mean of `(T(x, γ) − ((1 − γ) at0 + γ at1))²`.
    pub fn unweighted(
        translator: &Net,
        x: &Tensor,
        at0: &Tensor,
        at1: &Tensor,
        gamma: &Tensor,
    ) -> Result<Tensor> {
        let n = x.size()[0];
        if gamma.size() != [n] || at0.size() != at1.size() || at0.size()[0] != n {
            return Err(Error::Input(format!(
                "γ must be [{n}] and T(x, 0), T(x, 1) batches of {n}, found {:?}, {:?}, {:?}",
                gamma.size(),
                at0.size(),
                at1.size()
            )));
        }
        let gamma = gamma.detach().to_kind(x.kind()).to_device(x.device());
        let mid = translator.forward_multi_before_clamp(&[x, &gamma.reshape([n, 1])], true)?;
        let g = gamma.reshape([n, 1, 1, 1]);
        let target = at0 * (1.0 - &g) + at1 * &g;
        Ok(mid.f_sub(&target)?.square().mean(mid.kind()))
    }
}

impl StrengthLoss for StrengthContinuity {
    fn name(&self) -> &str {
        "continuity"
    }

    fn tag(&self) -> String {
        format!("strength-continuity(lambda={}, seed={})", self.weight, self.seed)
    }

    fn loss(&self, step: &StrengthStep<'_>) -> gcert_torch::Result<Tensor> {
        let n = step.x.size()[0];
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(step.iteration)
                ^ (0x57_4E17 + step.direction),
        );
        let gamma = random::uniform(&mut rng, &[n], 0.0, 1.0, step.x.device());
        Ok(Self::unweighted(step.translator, step.x, step.at0, step.at1, &gamma)? * self.weight)
    }
}

pub mod config;

#[cfg(test)]
mod tests;
