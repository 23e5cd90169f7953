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
use gcert_core::{Kind, Result, Segment};
use gcert_exactline::{ExactLine, Sink};
use rayon::prelude::*;

use crate::bounds::{Bounder, Relaxation};
use crate::complete::{combine, definite};
use crate::margin::{positive_interval, push_interval, SideScan};
use crate::sides::{side_segment, signs};
use crate::Certifier;

/// Halvings of an undecided region before the exact chain takes it.
const MAX_DEPTH: u32 = 6;

/// What one region contributes, in ratio units of its side.
#[derive(Debug, Clone)]
struct Part {
    r0: f64,
    r1: f64,
    x0: Vec<f64>,
    x1: Vec<f64>,
    depth: u32,
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
    const NONE: Best = Best { margin: f64::INFINITY, at: f64::INFINITY };

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

/// Regions undecided at a depth below this are split into halves processed in parallel.
const PARALLEL_DEPTH: u32 = 3;

/// Each side first runs the exact chain from `r = 0` for as many pieces as this many bound evaluations cost;
/// a side whose chain is that cheap is done exactly without any bound, otherwise the chain's prefix is kept and
/// the bounds start where it stopped. 32 since the convolution kernels were vectorised (chain points became
/// 3–5× cheaper while bound evaluations, which pass two points forward, did not): on the trained MNIST models at
/// ε = 3 the hybrid with 8 took 0.90× the whole chain's time, with 32 0.97× (docs/performance.md).
const CHAIN_FIRST_BOUNDS: usize = 32;

/// What one evaluation of the bounds costs, in chain points: a forward pass of lines (two points) and, for
/// every activation layer, a back-substitution of every margin through the layers before it (at most one
/// point's work per margin).
fn bound_cost_in_points(problem: &Problem<'_>) -> usize {
    let margins = problem.decision().margins();
    let activations = problem.layers().iter().filter(|l| l.kind() != Kind::Affine).count();
    margins * activations + 4
}

/// A side whose budgeted prefix reached this ratio is chained to its end: at the prefix's density, the rest
/// costs at most the budget again, which the bounds (deciding little on wide regions, and needing the chain on
/// what they leave) do not beat. On the trained MNIST models at ε = 3 the prefix stopped near `r = 0.94` and the
/// bounds on the rest made the hybrid 0.85× the whole chain (docs/performance.md).
const CHAIN_ON_FROM: f64 = 0.5;

/// Stops the walk once `left` points have been delivered, remembering the last ratio, unless the walk has by
/// then reached [`CHAIN_ON_FROM`]: then it goes on to the end.
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
        if self.left > 0 {
            ControlFlow::Continue(())
        } else if self.last >= CHAIN_ON_FROM {
            self.left = usize::MAX;
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

struct Side<'p, 'a> {
    problem: &'p Problem<'a>,
    engine: &'p ExactLine<'a>,
    /// Built on first use: a side whose chain is cheap never needs it.
    bounder: &'p OnceLock<Bounder<'a>>,
    /// The side's ratio `r` is `t = sign·r`.
    sign: f64,
    /// Chain points to compute from `r = 0` before any bound.
    chain_first: usize,
}

impl Side<'_, '_> {
    fn point(&self, r: f64) -> Vec<f64> {
        self.problem.point(self.sign * r)
    }

    /// The exact smallest margin at ratio `r`, by a forward pass.
    fn probe(&self, r: f64) -> Result<Best> {
        let (_, output) = self.problem.evaluate(self.sign * r)?;
        Ok(Best { margin: self.problem.decision().min_margin(self.problem.label(), &output), at: r })
    }

    fn chain(&self, r0: f64, r1: f64, x0: &[f64], x1: &[f64]) -> Result<(State, Best)> {
        let mut scan = SideScan::new(self.problem.decision(), self.problem.label());
        let segment = Segment::new(x0.to_vec(), x1.to_vec())?;
        let mut sink = Mapped { scan: &mut scan, r0, r1, buf: Vec::new() };
        let _ = self.engine.run(&segment, &mut sink)?;
        let best = Best { margin: scan.min_margin, at: scan.min_at };
        Ok((State::Exact(Box::new(scan)), best))
    }

    /// Bounds a region; `None` if the bounds decide nothing.
    fn bound(&self, x0: &[f64], x1: &[f64]) -> Option<State> {
        let bounder = self.bounder.get_or_init(|| {
            let (rows, offsets) =
                self.problem.decision().margin_rows(self.problem.label(), self.problem.output_len());
            Bounder::new(self.problem.layers(), &rows, &offsets, Relaxation::Linear).lower_only()
        });
        let lines = bounder.margins(x0, x1);
        let lower = lines.lower[0].iter().chain(&lines.lower[1]).copied().fold(f64::INFINITY, f64::min);
        if lower > 0.0 {
            return Some(State::Kept { lower });
        }
        // Violated everywhere: no point where every upper line is positive.
        positive_interval(&lines.upper[0], &lines.upper[1]).is_none().then_some(State::Violated { lower })
    }

    /// Decides `[r0, r1]`, halving it while undecided and shallow (the halves in parallel near the top),
    /// chaining it otherwise: its parts in order, and the smallest exact margin seen.
    fn decide(&self, r0: f64, r1: f64, x0: Vec<f64>, x1: Vec<f64>, depth: u32) -> Result<(Vec<Part>, Best)> {
        if let Some(state) = self.bound(&x0, &x1) {
            return Ok((vec![Part { r0, r1, x0, x1, depth, state }], Best::NONE));
        }
        if depth >= MAX_DEPTH {
            let (state, best) = self.chain(r0, r1, &x0, &x1)?;
            return Ok((vec![Part { r0, r1, x0, x1, depth, state }], best));
        }
        let rm = 0.5 * (r0 + r1);
        let xm = self.point(rm);
        let mid = self.probe(rm)?;
        let xm2 = xm.clone();
        let left = || self.decide(r0, rm, x0, xm, depth + 1);
        let right = || self.decide(rm, r1, xm2, x1, depth + 1);
        let (left, right) = if depth < PARALLEL_DEPTH { rayon::join(left, right) } else { (left(), right()) };
        let ((mut parts, b0), (more, b1)) = (left?, right?);
        parts.extend(more);
        Ok((parts, mid.min(b0).min(b1)))
    }

    /// Refines a bounded part whose lower bound is below the best exact margin: halves (re-bounded), or the
    /// exact chain once deep enough.
    fn refine(&self, p: Part) -> Result<(Vec<Part>, Best)> {
        if p.depth >= MAX_DEPTH + 2 {
            let (state, best) = self.chain(p.r0, p.r1, &p.x0, &p.x1)?;
            return Ok((vec![Part { state, ..p }], best));
        }
        let rm = 0.5 * (p.r0 + p.r1);
        let xm = self.point(rm);
        let best = self.probe(rm)?;
        let mut refined = Vec::with_capacity(2);
        for (a, b, xa, xb) in [(p.r0, rm, p.x0.clone(), xm.clone()), (rm, p.r1, xm, p.x1.clone())] {
            // A half of a decided region is decided the same way; only its bound is new.
            let state = match (self.bound(&xa, &xb), &p.state) {
                (Some(s), _) => s,
                (None, State::Kept { .. }) => State::Kept { lower: f64::NEG_INFINITY },
                (None, _) => State::Violated { lower: f64::NEG_INFINITY },
            };
            refined.push(Part { r0: a, r1: b, x0: xa, x1: xb, depth: p.depth + 1, state });
        }
        Ok((refined, best))
    }

    /// Refines, in rounds (each round's parts in parallel), the bounded parts whose lower bound is below the
    /// best exact margin until none is: then the best exact margin is the side's smallest margin.
    fn settle_min(&self, mut parts: Vec<Part>, mut best: Best) -> Result<(Vec<Part>, Best)> {
        loop {
            let below = |p: &Part| !matches!(p.state, State::Exact(_)) && p.lower() < best.margin;
            if !parts.iter().any(below) {
                return Ok((parts, best));
            }
            let (todo, mut next): (Vec<Part>, Vec<Part>) = parts.into_iter().partition(|p| below(p));
            let done: Vec<Result<(Vec<Part>, Best)>> = todo.into_par_iter().map(|p| self.refine(p)).collect();
            // Reassemble in ratio order: kept parts and refined ones, by their start.
            for d in done {
                let (refined, b) = d?;
                best = best.min(b);
                next.extend(refined);
            }
            next.sort_by(|a, b| a.r0.total_cmp(&b.r0));
            parts = next;
        }
    }

    /// The side's scan, exactly as a scan of the whole side's chain would end; its `pieces` are the chained
    /// pieces plus one per region the bounds decided.
    fn scan(&self) -> Result<SideScan> {
        let (x0, x1) = (self.point(0.0), self.point(1.0));
        // The chain first, within its budget: a cheap side is done exactly, an expensive one keeps its prefix.
        let mut prefix = SideScan::new(self.problem.decision(), self.problem.label());
        let mapped = Mapped { scan: &mut prefix, r0: 0.0, r1: 1.0, buf: Vec::new() };
        let mut sink = Budgeted { inner: mapped, left: self.chain_first.max(2), last: 0.0 };
        let flow = self.engine.run(&side_segment(self.problem, self.sign)?, &mut sink)?;
        let stop = sink.last;
        if flow.is_continue() || stop >= 1.0 {
            return Ok(prefix);
        }
        // The prefix already has the exact margin at r = 0; the far end is a cheap exact value too.
        let first = Best { margin: prefix.min_margin, at: prefix.min_at };
        let end = self.probe(1.0)?;
        let xs = self.point(stop);
        let (rest, best) = self.decide(stop, 1.0, xs.clone(), x1, 0)?;
        let mut parts =
            vec![Part { r0: 0.0, r1: stop, x0, x1: xs, depth: 0, state: State::Exact(Box::new(prefix)) }];
        parts.extend(rest);
        let (parts, best) = self.settle_min(parts, first.min(end).min(best))?;
        let mut total = SideScan::new(self.problem.decision(), self.problem.label());
        for p in &parts {
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
        Ok(total)
    }
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
        let engine = ExactLine::new(problem.layers())?;
        let bounder = OnceLock::new();
        let chain_first = CHAIN_FIRST_BOUNDS * bound_cost_in_points(problem);
        // The two sides in parallel; each side's regions in parallel too (rayon's pool: all cores).
        let scans = signs(problem)
            .par_iter()
            .map(|&sign| Side { problem, engine: &engine, bounder: &bounder, sign, chain_first }.scan())
            .collect::<Result<Vec<SideScan>>>()?;
        let mut cert = definite(combine(problem, Method::Complete, &scans)?)?;
        cert.time_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(cert)
    }
}
