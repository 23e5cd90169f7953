//! GAN inversion: the latent point of a real image under a piecewise-linear generator, in pure Rust.
//!
//! Minimises `‖G(z) − x‖² / n + prior · ‖z‖² / k` by Levenberg–Marquardt with the generator's exact Jacobian
//! ([`JacobianPlan`], exact on `z`'s affine piece), from `z = 0` and seeded prior draws; the start with the
//! smallest reconstruction error wins. The damped normal equations are solved by LAPACK's Cholesky
//! factorisation (`ndarray-linalg`); a step whose system is not positive definite raises the damping.

use gcert_core::Network;
use ndarray::{Array1, Array2};
use ndarray_linalg::SolveC;

use crate::error::{Error, Result};
use crate::factor::sample_latents;
use crate::jacobian::JacobianPlan;

/// Settings of an inversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvertParams {
    /// Starting points: `z = 0` and seeded prior draws (at least 1).
    pub restarts: usize,
    /// Levenberg–Marquardt iterations per start.
    pub iters: usize,
    /// Weight of the Gaussian prior term (finite, not negative).
    pub prior: f64,
    pub seed: u64,
}

impl Default for InvertParams {
    fn default() -> Self {
        InvertParams { restarts: 8, iters: 60, prior: 1e-3, seed: 0 }
    }
}

/// The result of one inversion (one type with the libtorch inversion of `gcert-torch`).
pub use gcert_core::measures::Inversion;

fn objective(net: &Network, z: &[f64], x: &[f64], prior: f64) -> Result<(f64, f64, Vec<f64>)> {
    let g = net.forward(z, 1)?;
    let r: Vec<f64> = g.iter().zip(x).map(|(a, b)| a - b).collect();
    let mse = r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64;
    let reg = prior * z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64;
    Ok((mse + reg, mse, r))
}

/// Inverts `net` for the image `x` (flat, `net.output_len()` values).
pub fn invert(net: &Network, x: &[f64], params: InvertParams) -> Result<Inversion> {
    let InvertParams { restarts, iters, prior, seed } = params;
    if net.input_shapes().len() != 1 || net.input_shapes()[0].len() != 1 {
        return Err(Error::file(
            net.path(),
            format!("inversion needs a generator with a flat latent input, found {:?}", net.input_shapes()),
        ));
    }
    if restarts == 0 {
        return Err(Error::input("--restarts must be at least 1"));
    }
    if !(prior.is_finite() && prior >= 0.0) {
        return Err(Error::input(format!("--prior must be at least 0 and finite, found {prior}")));
    }
    if x.len() != net.output_len() {
        return Err(Error::input(format!(
            "the image has {} values but the generator outputs {}",
            x.len(),
            net.output_len()
        )));
    }
    let plan = JacobianPlan::new(net);
    let (k, n) = (plan.latent_len(), plan.output_len());
    let starts = sample_latents(&vec![0.0; k], restarts, seed)?;
    let mut best: Option<Inversion> = None;
    let mut restart_mse = Vec::with_capacity(restarts);
    for s in 0..restarts {
        let mut z = starts[s * k..(s + 1) * k].to_vec();
        let (mut f, mut mse, mut r) = objective(net, &z, x, prior)?;
        let mut lambda = 1e-3;
        for _ in 0..iters {
            let j = plan.jacobian(&z)?;
            // Normal equations of the damped Gauss–Newton step: (JᵀJ/n + p/k I + λ diag) δ = −(Jᵀr/n + p/k z).
            let mut a: Array2<f64> = j.t().dot(&j) / n as f64;
            let mut b: Array1<f64> = -(j.t().dot(&Array1::from_vec(r.clone())) / n as f64);
            for p in 0..k {
                a[[p, p]] += prior / k as f64;
                b[p] -= prior / k as f64 * z[p];
            }
            let mut improved = false;
            for _ in 0..8 {
                let mut damped = a.clone();
                for p in 0..k {
                    damped[[p, p]] += lambda * (a[[p, p]] + 1e-9);
                }
                let Ok(d) = damped.solvec(&b) else {
                    lambda *= 4.0;
                    continue;
                };
                let trial: Vec<f64> = z.iter().zip(&d).map(|(a, b)| a + b).collect();
                let (ft, mt, rt) = objective(net, &trial, x, prior)?;
                if ft < f {
                    (z, f, mse, r) = (trial, ft, mt, rt);
                    lambda = (lambda / 3.0).max(1e-9);
                    improved = true;
                    break;
                }
                lambda *= 4.0;
            }
            if !improved {
                break;
            }
        }
        restart_mse.push(mse);
        if best.as_ref().is_none_or(|b| mse < b.mse) {
            best = Some(Inversion { z, mse, restart_mse: Vec::new() });
        }
    }
    let mut best = best.expect("at least one restart");
    best.restart_mse = restart_mse;
    Ok(best)
}

#[cfg(test)]
mod tests {
    use gcert_core::builder::CardBuilder;

    use super::*;

    #[test]
    fn recovers_a_latent_the_generator_can_reach() {
        let net =
            CardBuilder::new("g", &[4], 3).linear(32).relu().linear(16).clamp(0.0, 1.0).network().unwrap();
        let z_true = [0.3, -0.5, 0.8, 0.1];
        let x = net.forward(&z_true, 1).unwrap();
        let params = InvertParams { restarts: 4, iters: 60, prior: 1e-6, seed: 0 };
        let inv = invert(&net, &x, params).unwrap();
        assert_eq!(inv.restart_mse.len(), 4);
        assert!(inv.mse < 1e-8, "mse {}", inv.mse);
        let y = net.forward(&inv.z, 1).unwrap();
        let d = y.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-3, "{d}");

        let classifier = CardBuilder::new("c", &[1, 4, 4], 3).flatten().linear(2).network().unwrap();
        let one = InvertParams { restarts: 1, iters: 1, prior: 0.0, seed: 0 };
        let err = invert(&classifier, &[0.0; 2], one).unwrap_err().to_string();
        assert!(err.contains("flat latent input"), "{err}");
        let none = InvertParams { restarts: 0, ..one };
        assert!(invert(&net, &x, none).unwrap_err().to_string().contains("--restarts"));
        let nan = InvertParams { prior: f64::NAN, ..one };
        assert!(invert(&net, &x, nan).unwrap_err().to_string().contains("--prior"));
        assert!(invert(&net, &x[1..], one).unwrap_err().to_string().contains("the image has 15 values"));
    }
}
