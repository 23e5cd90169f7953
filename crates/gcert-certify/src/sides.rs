//! Certificates from branch-and-bound results on the sides of a segment.

use gcert_core::certificate::{Certificate, Fraction, Method, MinMargin, Problem, Verdict};
use gcert_core::Result;
use gcert_core::Segment;

use crate::margin::push_interval;
use crate::regions::{Explored, Region};

/// `+1`, then `−1` when two-sided: the sides of the segment, each walked from `t = 0` outwards.
pub(crate) fn signs(problem: &Problem<'_>) -> &'static [f64] {
    if problem.two_sided() {
        &[1.0, -1.0]
    } else {
        &[1.0]
    }
}

/// The side `t = sign·r`, `r ∈ [0, 1]`, as a segment of the model's input.
pub(crate) fn side_segment(problem: &Problem<'_>, sign: f64) -> Result<Segment> {
    Segment::new(problem.origin().to_vec(), problem.point(sign))
}

/// One region for a whole side.
pub(crate) fn side_region(problem: &Problem<'_>, sign: f64) -> Region {
    Region { r0: 0.0, r1: 1.0, x0: problem.origin().to_vec(), x1: problem.point(sign) }
}

/// Merges the sides (positive first) into a certificate. Certified only if every region of every side is
/// certainly kept; violated only with an evaluated counterexample.
pub(crate) fn certificate(
    problem: &Problem<'_>,
    method: Method,
    sides: &[Explored],
    pieces: usize,
) -> Certificate {
    let n = sides.len() as f64;
    let lower = (sides.iter().map(|s| s.kept_lower).sum::<f64>() / n).clamp(0.0, 1.0);
    let upper = (sides.iter().map(|s| s.kept_upper).sum::<f64>() / n).clamp(lower, 1.0);
    let prefix = sides.iter().map(|s| s.prefix).fold(1.0, f64::min);
    let mut violated = Vec::new();
    if let Some(neg) = sides.get(1) {
        for iv in neg.violated.iter().rev() {
            push_interval(&mut violated, -iv[1], -iv[0]);
        }
    }
    for iv in &sides[0].violated {
        push_interval(&mut violated, iv[0], iv[1]);
    }
    let mut min_margin = MinMargin { t: sides[0].min_at, margin: sides[0].min_margin };
    if let Some(neg) = sides.get(1) {
        if neg.min_margin < min_margin.margin {
            min_margin = MinMargin { t: -neg.min_at, margin: neg.min_margin };
        }
    }
    let counterexample =
        sides.iter().filter_map(|s| s.counterexample.clone()).min_by(|a, b| a.margin.total_cmp(&b.margin));
    let verdict = if sides.iter().all(|s| s.certified) {
        Verdict::Certified
    } else if counterexample.is_some() {
        Verdict::Violated
    } else {
        Verdict::Unknown
    };
    Certificate {
        method,
        verdict,
        label: problem.label(),
        pieces,
        max_tolerance: prefix * problem.eps(),
        violated,
        fraction: Fraction { lower, upper },
        min_margin,
        counterexample,
        time_ms: 0.0,
    }
}
