//! Named mutations (issue 9, docs/directions.md "Named mutations"): the latent direction that realises a
//! geometric transform — rotation, translation along `x` or `y`, scaling, shear — at one latent point, with
//! its calibration in the transform's unit (degrees, pixels, percent per latent unit), how linear its effect
//! is, and how pure it is.
//!
//! **Search.** The candidates are the top `candidates` right-singular vectors of the exact Jacobian `J` at `z`
//! (only those that move the image: `‖J v‖ ≥ 10⁻³ ‖J‖₂`, as for [`crate::factorize`]'s directions). Along each,
//! [`measure_direction`] gives the slopes of the five rectangle properties; as outline displacements (pixels
//! per latent unit, see [`crate::geometry`]) they form the columns of a `5 × m` matrix `P`. The least-norm
//! `w` with `P w = e` (`e` one for the target property, zero for the others; pseudo-inverse, singular values
//! below `10⁻³ σ₁(P)` dropped) is the smallest latent move whose *linearised* effect is the target alone.
//!
//! **Verification.** Linearisation is only a guess, so the combined direction `d = Σ wᵢ vᵢ / ‖·‖` — and, as a
//! fallback, the single candidate whose linearised effect is purest — is measured again over `t ∈ [−span,
//! span]` (13 evenly spaced images): the target's least-squares slope is the calibration (the sign of `d` is
//! chosen to make it positive), the fit's `R²` the linearity, and every other property's effect over the
//! target's effect (outline displacements) the cross effects; the largest of those is the purity. For shear,
//! rotation and scale are not counted in the purity: a shear moves the rectangle's angle and size by itself
//! (the paper's Table 2 marks those cells N/A); they are still reported in `cross`, and a "shear" that changes
//! either of them more than its own effect is rejected (it turns or scales more than it shears). A direction is
//! [`Found::Named`] only if its purity is at most `max_cross` and its linearity at least `min_linearity`;
//! otherwise [`Found::NotFound`] says why in one sentence, with the best candidate measured.
//!
//! What a found mutation promises: at `z`, over the measured half-range `span`, the target property of the
//! generated object's minimum-area rectangle changed at `per_latent_unit` per latent unit (least squares, fit
//! `R² = linearity`) while the others changed by at most `purity` times as much. It says nothing outside that
//! range, nor at other latent points.

use gcert_core::{Direction, Network, Provenance};
use ndarray::{Array1, Array2};
use ndarray_linalg::{Eigh, JobSvd, SVDDC, UPLO};
use serde::Serialize;

use crate::error::{check_finite, Error, Result};
use crate::geometry::{
    measure_direction, min_area_rect, slope, wrap90, GeometryParams, ImageGenerator, NetworkImages, Property,
    Rect,
};
use crate::jacobian::JacobianPlan;

/// Parameters of [`find_mutation`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MutationParams {
    /// The rectangle measurement (threshold) and the candidates' slopes (their `step` and `points`).
    pub geometry: GeometryParams,
    /// How many top local directions (the row space of `J` at `z`) span the search (default 16).
    pub candidates: usize,
    /// The latent half-range over which calibration, linearity and purity are verified (default 3).
    pub span: f64,
    /// The purity bar: largest cross effect over the own effect (default 0.25, the paper's Table 2 bar).
    pub max_cross: f64,
    /// The `R²` bar of the property against `t` over `[−span, span]` (default 0.9).
    pub min_linearity: f64,
}

impl Default for MutationParams {
    fn default() -> Self {
        MutationParams {
            geometry: GeometryParams { step: 1.0, ..GeometryParams::default() },
            candidates: 16,
            span: 3.0,
            max_cross: 0.25,
            min_linearity: 0.9,
        }
    }
}

/// Images sampled along `[−span, span]` during verification.
const VERIFY_POINTS: usize = 13;

/// Right-singular vectors of `J` whose singular value is below this fraction of `‖J‖₂` are not candidates.
const MOVES_TOL: f64 = 1e-3;

/// Corrections of the combined direction after its first verification.
const REFINE: usize = 8;

/// Singular values of `P` below this fraction of the largest are dropped from its pseudo-inverse.
const PINV_TOL: f64 = 1e-3;

/// The direction that realises a transform at a latent point, verified.
#[derive(Debug, Clone, Serialize)]
pub struct NamedMutation {
    pub transform: Property,
    /// Unit vector, `Provenance::Named { transform, unit, per_latent_unit }`.
    pub direction: Direction,
    /// `> 0`: moving `+t·direction` increases the property by `per_latent_unit · t` (in [`Property::unit`]).
    pub per_latent_unit: f64,
    /// `R²` of the property against `t` over `[−span, span]`, in `[0, 1]`.
    pub linearity: f64,
    /// The largest cross effect over the own effect (smaller is purer).
    pub purity: f64,
    /// Per [`Property::ALL`]: that property's effect relative to the own effect (1 for the transform itself).
    pub cross: [f64; 5],
}

impl NamedMutation {
    /// The latent tolerance `E` for an amount in the transform's unit: `amount / per_latent_unit`. Errors:
    /// `amount ≤ 0` or not finite.
    pub fn latent_tolerance(&self, amount: f64) -> Result<f64> {
        if !(amount > 0.0 && amount.is_finite()) {
            return Err(Error::input(format!(
                "the amount of {} must be a positive finite number of {}, found {amount}",
                self.transform.name(),
                self.transform.unit()
            )));
        }
        Ok(amount / self.per_latent_unit)
    }

    /// Back to the transform's unit: `latent · per_latent_unit`.
    pub fn amount(&self, latent: f64) -> f64 {
        latent * self.per_latent_unit
    }
}

/// What [`find_mutation`] found.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "found", rename_all = "kebab-case")]
pub enum Found {
    Named(NamedMutation),
    /// Nothing at this point realises the transform cleanly enough; `why` is one sentence, `best` the best
    /// candidate measured, if any.
    NotFound {
        transform: Property,
        why: String,
        best: Option<NamedMutation>,
    },
}

impl Found {
    /// The mutation, if found.
    pub fn named(&self) -> Option<&NamedMutation> {
        match self {
            Found::Named(m) => Some(m),
            Found::NotFound { .. } => None,
        }
    }
}

/// The direction that realises `transform` at latent `z` of `gen`, a network whose output is an image
/// `[c, h, w]` (otherwise an input error). See the module documentation.
pub fn find_mutation(
    gen: &Network,
    z: &[f64],
    transform: Property,
    params: &MutationParams,
) -> Result<Found> {
    let images = NetworkImages::new(gen)?;
    check_params(params)?;
    if z.len() != gen.input_len() {
        return Err(Error::input(format!(
            "the latent point has {} values, the generator takes {}",
            z.len(),
            gen.input_len()
        )));
    }
    check_finite("the latent point", z)?;
    let basis = local_basis(gen, z, params.candidates)?;
    find_mutation_in(&images, z, &basis, transform, params)
}

/// The top `count` right-singular vectors of the Jacobian of `gen` at `z` (rows, decreasing singular value),
/// leaving out those that move the image by less than `10⁻³ ‖J‖₂`.
pub fn local_basis(gen: &Network, z: &[f64], count: usize) -> Result<Vec<Vec<f64>>> {
    let j = JacobianPlan::new(gen).jacobian(z)?;
    let m = j.t().dot(&j);
    let (w, v) = m.eigh(UPLO::Lower).map_err(|e| Error::linalg("symmetric eigensolver (syevd)", e))?;
    let top = w.iter().copied().fold(0.0f64, f64::max);
    let mut order: Vec<usize> =
        (0..w.len()).filter(|&i| top > 0.0 && w[i] > MOVES_TOL.powi(2) * top).collect();
    order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
    Ok(order.into_iter().take(count).map(|i| v.column(i).to_vec()).collect())
}

fn check_params(params: &MutationParams) -> Result<()> {
    if params.candidates == 0 {
        return Err(Error::input("a mutation search needs at least one candidate direction, found 0"));
    }
    if !(params.span > 0.0 && params.span.is_finite()) {
        return Err(Error::input(format!("the span must be positive and finite, found {}", params.span)));
    }
    if !(params.max_cross >= 0.0 && params.max_cross.is_finite()) {
        return Err(Error::input(format!(
            "the purity bar must be non-negative and finite, found {}",
            params.max_cross
        )));
    }
    if !(0.0..=1.0).contains(&params.min_linearity) {
        return Err(Error::input(format!(
            "the linearity bar must be in [0, 1], found {}",
            params.min_linearity
        )));
    }
    Ok(())
}

/// [`find_mutation`] for any [`ImageGenerator`], with the candidate directions given (`basis`: unit vectors
/// of `k` values each, e.g. [`local_basis`]).
pub fn find_mutation_in(
    gen: &dyn ImageGenerator,
    z: &[f64],
    basis: &[Vec<f64>],
    transform: Property,
    params: &MutationParams,
) -> Result<Found> {
    check_params(params)?;
    let k = gen.latent_len();
    if z.len() != k {
        return Err(Error::input(format!(
            "the latent point has {} values, the generator takes {k}",
            z.len()
        )));
    }
    check_finite("the latent point", z)?;
    if let Some(bad) = basis.iter().position(|v| v.len() != k) {
        return Err(Error::input(format!(
            "candidate direction {bad} has {} values, the generator takes {k}",
            basis[bad].len()
        )));
    }
    let not_found = |why: String, best: Option<NamedMutation>| Ok(Found::NotFound { transform, why, best });
    let shape = gen.image_shape();
    let image = gen.generate(z, 1)?;
    let Some(rest) = min_area_rect(&image, shape, params.geometry.threshold) else {
        return not_found(
            format!("the image at this point has no pixel above the threshold {}", params.geometry.threshold),
            None,
        );
    };
    // The linearised effects of the candidates (columns), as signed outline displacements.
    let radius = rest.size() / 2.0;
    let mut columns: Vec<(usize, [f64; 5])> = Vec::new();
    for (i, v) in basis.iter().enumerate() {
        // A candidate along which the object disappears within the step is no use: skip it.
        if let Ok(g) = measure_direction(gen, z, v, &params.geometry) {
            columns.push((i, displacements(&g.slopes, radius)));
        }
    }
    if columns.is_empty() {
        return not_found(
            String::from("no local direction keeps an object in the image over the measured step"),
            None,
        );
    }
    let target = transform as usize;
    let combine = |w: &[f64]| -> Vec<f64> {
        let mut d = vec![0.0; k];
        for ((i, _), wi) in columns.iter().zip(w) {
            for (a, b) in d.iter_mut().zip(&basis[*i]) {
                *a += wi * b;
            }
        }
        d
    };
    let mut best: Option<(NamedMutation, String)> = None;
    let mut found: Option<NamedMutation> = None;
    let mut lost: Option<String> = None;
    let mut consider = |v: Verified, found: &mut Option<NamedMutation>| match v {
        Verified::Lost(why) => {
            lost.get_or_insert(why);
        }
        Verified::Measured(m, _) => match failure(&m, params) {
            None => {
                if found.as_ref().is_none_or(|f| m.purity < f.purity) {
                    *found = Some(m);
                }
            }
            Some(why) => {
                if best.as_ref().is_none_or(|(b, _)| badness(&m, params) < badness(b, params)) {
                    best = Some((m, why));
                }
            }
        },
    };
    // The least-norm combination, then Newton-like corrections: the effects measured over the span along the
    // current combination, less the wanted ones, mapped back through the pseudo-inverse.
    if let Some(pinv) = pseudo_inverse(&columns) {
        let mut w: Array1<f64> = pinv.column(target).to_owned();
        for _ in 0..=REFINE {
            let d = combine(w.as_slice().expect("contiguous"));
            let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
            let v = verify(gen, z, &d, transform, params)?;
            let measured = match &v {
                Verified::Measured(_, e) => Some(*e),
                Verified::Lost(_) => None,
            };
            consider(v, &mut found);
            let Some(e) = measured else { break };
            if found.is_some() {
                break;
            }
            // The measured effects of the move `d` (per unit of t along d/‖d‖, times ‖d‖) minus the goal.
            let mut residual = Array1::from_iter(e.iter().map(|x| x * norm));
            residual[target] -= 1.0;
            w = &w - &pinv.dot(&residual);
        }
    }
    // The purest single candidate (linearised), as a fallback.
    if found.is_none() {
        let lin_purity = |e: &[f64; 5]| -> f64 {
            let own = e[target].abs();
            if own == 0.0 {
                return f64::INFINITY;
            }
            (0..5).filter(|&p| counts(transform, p)).map(|p| e[p].abs() / own).fold(0.0, f64::max)
        };
        if let Some((i, e)) = columns.iter().min_by(|a, b| lin_purity(&a.1).total_cmp(&lin_purity(&b.1))) {
            if lin_purity(e).is_finite() {
                consider(verify(gen, z, &basis[*i], transform, params)?, &mut found);
            }
        }
    }
    if let Some(m) = found {
        return Ok(Found::Named(m));
    }
    match (best, lost) {
        (Some((m, why)), _) => not_found(why, Some(m)),
        (None, Some(why)) => {
            not_found(format!("the best direction for {} cannot be verified: {why}", transform.name()), None)
        }
        (None, None) => {
            not_found(format!("no direction at this point changes {} measurably", transform.name()), None)
        }
    }
}

/// Whether property `p` counts in the purity of `transform` (not itself; for shear, not rotation and scale).
fn counts(transform: Property, p: usize) -> bool {
    let p = Property::ALL[p];
    p != transform && !(transform == Property::Shear && matches!(p, Property::Rotation | Property::Scale))
}

/// Slopes (degrees, pixels, percent per latent unit) as signed outline displacements (pixels per latent unit).
fn displacements(slopes: &[f64; 5], radius: f64) -> [f64; 5] {
    [
        slopes[0].to_radians() * radius,
        slopes[1],
        slopes[2],
        slopes[3] / 100.0 * radius,
        slopes[4] / 100.0 * radius,
    ]
}

/// The truncated pseudo-inverse (`m × 5`) of `P` (`5 × m`, the candidates' effects as columns): column `p`
/// is the least-norm `w` with `P w = e_p`. `None` when `P` is zero or not finite.
fn pseudo_inverse(columns: &[(usize, [f64; 5])]) -> Option<Array2<f64>> {
    let m = columns.len();
    let p = Array2::from_shape_fn((5, m), |(r, c)| columns[c].1[r]);
    let (u, s, vt) = p.svddc(JobSvd::Some).ok()?;
    let (u, vt) = (u?, vt?);
    let top = s.first().copied().unwrap_or(0.0);
    if !(top > 0.0 && top.is_finite()) {
        return None;
    }
    let mut pinv = Array2::<f64>::zeros((m, 5));
    for (i, &si) in s.iter().enumerate() {
        if si > PINV_TOL * top {
            for r in 0..m {
                for c in 0..5 {
                    pinv[[r, c]] += vt[[i, r]] * u[[c, i]] / si;
                }
            }
        }
    }
    Some(pinv)
}

enum Verified {
    /// The mutation (its direction's sign chosen so that the property grows) and the signed effects, as
    /// outline displacements per unit of `t`, along the direction as given (before that sign choice).
    Measured(NamedMutation, [f64; 5]),
    /// The object left the image somewhere along the span.
    Lost(String),
}

/// Measures `d` over `[−span, span]` (see the module documentation).
fn verify(
    gen: &dyn ImageGenerator,
    z: &[f64],
    d: &[f64],
    transform: Property,
    params: &MutationParams,
) -> Result<Verified> {
    let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return Ok(Verified::Lost(String::from("the combined direction is zero")));
    }
    let mut d: Vec<f64> = d.iter().map(|x| x / norm).collect();
    let n = VERIFY_POINTS;
    let k = z.len();
    let ts: Vec<f64> = (0..n).map(|i| params.span * (2.0 * i as f64 / (n - 1) as f64 - 1.0)).collect();
    let mut batch = Vec::with_capacity(n * k);
    for &t in &ts {
        batch.extend(z.iter().zip(&d).map(|(a, b)| a + t * b));
    }
    let shape = gen.image_shape();
    let len = shape.iter().product::<usize>();
    let images = gen.generate(&batch, n)?;
    let mut rects: Vec<Rect> = Vec::with_capacity(n);
    for (img, t) in images.chunks_exact(len).zip(&ts) {
        match min_area_rect(img, shape, params.geometry.threshold) {
            Some(r) => rects.push(r),
            None => return Ok(Verified::Lost(format!("the object leaves the image at t = {t:.2}"))),
        }
    }
    let r0 = rects[n / 2];
    // Angles unwrapped step by step (modulo 90°, as the rectangle's sides may swap), from the middle.
    let mut angle = vec![0.0; n];
    for j in n / 2 + 1..n {
        angle[j] = angle[j - 1] + wrap90(rects[j].angle - rects[j - 1].angle);
    }
    for j in (0..n / 2).rev() {
        angle[j] = angle[j + 1] + wrap90(rects[j].angle - rects[j + 1].angle);
    }
    let series: [Vec<f64>; 5] = [
        angle,
        rects.iter().map(|r| r.cx).collect(),
        rects.iter().map(|r| r.cy).collect(),
        rects.iter().map(|r| 100.0 * (r.size() / r0.size() - 1.0)).collect(),
        rects.iter().map(|r| 100.0 * (r.elongation() / r0.elongation() - 1.0)).collect(),
    ];
    let target = transform as usize;
    let mut slopes = series.clone().map(|s| slope(&ts, &s));
    let signed = displacements(&slopes, r0.size() / 2.0);
    if slopes[target] < 0.0 {
        d.iter_mut().for_each(|x| *x = -*x);
        slopes.iter_mut().for_each(|s| *s = -*s);
    }
    let linearity = r_squared(&ts, &series[target]);
    let effects = displacements(&slopes, r0.size() / 2.0).map(f64::abs);
    let own = effects[target];
    let cross = std::array::from_fn(|p| {
        if p == target {
            1.0
        } else if own > 0.0 {
            effects[p] / own
        } else {
            f64::INFINITY
        }
    });
    let purity = (0..5).filter(|&p| counts(transform, p)).map(|p| cross[p]).fold(0.0, f64::max);
    let per_latent_unit = slopes[target];
    let direction = Direction::from_values(
        d,
        Provenance::Named {
            transform: transform.name().to_string(),
            unit: transform.unit().to_string(),
            per_latent_unit,
        },
    )?;
    Ok(Verified::Measured(
        NamedMutation { transform, direction, per_latent_unit, linearity, purity, cross },
        signed,
    ))
}

/// `R²` of the least-squares line of `y` against `x`; 0 when `y` is constant.
fn r_squared(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let b = slope(x, y);
    let ss_tot: f64 = y.iter().map(|v| (v - my).powi(2)).sum();
    if ss_tot <= 0.0 {
        return 0.0;
    }
    let ss_res: f64 = x.iter().zip(y).map(|(a, v)| (v - my - b * (a - mx)).powi(2)).sum();
    (1.0 - ss_res / ss_tot).clamp(0.0, 1.0)
}

/// Why a measured candidate is not good enough, in one sentence; `None` when it is.
fn failure(m: &NamedMutation, params: &MutationParams) -> Option<String> {
    let name = m.transform.name();
    if !(m.per_latent_unit > 0.0 && m.per_latent_unit.is_finite()) {
        return Some(format!("no direction at this point changes {name} measurably"));
    }
    if m.transform == Property::Shear {
        // Rotation and scale do not count in a shear's purity, but a "shear" that turns or scales the object
        // more than it shears it is something else.
        for p in [Property::Rotation, Property::Scale] {
            if m.cross[p as usize] > 1.0 {
                return Some(format!(
                    "the best direction for shear ({:.3} percent/latent unit) changes {p} by {:.2} of its own \
                     effect: it {} the object more than it shears it",
                    m.per_latent_unit,
                    m.cross[p as usize],
                    if p == Property::Rotation { "turns" } else { "scales" }
                ));
            }
        }
    }
    if m.purity > params.max_cross {
        let worst = (0..5)
            .filter(|&p| counts(m.transform, p))
            .max_by(|&a, &b| m.cross[a].total_cmp(&m.cross[b]))
            .map_or("another property", |p| Property::ALL[p].name());
        return Some(format!(
            "the best direction for {name} ({:.3} {}/latent unit) changes {worst} by {:.2} of its own effect, \
             above the purity bar {}",
            m.per_latent_unit,
            m.transform.unit(),
            m.purity,
            params.max_cross
        ));
    }
    if m.linearity < params.min_linearity {
        return Some(format!(
            "the best direction for {name} ({:.3} {}/latent unit) is not linear enough over the span: R² {:.3}, \
             below the bar {}",
            m.per_latent_unit,
            m.transform.unit(),
            m.linearity,
            params.min_linearity
        ));
    }
    None
}

/// How far a measured candidate is from passing (for choosing the best failed one): the worst of the two
/// bars' ratios.
fn badness(m: &NamedMutation, params: &MutationParams) -> f64 {
    let purity = m.purity / params.max_cross.max(1e-12);
    let linearity = (1.0 - m.linearity) / (1.0 - params.min_linearity).max(1e-12);
    if m.per_latent_unit > 0.0 {
        purity.max(linearity)
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use gcert_core::card::{LayerSpec, ModelCard, FORMAT};
    use gcert_core::tensors::{Tensor, TensorStore};

    use super::*;
    use crate::synthetic;

    /// Exact geometric transforms of a filled `12 × 6` rectangle on a `32 × 32` canvas (4 × 4 supersampling),
    /// with known calibrations per latent unit: 6° of rotation, 0.5 pixels along `x` and `y`, `e^{0.1 t}`
    /// scaling (10 % per unit at `t = 0`) and a 0.05 shear. The latent is mixed by the orthogonal `mix` (rows),
    /// so that no latent axis and no single candidate is one transform.
    struct Affine {
        mix: [[f64; 5]; 5],
    }

    const CAL: [f64; 5] = [6.0, 0.5, 0.5, 0.1, 0.05];

    impl Affine {
        /// Rotation by 30° in the (0, 1) plane and by 45° in the (2, 3) plane: each axis mixes two transforms.
        fn mixed() -> Affine {
            let (c1, s1) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
            let h = std::f64::consts::FRAC_1_SQRT_2;
            Affine {
                mix: [
                    [c1, -s1, 0.0, 0.0, 0.0],
                    [s1, c1, 0.0, 0.0, 0.0],
                    [0.0, 0.0, h, -h, 0.0],
                    [0.0, 0.0, h, h, 0.0],
                    [0.0, 0.0, 0.0, 0.0, 1.0],
                ],
            }
        }

        /// The transform parameters of latent `z`: `q = mix · z`.
        fn params(&self, z: &[f64]) -> [f64; 5] {
            std::array::from_fn(|i| (0..5).map(|j| self.mix[i][j] * z[j]).sum())
        }
    }

    impl ImageGenerator for Affine {
        fn latent_len(&self) -> usize {
            5
        }
        fn image_shape(&self) -> [usize; 3] {
            [1, 32, 32]
        }
        fn generate(&self, zs: &[f64], n: usize) -> Result<Vec<f64>> {
            let mut out = Vec::with_capacity(n * 1024);
            for z in zs.chunks_exact(5) {
                let q = self.params(z);
                let a = (CAL[0] * q[0]).to_radians();
                let (dx, dy, s, sh) = (CAL[1] * q[1], CAL[2] * q[2], (CAL[3] * q[3]).exp(), CAL[4] * q[4]);
                for y in 0..32 {
                    for x in 0..32 {
                        let mut hits = 0;
                        for sy in 0..4 {
                            for sx in 0..4 {
                                let px = x as f64 + (sx as f64 + 0.5) / 4.0 - 16.0 - dx;
                                let py = y as f64 + (sy as f64 + 0.5) / 4.0 - 16.0 - dy;
                                let (u, v) = (px * a.cos() + py * a.sin(), -px * a.sin() + py * a.cos());
                                let (u, v) = (u / s, v / s);
                                let u = u - sh * v;
                                hits += i32::from(u.abs() <= 6.0 && v.abs() <= 3.0);
                            }
                        }
                        out.push(f64::from(hits) / 16.0);
                    }
                }
            }
            Ok(out)
        }
    }

    fn axes() -> Vec<Vec<f64>> {
        (0..5).map(|i| (0..5).map(|j| f64::from(u8::from(i == j))).collect()).collect()
    }

    /// The direction realising transform `p` is row `p` of the mixing (the latent move that changes `q_p`
    /// alone), and its calibration is that of the transform.
    #[test]
    fn rotation_translation_and_scale_are_found_with_their_calibration() {
        let gen = Affine::mixed();
        let z = [0.0; 5];
        let params = MutationParams::default();
        // Per latent unit along the pure direction: 6°, 0.5 px, 0.5 px, 10 % (the least-squares slope of
        // 100·(e^{0.1 t} − 1) over ±3 is about 10.2).
        for (p, expected, tol) in [
            (Property::Rotation, 6.0, 0.4),
            (Property::TranslateX, 0.5, 0.03),
            (Property::TranslateY, 0.5, 0.03),
            (Property::Scale, 10.2, 1.0),
        ] {
            let found = find_mutation_in(&gen, &z, &axes(), p, &params).unwrap();
            let Found::Named(m) = found else { panic!("{p}: {found:?}") };
            assert!((m.per_latent_unit - expected).abs() < tol, "{p}: {m:?}");
            assert!(m.linearity > 0.98, "{p}: {m:?}");
            assert!(m.purity < 0.1, "{p}: {m:?}");
            assert_eq!(m.cross[p as usize], 1.0);
            // The direction is the mixing's row, up to the measurement's noise.
            let row = gen.mix[p as usize];
            let along: f64 = m.direction.unit().iter().zip(row).map(|(a, b)| a * b).sum();
            assert!(along > 0.98, "{p}: {:?} against {row:?}", m.direction.unit());
            match m.direction.provenance() {
                Provenance::Named { transform, unit, per_latent_unit } => {
                    assert_eq!((transform.as_str(), unit.as_str()), (p.name(), p.unit()));
                    assert_eq!(*per_latent_unit, m.per_latent_unit);
                }
                other => panic!("{other:?}"),
            }
            // Amounts and latent tolerances convert both ways.
            let e = m.latent_tolerance(2.0 * expected).unwrap();
            assert!((e - 2.0 * expected / m.per_latent_unit).abs() < 1e-12);
            assert!((m.amount(e) - 2.0 * expected).abs() < 1e-9);
        }
    }

    /// Over a span where the transform is far from linear, or with a bar no measurement meets, nothing is
    /// named, and the sentence says which bar failed, with the best candidate for the report.
    #[test]
    fn unclean_or_nonlinear_transforms_are_not_found() {
        let gen = Affine::mixed();
        let z = [0.0; 5];
        let strict = MutationParams { max_cross: 0.0, ..MutationParams::default() };
        let found = find_mutation_in(&gen, &z, &axes(), Property::Rotation, &strict).unwrap();
        let Found::NotFound { transform, why, best } = found else { panic!("{found:?}") };
        assert_eq!(transform, Property::Rotation);
        assert!(why.contains("above the purity bar 0"), "{why}");
        let best = best.expect("a best candidate");
        assert!(best.purity > 0.0 && (best.per_latent_unit - 6.0).abs() < 0.4, "{best:?}");

        // Candidates that cannot rotate: only translations and scale are offered.
        let no_rotation = vec![vec![0.0, 0.0, 0.0, 0.0, 1.0]];
        let found = find_mutation_in(&gen, &z, &no_rotation, Property::TranslateX, &strict).unwrap();
        assert!(found.named().is_none(), "{found:?}");

        // A scale of e^{0.1·t} with t up to ±60 shrinks the object out of the image.
        let wide = MutationParams { span: 60.0, ..MutationParams::default() };
        let found = find_mutation_in(&gen, &z, &axes(), Property::Scale, &wide).unwrap();
        let Found::NotFound { why, .. } = found else { panic!("{found:?}") };
        assert!(why.contains("leaves the image") || why.contains("not linear"), "{why}");
    }

    /// Through a model card: the piecewise-linear generator of geometric mutations (first-order transforms of
    /// a soft rectangle, mixed by a random orthogonal matrix `Q`) is found along the rows of `Q` that feed the
    /// derivative images. Its "rotation" is the rest image plus `t` times the derivative in angle, not a
    /// rotated image, and the outline is located by linear interpolation between pixel centres across a soft
    /// edge: the measured angle moves at about 45° per unit instead of 57.3° and the centre at about 0.78
    /// pixels instead of 1, consistently (R² near 1); that measured rate is what the calibration reports.
    #[test]
    fn a_pl_generator_of_geometric_mutations_is_calibrated() {
        let net = synthetic::geometric(6, 3).network().unwrap();
        let z = [0.0; 6];
        let params = MutationParams {
            geometry: GeometryParams { step: 0.02, ..GeometryParams::default() },
            span: 0.05,
            ..MutationParams::default()
        };
        let gen = synthetic::geometric(6, 3);
        let q = gen.tensors.get("0.weight").unwrap().data.clone();
        for (p, row, expected, tol) in [
            (Property::Rotation, 0, 47.5, 12.5),
            (Property::TranslateX, 1, 0.85, 0.25),
            (Property::TranslateY, 2, 0.85, 0.25),
        ] {
            let found = find_mutation(&net, &z, p, &params).unwrap();
            let Found::Named(m) = found else { panic!("{p}: {found:?}") };
            assert!((m.per_latent_unit - expected).abs() < tol, "{p}: {m:?}");
            assert!(m.linearity > 0.99 && m.purity < 0.1, "{p}: {m:?}");
            let along: f64 =
                m.direction.unit().iter().zip(&q[row * 6..(row + 1) * 6]).map(|(a, b)| a * b).sum();
            assert!(along.abs() > 0.99, "{p}: {m:?}");
        }
        // It has no shear: the nearest thing changes the size far more than the elongation, and is refused.
        let found = find_mutation(&net, &z, Property::Shear, &params).unwrap();
        assert!(found.named().is_none(), "{found:?}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut tensors = TensorStore::new();
        tensors.insert("w".to_string(), Tensor::new(vec![3, 4], vec![0.5; 12]));
        let card = ModelCard {
            format: FORMAT.to_string(),
            name: "scores".to_string(),
            weights: "scores.safetensors".to_string(),
            input_shape: Some(vec![4]),
            input_shapes: None,
            description: None,
            layers: vec![LayerSpec::Linear { weight: "w".to_string(), bias: None }],
        };
        let net = Network::from_card(&card, &tensors, Path::new("scores.toml")).unwrap();
        let err = find_mutation(&net, &[0.0; 4], Property::Rotation, &MutationParams::default()).unwrap_err();
        assert!(err.to_string().contains("scores.toml outputs 3 values, not an image"), "{err}");

        let net = synthetic::geometric(4, 1).network().unwrap();
        let p = MutationParams::default();
        let err = find_mutation(&net, &[0.0; 3], Property::Rotation, &p).unwrap_err().to_string();
        assert!(err.contains("3 values, the generator takes 4"), "{err}");
        let err =
            find_mutation(&net, &[0.0, f64::NAN, 0.0, 0.0], Property::Rotation, &p).unwrap_err().to_string();
        assert!(err.contains("non-finite"), "{err}");
        for bad in [
            MutationParams { candidates: 0, ..p },
            MutationParams { span: 0.0, ..p },
            MutationParams { span: f64::INFINITY, ..p },
            MutationParams { max_cross: -1.0, ..p },
            MutationParams { min_linearity: 1.5, ..p },
        ] {
            assert!(find_mutation(&net, &[0.0; 4], Property::Rotation, &bad).is_err(), "{bad:?}");
        }
        let m = NamedMutation {
            transform: Property::Rotation,
            direction: Direction::new(vec![1.0, 0.0, 0.0, 0.0]).unwrap(),
            per_latent_unit: 5.0,
            linearity: 1.0,
            purity: 0.0,
            cross: [1.0, 0.0, 0.0, 0.0, 0.0],
        };
        for amount in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = m.latent_tolerance(amount).unwrap_err().to_string();
            assert!(err.contains("positive finite number of degrees"), "{err}");
        }
        assert_eq!(m.latent_tolerance(15.0).unwrap(), 3.0);

        let err = "spin".parse::<Property>().unwrap_err().to_string();
        assert!(err.contains("unknown transform 'spin'"), "{err}");
        assert!(err.contains("rotation, translate-x, translate-y, scale, shear"), "{err}");
        for p in Property::ALL {
            assert_eq!(p.name().parse::<Property>().unwrap(), p);
        }
    }
}
