//! Segments in an input space and the exact chains they map to.

use crate::error::{Error, Result};
use crate::network::check_finite;

/// The segment `a + t (b − a)`, `t ∈ [0, 1]`: two finite points of equal length that differ (checked by
/// [`Segment::new`]; the fields are private so that every segment is valid).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Segment {
    /// A segment between two finite points of equal length that differ.
    pub fn new(a: Vec<f64>, b: Vec<f64>) -> Result<Segment> {
        if a.len() != b.len() {
            return Err(Error::input(format!("segment ends differ in length: {} and {}", a.len(), b.len())));
        }
        check_finite("segment start", &a)?;
        check_finite("segment end", &b)?;
        if a == b {
            return Err(Error::input("segment start and end are equal: the segment is a single point"));
        }
        Ok(Segment { a, b })
    }

    /// The start (`t = 0`).
    pub fn a(&self) -> &[f64] {
        &self.a
    }

    /// The end (`t = 1`).
    pub fn b(&self) -> &[f64] {
        &self.b
    }

    pub fn len(&self) -> usize {
        self.a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// The point at ratio `t`.
    pub fn point(&self, t: f64) -> Vec<f64> {
        self.a.iter().zip(&self.b).map(|(a, b)| a + t * (b - a)).collect()
    }
}

/// An exact chain: ratios `0 = t_0 < … < t_n = 1` and the network's output at each, affine in between.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chain {
    pub ratios: Vec<f64>,
    /// `ratios.len() × width` values, row-major.
    pub values: Vec<f64>,
    pub width: usize,
}

impl Chain {
    /// Number of affine pieces.
    pub fn pieces(&self) -> usize {
        self.ratios.len().saturating_sub(1)
    }

    /// The output at the `i`-th ratio.
    pub fn value(&self, i: usize) -> &[f64] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    /// The index of the piece `[t_i, t_{i+1}]` containing `t` (clamped to `[0, 1]`).
    pub fn piece_of(&self, t: f64) -> usize {
        let i = self.ratios.partition_point(|&r| r <= t);
        i.saturating_sub(1).min(self.pieces().saturating_sub(1))
    }

    /// The output at `t` by linear interpolation on its piece: the network's exact value for a PL network.
    pub fn interpolate(&self, t: f64) -> Vec<f64> {
        let i = self.piece_of(t);
        let (t0, t1) = (self.ratios[i], self.ratios[i + 1]);
        let s = (t - t0) / (t1 - t0);
        self.value(i).iter().zip(self.value(i + 1)).map(|(u, v)| u + s * (v - u)).collect()
    }
}
