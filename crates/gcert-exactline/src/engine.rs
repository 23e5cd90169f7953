//! The layer-by-layer breakpoint engine.

use std::ops::ControlFlow;

use gcert_core::ops::{Kind, Scratch};
use gcert_core::{Chain, Error, Layer, Network, Op, Result, Segment};

use crate::sink::Sink;

/// Breakpoints a layer hands on at once before the rest of the network runs chunk by chunk.
pub const DEFAULT_CHUNK: usize = 256;

/// A parallel run splits the segment once a layer's input has this many intervals per worker thread. On the
/// `parallel` bench's two 5,000-piece chains (2 cores, 16 rounds in turns), 8 per thread with all groups computed
/// at once gave medians of 1.98× and 2.11× the serial walk, 16 per thread with batches of 4 1.50× and 1.93×
/// (4 per thread: 1.81×, 2.08×); docs/performance.md.
const GROUPS_PER_THREAD: usize = 8;

/// Groups a parallel run starts ahead of the sink: bounds the points held back (a group's whole chain waits for
/// the groups before it). A group is handed on as soon as it and those before it are done, and a new one starts
/// at once, so no thread waits for a batch's slowest group: with batches of 4 per thread computed one after
/// another, that wait cost about a tenth of the run (1.79× and 2.02× against 1.98× and 2.11× with every group
/// at once). With this window of 4 per thread: 1.97× and 2.13× (windows of 2: 1.78×, 2.18×; 8: 1.94×, 2.14×),
/// and the peak memory split over 2 threads fell to 60–76 MiB from 72–93 MiB (`memory` bench).
const WINDOW_PER_THREAD: usize = 4;

/// A group's walk: its chain and the fault that stopped it, if any.
type Part = (Chain, Option<Error>);

/// The groups of a parallel walk as they finish, for the thread that hands them on in order: per group, not done
/// yet, skipped after a stop (`Some(None)`), or done.
struct Done {
    slots: std::sync::Mutex<Vec<Option<Option<Part>>>>,
    ready: std::sync::Condvar,
    stop: std::sync::atomic::AtomicBool,
}

impl Done {
    fn new(groups: usize) -> Self {
        Done {
            slots: std::sync::Mutex::new((0..groups).map(|_| None).collect()),
            ready: std::sync::Condvar::new(),
            stop: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Group `g`'s walk (`None`: skipped after a stop).
    fn put(&self, g: usize, part: Option<Part>) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots[g] = Some(part);
        self.ready.notify_all();
    }

    /// Waits for group `g`, running rayon's pending jobs meanwhile (on a worker thread); blocks only when there is
    /// nothing to run, until a group finishes.
    fn take(&self, g: usize) -> Option<Part> {
        loop {
            {
                let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(part) = slots[g].take() {
                    return part;
                }
                if rayon::current_thread_index().is_none() {
                    // Not a worker: nothing to help with; sleep until a group finishes.
                    drop(self.ready.wait(slots));
                    continue;
                }
            }
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if slots[g].is_none() {
                    // A short wait, then the queue again: a nested split may have spawned jobs meanwhile.
                    drop(self.ready.wait_timeout(slots, std::time::Duration::from_micros(200)));
                }
            }
        }
    }

    fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The exact-line engine over a fixed sequence of piecewise-linear layers.
#[derive(Debug, Clone)]
pub struct ExactLine<'a> {
    layers: Vec<&'a Layer>,
    input_len: usize,
    output_len: usize,
    chunk: usize,
    parallel: bool,
    /// Intervals per worker thread at which a parallel run splits (`GROUPS_PER_THREAD`; tests lower it).
    groups_per_thread: usize,
    /// Groups per worker thread started ahead of the sink (`WINDOW_PER_THREAD`; tests lower it).
    window_per_thread: usize,
}

/// Buffers owned by one layer while the layers after it run.
#[derive(Debug, Default)]
struct Level {
    ratios: Vec<f64>,
    /// The layer's output at every point (an activation's at every old and new breakpoint).
    out: Vec<f64>,
    /// A new breakpoint's input, interpolated.
    row: Vec<f64>,
    local: Vec<f64>,
    window: Vec<usize>,
    scratch: Scratch,
}

impl<'a> ExactLine<'a> {
    /// An engine over layers applied in order; any non-piecewise-linear layer is an error naming it.
    pub fn new(layers: Vec<&'a Layer>) -> Result<Self> {
        let first = layers.first().ok_or_else(|| Error::input("the exact chain needs at least one layer"))?;
        if let Some(i) = layers.iter().position(|l| l.kind() == Kind::NonLinear) {
            return Err(Error::NotPiecewiseLinear {
                index: i,
                op: layers[i].name().to_string(),
                hint: String::from("; use the quantitative or incomplete certifier for such models"),
            });
        }
        for (i, pair) in layers.windows(2).enumerate() {
            if pair[0].out_len() != pair[1].in_len() {
                return Err(Error::input(format!(
                    "layer {i} outputs {} values but layer {} takes {}",
                    pair[0].out_len(),
                    i + 1,
                    pair[1].in_len()
                )));
            }
        }
        let input_len = first.in_len();
        let output_len = layers.last().map_or(0, |l| l.out_len());
        Ok(ExactLine {
            layers,
            input_len,
            output_len,
            chunk: DEFAULT_CHUNK,
            parallel: true,
            groups_per_thread: GROUPS_PER_THREAD,
            window_per_thread: WINDOW_PER_THREAD,
        })
    }

    /// An engine over networks composed in order (a generator, then a classifier).
    pub fn for_networks(nets: &[&'a Network]) -> Result<Self> {
        for net in nets {
            if let Some(i) = net.first_nonlinear() {
                return Err(Error::NotPiecewiseLinear {
                    index: i,
                    op: net.layers()[i].name().to_string(),
                    hint: format!(
                        " (in {}, {}); use the quantitative or incomplete certifier for such models",
                        net.name(),
                        net.path().display()
                    ),
                });
            }
        }
        Self::new(gcert_core::compose(nets)?)
    }

    /// Sets how many breakpoints a layer passes on at once (memory against batching).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(2);
        self
    }

    /// Whether a run may spread one segment over rayon's worker threads (the default). The chain is the same
    /// either way, bit for bit: only the order in which parts of it are computed changes.
    pub fn with_parallel(mut self, parallel: bool) -> Self {
        self.parallel = parallel;
        self
    }

    pub fn input_len(&self) -> usize {
        self.input_len
    }

    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The whole chain, every point kept.
    pub fn chain(&self, segment: &Segment) -> Result<Chain> {
        let mut chain = Chain { width: self.output_len, ..Chain::default() };
        // `Chain` never stops the walk.
        let _ = self.run(segment, &mut chain)?;
        Ok(chain)
    }

    /// Streams the chain of `segment` into `sink`, in order of increasing ratio. Returns
    /// `ControlFlow::Break(())` if the sink stopped the walk early (on one thread, the rest of the segment was not
    /// computed; a parallel run may have computed its window of groups ahead), `ControlFlow::Continue(())` if the
    /// whole chain was delivered.
    pub fn run<S: Sink>(&self, segment: &Segment, sink: &mut S) -> Result<ControlFlow<()>> {
        if segment.len() != self.input_len {
            return Err(Error::input(format!(
                "the segment has {} coordinates but the network takes {} inputs",
                segment.len(),
                self.input_len
            )));
        }
        let mut levels: Vec<Level> = (0..self.layers.len()).map(|_| Level::default()).collect();
        let mut input = Vec::with_capacity(2 * self.input_len);
        input.extend_from_slice(segment.a());
        input.extend_from_slice(segment.b());
        let mut dedup =
            Dedup { sink, last: f64::NEG_INFINITY, fault: None, last_layer: self.layers.len() - 1 };
        let threads = if self.parallel { rayon::current_num_threads() } else { 1 };
        let flow = if threads > 1 {
            self.split(input, threads, &mut dedup)
        } else {
            self.descend(0, &[0.0, 1.0], &input, &mut levels, &mut dedup)
        };
        match dedup.fault {
            Some(e) => Err(e),
            None => Ok(flow),
        }
    }

    /// The parallel walk. The first layers are walked over the whole segment at once (they hold few
    /// breakpoints); at the first piecewise-linear layer whose input has enough intervals, the intervals are cut
    /// into contiguous groups that descend through the rest of the network on rayon's threads, a window of them
    /// ahead of the sink, and their points reach the sink in order. The breakpoints inside an interval depend
    /// only on its two end points and every kernel computes a point the same way in any batch, so the chain is
    /// the serial one.
    fn split<S: Sink>(&self, input: Vec<f64>, threads: usize, sink: &mut Dedup<'_, S>) -> ControlFlow<()> {
        self.split_from(0, vec![0.0, 1.0], input, threads, false, sink)
    }

    /// [`Self::split`] from layer `l0` on, over `ratios`/`values` (the input of layer `l0`). A group is walked
    /// the same way, so a group that holds most of the segment's breakpoints (they can crowd into a few
    /// intervals of the split level) is split again at the layer where they appear: the work spreads over the
    /// threads wherever it lies. A group (`nested`) splits again only past a chunk's worth of intervals, so that
    /// light groups keep their points in batches as large as the serial walk's.
    fn split_from<S: Sink>(
        &self,
        l0: usize,
        mut ratios: Vec<f64>,
        mut values: Vec<f64>,
        threads: usize,
        nested: bool,
        sink: &mut Dedup<'_, S>,
    ) -> ControlFlow<()> {
        let want = self.groups_per_thread * threads;
        let threshold = if nested { want.max(self.chunk) } else { want };
        let mut level = Level::default();
        for (l, &layer) in self.layers.iter().enumerate().skip(l0) {
            let n = ratios.len();
            match layer.kind() {
                Kind::Affine => layer.apply(&values, n, &mut level.out, &mut level.scratch),
                Kind::Elementwise | Kind::MaxPool if n > threshold => {
                    return self.descend_groups(l, &ratios, &values, want, threads, sink);
                }
                Kind::Elementwise | Kind::MaxPool => {
                    // The whole level at once: it has at most `threshold` intervals before refinement.
                    refine_from(layer, &ratios, &values, 0, usize::MAX, &mut level);
                    std::mem::swap(&mut ratios, &mut level.ratios);
                }
                Kind::NonLinear => unreachable!("rejected when the engine was built"),
            }
            if !sink.finite(l, layer, &level.out) {
                return ControlFlow::Break(());
            }
            std::mem::swap(&mut values, &mut level.out);
        }
        // Too few breakpoints anywhere to be worth splitting: the whole chain is already here.
        sink.push(&ratios, &values)
    }

    /// Layers `l..` over `ratios`/`input` (the input of layer `l`), in `groups` contiguous groups of intervals,
    /// each walked by [`Self::split_from`] as a rayon job (nested: rayon's threads steal the parts of a heavy
    /// group). The points reach the sink in group order as soon as each group and those before it are done; at
    /// most `window_per_thread · threads` groups ([`WINDOW_PER_THREAD`]) are started ahead of the sink, which
    /// bounds the points held back. No thread waits for a batch of groups to finish before it starts the next
    /// group: while the calling thread waits for the next group in order, it runs rayon's pending jobs.
    fn descend_groups<S: Sink>(
        &self,
        l: usize,
        ratios: &[f64],
        input: &[f64],
        groups: usize,
        threads: usize,
        sink: &mut Dedup<'_, S>,
    ) -> ControlFlow<()> {
        let v = self.layers[l].in_len();
        let intervals = ratios.len() - 1;
        let bounds: Vec<(usize, usize)> =
            (0..groups).map(|g| (g * intervals / groups, (g + 1) * intervals / groups)).collect();
        let walk = |g: usize| {
            let (a, b) = bounds[g];
            let mut chain = Chain { width: self.output_len, ..Chain::default() };
            let mut local = Dedup::new(&mut chain, self.layers.len() - 1);
            let _ = self.split_from(
                l,
                ratios[a..=b].to_vec(),
                input[a * v..(b + 1) * v].to_vec(),
                threads,
                true,
                &mut local,
            );
            let fault = local.fault;
            (chain, fault)
        };
        let done = Done::new(groups);
        let window = (self.window_per_thread * threads).max(1);
        rayon::in_place_scope(|scope| {
            let (walk, done) = (&walk, &done);
            let start = |g: usize| {
                scope.spawn(move |_| {
                    // Groups past an early stop are not computed.
                    let part = if done.stopped() { None } else { Some(walk(g)) };
                    done.put(g, part);
                })
            };
            let mut started = 0;
            while started < groups.min(window) {
                start(started);
                started += 1;
            }
            for g in 0..groups {
                let part = done.take(g);
                if started < groups {
                    start(started);
                    started += 1;
                }
                let Some((chain, fault)) = part else { unreachable!("no group is skipped before a stop") };
                let flow = match fault {
                    Some(e) => {
                        sink.fault.get_or_insert(e);
                        ControlFlow::Break(())
                    }
                    None => sink.push(&chain.ratios, &chain.values),
                };
                if flow.is_break() {
                    done.stop();
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })
    }

    fn descend<S: Sink>(
        &self,
        l: usize,
        ratios: &[f64],
        input: &[f64],
        levels: &mut [Level],
        sink: &mut Dedup<'_, S>,
    ) -> ControlFlow<()> {
        let Some((level, rest)) = levels.split_first_mut() else {
            // Past the last layer: chunks share their boundary point, which the adapter drops.
            return sink.push(ratios, input);
        };
        let layer = self.layers[l];
        let w = layer.out_len();
        match layer.kind() {
            Kind::Affine => {
                // No new breakpoints: the input is already at most a chunk (plus one interval's breakpoints).
                layer.apply(input, ratios.len(), &mut level.out, &mut level.scratch);
                if !sink.finite(l, layer, &level.out) {
                    return ControlFlow::Break(());
                }
                self.descend(l + 1, ratios, &level.out, rest, sink)
            }
            Kind::Elementwise | Kind::MaxPool => {
                // Refine consecutive intervals until a chunk is full, hand it on, go on from its last point:
                // the layer's buffers never hold much more than a chunk, however many pieces the segment has.
                let last = ratios.len() - 1;
                let mut i = 0;
                while i < last {
                    i = refine_from(layer, ratios, input, i, self.chunk, level);
                    debug_assert_eq!(level.out.len(), level.ratios.len() * w);
                    if !sink.finite(l, layer, &level.out) {
                        return ControlFlow::Break(());
                    }
                    self.descend(l + 1, &level.ratios, &level.out, rest, sink)?;
                }
                ControlFlow::Continue(())
            }
            Kind::NonLinear => unreachable!("rejected when the engine was built"),
        }
    }
}

/// Values a scan of a layer's neurons tests at once: a block without a hit costs one branch-free test.
const LANES: usize = 8;

/// Drops the point repeated at the boundary between two chunks; holds the first non-finite layer output, which
/// stops the walk and becomes the run's error (never a chain).
struct Dedup<'s, S> {
    sink: &'s mut S,
    last: f64,
    fault: Option<Error>,
    /// Index of the network's last layer.
    last_layer: usize,
}

impl<'s, S: Sink> Dedup<'s, S> {
    fn new(sink: &'s mut S, last_layer: usize) -> Self {
        Dedup { sink, last: f64::NEG_INFINITY, fault: None, last_layer }
    }

    /// Whether a layer's output is finite; records the error naming the layer when it is not. Layers before the
    /// last that keep finite inputs finite (`Op::keeps_finite`) are not checked, which saves a pass over every
    /// activation's output: their inputs come from checked outputs (or the segment's finite ends) by
    /// interpolation, and the one way that can overflow (ends near ±10³⁰⁸) is caught at the next checked
    /// layer. The last layer is always checked, so nothing non-finite reaches a sink.
    fn finite(&mut self, index: usize, layer: &Layer, out: &[f64]) -> bool {
        if index < self.last_layer && layer.op().keeps_finite() {
            return true;
        }
        match gcert_core::network::check_layer_output(index, layer, out) {
            Ok(()) => true,
            Err(e) => {
                self.fault.get_or_insert(e);
                false
            }
        }
    }

    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        let skip = usize::from(ratios.first() == Some(&self.last));
        let w = values.len() / ratios.len();
        if skip < ratios.len() {
            self.last = *ratios.last().expect("non-empty");
            return self.sink.push(&ratios[skip..], &values[skip * w..]);
        }
        ControlFlow::Continue(())
    }
}

/// Fills `level` with the points from `ratios[i]` on (`input` holds the layer's input at each) and the layer's
/// breakpoints between them, interval by interval, until the last point or until `level` holds `limit` points,
/// with the layer's output at each (applied as the points are taken, so the input is never copied: one pass
/// over the level's values instead of two); returns the index of the last point taken, where the next call
/// starts.
fn refine_from(
    layer: &Layer,
    ratios: &[f64],
    input: &[f64],
    mut i: usize,
    limit: usize,
    level: &mut Level,
) -> usize {
    let v = layer.in_len();
    let last = ratios.len() - 1;
    level.ratios.clear();
    level.out.clear();
    level.ratios.push(ratios[i]);
    layer.apply_append(&input[i * v..(i + 1) * v], &mut level.out, &mut level.scratch);
    while i < last && level.ratios.len() < limit {
        let (u, x) = (&input[i * v..(i + 1) * v], &input[(i + 1) * v..(i + 2) * v]);
        refine_interval(layer, u, x, ratios[i], ratios[i + 1], level);
        level.ratios.push(ratios[i + 1]);
        layer.apply_append(x, &mut level.out, &mut level.scratch);
        i += 1;
    }
    i
}

/// Appends to `level` the breakpoints of a piecewise-linear layer strictly inside the interval from `u` (at
/// ratio `t0`) to `v` (at `t1`), in order, with the layer's output at the input interpolated at each.
fn refine_interval(layer: &Layer, u: &[f64], v: &[f64], t0: f64, t1: f64, level: &mut Level) {
    level.local.clear();
    match layer.kind() {
        Kind::MaxPool => {
            let Op::MaxPool2d(g) = layer.op() else { unreachable!("a max-pool layer holds a max-pool op") };
            for ch in 0..g.c {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        g.window(ch, oy, ox, &mut level.window);
                        argmax_switches(&level.window, u, v, &mut level.local);
                    }
                }
            }
        }
        Kind::Elementwise => {
            let activation = layer.activation().expect("an elementwise layer has an activation");
            for &face in activation.faces() {
                let c = activation.face_value(face);
                if !c.is_finite() {
                    continue;
                }
                let cross = |a: f64, b: f64| {
                    let (da, db) = (a - c, b - c);
                    (da < 0.0 && db > 0.0) | (da > 0.0 && db < 0.0)
                };
                for (bu, bv) in u.chunks(LANES).zip(v.chunks(LANES)) {
                    // Most blocks hold no crossing: one branch-free test per block.
                    if !bu.iter().zip(bv).fold(false, |any, (&a, &b)| any | cross(a, b)) {
                        continue;
                    }
                    for (&a, &b) in bu.iter().zip(bv) {
                        if cross(a, b) {
                            let (da, db) = (a - c, b - c);
                            level.local.push(da / (da - db));
                        }
                    }
                }
            }
        }
        Kind::Affine | Kind::NonLinear => {
            unreachable!(
                "affine layers add no breakpoints; non-PL layers are rejected when the engine is built"
            )
        }
    }
    if level.local.is_empty() {
        return;
    }
    level.local.sort_unstable_by(f64::total_cmp);
    let mut prev = t0;
    let mut prev_s = f64::NAN;
    for k in 0..level.local.len() {
        let s = level.local[k];
        if s == prev_s {
            continue;
        }
        prev_s = s;
        let t = t0 + s * (t1 - t0);
        // A ratio that rounds onto a neighbour would make an empty piece.
        if t <= prev || t >= t1 {
            continue;
        }
        prev = t;
        level.ratios.push(t);
        level.row.clear();
        level.row.extend(u.iter().zip(v).map(|(a, b)| a + s * (b - a)));
        layer.apply_append(&level.row, &mut level.out, &mut level.scratch);
    }
}

/// Local ratios `s ∈ (0, 1)` at which the arg-max of the window's values `u + s (v − u)` changes.
fn argmax_switches(window: &[usize], u: &[f64], v: &[f64], out: &mut Vec<f64>) {
    let slope = |i: usize| v[i] - u[i];
    // Start from the arg-max at s = 0, ties broken towards the steeper candidate (it leads just after 0).
    let mut cur = window[0];
    for &c in &window[1..] {
        if u[c] > u[cur] || (u[c] == u[cur] && slope(c) > slope(cur)) {
            cur = c;
        }
    }
    let mut s = 0.0;
    loop {
        let mut best: Option<(f64, usize)> = None;
        for &c in window {
            let dc = slope(c) - slope(cur);
            if dc <= 0.0 {
                continue;
            }
            let sc = (u[cur] - u[c]) / dc;
            if sc < s || sc >= 1.0 {
                continue;
            }
            let better = match best {
                None => true,
                Some((sb, b)) => sc < sb || (sc == sb && slope(c) > slope(b)),
            };
            if better {
                best = Some((sc, c));
            }
        }
        match best {
            Some((sc, c)) => {
                if sc > 0.0 {
                    out.push(sc);
                }
                s = sc;
                cur = c;
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests;
