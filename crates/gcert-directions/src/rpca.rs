//! Robust PCA by principal component pursuit: `M = L + S` with `L` low-rank and `S` sparse.
//!
//! Minimises `‖L‖_* + λ‖S‖_1` subject to `L + S = M` by the alternating-direction method of multipliers
//! (the augmented Lagrangian of Candès, Li, Ma and Wright, "Robust principal component analysis?", 2011):
//!
//! ```text
//! L ← SVT_{1/μ}(M − S + Y/μ)        singular-value thresholding
//! S ← shrink_{λ/μ}(M − L + Y/μ)     entrywise soft thresholding
//! Y ← Y + μ (M − L − S)
//! ```
//!
//! until `‖M − L − S‖_F ≤ tol · ‖M‖_F`.
//!
//! # Parameters, and why the default λ is not 1/60
//!
//! The paper follows LowRankGAN's `λ = 1/60`, made for StyleGAN's `k = 512`. For a `k × k` matrix and
//! `λ ≤ 1/k` that choice is degenerate: every matrix has `‖L‖_1 ≤ k ‖L‖_F ≤ k ‖L‖_*`, so
//! `‖L‖_* + λ‖M − L‖_1 ≥ λ‖M‖_1 + (1 − λk)‖L‖_* ≥ λ‖M‖_1`, and `L = 0, S = M` is an optimum. With `k = 50`
//! (the MNIST generator) or `k = 100` the solver indeed returns `L = 0` (measured: rank 0 on every synthetic
//! generator tried), or, with LowRankGAN's larger `μ` (NumPy's induced 1-norm), whatever the early stop leaves
//! (rank 50 of 50 after 2 iterations on one random DCGAN, rank 4 of 100 after 892 on another). The default here
//! is therefore Candès et al.'s `λ = 1/√max(n₁, n₂)`, which recovers planted ranks exactly (see the tests);
//! `λ = 1/60` stays available through [`RpcaParams::lambda`]. Other defaults (docs/mathematics.md §6.4):
//! `μ = n₁n₂/(4‖M‖_1)` (fixed) with `‖·‖_1` the entrywise ℓ1 norm (as in the objective), `tol = 1e-7`. In
//! exact arithmetic `μ` changes only how fast the iteration reaches the optimum; since the stop tests the
//! primal residual alone, a much larger `μ` (or a growing one, as in Lin et al.'s inexact ALM) stops earlier and
//! returns higher ranks (measured: 71 instead of 52 on a random `k = 100` DCGAN with `μ` growing 1.5× per
//! iteration), so the default is kept fixed. The problem is scale-equivariant: scaling `M` scales `L` and `S`
//! alike.

use ndarray::{Array2, Axis, Slice, Zip};
use ndarray_linalg::{JobSvd, SVDDC};
use serde::Serialize;

use crate::error::{Error, Result};

/// Parameters of principal component pursuit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RpcaParams {
    /// Weight of the sparse part, `λ`; `None` chooses `1/√max(n₁, n₂)` (see the module documentation).
    pub lambda: Option<f64>,
    /// Penalty parameter `μ`; `None` chooses `n₁n₂/(4‖M‖_1)`.
    pub mu: Option<f64>,
    /// Relative residual at which to stop, `‖M − L − S‖_F ≤ tol ‖M‖_F` (default `1e-7`).
    pub tol: f64,
    /// Iteration limit (default 10 000); reaching it is reported as not converged, not as an error.
    pub max_iter: usize,
}

impl Default for RpcaParams {
    fn default() -> Self {
        RpcaParams { lambda: None, mu: None, tol: 1e-7, max_iter: 10_000 }
    }
}

impl RpcaParams {
    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |v: f64| v > 0.0 && v.is_finite();
        for (name, v) in [("lambda", self.lambda), ("mu", self.mu)] {
            if let Some(v) = v.filter(|&v| !positive(v)) {
                return Err(Error::input(format!("rpca {name} must be positive, found {v}")));
            }
        }
        if !positive(self.tol) {
            return Err(Error::input(format!("rpca tolerance must be positive, found {}", self.tol)));
        }
        if self.max_iter == 0 {
            return Err(Error::input("rpca needs at least one iteration"));
        }
        Ok(())
    }
}

/// The result of robust PCA.
#[derive(Debug, Clone)]
pub struct Rpca {
    /// The low-rank part.
    pub low_rank: Array2<f64>,
    /// The sparse part.
    pub sparse: Array2<f64>,
    /// The `λ` used.
    pub lambda: f64,
    /// The `μ` used.
    pub mu: f64,
    pub iterations: usize,
    /// `‖M − L − S‖_F / ‖M‖_F` at the end (0 for a zero `M`).
    pub residual: f64,
    pub converged: bool,
}

/// Robust PCA of `m` by principal component pursuit; see the module documentation.
pub fn robust_pca(m: &Array2<f64>, params: &RpcaParams) -> Result<Rpca> {
    params.validate()?;
    if let Some(v) = m.iter().find(|v| !v.is_finite()) {
        return Err(Error::input(format!("robust pca got a matrix with a non-finite entry ({v})")));
    }
    let (n1, n2) = m.dim();
    let lambda = params.lambda.unwrap_or(1.0 / (n1.max(n2) as f64).sqrt());
    let norm_f = frobenius(m);
    let zero = Array2::zeros((n1, n2));
    if norm_f == 0.0 {
        return Ok(Rpca {
            low_rank: zero.clone(),
            sparse: zero,
            lambda,
            mu: 0.0,
            iterations: 0,
            residual: 0.0,
            converged: true,
        });
    }
    let norm_1: f64 = m.iter().map(|v| v.abs()).sum();
    let mu = params.mu.unwrap_or((n1 * n2) as f64 / (4.0 * norm_1));
    let inv_mu = 1.0 / mu;
    let shrink_at = lambda * inv_mu;
    let mut l = zero.clone();
    let mut s = zero.clone();
    let mut y = zero.clone();
    let mut work = zero;
    let mut residual = f64::INFINITY;
    let mut iterations = 0;
    while iterations < params.max_iter {
        iterations += 1;
        Zip::from(&mut work).and(m).and(&s).and(&y).for_each(|w, &m, &s, &y| *w = m - s + inv_mu * y);
        l = svt(&work, inv_mu)?;
        Zip::from(&mut s)
            .and(m)
            .and(&l)
            .and(&y)
            .for_each(|s, &m, &l, &y| *s = shrink(m - l + inv_mu * y, shrink_at));
        let mut r2 = 0.0;
        Zip::from(&mut y).and(m).and(&l).and(&s).for_each(|y, &m, &l, &s| {
            let r = m - l - s;
            r2 += r * r;
            *y += mu * r;
        });
        residual = r2.sqrt() / norm_f;
        if residual <= params.tol {
            break;
        }
    }
    Ok(Rpca { low_rank: l, sparse: s, lambda, mu, iterations, residual, converged: residual <= params.tol })
}

pub(crate) fn frobenius(a: &Array2<f64>) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn shrink(x: f64, tau: f64) -> f64 {
    x.signum() * (x.abs() - tau).max(0.0)
}

/// Singular-value thresholding through the SVD: `U max(Σ − τ, 0) Vᵀ`.
fn svt(a: &Array2<f64>, tau: f64) -> Result<Array2<f64>> {
    let (u, sigma, vt) = a.svddc(JobSvd::Some).map_err(|e| Error::linalg("svd (gesdd)", e))?;
    let (u, vt) = (u.expect("u requested"), vt.expect("vt requested"));
    let kept = sigma.iter().take_while(|&&s| s > tau).count();
    let mut us = u.slice_axis(Axis(1), Slice::from(..kept)).to_owned();
    for (j, mut col) in us.columns_mut().into_iter().enumerate() {
        col *= sigma[j] - tau;
    }
    Ok(us.dot(&vt.slice_axis(Axis(0), Slice::from(..kept))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholding_drops_small_singular_values_and_shrinks_the_rest() {
        // diag(3, 1) rotated: singular values 3 and 1; thresholding at 2 leaves one value, 1.
        let (c, s) = (0.6, 0.8);
        let q = Array2::from_shape_vec((2, 2), vec![c, -s, s, c]).unwrap();
        let d = Array2::from_shape_vec((2, 2), vec![3.0, 0.0, 0.0, 1.0]).unwrap();
        let a = q.dot(&d).dot(&q.t());
        let l = svt(&a, 2.0).unwrap();
        let expected = Array2::from_shape_fn((2, 2), |(i, j)| q[[i, 0]] * q[[j, 0]]);
        assert!(frobenius(&(&l - &expected)) < 1e-12, "{l}");
    }

    #[test]
    fn the_default_lambda_keeps_a_rank_one_matrix_in_the_low_rank_part() {
        let v = Array2::from_shape_fn((20, 1), |(i, _)| 1.0 + (i % 3) as f64);
        let m = v.dot(&v.t());
        let r = robust_pca(&m, &RpcaParams::default()).unwrap();
        assert!(r.converged);
        assert!(frobenius(&r.sparse) < 1e-6 * frobenius(&m), "{}", frobenius(&r.sparse));
    }

    #[test]
    fn zero_matrix_is_its_own_decomposition() {
        let r = robust_pca(&Array2::zeros((3, 3)), &RpcaParams::default()).unwrap();
        assert!(r.converged);
        assert_eq!(r.iterations, 0);
        assert!(r.low_rank.iter().chain(r.sparse.iter()).all(|&v| v == 0.0));
    }

    #[test]
    fn non_finite_input_and_bad_parameters_are_errors() {
        let mut m = Array2::eye(3);
        m[[1, 2]] = f64::NAN;
        assert!(robust_pca(&m, &RpcaParams::default()).unwrap_err().to_string().contains("non-finite"));
        let p = RpcaParams { lambda: Some(-1.0), ..RpcaParams::default() };
        assert!(robust_pca(&Array2::eye(3), &p).unwrap_err().to_string().contains("lambda"));
        let p = RpcaParams { max_iter: 0, ..RpcaParams::default() };
        assert!(robust_pca(&Array2::eye(3), &p).unwrap_err().to_string().contains("iteration"));
    }
}
