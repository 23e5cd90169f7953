//! Margins along a piece: where a set of lines is positive, and the streaming sink that scans an exact chain.

use std::ops::ControlFlow;

use gcert_core::certificate::Decision;
use gcert_exactline::Sink;

/// The sub-interval `[lo, hi]` of `s ∈ [0, 1]` on which every line `u_j + s (v_j − u_j)` is positive, if any.
///
/// The set where all of several lines are positive is an intersection of half-lines: one interval. Its ends
/// are where a line crosses zero; a line touching zero at an end leaves that end out (the label is kept only
/// where every margin is strictly positive), which changes lengths by nothing.
pub fn positive_interval(u: &[f64], v: &[f64]) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for (&a, &b) in u.iter().zip(v) {
        match (a > 0.0, b > 0.0) {
            (true, true) => {}
            (false, false) => return None,
            (true, false) => hi = hi.min(a / (a - b)),
            (false, true) => lo = lo.max(a / (a - b)),
        }
    }
    (lo < hi).then_some((lo, hi))
}

/// Appends `[a, b]` to a sorted list of intervals, merging it with the last one when they touch.
pub fn push_interval(list: &mut Vec<[f64; 2]>, a: f64, b: f64) {
    match list.last_mut() {
        Some(last) if last[1] >= a => last[1] = last[1].max(b),
        _ => list.push([a, b]),
    }
}

/// What one side of a segment (from `t = 0` outwards) looks like to an exact chain.
#[derive(Debug, Clone)]
pub struct SideScan {
    decision: Decision,
    label: usize,
    /// Margins at the previous point.
    prev: Vec<f64>,
    prev_r: f64,
    cur: Vec<f64>,
    started: bool,
    pub pieces: usize,
    /// Length (in ratio units) on which the label is kept.
    pub kept: f64,
    /// Ratios on which the label is not kept, merged, in order.
    pub violated: Vec<[f64; 2]>,
    /// The first ratio at which some margin reaches zero.
    pub first_crossing: Option<f64>,
    /// The smallest margin at any chain point (the minimum over the segment: margins are linear on
    /// pieces, so their minimum is at a point of the chain) and its ratio.
    pub min_margin: f64,
    pub min_at: f64,
}

impl SideScan {
    pub fn new(decision: Decision, label: usize) -> Self {
        SideScan {
            decision,
            label,
            prev: Vec::new(),
            prev_r: 0.0,
            cur: Vec::new(),
            started: false,
            pieces: 0,
            kept: 0.0,
            violated: Vec::new(),
            first_crossing: None,
            min_margin: f64::INFINITY,
            min_at: 0.0,
        }
    }

    fn point(&mut self, r: f64, row: &[f64]) {
        self.decision.margins_of(self.label, row, &mut self.cur);
        let m = self.cur.iter().copied().fold(f64::INFINITY, f64::min);
        if m < self.min_margin {
            self.min_margin = m;
            self.min_at = r;
        }
        if !self.started {
            self.started = true;
            if m <= 0.0 {
                self.first_crossing = Some(r);
            }
        } else {
            self.piece(r);
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.prev_r = r;
    }

    fn piece(&mut self, r1: f64) {
        let r0 = self.prev_r;
        let len = r1 - r0;
        self.pieces += 1;
        let (u, v) = (&self.prev, &self.cur);
        let u_bad = u.iter().any(|&m| m <= 0.0);
        let v_bad = v.iter().any(|&m| m <= 0.0);
        match positive_interval(u, v) {
            Some((lo, hi)) => {
                self.kept += (hi - lo) * len;
                if lo > 0.0 || u_bad {
                    push_interval(&mut self.violated, r0, r0 + lo * len);
                }
                if hi < 1.0 || v_bad {
                    let a = r0 + hi * len;
                    push_interval(&mut self.violated, a, r1);
                    if self.first_crossing.is_none() {
                        self.first_crossing = Some(a);
                    }
                }
                if self.first_crossing.is_none() && (lo > 0.0 || u_bad) {
                    self.first_crossing = Some(r0);
                }
            }
            None => {
                push_interval(&mut self.violated, r0, r1);
                if self.first_crossing.is_none() {
                    // Every margin was positive at r0 (else the crossing is already set), so the first
                    // line to reach zero does so inside the piece.
                    let s = u
                        .iter()
                        .zip(v)
                        .filter(|(_, &b)| b <= 0.0)
                        .map(|(&a, &b)| if a > 0.0 { a / (a - b) } else { 0.0 })
                        .fold(1.0, f64::min);
                    self.first_crossing = Some(r0 + s * len);
                }
            }
        }
    }
}

impl Sink for SideScan {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        let w = values.len() / ratios.len();
        for (r, row) in ratios.iter().zip(values.chunks_exact(w)) {
            self.point(*r, row);
        }
        // The kept fraction and the violated intervals need the whole side.
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_interval_intersects_half_lines() {
        assert_eq!(positive_interval(&[1.0, 1.0], &[2.0, 3.0]), Some((0.0, 1.0)));
        assert_eq!(positive_interval(&[1.0], &[-1.0]), Some((0.0, 0.5)));
        assert_eq!(positive_interval(&[-1.0, 1.0], &[3.0, -3.0]), None);
        assert_eq!(positive_interval(&[-1.0, 3.0], &[3.0, -1.0]), Some((0.25, 0.75)));
        assert_eq!(positive_interval(&[-1.0], &[-2.0]), None);
    }

    #[test]
    fn scan_finds_crossing_kept_length_and_violations() {
        // One margin 1 - 4 r on [0, 0.5], then -1 + 4 (r - 0.5) on [0.5, 1]: kept on [0, 0.25) ∪ (0.75, 1].
        let mut scan = SideScan::new(Decision::Threshold { threshold: 0.0 }, 1);
        assert!(scan.push(&[0.0, 0.5, 1.0], &[1.0, -1.0, 1.0]).is_continue());
        assert_eq!(scan.pieces, 2);
        assert_eq!(scan.first_crossing, Some(0.25));
        assert!((scan.kept - 0.5).abs() < 1e-15);
        assert_eq!(scan.violated, vec![[0.25, 0.75]]);
        assert_eq!((scan.min_margin, scan.min_at), (-1.0, 0.5));
    }
}
