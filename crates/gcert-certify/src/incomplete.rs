//! Incomplete certification: bounds in the segment variable and branching over it (docs/mathematics.md §5).

use std::time::Instant;

use gcert_core::certificate::{Certificate, Method, Problem};
use gcert_core::Result;

use crate::bounds::{Bounder, Relaxation};
use crate::regions::explore;
use crate::sides::{certificate, side_region, signs};
use crate::Certifier;

/// Interval or linear bounds (with back-substitution) of the margins over the segment, halving undecided
/// sub-segments while the budget lasts. Answers `certified` or `unknown`, and `violated` only with a
/// counterexample evaluated by a forward pass. Works with any layer, piecewise linear or not.
#[derive(Debug, Clone, Copy)]
pub struct Incomplete {
    /// Bounder evaluations beyond the first, shared between the sides.
    pub budget: usize,
    pub relaxation: Relaxation,
}

impl Default for Incomplete {
    fn default() -> Self {
        Incomplete { budget: 256, relaxation: Relaxation::Linear }
    }
}

impl Certifier for Incomplete {
    fn method(&self) -> Method {
        Method::Incomplete
    }

    fn certify(&self, problem: &Problem<'_>) -> Result<Certificate> {
        let start = Instant::now();
        let (rows, offsets) = problem.decision().margin_rows(problem.label(), problem.output_len());
        let bounder = Bounder::new(problem.layers(), &rows, &offsets, self.relaxation).lower_only();
        let signs = signs(problem);
        let mut sides = Vec::new();
        for &sign in signs {
            let mut probe = |r: f64| problem.counterexample_at(sign * r);
            let region = vec![side_region(problem, sign)];
            sides.push(explore(&bounder, region, self.budget / signs.len(), true, &mut probe)?);
        }
        let leaves = sides.iter().map(|s| s.leaves).sum();
        let mut cert = certificate(problem, Method::Incomplete, &sides, leaves);
        cert.time_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(cert)
    }
}
