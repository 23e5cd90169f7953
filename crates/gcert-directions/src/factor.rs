//! Low-rank factorization of `M = JᵀJ`: robust PCA, then the SVD of the low-rank part.
//!
//! `rank(L)` counts the singular values of `L` above `rank_tol · σ₁(L)`. The default `rank_tol = 1e-6` sits ten
//! times above the solver's stopping tolerance (`1e-7`): components of `L` smaller than that are within the
//! residual the solver leaves, so counting them would make the rank depend on when the solver stopped. The
//! singular-value thresholding itself sets the dropped components to exact zeros; the recomputed SVD shows them
//! at the level of rounding (about `1e-16 σ₁`), far below the tolerance.

use gcert_core::Network;
use ndarray::{Array2, ArrayView2, Axis, Slice};
use ndarray_linalg::{JobSvd, SVDDC};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use crate::error::{check_finite, Error, Result};
use crate::jacobian::JacobianPlan;
use crate::rpca::{frobenius, robust_pca, RpcaParams};

/// Parameters of the factorization.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FactorParams {
    pub rpca: RpcaParams,
    /// Relative tolerance for the rank of `L` (default `1e-6`, see the module documentation).
    pub rank_tol: f64,
}

impl Default for FactorParams {
    fn default() -> Self {
        FactorParams { rpca: RpcaParams::default(), rank_tol: 1e-6 }
    }
}

/// How the robust PCA went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RpcaSummary {
    pub lambda: f64,
    pub mu: f64,
    pub iterations: usize,
    pub residual: f64,
    pub converged: bool,
    /// `‖S‖_F / ‖M‖_F`: how much of `M` the sparse part took.
    pub sparse_share: f64,
}

/// `M = L + S`, `L = U Σ Vᵀ`: the right-singular vectors of `L` and how many of them move the image.
/// Serialises as `{rank, singular_values, rpca}` (the report of `gcert directions --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Factorization {
    /// The number of independent directions, `rank(L)`.
    pub rank: usize,
    /// Every singular value of `L`, in decreasing order.
    pub singular_values: Vec<f64>,
    /// `Vᵀ` (`k × k`): its first `rank` rows are the directions, the rest span the null space of `L`. Each row's
    /// sign is fixed so that its largest-magnitude entry is positive.
    #[serde(skip)]
    pub vt: Array2<f64>,
    pub rpca: RpcaSummary,
}

impl Factorization {
    /// The directions as rows (`rank × k`), orthonormal.
    pub fn directions(&self) -> ArrayView2<'_, f64> {
        self.vt.slice_axis(Axis(0), Slice::from(..self.rank))
    }

    /// An orthonormal basis of the null space of `L` as rows (`(k − rank) × k`).
    pub fn null_space(&self) -> ArrayView2<'_, f64> {
        self.vt.slice_axis(Axis(0), Slice::from(self.rank..))
    }
}

/// Robust PCA of a square matrix `m`, then the SVD of its low-rank part.
pub fn factorize(m: &Array2<f64>, params: &FactorParams) -> Result<Factorization> {
    if !(params.rank_tol > 0.0 && params.rank_tol < 1.0) {
        return Err(Error::input(format!("the rank tolerance must be in (0, 1), found {}", params.rank_tol)));
    }
    if m.nrows() != m.ncols() || m.is_empty() {
        return Err(Error::input(format!("factorize needs a non-empty square matrix, found {:?}", m.dim())));
    }
    let r = robust_pca(m, &params.rpca)?;
    let (_, sigma, vt) = r.low_rank.svddc(JobSvd::Some).map_err(|e| Error::linalg("svd (gesdd)", e))?;
    let mut vt = vt.expect("vt requested");
    for mut row in vt.rows_mut() {
        let big = row.iter().copied().fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        if big < 0.0 {
            row *= -1.0;
        }
    }
    let top = sigma.first().copied().unwrap_or(0.0);
    let rank = sigma.iter().filter(|&&v| top > 0.0 && v > params.rank_tol * top).count();
    let norm_m = frobenius(m);
    let sparse_share = if norm_m > 0.0 { frobenius(&r.sparse) / norm_m } else { 0.0 };
    Ok(Factorization {
        rank,
        singular_values: sigma.to_vec(),
        vt,
        rpca: RpcaSummary {
            lambda: r.lambda,
            mu: r.mu,
            iterations: r.iterations,
            residual: r.residual,
            converged: r.converged,
            sparse_share,
        },
    })
}

/// Latent points for global directions: `z` itself, then `samples − 1` draws from the standard normal prior
/// (seeded, so the directions are reproducible). Returns `samples × k` values.
pub fn sample_latents(z: &[f64], samples: usize, seed: u64) -> Result<Vec<f64>> {
    if samples == 0 {
        return Err(Error::input("the number of latent samples must be at least 1"));
    }
    check_finite("the latent point", z)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = z.to_vec();
    out.extend((0..(samples - 1) * z.len()).map(|_| -> f64 { StandardNormal.sample(&mut rng) }));
    Ok(out)
}

/// Directions of `net` from `JᵀJ` averaged over `m` latent points (`zs`, `m × k`): with one point, the
/// directions at that point; with many, global directions.
pub fn directions(net: &Network, zs: &[f64], m: usize, params: &FactorParams) -> Result<Factorization> {
    let gram = JacobianPlan::new(net).mean_gram(zs, m, None)?;
    factorize(&gram, params)
}
