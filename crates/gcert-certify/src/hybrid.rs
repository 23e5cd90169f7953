//! Hybrid complete certification: linear bounds decide what they can, the exact chain runs on the rest, and
//! every answer is the one the full chain gives (docs/mathematics.md §3).
//!
//! Each side is first chained from `r = 0` for as many points as a few bound evaluations cost: a side whose chain
//! is that cheap needs nothing else, and an expensive one keeps that exact prefix. The rest of the side is cut
//! into regions of the ratio `r`. A region on which every margin's lower line
//! is positive at both ends keeps the label everywhere; one on which, at every point, some margin's upper line
//! is not positive is violated everywhere. Undecided regions are halved a few times, then handed to the exact
//! chain. The kept length, the violated intervals and the first crossing (hence `E_max`) follow exactly from
//! these three kinds of region. The smallest margin needs more: a region decided by bounds only has a lower
//! bound of its smallest margin, so regions whose lower bound is below the best exact margin found are
//! refined, and chained once small, until no region could hide a smaller one (branch and bound). Margins at
//! region ends are evaluated exactly by forward passes, which tightens the best value early.

use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::Instant;

use gcert_core::certificate::{Certificate, Method, Problem};
use gcert_core::network::forward_layers;
use gcert_core::{Result, Segment};
use gcert_exactline::{ExactLine, Sink};
use rayon::prelude::*;

use crate::bounds::{Bounder, Relaxation};
use crate::complete::{combine, definite};
use crate::margin::{positive_interval, push_interval, SideScan};
use crate::sides::{side_segment, signs};
use crate::Certifier;

/// What one region contributes, in ratio units of its side.
#[derive(Debug, Clone)]
struct Part {
    r0: f64,
    r1: f64,
    x0: Vec<f64>,
    x1: Vec<f64>,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    /// Every margin is positive on the whole region; `lower` bounds the smallest margin there.
    Kept { lower: f64 },
    /// Some margin is not positive at every point of the region.
    Violated { lower: f64 },
    /// The exact chain of the region.
    Exact(Box<SideScan>),
}

impl Part {
    fn lower(&self) -> f64 {
        match &self.state {
            State::Kept { lower } | State::Violated { lower } => *lower,
            State::Exact(scan) => scan.min_margin,
        }
    }
}

/// Feeds a region's chain to a scan in the side's ratio units (`s = 0` and `s = 1` map exactly to the ends).
struct Mapped<'s> {
    scan: &'s mut SideScan,
    r0: f64,
    r1: f64,
    buf: Vec<f64>,
}

impl Sink for Mapped<'_> {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        self.buf.clear();
        let len = self.r1 - self.r0;
        self.buf.extend(ratios.iter().map(|&s| match s {
            0.0 => self.r0,
            1.0 => self.r1,
            s => self.r0 + s * len,
        }));
        self.scan.push(&self.buf, values)
    }
}

/// The smallest exact margin seen and where; merged in ratio order, so the result never depends on which
/// thread found what first.
#[derive(Debug, Clone, Copy)]
struct Best {
    margin: f64,
    at: f64,
}

impl Best {
    /// The smaller margin, or on a tie within rounding the earlier point: on a plateau of the smallest margin,
    /// the earliest point found is reported, as a scan from `r = 0` would.
    fn min(self, other: Best) -> Best {
        let tie = 1e-12 * (1.0 + other.margin.abs());
        if other.margin < self.margin - tie || (other.margin <= self.margin + tie && other.at < self.at) {
            other
        } else {
            self
        }
    }
}

/// Each side first runs the exact chain from `r = 0` for this many points: a side whose chain is that short needs
/// nothing else, and the prefix of a longer one tells how densely its pieces lie.
const CHAIN_FIRST: usize = 128;

/// The rest of a longer side is cut into regions meant to hold about this many pieces each (at the prefix's
/// density). Linear bounds decide most regions this narrow and almost none four times wider: on the trained
/// MNIST models at ε = 3, 64 regions of about 40 pieces per side left 0–15 undecided, 8 of about 300 all of them
/// (docs/performance.md).
const PIECES_PER_REGION: f64 = 40.0;

/// Regions bounded in one batch: their 2 ends × centre and radius fill the kernels' 16-point blocks.
const BOUND_BATCH: usize = 8;

/// Stops the walk once `left` points have been delivered, remembering the last ratio.
struct Budgeted<'s> {
    inner: Mapped<'s>,
    left: usize,
    last: f64,
}

impl Sink for Budgeted<'_> {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        self.inner.push(ratios, values)?;
        self.last = ratios.last().copied().unwrap_or(self.last);
        self.left = self.left.saturating_sub(ratios.len());
        if self.left == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

struct Side<'p, 'a> {
    problem: &'p Problem<'a>,
    /// On one thread: the prefix must stop soon after its budget (a parallel walk computes a wave of groups
    /// before the first point arrives), and regions are chained in parallel with each other.
    engine: &'p ExactLine<'a>,
    /// Built on first use: a side whose chain is cheap never needs it.
    bounder: &'p OnceLock<Bounder<'a>>,
    /// The side's ratio `r` is `t = sign·r`.
    sign: f64,
}

impl Side<'_, '_> {
    fn point(&self, r: f64) -> Vec<f64> {
        self.problem.point(self.sign * r)
    }

    /// The exact smallest margins at ratios `rs`, by one batched forward pass.
    fn probes(&self, rs: &[f64]) -> Result<Vec<Best>> {
        let points: Vec<f64> = rs.iter().flat_map(|&r| self.point(r)).collect();
        let outputs = forward_layers(self.problem.layers(), self.problem.input_len(), &points, rs.len())?;
        let w = self.problem.output_len();
        Ok(rs
            .iter()
            .zip(outputs.chunks_exact(w))
            .map(|(&r, out)| Best {
                margin: self.problem.decision().min_margin(self.problem.label(), out),
                at: r,
            })
            .collect())
    }

    fn chain(&self, r0: f64, r1: f64, x0: &[f64], x1: &[f64]) -> Result<(State, Best)> {
        let mut scan = SideScan::new(self.problem.decision(), self.problem.label());
        let segment = Segment::new(x0.to_vec(), x1.to_vec())?;
        let mut sink = Mapped { scan: &mut scan, r0, r1, buf: Vec::new() };
        let _ = self.engine.run(&segment, &mut sink)?;
        let best = Best { margin: scan.min_margin, at: scan.min_at };
        Ok((State::Exact(Box::new(scan)), best))
    }

    /// Bounds consecutive regions (`ends` their `n + 1` end points) in one batch: kept, violated, or `None`
    /// where the bounds decide nothing.
    fn bound(&self, ends: &[Vec<f64>]) -> Vec<Option<State>> {
        let bounder = self.bounder.get_or_init(|| {
            let (rows, offsets) =
                self.problem.decision().margin_rows(self.problem.label(), self.problem.output_len());
            Bounder::new(self.problem.layers(), &rows, &offsets, Relaxation::Linear)
        });
        let regions = ends.len() - 1;
        let mut batch = Vec::with_capacity(2 * regions * self.problem.input_len());
        for pair in ends.windows(2) {
            batch.extend_from_slice(&pair[0]);
            batch.extend_from_slice(&pair[1]);
        }
        bounder
            .forward_margins(&batch, regions)
            .into_iter()
            .map(|lines| {
                let lower =
                    lines.lower[0].iter().chain(&lines.lower[1]).copied().fold(f64::INFINITY, f64::min);
                if lower > 0.0 {
                    Some(State::Kept { lower })
                } else {
                    // Violated everywhere: no point where every upper line is positive.
                    positive_interval(&lines.upper[0], &lines.upper[1])
                        .is_none()
                        .then_some(State::Violated { lower })
                }
            })
            .collect()
    }

    /// The side's scan, exactly as a scan of the whole side's chain would end; its `pieces` are the chained
    /// pieces plus one per region the bounds decided.
    ///
    /// The chain runs first from `r = 0` for [`CHAIN_FIRST`] points. If the side is longer, the rest is cut into
    /// regions of about [`PIECES_PER_REGION`] pieces at the prefix's density, bounded in batches; the regions the
    /// bounds leave undecided are chained. The exact margins at every region end start the smallest margin;
    /// every region decided by bounds whose lower bound is below the smallest exact margin found is then chained
    /// too (in rounds, as the best exact value falls), so that no region can hide a smaller one.
    fn scan(&self) -> Result<SideScan> {
        let mut prefix = SideScan::new(self.problem.decision(), self.problem.label());
        let mapped = Mapped { scan: &mut prefix, r0: 0.0, r1: 1.0, buf: Vec::new() };
        let mut sink = Budgeted { inner: mapped, left: CHAIN_FIRST, last: 0.0 };
        // Small chunks: a walk computes a chunk at every level before the first point reaches the sink.
        let engine = self.engine.clone().with_chunk(CHAIN_FIRST / 4);
        let flow = engine.run(&side_segment(self.problem, self.sign)?, &mut sink)?;
        let stop = sink.last;
        if flow.is_continue() || stop >= 1.0 {
            return Ok(prefix);
        }
        let expected = CHAIN_FIRST as f64 * (1.0 - stop) / stop.max(f64::MIN_POSITIVE);
        let regions = (expected / PIECES_PER_REGION).ceil().clamp(1.0, 1e5) as usize;
        let ratios: Vec<f64> = (0..=regions)
            .map(|k| if k == regions { 1.0 } else { stop + (1.0 - stop) * k as f64 / regions as f64 })
            .collect();
        let ends: Vec<Vec<f64>> = ratios.iter().map(|&r| self.point(r)).collect();
        let mut best = Best { margin: prefix.min_margin, at: prefix.min_at };
        for b in self.probes(&ratios)? {
            best = best.min(b);
        }
        let states: Vec<Option<State>> = (0..regions)
            .into_par_iter()
            .step_by(BOUND_BATCH)
            .flat_map_iter(|k| self.bound(&ends[k..=(k + BOUND_BATCH).min(regions)]))
            .collect();
        debug_assert_eq!(states.len(), regions);
        let undecided: Vec<usize> = (0..regions).filter(|&k| states[k].is_none()).collect();
        let chained = undecided
            .par_iter()
            .map(|&k| self.chain(ratios[k], ratios[k + 1], &ends[k], &ends[k + 1]))
            .collect::<Result<Vec<(State, Best)>>>()?;
        let mut parts = vec![Part {
            r0: 0.0,
            r1: stop,
            x0: self.point(0.0),
            x1: ends[0].clone(),
            state: State::Exact(Box::new(prefix)),
        }];
        let mut chained = undecided.iter().zip(chained);
        let mut next = chained.next();
        for (k, state) in states.into_iter().enumerate() {
            let state = match state {
                Some(state) => state,
                None => {
                    let (&j, (state, b)) = next.take().expect("an undecided region was chained");
                    debug_assert_eq!(j, k);
                    best = best.min(b);
                    next = chained.next();
                    state
                }
            };
            parts.push(Part {
                r0: ratios[k],
                r1: ratios[k + 1],
                x0: ends[k].clone(),
                x1: ends[k + 1].clone(),
                state,
            });
        }
        let (parts, best) = self.settle_min(parts, best)?;
        Ok(total(self.problem, &parts, best))
    }

    /// Chains, in rounds (each round's regions in parallel), the regions decided by bounds whose lower bound is
    /// below the best exact margin until none is: then the best exact margin is the side's smallest margin.
    fn settle_min(&self, mut parts: Vec<Part>, mut best: Best) -> Result<(Vec<Part>, Best)> {
        loop {
            let below = |p: &Part| !matches!(p.state, State::Exact(_)) && p.lower() < best.margin;
            let todo: Vec<usize> = (0..parts.len()).filter(|&k| below(&parts[k])).collect();
            if todo.is_empty() {
                return Ok((parts, best));
            }
            let done = todo
                .par_iter()
                .map(|&k| self.chain(parts[k].r0, parts[k].r1, &parts[k].x0, &parts[k].x1))
                .collect::<Result<Vec<(State, Best)>>>()?;
            for (&k, (state, b)) in todo.iter().zip(done) {
                best = best.min(b);
                parts[k].state = state;
            }
        }
    }
}

/// The scan of a side from its parts in ratio order and its smallest exact margin.
fn total(problem: &Problem<'_>, parts: &[Part], best: Best) -> SideScan {
    let mut total = SideScan::new(problem.decision(), problem.label());
    for p in parts {
        let len = p.r1 - p.r0;
        match &p.state {
            State::Kept { .. } => {
                total.pieces += 1;
                total.kept += len;
            }
            State::Violated { .. } => {
                total.pieces += 1;
                push_interval(&mut total.violated, p.r0, p.r1);
                total.first_crossing.get_or_insert(p.r0);
            }
            State::Exact(scan) => {
                total.pieces += scan.pieces;
                total.kept += scan.kept;
                for iv in &scan.violated {
                    push_interval(&mut total.violated, iv[0], iv[1]);
                }
                if let Some(c) = scan.first_crossing {
                    total.first_crossing.get_or_insert(c);
                }
            }
        }
    }
    total.min_margin = best.margin;
    total.min_at = best.at;
    total
}

/// Complete certification through bounds first and the exact chain on what they leave undecided: the same
/// verdict, violated intervals, kept fraction, largest tolerance, smallest margin and counterexample as
/// [`crate::Complete`] (up to rounding in the last bits), usually from far fewer chain pieces. Its `pieces`
/// counts the chained pieces plus one per region the bounds decided.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hybrid;

impl Certifier for Hybrid {
    fn method(&self) -> Method {
        Method::Complete
    }

    fn certify(&self, problem: &Problem<'_>) -> Result<Certificate> {
        let start = Instant::now();
        let engine = ExactLine::new(problem.layers())?.with_parallel(false);
        let bounder = OnceLock::new();
        // The two sides in parallel; each side's regions in parallel too (rayon's pool: all cores).
        let scans = signs(problem)
            .par_iter()
            .map(|&sign| Side { problem, engine: &engine, bounder: &bounder, sign }.scan())
            .collect::<Result<Vec<SideScan>>>()?;
        let mut cert = definite(combine(problem, Method::Complete, &scans)?)?;
        cert.time_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(cert)
    }
}
