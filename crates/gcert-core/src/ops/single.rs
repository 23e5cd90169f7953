//! The absolute value of a convolution's or linear layer's weights, applied in single precision: the radius
//! pass of sound bounds (docs/mathematics.md §5.4).
//!
//! The bounds map a centre line through a layer `W` and a radius line through `|W|`; those two passes are most
//! of the hybrid certifier's arithmetic. The centre stays in `f64`. The radius only has to be an upper bound, and
//! `|W|·ρ` is a sum of non-negative terms, so in `f32` its rounding error is at most `γ_n` times the computed
//! value: the caller (`gcert-certify`'s `bounds`) rounds `ρ` up, divides the result by `1 − γ_n` and has a sound
//! radius, from a pass that holds twice as many values per vector as `f64` (16 per AVX-512 vector, 8 per AVX2
//! one). What the caller needs for that is
//! [`Single::taps`], the most products summed into one output. The kernels only promise the usual
//! floating-point model: each output is the sum of its products, by at most `taps` fused multiply-adds in some
//! order, starting from zero; taps outside the input add exact zeros.
//!
//! A layer gets a single-precision form only on a CPU with AVX-512F, or with AVX2 and FMA (the same packing,
//! one half of an AVX-512 vector per AVX2 vector), for `conv2d` (row stride 1 or 2, kernels
//! up to 8 wide) and `linear`, and only where every weight is zero or of magnitude in `[2^-40, 2^40]`: then
//! rounding `|w|` to `f32` (upward) loses nothing the caller has to account for, and with inputs of at least
//! [`INPUT_FLOOR`] (`2^-60`; the caller raises smaller non-zero radii to it) no product is subnormal, where every
//! operation would cost about a hundred cycles. Anywhere else [`super::Layer::single`] is `None` and the radius runs in `f64`.
//!
//! The same kernels also apply `W` itself, each weight rounded to the nearest `f32` ([`Single::signed`],
//! [`super::Layer::single_signed`]): the offset pass of the hybrid's chord bands, whose rounding the caller
//! bounds by `γ`-multiples of the `|W|` pass it runs next to it.

use super::{ConvGeom, Scratch};

/// A layer's `|W|` in `f32` (each weight's magnitude rounded up), packed for the AVX-512 or AVX2 kernels.
#[derive(Debug, Clone)]
pub struct Single {
    kernel: Kernel,
    taps: usize,
    isa: Isa,
}

/// The instruction set a layer's kernels run on: the widest this CPU has (both need FMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// 16 values per vector, masked loads and stores.
    Avx512,
    /// 8 values per vector (one half of the AVX-512 layout); convolutions read a zero-padded copy of the input.
    Avx2,
}

#[derive(Debug, Clone)]
enum Kernel {
    Linear(LinearPack),
    Conv(ConvPack),
}

/// Whether a weight keeps a layer in single precision: zero, or of magnitude in `[2^-40, 2^40]` (module notes,
/// [`INPUT_FLOOR`]).
fn representable(v: f64) -> bool {
    v == 0.0 || (v.abs() >= 2f64.powi(-40) && v.abs() <= 2f64.powi(40))
}

/// How a weight is packed: its magnitude rounded up (the radius pass) or itself rounded to nearest (the offset
/// pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weights {
    AbsUp,
    Nearest,
}

impl Weights {
    fn round(self, v: f64) -> f32 {
        match self {
            Weights::AbsUp => abs_up(v),
            Weights::Nearest => v as f32,
        }
    }
}

/// `|v|` rounded up to `f32`.
fn abs_up(v: f64) -> f32 {
    let a = v.abs() as f32;
    if f64::from(a) < v.abs() {
        a.next_up()
    } else {
        a
    }
}

/// The instruction sets of the single-precision kernels this CPU runs, the widest first.
fn isas() -> Vec<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let mut isas = Vec::new();
        if has!("avx512f") {
            isas.push(Isa::Avx512);
        }
        if has!("avx2") && has!("fma") {
            isas.push(Isa::Avx2);
        }
        isas
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// The kernels' instruction set on this CPU, if it runs them.
fn cpu_isa() -> Option<Isa> {
    isas().first().copied()
}

/// The smallest `f32` input the kernels are meant for: the caller raises smaller radii to it. Times the smallest
/// weight kept ([`representable`]: `2^-40`) it is `2^-100`, far above the bottom of `f32`'s normal range
/// (`2^-126`), so no product is subnormal.
pub const INPUT_FLOOR: f64 = 1.0 / (1u64 << 60) as f64;

/// Products per output beyond which a layer stays in `f64` (the caller's `γ_n` needs `n·2^-24` well below 1).
const MAX_TAPS: usize = 1 << 20;

impl Single {
    /// The single-precision form of a linear layer (`weight` is `[outputs][inputs]`), where this CPU and the
    /// weights allow one.
    pub(super) fn linear(weight: &[f64], inputs: usize, outputs: usize) -> Option<Single> {
        Single::linear_on(cpu_isa()?, weight, inputs, outputs, Weights::AbsUp)
    }

    /// [`Self::linear`] with `W` itself, each weight rounded to the nearest `f32` (module notes).
    pub(super) fn linear_signed(weight: &[f64], inputs: usize, outputs: usize) -> Option<Single> {
        Single::linear_on(cpu_isa()?, weight, inputs, outputs, Weights::Nearest)
    }

    fn linear_on(isa: Isa, weight: &[f64], inputs: usize, outputs: usize, form: Weights) -> Option<Single> {
        if inputs == 0 || outputs == 0 || inputs > MAX_TAPS {
            return None;
        }
        if !weight[..inputs * outputs].iter().all(|&v| representable(v)) {
            return None;
        }
        Some(Single {
            kernel: Kernel::Linear(LinearPack::new(weight, inputs, outputs, form)),
            taps: inputs,
            isa,
        })
    }

    /// The single-precision form of a convolution (`weight` is `[cout][cin][kh][kw]`), where this CPU, the
    /// geometry and the weights allow one.
    pub(super) fn conv2d(weight: &[f64], g: &ConvGeom) -> Option<Single> {
        Single::conv2d_on(cpu_isa()?, weight, g, Weights::AbsUp)
    }

    /// [`Self::conv2d`] with `W` itself, each weight rounded to the nearest `f32` (module notes).
    pub(super) fn conv2d_signed(weight: &[f64], g: &ConvGeom) -> Option<Single> {
        Single::conv2d_on(cpu_isa()?, weight, g, Weights::Nearest)
    }

    fn conv2d_on(isa: Isa, weight: &[f64], g: &ConvGeom, form: Weights) -> Option<Single> {
        let taps = g.cin * g.kh * g.kw;
        let shape = matches!(g.stride[1], 1 | 2) && g.kw <= 8 && g.cout > 0 && g.oh > 0 && g.ow > 0;
        if !shape || taps == 0 || taps > MAX_TAPS {
            return None;
        }
        if !weight[..g.cout * taps].iter().all(|&v| representable(v)) {
            return None;
        }
        Some(Single { kernel: Kernel::Conv(ConvPack::new(weight, g, form)), taps, isa })
    }

    /// The most products summed into one output.
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// Values per input point.
    pub fn in_len(&self) -> usize {
        match &self.kernel {
            Kernel::Linear(p) => p.inputs,
            Kernel::Conv(p) => p.g.cin * p.g.h * p.g.w,
        }
    }

    /// Values per output point.
    pub fn out_len(&self) -> usize {
        match &self.kernel {
            Kernel::Linear(p) => p.outputs,
            Kernel::Conv(p) => p.g.cout * p.g.oh * p.g.ow,
        }
    }

    /// `out[p] = |W|·x[p]` for the `n` points of `x` (`[n][in_len]`), `|W|` rounded up to `f32`.
    pub fn apply(&self, x: &[f32], n: usize, out: &mut Vec<f32>, scratch: &mut Scratch) {
        let (in_len, out_len) = (self.in_len(), self.out_len());
        assert!(x.len() >= n * in_len, "single: short input");
        out.clear();
        out.resize(n * out_len, 0.0);
        if n == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert!(isas().contains(&self.isa), "single-precision kernels need {:?}", self.isa);
            #[allow(unsafe_code)]
            match (&self.kernel, self.isa) {
                // SAFETY: the CPU supports the instruction set (asserted); the buffers are sized above.
                (Kernel::Linear(p), Isa::Avx512) => unsafe { x86::linear(p, x, n, out, &mut scratch.single) },
                // SAFETY: as above.
                (Kernel::Linear(p), Isa::Avx2) => unsafe { avx2::linear(p, x, n, out, &mut scratch.single) },
                (Kernel::Conv(p), isa) => {
                    for (xp, op) in x.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)).take(n) {
                        // SAFETY: as above; one point's input and output.
                        unsafe {
                            match isa {
                                Isa::Avx512 => x86::conv(p, xp, op),
                                Isa::Avx2 => avx2::conv(p, xp, op, &mut scratch.single),
                            }
                        };
                    }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("single-precision forms are only built on x86-64")
    }
}

/// Outputs per panel of the linear kernel: one AVX-512 vector of `f32`.
const PANEL: usize = 16;

/// Points per block of the linear kernel: with two panels, 16 accumulators.
const POINTS: usize = 8;

/// Halves per group of the convolution kernel: two vectors (with 8 channels, 16 accumulators).
const GROUP: usize = 4;

/// A linear layer's `|W|` as `[panel][input][PANEL]`, zero-padded to whole panels.
#[derive(Debug, Clone)]
struct LinearPack {
    inputs: usize,
    outputs: usize,
    panels: usize,
    w: Vec<f32>,
}

impl LinearPack {
    fn new(weight: &[f64], inputs: usize, outputs: usize, form: Weights) -> LinearPack {
        let panels = outputs.div_ceil(PANEL);
        let mut w = vec![0.0f32; panels * inputs * PANEL];
        for (o, row) in weight.chunks_exact(inputs).take(outputs).enumerate() {
            let (panel, lane) = (o / PANEL, o % PANEL);
            for (i, &v) in row.iter().enumerate() {
                w[(panel * inputs + i) * PANEL + lane] = form.round(v);
            }
        }
        LinearPack { inputs, outputs, panels, w }
    }
}

/// A convolution's `|W|` as `[tap][coutp]` (tap = input channel, kernel row, kernel column; channels
/// zero-padded to a multiple of 8), and the output plane cut into halves of a vector: 8 consecutive pixels of
/// one row (fewer at the row's end), in row order, two per vector, whatever the row length (rows of 8 pixels
/// or fewer take two rows per vector).
#[derive(Debug, Clone)]
struct ConvPack {
    g: ConvGeom,
    coutp: usize,
    wk: Vec<f32>,
    halves: Vec<Half>,
}

/// Eight output pixels `(oy, ox0 .. ox0 + 8)` of a row, as a vector's low or high half.
#[derive(Debug, Clone)]
struct Half {
    oy: usize,
    ox0: usize,
    /// The lanes whose pixel exists.
    store: u8,
    /// Per kernel column: the lanes whose pixel exists and whose input column is inside the row.
    cols: [u8; 8],
}

impl ConvPack {
    fn new(weight: &[f64], g: &ConvGeom, form: Weights) -> ConvPack {
        let coutp = g.cout.div_ceil(8) * 8;
        let kk = g.kh * g.kw;
        let mut wk = vec![0.0f32; g.cin * kk * coutp];
        for co in 0..g.cout {
            for ci in 0..g.cin {
                for t in 0..kk {
                    wk[(ci * kk + t) * coutp + co] = form.round(weight[(co * g.cin + ci) * kk + t]);
                }
            }
        }
        let mut halves = Vec::new();
        for oy in 0..g.oh {
            for ox0 in (0..g.ow).step_by(8) {
                let lanes = (g.ow - ox0).min(8);
                let store = if lanes == 8 { 0xff } else { (1u8 << lanes) - 1 };
                let mut cols = [0u8; 8];
                for (kx, col) in cols.iter_mut().enumerate().take(g.kw) {
                    *col = (0..lanes).fold(0u8, |bits, j| {
                        let ix = (g.stride[1] * (ox0 + j) + kx) as isize - g.padding[1] as isize;
                        bits | (u8::from(ix >= 0 && ix < g.w as isize) << j)
                    });
                }
                halves.push(Half { oy, ox0, store, cols });
            }
        }
        // Empty halves fill the last group of vectors: nothing loaded, nothing stored.
        while !halves.len().is_multiple_of(GROUP) {
            halves.push(Half { oy: 0, ox0: 0, store: 0, cols: [0; 8] });
        }
        ConvPack { g: *g, coutp, wk, halves }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{ConvPack, LinearPack, GROUP, PANEL, POINTS};

    /// The linear kernel over `n` points: for each block of [`POINTS`] points (packed as `[input][point]`,
    /// zero-padded) and pair of panels (or the last panel alone), the accumulators start at zero and take one
    /// fused multiply-add per input.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `x` holds `n·inputs` values and `out` `n·outputs`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn linear(p: &LinearPack, x: &[f32], n: usize, out: &mut [f32], xp: &mut Vec<f32>) {
        let inputs = p.inputs;
        xp.resize(inputs * POINTS, 0.0);
        for p0 in (0..n).step_by(POINTS) {
            let pts = (n - p0).min(POINTS);
            xp.fill(0.0);
            for (q, row) in x[p0 * inputs..(p0 + pts) * inputs].chunks_exact(inputs).enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    xp[i * POINTS + q] = v;
                }
            }
            let mut panel = 0;
            while panel < p.panels {
                if panel + 1 < p.panels {
                    // SAFETY: the CPU supports AVX-512F; panels `panel` and `panel + 1` exist.
                    unsafe { block::<2>(p, xp, panel, p0, pts, out) };
                    panel += 2;
                } else {
                    // SAFETY: as above, one panel.
                    unsafe { block::<1>(p, xp, panel, p0, pts, out) };
                    panel += 1;
                }
            }
        }
    }

    /// `V` panels from `panel` over one block of points.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const V: usize>(
        p: &LinearPack,
        xp: &[f32],
        panel: usize,
        p0: usize,
        pts: usize,
        out: &mut [f32],
    ) {
        let (inputs, w) = (p.inputs, &p.w);
        let mut acc = [[_mm512_setzero_ps(); V]; POINTS];
        let wbase = panel * inputs * PANEL;
        assert!(w.len() >= wbase + V * inputs * PANEL && xp.len() >= inputs * POINTS);
        for i in 0..inputs {
            let mut wv = [_mm512_setzero_ps(); V];
            for (v, q) in wv.iter_mut().enumerate() {
                // SAFETY: inside the panels' weights (asserted above).
                *q = unsafe { _mm512_loadu_ps(w.as_ptr().add(wbase + (v * inputs + i) * PANEL)) };
            }
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: inside the packed block (asserted above).
                let xb = _mm512_set1_ps(unsafe { *xp.get_unchecked(i * POINTS + q) });
                for (av, wq) in a.iter_mut().zip(&wv) {
                    *av = _mm512_fmadd_ps(xb, *wq, *av);
                }
            }
        }
        let outputs = p.outputs;
        for (q, a) in acc.iter().enumerate().take(pts) {
            let row = &mut out[(p0 + q) * outputs..(p0 + q + 1) * outputs];
            for (v, av) in a.iter().enumerate() {
                let o0 = (panel + v) * PANEL;
                let lanes = outputs.saturating_sub(o0).min(PANEL);
                let keep: u16 = if lanes == PANEL { 0xffff } else { (1u16 << lanes) - 1 };
                // SAFETY: the kept lanes are outputs `o0 ..` of the row that exist.
                unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr().wrapping_add(o0), keep, *av) };
            }
        }
    }

    /// The convolution of one point (module notes of `ConvPack`).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `x` holds `cin·h·w` values and `o` `cout·oh·ow`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn conv(p: &ConvPack, x: &[f32], o: &mut [f32]) {
        // SAFETY: the CPU supports AVX-512F.
        unsafe {
            if p.g.stride[1] == 1 {
                conv_s::<1>(p, x, o)
            } else {
                conv_s::<2>(p, x, o)
            }
        }
    }

    /// Vectors per group and output channels per block: 16 accumulators.
    const V: usize = GROUP / 2;
    const C: usize = 8;

    /// For each group of [`GROUP`] halves (two vectors) and block of [`C`] output channels, the accumulators
    /// start at zero and take every tap (kernel row, input channel, kernel column), loaded by masked loads: zeros
    /// outside the input; with a row stride of 2, 16 values per half, the even ones kept.
    #[target_feature(enable = "avx512f")]
    unsafe fn conv_s<const S: usize>(p: &ConvPack, x: &[f32], o: &mut [f32]) {
        let g = &p.g;
        assert!(x.len() >= g.cin * g.h * g.w && o.len() >= g.cout * g.oh * g.ow && g.kw <= 8);
        assert!(p.wk.len() >= g.cin * g.kh * g.kw * p.coutp && p.coutp.is_multiple_of(C));
        let (coutp, kw, plane, chan) = (p.coutp, g.kw, g.oh * g.ow, g.h * g.w);
        // Lane j of a stride-2 half reads value 2j of its 16: the even values of the low load, then the high's.
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let spread = |m: u8| (0..8).fold(0u16, |bits, j| bits | (u16::from((m >> j) & 1) << (2 * j)));
        let wk = p.wk.as_ptr();
        for group in p.halves.chunks_exact(GROUP) {
            for cb in (0..g.cout).step_by(C) {
                let mut acc = [[_mm512_setzero_ps(); V]; C];
                for ky in 0..g.kh {
                    // Per half: the input offset of lane 0 at kernel column 0, and per kernel column the lanes
                    // to load (none where the input row does not exist).
                    let mut base = [0isize; GROUP];
                    let mut masks = [[0u16; 8]; GROUP];
                    for (h, half) in group.iter().enumerate() {
                        let iy = (half.oy * g.stride[0] + ky) as isize - g.padding[0] as isize;
                        let live = iy >= 0 && iy < g.h as isize;
                        base[h] = iy * g.w as isize + (S * half.ox0) as isize - g.padding[1] as isize;
                        for kx in 0..kw {
                            let m = if live { half.cols[kx] } else { 0 };
                            masks[h][kx] = match (S, h % 2) {
                                (1, 0) => u16::from(m),
                                (1, _) => u16::from(m) << 8,
                                _ => spread(m),
                            };
                        }
                    }
                    for ci in 0..g.cin {
                        let xc = x.as_ptr().wrapping_add(ci * chan);
                        let wrow0 = (ci * g.kh + ky) * kw;
                        for kx in 0..kw {
                            let mut xv = [_mm512_setzero_ps(); V];
                            for (v, xq) in xv.iter_mut().enumerate() {
                                let (lo, hi) = (2 * v, 2 * v + 1);
                                let plo = xc.wrapping_offset(base[lo] + kx as isize);
                                let phi = xc.wrapping_offset(base[hi] + kx as isize);
                                // SAFETY: the lanes the masks keep read input columns inside an existing input
                                // row, so inside `x`; the others are not read.
                                *xq = unsafe {
                                    if S == 1 {
                                        let a = _mm512_maskz_loadu_ps(masks[lo][kx], plo);
                                        _mm512_mask_loadu_ps(a, masks[hi][kx], phi.wrapping_sub(8))
                                    } else {
                                        let a = _mm512_maskz_loadu_ps(masks[lo][kx], plo);
                                        let b = _mm512_maskz_loadu_ps(masks[hi][kx], phi);
                                        _mm512_permutex2var_ps(a, even, b)
                                    }
                                };
                            }
                            let wrow = wk.wrapping_add((wrow0 + kx) * coutp + cb);
                            for (c, a) in acc.iter_mut().enumerate() {
                                // SAFETY: tap `wrow0 + kx`, channel `cb + c < coutp`: inside the weights
                                // (asserted above).
                                let wc = _mm512_set1_ps(unsafe { *wrow.add(c) });
                                for (aq, xq) in a.iter_mut().zip(&xv) {
                                    *aq = _mm512_fmadd_ps(wc, *xq, *aq);
                                }
                            }
                        }
                    }
                }
                for (c, a) in acc.iter().enumerate().take(g.cout - cb) {
                    let dst = o[(cb + c) * plane..(cb + c + 1) * plane].as_mut_ptr();
                    for (v, aq) in a.iter().enumerate() {
                        let (lo, hi) = (&group[2 * v], &group[2 * v + 1]);
                        // SAFETY: the kept lanes are pixels of the plane that exist.
                        unsafe {
                            _mm512_mask_storeu_ps(
                                dst.wrapping_add(lo.oy * g.ow + lo.ox0),
                                u16::from(lo.store),
                                *aq,
                            );
                            _mm512_mask_storeu_ps(
                                dst.wrapping_add(hi.oy * g.ow + hi.ox0).wrapping_sub(8),
                                u16::from(hi.store) << 8,
                                *aq,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The AVX2 kernels: the same packing and the same sums as [`x86`]'s, with 8 values per vector (one half of the
/// AVX-512 layout) and `vmaskmovps` for the masked loads and stores of the linear kernel and the convolution's
/// stores (a lane the mask leaves out is neither read nor written). The convolution reads its input from a
/// zero-padded copy, through plain loads: 12 accumulators (4 channels × 3 halves) where masks took registers
/// and loads; on the trained classifier's convolutions 1.2–1.7× the masked kernel's rate.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ConvPack, Half, LinearPack, PANEL, POINTS};

    /// The lanes of an 8-bit mask as a vector mask (all ones where the bit is set).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn lanes(m: u8) -> __m256i {
        let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(i32::from(m)), bits), bits)
    }

    /// Points per pass over a panel: with its two vectors, 8 accumulators.
    const PASS: usize = 4;

    /// The linear kernel over `n` points (as [`super::x86`]'s: blocks of [`POINTS`] points packed as
    /// `[input][point]`, each panel's accumulators starting at zero and taking one fused multiply-add per input).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` holds `n·inputs` values and `out` `n·outputs`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn linear(p: &LinearPack, x: &[f32], n: usize, out: &mut [f32], xp: &mut Vec<f32>) {
        let inputs = p.inputs;
        xp.resize(inputs * POINTS, 0.0);
        for p0 in (0..n).step_by(POINTS) {
            let pts = (n - p0).min(POINTS);
            xp.fill(0.0);
            for (q, row) in x[p0 * inputs..(p0 + pts) * inputs].chunks_exact(inputs).enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    xp[i * POINTS + q] = v;
                }
            }
            for panel in 0..p.panels {
                for q0 in (0..pts).step_by(PASS) {
                    // SAFETY: the CPU supports AVX2 and FMA; the panel and the points exist.
                    unsafe { block(p, xp, panel, p0 + q0, q0, (pts - q0).min(PASS), out) };
                }
            }
        }
    }

    /// One panel over the points `q0 .. q0 + PASS` of a block (`pts` of them real, the first at `p`).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block(
        lp: &LinearPack,
        xp: &[f32],
        panel: usize,
        p: usize,
        q0: usize,
        pts: usize,
        out: &mut [f32],
    ) {
        let (inputs, w) = (lp.inputs, &lp.w);
        let mut acc = [[_mm256_setzero_ps(); 2]; PASS];
        let wbase = panel * inputs * PANEL;
        assert!(w.len() >= wbase + inputs * PANEL && xp.len() >= inputs * POINTS && q0 + PASS <= POINTS);
        for i in 0..inputs {
            // SAFETY: inside the panel's weights (asserted above).
            let wv = unsafe {
                let at = w.as_ptr().add(wbase + i * PANEL);
                [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))]
            };
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: inside the packed block (asserted above).
                let xb = _mm256_set1_ps(unsafe { *xp.get_unchecked(i * POINTS + q0 + q) });
                for (av, wq) in a.iter_mut().zip(&wv) {
                    *av = _mm256_fmadd_ps(xb, *wq, *av);
                }
            }
        }
        let outputs = lp.outputs;
        for (q, a) in acc.iter().enumerate().take(pts) {
            let row = &mut out[(p + q) * outputs..(p + q + 1) * outputs];
            for (v, av) in a.iter().enumerate() {
                let o0 = panel * PANEL + 8 * v;
                let n = outputs.saturating_sub(o0).min(8);
                let keep: u8 = if n == 8 { 0xff } else { (1u16 << n) as u8 - 1 };
                // SAFETY: the kept lanes are outputs `o0 ..` of the row that exist.
                unsafe { _mm256_maskstore_ps(row.as_mut_ptr().wrapping_add(o0), lanes(keep), *av) };
            }
        }
    }

    /// The convolution of one point (module notes of `ConvPack`), through `xp`: the point's input copied with
    /// zeros around it, so that every tap of every half is 8 consecutive values in one plain load (no masks:
    /// a tap outside the input reads a zero, whose product adds nothing, exactly as a masked load's zero did).
    /// With a row stride of 2 each padded row is stored as its even columns, then its odd ones: lane j of a
    /// half at `ox0` reads padded column `2·(ox0 + j) + kx`, that is value `ox0 + j + kx div 2` of the plane of
    /// parity `kx mod 2`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` holds `cin·h·w` values and `o` `cout·oh·ow`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv(p: &ConvPack, x: &[f32], o: &mut [f32], xp: &mut Vec<f32>) {
        let g = &p.g;
        assert!(x.len() >= g.cin * g.h * g.w && o.len() >= g.cout * g.oh * g.ow && g.kw <= 8);
        assert!(p.wk.len() >= g.cin * g.kh * g.kw * p.coutp && p.coutp.is_multiple_of(8));
        // The halves that exist (those that fill the AVX-512 kernel's last group are empty).
        let halves = &p.halves[..p.halves.iter().position(|h| h.store == 0).unwrap_or(p.halves.len())];
        let inside = |h: &Half| h.oy < g.oh && h.ox0 + 8 <= g.ow.next_multiple_of(8);
        assert!(matches!(g.stride[1], 1 | 2) && halves.iter().all(inside));
        let (s, [ph, pw]) = (g.stride[1], g.padding);
        // Padded rows: every row a half reads (`oy·stride + ky`) and every input row (`iy + ph`); padded
        // columns: every column a lane reads (`s·(ox0 + j) + kx`, lanes past the row's end included) and every
        // input column (`ix + pw`).
        let rows = ((g.oh - 1) * g.stride[0] + g.kh).max(g.h + ph);
        let cols = (s * (g.ow.next_multiple_of(8) - 1) + g.kw).max(g.w + pw);
        let plane = cols.div_ceil(s);
        let row = s * plane;
        xp.clear();
        xp.resize(g.cin * rows * row, 0.0);
        for (ci, xc) in x[..g.cin * g.h * g.w].chunks_exact(g.h * g.w).enumerate() {
            for (iy, xr) in xc.chunks_exact(g.w).enumerate() {
                let dst = &mut xp[(ci * rows + iy + ph) * row..][..row];
                if s == 1 {
                    dst[pw..pw + g.w].copy_from_slice(xr);
                } else {
                    // Column `c = ix + pw` goes to value `c div 2` of the plane of parity `c mod 2`.
                    let (even, odd) = dst.split_at_mut(plane);
                    for (ix, &v) in xr.iter().enumerate() {
                        let c = ix + pw;
                        if c & 1 == 0 {
                            even[c >> 1] = v
                        } else {
                            odd[c >> 1] = v
                        }
                    }
                }
            }
        }
        // Per kernel column, the offset of lane 0 of a half at `ox0 = 0` in a padded row.
        let taps: [usize; 8] = std::array::from_fn(|kx| (kx % s) * plane + kx / s);
        let layout = Padded { rows, row, taps };
        let mut groups = halves.chunks_exact(V);
        for group in &mut groups {
            // SAFETY: the CPU supports AVX2 and FMA; the layout holds every value a lane reads (above).
            unsafe { conv_group::<V>(p, xp, &layout, group.try_into().expect("a chunk of V halves"), o) };
        }
        // The last one or two halves in a group of their own.
        let rest = groups.remainder();
        if let Ok(two) = <&[Half; 2]>::try_from(rest) {
            // SAFETY: as above.
            unsafe { conv_group::<2>(p, xp, &layout, two, o) };
        } else if let Ok(one) = <&[Half; 1]>::try_from(rest) {
            // SAFETY: as above.
            unsafe { conv_group::<1>(p, xp, &layout, one, o) };
        }
    }

    /// A padded input's layout (see [`conv`]).
    struct Padded {
        rows: usize,
        row: usize,
        taps: [usize; 8],
    }

    /// Halves (one vector each) per group and output channels per block: 12 accumulators, 3 vectors of
    /// inputs and a broadcast weight (no mask registers).
    const V: usize = 3;
    const C: usize = 4;

    /// For `H` halves and each block of [`C`] output channels, the accumulators start at zero and take every
    /// tap (kernel row, input channel, kernel column) from the padded input `xp`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `xp` must hold the padded input of [`conv`] in `layout`, and `o`
    /// `cout·oh·ow` values.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn conv_group<const H: usize>(
        p: &ConvPack,
        xp: &[f32],
        layout: &Padded,
        group: &[Half; H],
        o: &mut [f32],
    ) {
        let g = &p.g;
        let (coutp, kw, plane) = (p.coutp, g.kw, g.oh * g.ow);
        let Padded { rows, row, taps } = *layout;
        assert!(xp.len() >= g.cin * rows * row);
        let wk = p.wk.as_ptr();
        for cb in (0..g.cout).step_by(C) {
            let mut acc = [[_mm256_setzero_ps(); H]; C];
            for ky in 0..g.kh {
                // Per half: the offset of lane 0 at kernel column 0 in a channel's padded rows.
                let mut base = [0usize; H];
                for (b, half) in base.iter_mut().zip(group) {
                    *b = (half.oy * g.stride[0] + ky) * row + half.ox0;
                }
                for ci in 0..g.cin {
                    let xc = xp.as_ptr().wrapping_add(ci * rows * row);
                    let wrow0 = (ci * g.kh + ky) * kw;
                    for (kx, &tap) in taps.iter().enumerate().take(kw) {
                        // SAFETY: padded row `oy·stride + ky < rows` of channel `ci`, values `tap + ox0 + j`
                        // below `row` for every lane (the layout of `conv`): inside `xp`.
                        let mut xv = [_mm256_setzero_ps(); H];
                        for (xq, b) in xv.iter_mut().zip(&base) {
                            *xq = unsafe { _mm256_loadu_ps(xc.add(b + tap)) };
                        }
                        let wrow = wk.wrapping_add((wrow0 + kx) * coutp + cb);
                        for (c, a) in acc.iter_mut().enumerate() {
                            // SAFETY: tap `wrow0 + kx`, channel `cb + c < coutp` (`cb` is a multiple of 4
                            // below `cout`, `coutp` one of 8 at least `cout`): inside the weights.
                            let wc = _mm256_set1_ps(unsafe { *wrow.add(c) });
                            for (aq, xq) in a.iter_mut().zip(&xv) {
                                *aq = _mm256_fmadd_ps(wc, *xq, *aq);
                            }
                        }
                    }
                }
            }
            for (c, a) in acc.iter().enumerate().take(g.cout - cb) {
                let dst = o[(cb + c) * plane..(cb + c + 1) * plane].as_mut_ptr();
                for (half, aq) in group.iter().zip(a) {
                    // SAFETY: the kept lanes are pixels of the plane that exist.
                    unsafe {
                        _mm256_maskstore_ps(
                            dst.wrapping_add(half.oy * g.ow + half.ox0),
                            lanes(half.store),
                            *aq,
                        )
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::tests::{geometry, GEOMETRIES};
    use super::*;

    /// Values in `[-1, 1)` from a fixed seed (xorshift), with a few exact zeros.
    fn values(seed: &mut u64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                if (*seed).is_multiple_of(11) {
                    0.0
                } else {
                    (*seed >> 11) as f64 / (1u64 << 52) as f64 - 1.0
                }
            })
            .collect()
    }

    const U: f64 = 1.0 / (1u64 << 24) as f64;

    /// Checks one output against the exact `Σ |w|·x` (in f64, from the f64 weights, for `x ≥ 0`): never below it,
    /// the caller's promise, and above it by at most `γ_{n+1}` of it (the weights rounded up, `n` fused
    /// multiply-adds), so that no product is lost or counted twice.
    fn close(got: f32, exact: f64, taps: usize, what: &str) {
        let got = f64::from(got);
        let k = (taps + 1) as f64 * U;
        let (gamma, low) = (k / (1.0 - k), (1.0 - k) * exact);
        assert!(got >= low && got <= (1.0 + gamma) * exact, "{what}: {got} against {exact}");
        assert!(got / (1.0 - taps as f64 * U / (1.0 - taps as f64 * U)) >= exact, "{what}: {got} < {exact}");
    }

    /// The signed form ([`Weights::Nearest`]): the kernel's sum of the `f32` weights times signed inputs is
    /// within `γ_n` of the sum of their magnitudes from the exact sum of the same products.
    fn close_signed(got: f32, exact: f64, magnitude: f64, taps: usize, what: &str) {
        let k = taps as f64 * U;
        let err = (f64::from(got) - exact).abs();
        assert!(err <= k / (1.0 - k) * magnitude, "{what}: {got} against {exact} (magnitude {magnitude})");
    }

    /// Every instruction set this CPU runs, not only the one layers get (the AVX2 kernels on an AVX-512 CPU).
    #[test]
    fn the_linear_kernel_sums_every_input() {
        if cpu_isa().is_none() {
            assert!(Single::linear(&[1.0], 1, 1).is_none());
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let shapes =
            [(1, 1, 1), (7, 3, 2), (33, 16, 8), (100, 10, 17), (2048, 100, 16), (5, 47, 9), (9, 24, 5)];
        let forms = [Weights::AbsUp, Weights::Nearest];
        for (((inputs, outputs, n), isa), form) in shapes
            .into_iter()
            .flat_map(|s| isas().into_iter().map(move |i| (s, i)))
            .flat_map(|c| forms.into_iter().map(move |f| (c, f)))
        {
            let weight = values(&mut seed, inputs * outputs);
            let x: Vec<f32> = values(&mut seed, n * inputs)
                .iter()
                .map(|&v| if form == Weights::AbsUp { v.abs() } else { v } as f32)
                .collect();
            let single = Single::linear_on(isa, &weight, inputs, outputs, form).expect("an f32 form");
            assert_eq!((single.taps(), single.in_len(), single.out_len()), (inputs, inputs, outputs));
            let mut out = vec![f32::NAN; 3];
            single.apply(&x, n, &mut out, &mut Scratch::default());
            assert_eq!(out.len(), n * outputs);
            for p in 0..n {
                for o in 0..outputs {
                    let row = &weight[o * inputs..(o + 1) * inputs];
                    let xs = &x[p * inputs..(p + 1) * inputs];
                    let what = format!("{isa:?} {form:?} {inputs}→{outputs} p{p} o{o}");
                    if form == Weights::Nearest {
                        let w32 = |a: f64| f64::from(a as f32);
                        let exact = row.iter().zip(xs).map(|(&a, &v)| w32(a) * f64::from(v)).sum::<f64>();
                        let mag =
                            row.iter().zip(xs).map(|(&a, &v)| (w32(a) * f64::from(v)).abs()).sum::<f64>();
                        close_signed(out[p * outputs + o], exact, mag, inputs, &what);
                        continue;
                    }
                    let exact = row.iter().zip(xs).map(|(&a, &v)| a.abs() * f64::from(v)).sum::<f64>();
                    close(out[p * outputs + o], exact, inputs, &what);
                }
            }
        }
    }

    /// Every geometry the kernel takes: rows shorter than a half, exactly a half or a vector, between and
    /// longer; strides 1 and 2 along rows, 1 to 3 along columns; padding past the kernel's reach; channel counts
    /// on both sides of a block of 8; numbers of halves that do not fill the last group.
    #[test]
    fn the_convolution_kernel_sums_every_tap() {
        // Beyond the convolution tests' geometries: an odd number of halves with 17 channels, a 1 × 1 output
        // row, a kernel 8 wide.
        let extra = [(3, 17, 3, 1, [1, 2], 9, 31), (2, 3, 1, 0, [1, 1], 3, 3), (2, 3, 8, 3, [1, 1], 12, 12)];
        let mut seed = 0x2545_f491_4f6c_dd1d;
        let geometries: Vec<ConvGeom> = GEOMETRIES.into_iter().chain(extra).map(geometry).collect();
        assert!(cpu_isa().is_some() || geometries.iter().all(|g| Single::conv2d(&[0.5; 4096], g).is_none()));
        let forms = [Weights::AbsUp, Weights::Nearest];
        for ((g, isa), form) in geometries
            .into_iter()
            .flat_map(|g| isas().into_iter().map(move |i| (g, i)))
            .flat_map(|c| forms.into_iter().map(move |f| (c, f)))
        {
            let ConvGeom { cin, cout, kh: k, stride, padding: [pad, _], h, w, oh, ow, .. } = g;
            let weight = values(&mut seed, cout * cin * k * k);
            let single = Single::conv2d_on(isa, &weight, &g, form).expect("an f32 form");
            let n = 3;
            let x: Vec<f32> = values(&mut seed, n * cin * h * w)
                .iter()
                .map(|&v| if form == Weights::AbsUp { v.abs() } else { v } as f32)
                .collect();
            let mut out = Vec::new();
            single.apply(&x, n, &mut out, &mut Scratch::default());
            assert_eq!(out.len(), n * cout * oh * ow);
            for p in 0..n {
                let xs = &x[p * cin * h * w..];
                for co in 0..cout {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (mut exact, mut signed, mut mag) = (0.0, 0.0, 0.0);
                            for ci in 0..cin {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let iy = (oy * stride[0] + ky) as isize - pad as isize;
                                        let ix = (ox * stride[1] + kx) as isize - pad as isize;
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                            continue;
                                        }
                                        let a = weight[((co * cin + ci) * k + ky) * k + kx];
                                        let v = f64::from(xs[(ci * h + iy as usize) * w + ix as usize]);
                                        exact += a.abs() * v;
                                        signed += f64::from(a as f32) * v;
                                        mag += (f64::from(a as f32) * v).abs();
                                    }
                                }
                            }
                            let got = out[((p * cout + co) * oh + oy) * ow + ox];
                            let what = format!("{isa:?} {form:?} {g:?} p{p} c{co} ({oy},{ox})");
                            if form == Weights::Nearest {
                                close_signed(got, signed, mag, cin * k * k, &what);
                            } else {
                                close(got, exact, cin * k * k, &what);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn weights_that_do_not_round_to_f32_keep_a_layer_in_f64() {
        for v in [1e-13, 2e12, 1e-40, 1e35, f64::MIN_POSITIVE] {
            assert!(Single::linear(&[1.0, v], 2, 1).is_none(), "{v}");
        }
        assert_eq!(Single::linear(&[1.0, 0.0], 2, 1).is_some(), cpu_isa().is_some());
        assert!(f64::from(abs_up(-0.1)) >= 0.1 && f64::from(abs_up(0.3)) >= 0.3);
    }
}
