//! Consumers of a chain as the engine streams it.

use std::ops::ControlFlow;

use gcert_core::Chain;

/// Receives the points of a chain in order: ratios strictly increase within and across calls, and no point
/// is delivered twice. `values` holds `ratios.len()` rows of the network's output.
///
/// Returning `ControlFlow::Break(())` stops the walk: on one thread (`ExactLine::with_parallel(false)`) the
/// engine computes nothing past the points delivered so far (a first-violation or largest-tolerance search needs
/// only the chain up to its answer). A parallel run computes a window of groups (4 per thread) ahead of the
/// sink, and at the first split that window is up to half the segment, so a search that usually stops early
/// should run on one thread (as `examples/first_violation.rs` and the hybrid's prefix do).
pub trait Sink {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()>;
}

/// Keeping every point gives the whole chain.
impl Sink for Chain {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        self.ratios.extend_from_slice(ratios);
        self.values.extend_from_slice(values);
        ControlFlow::Continue(())
    }
}

/// Exact per-coordinate bounds over a segment: on each piece every coordinate is linear in `t`, so its
/// extremes over the segment are among the chain's points.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// Number of points seen (pieces + 1).
    pub points: usize,
}

impl Bounds {
    pub fn new(width: usize) -> Self {
        Bounds { lower: vec![f64::INFINITY; width], upper: vec![f64::NEG_INFINITY; width], points: 0 }
    }

    pub fn pieces(&self) -> usize {
        self.points.saturating_sub(1)
    }
}

impl Sink for Bounds {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        let w = self.lower.len();
        for row in values.chunks_exact(w) {
            for ((lo, hi), &v) in self.lower.iter_mut().zip(self.upper.iter_mut()).zip(row) {
                *lo = lo.min(v);
                *hi = hi.max(v);
            }
        }
        self.points += ratios.len();
        ControlFlow::Continue(())
    }
}
