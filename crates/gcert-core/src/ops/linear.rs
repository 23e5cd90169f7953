//! `y = W·x + b` over a batch of points, with the weights packed once per layer.
//!
//! A general matrix product (`matrixmultiply`) repacks both operands on every call; for the engine's small
//! batches (16 rows per product in a batch of bounds) repacking a 2048 × 100 weight matrix cost more than the
//! products themselves. Here the weights are packed on the layer's first use into panels of [`PANEL`] outputs, each
//! panel `[inputs][PANEL]`, so that one input's weights for a panel are two AVX-512 vectors. The kernel keeps
//! `points × PANEL` accumulators in registers (on AVX2, one half of the panel after the other) over a block of
//! [`KC`] inputs (one broadcast per point and input, one fused multiply-add per point and vector), so a panel's
//! block of weights is reused by every point of the batch while it is in the cache.
//!
//! Every output is its bias followed by one fused multiply-add per input, in input order, whatever the batch
//! size, the block of points it shares, or the instruction set (AVX-512 or AVX2 + FMA): a point's output does
//! not depend on how many points are applied with it, as the convolutions' does not (`conv`'s module notes).
//! Without AVX2 + FMA a plain loop (separate multiply and add) runs.

use std::sync::OnceLock;

/// Outputs per panel: two AVX-512 vectors, four AVX2 ones.
const PANEL: usize = 16;

/// Inputs per block: a panel's block of weights is 32 KiB, so it stays in the cache while every point of a chunk
/// ([`MC`]) uses it.
const KC: usize = 256;

/// Points per chunk: a chunk's block of inputs (128 KiB) and a block of inputs of every panel's weights (32 KiB
/// each) stay in the second-level cache while the chunk runs through the panels.
const MC: usize = 64;

// A chunk is whole blocks of either kernel, so `ys` (the points rounded up to a block) holds every tile.
const _: () = assert!(MC.is_multiple_of(P512) && MC.is_multiple_of(P256));

/// Points per block of the AVX-512 kernel (16 accumulators) and of the AVX2 kernel (also 16); a batch is
/// padded with zero points to whole blocks.
const P512: usize = 8;
const P256: usize = 4;

/// Weights as `[panel][input][PANEL]` and the bias, both zero-padded to whole panels.
#[derive(Debug, Clone)]
pub(super) struct Packed {
    panels: usize,
    w: Vec<f64>,
    bias: Vec<f64>,
}

impl Packed {
    /// `weight` is `[outputs][inputs]`, row-major.
    fn new(weight: &[f64], bias: &[f64], inputs: usize, outputs: usize) -> Packed {
        let panels = outputs.div_ceil(PANEL);
        let mut w = vec![0.0; panels * inputs * PANEL];
        for (o, row) in weight.chunks_exact(inputs).take(outputs).enumerate() {
            let (panel, lane) = (o / PANEL, o % PANEL);
            for (i, &v) in row.iter().enumerate() {
                w[(panel * inputs + i) * PANEL + lane] = v;
            }
        }
        let mut b = bias[..outputs].to_vec();
        b.resize(panels * PANEL, 0.0);
        Packed { panels, w, bias: b }
    }
}

/// The kernel this CPU runs, and how many points it takes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Avx512,
    Avx2,
    Plain,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx2") && has!("fma") {
                return Kernel::Avx512;
            }
            if has!("avx2") && has!("fma") {
                return Kernel::Avx2;
            }
        }
        Kernel::Plain
    }

    fn points(self) -> usize {
        match self {
            Kernel::Avx512 => P512,
            Kernel::Avx2 | Kernel::Plain => P256,
        }
    }
}

/// Buffers of the linear kernel, kept between calls.
#[derive(Debug, Default)]
pub(super) struct LinearScratch {
    /// A block of inputs of a chunk of points, as `[point block][input][points per block]`.
    xp: Vec<f64>,
    /// The outputs, `[point][panels·PANEL]` over the points rounded up to whole blocks.
    ys: Vec<f64>,
}

/// `out[p][o] = bias[o] + Σ_i weight[o][i]·input[p][i]` for the `n` points of `input` (`[n][inputs]`).
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    input: &[f64],
    n: usize,
    weight: &[f64],
    bias: &[f64],
    (inputs, outputs): (usize, usize),
    out: &mut [f64],
    cache: &OnceLock<Box<Packed>>,
    s: &mut LinearScratch,
) {
    assert!(input.len() >= n * inputs && out.len() >= n * outputs, "linear: short buffers");
    assert!(weight.len() >= inputs * outputs && bias.len() >= outputs, "linear: short weights");
    if n == 0 || outputs == 0 {
        return;
    }
    if inputs == 0 {
        for o in out[..n * outputs].chunks_exact_mut(outputs) {
            o.copy_from_slice(&bias[..outputs]);
        }
        return;
    }
    let packed = cache.get_or_init(|| Box::new(Packed::new(weight, bias, inputs, outputs)));
    let kernel = Kernel::detect();
    let pb = kernel.points();
    let width = packed.panels * PANEL;
    // Not cleared: the first block of inputs writes every value (padded points and outputs included).
    s.ys.resize(n.next_multiple_of(pb) * width, 0.0);
    let mut k0 = 0;
    loop {
        let k1 = (k0 + KC).min(inputs);
        let kc = k1 - k0;
        for c0 in (0..n).step_by(MC) {
            let m = MC.min(n - c0);
            let blocks = m.div_ceil(pb);
            // The chunk's block of inputs, each block of points transposed so that a kernel's broadcasts read
            // one line; lanes past the last point are zero.
            s.xp.clear();
            s.xp.resize(blocks * kc * pb, 0.0);
            for block in 0..blocks {
                let (p0, np) = (c0 + block * pb, pb.min(m - block * pb));
                let src = &input[p0 * inputs + k0..(p0 + np - 1) * inputs + k1];
                super::conv::transpose(src, inputs, np, kc, &mut s.xp[block * kc * pb..][..kc * pb], pb);
            }
            for panel in 0..packed.panels {
                let w = &packed.w[(panel * inputs + k0) * PANEL..][..kc * PANEL];
                let bias = (k0 == 0).then(|| &packed.bias[panel * PANEL..][..PANEL]);
                for block in 0..blocks {
                    let xp = &s.xp[block * kc * pb..][..kc * pb];
                    let ys = &mut s.ys[(c0 + block * pb) * width..][..pb * width];
                    run(kernel, Tile { xp, w, kc, bias, col: panel * PANEL, width }, ys);
                }
            }
        }
        k0 = k1;
        if k0 >= inputs {
            break;
        }
    }
    for (o, y) in out[..n * outputs].chunks_exact_mut(outputs).zip(s.ys.chunks_exact(width)) {
        o.copy_from_slice(&y[..outputs]);
    }
}

/// One block of points against one panel over one block of inputs.
struct Tile<'a> {
    /// `[kc][points per block]`.
    xp: &'a [f64],
    /// `[kc][PANEL]`.
    w: &'a [f64],
    kc: usize,
    /// The panel's bias on the first block of inputs (the accumulators start from it), else `None` (they start
    /// from `ys`).
    bias: Option<&'a [f64]>,
    /// The panel's first column in a row of `ys`, and the row's length.
    col: usize,
    width: usize,
}

/// Runs one tile with `kernel`, its accumulators loaded from and stored to `ys` (`[points per block][width]`).
fn run(kernel: Kernel, t: Tile, ys: &mut [f64]) {
    let pb = kernel.points();
    assert!(
        t.xp.len() >= t.kc * pb
            && t.w.len() >= t.kc * PANEL
            && t.col + PANEL <= t.width
            && ys.len() >= pb * t.width
            && t.bias.is_none_or(|b| b.len() >= PANEL),
        "linear: tile out of bounds"
    );
    match kernel {
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: every `Kernel` value of this private module comes from `Kernel::detect`, which found AVX-512F;
        // the assertion above is the kernel's bounds contract.
        Kernel::Avx512 => unsafe { x86::avx512(&t, ys) },
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: every `Kernel` value comes from `Kernel::detect`, which found AVX2 and FMA; the assertion above
        // is the kernel's bounds contract.
        Kernel::Avx2 => unsafe { x86::avx2(&t, ys) },
        _ => {
            for p in 0..pb {
                let acc = &mut ys[p * t.width + t.col..][..PANEL];
                if let Some(b) = t.bias {
                    acc.copy_from_slice(b);
                }
                for i in 0..t.kc {
                    let x = t.xp[i * pb + p];
                    for (a, w) in acc.iter_mut().zip(&t.w[i * PANEL..][..PANEL]) {
                        *a += x * w;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Tile, P256, P512, PANEL};

    /// AVX-512: 8 points × two vectors of accumulators; per input, two weight loads, 8 broadcasts and 16
    /// fused multiply-adds.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, and `t.xp` must hold `kc × 8` values, `t.w` `kc × PANEL`, `ys` 8 rows
    /// of `t.width` with `t.col + PANEL ≤ t.width`, and `t.bias` (if any) `PANEL` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(t: &Tile, ys: &mut [f64]) {
        const P: usize = P512;
        let (x, w, y) = (t.xp.as_ptr(), t.w.as_ptr(), ys.as_mut_ptr());
        // SAFETY (all pointer arithmetic here): bounds per this function's contract.
        let mut acc = [[_mm512_setzero_pd(); 2]; P];
        for (p, a) in acc.iter_mut().enumerate() {
            let src = match t.bias {
                Some(b) => b.as_ptr(),
                None => unsafe { y.add(p * t.width + t.col) },
            };
            *a = unsafe { [_mm512_loadu_pd(src), _mm512_loadu_pd(src.add(8))] };
        }
        for i in 0..t.kc {
            let (wi, xi) = unsafe { (w.add(i * PANEL), x.add(i * P)) };
            let (w0, w1) = unsafe { (_mm512_loadu_pd(wi), _mm512_loadu_pd(wi.add(8))) };
            for (p, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_pd(unsafe { *xi.add(p) });
                a[0] = _mm512_fmadd_pd(xv, w0, a[0]);
                a[1] = _mm512_fmadd_pd(xv, w1, a[1]);
            }
        }
        for (p, a) in acc.iter().enumerate() {
            let dst = unsafe { y.add(p * t.width + t.col) };
            unsafe {
                _mm512_storeu_pd(dst, a[0]);
                _mm512_storeu_pd(dst.add(8), a[1]);
            }
        }
    }

    /// AVX2 with FMA: 4 points × two vectors, one half of the panel after the other (8 accumulators, 2
    /// weight loads and 4 broadcasts per 8 fused multiply-adds: 4 × 4 accumulators with the weights in
    /// registers would need 21 of the 16 vector registers, and spilled), the same products in the same order as
    /// [`avx512`].
    ///
    /// # Safety
    /// As [`avx512`], with 4 points for 8, and AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(t: &Tile, ys: &mut [f64]) {
        const P: usize = P256;
        let (x, w, y) = (t.xp.as_ptr(), t.w.as_ptr(), ys.as_mut_ptr());
        // SAFETY (all pointer arithmetic here): bounds per this function's contract.
        for half in [0, PANEL / 2] {
            let mut acc = [[_mm256_setzero_pd(); 2]; P];
            for (p, a) in acc.iter_mut().enumerate() {
                let src = match t.bias {
                    Some(b) => b.as_ptr(),
                    None => unsafe { y.add(p * t.width + t.col) },
                };
                for (v, q) in a.iter_mut().enumerate() {
                    *q = unsafe { _mm256_loadu_pd(src.add(half + 4 * v)) };
                }
            }
            for i in 0..t.kc {
                let (wi, xi) = unsafe { (w.add(i * PANEL + half), x.add(i * P)) };
                let wv: [__m256d; 2] = std::array::from_fn(|v| unsafe { _mm256_loadu_pd(wi.add(4 * v)) });
                for (p, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_set1_pd(unsafe { *xi.add(p) });
                    for (q, wq) in a.iter_mut().zip(&wv) {
                        *q = _mm256_fmadd_pd(xv, *wq, *q);
                    }
                }
            }
            for (p, a) in acc.iter().enumerate() {
                let dst = unsafe { y.add(p * t.width + t.col + half) };
                for (v, q) in a.iter().enumerate() {
                    unsafe { _mm256_storeu_pd(dst.add(4 * v), *q) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(inputs: usize, outputs: usize, n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let w: Vec<f64> = (0..inputs * outputs).map(|i| ((i * 7919 % 211) as f64 - 105.0) / 97.0).collect();
        let b: Vec<f64> = (0..outputs).map(|o| o as f64 * 0.25 - 1.0).collect();
        let x: Vec<f64> = (0..n * inputs).map(|i| ((i * 104_729 % 173) as f64 - 86.0) / 31.0).collect();
        (w, b, x)
    }

    fn run(w: &[f64], b: &[f64], x: &[f64], (inputs, outputs): (usize, usize), n: usize) -> Vec<f64> {
        let mut out = vec![f64::NAN; n * outputs];
        linear(x, n, w, b, (inputs, outputs), &mut out, &OnceLock::new(), &mut LinearScratch::default());
        out
    }

    /// Every output is its bias plus one fused multiply-add per input in input order (a plain multiply and add
    /// where the CPU has neither AVX2 nor AVX-512), across block edges of inputs, outputs, points and chunks of
    /// points, and with no inputs at all.
    #[test]
    fn matches_a_sequential_sum() {
        let fma = Kernel::detect() != Kernel::Plain;
        for (inputs, outputs, n) in
            [(1, 1, 1), (3, 17, 5), (300, 33, 11), (600, 100, 32), (5, 16, 9), (270, 20, 133), (0, 3, 2)]
        {
            let (w, b, x) = case(inputs, outputs, n);
            let got = run(&w, &b, &x, (inputs, outputs), n);
            for p in 0..n {
                for o in 0..outputs {
                    let mut want = b[o];
                    for i in 0..inputs {
                        let (xv, wv) = (x[p * inputs + i], w[o * inputs + i]);
                        want = if fma { xv.mul_add(wv, want) } else { want + xv * wv };
                    }
                    assert_eq!(
                        got[p * outputs + o].to_bits(),
                        want.to_bits(),
                        "{inputs}→{outputs}, point {p}"
                    );
                }
            }
        }
    }

    /// A point's outputs have the same bits whichever points are applied with it.
    #[test]
    fn a_point_does_not_depend_on_its_batch() {
        let (inputs, outputs, n) = (520, 40, 13);
        let (w, b, x) = case(inputs, outputs, n);
        let all = run(&w, &b, &x, (inputs, outputs), n);
        for p in 0..n {
            let one = run(&w, &b, &x[p * inputs..(p + 1) * inputs], (inputs, outputs), 1);
            assert_eq!(one, all[p * outputs..(p + 1) * outputs]);
        }
    }
}
