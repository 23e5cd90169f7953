//! The paper's Table 4: how precisely the set of mutated images is known. gcert's exact per-pixel bounds of the
//! generator's images along a geometric mutation's latent segment (the extremes of the exact chain,
//! `gcert_certify::pixel_bounds`), against the interval bounds a pixel-space geometric verifier (DeepG's interval
//! baseline) gets for the same range of the same transform applied to the image itself.
//!
//! The pixel-space bounds (docs/evaluate.md §Table 4): output pixel `p` of the transformed image is the bilinear
//! interpolation of the image at the source point `s(p, θ)` (the inverse transform; zero outside the image).
//! The parameter range `[−A, A]` is cut into `splits` equal sub-ranges; over each, interval arithmetic gives a
//! box holding `s(p, θ)` (exact ranges of `cos`, `sin`, of a translation, of `1/f` for a scale), and the range
//! of bilinear interpolation over the box is exact: on each pixel cell the interpolant is bilinear, so its
//! extremes over the part of the box in the cell are at that part's corners. The union over sub-ranges is the
//! pixel's interval. Every value the transform can give lies inside it; more splits make it tighter.

use gcert_certify::{pixel_bounds, PixelBounds};
use gcert_core::{Direction, Network};
use gcert_directions::geometry::Property;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::summary::median;

/// Mean and median width of per-pixel bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Widths {
    pub mean: f64,
    pub median: f64,
}

impl Widths {
    pub fn of(lower: &[f64], upper: &[f64]) -> Widths {
        let w: Vec<f64> = lower.iter().zip(upper).map(|(l, u)| u - l).collect();
        Widths { mean: w.iter().sum::<f64>() / w.len().max(1) as f64, median: median(&w).unwrap_or(0.0) }
    }
}

/// One image × geometric mutation of Table 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Precision {
    /// gcert: exact bounds of `G(z + t·eps·d)`, `t ∈ [−1, 1]`, and the chain's pieces.
    pub gcert: Widths,
    pub gcert_pieces: usize,
    pub gcert_ms: f64,
    /// Interval bounds of the transform of the image itself over `[−amount, amount]` as one range, and cut into
    /// [`SPLITS`] sub-ranges.
    pub interval: Widths,
    pub interval_split: Widths,
    pub interval_ms: f64,
}

/// Sub-ranges of the split interval baseline.
pub const SPLITS: usize = 100;

/// gcert's exact per-pixel bounds of `generator` over `z ± eps·d`.
pub fn gcert_bounds(generator: &Network, z: &[f64], direction: &Direction, eps: f64) -> Result<PixelBounds> {
    let segments = [direction.segment(z, eps)?, direction.segment(z, -eps)?];
    Ok(pixel_bounds(generator.layers().iter().collect(), &segments)?)
}

/// Bilinear interpolation of channel `img` (`h × w`) at `(x, y)` (column, row), zero outside.
fn pixel(img: &[f64], h: usize, w: usize, i: i64, j: i64) -> f64 {
    if i < 0 || j < 0 || i >= w as i64 || j >= h as i64 {
        0.0
    } else {
        img[j as usize * w + i as usize]
    }
}

fn bilinear(img: &[f64], h: usize, w: usize, x: f64, y: f64) -> f64 {
    let (i, j) = (x.floor(), y.floor());
    let (fx, fy) = (x - i, y - j);
    let (i, j) = (i as i64, j as i64);
    let a = pixel(img, h, w, i, j) * (1.0 - fx) + pixel(img, h, w, i + 1, j) * fx;
    let b = pixel(img, h, w, i, j + 1) * (1.0 - fx) + pixel(img, h, w, i + 1, j + 1) * fx;
    a * (1.0 - fy) + b * fy
}

/// The exact range of bilinear interpolation of `img` over the box `[x0, x1] × [y0, y1]`.
fn box_range(img: &[f64], h: usize, w: usize, x0: f64, x1: f64, y0: f64, y1: f64) -> (f64, f64) {
    // Far outside the image everything is 0; clip the box to one cell beyond it.
    let (x0, x1) = (x0.max(-2.0), x1.min(w as f64 + 1.0));
    let (y0, y1) = (y0.max(-2.0), y1.min(h as f64 + 1.0));
    if x0 > x1 || y0 > y1 {
        return (0.0, 0.0);
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut ci = x0.floor();
    while ci <= x1 {
        let (a, b) = (x0.max(ci), x1.min(ci + 1.0));
        let mut cj = y0.floor();
        while cj <= y1 {
            let (c, d) = (y0.max(cj), y1.min(cj + 1.0));
            for (x, y) in [(a, c), (a, d), (b, c), (b, d)] {
                // Evaluate inside cell (ci, cj) even on its far edge, where floor() would pick the next cell.
                let (fx, fy) = (x - ci, y - cj);
                let (i, j) = (ci as i64, cj as i64);
                let top = pixel(img, h, w, i, j) * (1.0 - fx) + pixel(img, h, w, i + 1, j) * fx;
                let bot = pixel(img, h, w, i, j + 1) * (1.0 - fx) + pixel(img, h, w, i + 1, j + 1) * fx;
                let v = top * (1.0 - fy) + bot * fy;
                lo = lo.min(v);
                hi = hi.max(v);
            }
            cj += 1.0;
        }
        ci += 1.0;
    }
    (lo, hi)
}

/// The range of `cos` over `[a, b]`.
fn cos_range(a: f64, b: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (a.cos().min(b.cos()), a.cos().max(b.cos()));
    let pi = std::f64::consts::PI;
    let mut k = (a / pi).ceil();
    while k * pi <= b {
        if (k as i64).rem_euclid(2) == 0 {
            hi = 1.0;
        } else {
            lo = -1.0;
        }
        k += 1.0;
    }
    (lo, hi)
}

fn sin_range(a: f64, b: f64) -> (f64, f64) {
    let h = std::f64::consts::FRAC_PI_2;
    cos_range(a - h, b - h)
}

/// Products of intervals.
fn mul(a: (f64, f64), k: f64) -> (f64, f64) {
    if k >= 0.0 {
        (a.0 * k, a.1 * k)
    } else {
        (a.1 * k, a.0 * k)
    }
}

/// The box of source points of output pixel `(u, v)` for parameters in `[p0, p1]` (in the transform's unit).
fn source_box(t: Property, u: f64, v: f64, cx: f64, cy: f64, p0: f64, p1: f64) -> (f64, f64, f64, f64) {
    let (dx, dy) = (u - cx, v - cy);
    match t {
        Property::Rotation => {
            // s = c + R(−θ)(p − c): s_x = cx + cosθ·dx + sinθ·dy, s_y = cy − sinθ·dx + cosθ·dy.
            let (a, b) = (p0.to_radians(), p1.to_radians());
            let (c, s) = (cos_range(a, b), sin_range(a, b));
            let (x1, x2) = (mul(c, dx), mul(s, dy));
            let (y1, y2) = (mul(s, -dx), mul(c, dy));
            (cx + x1.0 + x2.0, cx + x1.1 + x2.1, cy + y1.0 + y2.0, cy + y1.1 + y2.1)
        }
        Property::TranslateX => (u - p1, u - p0, v, v),
        Property::TranslateY => (u, u, v - p1, v - p0),
        Property::Scale => {
            // s = c + (p − c)/f, f = 1 + θ/100 > 0; 1/f is monotone.
            let inv = (1.0 / (1.0 + p1 / 100.0), 1.0 / (1.0 + p0 / 100.0));
            let (x, y) = (mul(inv, dx), mul(inv, dy));
            (cx + x.0, cx + x.1, cy + y.0, cy + y.1)
        }
        Property::Shear => {
            // s_x = u − k·(v − cy), k = θ/100.
            let k = (p0 / 100.0, p1 / 100.0);
            let x = mul(k, -dy);
            (u + x.0, u + x.1, v, v)
        }
    }
}

/// Interval bounds of every pixel of `image` (`c × h × w`) under `transform` over `[−amount, amount]` (in its
/// unit), the range cut into `splits` sub-ranges (module documentation).
pub fn interval_bounds(
    image: &[f64],
    shape: [usize; 3],
    transform: Property,
    amount: f64,
    splits: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let [c, h, w] = shape;
    if image.len() != c * h * w {
        return Err(Error::input(format!("the image has {} values, not {c}×{h}×{w}", image.len())));
    }
    if !(amount.is_finite() && amount > 0.0) || splits == 0 {
        return Err(Error::input("interval bounds need a positive amount and at least one split"));
    }
    if transform == Property::Scale && amount >= 100.0 {
        return Err(Error::input("a scale range must stay below 100%"));
    }
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut lower = vec![f64::INFINITY; image.len()];
    let mut upper = vec![f64::NEG_INFINITY; image.len()];
    for s in 0..splits {
        let p0 = -amount + 2.0 * amount * s as f64 / splits as f64;
        let p1 = -amount + 2.0 * amount * (s + 1) as f64 / splits as f64;
        for v in 0..h {
            for u in 0..w {
                let (x0, x1, y0, y1) = source_box(transform, u as f64, v as f64, cx, cy, p0, p1);
                for ch in 0..c {
                    let img = &image[ch * h * w..(ch + 1) * h * w];
                    let (lo, hi) = box_range(img, h, w, x0, x1, y0, y1);
                    let at = (ch * h + v) * w + u;
                    lower[at] = lower[at].min(lo);
                    upper[at] = upper[at].max(hi);
                }
            }
        }
    }
    Ok((lower, upper))
}

/// The transform of `image` at one parameter value (bilinear, zero outside): what the interval bounds enclose.
pub fn transform_image(image: &[f64], shape: [usize; 3], transform: Property, p: f64) -> Vec<f64> {
    let [c, h, w] = shape;
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut out = vec![0.0; image.len()];
    for v in 0..h {
        for u in 0..w {
            let (x, _, y, _) = source_box(transform, u as f64, v as f64, cx, cy, p, p);
            for ch in 0..c {
                out[(ch * h + v) * w + u] = bilinear(&image[ch * h * w..(ch + 1) * h * w], h, w, x, y);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit() -> Vec<f64> {
        // A blurry ring on 16×16.
        let mut img = vec![0.0; 256];
        for y in 0..16 {
            for x in 0..16 {
                let r = ((x as f64 - 7.0).powi(2) + (y as f64 - 8.5).powi(2)).sqrt();
                img[y * 16 + x] = (1.0 - (r - 4.5).abs() / 2.0).clamp(0.0, 1.0);
            }
        }
        img
    }

    #[test]
    fn interval_bounds_enclose_every_transformed_image_and_tighten_with_splits() {
        let img = digit();
        let shape = [1, 16, 16];
        for (t, amount) in [
            (Property::Rotation, 20.0),
            (Property::TranslateX, 2.0),
            (Property::TranslateY, 1.5),
            (Property::Scale, 15.0),
            (Property::Shear, 20.0),
        ] {
            let (l1, u1) = interval_bounds(&img, shape, t, amount, 1).unwrap();
            let (l8, u8) = interval_bounds(&img, shape, t, amount, 8).unwrap();
            for k in 0..=200 {
                let p = -amount + 2.0 * amount * k as f64 / 200.0;
                let x = transform_image(&img, shape, t, p);
                for i in 0..x.len() {
                    assert!(l8[i] <= x[i] + 1e-12 && x[i] <= u8[i] + 1e-12, "{t:?} {p} pixel {i}");
                    assert!(
                        l1[i] <= l8[i] + 1e-12 && u8[i] <= u1[i] + 1e-12,
                        "{t:?}: splitting loosened pixel {i}"
                    );
                }
            }
            let (w1, w8) = (Widths::of(&l1, &u1), Widths::of(&l8, &u8));
            assert!(w8.mean <= w1.mean && w8.mean > 0.0, "{t:?}: {w1:?} {w8:?}");
        }
        // At parameter 0 every transform is the identity.
        for t in Property::ALL {
            let x = transform_image(&img, shape, t, 0.0);
            assert!(x.iter().zip(&img).all(|(a, b)| (a - b).abs() < 1e-12), "{t:?}");
        }
    }

    #[test]
    fn trig_ranges_include_interior_extremes() {
        let (lo, hi) = cos_range(-0.5, 0.5);
        assert_eq!(hi, 1.0);
        assert!((lo - 0.5f64.cos()).abs() < 1e-15);
        let (lo, hi) = sin_range(1.0, 2.0);
        assert_eq!(hi, 1.0);
        assert!((lo - 1.0f64.sin().min(2.0f64.sin())).abs() < 1e-15);
        let (lo, _) = cos_range(3.0, 3.3);
        assert_eq!(lo, -1.0);
    }
}
