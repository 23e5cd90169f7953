//! Mutation directions: unit vectors of a generator's input space, and where they came from.
//!
//! A semantic mutation moves a latent point `z` along a unit direction `d`: the mutated inputs are the segment
//! `z + t·E·d`. A [`Direction`] is always finite and of unit length, so that `t·E` is the distance travelled;
//! its [`Provenance`] says what produced it (a file the user gave, a global or local direction of a generator,
//! or a named geometric transform with its calibration), so that the command line, the certifiers and reports
//! describe the same move the same way.

use serde::Serialize;

use crate::chain::Segment;
use crate::error::{Error, Result};

/// What produced a direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Provenance {
    /// Given as values: a file (and row) or a difference of two points; `source` names it for messages.
    Given { source: String },
    /// Row `rank` (0 = most significant) of a generator's global directions (averaged over prior samples).
    Global { rank: usize },
    /// Row `rank` of a generator's local directions at one latent point, for an image region
    /// `[x0, y0, x1, y1]` when the directions were restricted to one.
    Local { rank: usize, region: Option<[usize; 4]> },
    /// The direction that realises a named geometric transform at a latent point, with its calibration: the
    /// transform's amount (in `unit`: degrees, pixels, percent) per unit of latent distance.
    Named { transform: String, unit: String, per_latent_unit: f64 },
    /// The strength input α of a style translator (docs/stylized.md), moved from 0 with the image held fixed.
    Strength { style: String },
}

/// A unit direction of an input space, with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Direction {
    #[serde(skip)]
    unit: Vec<f64>,
    /// The Euclidean norm of the values the direction was made from.
    given_norm: f64,
    provenance: Provenance,
}

impl Direction {
    /// Normalises `values` to unit length. Errors: no values, a non-finite value, or all zeros. The norm is
    /// computed scaled by the largest magnitude, so values whose plain sum of squares would underflow or
    /// overflow still normalise exactly.
    pub fn new(values: Vec<f64>) -> Result<Direction> {
        Direction::make(values, Provenance::Given { source: String::from("the direction") }, "")
    }

    /// [`Direction::new`] with a provenance; `Given { source }` (a file name, say) starts error messages.
    pub fn from_values(values: Vec<f64>, provenance: Provenance) -> Result<Direction> {
        let prefix = match &provenance {
            Provenance::Given { source } => format!("{source}: "),
            _ => String::new(),
        };
        Direction::make(values, provenance, &prefix)
    }

    fn make(values: Vec<f64>, provenance: Provenance, prefix: &str) -> Result<Direction> {
        if values.is_empty() {
            return Err(Error::input(format!("{prefix}the direction has no values")));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::input(format!(
                "{prefix}the direction has a non-finite value ({}) at index {i}",
                values[i]
            )));
        }
        let unit = crate::limits::unit(&values)
            .map_err(|why| Error::input(format!("{prefix}the direction {why}")))?;
        let given_norm = crate::limits::norm(&values);
        Ok(Direction { unit, given_norm, provenance })
    }

    /// Sets the provenance.
    pub fn with_provenance(mut self, provenance: Provenance) -> Direction {
        self.provenance = provenance;
        self
    }

    /// The unit vector.
    pub fn unit(&self) -> &[f64] {
        &self.unit
    }

    /// The norm of the values the direction was made from (may be `inf` when it overflows `f64`; the unit
    /// vector is exact regardless).
    pub fn given_norm(&self) -> f64 {
        self.given_norm
    }

    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// Number of coordinates.
    pub fn len(&self) -> usize {
        self.unit.len()
    }

    pub fn is_empty(&self) -> bool {
        self.unit.is_empty()
    }

    /// The move `eps·d`.
    pub fn scaled(&self, eps: f64) -> Vec<f64> {
        self.unit.iter().map(|d| eps * d).collect()
    }

    /// The segment from `origin` to `origin + eps·d` (`eps` may be negative for the other side). Errors if
    /// the lengths differ, `eps` is not finite and non-zero, or the move is too small to change `origin`.
    pub fn segment(&self, origin: &[f64], eps: f64) -> Result<Segment> {
        if origin.len() != self.len() {
            return Err(Error::input(format!(
                "the direction has {} values but the point has {}",
                self.len(),
                origin.len()
            )));
        }
        if !eps.is_finite() || eps == 0.0 {
            return Err(Error::input(format!("the tolerance must be finite and non-zero, found {eps}")));
        }
        let end: Vec<f64> = origin.iter().zip(&self.unit).map(|(z, d)| z + eps * d).collect();
        Segment::new(origin.to_vec(), end)
            .map_err(|_| Error::input(format!("the tolerance {eps} is too small to move the point")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_values_whose_square_sum_would_underflow_or_overflow() {
        for scale in [1e-200, 1e-310, 1.0, 1e200, 1e307] {
            let d = Direction::new(vec![3.0 * scale, -4.0 * scale]).unwrap();
            assert!((d.unit()[0] - 0.6).abs() < 1e-15 && (d.unit()[1] + 0.8).abs() < 1e-15, "{scale}: {d:?}");
        }
        let err = Direction::new(vec![0.0; 3]).unwrap_err().to_string();
        assert!(err.contains("the direction is zero"), "{err}");
        assert!(Direction::new(vec![f64::NAN, 1.0]).unwrap_err().to_string().contains("non-finite"));
        assert!(Direction::new(vec![]).unwrap_err().to_string().contains("no values"));
    }

    #[test]
    fn segments_move_by_eps_along_the_unit_vector() {
        let d = Direction::new(vec![0.0, 2.0]).unwrap();
        let s = d.segment(&[1.0, 1.0], -0.5).unwrap();
        assert_eq!(s.a(), &[1.0, 1.0]);
        assert_eq!(s.b(), &[1.0, 0.5]);
        assert!(d.segment(&[1e30, 1e30], 1e-20).unwrap_err().to_string().contains("too small"));
        assert!(d.segment(&[0.0], 1.0).is_err());
        assert!(d.segment(&[0.0, 0.0], f64::NAN).is_err());
    }
}
