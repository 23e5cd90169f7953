//! Complete certification and the largest tolerance from one exact chain (docs/mathematics.md §3).

use std::time::Instant;

use gcert_core::certificate::{Certificate, Counterexample, Fraction, Method, MinMargin, Problem, Verdict};
use gcert_core::{Error, Result};
use gcert_exactline::ExactLine;
use rayon::prelude::*;

use crate::margin::{push_interval, SideScan};
use crate::sides::{side_segment, signs};
use crate::Certifier;

/// The exact chain of `N∘G`, scanned for margins: `certified` or `violated` with a re-evaluated
/// counterexample, the violated sub-intervals, the smallest margin, the exact kept fraction and the largest
/// tolerance `E_max` (the first zero of any margin from `t = 0` outwards), all in one pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct Complete;

impl Certifier for Complete {
    fn method(&self) -> Method {
        Method::Complete
    }

    fn certify(&self, problem: &Problem<'_>) -> Result<Certificate> {
        let start = Instant::now();
        let engine = ExactLine::new(problem.layers())?;
        let scans = scan_sides(&engine, problem)?;
        let mut cert = definite(combine(problem, Method::Complete, &scans)?)?;
        cert.time_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(cert)
    }
}

/// The complete method answers certified or violated, nothing else: a violation the chain shows but no forward
/// pass confirms is reported as what it is, not as a verdict.
pub(crate) fn definite(cert: Certificate) -> Result<Certificate> {
    if cert.verdict == Verdict::Unknown {
        return Err(Error::input(format!(
            "the exact chain loses label {} on {} sub-interval(s) (smallest margin {:e} at t = {}), but no \
             point there loses it in a plain forward pass: the violation is within rounding of zero, so \
             neither certified nor violated can be backed",
            cert.label,
            cert.violated.len(),
            cert.min_margin.margin,
            cert.min_margin.t
        )));
    }
    Ok(cert)
}

/// Scans the chain from `t = 0` to `t = 1` and, when two-sided, from `t = 0` to `t = −1`.
pub(crate) fn scan_sides(engine: &ExactLine<'_>, problem: &Problem<'_>) -> Result<Vec<SideScan>> {
    // The two sides of a two-sided segment are independent chains: one per core.
    signs(problem)
        .par_iter()
        .map(|&sign| {
            let mut scan = SideScan::new(problem.decision(), problem.label());
            let _ = engine.run(&side_segment(problem, sign)?, &mut scan)?;
            Ok(scan)
        })
        .collect()
}

/// Turns exact scans of the sides (positive side first) into a certificate; searches for a counterexample
/// where the label is not kept and checks it by a forward pass.
pub(crate) fn combine(problem: &Problem<'_>, method: Method, scans: &[SideScan]) -> Result<Certificate> {
    let total = scans.len() as f64;
    let kept: f64 = scans.iter().map(|s| s.kept).sum();
    let fraction = (kept / total).clamp(0.0, 1.0);
    let crossing = scans.iter().map(|s| s.first_crossing.unwrap_or(1.0)).fold(1.0, f64::min);
    let mut violated = Vec::new();
    if let Some(neg) = scans.get(1) {
        for iv in neg.violated.iter().rev() {
            push_interval(&mut violated, -iv[1], -iv[0]);
        }
    }
    for iv in &scans[0].violated {
        push_interval(&mut violated, iv[0], iv[1]);
    }
    let (mut min_margin, mut min_t) = (scans[0].min_margin, scans[0].min_at);
    if let Some(neg) = scans.get(1) {
        if neg.min_margin < min_margin {
            (min_margin, min_t) = (neg.min_margin, -neg.min_at);
        }
    }
    let verdict_and_cex = if violated.is_empty() {
        (Verdict::Certified, None)
    } else {
        match find_counterexample(problem, min_t, min_margin, &violated)? {
            Some(c) => (Verdict::Violated, Some(c)),
            // Every candidate evaluates to a positive margin: the chain's violation is within rounding of
            // zero. Neither answer is backed by evidence.
            None => (Verdict::Unknown, None),
        }
    };
    Ok(Certificate {
        method,
        verdict: verdict_and_cex.0,
        label: problem.label(),
        pieces: scans.iter().map(|s| s.pieces).sum(),
        max_tolerance: crossing * problem.eps(),
        violated,
        fraction: Fraction { lower: fraction, upper: fraction },
        min_margin: MinMargin { t: min_t, margin: min_margin },
        counterexample: verdict_and_cex.1,
        time_ms: 0.0,
    })
}

/// Evaluates candidate points (the smallest margin, then the middles of violated intervals) and keeps the
/// one whose forward pass has the smallest non-positive margin.
pub(crate) fn find_counterexample(
    problem: &Problem<'_>,
    min_t: f64,
    min_margin: f64,
    violated: &[[f64; 2]],
) -> Result<Option<Counterexample>> {
    let mut candidates = Vec::new();
    if min_margin <= 0.0 {
        candidates.push(min_t);
    }
    candidates.extend(violated.iter().take(16).map(|iv| 0.5 * (iv[0] + iv[1])));
    let mut best: Option<Counterexample> = None;
    for t in candidates {
        if let Some(c) = problem.counterexample_at(t)? {
            if best.as_ref().is_none_or(|b| c.margin < b.margin) {
                best = Some(c);
            }
        }
    }
    Ok(best)
}
