//! Hybrid complete certification: linear bounds decide what they can, the exact chain runs on the rest, and
//! every answer is the one the full chain gives (docs/mathematics.md §3.1).
//!
//! Each side is first chained from `r = 0` for a few points: a short side needs nothing else, and the prefix of
//! a long one tells how densely its pieces lie. The rest is cut into regions of a few dozen pieces at that
//! density, and every region is bounded by forward lines in `r` (many regions per batch through the kernels).
//! The margins that would keep a region open (or below the best exact margin) get their lower lines tightened
//! by back-substitution through the network's last, cheap layers. A region on which every margin's lower line
//! is positive at both ends keeps the label everywhere; one on which, at every point, some margin's upper line
//! is not positive is violated everywhere. Open regions are halved and re-bounded a few times, then chained.
//! The kept length, the violated intervals and the first crossing (hence `E_max`) follow exactly from these
//! three kinds of region. The smallest margin needs more: a region decided by bounds only has a lower bound of
//! its smallest margin, so regions whose lower bound is below the best exact margin found are halved and
//! chained the same way, until no region could hide a smaller one (branch and bound). Exact margins at every
//! region end and midpoint tighten the best value early.

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
    /// Halvings since the side was cut into regions.
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
    /// The bounds decided nothing.
    Open,
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
/// nothing else, and the prefix of a longer one tells how densely its pieces lie. On the trained MNIST models at
/// ε = 3, 64 made the hybrid 2.48× the whole chain on one core, 128 2.17× (the prefix's small chunks cost more
/// per point than the bounded regions do); 32 also gave 2.48×.
const CHAIN_FIRST: usize = 64;

/// The rest of a longer side is cut into regions meant to hold about this many pieces each (at the prefix's
/// density), halved up to [`MAX_HALVINGS`] times where the bounds decide nothing. Forward lines decide most
/// regions of about 40 pieces and almost none of about 300: on the trained MNIST models at ε = 3, 64 regions per
/// side left 0–15 open, 8 regions all of them. Regions of 40, 80, 120 or 160 pieces with one to three halvings
/// gave 1.5–1.7× the whole chain's speed, within the noise of one another (docs/performance.md).
const PIECES_PER_REGION: f64 = 80.0;

/// Regions bounded in one batch: their 2 ends × centre and radius fill the kernels' 16-point blocks.
const BOUND_BATCH: usize = 8;

/// The margins a region's forward lines leave below the best exact margin (or below zero) are back-substituted
/// through the network's last layers, as many as cost at most this share of a forward point per margin (on the
/// trained MNIST classifier: the two dense layers, the relu between them and the one before). On the trained
/// MNIST models at ε = 3 (30 certifications), back-substituting through the two dense layers left 632 of the
/// 3,240 first regions to halve instead of 1,156 and 302 quarter regions to chain instead of 582; through every
/// layer, 343 and 178, but each bound cost more than that saved (docs/performance.md).
const TAIL_SHARE: f64 = 0.25;

/// Halvings of a region the bounds leave open, or whose lower bound is below the best exact margin, before
/// the exact chain takes it.
const MAX_HALVINGS: u32 = 2;

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

    /// The exact chain of `[r0, r1]` (its end points recomputed: the same bits as wherever else they are).
    fn chain(&self, r0: f64, r1: f64) -> Result<(State, Best)> {
        let mut scan = SideScan::new(self.problem.decision(), self.problem.label());
        let segment = Segment::new(self.point(r0), self.point(r1))?;
        let mut sink = Mapped { scan: &mut scan, r0, r1, buf: Vec::new() };
        let _ = self.engine.run(&segment, &mut sink)?;
        let best = Best { margin: scan.min_margin, at: scan.min_at };
        Ok((State::Exact(Box::new(scan)), best))
    }

    /// Bounds regions `[r0, r1]` in one batch: kept, violated, or open where the bounds decide nothing. The
    /// margins whose forward lower line reaches `max(best, 0)` (those that keep a region open or below the
    /// best exact margin) are tightened through the network's last layers ([`TAIL_SHARE`]).
    fn bound(&self, regions: &[(f64, f64)], best: f64) -> Vec<State> {
        let bounder = self.bounder.get_or_init(|| {
            let (rows, offsets) =
                self.problem.decision().margin_rows(self.problem.label(), self.problem.output_len());
            Bounder::new(self.problem.layers(), &rows, &offsets, Relaxation::Linear)
                .with_tail_share(TAIL_SHARE)
        });
        let mut batch = Vec::with_capacity(2 * regions.len() * self.problem.input_len());
        for &(r0, r1) in regions {
            batch.extend(self.point(r0));
            batch.extend(self.point(r1));
        }
        let regions = regions.len();
        bounder
            .forward_margins(&batch, regions, best.max(0.0))
            .into_iter()
            .map(|lines| {
                let lower =
                    lines.lower[0].iter().chain(&lines.lower[1]).copied().fold(f64::INFINITY, f64::min);
                if lower > 0.0 {
                    State::Kept { lower }
                } else if positive_interval(&lines.upper[0], &lines.upper[1]).is_none() {
                    // Violated everywhere: no point where every upper line is positive.
                    State::Violated { lower }
                } else {
                    State::Open
                }
            })
            .collect()
    }

    /// The side's scan, exactly as a scan of the whole side's chain would end; its `pieces` are the chained
    /// pieces plus one per region the bounds decided.
    ///
    /// The chain runs first from `r = 0` for [`CHAIN_FIRST`] points. If the side is longer, the rest is cut into
    /// regions of about [`PIECES_PER_REGION`] pieces at the prefix's density and bounded in batches; the exact
    /// margins at every region end start the smallest margin, and [`Self::settle`] does the rest.
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
        let mut best = Best { margin: prefix.min_margin, at: prefix.min_at };
        for b in self.probes(&ratios)? {
            best = best.min(b);
        }
        let mut parts = vec![Part { r0: 0.0, r1: stop, depth: 0, state: State::Exact(Box::new(prefix)) }];
        let states = self.bound_all(&ratios, best.margin);
        parts.extend(states.into_iter().enumerate().map(|(k, state)| Part {
            r0: ratios[k],
            r1: ratios[k + 1],
            depth: 0,
            state,
        }));
        let (parts, best) = self.settle(parts, best)?;
        Ok(total(self.problem, &parts, best))
    }

    /// Bounds the consecutive regions between `ratios`, in batches on rayon's threads.
    fn bound_all(&self, ratios: &[f64], best: f64) -> Vec<State> {
        let pairs: Vec<(f64, f64)> = ratios.windows(2).map(|w| (w[0], w[1])).collect();
        self.bound_batches(&pairs, best)
    }

    /// Bounds regions in batches of [`BOUND_BATCH`] on rayon's threads.
    fn bound_batches(&self, pairs: &[(f64, f64)], best: f64) -> Vec<State> {
        pairs.par_chunks(BOUND_BATCH).flat_map_iter(|batch| self.bound(batch, best)).collect()
    }

    /// Works, in rounds, on the regions that are open or whose lower bound is below the best exact margin
    /// found: each is halved and its halves bounded (with the exact margin at the midpoint), or chained once it
    /// has been halved [`MAX_HALVINGS`] times. When no region is left, every open region was chained and no
    /// region decided by bounds can hide a margin below the best exact one, which is then the side's smallest.
    fn settle(&self, mut parts: Vec<Part>, mut best: Best) -> Result<(Vec<Part>, Best)> {
        loop {
            let todo = |p: &Part| match p.state {
                State::Open => true,
                State::Exact(_) => false,
                State::Kept { lower } | State::Violated { lower } => lower < best.margin,
            };
            let (work, mut next): (Vec<Part>, Vec<Part>) = parts.into_iter().partition(|p| todo(p));
            if work.is_empty() {
                next.sort_by(|a, b| a.r0.total_cmp(&b.r0));
                return Ok((next, best));
            }
            let (chain, halve): (Vec<Part>, Vec<Part>) =
                work.into_iter().partition(|p| p.depth >= MAX_HALVINGS);
            let chained = chain
                .into_par_iter()
                .map(|p| {
                    let (state, b) = self.chain(p.r0, p.r1)?;
                    Ok((Part { state, ..p }, b))
                })
                .collect::<Result<Vec<(Part, Best)>>>()?;
            for (p, b) in chained {
                best = best.min(b);
                next.push(p);
            }
            if !halve.is_empty() {
                let mids: Vec<f64> = halve.iter().map(|p| 0.5 * (p.r0 + p.r1)).collect();
                for b in self.probes(&mids)? {
                    best = best.min(b);
                }
                let pairs: Vec<(f64, f64)> =
                    halve.iter().zip(&mids).flat_map(|(p, &m)| [(p.r0, m), (m, p.r1)]).collect();
                let states = self.bound_batches(&pairs, best.margin);
                for ((p, &m), halves) in halve.iter().zip(&mids).zip(states.chunks(2)) {
                    let depth = p.depth + 1;
                    next.push(Part { r0: p.r0, r1: m, depth, state: halves[0].clone() });
                    next.push(Part { r0: m, r1: p.r1, depth, state: halves[1].clone() });
                }
            }
            parts = next;
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
            State::Open => unreachable!("settling leaves no region open"),
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
