//! Quantitative certification: bounds on the kept fraction of the segment (docs/mathematics.md §4).

use std::time::Instant;

use gcert_core::certificate::{Certificate, Method, Problem};
use gcert_core::ops::Kind;
use gcert_core::Result;
use gcert_exactline::ExactLine;

use crate::bounds::{Bounder, Relaxation};
use crate::complete::{combine, scan_sides};
use crate::regions::{explore, Region};
use crate::sides::{certificate, side_region, side_segment, signs};
use crate::Certifier;

/// Exact (lower = upper) for piecewise-linear models, from the exact chain. With non-PL layers: the exact
/// chain up to the first of them, then each piece's line bounded through the rest (linear bounds in the
/// segment variable, or intervals), undecided pieces halved while the budget lasts.
#[derive(Debug, Clone, Copy)]
pub struct Quantitative {
    /// Bounder evaluations beyond one per piece, shared between the sides.
    pub budget: usize,
    pub relaxation: Relaxation,
}

impl Default for Quantitative {
    fn default() -> Self {
        Quantitative { budget: 4096, relaxation: Relaxation::Linear }
    }
}

impl Certifier for Quantitative {
    fn method(&self) -> Method {
        Method::Quantitative
    }

    fn certify(&self, problem: &Problem<'_>) -> Result<Certificate> {
        let start = Instant::now();
        let layers = problem.layers();
        let mut cert = match layers.iter().position(|l| l.kind() == Kind::NonLinear) {
            None => {
                let engine = ExactLine::new(layers)?;
                combine(problem, Method::Quantitative, &scan_sides(&engine, problem)?)?
            }
            Some(k) => {
                let (prefix, suffix) = layers.split_at(k);
                let (rows, offsets) = problem.decision().margin_rows(problem.label(), problem.output_len());
                let bounder = Bounder::new(suffix.to_vec(), &rows, &offsets, self.relaxation);
                let engine = if prefix.is_empty() { None } else { Some(ExactLine::new(prefix.to_vec())?) };
                let signs = signs(problem);
                let mut pieces = 0;
                let mut sides = Vec::new();
                for &sign in signs {
                    let regions = match &engine {
                        None => vec![side_region(problem, sign)],
                        Some(engine) => {
                            let chain = engine.chain(&side_segment(problem, sign)?)?;
                            (0..chain.pieces())
                                .map(|i| Region {
                                    r0: chain.ratios[i],
                                    r1: chain.ratios[i + 1],
                                    x0: chain.value(i).to_vec(),
                                    x1: chain.value(i + 1).to_vec(),
                                })
                                .collect()
                        }
                    };
                    pieces += regions.len();
                    let mut probe = |r: f64| problem.counterexample_at(sign * r);
                    sides.push(explore(&bounder, regions, self.budget / signs.len(), false, &mut probe)?);
                }
                certificate(problem, Method::Quantitative, &sides, pieces)
            }
        };
        cert.time_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(cert)
    }
}
