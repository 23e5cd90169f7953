//! Branch and bound over the segment variable: bound sub-segments, split the undecided ones, within a budget.
//!
//! A region is a sub-segment `[r0, r1]` of one side (ratio `r` from `t = 0` outwards) on which the bounded
//! layers' input is the line from `x0` to `x1`. For each region the margins' lower lines give the part where
//! the label is certainly kept, their upper lines the part where it may be kept; the rest is certainly
//! violated. With a one-dimensional input, halving regions converges to the exact answer for PL layers.

use std::collections::BinaryHeap;

use gcert_core::certificate::Counterexample;
use gcert_core::Result;

use crate::bounds::Bounder;
use crate::margin::{positive_interval, push_interval};

/// A sub-segment and the bounded layers' input at its ends.
#[derive(Debug, Clone)]
pub struct Region {
    pub r0: f64,
    pub r1: f64,
    pub x0: Vec<f64>,
    pub x1: Vec<f64>,
}

/// What branch and bound established on one side.
#[derive(Debug, Clone, Default)]
pub struct Explored {
    /// Length (in ratio units) on which the label is certainly kept.
    pub kept_lower: f64,
    /// Length on which the label may be kept.
    pub kept_upper: f64,
    /// `[0, prefix]` certainly keeps the label.
    pub prefix: f64,
    /// Ratio intervals proven violated.
    pub violated: Vec<[f64; 2]>,
    /// A lower bound on the smallest margin, and the ratio of the region end where it was found.
    pub min_margin: f64,
    pub min_at: f64,
    /// Regions bounded (evaluations of the bounder).
    pub evaluations: usize,
    /// Final regions.
    pub leaves: usize,
    /// Every final region certainly keeps the label.
    pub certified: bool,
    /// A counterexample, evaluated by a forward pass, if one was found.
    pub counterexample: Option<Counterexample>,
}

struct Leaf {
    region: Region,
    /// Local kept interval from the lower lines (certain) and the upper lines (possible).
    certain: Option<(f64, f64)>,
    possible: Option<(f64, f64)>,
    min_lower: (f64, f64),
    alive: bool,
}

impl Leaf {
    fn gap(&self) -> f64 {
        let len = |iv: Option<(f64, f64)>| iv.map_or(0.0, |(a, b)| b - a);
        (len(self.possible) - len(self.certain)).max(0.0) * (self.region.r1 - self.region.r0)
    }
}

#[derive(PartialEq)]
struct ByGap(f64, usize);

impl Eq for ByGap {}

impl PartialOrd for ByGap {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByGap {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

fn bound(bounder: &Bounder<'_>, region: Region) -> Leaf {
    let lines = bounder.margins(&region.x0, &region.x1);
    let certain = positive_interval(&lines.lower[0], &lines.lower[1]);
    let possible = positive_interval(&lines.upper[0], &lines.upper[1]);
    let m0 = lines.lower[0].iter().copied().fold(f64::INFINITY, f64::min);
    let m1 = lines.lower[1].iter().copied().fold(f64::INFINITY, f64::min);
    let min_lower = if m0 <= m1 { (m0, region.r0) } else { (m1, region.r1) };
    Leaf { region, certain, possible, min_lower, alive: true }
}

/// Bounds every region, then halves the least decided ones while `budget` evaluations remain. With
/// `verdict_first`, also probes the middle of every region it splits, and once a counterexample at ratio
/// `r_c` is known splits only regions before `r_c` (where the certified prefix can still grow); without it,
/// the whole side is refined for the fraction bounds. `probe(r)` evaluates the model at
/// ratio `r` of this side and returns a counterexample if the label is not kept there.
pub fn explore(
    bounder: &Bounder<'_>,
    regions: Vec<Region>,
    budget: usize,
    verdict_first: bool,
    probe: &mut dyn FnMut(f64) -> Result<Option<Counterexample>>,
) -> Result<Explored> {
    let mut out = Explored::default();
    let mut leaves: Vec<Leaf> = Vec::with_capacity(regions.len());
    let mut heap = BinaryHeap::new();
    let tiny = 1e-12;
    for region in regions {
        let leaf = bound(bounder, region);
        out.evaluations += 1;
        if leaf.gap() > tiny {
            heap.push(ByGap(leaf.gap(), leaves.len()));
        }
        leaves.push(leaf);
    }
    let mut spent = 0;
    for leaf in &leaves {
        check(leaf, &mut out, probe)?;
    }
    while spent + 2 <= budget {
        let Some(ByGap(_, i)) = heap.pop() else { break };
        let found = out.counterexample.as_ref().map(|c| c.t.abs());
        if verdict_first && found.is_some_and(|rc| leaves[i].region.r0 >= rc) {
            continue;
        }
        leaves[i].alive = false;
        let r = leaves[i].region.clone();
        let rm = 0.5 * (r.r0 + r.r1);
        if !(rm > r.r0 && rm < r.r1) {
            continue;
        }
        // An undecided region's middle is a cheap place to look for a counterexample.
        if verdict_first && out.counterexample.is_none() {
            out.counterexample = probe(rm)?;
        }
        let xm: Vec<f64> = r.x0.iter().zip(&r.x1).map(|(a, b)| 0.5 * (a + b)).collect();
        let halves = [
            Region { r0: r.r0, r1: rm, x0: r.x0.clone(), x1: xm.clone() },
            Region { r0: rm, r1: r.r1, x0: xm, x1: r.x1 },
        ];
        for h in halves {
            let leaf = bound(bounder, h);
            spent += 1;
            out.evaluations += 1;
            check(&leaf, &mut out, probe)?;
            if leaf.gap() > tiny {
                heap.push(ByGap(leaf.gap(), leaves.len()));
            }
            leaves.push(leaf);
        }
    }
    let mut alive: Vec<&Leaf> = leaves.iter().filter(|l| l.alive).collect();
    alive.sort_by(|a, b| a.region.r0.total_cmp(&b.region.r0));
    out.leaves = alive.len();
    out.min_margin = f64::INFINITY;
    out.certified = alive.iter().all(|l| l.certain == Some((0.0, 1.0)));
    let mut prefix_open = true;
    for leaf in alive {
        let r = &leaf.region;
        let len = r.r1 - r.r0;
        if let Some((lo, hi)) = leaf.certain {
            out.kept_lower += (hi - lo) * len;
        }
        match leaf.possible {
            Some((lo, hi)) => {
                out.kept_upper += (hi - lo) * len;
                if lo > 0.0 {
                    push_interval(&mut out.violated, r.r0, r.r0 + lo * len);
                }
                if hi < 1.0 {
                    push_interval(&mut out.violated, r.r0 + hi * len, r.r1);
                }
            }
            None => push_interval(&mut out.violated, r.r0, r.r1),
        }
        if prefix_open {
            match leaf.certain {
                Some((lo, hi)) if lo == 0.0 && r.r0 <= out.prefix => {
                    out.prefix = r.r0 + hi * len;
                    prefix_open = hi >= 1.0;
                }
                _ => prefix_open = false,
            }
        }
        if leaf.min_lower.0 < out.min_margin {
            (out.min_margin, out.min_at) = leaf.min_lower;
        }
    }
    Ok(out)
}

/// Evaluates the model inside a leaf's proven-violated part, once no counterexample is known, so that a
/// violation is reported only with a forward pass that shows it.
fn check(
    leaf: &Leaf,
    out: &mut Explored,
    probe: &mut dyn FnMut(f64) -> Result<Option<Counterexample>>,
) -> Result<()> {
    if out.counterexample.is_some() {
        return Ok(());
    }
    let r = &leaf.region;
    let len = r.r1 - r.r0;
    let at = match leaf.possible {
        None => Some(0.5 * (r.r0 + r.r1)),
        Some((lo, _)) if lo > 0.0 => Some(r.r0 + 0.5 * lo * len),
        Some((_, hi)) if hi < 1.0 => Some(r.r0 + 0.5 * (1.0 + hi) * len),
        _ => None,
    };
    if let Some(at) = at {
        out.counterexample = probe(at)?;
    }
    Ok(())
}
