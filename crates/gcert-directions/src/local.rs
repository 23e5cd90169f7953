//! Local directions (paper §5.4.1, Eq. 15–17): moves that change a region of the image and leave the rest
//! unchanged to first order.
//!
//! The region splits the output values into foreground `F` and background `B`. The rows of `J` give `J_F` and
//! `J_B`; each Gram matrix is factorized ([`crate::factorize`]). The first `r_F` right-singular vectors of the
//! foreground move the region; the right-singular vectors of the background after `r_B` span the background's
//! null space `N`. Each foreground direction `v` is projected, `d = normalise(N Nᵀ v)`; one with no component
//! in `N` (`‖N Nᵀ v‖ < 1e-8`) cannot move the region without moving the background and is dropped.
//!
//! The leak of a direction is `‖ΔB‖ / ‖ΔF‖`, the background's change over the foreground's: to first order
//! (`‖J_B d‖ / ‖J_F d‖`) and over a finite step (`G(z + step·d) − G(z)`), at the first latent point, before
//! and after the projection. Since `N` is the null space of the *low-rank part* of `J_BᵀJ_B`, the first-order
//! leak after projection is zero exactly when robust PCA keeps all of the background's Jacobian in that part.

use gcert_core::Network;
use ndarray::{s, Array1, Array2, ArrayView1};
use ndarray_linalg::{Eigh, UPLO};
use serde::Serialize;

use crate::error::{check_finite, Error, Result};
use crate::factor::{factorize, factorize_with, FactorParams, Factorization};
use crate::jacobian::JacobianPlan;

/// A region of the image, in pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Region {
    /// The rectangle of columns `x .. x + w` and rows `y .. y + h`, in every channel.
    Rect { x: usize, y: usize, w: usize, h: usize },
    /// One flag per pixel (`h × w`, applied to every channel) or per output value (`c × h × w`).
    Mask(Vec<bool>),
}

/// The image shape `[channels, height, width]` of a generator's output: `[c, h, w]` as is, `[h, w]` as one
/// channel, a flat `[n]` with `n` a square as one square channel.
pub fn image_shape(net: &Network) -> Result<[usize; 3]> {
    match *net.output_shape() {
        [c, h, w] => Ok([c, h, w]),
        [h, w] => Ok([1, h, w]),
        [n] => {
            let side = (n as f64).sqrt().round() as usize;
            if side * side == n {
                Ok([1, side, side])
            } else {
                Err(Error::input(format!(
                    "{} outputs {n} values, not an image: expected [c, h, w], [h, w] or a square number of values",
                    net.path().display()
                )))
            }
        }
        ref s => Err(Error::input(format!("{} outputs shape {s:?}, not an image", net.path().display()))),
    }
}

impl Region {
    /// One flag per output value of an image of `shape` (`true`: foreground). An empty or full region is an
    /// error: it leaves no background (or no foreground) to separate.
    pub fn mask(&self, shape: [usize; 3]) -> Result<Vec<bool>> {
        let [c, h, w] = shape;
        let mask = match self {
            Region::Rect { x, y, w: rw, h: rh } => {
                if *rw == 0 || *rh == 0 {
                    return Err(Error::input(format!("the region {x},{y},{rw},{rh} is empty")));
                }
                if x.checked_add(*rw).is_none_or(|e| e > w) || y.checked_add(*rh).is_none_or(|e| e > h) {
                    return Err(Error::input(format!(
                        "the region {x},{y},{rw},{rh} (x, y, width, height) reaches outside the {w}×{h} image"
                    )));
                }
                (0..c * h * w)
                    .map(|i| {
                        let (py, px) = ((i / w) % h, i % w);
                        px >= *x && px < x + rw && py >= *y && py < y + rh
                    })
                    .collect::<Vec<bool>>()
            }
            Region::Mask(m) if m.len() == h * w => (0..c * h * w).map(|i| m[i % (h * w)]).collect(),
            Region::Mask(m) if m.len() == c * h * w => m.clone(),
            Region::Mask(m) => {
                return Err(Error::input(format!(
                    "a region mask needs {h}×{w} = {} or {c}×{h}×{w} = {} values, found {}",
                    h * w,
                    c * h * w,
                    m.len()
                )))
            }
        };
        let inside = mask.iter().filter(|&&b| b).count();
        if inside == 0 {
            return Err(Error::input("the region is empty: it selects no pixel"));
        }
        if inside == mask.len() {
            return Err(Error::input("the region covers the whole image: it leaves no background"));
        }
        Ok(mask)
    }
}

/// Parameters of local directions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LocalParams {
    pub factor: FactorParams,
    /// The latent step of the finite leak (default 1).
    pub step: f64,
    /// Where the background's null space comes from (default [`NullSpace::Gram`]).
    pub null_space: NullSpace,
}

impl Default for LocalParams {
    fn default() -> Self {
        LocalParams { factor: FactorParams::default(), step: 1.0, null_space: NullSpace::default() }
    }
}

/// The basis of the background's null space `B_null` (`k − r_B` directions, `r_B` the background's rank from
/// robust PCA either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NullSpace {
    /// The eigenvectors of the `k − r_B` smallest eigenvalues of the background's Gram matrix `M_B` itself.
    /// Among all `(k − r_B)`-dimensional subspaces this one moves the background least: a unit `d` in it has
    /// mean first-order background change `dᵀ M_B d ≤ λ_{r_B+1}(M_B)`, the smallest such bound
    /// (Courant–Fischer). The default.
    #[default]
    Gram,
    /// The trailing right singular vectors of robust PCA's low-rank part `L_B` (the paper's Eq. 15–17 as
    /// written). Whatever robust PCA moves into its sparse part `S_B` can leak: `dᵀ M_B d ≤ σ_{r_B+1}(L_B) +
    /// ‖S_B + R‖₂`.
    LowRank,
}

/// Background change over foreground change along a direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Leak {
    /// `‖J_B d‖ / ‖J_F d‖` (infinite when the foreground does not move).
    pub first_order: f64,
    /// `‖ΔB‖ / ‖ΔF‖` for `Δ = G(z + step·d) − G(z)`.
    pub finite: f64,
}

/// One local direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalDirection {
    /// The unit direction, `k` values (not serialised: reports carry the other fields).
    #[serde(skip)]
    pub vector: Vec<f64>,
    /// Index of the foreground direction it was projected from.
    pub source: usize,
    /// `‖N Nᵀ v‖`: how much of the foreground direction survived the projection.
    pub kept: f64,
    /// Leak of the foreground direction before projection.
    #[serde(rename = "leak_before")]
    pub before: Leak,
    /// Leak of the projected direction.
    #[serde(rename = "leak_after")]
    pub after: Leak,
}

/// The local directions of a region and the two factorizations they come from.
#[derive(Debug, Clone)]
pub struct LocalDirections {
    pub foreground: Factorization,
    pub background: Factorization,
    pub directions: Vec<LocalDirection>,
    /// Foreground directions with no component in the background's null space.
    pub dropped: Vec<usize>,
}

/// Local directions of `net` for a region `mask` (one flag per output value), from Gram matrices averaged over
/// the `m` latent points `zs`; leaks are measured at the first point.
pub fn local_directions(
    net: &Network,
    zs: &[f64],
    m: usize,
    mask: &[bool],
    params: &LocalParams,
) -> Result<LocalDirections> {
    if !(params.step > 0.0 && params.step.is_finite()) {
        return Err(Error::input(format!("the leak step must be positive, found {}", params.step)));
    }
    let plan = JacobianPlan::new(net);
    let k = plan.latent_len();
    let background: Vec<bool> = mask.iter().map(|&b| !b).collect();
    let fg = factorize(&plan.mean_gram(zs, m, Some(mask))?, &params.factor)?;
    let m_b = plan.mean_gram(zs, m, Some(&background))?;
    let bg = factorize_with(&m_b, &params.factor, true)?;
    let z = &zs[..k];
    let j = plan.jacobian(z)?;
    let g0 = net.forward(z, 1)?;
    let gram_null;
    let null = match params.null_space {
        NullSpace::LowRank => bg.null_space(),
        NullSpace::Gram => {
            // Ascending eigenvalues: the first k − r_B eigenvectors (columns) span the least-moving subspace.
            let (_, vecs) =
                m_b.eigh(UPLO::Lower).map_err(|e| Error::linalg("symmetric eigensolver (syevd)", e))?;
            gram_null = vecs.slice(s![.., ..k - bg.rank]).t().to_owned();
            gram_null.view()
        }
    };
    let mut directions = Vec::new();
    let mut dropped = Vec::new();
    for (source, v) in fg.directions().rows().into_iter().enumerate() {
        let p: Array1<f64> = null.t().dot(&null.dot(&v));
        let kept = p.dot(&p).sqrt();
        if kept < 1e-8 {
            dropped.push(source);
            continue;
        }
        let d = &p / kept;
        directions.push(LocalDirection {
            vector: d.to_vec(),
            source,
            kept,
            before: leak(net, &j, z, &g0, v, mask, params.step)?,
            after: leak(net, &j, z, &g0, d.view(), mask, params.step)?,
        });
    }
    Ok(LocalDirections { foreground: fg, background: bg, directions, dropped })
}

/// The leak of direction `d` at `z` (see [`Leak`]).
pub fn leak(
    net: &Network,
    j: &Array2<f64>,
    z: &[f64],
    g0: &[f64],
    d: ArrayView1<'_, f64>,
    mask: &[bool],
    step: f64,
) -> Result<Leak> {
    let jd = j.dot(&d);
    let moved: Vec<f64> = z.iter().zip(d.iter()).map(|(a, b)| a + step * b).collect();
    check_finite("the moved latent point", &moved)?;
    let g1 = net.forward(&moved, 1)?;
    let delta: Vec<f64> = g1.iter().zip(g0).map(|(a, b)| a - b).collect();
    Ok(Leak {
        first_order: split_ratio(jd.as_slice().expect("contiguous"), mask),
        finite: split_ratio(&delta, mask),
    })
}

/// `‖x_B‖ / ‖x_F‖`.
fn split_ratio(x: &[f64], mask: &[bool]) -> f64 {
    let (mut f, mut b) = (0.0, 0.0);
    for (v, &m) in x.iter().zip(mask) {
        if m {
            f += v * v;
        } else {
            b += v * v;
        }
    }
    if f == 0.0 {
        if b == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (b / f).sqrt()
    }
}
