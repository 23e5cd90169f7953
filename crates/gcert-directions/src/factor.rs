//! Low-rank factorization of `M = JᵀJ`: robust PCA, then the SVD of the low-rank part.
//!
//! `rank(L)` counts the singular values of `L` above `rank_tol · σ₁(L)`. The default `rank_tol = 1e-6` sits ten
//! times above the solver's stopping tolerance (`1e-7`): components of `L` smaller than that are within the
//! residual the solver leaves, so counting them would make the rank depend on when the solver stopped. The
//! singular-value thresholding itself sets the dropped components to exact zeros; the recomputed SVD shows them
//! at the level of rounding (about `1e-16 σ₁`), far below the tolerance.
//!
//! **Directions never lie about what they move.** Robust PCA splits `M = L + S`, but nothing forces `L` to stay
//! inside the range of `M`: on exactly low-rank Gram matrices the solver can move part of `M` into `S` and put
//! a compensating component into `L` along a direction `M` does not have (a rank-1 `M` has come back as a
//! rank-3 `L`). Such a direction changes no pixel. So `L` is projected onto the numerical range of `M` first —
//! `P = Q Qᵀ` over the eigenvectors of `M` whose eigenvalue exceeds `rank_tol · λ_max(M)` — and the directions
//! are the right-singular vectors of `P L P`. Hence the reported rank never exceeds the numerical rank of `M`,
//! every direction lies in the row space of `J` (for one latent point, `range(JᵀJ)` is the row space of `J`),
//! and every unit direction `d` moves the image: `‖J d‖² = dᵀ M d ≥ rank_tol · λ_max(M)`, i.e.
//! `‖J d‖ ≥ τ ‖J‖₂` with `τ = √rank_tol` (`1e-3` by default; for averaged `M`, the same holds in mean square
//! over the sampled points).
//!
//! **When robust PCA decides, and when `M` does.** Principal component pursuit separates a low-rank part from
//! a *sparse* corruption, and only recovers the split when the low-rank part is of low enough rank and
//! incoherent (Candès et al.). A Gram matrix `JᵀJ` of exact rank `r` is not always such a case: on the
//! generators of `synthetic::low_rank` the split is exact (`S = 0`) up to about `r ≈ k/5`, but above that the
//! solver puts a dense `S` (a third to a half of all entries) beside an `L` of rank about `k/2` whatever `r`
//! is — measured for `k = 4 … 40` and every `r`: `k = 30, r = 30` came back as rank 16. A dense `S` is not
//! sparse corruption; it is the solver trading rank for ℓ1 norm. So the split is kept only when `S` is
//! sparse: when at most [`MAX_SPARSE_SUPPORT`] (10 %) of its entries exceed `10⁻⁶ max |M|`. Otherwise
//! `L = M`, and the numerical rank of `M` decides; [`RpcaSummary::split_kept`] and
//! [`RpcaSummary::sparse_support`] report which happened. On generators of known rank the rank is then
//! exactly `r` for every `1 ≤ r ≤ k`, and the directions span the row space of `J` (property-tested). On
//! the trained MNIST generator (`k = 50`) robust PCA's sparse part is dense at every latent tried (40–48 %
//! of the entries), so the rank is the numerical rank of `JᵀJ` (50, or 47 at one latent), not the 23–24
//! the split alone reported: what a direction moves is ordered by the singular values, not cut off by the
//! solver's `λ`. Local directions keep the split for the background even when its `S` is dense (the least-moving
//! subspace there is a dominant-part question, and its leak is reported), see [`crate::local`].

use gcert_core::Network;
use ndarray::{Array2, ArrayView2, Axis, Slice};
use ndarray_linalg::{Eigh, JobSvd, SVDDC, UPLO};
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
    /// The fraction of the entries of `S` that are not negligible (`|S_ij| > 10⁻⁶ max |M|`).
    pub sparse_support: f64,
    /// Whether robust PCA's split was used (`true`), or its sparse part came out dense (support above
    /// [`MAX_SPARSE_SUPPORT`]) and `M` itself was factorized, its numerical rank deciding (`false`).
    pub split_kept: bool,
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

/// Robust PCA of a square matrix `m`, then the SVD of its low-rank part (projected onto the numerical range
/// of `m`); a dense sparse part hands the decision to `m` itself (see the module documentation).
pub fn factorize(m: &Array2<f64>, params: &FactorParams) -> Result<Factorization> {
    factorize_with(m, params, false)
}

/// [`factorize`]; with `keep_dense`, robust PCA's split is used even when its sparse part is dense (for the
/// background's least-moving subspace of local directions, where a dominant part is what is wanted).
pub(crate) fn factorize_with(
    m: &Array2<f64>,
    params: &FactorParams,
    keep_dense: bool,
) -> Result<Factorization> {
    if !(params.rank_tol > 0.0 && params.rank_tol < 1.0) {
        return Err(Error::input(format!("the rank tolerance must be in (0, 1), found {}", params.rank_tol)));
    }
    if m.nrows() != m.ncols() || m.is_empty() {
        return Err(Error::input(format!("factorize needs a non-empty square matrix, found {:?}", m.dim())));
    }
    let split = sparse_split(m, &params.rpca, keep_dense)?;
    let projected = onto_range(m, &split.rpca.low_rank, params.rank_tol)?;
    let (_, sigma, vt) = projected.svddc(JobSvd::Some).map_err(|e| Error::linalg("svd (gesdd)", e))?;
    let mut vt = vt.expect("vt requested");
    for mut row in vt.rows_mut() {
        let big = row.iter().copied().fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        if big < 0.0 {
            row *= -1.0;
        }
    }
    let top = sigma.first().copied().unwrap_or(0.0);
    let rank = sigma.iter().filter(|&&v| top > 0.0 && v > params.rank_tol * top).count();
    let r = &split.rpca;
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
            sparse_support: split.support,
            split_kept: split.kept,
        },
    })
}

/// Entries of `S` above this fraction of `max |M|` count toward its support (ten times the solver's stopping
/// tolerance: smaller entries are within the residual it leaves).
const SUPPORT_TOL: f64 = 1e-6;

/// The largest support (fraction of entries) a sparse part may have for robust PCA's split to be kept.
pub const MAX_SPARSE_SUPPORT: f64 = 0.1;

struct Split {
    rpca: crate::rpca::Rpca,
    support: f64,
    kept: bool,
}

/// Robust PCA of `m`; its split is kept when the sparse part is sparse (support at most
/// [`MAX_SPARSE_SUPPORT`]) or `keep_dense`, otherwise `L = M` (see the module documentation).
fn sparse_split(m: &Array2<f64>, params: &RpcaParams, keep_dense: bool) -> Result<Split> {
    let r = robust_pca(m, params)?;
    let max_m = m.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let support = r.sparse.iter().filter(|v| v.abs() > SUPPORT_TOL * max_m).count() as f64
        / r.sparse.len().max(1) as f64;
    if keep_dense || support <= MAX_SPARSE_SUPPORT {
        return Ok(Split { rpca: r, support, kept: true });
    }
    let rpca = crate::rpca::Rpca { low_rank: m.clone(), sparse: Array2::zeros(m.dim()), ..r };
    Ok(Split { rpca, support, kept: false })
}

/// `P L P` for the projector `P` onto the eigenvectors of the symmetric `m` whose eigenvalue exceeds
/// `tol · λ_max(m)` (the numerical range of `m`), symmetrised.
fn onto_range(m: &Array2<f64>, l: &Array2<f64>, tol: f64) -> Result<Array2<f64>> {
    let sym = (m + &m.t()) * 0.5;
    let (w, v) = sym.eigh(UPLO::Lower).map_err(|e| Error::linalg("symmetric eigensolver (syevd)", e))?;
    let top = w.iter().copied().fold(0.0f64, f64::max);
    let keep: Vec<usize> = (0..w.len()).filter(|&i| top > 0.0 && w[i] > tol * top).collect();
    let q = v.select(Axis(1), &keep);
    let p = q.dot(&q.t());
    let pl = p.dot(l).dot(&p);
    Ok((&pl + &pl.t()) * 0.5)
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
