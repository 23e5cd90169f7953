//! Per-pixel bounds of the precise input space of the classifier (docs/mathematics.md §2.4, paper Table 4).

use gcert_core::{Error, Layer, Result, Segment};
use gcert_exactline::{Bounds, ExactLine};

/// Exact per-pixel lower and upper bounds of `G` over a latent segment, and their widths' statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelBounds {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub pieces: usize,
    pub mean_width: f64,
    pub median_width: f64,
}

/// The bounds of every output of `generator` along the segment from `a` to `b`: on each piece of the exact
/// chain each pixel is linear, so the extremes are at the chain's points and the bounds are exact.
pub fn pixel_bounds(generator: Vec<&Layer>, segments: &[Segment]) -> Result<PixelBounds> {
    let engine = ExactLine::new(generator)?;
    let mut bounds = Bounds::new(engine.output_len());
    let mut pieces = 0;
    for s in segments {
        let mut side = Bounds::new(engine.output_len());
        let _ = engine.run(s, &mut side)?; // `Bounds` never stops the walk
        pieces += side.pieces();
        for i in 0..side.lower.len() {
            bounds.lower[i] = bounds.lower[i].min(side.lower[i]);
            bounds.upper[i] = bounds.upper[i].max(side.upper[i]);
        }
    }
    if segments.is_empty() {
        return Err(Error::input("pixel bounds need at least one segment"));
    }
    let mut widths: Vec<f64> = bounds.lower.iter().zip(&bounds.upper).map(|(l, u)| u - l).collect();
    let n = widths.len();
    let mean_width = widths.iter().sum::<f64>() / n as f64;
    widths.sort_by(f64::total_cmp);
    let median_width = if n % 2 == 1 { widths[n / 2] } else { 0.5 * (widths[n / 2 - 1] + widths[n / 2]) };
    Ok(PixelBounds { lower: bounds.lower, upper: bounds.upper, pieces, mean_width, median_width })
}
