//! Hybrid complete certification: linear bounds decide what they can, the exact chain runs on the rest, and
//! every answer is the one the full chain gives (docs/mathematics.md §3).
//!
//! Each side of the segment is cut into regions of the ratio `r`. A region on which every margin's lower line
//! is positive at both ends keeps the label everywhere; one on which, at every point, some margin's upper line
//! is not positive is violated everywhere. Undecided regions are halved a few times, then handed to the exact
//! chain. The kept length, the violated intervals and the first crossing (hence `E_max`) follow exactly from
//! these three kinds of region. The smallest margin needs more: a region decided by bounds only has a lower
//! bound of its smallest margin, so regions whose lower bound is below the best exact margin found are
//! refined, and chained once small, until no region could hide a smaller one (branch and bound). Margins at
//! region ends are evaluated exactly by forward passes, which tightens the best value early.

use std::ops::ControlFlow;
use std::time::Instant;

use gcert_core::certificate::{Certificate, Method, Problem};
use gcert_core::{Result, Segment};
use gcert_exactline::{ExactLine, Sink};

use crate::bounds::{Bounder, Relaxation};
use crate::complete::{combine, definite};
use crate::margin::{push_interval, SideScan};
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

struct Side<'p, 'a> {
    problem: &'p Problem<'a>,
    engine: &'p ExactLine<'a>,
    bounder: &'p Bounder<'a>,
    /// The side's ratio `r` is `t = sign·r`.
    sign: f64,
    /// The smallest exact margin seen so far (region ends and chained regions).
    best: f64,
    best_at: f64,
}

impl Side<'_, '_> {
    fn point(&self, r: f64) -> Vec<f64> {
        self.problem.point(self.sign * r)
    }

    /// The exact smallest margin at ratio `r`, by a forward pass; updates the best seen.
    fn probe(&mut self, r: f64) -> Result<()> {
        let (_, output) = self.problem.evaluate(self.sign * r)?;
        let m = self.problem.decision().min_margin(self.problem.label(), &output);
        self.offer(m, r);
        Ok(())
    }

    /// Takes `(m, r)` as the smallest margin if it is smaller, or equal within rounding and earlier: on a
    /// plateau of the smallest margin, the earliest point found is reported, as a scan from `r = 0` would.
    fn offer(&mut self, m: f64, r: f64) {
        let tie = 1e-12 * (1.0 + m.abs());
        if m < self.best - tie || (m <= self.best + tie && r < self.best_at) {
            (self.best, self.best_at) = (m, r);
        }
    }

    fn chain(&mut self, r0: f64, r1: f64, x0: &[f64], x1: &[f64]) -> Result<State> {
        let mut scan = SideScan::new(self.problem.decision(), self.problem.label());
        let segment = Segment::new(x0.to_vec(), x1.to_vec())?;
        let mut sink = Mapped { scan: &mut scan, r0, r1, buf: Vec::new() };
        let _ = self.engine.run(&segment, &mut sink)?;
        self.offer(scan.min_margin, scan.min_at);
        Ok(State::Exact(Box::new(scan)))
    }

    /// Bounds a region; `None` if the bounds decide nothing.
    fn bound(&mut self, x0: &[f64], x1: &[f64]) -> Option<State> {
        let lines = self.bounder.margins(x0, x1);
        let lower = lines.lower[0].iter().chain(&lines.lower[1]).copied().fold(f64::INFINITY, f64::min);
        if lower > 0.0 {
            return Some(State::Kept { lower });
        }
        // Violated everywhere: no point where every upper line is positive. Upper lines are linear in the
        // region's variable, so the set where all are positive is one interval, empty here.
        let (u0, u1) = (&lines.upper[0], &lines.upper[1]);
        let mut lo = 0.0f64;
        let mut hi = 1.0f64;
        for (&a, &b) in u0.iter().zip(u1) {
            match (a > 0.0, b > 0.0) {
                (true, true) => {}
                (false, false) => return Some(State::Violated { lower }),
                (true, false) => hi = hi.min(a / (a - b)),
                (false, true) => lo = lo.max(a / (a - b)),
            }
        }
        (lo >= hi).then_some(State::Violated { lower })
    }

    /// Decides `[r0, r1]`, halving it while undecided and shallow, chaining it otherwise; appends the parts
    /// in order.
    fn decide(
        &mut self,
        r0: f64,
        r1: f64,
        x0: Vec<f64>,
        x1: Vec<f64>,
        depth: u32,
        out: &mut Vec<Part>,
    ) -> Result<()> {
        if let Some(state) = self.bound(&x0, &x1) {
            out.push(Part { r0, r1, x0, x1, depth, state });
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            let state = self.chain(r0, r1, &x0, &x1)?;
            out.push(Part { r0, r1, x0, x1, depth, state });
            return Ok(());
        }
        let rm = 0.5 * (r0 + r1);
        let xm = self.point(rm);
        self.probe(rm)?;
        self.decide(r0, rm, x0, xm.clone(), depth + 1, out)?;
        self.decide(rm, r1, xm, x1, depth + 1, out)
    }

    /// Refines bounded parts whose lower bound is below the best exact margin until none is: then the best
    /// exact margin is the side's smallest margin.
    fn settle_min(&mut self, parts: Vec<Part>) -> Result<Vec<Part>> {
        let mut parts = parts;
        loop {
            let Some(i) =
                parts.iter().position(|p| !matches!(p.state, State::Exact(_)) && p.lower() < self.best)
            else {
                return Ok(parts);
            };
            let p = parts.remove(i);
            let mut refined = Vec::new();
            if p.depth >= MAX_DEPTH + 2 {
                let state = self.chain(p.r0, p.r1, &p.x0, &p.x1)?;
                refined.push(Part { state, ..p });
            } else {
                let rm = 0.5 * (p.r0 + p.r1);
                let xm = self.point(rm);
                self.probe(rm)?;
                for (a, b, xa, xb) in [(p.r0, rm, p.x0.clone(), xm.clone()), (rm, p.r1, xm, p.x1.clone())] {
                    // A half of a decided region is decided the same way; only its bound is new.
                    let state = match (self.bound(&xa, &xb), &p.state) {
                        (Some(s), _) => s,
                        (None, State::Kept { .. }) => State::Kept { lower: f64::NEG_INFINITY },
                        (None, _) => State::Violated { lower: f64::NEG_INFINITY },
                    };
                    refined.push(Part { r0: a, r1: b, x0: xa, x1: xb, depth: p.depth + 1, state });
                }
            }
            for (k, part) in refined.into_iter().enumerate() {
                parts.insert(i + k, part);
            }
        }
    }

    /// The side's scan, exactly as a scan of the whole side's chain would end; its `pieces` are the chained
    /// pieces plus one per region the bounds decided.
    fn scan(&mut self) -> Result<SideScan> {
        let (x0, x1) = (self.point(0.0), self.point(1.0));
        self.probe(0.0)?;
        self.probe(1.0)?;
        let mut parts = Vec::new();
        self.decide(0.0, 1.0, x0, x1, 0, &mut parts)?;
        let parts = self.settle_min(parts)?;
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
        total.min_margin = self.best;
        total.min_at = self.best_at;
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
        let (rows, offsets) = problem.decision().margin_rows(problem.label(), problem.output_len());
        let bounder = Bounder::new(problem.layers(), &rows, &offsets, Relaxation::Linear).lower_only();
        let signs: &[f64] = if problem.two_sided() { &[1.0, -1.0] } else { &[1.0] };
        let mut scans = Vec::with_capacity(signs.len());
        for &sign in signs {
            let mut side = Side {
                problem,
                engine: &engine,
                bounder: &bounder,
                sign,
                best: f64::INFINITY,
                best_at: f64::INFINITY,
            };
            scans.push(side.scan()?);
        }
        let mut cert = definite(combine(problem, Method::Complete, &scans)?)?;
        cert.time_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(cert)
    }
}
