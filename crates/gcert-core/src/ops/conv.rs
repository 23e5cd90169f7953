//! Convolution and transposed convolution as one gather kernel over blocks of points.
//!
//! The engine applies a layer to many points at once (the breakpoints of a segment). Both convolutions are, for
//! each output pixel, a sum over taps `(k, r)`: weight row `k` (one input channel and kernel offset) times input
//! element `r`. Rather than unfold every point's input into a `K × pixels` matrix (im2col, one copy per tap per
//! point, which costs more than the arithmetic when a layer has few output channels), the kernel transposes a
//! block of [`NB`] points so that each input element's values for the block are contiguous, then for each output
//! pixel and each block of [`CB`] output channels accumulates `CB × NB` products per tap in registers: one
//! vector load of the points' values, `CB` weights, `CB × NB` fused multiply-adds. The per-pixel tap lists are
//! the only place where the two layer kinds differ.
//!
//! The kernel is written with explicit AVX-512 and AVX2 + FMA instructions (the same fused products in the same
//! order, so both give the same bits) and chosen per call from the CPU's features; elsewhere a plain version
//! (separate multiply and add) runs. The order of operations is fixed, so a machine always gives the same bits,
//! whatever else a binary links — and whatever the batch: each point is one lane of the block, computed the same
//! way whichever points share its block, so a point's output does not depend on how many points are applied with
//! it (the engine's chunking, the hybrid's sub-segments and the full chain must agree to the last bit).
//!
//! A block of at most [`NN`] points (one forward pass, the two ends of a bound) runs in a kernel of `NN` lanes
//! with the same products in the same order, so its lanes have the wide kernel's bits at a quarter of the work.
//! The tap lists and packed weights (the plan) are built on a layer's first use and kept with the layer.

use std::sync::OnceLock;

use super::{ConvGeom, Scratch};

/// Points per block: the vector width of the inner loop.
const NB: usize = 16;
/// Output channels per block: the accumulators held in registers are `CB × NB`.
const CB: usize = 8;
/// Points per block of the narrow kernel, for the few points of a probe or of a bound's two ends (a wide block
/// would compute 16 lanes for them).
const NN: usize = 4;

/// For each output pixel `start[p]..start[p + 1]` indexes its taps: weight rows `k` and input elements `row`.
#[derive(Debug, Default, Clone)]
pub(super) struct Taps {
    start: Vec<usize>,
    k: Vec<usize>,
    row: Vec<usize>,
    /// The largest `k` and `row` (what the kernels' bounds checks need, kept so that a block checks them in
    /// constant time).
    max_k: usize,
    max_row: usize,
}

impl Taps {
    fn clear(&mut self) {
        self.start.clear();
        self.k.clear();
        self.row.clear();
        self.start.push(0);
        (self.max_k, self.max_row) = (0, 0);
    }

    fn close_pixel(&mut self) {
        let from = self.start.last().copied().unwrap_or(0);
        self.max_k = self.k[from..].iter().copied().fold(self.max_k, usize::max);
        self.max_row = self.row[from..].iter().copied().fold(self.max_row, usize::max);
        self.start.push(self.k.len());
    }

    /// The taps of every output pixel, in pixel order: for each input channel and kernel offset `(ky, kx)`,
    /// the input element `source` names along each axis (`source(o, k, stride, pad, len)`), if both exist.
    /// The two convolutions differ only in `source`.
    fn build(&mut self, g: &ConvGeom, source: impl Fn(usize, usize, usize, usize, usize) -> Option<usize>) {
        self.clear();
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for ci in 0..g.cin {
                    for ky in 0..g.kh {
                        let Some(iy) = source(oy, ky, g.stride[0], g.padding[0], g.h) else { continue };
                        for kx in 0..g.kw {
                            if let Some(ix) = source(ox, kx, g.stride[1], g.padding[1], g.w) {
                                self.k.push((ci * g.kh + ky) * g.kw + kx);
                                self.row.push((ci * g.h + iy) * g.w + ix);
                            }
                        }
                    }
                }
                self.close_pixel();
            }
        }
    }
}

/// The tap lists and weights of one layer.
#[derive(Debug, Default, Clone)]
pub(super) struct Plan {
    taps: Taps,
    /// Weights as `[K, cout rounded up to CB]`.
    wk: Vec<f64>,
    /// The bias, zero-padded to the rounded-up channel count.
    bias: Vec<f64>,
}

impl Plan {
    fn new(g: &ConvGeom, bias: &[f64], build: impl FnOnce(&mut Plan)) -> Plan {
        let mut plan = Plan::default();
        build(&mut plan);
        plan.bias.extend_from_slice(&bias[..g.cout]);
        plan.bias.resize(g.cout.next_multiple_of(CB), 0.0);
        plan
    }
}

/// A convolution layer's plan, built on its first use and kept with the layer: layers are immutable, so the
/// plan never goes stale, and every caller (the engine's levels, the bounds, a single forward pass) shares it.
/// Equal whatever it holds, so that layers compare by their ops.
#[derive(Debug, Default, Clone)]
pub(crate) struct PlanCache(OnceLock<Box<Plan>>);

impl PartialEq for PlanCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Buffers of the gather kernel, kept between calls.
#[derive(Debug, Default)]
pub(super) struct ConvScratch {
    /// One block of points, transposed: `[in_len, NB]`.
    xt: Vec<f64>,
    /// One block of outputs: `[cout rounded up, pixels, NB]`.
    ot: Vec<f64>,
}

/// The number of weight rows `K = cin·kh·kw` of either convolution.
fn rows(g: &ConvGeom) -> usize {
    g.cin * g.kh * g.kw
}

/// `y = conv2d(x)`: weight `[cout, cin, kh, kw]`, output pixel `(oy, ox)` reads input `(oy·s + ky − p, ox·s + kx − p)`.
pub(super) fn conv2d(
    input: &[f64],
    n: usize,
    weight: &[f64],
    bias: &[f64],
    g: &ConvGeom,
    out: &mut [f64],
    cache: &PlanCache,
    scratch: &mut Scratch,
) {
    let plan = cache.0.get_or_init(|| Box::new(Plan::new(g, bias, |p| conv2d_plan(weight, g, p))));
    gather(input, n, g.cin * g.h * g.w, g.cout, g.oh * g.ow, plan, &mut scratch.conv, out);
}

/// The tap lists and transposed weights of a convolution.
fn conv2d_plan(weight: &[f64], g: &ConvGeom, s: &mut Plan) {
    let k_len = rows(g);
    // Output `o` reads input `o·stride + k − pad` along each axis.
    s.taps.build(g, |o, k, stride, pad, len| (o * stride + k).checked_sub(pad).filter(|&v| v < len));
    let coutp = g.cout.next_multiple_of(CB);
    s.wk.clear();
    s.wk.resize(k_len * coutp, 0.0);
    for co in 0..g.cout {
        for k in 0..k_len {
            s.wk[k * coutp + co] = weight[co * k_len + k];
        }
    }
}

/// `y = conv_transpose2d(x)`: weight `[cin, cout, kh, kw]`, input `(iy, ix)` adds into output
/// `(iy·s − p + ky, ix·s − p + kx)`; gathered per output pixel.
pub(super) fn conv_transpose2d(
    input: &[f64],
    n: usize,
    weight: &[f64],
    bias: &[f64],
    g: &ConvGeom,
    out: &mut [f64],
    cache: &PlanCache,
    scratch: &mut Scratch,
) {
    let plan = cache.0.get_or_init(|| Box::new(Plan::new(g, bias, |p| conv_transpose2d_plan(weight, g, p))));
    gather(input, n, g.cin * g.h * g.w, g.cout, g.oh * g.ow, plan, &mut scratch.conv, out);
}

/// The tap lists (gathered per output pixel) and transposed weights of a transposed convolution.
fn conv_transpose2d_plan(weight: &[f64], g: &ConvGeom, s: &mut Plan) {
    let k_len = rows(g);
    // The input index along one axis that reaches output `o` through kernel offset `k`, if any.
    s.taps.build(g, |o, k, stride, pad, len| {
        (o + pad).checked_sub(k).filter(|v| v.is_multiple_of(stride)).map(|v| v / stride).filter(|&v| v < len)
    });
    let coutp = g.cout.next_multiple_of(CB);
    let kk = g.kh * g.kw;
    s.wk.clear();
    s.wk.resize(k_len * coutp, 0.0);
    for ci in 0..g.cin {
        for co in 0..g.cout {
            for t in 0..kk {
                s.wk[(ci * kk + t) * coutp + co] = weight[(ci * g.cout + co) * kk + t];
            }
        }
    }
}

/// Runs the taps over `n` points, a block of [`NB`] at a time (a last block of at most [`NN`] points in the
/// narrow kernel), writing `out[point][co·pixels + pixel]`.
#[allow(clippy::too_many_arguments)]
fn gather(
    input: &[f64],
    n: usize,
    in_len: usize,
    cout: usize,
    pixels: usize,
    plan: &Plan,
    s: &mut ConvScratch,
    out: &mut [f64],
) {
    let coutp = cout.next_multiple_of(CB);
    let narrow = narrow_kernel();
    let out_len = cout * pixels;
    for first in (0..n).step_by(NB) {
        let m = NB.min(n - first);
        let (l, kernel): (usize, Kernel) = match narrow {
            Some(kernel) if m <= NN => (NN, kernel),
            _ => (NB, block),
        };
        let (input, out) = (&input[first * in_len..], &mut out[first * out_len..]);
        lanes(l, input, m, (in_len, coutp, pixels, out_len), &mut s.xt, &mut s.ot, out, |xt, ot| {
            kernel(xt, &plan.wk, &plan.bias, coutp, &plan.taps, ot)
        });
    }
}

/// One block of `m ≤ l` points in a kernel of `l` lanes: transposes the points' inputs into `xt[row][lane]`,
/// runs `kernel`, and copies `ot[(co·pixels + pixel)][lane]` back out. `dims` is `(in_len, coutp, pixels,
/// out_len)`.
#[allow(clippy::too_many_arguments)]
fn lanes(
    l: usize,
    input: &[f64],
    m: usize,
    (in_len, coutp, pixels, out_len): (usize, usize, usize, usize),
    xt: &mut Vec<f64>,
    ot: &mut Vec<f64>,
    out: &mut [f64],
    kernel: impl FnOnce(&[f64], &mut [f64]),
) {
    xt.resize(in_len * l, 0.0);
    ot.resize(coutp * pixels * l, 0.0);
    // Transposed in tiles of l × l, so that both the reads and the writes stay within a few cache lines.
    for r0 in (0..in_len).step_by(l) {
        let r1 = (r0 + l).min(in_len);
        for j in 0..m {
            for (t, v) in input[j * in_len + r0..j * in_len + r1].iter().enumerate() {
                xt[(r0 + t) * l + j] = *v;
            }
        }
        for r in r0..r1 {
            xt[r * l + m..(r + 1) * l].fill(0.0);
        }
    }
    kernel(&xt[..in_len * l], &mut ot[..coutp * pixels * l]);
    // `ot[(co·pixels + pixel)·l + j]`: the first `out_len` rows are the real channels, in output order.
    for q0 in (0..out_len).step_by(l) {
        let q1 = (q0 + l).min(out_len);
        for j in 0..m {
            for (t, y) in out[j * out_len + q0..j * out_len + q1].iter_mut().enumerate() {
                *y = ot[(q0 + t) * l + j];
            }
        }
    }
}

/// One block: `ot[co][pixel][j] = bias[co] + Σ_taps wk[k][co] · xt[row][j]` (taps in order), with the best kernel the CPU offers.
fn block(xt: &[f64], wk: &[f64], bias: &[f64], coutp: usize, taps: &Taps, ot: &mut [f64]) {
    check_block(xt, wk, bias, coutp, taps, ot, NB);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            #[allow(unsafe_code)]
            // SAFETY: the CPU supports AVX-512F (checked just above), and the assertions above prove every
            // pointer offset `block_avx512` forms lies inside `xt`, `wk` and `ot`.
            unsafe {
                return x86::block_avx512(xt, wk, bias, coutp, taps, ot);
            }
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            #[allow(unsafe_code)]
            // SAFETY: the CPU supports AVX2 and FMA (checked just above); offsets as for AVX-512.
            unsafe {
                return x86::block_avx2(xt, wk, bias, coutp, taps, ot);
            }
        }
    }
    block_portable::<NB>(xt, wk, bias, coutp, taps, ot);
}

/// Every index a kernel of `lanes` lanes reads or writes lies inside these slices (checked once per block, not
/// per tap).
fn check_block(xt: &[f64], wk: &[f64], bias: &[f64], coutp: usize, taps: &Taps, ot: &[f64], lanes: usize) {
    let pixels = taps.start.len() - 1;
    assert!((taps.max_row + 1) * lanes <= xt.len(), "a tap reads outside the block");
    assert!((taps.max_k + 1) * coutp <= wk.len(), "a tap reads outside the weights");
    assert!(coutp.is_multiple_of(CB) && coutp * pixels * lanes <= ot.len(), "the output block is too small");
    assert!(bias.len() >= coutp, "the bias is too short");
}

/// A kernel over one block: `(xt, wk, bias, coutp, taps, ot)`.
type Kernel = fn(&[f64], &[f64], &[f64], usize, &Taps, &mut [f64]);

/// The kernel for blocks of at most [`NN`] points, when one gives the same bits as the wide kernel on this CPU:
/// a point's lane is computed by the same products in the same order in both, fused where the wide kernel
/// fuses them.
fn narrow_kernel() -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Some(block_narrow_fma);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // The wide kernel fuses; without AVX2 + FMA no narrow kernel can.
            return None;
        }
    }
    Some(block_portable::<NN>)
}

/// The narrow kernel with AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
fn block_narrow_fma(xt: &[f64], wk: &[f64], bias: &[f64], coutp: usize, taps: &Taps, ot: &mut [f64]) {
    check_block(xt, wk, bias, coutp, taps, ot, NN);
    assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
    #[allow(unsafe_code)]
    // SAFETY: the CPU supports AVX2 and FMA (asserted just above), and `check_block` proves every pointer
    // offset `block_narrow_avx2` forms lies inside `xt`, `wk` and `ot`.
    unsafe {
        x86::block_narrow_avx2(xt, wk, bias, coutp, taps, ot)
    }
}

/// The kernel without vector instructions (separate multiply and add), over `L` lanes.
fn block_portable<const L: usize>(
    xt: &[f64],
    wk: &[f64],
    bias: &[f64],
    coutp: usize,
    taps: &Taps,
    ot: &mut [f64],
) {
    check_block(xt, wk, bias, coutp, taps, ot, L);
    let pixels = taps.start.len() - 1;
    for pix in 0..pixels {
        let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
        for cb in (0..coutp).step_by(CB) {
            for c in 0..CB {
                let mut acc = [bias[cb + c]; L];
                for (&k, &r) in taps.k[lo..hi].iter().zip(&taps.row[lo..hi]) {
                    let w = wk[k * coutp + cb + c];
                    for (a, x) in acc.iter_mut().zip(&xt[r * L..(r + 1) * L]) {
                        *a += w * x;
                    }
                }
                ot[((cb + c) * pixels + pix) * L..][..L].copy_from_slice(&acc);
            }
        }
    }
}

/// The kernels with explicit vector instructions. Both keep `CB × NB` accumulators in registers over a pixel's
/// taps and use fused multiply-adds in the same order, so they give the same bits.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Taps, CB, NB, NN};

    /// AVX-512: per tap, two loads of the block's 16 values and 16 fused multiply-adds with broadcast weights.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, every `(row + 1)·NB ≤ xt.len()`, every `(k + 1)·coutp ≤ wk.len()`,
    /// `coutp` a multiple of `CB`, `coutp·pixels·NB ≤ ot.len()` and `coutp ≤ bias.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_avx512(
        xt: &[f64],
        wk: &[f64],
        bias: &[f64],
        coutp: usize,
        taps: &Taps,
        ot: &mut [f64],
    ) {
        const { assert!(CB == 8 && NB == 16) };
        let pixels = taps.start.len() - 1;
        let (x, w, o) = (xt.as_ptr(), wk.as_ptr(), ot.as_mut_ptr());
        for pix in 0..pixels {
            let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
            let (ks, rows) = (&taps.k[lo..hi], &taps.row[lo..hi]);
            for cb in (0..coutp).step_by(CB) {
                let mut acc = [_mm512_setzero_pd(); 2 * CB];
                for c in 0..CB {
                    acc[2 * c] = _mm512_set1_pd(bias[cb + c]);
                    acc[2 * c + 1] = acc[2 * c];
                }
                for (&k, &r) in ks.iter().zip(rows) {
                    // SAFETY (all pointer arithmetic here): bounds per this function's contract.
                    let (x0, x1) =
                        unsafe { (_mm512_loadu_pd(x.add(r * NB)), _mm512_loadu_pd(x.add(r * NB + 8))) };
                    let wrow = unsafe { w.add(k * coutp + cb) };
                    for c in 0..CB {
                        let wc = _mm512_set1_pd(unsafe { *wrow.add(c) });
                        acc[2 * c] = _mm512_fmadd_pd(wc, x0, acc[2 * c]);
                        acc[2 * c + 1] = _mm512_fmadd_pd(wc, x1, acc[2 * c + 1]);
                    }
                }
                for c in 0..CB {
                    let dst = unsafe { o.add(((cb + c) * pixels + pix) * NB) };
                    unsafe {
                        _mm512_storeu_pd(dst, acc[2 * c]);
                        _mm512_storeu_pd(dst.add(8), acc[2 * c + 1]);
                    }
                }
            }
        }
    }

    /// AVX2 with FMA: two output channels at a time (8 accumulators of 4 values), the same products in the same
    /// order as the AVX-512 kernel.
    ///
    /// # Safety
    /// As [`block_avx512`], with AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(
        xt: &[f64],
        wk: &[f64],
        bias: &[f64],
        coutp: usize,
        taps: &Taps,
        ot: &mut [f64],
    ) {
        let pixels = taps.start.len() - 1;
        let (x, w, o) = (xt.as_ptr(), wk.as_ptr(), ot.as_mut_ptr());
        for pix in 0..pixels {
            let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
            let (ks, rows) = (&taps.k[lo..hi], &taps.row[lo..hi]);
            for c0 in (0..coutp).step_by(2) {
                let mut acc = [_mm256_setzero_pd(); 8];
                for c in 0..2 {
                    for q in 0..4 {
                        acc[4 * c + q] = _mm256_set1_pd(bias[c0 + c]);
                    }
                }
                for (&k, &r) in ks.iter().zip(rows) {
                    // SAFETY (all pointer arithmetic here): bounds per this function's contract.
                    let xr = unsafe { x.add(r * NB) };
                    let xv = unsafe {
                        [
                            _mm256_loadu_pd(xr),
                            _mm256_loadu_pd(xr.add(4)),
                            _mm256_loadu_pd(xr.add(8)),
                            _mm256_loadu_pd(xr.add(12)),
                        ]
                    };
                    for c in 0..2 {
                        let wc = _mm256_set1_pd(unsafe { *w.add(k * coutp + c0 + c) });
                        for (q, xq) in xv.iter().enumerate() {
                            acc[4 * c + q] = _mm256_fmadd_pd(wc, *xq, acc[4 * c + q]);
                        }
                    }
                }
                for c in 0..2 {
                    let dst = unsafe { o.add(((c0 + c) * pixels + pix) * NB) };
                    for q in 0..4 {
                        unsafe { _mm256_storeu_pd(dst.add(4 * q), acc[4 * c + q]) };
                    }
                }
            }
        }
    }

    /// AVX2 with FMA over one vector of [`NN`] points: per tap, one load and `CB` fused multiply-adds with
    /// broadcast weights, the same products in the same order as the wide kernels.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, every `(row + 1)·NN ≤ xt.len()`, every `(k + 1)·coutp ≤ wk.len()`,
    /// `coutp` a multiple of `CB`, `coutp·pixels·NN ≤ ot.len()` and `coutp ≤ bias.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_narrow_avx2(
        xt: &[f64],
        wk: &[f64],
        bias: &[f64],
        coutp: usize,
        taps: &Taps,
        ot: &mut [f64],
    ) {
        const { assert!(NN == 4) };
        let pixels = taps.start.len() - 1;
        let (x, w, o) = (xt.as_ptr(), wk.as_ptr(), ot.as_mut_ptr());
        for pix in 0..pixels {
            let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
            let (ks, rows) = (&taps.k[lo..hi], &taps.row[lo..hi]);
            for cb in (0..coutp).step_by(CB) {
                let mut acc = [_mm256_setzero_pd(); CB];
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_set1_pd(bias[cb + c]);
                }
                for (&k, &r) in ks.iter().zip(rows) {
                    // SAFETY (all pointer arithmetic here): bounds per this function's contract.
                    let xv = unsafe { _mm256_loadu_pd(x.add(r * NN)) };
                    let wrow = unsafe { w.add(k * coutp + cb) };
                    for (c, a) in acc.iter_mut().enumerate() {
                        let wc = _mm256_set1_pd(unsafe { *wrow.add(c) });
                        *a = _mm256_fmadd_pd(wc, xv, *a);
                    }
                }
                for (c, a) in acc.iter().enumerate() {
                    unsafe { _mm256_storeu_pd(o.add(((cb + c) * pixels + pix) * NN), *a) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::builder::CardBuilder;
    use crate::ops::{Op, Scratch};

    /// Input values of `n` samples, deterministic and of both signs.
    fn inputs(len: usize, seed: u64) -> Vec<f64> {
        (0..len).map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f64 - 500.0) / 250.0).collect()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-12 * (1.0 + want.abs())
    }

    /// The vector kernels give the same bits as each other, and the portable one the same values up to the
    /// rounding of separate multiplies and adds, on a block with uneven tap counts per pixel.
    #[test]
    fn every_kernel_agrees() {
        let (in_len, coutp, pixels) = (37, 2 * super::CB, 11);
        let mut taps = super::Taps::default();
        taps.clear();
        for pix in 0..pixels {
            for t in 0..(pix * 3 + 1) {
                taps.k.push((pix + 5 * t) % 13);
                taps.row.push((7 * pix + 3 * t) % in_len);
            }
            taps.close_pixel();
        }
        let xt = inputs(in_len * super::NB, 3);
        let wk = inputs(13 * coutp, 5);
        let run = |f: &dyn Fn(&mut [f64])| {
            let mut ot = vec![0.0; coutp * pixels * super::NB];
            f(&mut ot);
            ot
        };
        let bias = inputs(coutp, 7);
        let portable = run(&|ot| super::block_portable::<{ super::NB }>(&xt, &wk, &bias, coutp, &taps, ot));
        let chosen = run(&|ot| super::block(&xt, &wk, &bias, coutp, &taps, ot));
        for (a, b) in portable.iter().zip(&chosen) {
            assert!(close(*a, *b), "{a} vs {b}");
        }
        // The narrow kernel on the first NN lanes gives those lanes' bits.
        if let Some(narrow) = super::narrow_kernel() {
            let (nb, nn) = (super::NB, super::NN);
            let xt4: Vec<f64> = xt.chunks(nb).flat_map(|row| row[..nn].to_vec()).collect();
            let mut ot4 = vec![0.0; coutp * pixels * nn];
            narrow(&xt4, &wk, &bias, coutp, &taps, &mut ot4);
            let wide: Vec<f64> = chosen.chunks(nb).flat_map(|row| row[..nn].to_vec()).collect();
            assert_eq!(ot4, wide, "the narrow kernel differs from the wide one");
        }
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        {
            use std::arch::is_x86_feature_detected as has;
            // SAFETY: each kernel runs only where the CPU has its features; `block`'s assertions hold for these
            // inputs (it ran above without failing them).
            let avx2 = (has!("avx2") && has!("fma"))
                .then(|| run(&|ot| unsafe { super::x86::block_avx2(&xt, &wk, &bias, coutp, &taps, ot) }));
            let avx512 = has!("avx512f")
                .then(|| run(&|ot| unsafe { super::x86::block_avx512(&xt, &wk, &bias, coutp, &taps, ot) }));
            if let (Some(a), Some(b)) = (&avx2, &avx512) {
                assert_eq!(a, b, "the AVX2 and AVX-512 kernels differ");
            }
            for v in [avx2, avx512].into_iter().flatten() {
                assert_eq!(v, chosen, "the dispatched kernel is not the vector one");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every geometry (channel counts that are not multiples of the channel block, strides, padding wider
        /// than the kernel's reach) and batch sizes on both sides of the point block: the kernel equals the
        /// convolution's definition.
        #[test]
        fn conv2d_is_its_definition(
            cin in 1usize..5, cout in 1usize..12, k in 1usize..5, stride in 1usize..4, pad in 0usize..3,
            h in 3usize..9, w in 3usize..9, n in 1usize..40, seed in any::<u64>(),
        ) {
            prop_assume!(h + 2 * pad >= k && w + 2 * pad >= k);
            let net = CardBuilder::new("c", &[cin, h, w], seed).conv2d(cout, k, stride, pad).network().unwrap();
            let layer = &net.layers()[0];
            let Op::Conv2d { weight, bias, geom: g } = layer.op() else { unreachable!() };
            let x = inputs(n * layer.in_len(), seed);
            let mut out = Vec::new();
            layer.apply(&x, n, &mut out, &mut Scratch::default());
            for s in 0..n {
                for co in 0..cout {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let mut want = bias[co];
                            for ci in 0..cin {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let iy = (oy * stride + ky) as isize - pad as isize;
                                        let ix = (ox * stride + kx) as isize - pad as isize;
                                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                            want += weight[((co * cin + ci) * k + ky) * k + kx]
                                                * x[s * cin * h * w + (ci * h + iy as usize) * w + ix as usize];
                                        }
                                    }
                                }
                            }
                            let got = out[s * layer.out_len() + (co * g.oh + oy) * g.ow + ox];
                            prop_assert!(close(got, want), "sample {s} ({co},{oy},{ox}): {got} vs {want}");
                        }
                    }
                }
            }
        }

        /// A point's output has the same bits whether it is applied alone or in a batch of any size.
        #[test]
        fn outputs_do_not_depend_on_the_batch(
            cin in 1usize..4, cout in 1usize..10, k in 1usize..4, stride in 1usize..3, transposed: bool,
            n in 2usize..40, seed in any::<u64>(),
        ) {
            let builder = CardBuilder::new("b", &[cin, 6, 6], seed);
            let net = if transposed {
                builder.conv_transpose2d(cout, k, stride, 0, 0).network().unwrap()
            } else {
                builder.conv2d(cout, k, stride, 1).network().unwrap()
            };
            let layer = &net.layers()[0];
            let x = inputs(n * layer.in_len(), seed);
            let (mut all, mut one, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
            layer.apply(&x, n, &mut all, &mut scratch);
            for s in 0..n {
                layer.apply(&x[s * layer.in_len()..(s + 1) * layer.in_len()], 1, &mut one, &mut scratch);
                prop_assert_eq!(&one[..], &all[s * layer.out_len()..(s + 1) * layer.out_len()], "point {}", s);
            }
        }

        /// The same for the transposed convolution, against its scatter definition.
        #[test]
        fn conv_transpose2d_is_its_definition(
            cin in 1usize..5, cout in 1usize..12, k in 1usize..5, stride in 1usize..4, pad in 0usize..2,
            opad in 0usize..2, h in 1usize..6, w in 1usize..6, n in 1usize..40, seed in any::<u64>(),
        ) {
            prop_assume!(opad < stride && (h.min(w) - 1) * stride + k + opad > 2 * pad);
            let net = CardBuilder::new("t", &[cin, h, w], seed).conv_transpose2d(cout, k, stride, pad, opad).network();
            // Geometries whose output would be empty are refused when the card is loaded.
            prop_assume!(net.is_ok());
            let net = net.unwrap();
            let layer = &net.layers()[0];
            let Op::ConvTranspose2d { weight, bias, geom: g } = layer.op() else { unreachable!() };
            let x = inputs(n * layer.in_len(), seed);
            let mut out = Vec::new();
            layer.apply(&x, n, &mut out, &mut Scratch::default());
            let plane = g.oh * g.ow;
            let mut want = vec![0.0; n * cout * plane];
            for s in 0..n {
                for co in 0..cout {
                    want[(s * cout + co) * plane..][..plane].fill(bias[co]);
                }
                for ci in 0..cin {
                    for iy in 0..h {
                        for ix in 0..w {
                            let v = x[s * cin * h * w + (ci * h + iy) * w + ix];
                            for co in 0..cout {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let oy = (iy * stride + ky) as isize - pad as isize;
                                        let ox = (ix * stride + kx) as isize - pad as isize;
                                        if oy >= 0 && ox >= 0 && (oy as usize) < g.oh && (ox as usize) < g.ow {
                                            want[(s * cout + co) * plane + oy as usize * g.ow + ox as usize] +=
                                                weight[((ci * cout + co) * k + ky) * k + kx] * v;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                prop_assert!(close(*got, *want), "element {i}: {got} vs {want}");
            }
        }
    }
}
