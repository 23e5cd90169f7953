//! Naming geometric directions (paper §7.1.2, Fig. 9, Table 2): measure how the generated object's
//! minimum-area enclosing rectangle changes along a direction.
//!
//! The object is the set of pixels brighter than a threshold (channels averaged); its outline is located to
//! sub-pixel precision by interpolating the threshold crossing between neighbouring pixel centres, and its
//! rectangle is found by rotating calipers over the convex hull of the outline (the minimum-area rectangle has
//! a side on a hull edge). Its properties: the angle of the long side (degrees, compared modulo 90° so that a near-square
//! whose long and short sides swap does not jump), the centre `x`, `y` (pixels), the size `√(area)` and the
//! elongation `long/short`, which is what a shear changes (the paper notes that shear also changes the
//! rectangle's size and angle, so its independence from those is not measured: N/A).
//!
//! Along a direction `d` the properties are sampled at `z + t·d`, `t` evenly spaced on `[-step, step]`, and
//! each one's slope in `t` is fitted by least squares: degrees, pixels and percent per unit latent step (the
//! calibration). To compare them, every slope becomes the displacement it causes on the object's outline
//! (pixels per unit step): translation as is, rotation `θ·R` and scaling and elongation `s·R` with `R` half the
//! size. A direction is named after the largest effect when it is at least `dominance` times the second.
//!
//! [`between_check`] is Table 3's check (docs/mathematics.md §7.5 (b)): along `z → z + eps·d`, does each
//! sampled intermediate image's angle, centre and size lie between the two end images' values, up to the
//! measurement's own noise?

use gcert_core::Network;
use serde::Serialize;

use crate::error::{check_finite, Error, Result};
use crate::local::image_shape;

/// The rectangle measurement lives in gcert-core (gcert-torch rotates training digits about its centre).
pub use gcert_core::rect::{min_area_rect, Rect};

/// Something that turns latent points into images.
pub trait ImageGenerator {
    fn latent_len(&self) -> usize;
    /// `[channels, height, width]`.
    fn image_shape(&self) -> [usize; 3];
    /// The images of `n` latent points (`zs` is `n × k`), one after the other.
    fn generate(&self, zs: &[f64], n: usize) -> Result<Vec<f64>>;
}

/// A network as an [`ImageGenerator`].
#[derive(Debug)]
pub struct NetworkImages<'a> {
    net: &'a Network,
    shape: [usize; 3],
}

impl<'a> NetworkImages<'a> {
    pub fn new(net: &'a Network) -> Result<Self> {
        Ok(NetworkImages { net, shape: image_shape(net)? })
    }
}

impl ImageGenerator for NetworkImages<'_> {
    fn latent_len(&self) -> usize {
        self.net.input_len()
    }
    fn image_shape(&self) -> [usize; 3] {
        self.shape
    }
    fn generate(&self, zs: &[f64], n: usize) -> Result<Vec<f64>> {
        Ok(self.net.forward(zs, n)?)
    }
}

/// The geometric properties a direction can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    Rotation,
    TranslateX,
    TranslateY,
    Scale,
    Shear,
}

impl Property {
    pub const ALL: [Property; 5] =
        [Property::Rotation, Property::TranslateX, Property::TranslateY, Property::Scale, Property::Shear];

    pub fn name(self) -> &'static str {
        match self {
            Property::Rotation => "rotation",
            Property::TranslateX => "translate-x",
            Property::TranslateY => "translate-y",
            Property::Scale => "scale",
            Property::Shear => "shear",
        }
    }

    /// The property named `name` ([`Property::name`]), if any.
    pub fn from_name(name: &str) -> Option<Property> {
        Property::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The unit of this property's calibration, per unit latent step.
    pub fn unit(self) -> &'static str {
        match self {
            Property::Rotation => "degrees",
            Property::TranslateX | Property::TranslateY => "pixels",
            Property::Scale | Property::Shear => "percent",
        }
    }
}

impl std::str::FromStr for Property {
    type Err = Error;

    /// Exactly the names of [`Property::ALL`]; the error lists them.
    fn from_str(s: &str) -> Result<Property> {
        Property::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Property::ALL.iter().map(|p| p.name()).collect();
            Error::input(format!("unknown transform '{s}': expected one of {}", names.join(", ")))
        })
    }
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters of the measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GeometryParams {
    /// Pixels brighter than this (channels averaged) belong to the object (default 0.5).
    pub threshold: f64,
    /// Half-width of the latent interval sampled, `t ∈ [-step, step]` (default 0.5).
    pub step: f64,
    /// Number of samples (odd, at least 3; default 9).
    pub points: usize,
    /// How many times the largest effect must exceed the second to name a direction (default 2).
    pub dominance: f64,
}

impl Default for GeometryParams {
    fn default() -> Self {
        GeometryParams { threshold: 0.5, step: 0.5, points: 9, dominance: 2.0 }
    }
}

/// What moving along one direction does to the enclosing rectangle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionGeometry {
    /// The rectangle at `t = 0`.
    pub rect: Rect,
    /// Slopes per unit latent step in each property's unit (degrees, pixels, percent), in [`Property::ALL`]
    /// order: the calibration.
    pub slopes: [f64; 5],
    /// The same slopes as outline displacement (pixels per unit step), comparable with each other.
    pub effects: [f64; 5],
    /// The dominant property, when one is.
    pub name: Option<Property>,
    /// Largest effect over the second largest.
    pub dominance: f64,
}

impl DirectionGeometry {
    /// The calibration of the named property: its change per unit latent step, in [`Property::unit`].
    pub fn calibration(&self) -> Option<(Property, f64)> {
        self.name.map(|p| (p, self.slopes[p as usize]))
    }

    /// The report of row `row` (what `gcert directions --name-geometric --json` prints for it).
    pub fn report(&self, row: usize) -> GeometryReport {
        GeometryReport {
            row,
            name: self.name.map(Property::name),
            calibration: self.calibration().map(|(p, v)| Calibration {
                property: p.name(),
                per_unit_step: v,
                unit: p.unit(),
            }),
            rect: self.rect,
            slopes: Property::ALL.iter().zip(&self.slopes).map(|(p, v)| (p.name(), *v)).collect(),
            effects: self.effects,
            dominance: if self.dominance.is_finite() {
                Dominance::Finite(self.dominance)
            } else {
                Dominance::Infinite("inf")
            },
        }
    }
}

/// A direction's geometry as reported: names instead of enum values, slopes keyed by property.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeometryReport {
    pub row: usize,
    pub name: Option<&'static str>,
    pub calibration: Option<Calibration>,
    pub rect: Rect,
    pub slopes: std::collections::BTreeMap<&'static str, f64>,
    pub effects: [f64; 5],
    pub dominance: Dominance,
}

/// A named property's change per unit latent step, in its unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    pub property: &'static str,
    pub per_unit_step: f64,
    pub unit: &'static str,
}

/// The largest effect over the second largest; `"inf"` when only one property moves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Dominance {
    Finite(f64),
    Infinite(&'static str),
}

pub(crate) fn wrap90(deg: f64) -> f64 {
    let r = deg.rem_euclid(90.0);
    if r > 45.0 {
        r - 90.0
    } else {
        r
    }
}

/// A latent point and a direction of `k` finite values each.
fn check_segment(k: usize, z: &[f64], d: &[f64]) -> Result<()> {
    if z.len() != k || d.len() != k {
        return Err(Error::input(format!(
            "a latent point and a direction need {k} values, found {} and {}",
            z.len(),
            d.len()
        )));
    }
    check_finite("the latent point", z)?;
    check_finite("the direction", d)
}

/// Measures what direction `d` does at `z` (see the module documentation). `d` need not be normalised: the
/// slopes are per unit of `t` along `d` as given.
pub fn measure_direction(
    gen: &dyn ImageGenerator,
    z: &[f64],
    d: &[f64],
    params: &GeometryParams,
) -> Result<DirectionGeometry> {
    let k = gen.latent_len();
    check_segment(k, z, d)?;
    if params.points < 3 || params.points.is_multiple_of(2) {
        return Err(Error::input(format!(
            "the number of samples must be odd and at least 3, found {}",
            params.points
        )));
    }
    if !(params.step > 0.0 && params.step.is_finite() && params.dominance >= 1.0) {
        return Err(Error::input("the sampling step must be positive and the dominance at least 1"));
    }
    let n = params.points;
    let ts: Vec<f64> = (0..n).map(|i| params.step * (2.0 * i as f64 / (n - 1) as f64 - 1.0)).collect();
    let mut batch = Vec::with_capacity(n * k);
    for &t in &ts {
        batch.extend(z.iter().zip(d).map(|(a, b)| a + t * b));
    }
    let shape = gen.image_shape();
    let images = gen.generate(&batch, n)?;
    let len = shape.iter().product::<usize>();
    let mut rects = Vec::with_capacity(n);
    for (i, img) in images.chunks_exact(len).enumerate() {
        let r = min_area_rect(img, shape, params.threshold).ok_or_else(|| {
            Error::input(format!(
                "no pixel above the threshold {} at t = {:.3}: there is no object to measure",
                params.threshold, ts[i]
            ))
        })?;
        rects.push(r);
    }
    let r0 = rects[n / 2];
    let series: [Vec<f64>; 5] = [
        rects.iter().map(|r| wrap90(r.angle - r0.angle)).collect(),
        rects.iter().map(|r| r.cx).collect(),
        rects.iter().map(|r| r.cy).collect(),
        rects.iter().map(|r| 100.0 * (r.size() / r0.size() - 1.0)).collect(),
        rects.iter().map(|r| 100.0 * (r.elongation() / r0.elongation() - 1.0)).collect(),
    ];
    let slopes = series.map(|s| slope(&ts, &s));
    let radius = r0.size() / 2.0;
    let effects = [
        slopes[0].to_radians().abs() * radius,
        slopes[1].abs(),
        slopes[2].abs(),
        slopes[3].abs() / 100.0 * radius,
        slopes[4].abs() / 100.0 * radius,
    ];
    let mut order: Vec<usize> = (0..5).collect();
    order.sort_by(|&a, &b| effects[b].total_cmp(&effects[a]));
    let (first, second) = (effects[order[0]], effects[order[1]]);
    let dominance = if second > 0.0 {
        first / second
    } else if first > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    let name = (first > 0.0 && dominance >= params.dominance).then_some(Property::ALL[order[0]]);
    Ok(DirectionGeometry { rect: r0, slopes, effects, name, dominance })
}

/// Least-squares slope of `y` against `x`.
pub(crate) fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    sxy / sxx
}

/// The four mutation kinds of the paper's Table 2 (translation joins x and y).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Translation,
    Rotation,
    Scaling,
    Shearing,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Translation, Kind::Rotation, Kind::Scaling, Kind::Shearing];

    fn of(p: Property) -> Kind {
        match p {
            Property::TranslateX | Property::TranslateY => Kind::Translation,
            Property::Rotation => Kind::Rotation,
            Property::Scale => Kind::Scaling,
            Property::Shear => Kind::Shearing,
        }
    }

    /// This kind's effect in a direction's effect vector.
    fn effect(self, e: &[f64; 5]) -> f64 {
        match self {
            Kind::Translation => e[1].hypot(e[2]),
            Kind::Rotation => e[0],
            Kind::Scaling => e[3],
            Kind::Shearing => e[4],
        }
    }
}

/// One cell of the independence matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cell {
    /// The column's effect over the row's own effect, along the row's direction; `None` when not measured
    /// (the diagonal, shear against rotation and scale, or no direction of the row's kind).
    pub ratio: Option<f64>,
    /// `ratio <= tolerance`: moving along the row's direction leaves the column's property unchanged.
    pub independent: Option<bool>,
}

/// The paper's Table 2: does moving along the direction of the row's kind change the column's property?
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndependenceMatrix {
    /// Row kind → index of the direction that represents it (the most dominant of its kind).
    pub representatives: Vec<(Kind, Option<usize>)>,
    pub tolerance: f64,
    /// `cells[row][column]`, rows and columns in [`Kind::ALL`] order.
    pub cells: [[Cell; 4]; 4],
}

/// Builds the independence matrix from measured directions; cross effects up to `tolerance` times the
/// direction's own effect count as independent.
pub fn independence_matrix(measured: &[DirectionGeometry], tolerance: f64) -> IndependenceMatrix {
    let representatives: Vec<(Kind, Option<usize>)> = Kind::ALL
        .iter()
        .map(|&kind| {
            let best = measured
                .iter()
                .enumerate()
                .filter(|(_, g)| g.name.map(Kind::of) == Some(kind))
                .max_by(|a, b| a.1.dominance.total_cmp(&b.1.dominance))
                .map(|(i, _)| i);
            (kind, best)
        })
        .collect();
    let not_measured =
        |a: Kind, b: Kind| a == b || matches!((a, b), (Kind::Shearing, Kind::Rotation | Kind::Scaling));
    let mut cells = [[Cell { ratio: None, independent: None }; 4]; 4];
    for (r, &(row, rep)) in representatives.iter().enumerate() {
        let Some(i) = rep else { continue };
        let e = &measured[i].effects;
        let own = row.effect(e);
        for (c, &col) in Kind::ALL.iter().enumerate() {
            if not_measured(row, col) || not_measured(col, row) || own == 0.0 {
                continue;
            }
            let ratio = col.effect(e) / own;
            cells[r][c] = Cell { ratio: Some(ratio), independent: Some(ratio <= tolerance) };
        }
    }
    IndependenceMatrix { representatives, tolerance, cells }
}

/// The properties the between-ends check compares (paper Table 3): the rectangle's angle (degrees), centre `x`
/// and `y` (pixels) and size `√(area)` (pixels, under [`Property::Scale`]).
pub const BETWEEN_PROPERTIES: [Property; 4] =
    [Property::Rotation, Property::TranslateX, Property::TranslateY, Property::Scale];

/// Parameters of the between-ends check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BetweenParams {
    /// The segment is `z → z + eps·d`.
    pub eps: f64,
    /// Intermediate images per segment, at `t = j / (samples + 1)`, `j = 1..=samples` (the ends excluded).
    pub samples: usize,
    /// Pixels brighter than this (channels averaged) belong to the object.
    pub threshold: f64,
    /// A value up to this many degrees outside the ends' angles still passes.
    pub tolerance_degrees: f64,
    /// A centre or size up to this many pixels outside the ends' values still passes.
    pub tolerance_pixels: f64,
}

impl Default for BetweenParams {
    /// `eps` 1, 20 samples, threshold 0.5; tolerances 2.5° and 0.35 pixels: the measurement's own noise, the
    /// largest change of a property that is constant in truth when an anti-aliased 12 × 6 rectangle on a
    /// 32 × 32 canvas (4 × 4 supersampling) is translated, rotated or scaled smoothly, over 40 starting poses:
    /// the angle moved by up to 2.26° under translation, the centre by up to 0.14 pixels and the size by up to
    /// 0.33 pixels under rotation.
    fn default() -> Self {
        BetweenParams {
            eps: 1.0,
            samples: 20,
            threshold: 0.5,
            tolerance_degrees: 2.5,
            tolerance_pixels: 0.35,
        }
    }
}

/// Counts of one property over the checked intermediate images.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PropertyTally {
    /// Intermediate images whose property was compared with the ends'.
    pub checked: usize,
    /// Of those, the ones within the ends' interval widened by the tolerance.
    pub passed: usize,
    /// Of those, the ones within the ends' interval itself (no tolerance).
    pub passed_strict: usize,
    /// The largest distance of a value outside the ends' interval (0 when none is outside), in the property's
    /// unit (degrees or pixels).
    pub worst: f64,
}

impl PropertyTally {
    /// `passed / checked`; `None` when nothing was checked.
    pub fn fraction(&self) -> Option<f64> {
        (self.checked > 0).then(|| self.passed as f64 / self.checked as f64)
    }

    fn merge(&mut self, other: &PropertyTally) {
        self.checked += other.checked;
        self.passed += other.passed;
        self.passed_strict += other.passed_strict;
        self.worst = self.worst.max(other.worst);
    }
}

/// The between-ends check over segments (docs/mathematics.md §7.5 (b), paper Table 3): does every sampled
/// intermediate image's rectangle property lie between the two ends' values?
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BetweenCheck {
    /// Segments whose ends and intermediate images all had an object.
    pub segments: usize,
    /// Segments skipped because some image along them had no pixel above the threshold.
    pub skipped: usize,
    /// One tally per property, in [`BETWEEN_PROPERTIES`] order.
    pub properties: [PropertyTally; 4],
}

impl BetweenCheck {
    /// Adds another check's segments to this one.
    pub fn merge(&mut self, other: &BetweenCheck) {
        self.segments += other.segments;
        self.skipped += other.skipped;
        for (a, b) in self.properties.iter_mut().zip(&other.properties) {
            a.merge(b);
        }
    }

    /// All properties together.
    pub fn total(&self) -> PropertyTally {
        let mut t = PropertyTally::default();
        self.properties.iter().for_each(|p| {
            t.checked += p.checked;
            t.passed += p.passed;
            t.passed_strict += p.passed_strict;
        });
        t
    }
}

/// Checks the segment `z → z + eps·d` (see [`BetweenCheck`]): the rectangles of the two end images and of
/// `params.samples` intermediate images. Angles are compared after unwrapping along the segment (each step
/// taken modulo 90°, as [`measure_direction`] compares them), so a near-square whose long and short sides swap
/// does not count as a jump. A segment with an image without an object is counted as skipped.
pub fn between_check(
    gen: &dyn ImageGenerator,
    z: &[f64],
    d: &[f64],
    params: &BetweenParams,
) -> Result<BetweenCheck> {
    let k = gen.latent_len();
    check_segment(k, z, d)?;
    if params.samples == 0 {
        return Err(Error::input("the between-ends check needs at least one intermediate sample, found 0"));
    }
    let finite_nonneg = |x: f64| x >= 0.0 && x.is_finite();
    if !(params.eps.is_finite()
        && finite_nonneg(params.tolerance_degrees)
        && finite_nonneg(params.tolerance_pixels))
    {
        return Err(Error::input(format!(
            "eps must be finite and the tolerances finite and non-negative, found eps {}, {}°, {} pixels",
            params.eps, params.tolerance_degrees, params.tolerance_pixels
        )));
    }
    // Order along the segment: start, the intermediates, end.
    let n = params.samples + 2;
    let ts: Vec<f64> = (0..n).map(|j| j as f64 / (n - 1) as f64).collect();
    let mut batch = Vec::with_capacity(n * k);
    for &t in &ts {
        batch.extend(z.iter().zip(d).map(|(a, b)| a + t * params.eps * b));
    }
    let shape = gen.image_shape();
    let len = shape.iter().product::<usize>();
    let images = gen.generate(&batch, n)?;
    let rects: Option<Vec<Rect>> =
        images.chunks_exact(len).map(|img| min_area_rect(img, shape, params.threshold)).collect();
    let Some(rects) = rects else {
        return Ok(BetweenCheck { skipped: 1, ..BetweenCheck::default() });
    };
    let mut angle = vec![0.0; n];
    for j in 1..n {
        angle[j] = angle[j - 1] + wrap90(rects[j].angle - rects[j - 1].angle);
    }
    let series: [Vec<f64>; 4] = [
        angle,
        rects.iter().map(|r| r.cx).collect(),
        rects.iter().map(|r| r.cy).collect(),
        rects.iter().map(Rect::size).collect(),
    ];
    let tolerances =
        [params.tolerance_degrees, params.tolerance_pixels, params.tolerance_pixels, params.tolerance_pixels];
    let mut check = BetweenCheck { segments: 1, ..BetweenCheck::default() };
    for ((s, tol), tally) in series.iter().zip(tolerances).zip(&mut check.properties) {
        let (lo, hi) = (s[0].min(s[n - 1]), s[0].max(s[n - 1]));
        for &v in &s[1..n - 1] {
            let outside = (lo - v).max(v - hi).max(0.0);
            tally.checked += 1;
            tally.passed += usize::from(outside <= tol);
            tally.passed_strict += usize::from(outside == 0.0);
            tally.worst = tally.worst.max(outside);
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws a filled rectangle (12 × 6 at scale 1) on a 32 × 32 canvas, anti-aliased by 4×4 supersampling:
    /// latent `[angle (radians), dx, dy, log scale, shear]`.
    struct Shapes;

    impl ImageGenerator for Shapes {
        fn latent_len(&self) -> usize {
            5
        }
        fn image_shape(&self) -> [usize; 3] {
            [1, 32, 32]
        }
        fn generate(&self, zs: &[f64], n: usize) -> Result<Vec<f64>> {
            let mut out = Vec::with_capacity(n * 1024);
            for z in zs.chunks_exact(5) {
                let (a, dx, dy, s, sh) = (z[0], z[1], z[2], z[3].exp(), z[4]);
                for y in 0..32 {
                    for x in 0..32 {
                        let mut hits = 0;
                        for sy in 0..4 {
                            for sx in 0..4 {
                                // Undo translation, rotation, scale and shear to test against the base rectangle.
                                let px = x as f64 + (sx as f64 + 0.5) / 4.0 - 16.0 - dx;
                                let py = y as f64 + (sy as f64 + 0.5) / 4.0 - 16.0 - dy;
                                let (u, v) = (px * a.cos() + py * a.sin(), -px * a.sin() + py * a.cos());
                                let (u, v) = (u / s, v / s);
                                let u = u - sh * v;
                                if u.abs() <= 6.0 && v.abs() <= 3.0 {
                                    hits += 1;
                                }
                            }
                        }
                        out.push(hits as f64 / 16.0);
                    }
                }
            }
            Ok(out)
        }
    }

    #[test]
    fn rectangle_of_an_axis_aligned_block() {
        let mut img = vec![0.0; 100];
        for y in 2..5 {
            for x in 3..9 {
                img[y * 10 + x] = 1.0;
            }
        }
        let r = min_area_rect(&img, [1, 10, 10], 0.5).unwrap();
        assert!((r.cx - 6.0).abs() < 1e-12 && (r.cy - 3.5).abs() < 1e-12, "{r:?}");
        assert!((r.length - 6.0).abs() < 1e-12 && (r.breadth - 3.0).abs() < 1e-12, "{r:?}");
        assert!(r.angle.abs() < 1e-9 || (r.angle - 180.0).abs() < 1e-9, "{r:?}");
        assert!(min_area_rect(&[0.0; 4], [1, 2, 2], 0.5).is_none());
    }

    #[test]
    fn rotated_rectangle_angle_is_recovered() {
        for deg in [-30.0f64, 10.0, 25.0, 40.0] {
            let img = Shapes.generate(&[deg.to_radians(), 0.0, 0.0, 0.0, 0.0], 1).unwrap();
            let r = min_area_rect(&img, [1, 32, 32], 0.5).unwrap();
            assert!(wrap90(r.angle - deg).abs() < 2.5, "{deg}: {r:?}");
            assert!((r.length - 12.0).abs() < 0.5 && (r.breadth - 6.0).abs() < 0.5, "{r:?}");
            assert!((r.cx - 16.0).abs() < 0.6 && (r.cy - 16.0).abs() < 0.6, "{r:?}");
        }
    }

    #[test]
    fn axis_directions_are_named_and_calibrated() {
        let z = [0.3, 0.0, 0.0, 0.0, 0.0];
        let p = GeometryParams::default();
        let unit = |i: usize| (0..5).map(|j| f64::from(u8::from(i == j))).collect::<Vec<f64>>();
        let measured: Vec<DirectionGeometry> =
            (0..5).map(|i| measure_direction(&Shapes, &z, &unit(i), &p).unwrap()).collect();
        let names: Vec<Option<Property>> = measured.iter().map(|m| m.name).collect();
        // dx and dy are along the image axes; the object is rotated by 0.3 rad, which does not matter for them.
        assert_eq!(names[0], Some(Property::Rotation), "{:?}", measured[0]);
        assert_eq!(names[1], Some(Property::TranslateX), "{:?}", measured[1]);
        assert_eq!(names[2], Some(Property::TranslateY), "{:?}", measured[2]);
        assert_eq!(names[3], Some(Property::Scale), "{:?}", measured[3]);
        // Calibrations: 1 rad = 57.3 degrees, 1 pixel per unit, e^t scaling is 100 % per unit at t = 0.
        let (_, deg) = measured[0].calibration().unwrap();
        assert!((deg - 57.3).abs() < 6.0, "{deg}");
        let (_, px) = measured[1].calibration().unwrap();
        assert!((px - 1.0).abs() < 0.15, "{px}");
        let (_, pct) = measured[3].calibration().unwrap();
        assert!((pct - 100.0).abs() < 15.0, "{pct}");
        let m = independence_matrix(&measured, 0.25);
        let t = 0; // translation row
        assert_eq!(m.cells[t][1].independent, Some(true), "{m:?}");
        assert_eq!(m.cells[t][2].independent, Some(true), "{m:?}");
        assert_eq!(m.cells[1][2].independent, Some(true), "rotation does not scale: {m:?}");
        assert_eq!(m.cells[2][1].independent, Some(true), "scaling does not rotate: {m:?}");
        assert_eq!(m.cells[1][1].ratio, None);
    }

    #[test]
    fn a_mixed_direction_is_not_named() {
        let d = [0.0, 1.0, 1.0, 0.0, 0.0];
        let g = measure_direction(&Shapes, &[0.0; 5], &d, &GeometryParams::default()).unwrap();
        assert_eq!(g.name, None, "{g:?}");
        assert!(g.effects[1] > 0.5 && g.effects[2] > 0.5);
    }

    /// [`Shapes`] with the x offset folded: `dx = 4 (relu(z₁) + relu(−z₁))`, a relu network's way of making a
    /// path that goes out and comes back.
    struct FoldedShapes;

    impl ImageGenerator for FoldedShapes {
        fn latent_len(&self) -> usize {
            5
        }
        fn image_shape(&self) -> [usize; 3] {
            [1, 32, 32]
        }
        fn generate(&self, zs: &[f64], n: usize) -> Result<Vec<f64>> {
            let folded: Vec<f64> = zs
                .chunks_exact(5)
                .flat_map(|z| [z[0], 4.0 * (z[1].max(0.0) + (-z[1]).max(0.0)), z[2], z[3], z[4]])
                .collect();
            Shapes.generate(&folded, n)
        }
    }

    fn unit(i: usize) -> Vec<f64> {
        (0..5).map(|j| f64::from(u8::from(i == j))).collect()
    }

    /// Along translation, rotation and scaling of the rectangle every intermediate property lies between the
    /// ends'; the properties that do not change in truth stay within the default tolerance (the measurement's
    /// noise, which this test also bounds).
    #[test]
    fn monotone_mutations_pass_the_between_ends_check() {
        let z = [0.3, -2.0, 1.0, 0.0, 0.0];
        let p = BetweenParams::default();
        // (latent axis, eps, the property it changes): 5 pixels right, 4 up, 0.6 rad, 40% larger.
        for (axis, eps, changed) in [(1, 5.0, 1), (2, -4.0, 2), (0, 0.6, 0), (3, 0.34, 3)] {
            let c = between_check(&Shapes, &z, &unit(axis), &BetweenParams { eps, ..p }).unwrap();
            assert_eq!((c.segments, c.skipped), (1, 0));
            for (prop, t) in BETWEEN_PROPERTIES.iter().zip(&c.properties) {
                assert_eq!(t.checked, 20);
                assert_eq!(t.passed, 20, "axis {axis}, {}: {c:?}", prop.name());
            }
            // The property that moves lies strictly between the ends, with no tolerance needed.
            assert_eq!(c.properties[changed].passed_strict, 20, "axis {axis}: {c:?}");
        }
    }

    /// Through the fold the object moves 4 pixels left and back: every intermediate x lies outside the ends'
    /// (equal) values, by up to 4 pixels at the middle; the other properties are untouched and pass.
    #[test]
    fn a_folded_path_fails_the_between_ends_check() {
        let z = [0.0, -1.0, 0.0, 0.0, 0.0];
        let c = between_check(&FoldedShapes, &z, &unit(1), &BetweenParams { eps: 2.0, ..Default::default() })
            .unwrap();
        let [angle, x, y, size] = c.properties;
        assert_eq!((x.checked, x.passed, x.passed_strict), (20, 0, 0), "{c:?}");
        // The middle samples are at t = 10/21 and 11/21: dx = 4/21 from the fold.
        assert!((x.worst - 4.0 * 20.0 / 21.0).abs() < 0.1, "{c:?}");
        for t in [angle, y, size] {
            assert_eq!((t.checked, t.passed), (20, 20), "{c:?}");
        }
        let total = c.total();
        assert_eq!((total.checked, total.passed), (80, 60));
    }

    #[test]
    fn segments_without_an_object_are_skipped_and_checks_merge() {
        // log scale −4: the rectangle is 0.2 pixels long and no pixel reaches the threshold at the start.
        let z = [0.0, 0.0, 0.0, -4.0, 0.0];
        let p = BetweenParams { eps: 4.0, samples: 5, ..Default::default() };
        let mut c = between_check(&Shapes, &z, &unit(3), &p).unwrap();
        assert_eq!((c.segments, c.skipped, c.total().checked), (0, 1, 0));
        assert_eq!(c.properties[0].fraction(), None);
        c.merge(&between_check(&Shapes, &[0.0; 5], &unit(1), &p).unwrap());
        assert_eq!((c.segments, c.skipped, c.properties[1].checked), (1, 1, 5));
        assert_eq!(c.properties[1].fraction(), Some(1.0));

        let err = between_check(&Shapes, &[0.0; 4], &unit(1), &p).unwrap_err().to_string();
        assert!(err.contains("need 5 values, found 4 and 5"), "{err}");
        let err = between_check(&Shapes, &[0.0; 5], &unit(1), &BetweenParams { samples: 0, ..p })
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one intermediate sample"), "{err}");
    }
}
