//! Continuity measurements of a generator card `G` (docs/mathematics.md §7, paper Def. 3, Table 8), in pure
//! Rust: no libtorch, so they run on any committed generator card.
//!
//! Over `N` random latent pairs `z1, z2` drawn from the standard normal prior, [`measure`] reports
//! - the ratios `d_X / d_Z = ‖G(z1) − G(z2)‖ / ‖z1 − z2‖` as a distribution, and Def. 3's constant
//!   `C = max(max ratio, 1 / min ratio)` (the smallest `C` with `d_Z / C ≤ d_X ≤ C d_Z` on the sampled pairs);
//! - path evenness: per segment, the largest deviation of `‖G(z_γ) − G(z1)‖ / ‖G(z2) − G(z1)‖` from `γ` over
//!   a grid of `γ`, with `z_γ = (1 − γ) z1 + γ z2`;
//! - straightness: per segment, the largest distance of `G(z_γ)` from the straight path
//!   `(1 − γ) G(z1) + γ G(z2)`, relative to `‖G(z2) − G(z1)‖`;
//! - the exact chain's piece count per segment (fewer pieces: cheaper certification).
//!
//! [`quality`] judges the generator's samples with a classifier card (mean top softmax probability, the
//! fraction above 0.9, the class histogram and its entropy), as training does with libtorch.
//!
//! ```
//! use gcert_continuity::{measure, Options};
//! use gcert_core::builder::CardBuilder;
//!
//! let g = CardBuilder::new("g", &[2], 0).linear(8).relu().linear(6).network()?;
//! let report = measure(&g, &Options { pairs: 50, chain_pairs: 10, ..Options::default() })?;
//! assert_eq!(report.ratio.count, 50);
//! assert!(report.c >= 1.0 && report.c.is_finite());
//! assert!(report.pieces.as_ref().is_some_and(|p| p.min >= 1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ops::ControlFlow;

use gcert_core::{Network, Segment};
use gcert_exactline::{ExactLine, Sink};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub mod quality;
pub use quality::{quality, Quality};

/// What can go wrong while measuring.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that is out of range.
    #[error("continuity: {0}")]
    Input(String),
    /// The generator rejected an input, or the segment engine the generator.
    #[error(transparent)]
    Core(#[from] gcert_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to measure and how much.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Random latent pairs for the ratios, evenness and straightness.
    pub pairs: usize,
    /// Interior points `γ = j / (gammas + 1)`, `j = 1..=gammas`, per segment for evenness and straightness.
    pub gammas: usize,
    /// How many of the pairs (the first ones) also get an exact chain; 0 skips the chains (needed for a
    /// generator that is not piecewise linear).
    pub chain_pairs: usize,
    /// Seed of the ChaCha stream the latents are drawn from.
    pub seed: u64,
    /// Pairs evaluated per batch of the generator.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { pairs: 10_000, gammas: 15, chain_pairs: 100, seed: 0, batch: 32 }
    }
}

/// A distribution summarised by its extremes, mean and percentiles (linear interpolation between ranks).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub p5: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p95: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// The summary of `values`; `None` when there are none. NaNs sort last (they cannot arise from finite
    /// generator outputs, which gcert-core checks).
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let x = p * (v.len() - 1) as f64;
            let (i, frac) = (x.floor() as usize, x.fract());
            if i + 1 < v.len() {
                v[i] + frac * (v[i + 1] - v[i])
            } else {
                v[i]
            }
        };
        Some(Summary {
            count: v.len(),
            min: v[0],
            p5: q(0.05),
            p25: q(0.25),
            median: q(0.5),
            p75: q(0.75),
            p95: q(0.95),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// The measurements of one generator.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `d_X / d_Z` over the pairs.
    pub ratio: Summary,
    /// Def. 3's constant on the sampled pairs, `max(max ratio, 1 / min ratio)`; infinite when two distinct
    /// latents map to the same image.
    pub c: f64,
    /// The smallest Def. 3 constant over every rescaling `s · d_X` of the image distance,
    /// `√(max ratio / min ratio)`: `C` without the arbitrary unit of pixel distances (1 for a map that scales
    /// every distance by the same factor).
    pub c_rescaled: f64,
    /// The same from the 5th and 95th percentiles, `√(p95 / p5)`: insensitive to the few most extreme pairs.
    pub c_rescaled_p5_p95: f64,
    /// Per segment, the largest `|‖G(z_γ) − G(z1)‖ / ‖G(z2) − G(z1)‖ − γ|`; `None` when every pair collapsed.
    pub evenness: Option<Summary>,
    /// Per segment, the largest `‖G(z_γ) − ((1 − γ) G(z1) + γ G(z2))‖ / ‖G(z2) − G(z1)‖`.
    pub straightness: Option<Summary>,
    /// Pairs whose two images coincide (no evenness or straightness for them).
    pub collapsed: usize,
    /// Exact-chain pieces per segment over the first `chain_pairs` pairs; `None` when no chain was asked for.
    pub pieces: Option<Summary>,
}

/// The per-segment measurements from the images of `z1`, `z2` and of `z_γ` at each `gammas[j]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentStats {
    /// `‖G(z1) − G(z2)‖ / ‖z1 − z2‖`.
    pub ratio: f64,
    /// `None` when `G(z1) = G(z2)`.
    pub evenness: Option<f64>,
    pub straightness: Option<f64>,
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

/// The measurements of one segment from its end latents, the end images and the images at `gammas`
/// (`images[j]` is `G(z_γ)` for `γ = gammas[j]`).
pub fn segment_stats(
    z1: &[f64],
    z2: &[f64],
    g1: &[f64],
    g2: &[f64],
    gammas: &[f64],
    images: &[&[f64]],
) -> SegmentStats {
    let d_z = dist(z1, z2);
    let d_x = dist(g1, g2);
    let ratio = d_x / d_z;
    if d_x == 0.0 {
        return SegmentStats { ratio, evenness: None, straightness: None };
    }
    let mut even: f64 = 0.0;
    let mut straight: f64 = 0.0;
    for (&gamma, img) in gammas.iter().zip(images) {
        even = even.max((dist(img, g1) / d_x - gamma).abs());
        let off = img
            .iter()
            .zip(g1.iter().zip(g2))
            .map(|(x, (a, b))| {
                let d = x - ((1.0 - gamma) * a + gamma * b);
                d * d
            })
            .sum::<f64>()
            .sqrt();
        straight = straight.max(off / d_x);
    }
    SegmentStats { ratio, evenness: Some(even), straightness: Some(straight) }
}

/// Counts the points of a streamed chain without keeping them.
struct PointCount(usize);

impl Sink for PointCount {
    fn push(&mut self, ratios: &[f64], _values: &[f64]) -> ControlFlow<()> {
        self.0 += ratios.len();
        ControlFlow::Continue(())
    }
}

/// A standard normal value (Box–Muller; `1 − U[0, 1)` keeps the logarithm finite).
fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Measures `generator` over `options.pairs` random latent pairs (see the crate docs).
pub fn measure(generator: &Network, options: &Options) -> Result<Report> {
    if options.pairs == 0 {
        return Err(Error::Input("pairs must be positive, found 0".into()));
    }
    if options.batch == 0 {
        return Err(Error::Input("batch must be positive, found 0".into()));
    }
    if options.chain_pairs > options.pairs {
        return Err(Error::Input(format!(
            "chain_pairs ({}) must not exceed pairs ({})",
            options.chain_pairs, options.pairs
        )));
    }
    let k = generator.input_len();
    let width = generator.output_len();
    let gammas: Vec<f64> = (1..=options.gammas).map(|j| j as f64 / (options.gammas + 1) as f64).collect();
    let engine = if options.chain_pairs > 0 { Some(ExactLine::for_networks(&[generator])?) } else { None };
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);

    let rows = 2 + gammas.len();
    let (mut ratios, mut evenness, mut straightness, mut pieces) = (vec![], vec![], vec![], vec![]);
    let mut collapsed = 0;
    let mut done = 0;
    while done < options.pairs {
        let n = options.batch.min(options.pairs - done);
        let mut input = Vec::with_capacity(n * rows * k);
        let mut ends = Vec::with_capacity(n);
        for _ in 0..n {
            let z1: Vec<f64> = (0..k).map(|_| std_normal(&mut rng)).collect();
            let z2: Vec<f64> = (0..k).map(|_| std_normal(&mut rng)).collect();
            input.extend_from_slice(&z1);
            input.extend_from_slice(&z2);
            for &g in &gammas {
                input.extend(z1.iter().zip(&z2).map(|(a, b)| (1.0 - g) * a + g * b));
            }
            ends.push((z1, z2));
        }
        let out = generator.forward(&input, n * rows)?;
        for (i, (z1, z2)) in ends.into_iter().enumerate() {
            let row = |r: usize| &out[(i * rows + r) * width..(i * rows + r + 1) * width];
            let images: Vec<&[f64]> = (2..rows).map(row).collect();
            let s = segment_stats(&z1, &z2, row(0), row(1), &gammas, &images);
            ratios.push(s.ratio);
            match (s.evenness, s.straightness) {
                (Some(e), Some(st)) => {
                    evenness.push(e);
                    straightness.push(st);
                }
                _ => collapsed += 1,
            }
            if let Some(engine) = &engine {
                if done + i < options.chain_pairs {
                    let mut count = PointCount(0);
                    let _ = engine.run(&Segment::new(z1, z2)?, &mut count)?; // never stops early
                    pieces.push(count.0.saturating_sub(1) as f64);
                }
            }
        }
        done += n;
    }
    let ratio = Summary::of(&ratios).ok_or_else(|| Error::Input("no pairs were measured".into()))?;
    let c = ratio.max.max(1.0 / ratio.min);
    let c_rescaled = (ratio.max / ratio.min).sqrt();
    let c_rescaled_p5_p95 = (ratio.p95 / ratio.p5).sqrt();
    Ok(Report {
        ratio,
        c,
        c_rescaled,
        c_rescaled_p5_p95,
        evenness: Summary::of(&evenness),
        straightness: Summary::of(&straightness),
        collapsed,
        pieces: Summary::of(&pieces),
    })
}

#[cfg(test)]
mod tests;
