//! The generator's training objective, in one place that every generator trainer (WGAN-GP, VAE, and later
//! style translators) calls: its own loss plus any number of extra terms.
//!
//! This is the extension point for continuity regulation (docs/mathematics.md §7, issue 5): a term implements
//! [`GeneratorLoss`], receives the generator and the step's latents, and returns its weighted value; the
//! trainers take a list of such terms and never need to change.

use tch::Tensor;

use crate::error::{Error, Result};
use crate::nn::Net;

/// What an extra term sees of one generator step.
#[derive(Debug)]
pub struct GeneratorStep<'a> {
    /// The generator being trained (call `forward(z, true)` for more samples in training mode).
    pub generator: &'a Net,
    /// The latents of this step, `[batch, k]`.
    pub z: &'a Tensor,
    /// `generator(z)` in training mode, `[batch, 1, 32, 32]`.
    pub fake: &'a Tensor,
    /// The trainer's step counter.
    pub iteration: u64,
}

/// An extra term of a generator's objective, already weighted; must be differentiable w.r.t. the
/// generator's variables.
pub trait GeneratorLoss: std::fmt::Debug {
    /// A short name for progress lines and reports.
    fn name(&self) -> &str;
    /// Everything that changes what the term computes (name, weight, settings): checkpoints of a run record
    /// it, so that a run is never resumed under another term. Defaults to the name.
    fn tag(&self) -> String {
        self.name().to_string()
    }
    /// The weighted term for this step (a scalar tensor).
    fn loss(&self, step: &GeneratorStep<'_>) -> Result<Tensor>;
}

/// The full objective: `base` plus every extra term; also returns each extra term's value for logging.
pub fn generator_objective(
    base: Tensor,
    step: &GeneratorStep<'_>,
    extra: &[Box<dyn GeneratorLoss>],
) -> Result<(Tensor, Vec<(String, f64)>)> {
    let mut total = base;
    let mut parts = Vec::with_capacity(extra.len());
    for term in extra {
        let t = term.loss(step)?;
        if t.numel() != 1 {
            return Err(Error::input(format!(
                "generator loss term '{}' must be a scalar, found shape {:?}",
                term.name(),
                t.size()
            )));
        }
        parts.push((term.name().to_string(), t.double_value(&[])));
        total += t;
    }
    Ok((total, parts))
}

/// What an extra term of a style translator's objective sees of one step (crate `style`): the translator,
/// the batch it translated, and its outputs at `α = 0` and `α = 1` (training mode, differentiable).
#[derive(Debug)]
pub struct StrengthStep<'a> {
    /// The translator `T(x, α)` being trained (call `forward_multi(&[x, α], true)` for other strengths).
    pub translator: &'a Net,
    /// The images of this step, `[batch, 1, 32, 32]`.
    pub x: &'a Tensor,
    /// `T(x, 0)` and `T(x, 1)`.
    pub at0: &'a Tensor,
    pub at1: &'a Tensor,
    /// The trainer's step counter.
    pub iteration: u64,
    /// Which translator of the pair (0: `T_XY`, 1: `T_YX`), so that a term can draw its own stream for each.
    pub direction: u64,
}

/// An extra term of a style translator's objective, already weighted (the counterpart of [`GeneratorLoss`]
/// for translators; gcert-regulate's continuity in `α` is one).
pub trait StrengthLoss: std::fmt::Debug {
    fn name(&self) -> &str;
    /// Everything that changes what the term computes; checkpoints record it.
    fn tag(&self) -> String {
        self.name().to_string()
    }
    /// The weighted term for this step (a scalar tensor).
    fn loss(&self, step: &StrengthStep<'_>) -> Result<Tensor>;
}

/// `base` plus every extra term on every step (both translators of a pair); also returns each term's value,
/// summed over the steps, for logging.
pub fn strength_objective(
    base: Tensor,
    steps: &[StrengthStep<'_>],
    extra: &[Box<dyn StrengthLoss>],
) -> Result<(Tensor, Vec<(String, f64)>)> {
    let mut total = base;
    let mut parts = Vec::with_capacity(extra.len());
    for term in extra {
        let mut value = 0.0;
        for step in steps {
            let t = term.loss(step)?;
            if t.numel() != 1 {
                return Err(Error::input(format!(
                    "translator loss term '{}' must be a scalar, found shape {:?}",
                    term.name(),
                    t.size()
                )));
            }
            value += t.double_value(&[]);
            total += t;
        }
        parts.push((term.name().to_string(), value));
    }
    Ok((total, parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models;
    use tch::{nn::VarStore, Device, Kind};

    /// A test term: the mean brightness of the samples, weighted.
    #[derive(Debug)]
    struct Brightness(f64);

    impl GeneratorLoss for Brightness {
        fn name(&self) -> &str {
            "brightness"
        }
        fn loss(&self, step: &GeneratorStep<'_>) -> Result<Tensor> {
            Ok(step.fake.mean(Kind::Float) * self.0)
        }
    }

    #[derive(Debug)]
    struct NotScalar;

    impl GeneratorLoss for NotScalar {
        fn name(&self) -> &str {
            "vector"
        }
        fn loss(&self, step: &GeneratorStep<'_>) -> Result<Tensor> {
            Ok(step.fake.flatten(1, -1))
        }
    }

    #[test]
    fn extra_terms_are_added_reported_and_differentiable() {
        let vs = VarStore::new(Device::Cpu);
        let g = models::generator(vs.root(), 4, [4, 4, 2], "g", 0);
        let z = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        let fake = g.forward(&z, true).unwrap();
        let step = GeneratorStep { generator: &g, z: &z, fake: &fake, iteration: 0 };
        let base = Tensor::from(1.5f32);
        let (total, parts) = generator_objective(base, &step, &[Box::new(Brightness(2.0))]).unwrap();
        let bright = fake.mean(Kind::Float).double_value(&[]);
        assert!((total.double_value(&[]) - (1.5 + 2.0 * bright)).abs() < 1e-6);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0, "brightness");
        total.backward();
        let w = &g.layers[1].params["weight"];
        assert!(w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0, "the term reaches the generator");

        let (t, p) = generator_objective(Tensor::from(0.5f32), &step, &[]).unwrap();
        assert_eq!((t.double_value(&[]), p.len()), (0.5, 0));
        let err = generator_objective(Tensor::from(0.0f32), &step, &[Box::new(NotScalar)]).unwrap_err();
        assert!(err.to_string().contains("'vector' must be a scalar"), "{err}");
    }
}
