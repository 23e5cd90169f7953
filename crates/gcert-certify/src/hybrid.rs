//! Hybrid complete certification: linear bounds decide what they can, the exact chain runs on the rest, and
//! every answer is the one the full chain gives (docs/mathematics.md §3.1).
//!
//! Each side is first probed at a few evenly spaced points by exact forward passes: the smallest margin there,
//! and which side of each activation face every neuron lies on. The faces that flip between two neighbouring
//! probes estimate the pieces between them, so a side of few pieces is chained whole, and the others are cut
//! (by more probes) into cells whose bounds can be expected to decide them: cells where a margin changes sign,
//! or that hold the best margin found, are cut small and chained; the others are cut until their size, in
//! crossed faces, is small enough for their margins. Every such region is bounded from its two ends' probes:
//! each probe keeps the exact values the bounds read (its trace), and every neuron of the region lies in a band
//! around the chord between its exact values at the ends, propagated by one pass of each layer and one of its
//! absolute value per region ([`Bounder::chord_margins`], mathematics §5.7; networks with max-pooling or smooth
//! activations take forward lines in `r` instead, [`Bounder::forward_margins`]). Many regions go through the
//! kernels per batch; the margins that would keep a region open (or below the best exact margin) get their
//! lower lines tightened by back-substitution through the network's last, cheap layers. A region on which every margin's lower line is positive at both ends keeps the label everywhere;
//! one on which, at every point, some margin's upper line is not positive is violated everywhere. Open
//! regions are halved and re-bounded a few times, then chained. The kept length, the violated intervals and
//! the first crossing (hence `E_max`) follow exactly from these three kinds of region. The smallest margin
//! needs more: a region decided by bounds only has a lower bound of its smallest margin, so regions whose
//! lower bound is below the best exact margin found are halved and chained the same way, until no region
//! could hide a smaller one (branch and bound). Exact margins at every probe and midpoint tighten the best
//! value early.

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use gcert_core::certificate::{Certificate, Method, Problem};
use gcert_core::network::{check_finite, check_layer_output, chunk_points};
use gcert_core::ops::{wide, Scratch};
use gcert_core::{Result, Segment};
use gcert_exactline::{ExactLine, Sink};
use rayon::prelude::*;

use crate::bounds::{Bounder, Relaxation, Trace};
use crate::complete::{combine, definite};
use crate::margin::{positive_interval, push_interval, SideScan};
use crate::sides::signs;
use crate::Certifier;

/// What one region contributes, in ratio units of its side.
#[derive(Debug, Clone)]
struct Part {
    r0: f64,
    r1: f64,
    /// Halvings since the side was cut into regions.
    depth: u32,
    state: State,
    /// The probes' traces at the two ends, where the bounds read them ([`Bounder::chord_margins`]) and the
    /// region may be bounded again; dropped once it is chained.
    ends: Ends,
}

/// The traces of a region's two ends, where the bounder reads traces.
type Ends = Option<[Arc<Trace>; 2]>;

/// A region to bound: its ends in the side's ratio and their traces.
type Region = (f64, f64, Ends);

/// The ends of the region between two probes.
fn ends_of(a: &Probe, b: &Probe) -> Ends {
    Some([a.trace.clone()?, b.trace.clone()?])
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

/// The first probes of a side: this many cells of equal length.
const GRID: usize = 8;

/// A side whose first probes cross fewer activation faces than this is chained whole: about as many pieces,
/// cheaper to chain than to bound.
const SHORT: usize = 64;

/// Cells where a margin changes sign, or whose end holds the best margin found, are halved down to this many
/// crossed faces and chained: bounds cannot decide the first, and the second is where the smallest margin
/// is sought.
const CHAIN_CELL: usize = 8;

/// Other cells are halved while larger than this many crossed faces and their margins are below the bounds'
/// expected looseness ([`LOOSENESS`]) ...
const MIN_CELL: usize = 48;

/// ... and always while larger than this.
const MAX_CELL: usize = 160;

/// The looseness a region's bounds are expected to afford, in margin units, is `LOOSENESS · f^1.5` for `f`
/// crossed faces: on the trained MNIST models at ε = 3, the lower bound of the smallest margin of a region
/// fell below the smaller of its end margins by a median of 0.0037 · f^1.5 and a 90th percentile of
/// 0.013 · f^1.5. Set below the median (with [`MIN_CELL`] and [`MAX_CELL`]): fewer, larger regions, some of
/// which the settling halves, cost less in all than cells cut until nearly every bound decides
/// (docs/performance.md). 0.002 was best before the AVX2 kernels of the eighth session; with them a probe
/// costs less against a bound, and 0.003 was 6% faster than 0.002 and 0.004 on the same binaries in turns.
const LOOSENESS: f64 = 0.003;

/// Rounds of halving at most: cells reach their sizes in about log2(faces / 8) rounds.
const MAX_ROUNDS: usize = 24;

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

/// An exact probe of a side: the smallest margin there and, for the estimate of the pieces between probes,
/// which side of each activation face every neuron lies on (a bit per neuron and face; empty unless asked for).
struct Probe {
    best: Best,
    signs: Vec<u64>,
    /// The exact values the bounds read ([`Bounder::traced`]), where the network admits chord bounds.
    trace: Option<Arc<Trace>>,
}

/// Appends to a bit set, starting a new word, one bit per value: whether it lies above `at`. A word of 64
/// values is one branch-free fold, which the compiler vectorizes ([`wide`]): packing a bit at a time was 18 µs
/// of a probe's 280 on the target case (docs/performance.md).
fn push_bits(bits: &mut Vec<u64>, values: &[f64], at: f64) {
    #[inline(always)]
    fn word(values: &[f64], at: f64) -> u64 {
        values.iter().enumerate().fold(0u64, |w, (i, &v)| w | (u64::from(v > at) << i))
    }
    wide(
        #[inline(always)]
        || {
            let chunks = values.chunks_exact(64);
            let rest = chunks.remainder();
            bits.extend(chunks.map(|c| word(c, at)));
            if !rest.is_empty() {
                bits.push(word(rest, at));
            }
        },
    );
}

/// The activation faces crossed between two probes: a lower estimate of the breakpoints between them.
fn crossed(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones() as usize).sum()
}

/// How far a cell with end margins `m0`, `m1` is from needing the exact chain, given the best margin found:
/// where both are positive, the room above `max(best, 0)` (a region is settled by bounds once its lower bound
/// clears both); where both are negative, the room below zero, and above `best`; zero where the sign changes.
fn slack(m0: f64, m1: f64, best: f64) -> f64 {
    if m0 > 0.0 && m1 > 0.0 {
        m0.min(m1) - best.max(0.0)
    } else if m0 < 0.0 && m1 < 0.0 {
        (-m0.max(m1)).min(m0.min(m1) - best)
    } else {
        0.0
    }
}

/// Whether a cell of `faces` crossed faces is halved before it is bounded or chained.
fn split(faces: usize, m0: f64, m1: f64, best: f64) -> bool {
    let room = slack(m0, m1, best);
    if faces <= CHAIN_CELL {
        false
    } else if room <= 0.0 {
        true
    } else {
        faces > MAX_CELL || (faces > MIN_CELL && LOOSENESS * (faces as f64).powf(1.5) > room)
    }
}

struct Side<'p, 'a> {
    problem: &'p Problem<'a>,
    /// On one thread: regions are chained in parallel with each other, each of them short.
    engine: &'p ExactLine<'a>,
    /// Built by the first probe, which records what the bounder's traces hold; shared by the two sides.
    bounder: &'p OnceLock<Bounder<'a>>,
    /// The side's ratio `r` is `t = sign·r`.
    sign: f64,
}

impl Side<'_, '_> {
    fn point(&self, r: f64) -> Vec<f64> {
        self.problem.point(self.sign * r)
    }

    /// The exact smallest margins at ratios `rs`, by batched forward passes (chunks on rayon's threads).
    fn probes(&self, rs: &[f64]) -> Result<Vec<Probe>> {
        self.probe(rs, false)
    }

    /// The bounder, built on first use.
    fn bounder(&self) -> &Bounder<'_> {
        self.bounder.get_or_init(|| {
            let (rows, offsets) =
                self.problem.decision().margin_rows(self.problem.label(), self.problem.output_len());
            Bounder::new(self.problem.layers(), &rows, &offsets, Relaxation::Linear)
                .with_tail_share(TAIL_SHARE)
        })
    }

    /// Probes at ratios `rs`: the exact smallest margin and, if `faces`, the side of every activation face
    /// each neuron lies on, by batched forward passes (chunks of [`chunk_points`] on rayon's threads).
    fn probe(&self, rs: &[f64], faces: bool) -> Result<Vec<Probe>> {
        let layers = self.problem.layers();
        let chunk = chunk_points(&layers, self.problem.input_len());
        let bounder = self.bounder();
        let traced = if bounder.chords() { bounder.traced() } else { Vec::new() };
        let chunks = rs
            .par_chunks(chunk)
            .map(|rs| {
                let n = rs.len();
                let mut cur: Vec<f64> = rs.iter().flat_map(|&r| self.point(r)).collect();
                check_finite("a point of the segment", &cur)?;
                let mut next = Vec::new();
                let mut scratch = Scratch::default();
                let mut signs = vec![Vec::new(); if faces { n } else { 0 }];
                let mut traces =
                    vec![Vec::with_capacity(traced.len()); if traced.is_empty() { 0 } else { n }];
                let mut record = |cur: &[f64], index: usize| {
                    let m = cur.len() / n;
                    for (k, t) in traces.iter_mut().enumerate() {
                        t.push(if traced[index] { cur[k * m..(k + 1) * m].to_vec() } else { Vec::new() });
                    }
                };
                for (index, layer) in layers.iter().enumerate() {
                    let m = layer.in_len();
                    if !traced.is_empty() {
                        record(&cur, index);
                    }
                    for face in layer.faces().iter().filter(|_| faces) {
                        let at = layer.face_value(*face);
                        for (k, bits) in signs.iter_mut().enumerate() {
                            push_bits(bits, &cur[k * m..(k + 1) * m], at);
                        }
                    }
                    layer.apply(&cur, n, &mut next, &mut scratch);
                    check_layer_output(index, layer, &next)?;
                    std::mem::swap(&mut cur, &mut next);
                }
                if !traced.is_empty() {
                    record(&cur, layers.len());
                }
                let mut traces = traces.into_iter();
                let w = self.problem.output_len();
                Ok(rs
                    .iter()
                    .zip(cur.chunks_exact(w))
                    .enumerate()
                    .map(|(k, (&r, out))| Probe {
                        best: Best {
                            margin: self.problem.decision().min_margin(self.problem.label(), out),
                            at: r,
                        },
                        signs: std::mem::take(signs.get_mut(k).unwrap_or(&mut Vec::new())),
                        trace: traces.next().map(|t| Arc::new(Trace::new(t))),
                    })
                    .collect::<Vec<Probe>>())
            })
            .collect::<Result<Vec<Vec<Probe>>>>()?;
        Ok(chunks.into_iter().flatten().collect())
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
    /// bands around the chords between the ends' traces where the probes recorded them, forward lines from the
    /// end points otherwise. The margins whose lower line reaches `max(best, 0)` (those that keep a region open
    /// or below the best exact margin) are tightened through the network's last layers ([`TAIL_SHARE`]).
    fn bound(&self, regions: &[Region], best: f64) -> Vec<State> {
        let bounder = self.bounder();
        let chords: Option<Vec<[&Trace; 2]>> =
            regions.iter().map(|(_, _, ends)| ends.as_ref().map(|[a, b]| [&**a, &**b])).collect();
        let lines = match chords {
            Some(ends) => bounder.chord_margins(&ends, best.max(0.0), best),
            None => {
                let mut batch = Vec::with_capacity(2 * regions.len() * self.problem.input_len());
                for &(r0, r1, _) in regions {
                    batch.extend(self.point(r0));
                    batch.extend(self.point(r1));
                }
                bounder.forward_margins(&batch, regions.len(), best.max(0.0))
            }
        };
        lines
            .into_iter()
            .map(|lines| {
                let lower =
                    lines.lower[0].iter().chain(&lines.lower[1]).copied().fold(f64::INFINITY, f64::min);
                let nan = lines.lower.iter().chain(&lines.upper).flatten().any(|v| v.is_nan());
                if nan {
                    // A bound that overflowed decides nothing.
                    State::Open
                } else if lower > 0.0 {
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
    /// The side is probed at [`GRID`] + 1 evenly spaced points. The activation faces crossed between two
    /// neighbouring probes estimate the pieces between them (every crossed face is at least one breakpoint; on
    /// the trained MNIST models the estimate was 95% of the pieces, docs/performance.md), and the exact margins
    /// at the probes tell how much looseness a region's bounds can afford. A side of fewer than [`SHORT`]
    /// crossed faces is chained whole. Otherwise a cell is halved at a new probe while [`split`] says so:
    /// where a margin changes sign or the best margin lies at its end, down to [`CHAIN_CELL`] faces, which are
    /// then chained; elsewhere until the bounds' expected looseness at its size is below its margins. The
    /// other cells are bounded, and [`Self::settle`] does the rest.
    fn scan(&self) -> Result<SideScan> {
        let mut rs: Vec<f64> = (0..=GRID).map(|k| k as f64 / GRID as f64).collect();
        let mut probes = self.probe(&rs, true)?;
        let mut best = probes.iter().fold(Best { margin: f64::INFINITY, at: 0.0 }, |b, p| b.min(p.best));
        let faces = |probes: &[Probe], k: usize| crossed(&probes[k].signs, &probes[k + 1].signs);
        if (0..GRID).map(|k| faces(&probes, k)).sum::<usize>() < SHORT {
            let (state, _) = self.chain(0.0, 1.0)?;
            let State::Exact(scan) = state else { unreachable!("a chain is exact") };
            return Ok(*scan);
        }
        for _ in 0..MAX_ROUNDS {
            let mids: Vec<f64> = (0..rs.len() - 1)
                .filter(|&k| {
                    split(faces(&probes, k), probes[k].best.margin, probes[k + 1].best.margin, best.margin)
                })
                .map(|k| 0.5 * (rs[k] + rs[k + 1]))
                .collect();
            if mids.is_empty() {
                break;
            }
            let new = self.probe(&mids, true)?;
            best = new.iter().fold(best, |b, p| b.min(p.best));
            let (old_rs, old) = (std::mem::take(&mut rs), std::mem::take(&mut probes));
            let mut new = mids.into_iter().zip(new).peekable();
            for (r, p) in old_rs.into_iter().zip(old) {
                while let Some((m, q)) = new.next_if(|(m, _)| *m < r) {
                    rs.push(m);
                    probes.push(q);
                }
                rs.push(r);
                probes.push(p);
            }
        }
        let (chain, bound): (Vec<usize>, Vec<usize>) = (0..rs.len() - 1)
            .partition(|&k| slack(probes[k].best.margin, probes[k + 1].best.margin, best.margin) <= 0.0);
        let chained = chain
            .par_iter()
            .map(|&k| {
                let (state, b) = self.chain(rs[k], rs[k + 1])?;
                Ok((Part { r0: rs[k], r1: rs[k + 1], depth: MAX_HALVINGS, state, ends: None }, b))
            })
            .collect::<Result<Vec<(Part, Best)>>>()?;
        let mut parts = Vec::with_capacity(rs.len());
        for (p, b) in chained {
            best = best.min(b);
            parts.push(p);
        }
        let regions: Vec<Region> =
            bound.iter().map(|&k| (rs[k], rs[k + 1], ends_of(&probes[k], &probes[k + 1]))).collect();
        drop(probes);
        let states = self.bound_batches(&regions, best.margin);
        parts.extend(regions.into_iter().zip(states).map(|((r0, r1, ends), state)| Part {
            r0,
            r1,
            depth: 0,
            state,
            ends,
        }));
        let (parts, best) = self.settle(parts, best)?;
        Ok(total(self.problem, &parts, best))
    }

    /// Bounds regions in batches of [`BOUND_BATCH`] on rayon's threads.
    fn bound_batches(&self, regions: &[Region], best: f64) -> Vec<State> {
        regions.par_chunks(BOUND_BATCH).flat_map_iter(|batch| self.bound(batch, best)).collect()
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
                    Ok((Part { state, ends: None, ..p }, b))
                })
                .collect::<Result<Vec<(Part, Best)>>>()?;
            for (p, b) in chained {
                best = best.min(b);
                next.push(p);
            }
            if !halve.is_empty() {
                let mids: Vec<f64> = halve.iter().map(|p| 0.5 * (p.r0 + p.r1)).collect();
                let probes = self.probes(&mids)?;
                for q in &probes {
                    best = best.min(q.best);
                }
                let regions: Vec<Region> = halve
                    .iter()
                    .zip(&mids)
                    .zip(&probes)
                    .flat_map(|((p, &m), q)| {
                        let [a, b] = match (&p.ends, &q.trace) {
                            (Some([a, b]), Some(t)) => {
                                [Some([a.clone(), t.clone()]), Some([t.clone(), b.clone()])]
                            }
                            _ => [None, None],
                        };
                        [(p.r0, m, a), (m, p.r1, b)]
                    })
                    .collect();
                let states = self.bound_batches(&regions, best.margin);
                for (((r0, r1, ends), state), p) in
                    regions.into_iter().zip(states).zip(halve.iter().flat_map(|p| [p, p]))
                {
                    next.push(Part { r0, r1, depth: p.depth + 1, state, ends });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed words hold, bit `i % 64` of word `i / 64`, whether value `i` is above the face, for every
    /// length (a partial last word included), NaN (never above) and values at the face itself.
    #[test]
    fn face_bits_are_one_per_value_in_order() {
        for len in [0usize, 1, 5, 63, 64, 65, 127, 128, 200] {
            let values: Vec<f64> = (0..len)
                .map(|i| match i % 7 {
                    0 => f64::NAN,
                    1 => 0.0,
                    k => (k as f64 - 3.5) * (i as f64 + 1.0),
                })
                .collect();
            let mut bits = vec![u64::MAX];
            push_bits(&mut bits, &values, 0.0);
            assert_eq!(bits.len(), 1 + len.div_ceil(64), "length {len}");
            for (i, &v) in values.iter().enumerate() {
                assert_eq!((bits[1 + i / 64] >> (i % 64)) & 1 == 1, v > 0.0, "length {len}, value {i}");
            }
            for (w, word) in bits[1..].iter().enumerate() {
                let used = (len - 64 * w).min(64);
                assert!(used == 64 || word >> used == 0, "length {len}: bits past the values in word {w}");
            }
        }
    }
}
