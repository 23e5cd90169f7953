//! Sound bounds on a network's margins over a sub-segment, with the segment variable as the only input
//! (docs/mathematics.md §5).
//!
//! The input is the line `x(s)` from `x0` (at `s0`) to `x1` (at `s1`). Every neuron gets a lower and an upper
//! *line in s* (stored as its values at the two ends), valid for all `s ∈ [s0, s1]`:
//!
//! - affine layers map the centre line through the layer and the radius line through `|A|` (in `f32` where the
//!   layer has a single-precision `|A|`, with every rounding added to the radius: [`single`]);
//! - an activation `σ` is bounded below by a relaxation of `σ(l(s))` and above by one of `σ(u(s))`. Where
//!   `σ` is convex over the range of `u`, the chord of `σ(u(s))` between the ends is an upper line (and the
//!   chord of `σ(l(s))` a lower line where `σ` is concave); elsewhere the DeepPoly/CROWN relaxation of `σ`
//!   over the neuron's range is composed with the line. Max-pooling: the chord of `max_j u_j(s)` (convex) above,
//!   the best single candidate below.
//!
//! With [`Relaxation::Linear`], the margins' lines are then tightened by back-substitution (CROWN): the margin
//! rows are pulled back through every layer, using the activation relaxations in their input variable (built
//! from the forward bounds), down to the input line, where they are exact linear functions of `s`. Per margin,
//! the better of the forward and the back-substituted line (by mean over the sub-segment) is kept; both are
//! sound. [`Relaxation::Interval`] collapses every line to its range after each layer: interval bound
//! propagation.
//!
//! Every final bound is widened by `1e-9·(1 + |value|)` so that rounding in the bound computation cannot make
//! it tighter than the exact value.

use gcert_core::ops::{Activation, Kind, PoolGeom, Scratch};
use gcert_core::{Layer, Op};

use gcert_core::ops::{transpose_apply, wide};

/// How neuron bounds are represented while they propagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Relaxation {
    /// Intervals (constants over the sub-segment): IBP.
    Interval,
    /// Lines in the segment variable, with back-substitution of the margins (DeepPoly/CROWN).
    #[default]
    Linear,
}

/// Lower and upper lines of each margin, as values at the two ends of the sub-segment.
#[derive(Debug, Clone, PartialEq)]
pub struct MarginLines {
    pub lower: [Vec<f64>; 2],
    pub upper: [Vec<f64>; 2],
}

/// Lines of every coordinate of one layer's output (values at the two ends).
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronLines {
    pub l0: Vec<f64>,
    pub l1: Vec<f64>,
    pub u0: Vec<f64>,
    pub u1: Vec<f64>,
}

impl NeuronLines {
    fn exact(x0: &[f64], x1: &[f64]) -> Self {
        NeuronLines { l0: x0.to_vec(), l1: x1.to_vec(), u0: x0.to_vec(), u1: x1.to_vec() }
    }

    /// Per-coordinate interval over the sub-segment.
    pub fn range(&self, i: usize) -> (f64, f64) {
        (self.l0[i].min(self.l1[i]), self.u0[i].max(self.u1[i]))
    }

    fn collapse(&mut self) {
        for i in 0..self.l0.len() {
            let (p, q) = self.range(i);
            (self.l0[i], self.l1[i], self.u0[i], self.u1[i]) = (p, p, q, q);
        }
    }
}

/// How back-substitution passes a non-affine layer.
#[derive(Debug, Clone)]
enum Pullback {
    Affine,
    /// Per neuron `(al, bl, au, bu)`: `al·x + bl ≤ σ(x) ≤ au·x + bu` on the neuron's range.
    Elementwise(Vec<[f64; 4]>),
    /// Per output: the input index that bounds it below, whether it is exactly that input, and an upper
    /// constant.
    MaxPool(Vec<(usize, bool, f64)>),
}

/// Bounds the margins of a fixed label through a fixed sequence of layers.
#[derive(Debug)]
pub struct Bounder<'a> {
    /// The layers; their `|A|` layers and adjoints (for back-substitution on the batched kernels) are
    /// [`Layer::abs`] and [`Layer::adjoint`], built once per layer and shared by every bounder.
    layers: Vec<&'a Layer>,
    /// `layer(0)` for affine layers: the constant term.
    constant: Vec<Vec<f64>>,
    /// Margin rows (`k × output`), row-major, and offsets.
    rows: Vec<f64>,
    offsets: Vec<f64>,
    k: usize,
    relaxation: Relaxation,
    /// Whether back-substitution also tightens the margins' upper lines.
    upper: bool,
    /// Layers at the end that [`Self::forward_margins`] back-substitutes the margins' lower lines through.
    tail: usize,
}

impl<'a> Bounder<'a> {
    /// `rows`/`offsets` define the margins as linear forms of the last layer's output.
    pub fn new(layers: Vec<&'a Layer>, rows: &[Vec<f64>], offsets: &[f64], relaxation: Relaxation) -> Self {
        let mut scratch = Scratch::default();
        let constant = layers
            .iter()
            .map(|l| {
                if l.kind() == Kind::Affine {
                    let mut out = Vec::new();
                    l.apply(&vec![0.0; l.in_len()], 1, &mut out, &mut scratch);
                    out
                } else {
                    Vec::new()
                }
            })
            .collect();
        Bounder {
            layers,
            constant,
            rows: rows.concat(),
            offsets: offsets.to_vec(),
            k: rows.len(),
            relaxation,
            upper: true,
            tail: 0,
        }
    }

    /// [`Self::forward_margins`] tightens the margins' lower lines by back-substitution through the last
    /// `layers` layers (at most up to the last max-pooling layer), from the forward lines of the first of them.
    pub fn with_tail(mut self, layers: usize) -> Self {
        let pool = self.layers.iter().rposition(|l| l.kind() == Kind::MaxPool).map_or(0, |i| i + 1);
        self.tail = layers.min(self.layers.len() - pool);
        self
    }

    /// [`Self::with_tail`] through the longest run of last layers whose multiply-adds per point add up to at
    /// most `share` of the whole network's: one back-substituted row then costs at most that share of a
    /// forward point.
    pub fn with_tail_share(self, share: f64) -> Self {
        let cost = |l: &Layer| l.cost().0.unwrap_or(usize::MAX) as f64;
        let total: f64 = self.layers.iter().map(|l| cost(l)).sum();
        let mut spent = 0.0;
        let layers = self
            .layers
            .iter()
            .rev()
            .take_while(|l| {
                spent += cost(l);
                spent <= share * total
            })
            .count();
        self.with_tail(layers)
    }

    /// Back-substitutes only for the margins' lower lines (all a verdict needs), at half the cost; the
    /// upper lines come from the forward pass alone.
    pub fn lower_only(mut self) -> Self {
        self.upper = false;
        self
    }

    /// Lines of every neuron of the last layer over the line from `x0` to `x1` (forward pass only; the
    /// property tests check these bracket the network).
    #[cfg(test)]
    pub fn neuron_lines(&self, x0: &[f64], x1: &[f64]) -> NeuronLines {
        self.forward(x0, x1, None)
    }

    fn forward(&self, x0: &[f64], x1: &[f64], mut record: Option<&mut Vec<Pullback>>) -> NeuronLines {
        let mut cur = NeuronLines::exact(x0, x1);
        let mut affine = single::Affine::default();
        let (mut mid, mut rad, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for layer in &self.layers {
            let pull = match layer.kind() {
                Kind::Affine => {
                    let n = cur.l0.len();
                    mid.clear();
                    rad.clear();
                    for (l, u) in [(&cur.l0, &cur.u0), (&cur.l1, &cur.u1)] {
                        mid.extend(l.iter().zip(u.iter()).map(|(l, u)| 0.5 * (l + u)));
                        rad.extend(l.iter().zip(u.iter()).map(|(l, u)| 0.5 * (u - l)));
                    }
                    debug_assert_eq!(mid.len(), 2 * n);
                    let m = layer.out_len();
                    if rad.iter().all(|&r| r == 0.0) {
                        layer.apply(&mid, 2, &mut out, &mut affine.scratch);
                        let (c0, c1) = out.split_at(m);
                        cur = NeuronLines::exact(c0, c1);
                    } else {
                        affine.apply(layer, &mut mid, &mut rad, 2);
                        let (c0, c1) = mid.split_at(m);
                        let (r0, r1) = rad.split_at(m);
                        cur = NeuronLines {
                            l0: c0.iter().zip(r0).map(|(c, r)| c - r).collect(),
                            l1: c1.iter().zip(r1).map(|(c, r)| c - r).collect(),
                            u0: c0.iter().zip(r0).map(|(c, r)| c + r).collect(),
                            u1: c1.iter().zip(r1).map(|(c, r)| c + r).collect(),
                        };
                    }
                    Pullback::Affine
                }
                Kind::Elementwise | Kind::NonLinear => {
                    let act =
                        layer.activation().expect("an elementwise or non-linear layer is an activation");
                    let n = cur.l0.len();
                    let mut next = NeuronLines {
                        l0: vec![0.0; n],
                        l1: vec![0.0; n],
                        u0: vec![0.0; n],
                        u1: vec![0.0; n],
                    };
                    let mut relax = Vec::with_capacity(if record.is_some() { n } else { 0 });
                    for j in 0..n {
                        let (l0, l1, u0, u1) = (cur.l0[j], cur.l1[j], cur.u0[j], cur.u1[j]);
                        let (a, b, c, d) = act.lines(l0, l1, u0, u1);
                        (next.l0[j], next.l1[j], next.u0[j], next.u1[j]) = (a, b, c, d);
                        if record.is_some() {
                            let (p, q) = cur.range(j);
                            relax.push(act.relax(p, q));
                        }
                    }
                    cur = next;
                    Pullback::Elementwise(relax)
                }
                Kind::MaxPool => {
                    let Op::MaxPool2d(g) = &layer.op() else { unreachable!("max-pool kind") };
                    let m = layer.out_len();
                    let mut next = NeuronLines {
                        l0: vec![0.0; m],
                        l1: vec![0.0; m],
                        u0: vec![0.0; m],
                        u1: vec![0.0; m],
                    };
                    let mut window = Vec::new();
                    max_pool_lines(
                        g,
                        &mut window,
                        [&cur.l0, &cur.l1],
                        [&cur.u0, &cur.u1],
                        [&mut next.l0, &mut next.l1],
                        [&mut next.u0, &mut next.u1],
                    );
                    let mut pulls = Vec::with_capacity(if record.is_some() { m } else { 0 });
                    if record.is_some() {
                        for ch in 0..g.c {
                            for oy in 0..g.oh {
                                for ox in 0..g.ow {
                                    g.window(ch, oy, ox, &mut window);
                                    let p_of = |j: usize| cur.range(j).0;
                                    let star = *window
                                        .iter()
                                        .max_by(|&&a, &&b| p_of(a).total_cmp(&p_of(b)))
                                        .expect("pooling windows are not empty");
                                    let q_other = window
                                        .iter()
                                        .filter(|&&j| j != star)
                                        .map(|&j| cur.range(j).1)
                                        .fold(f64::NEG_INFINITY, f64::max);
                                    let q_all = q_other.max(cur.range(star).1);
                                    pulls.push((star, p_of(star) >= q_other, q_all));
                                }
                            }
                        }
                    }
                    cur = next;
                    Pullback::MaxPool(pulls)
                }
            };
            if self.relaxation == Relaxation::Interval {
                cur.collapse();
            }
            if let Some(r) = record.as_deref_mut() {
                r.push(pull);
            }
        }
        cur
    }

    /// [`Self::margins`] from the forward pass alone, for many sub-segments at once: `ends` holds, for each of
    /// `regions` sub-segments, its two end points (`x0` then `x1`), and each layer runs once over all of them
    /// (four points per region through the batched kernels: the centre and radius lines at both ends). Looser
    /// than back-substitution on wide sub-segments, as tight on the narrow ones the hybrid cuts a segment into
    /// (docs/performance.md), at a fraction of its cost. With a tail ([`Self::with_tail`]), every margin whose
    /// lower line is at most `tighten_below` at an end is tightened by back-substitution through the tail
    /// (`f64::NEG_INFINITY`: none). Widened like `margins`.
    pub fn forward_margins(&self, ends: &[f64], regions: usize, tighten_below: f64) -> Vec<MarginLines> {
        let n0 = self.layers.first().map_or(0, |l| l.in_len());
        debug_assert_eq!(ends.len(), 2 * regions * n0);
        // Rows `2r` and `2r + 1` hold region r's values at its two ends, in `a` and `b` as `form` says.
        let mut a = ends.to_vec();
        let mut b = Vec::new();
        let mut form = Form::Exact;
        let mut affine = single::Affine::default();
        let mut c = Vec::new();
        let mut window = Vec::new();
        let rows = 2 * regions;
        // The forward lines at the input of each layer the tail back-substitutes through (none kept when no
        // margin can be tightened).
        let tail = if tighten_below == f64::NEG_INFINITY { 0 } else { self.tail };
        let first_tail = self.layers.len() - tail;
        let saves = |i: usize| {
            i >= first_tail
                && (i == first_tail || matches!(self.layers[i].kind(), Kind::Elementwise | Kind::NonLinear))
        };
        let mut saved: Vec<(Vec<f64>, Vec<f64>)> = Vec::with_capacity(tail);
        for (i, layer) in self.layers.iter().enumerate() {
            if i >= first_tail {
                saved.push(if saves(i) && form == Form::Exact {
                    // Exact values are their own lines; the layers before the first activation stay exact.
                    (a.clone(), a.clone())
                } else if saves(i) {
                    ends_of(&mut form, &mut a, &mut b);
                    (a.clone(), b.clone())
                } else {
                    Default::default()
                });
            }
            match layer.kind() {
                Kind::Affine => {
                    if form == Form::Exact {
                        layer.apply(&a, rows, &mut c, &mut affine.scratch);
                        std::mem::swap(&mut a, &mut c);
                        // Exact values: nothing to collapse, even for intervals (`Exact` stays until the first
                        // activation, so every collapse below sees lines).
                        continue;
                    }
                    mid_rad_of(&mut form, &mut a, &mut b);
                    affine.apply(layer, &mut a, &mut b, rows);
                    form = Form::Centre;
                }
                Kind::Elementwise | Kind::NonLinear => {
                    let act =
                        layer.activation().expect("an elementwise or non-linear layer is an activation");
                    let n = layer.in_len();
                    if act == Activation::Leaky(0.0) {
                        if form == Form::Exact {
                            ends_of(&mut form, &mut a, &mut b);
                        }
                        // The next affine layer reads the centre and radius lines: written here at once,
                        // unless the lines themselves are kept for the tail or collapsed to intervals.
                        let next_affine = self.layers.get(i + 1).is_some_and(|l| l.kind() == Kind::Affine);
                        let out = if next_affine && !saves(i + 1) && self.relaxation == Relaxation::Linear {
                            Form::MidRad
                        } else {
                            Form::Ends
                        };
                        relu_lines(form, out, &mut a, &mut b, n);
                        form = out;
                    } else {
                        ends_of(&mut form, &mut a, &mut b);
                        for g in 0..regions {
                            let (e0, e1) = (2 * g * n, (2 * g + 1) * n);
                            for j in 0..n {
                                let (l0, l1, u0, u1) = act.lines(a[e0 + j], a[e1 + j], b[e0 + j], b[e1 + j]);
                                (a[e0 + j], a[e1 + j], b[e0 + j], b[e1 + j]) = (l0, l1, u0, u1);
                            }
                        }
                    }
                }
                Kind::MaxPool => {
                    let Op::MaxPool2d(g) = &layer.op() else { unreachable!("max-pool kind") };
                    ends_of(&mut form, &mut a, &mut b);
                    let (n, m) = (layer.in_len(), layer.out_len());
                    let (mut nl, mut nh) = (vec![0.0; rows * m], vec![0.0; rows * m]);
                    for reg in 0..regions {
                        let (e0, e1) = (2 * reg * n, (2 * reg + 1) * n);
                        let (nl0, nl1) = nl[2 * reg * m..(2 * reg + 2) * m].split_at_mut(m);
                        let (nh0, nh1) = nh[2 * reg * m..(2 * reg + 2) * m].split_at_mut(m);
                        max_pool_lines(
                            g,
                            &mut window,
                            [&a[e0..e0 + n], &a[e1..e1 + n]],
                            [&b[e0..e0 + n], &b[e1..e1 + n]],
                            [nl0, nl1],
                            [nh0, nh1],
                        );
                    }
                    (a, b) = (nl, nh);
                    form = Form::Ends;
                }
            }
            if self.relaxation == Relaxation::Interval {
                ends_of(&mut form, &mut a, &mut b);
                let n = layer.out_len();
                for g in 0..regions {
                    let (e0, e1) = (2 * g * n, (2 * g + 1) * n);
                    for j in 0..n {
                        let (p, q) = (a[e0 + j].min(a[e1 + j]), b[e0 + j].max(b[e1 + j]));
                        (a[e0 + j], a[e1 + j], b[e0 + j], b[e1 + j]) = (p, p, q, q);
                    }
                }
            }
        }
        ends_of(&mut form, &mut a, &mut b);
        let (lo, hi) = (&a, &b);
        let w = self.layers.last().map_or(0, |l| l.out_len());
        let mut all: Vec<MarginLines> = (0..regions)
            .map(|g| {
                let (e0, e1) = (2 * g * w, (2 * g + 1) * w);
                self.margin_lines([&lo[e0..e0 + w], &lo[e1..e1 + w]], [&hi[e0..e0 + w], &hi[e1..e1 + w]])
            })
            .collect();
        if tail > 0 {
            self.tighten_tail(tail, &saved, tighten_below, f64::NEG_INFINITY, &mut all);
        }
        for lines in &mut all {
            widen(lines);
        }
        all
    }

    /// Whether [`Self::chord_margins`] can bound this network: affine layers and increasing piecewise-linear
    /// activations (relu, leaky relu of a non-negative slope, clamp); no max-pooling, no smooth activation.
    pub fn chords(&self) -> bool {
        self.layers.iter().all(|l| match l.kind() {
            Kind::Affine => true,
            Kind::Elementwise | Kind::NonLinear => match l.activation() {
                Some(Activation::Leaky(a)) => a >= 0.0,
                Some(Activation::Clamp(..)) => true,
                _ => false,
            },
            Kind::MaxPool => false,
        })
    }

    /// Which values a [`Trace`] holds: entry `i < layers` for the input of layer `i` (every activation, and the
    /// layers whose lines the tail reads), the last entry for the network's output.
    pub fn traced(&self) -> Vec<bool> {
        let first_tail = self.layers.len() - self.chord_tail();
        let mut keep: Vec<bool> = (0..self.layers.len())
            .map(|i| self.layers[i].kind() != Kind::Affine || i == first_tail)
            .collect();
        keep.push(true);
        keep
    }

    /// The [`Trace`] of one point, by a plain forward pass (the hybrid records its probes' traces in its own
    /// batched passes).
    #[cfg(test)]
    pub fn trace(&self, x: &[f64]) -> Trace {
        let keep = self.traced();
        let (mut cur, mut next, mut scratch) = (x.to_vec(), Vec::new(), Scratch::default());
        let mut values = Vec::with_capacity(keep.len());
        for (i, layer) in self.layers.iter().enumerate() {
            values.push(if keep[i] { cur.clone() } else { Vec::new() });
            layer.apply(&cur, 1, &mut next, &mut scratch);
            std::mem::swap(&mut cur, &mut next);
        }
        values.push(cur);
        Trace::new(values)
    }

    /// The tail of [`Self::with_tail`] less the activations it starts with: the band at an activation's output
    /// is tighter than a relaxation of the activation over the band at its input (on the trained MNIST models at
    /// ε = 3, starting the tail at the dense layers decided a few more regions, in a third less time).
    fn chord_tail(&self) -> usize {
        let first = self.layers.len() - self.tail;
        let leading = self.layers[first..].iter().take_while(|l| l.kind() != Kind::Affine).count();
        self.tail - leading
    }

    /// Margin lines over many sub-segments, each given by the [`Trace`]s of its two ends (mathematics §5.7).
    ///
    /// Every neuron lies in a band of constant width around the chord of its exact values at the two ends:
    /// `chord(s) + δ − ρ ≤ value(s) ≤ chord(s) + δ + ρ` with `ρ ≥ |δ|`. The input is its own chord (the segment
    /// is a line), so the band is empty until the first activation that bends between the ends. An affine layer
    /// maps chords to chords, `δ` through its linear part and `ρ` through `|A|` (in `f32` where the layer has
    /// a single-precision `|A|`, rounding included, [`single`]); an activation keeps the band where the band's
    /// whole range lies on one of its linear pieces (times that slope), and otherwise widens it by how far the
    /// activation bends away from its chord between the ends ([`chord_step`]). Per region this is one pass of
    /// `A` and one of `|A|` over one point, where [`Self::forward_margins`] passes both over both ends: the
    /// ends' exact values are the hybrid's probes, computed anyway. The margins' lower lines that reach
    /// `tighten_below` are tightened through the tail as there, except in a region where some margin's upper
    /// line is below `open_below` at an end (the hybrid's best exact margin: such a region's smallest margin is
    /// below it whatever its lower lines, so the hybrid works on it again in any case); every line is widened the
    /// same way as there.
    pub fn chord_margins(
        &self,
        ends: &[[&Trace; 2]],
        tighten_below: f64,
        open_below: f64,
    ) -> Vec<MarginLines> {
        let regions = ends.len();
        let tail = if tighten_below == f64::NEG_INFINITY { 0 } else { self.chord_tail() };
        let first_tail = self.layers.len() - tail;
        let saves = |i: usize| {
            i >= first_tail
                && (i == first_tail || matches!(self.layers[i].kind(), Kind::Elementwise | Kind::NonLinear))
        };
        let mut affine = single::Affine::default();
        let (mut d, mut r): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        // No band yet: every layer so far is affine between the ends.
        let mut exact = true;
        let mut saved: Vec<(Vec<f64>, Vec<f64>)> = Vec::with_capacity(tail);
        for (i, layer) in self.layers.iter().enumerate() {
            let n = layer.in_len();
            if i >= first_tail {
                saved.push(if saves(i) {
                    let (mut lo, mut hi) =
                        (Vec::with_capacity(2 * regions * n), Vec::with_capacity(2 * regions * n));
                    for (g, [t0, t1]) in ends.iter().enumerate() {
                        for t in [t0, t1] {
                            let z = t.at(i);
                            if exact {
                                lo.extend_from_slice(z);
                                hi.extend_from_slice(z);
                            } else {
                                let (dg, rg) = (&d[g * n..(g + 1) * n], &r[g * n..(g + 1) * n]);
                                lo.extend(z.iter().zip(dg).zip(rg).map(|((z, d), r)| z + d - r));
                                hi.extend(z.iter().zip(dg).zip(rg).map(|((z, d), r)| z + d + r));
                            }
                        }
                    }
                    (lo, hi)
                } else {
                    Default::default()
                });
            }
            match layer.kind() {
                Kind::Affine => {
                    if !exact {
                        // The band moves by the linear part alone.
                        affine.band(layer, &self.constant[i], &mut d, &mut r, regions);
                    }
                }
                Kind::Elementwise | Kind::NonLinear => {
                    let act =
                        layer.activation().expect("an elementwise or non-linear layer is an activation");
                    if exact {
                        d.clear();
                        d.resize(regions * n, 0.0);
                        r.clear();
                        r.resize(regions * n, 0.0);
                    }
                    let mut bent = false;
                    for (g, [t0, t1]) in ends.iter().enumerate() {
                        let (dg, rg) = (&mut d[g * n..(g + 1) * n], &mut r[g * n..(g + 1) * n]);
                        bent |= chord_steps(act, t0.at(i), t1.at(i), dg, rg);
                    }
                    exact = exact && !bent;
                }
                Kind::MaxPool => unreachable!("chord bounds have no max-pooling (Bounder::chords)"),
            }
        }
        let last = self.layers.len();
        let w = self.layers.last().map_or(0, |l| l.out_len());
        let k = self.k;
        let mut all: Vec<MarginLines> = ends
            .iter()
            .enumerate()
            .map(|(g, [t0, t1])| {
                let mut lines =
                    MarginLines { lower: [vec![0.0; k], vec![0.0; k]], upper: [vec![0.0; k], vec![0.0; k]] };
                for j in 0..k {
                    let row = &self.rows[j * w..(j + 1) * w];
                    let (mut shift, mut rad) = (0.0, 0.0);
                    if !exact {
                        for (c, (d, r)) in
                            row.iter().zip(d[g * w..(g + 1) * w].iter().zip(&r[g * w..(g + 1) * w]))
                        {
                            shift += c * d;
                            rad += c.abs() * r;
                        }
                    }
                    for (e, t) in [t0, t1].into_iter().enumerate() {
                        let y = t.at(last);
                        let m = self.offsets[j] + row.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() + shift;
                        lines.lower[e][j] = m - rad;
                        lines.upper[e][j] = m + rad;
                    }
                }
                lines
            })
            .collect();
        if tail > 0 {
            self.tighten_tail(tail, &saved, tighten_below, open_below, &mut all);
        }
        for lines in &mut all {
            widen(lines);
        }
        all
    }

    /// Back-substitutes the margin rows whose forward lower line reaches `tighten_below` at an end through the
    /// last [`Self::with_tail`] layers, with the activations relaxed over each region's forward range, down to
    /// the forward lines at the tail's input (`saved[0]`; `saved[t]` holds the lines at the input of the tail's
    /// `t`-th layer where it is an activation), and keeps a back-substituted lower line where its mean is higher.
    /// Regions with an upper line below `open_below` at an end are left as they are.
    fn tighten_tail(
        &self,
        tail: usize,
        saved: &[(Vec<f64>, Vec<f64>)],
        tighten_below: f64,
        open_below: f64,
        all: &mut [MarginLines],
    ) {
        let first = self.layers.len() - tail;
        let w = self.layers.last().map_or(0, |l| l.out_len());
        // The rows to tighten: (region, margin).
        let picked: Vec<(usize, usize)> = all
            .iter()
            .enumerate()
            .filter(|(_, lines)| lines.upper.iter().flatten().all(|&u| u >= open_below))
            .flat_map(|(g, lines)| {
                (0..self.k)
                    .filter(move |&j| lines.lower[0][j].min(lines.lower[1][j]) <= tighten_below)
                    .map(move |j| (g, j))
            })
            .collect();
        if picked.is_empty() {
            return;
        }
        let rows = picked.len();
        let mut lambda: Vec<f64> = Vec::with_capacity(rows * w);
        let mut constant = Vec::with_capacity(rows);
        for &(_, j) in &picked {
            lambda.extend_from_slice(&self.rows[j * w..(j + 1) * w]);
            constant.push(self.offsets[j]);
        }
        let (mut next, mut scratch) = (Vec::new(), Scratch::default());
        for i in (first..self.layers.len()).rev() {
            let layer = self.layers[i];
            let m = layer.out_len();
            match layer.kind() {
                Kind::Affine => self.pull_affine(i, &mut lambda, &mut constant, &mut next, &mut scratch),
                Kind::Elementwise | Kind::NonLinear => {
                    let act =
                        layer.activation().expect("an elementwise or non-linear layer is an activation");
                    let (lo, hi) = &saved[i - first];
                    for (r, &(g, _)) in picked.iter().enumerate() {
                        let (a, b) = (2 * g * m, (2 * g + 1) * m);
                        for (j, lam) in lambda[r * m..(r + 1) * m].iter_mut().enumerate() {
                            // A zero coefficient pulls back as zero: no relaxation to compute.
                            if *lam != 0.0 {
                                let (p, q) = (lo[a + j].min(lo[b + j]), hi[a + j].max(hi[b + j]));
                                pull_relaxed(lam, &mut constant[r], act.relax(p, q));
                            }
                        }
                    }
                }
                Kind::MaxPool => unreachable!("the tail stops after the last max-pooling layer"),
            }
        }
        let (lo, hi) = &saved[0];
        let n = self.layers[first].in_len();
        for (r, &(g, j)) in picked.iter().enumerate() {
            let lam = &lambda[r * n..(r + 1) * n];
            let mut back = [constant[r]; 2];
            for (e, b) in back.iter_mut().enumerate() {
                let (l, u) = (&lo[(2 * g + e) * n..][..n], &hi[(2 * g + e) * n..][..n]);
                *b += pulled_dot(lam, l, u);
            }
            let lines = &mut all[g];
            if back[0] + back[1] > lines.lower[0][j] + lines.lower[1][j] {
                (lines.lower[0][j], lines.lower[1][j]) = (back[0], back[1]);
            }
        }
    }

    /// Lines of every margin (not yet widened) from the last layer's lower lines `l` and upper lines `u`, each
    /// given at the two ends: a margin row's positive coefficients take the lower line below and the upper above,
    /// its negative ones the other way round.
    fn margin_lines(&self, l: [&[f64]; 2], u: [&[f64]; 2]) -> MarginLines {
        let w = l[0].len();
        let k = self.k;
        let mut lines =
            MarginLines { lower: [vec![0.0; k], vec![0.0; k]], upper: [vec![0.0; k], vec![0.0; k]] };
        for j in 0..k {
            let row = &self.rows[j * w..(j + 1) * w];
            for e in 0..2 {
                let (l, u) = (l[e], u[e]);
                let (mut lo, mut hi) = (self.offsets[j], self.offsets[j]);
                for i in 0..w {
                    let c = row[i];
                    if c > 0.0 {
                        lo += c * l[i];
                        hi += c * u[i];
                    } else if c < 0.0 {
                        lo += c * u[i];
                        hi += c * l[i];
                    }
                }
                lines.lower[e][j] = lo;
                lines.upper[e][j] = hi;
            }
        }
        lines
    }

    /// Sound lower and upper lines of every margin over the line from `x0` (at `s0`) to `x1` (at `s1`).
    pub fn margins(&self, x0: &[f64], x1: &[f64]) -> MarginLines {
        let linear = self.relaxation == Relaxation::Linear;
        let mut pulls = Vec::new();
        let out = self.forward(x0, x1, linear.then_some(&mut pulls));
        let k = self.k;
        let mut lines = self.margin_lines([&out.l0, &out.l1], [&out.u0, &out.u1]);
        if linear {
            // Back-substitute only the margins the forward lines leave undecided: the signed rows
            // `(margin j, +1)` tighten its lower line, `(margin j, −1)` its upper line.
            let undecided = |j: usize| {
                let positive = lines.lower[0][j] > 0.0 && lines.lower[1][j] > 0.0;
                let negative = lines.upper[0][j] <= 0.0 && lines.upper[1][j] <= 0.0;
                !positive && !negative
            };
            let mut signed: Vec<(usize, f64)> = (0..k).filter(|&j| undecided(j)).map(|j| (j, 1.0)).collect();
            if self.upper {
                signed.extend((0..k).filter(|&j| undecided(j)).map(|j| (j, -1.0)));
            }
            if !signed.is_empty() {
                let back = self.back_substitute(&pulls, &signed, x0, x1);
                for (r, &(j, sign)) in signed.iter().enumerate() {
                    let (b0, b1) = (sign * back[0][r], sign * back[1][r]);
                    if sign > 0.0 && b0 + b1 > lines.lower[0][j] + lines.lower[1][j] {
                        (lines.lower[0][j], lines.lower[1][j]) = (b0, b1);
                    }
                    if sign < 0.0 && b0 + b1 < lines.upper[0][j] + lines.upper[1][j] {
                        (lines.upper[0][j], lines.upper[1][j]) = (b0, b1);
                    }
                }
            }
        }
        widen(&mut lines);
        lines
    }

    /// Pulls the rows `lambda` (each `layer i`'s output length) back through affine layer `i`:
    /// `λ · (A h + c) = (Aᵀ λ) · h + λ · c`, the constant into `constant`, `Aᵀ λ` (by the layer's adjoint, or a
    /// direct transpose) into `lambda`.
    fn pull_affine(
        &self,
        i: usize,
        lambda: &mut Vec<f64>,
        constant: &mut [f64],
        next: &mut Vec<f64>,
        scratch: &mut Scratch,
    ) {
        let (layer, m, rows) = (self.layers[i], self.layers[i].out_len(), constant.len());
        for (r, con) in constant.iter_mut().enumerate() {
            *con += lambda[r * m..(r + 1) * m].iter().zip(&self.constant[i]).map(|(a, b)| a * b).sum::<f64>();
        }
        match layer.adjoint() {
            Some(adjoint) => adjoint.apply(lambda, rows, next, scratch),
            None => {
                let transposed = transpose_apply(layer, lambda, rows, next);
                assert!(transposed, "{}: an affine layer with neither transpose", layer.name());
            }
        }
        std::mem::swap(lambda, next);
    }

    /// Pulls the signed margin rows `sign·m_j` back to the input; returns their lower lines at both ends.
    fn back_substitute(
        &self,
        pulls: &[Pullback],
        signed: &[(usize, f64)],
        x0: &[f64],
        x1: &[f64],
    ) -> [Vec<f64>; 2] {
        let k2 = signed.len();
        let w = self.layers.last().map_or(0, |l| l.out_len());
        let mut lambda: Vec<f64> = Vec::with_capacity(k2 * w);
        let mut constant = Vec::with_capacity(k2);
        for &(j, sign) in signed {
            lambda.extend(self.rows[j * w..(j + 1) * w].iter().map(|v| sign * v));
            constant.push(sign * self.offsets[j]);
        }
        let mut next = Vec::new();
        let mut scratch = Scratch::default();
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let m = layer.out_len();
            match &pulls[i] {
                Pullback::Affine => self.pull_affine(i, &mut lambda, &mut constant, &mut next, &mut scratch),
                Pullback::Elementwise(relax) => {
                    for (r, con) in constant.iter_mut().enumerate() {
                        for (lam, &relax) in lambda[r * m..(r + 1) * m].iter_mut().zip(relax) {
                            pull_relaxed(lam, con, relax);
                        }
                    }
                }
                Pullback::MaxPool(p) => {
                    let n = layer.in_len();
                    next.clear();
                    next.resize(k2 * n, 0.0);
                    for r in 0..k2 {
                        for (o, &(star, exact, q)) in p.iter().enumerate() {
                            let lam = lambda[r * m + o];
                            if lam > 0.0 || (lam < 0.0 && exact) {
                                next[r * n + star] += lam;
                            } else if lam < 0.0 {
                                constant[r] += lam * q;
                            }
                        }
                    }
                    std::mem::swap(&mut lambda, &mut next);
                }
            }
        }
        let n = x0.len();
        let mut ends = [vec![0.0; k2], vec![0.0; k2]];
        for (e, x) in [x0, x1].into_iter().enumerate() {
            for r in 0..k2 {
                ends[e][r] =
                    constant[r] + lambda[r * n..(r + 1) * n].iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
            }
        }
        ends
    }
}

/// How [`Bounder::forward_margins`] holds a batch's bounds between layers, in two buffers `a` and `b` of the
/// same layout. Each layer leaves them in the form the next one reads, so that no elementwise pass over the
/// whole batch is spent converting (those passes were a sixth of the hybrid's time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `a` holds exact values (no activation met yet); `b` is unused.
    Exact,
    /// `a` the lower lines, `b` the upper lines.
    Ends,
    /// As an affine layer leaves them: `a` the centre line mapped through the layer, `b` the radius line mapped
    /// through its absolute value; the lower line is `a − b`, the upper `a + b`.
    Centre,
    /// What an affine layer reads: with the lower line `l` and the upper `u`, `a = (l + u)/2`, `b = (u − l)/2`.
    MidRad,
}

/// The lower and upper lines from a pair of values in `form` (`Ends` or `Centre`).
#[inline(always)]
fn lines_from(form: Form, x: f64, y: f64) -> (f64, f64) {
    match form {
        Form::Centre => (x - y, x + y),
        _ => (x, y),
    }
}

/// The pair of values of `form` (`Ends` or `MidRad`) for the lines `l` and `u`.
#[inline(always)]
fn lines_to(form: Form, l: f64, u: f64) -> (f64, f64) {
    match form {
        Form::MidRad => (0.5 * (l + u), 0.5 * (u - l)),
        _ => (l, u),
    }
}

/// Rewrites `a`, `b` as lower and upper lines (both the values, for exact values).
fn ends_of(form: &mut Form, a: &mut [f64], b: &mut Vec<f64>) {
    match *form {
        Form::Ends => {}
        Form::Exact => {
            b.clear();
            b.extend_from_slice(a);
        }
        Form::Centre => wide(
            #[inline(always)]
            || {
                for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                    (*x, *y) = lines_from(Form::Centre, *x, *y);
                }
            },
        ),
        Form::MidRad => unreachable!("centre-radius pairs are read by the affine layer that follows"),
    }
    *form = Form::Ends;
}

/// Rewrites `a`, `b` as centre and radius lines (from `Ends` or `Centre`), the same values as computing the lower
/// and upper lines first.
fn mid_rad_of(form: &mut Form, a: &mut [f64], b: &mut [f64]) {
    let from = *form;
    match from {
        Form::MidRad => {}
        Form::Ends | Form::Centre => wide(
            #[inline(always)]
            || {
                for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                    let (l, u) = lines_from(from, *x, *y);
                    (*x, *y) = lines_to(Form::MidRad, l, u);
                }
            },
        ),
        Form::Exact => unreachable!("exact values need no radius"),
    }
    *form = Form::MidRad;
}

/// The relu's lines over every region (rows `2g` and `2g + 1` of `n` values: its two ends), read in form `from`
/// (`Ends` or `Centre`) and written in form `to` (`Ends` or `MidRad`), in one pass: above, the relu of the upper
/// line (relu is convex, so its chord); below, the lower line where it is mostly positive, else 0
/// (`Activation::lines` of a relu, inlined).
fn relu_lines(from: Form, to: Form, a: &mut [f64], b: &mut [f64], n: usize) {
    #[inline(always)]
    fn pass(from: Form, to: Form, a: &mut [f64], b: &mut [f64], n: usize) {
        for (a, b) in a.chunks_exact_mut(2 * n).zip(b.chunks_exact_mut(2 * n)) {
            let (a0, a1) = a.split_at_mut(n);
            let (b0, b1) = b.split_at_mut(n);
            let (a1, b0, b1) = (&mut a1[..n], &mut b0[..n], &mut b1[..n]);
            // Indexed, with selects rather than branches, so that the loop is vectorized.
            for j in 0..n {
                let (l0, u0) = lines_from(from, a0[j], b0[j]);
                let (l1, u1) = lines_from(from, a1[j], b1[j]);
                let (p, q) = (l0.min(l1), l0.max(l1));
                let keep = (q > 0.0) & (q > -p);
                let (l0, l1) = (if keep { l0 } else { 0.0 }, if keep { l1 } else { 0.0 });
                (a0[j], b0[j]) = lines_to(to, l0, u0.max(0.0));
                (a1[j], b1[j]) = lines_to(to, l1, u1.max(0.0));
            }
        }
    }
    // One monomorphic loop per pair of forms, so that none of them branches per value.
    wide(
        #[inline(always)]
        || match (from, to) {
            (Form::Centre, Form::MidRad) => pass(Form::Centre, Form::MidRad, a, b, n),
            (Form::Centre, Form::Ends) => pass(Form::Centre, Form::Ends, a, b, n),
            (Form::Ends, Form::MidRad) => pass(Form::Ends, Form::MidRad, a, b, n),
            (Form::Ends, Form::Ends) => pass(Form::Ends, Form::Ends, a, b, n),
            _ => unreachable!("the relu reads lines and writes lines or centre-radius pairs"),
        },
    )
}

/// The exact values at one point that [`Bounder::chord_margins`] reads ([`Bounder::traced`]).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    values: Vec<Vec<f64>>,
}

impl Trace {
    /// From the values [`Bounder::traced`] asks for (empty vectors elsewhere).
    pub fn new(values: Vec<Vec<f64>>) -> Self {
        Trace { values }
    }

    fn at(&self, i: usize) -> &[f64] {
        &self.values[i]
    }
}

/// Every neuron of one region through an increasing piecewise-linear activation, in the band form of
/// [`Bounder::chord_margins`]: the inputs lie in `chord + d ± r` around the chords from `z0` to `z1`; `d` and `r`
/// become the outputs' band around the chords from `σ(z0)` to `σ(z1)`. Returns whether some band is not empty.
fn chord_steps(act: Activation, z0: &[f64], z1: &[f64], d: &mut [f64], r: &mut [f64]) -> bool {
    let mut bent = false;
    if act == Activation::Leaky(0.0) {
        // The relu, branch-free so that the loop is vectorized: the general step below, specialised. A width or
        // offset that is not a number stays one (`pos` and `least` keep a NaN in their first operand, which is
        // NaN whenever the second is), so that the region is left open (`Side::bound`) rather than decided.
        #[inline(always)]
        fn pos(x: f64) -> f64 {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        #[inline(always)]
        fn least(a: f64, b: f64) -> f64 {
            if b < a {
                b
            } else {
                a
            }
        }
        wide(
            #[inline(always)]
            || {
                for (((&z0, &z1), d), r) in z0.iter().zip(z1).zip(d.iter_mut()).zip(r.iter_mut()) {
                    let (hi, lo) = (*r + *d, *r - *d);
                    // The ends' values are finite (the probes check every layer's output).
                    let (zmin, zmax) = if z1 < z0 { (z1, z0) } else { (z0, z1) };
                    let (a, b) = (zmin - lo, zmax + hi);
                    let (xmin, xmax) = (pos(zmin), pos(zmax));
                    // The chord of the relu between the ends lies above it by at most this, at its kink.
                    let gap = if zmin < 0.0 && zmax > 0.0 { xmax * (-zmin) / (zmax - zmin) } else { 0.0 };
                    // (The widths are never negative while `r ≥ |d|`; rounding must not make them so.)
                    let up = least(pos(hi), pos(b) - xmin);
                    let dn = least(pos(lo) + gap, xmax - pos(a));
                    let (nd, nr) = (0.5 * (up - dn), 0.5 * (up + dn));
                    let off = b <= 0.0;
                    let on = a >= 0.0;
                    *d = if off {
                        0.0
                    } else if on {
                        *d
                    } else {
                        nd
                    };
                    *r = if off {
                        0.0
                    } else if on {
                        *r
                    } else {
                        nr
                    };
                }
            },
        );
        // Some width not zero (or not a number): an OR of the bits below the sign, branch-free.
        return wide(
            #[inline(always)]
            || r.iter().fold(0u64, |acc, v| acc | (v.to_bits() << 1)) != 0,
        );
    }
    for j in 0..d.len() {
        let (nd, nr) = chord_step(act, z0[j], z1[j], d[j], r[j]);
        (d[j], r[j]) = (nd, nr);
        bent |= nr != 0.0;
    }
    bent
}

/// One neuron of [`chord_steps`], for any increasing piecewise-linear activation. With `hi = r + d` and
/// `lo = r − d`, the input stays in `[zmin − lo, zmax + hi]`; where no kink lies inside, the activation is one
/// line there and the band scales by its slope. Otherwise, with `L` the largest slope, `σ(c(s) + hi) ≤
/// σ(c(s)) + L·hi` for the input's chord `c`, and `σ(c(s))` lies within `[−below, above]` of the output's
/// chord (the largest deviations at the kinks between the ends), so the output is within `L·hi + above` above
/// its chord and `L·lo + below` below; both are also capped by the output's whole range.
fn chord_step(act: Activation, z0: f64, z1: f64, d: f64, r: f64) -> (f64, f64) {
    let (hi, lo) = (r + d, r - d);
    if (hi + lo).is_nan() {
        // An overflowed band stays one (the relu's step in `chord_steps` does the same).
        return (f64::NAN, f64::NAN);
    }
    let (zmin, zmax) = (z0.min(z1), z0.max(z1));
    let (a, b) = (zmin - lo, zmax + hi);
    let (kinks, slope): ([f64; 2], f64) = match act {
        Activation::Leaky(s) => ([0.0, f64::NAN], s.max(1.0)),
        Activation::Clamp(p, q) => ([p, q], 1.0),
        _ => unreachable!("Bounder::chords admits increasing piecewise-linear activations only"),
    };
    if !kinks.iter().any(|&k| a < k && k < b) {
        let s = act.derivative(0.5 * (a + b));
        return (s * d, s * r);
    }
    let (x0, x1) = (act.value(z0), act.value(z1));
    let (mut above, mut below) = (0.0f64, 0.0f64);
    for k in kinks {
        if zmin < k && k < zmax {
            let dev = act.value(k) - (x0 + (k - z0) / (z1 - z0) * (x1 - x0));
            above = above.max(dev);
            below = below.max(-dev);
        }
    }
    let up = (slope * hi.max(0.0) + above).min(act.value(b) - x0.min(x1)).max(0.0);
    let dn = (slope * lo.max(0.0) + below).min(x0.max(x1) - act.value(a)).max(0.0);
    (0.5 * (up - dn), 0.5 * (up + dn))
}

/// `Σ λ_i·(l_i if λ_i > 0 else u_i)`: a pulled-back row's value over lines `l` below and `u` above. In eight
/// partial sums, branch-free, so that the loop is vectorized (the bound's rounding is covered by the final
/// widening whatever the order of the sum).
fn pulled_dot(lam: &[f64], l: &[f64], u: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    wide(
        #[inline(always)]
        || {
            let (lc, lr) = (lam.chunks_exact(8), lam.chunks_exact(8).remainder());
            for ((a, l), u) in lc.zip(l.chunks_exact(8)).zip(u.chunks_exact(8)) {
                for k in 0..8 {
                    acc[k] += a[k] * if a[k] > 0.0 { l[k] } else { u[k] };
                }
            }
            let tail = lam.len() - lr.len();
            for (i, &a) in lr.iter().enumerate() {
                acc[i] += a * if a > 0.0 { l[tail + i] } else { u[tail + i] };
            }
        },
    );
    acc.iter().sum()
}

/// Pulls one coefficient `λ` back through an activation relaxed as `al·x + bl ≤ σ(x) ≤ au·x + bu`: its lower
/// relaxation where `λ > 0`, its upper one where `λ < 0`, the constant part into `constant`.
fn pull_relaxed(lam: &mut f64, constant: &mut f64, [al, bl, au, bu]: [f64; 4]) {
    if *lam > 0.0 {
        *constant += *lam * bl;
        *lam *= al;
    } else if *lam < 0.0 {
        *constant += *lam * bu;
        *lam *= au;
    }
}

/// Widens every line outwards by `1e-9·(1 + |value|)`, so that rounding in the bound computation cannot make a
/// bound tighter than the exact value.
fn widen(lines: &mut MarginLines) {
    for e in 0..2 {
        for v in lines.lower[e].iter_mut() {
            *v -= 1e-9 * (1.0 + v.abs());
        }
        for v in lines.upper[e].iter_mut() {
            *v += 1e-9 * (1.0 + v.abs());
        }
    }
}

/// The forward lines of a max-pooling layer, every window: below, the candidate whose lower line is highest on
/// average (`l0 + l1`); above, the largest upper line at each end (the chord of their convex maximum). `l` and
/// `u` are the input's lines at the two ends, `nl` and `nu` the output's.
fn max_pool_lines(
    g: &PoolGeom,
    window: &mut Vec<usize>,
    l: [&[f64]; 2],
    u: [&[f64]; 2],
    nl: [&mut [f64]; 2],
    nu: [&mut [f64]; 2],
) {
    let ([nl0, nl1], [nu0, nu1]) = (nl, nu);
    for ch in 0..g.c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                g.window(ch, oy, ox, window);
                let o = (ch * g.oh + oy) * g.ow + ox;
                let best = *window
                    .iter()
                    .max_by(|&&a, &&b| (l[0][a] + l[1][a]).total_cmp(&(l[0][b] + l[1][b])))
                    .expect("pooling windows are not empty");
                (nl0[o], nl1[o]) = (l[0][best], l[1][best]);
                nu0[o] = window.iter().map(|&j| u[0][j]).fold(f64::NEG_INFINITY, f64::max);
                nu1[o] = window.iter().map(|&j| u[1][j]).fold(f64::NEG_INFINITY, f64::max);
            }
        }
    }
}

mod single;

#[cfg(test)]
mod tests;
