//! Convolution and transposed convolution as one gather kernel over blocks of points.
//!
//! The engine applies a layer to many points at once (the breakpoints of a segment). Both convolutions are, for
//! each output pixel, a sum over taps `(k, r)`: weight row `k` (one input channel and kernel offset) times input
//! element `r`. Rather than unfold every point's input into a `K × pixels` matrix (im2col, one copy per tap per
//! point, which costs more than the arithmetic when a layer has few output channels), the kernel transposes a
//! block of points so that each input element's values for the block are contiguous, then for each output pixel
//! and each group of output channels accumulates `channels × points` products per tap in registers: one vector
//! load per 8 points, one broadcast weight per channel, one fused multiply-add per channel and vector. The
//! per-pixel tap lists are the only place where the two layer kinds differ.
//!
//! The register blocking follows the layer's output channels ([`Blocking`]): 8 channels × 16 points for wide
//! layers, and for the narrow ones (a generator's last layers have 4 channels or 1) fewer channels × more points,
//! so that no accumulator is spent on a padding channel and enough of them stay in flight to keep the
//! multiply-add units busy. The transposes into and out of a block move 8 × 8 tiles through AVX-512 registers,
//! or 4 × 4 tiles through AVX2 ones.
//!
//! The kernel is written with explicit AVX-512 and AVX2 + FMA instructions (the same fused products in the same
//! order, so both give the same bits) and chosen per call from the CPU's features; elsewhere a plain version
//! (separate multiply and add) runs. The order of operations is fixed, so a machine always gives the same bits,
//! whatever else a binary links — and whatever the batch: each point is one lane of the block, computed by the
//! same products in the same order whichever points share its block, however many lanes the block has and
//! however its channels are grouped, so a point's output does not depend on how many points are applied with it
//! (the engine's chunking, the hybrid's sub-segments and the full chain must agree to the last bit).
//!
//! A block of at most [`NN`] points (one forward pass, the two ends of a bound) runs in a kernel of `NN` lanes
//! with the same products in the same order, so its lanes have the wide kernel's bits at a fraction of the work.
//! The tap lists and packed weights (the plan) are built on a layer's first use and kept with the layer.
//!
//! A convolution with a row stride of 1 or 2 and rows of at least 8 output pixels runs instead, on AVX-512, in a
//! direct kernel ([`direct_fits`]): each point in its own layout, 8 output pixels of a row per vector, the taps
//! that fall outside the input skipped lane by lane by masks. Its sums are the gather kernels' (same products,
//! same order, fused), so a point's bits do not depend on which kernel ran; it saves the transposes, which cost
//! more than the products where a layer has few taps per pixel. Without AVX-512, an AVX2 + FMA version (4 pixels
//! per vector, masked loads and blends) takes the layers with at most 32 taps per pixel ([`direct_avx2_fits`]).

use std::sync::OnceLock;

use super::{ConvGeom, Scratch};

/// Points per block of the narrow kernel, for the few points of a probe or of a bound's two ends (a wide block
/// would compute 16 lanes or more for them).
const NN: usize = 4;

/// The register blocking of one layer: groups of `channels` output channels, blocks of at most `lanes` points.
/// The products of a lane do not depend on it; only the speed does.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Blocking {
    channels: usize,
    lanes: usize,
}

impl Blocking {
    /// 8 channels × 16 points where a layer has 5 output channels or more; below that, the channel count rounded
    /// up to a power of two and 32 points, so that no accumulator is spent on a padding channel and at least 4
    /// vectors of them are in flight (the latency of a fused multiply-add, at one per cycle). Measured on the
    /// target composition's 1-channel layer, 64 points were no faster at 512 points and slower at 32.
    fn for_channels(cout: usize) -> Blocking {
        let (channels, lanes) = match cout {
            1 => (1, 32),
            2 => (2, 32),
            3 | 4 => (4, 32),
            _ => (8, 16),
        };
        Blocking { channels, lanes }
    }
}

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
    blocking: Blocking,
    /// The output channels rounded up to a multiple of the blocking's channels.
    coutp: usize,
    /// Weights as `[K, coutp]`.
    wk: Vec<f64>,
    /// The bias, zero-padded to `coutp`.
    bias: Vec<f64>,
    /// Whether the layer runs in the direct kernel ([`direct_fits`]) rather than the gather kernel.
    direct: bool,
}

impl Plan {
    /// A plan with its blocking, padded bias and zeroed weights; `build` fills the taps and weights.
    fn new(g: &ConvGeom, bias: &[f64], build: impl FnOnce(&mut Plan)) -> Plan {
        let blocking = Blocking::for_channels(g.cout);
        let coutp = g.cout.next_multiple_of(blocking.channels);
        let mut bias = bias[..g.cout].to_vec();
        bias.resize(coutp, 0.0);
        let mut plan = Plan {
            taps: Taps::default(),
            blocking,
            coutp,
            wk: vec![0.0; rows(g) * coutp],
            bias,
            direct: false,
        };
        build(&mut plan);
        plan
    }
}

/// Buffers of the gather kernel, kept between calls.
#[derive(Debug, Default)]
pub(super) struct ConvScratch {
    /// One block of points, transposed: `[in_len, lanes]`.
    xt: Vec<f64>,
    /// One block of outputs: `[coutp, pixels, lanes]`.
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
    cache: &OnceLock<Box<Plan>>,
    scratch: &mut Scratch,
) {
    let plan = cache.get_or_init(|| Box::new(Plan::new(g, bias, |p| conv2d_plan(weight, g, p))));
    if plan.direct {
        direct(input, n, g, plan, out);
    } else {
        gather(input, n, g.cin * g.h * g.w, g.cout, g.oh * g.ow, plan, &mut scratch.conv, out);
    }
}

/// The tap lists and transposed weights of a convolution.
fn conv2d_plan(weight: &[f64], g: &ConvGeom, s: &mut Plan) {
    let k_len = rows(g);
    // Output `o` reads input `o·stride + k − pad` along each axis.
    s.taps.build(g, |o, k, stride, pad, len| (o * stride + k).checked_sub(pad).filter(|&v| v < len));
    s.direct = direct_fits(g);
    for co in 0..g.cout {
        for k in 0..k_len {
            s.wk[k * s.coutp + co] = weight[co * k_len + k];
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
    cache: &OnceLock<Box<Plan>>,
    scratch: &mut Scratch,
) {
    let plan = cache.get_or_init(|| Box::new(Plan::new(g, bias, |p| conv_transpose2d_plan(weight, g, p))));
    gather(input, n, g.cin * g.h * g.w, g.cout, g.oh * g.ow, plan, &mut scratch.conv, out);
}

/// The tap lists (gathered per output pixel) and transposed weights of a transposed convolution.
fn conv_transpose2d_plan(weight: &[f64], g: &ConvGeom, s: &mut Plan) {
    // The input index along one axis that reaches output `o` through kernel offset `k`, if any.
    s.taps.build(g, |o, k, stride, pad, len| {
        (o + pad).checked_sub(k).filter(|v| v.is_multiple_of(stride)).map(|v| v / stride).filter(|&v| v < len)
    });
    let kk = g.kh * g.kw;
    for ci in 0..g.cin {
        for co in 0..g.cout {
            for t in 0..kk {
                s.wk[(ci * kk + t) * s.coutp + co] = weight[(ci * g.cout + co) * kk + t];
            }
        }
    }
}

/// Whether a convolution runs in the direct kernel: one that computes each point in its own layout, 8 output
/// pixels of a row per vector, instead of transposing blocks of points in and out of the gather kernel. It
/// needs AVX-512 (its masked loads and fused multiply-adds skip the taps that fall outside the input, lane by
/// lane, so each output is the same sum in the same order as in the gather kernels: the same bits), kernels up
/// to 8 wide, a stride of 1 or 2 along rows (a stride of 2 loads 16 values and keeps the even ones), and rows of
/// at least 8 output pixels (a vector holds 8 pixels of one row: on the random benches' classifier, a layer with
/// 4-pixel rows ran at 28 GFLOP/s in it and a 1-pixel one at 4, where the gather kernel fills its lanes with other
/// points); with a stride of 2, rows of more than 8 output pixels or output channels in groups of 16 (else 8
/// accumulators are too few to keep the multiply-add units busy). On the trained MNIST classifier the 1-channel
/// first layer went from 15–18% of the GEMM rate in the gather kernel to 34–46%, the 16-channel 3 × 3 layer from
/// 74–83% to 89–103%, the two stride-2 layers about even (docs/performance.md).
///
/// Without AVX-512, the AVX2 + FMA version ([`direct_avx2_fits`]) holds 4 pixels per vector.
fn direct_fits(g: &ConvGeom) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return direct_avx512_fits(g);
        }
        direct_avx2_fits(g)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = g;
        false
    }
}

/// The AVX-512 direct kernel's rule ([`direct_fits`]), whatever the CPU.
fn direct_avx512_fits(g: &ConvGeom) -> bool {
    let stride = g.stride[1] == 1 || (g.stride[1] == 2 && (g.ow > 8 || g.cout.is_multiple_of(16)));
    stride && g.kw <= 8 && g.ow >= 8
}

/// The AVX2 + FMA direct kernel's rule: rows of at least 4 output pixels (a vector), a row stride of 1 or 2,
/// kernels up to 8 wide, and at most 32 taps per output pixel (`cin·kh·kw`): a first layer. The taps outside
/// the input are skipped by masked loads and blends, so the sums are the gather kernels' (the same bits). With
/// 16 vector registers the AVX2 kernel keeps 8 accumulators, half the AVX-512 one's; measured with AVX2 on the
/// AVX-512 machine (docs/performance.md), it ran the one-channel first layers at 3–4 times the gather kernel's
/// rate, the 16-channel 3 × 3 layer at the same rate and the stride-2 layers with many taps slower.
fn direct_avx2_fits(g: &ConvGeom) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let shape = matches!(g.stride[1], 1 | 2) && g.kw <= 8 && g.ow >= 4 && g.cin * g.kh * g.kw <= 32;
        has!("avx2") && has!("fma") && shape
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = g;
        false
    }
}

/// The direct kernel over `n` points (see [`direct_fits`]): `out[point][co·oh·ow + oy·ow + ox]`.
fn direct(input: &[f64], n: usize, g: &ConvGeom, plan: &Plan, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    direct_run(input, n, g, plan, out, std::arch::is_x86_feature_detected!("avx512f"));
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (input, n, g, plan, out);
        unreachable!("the direct kernel is only chosen on x86-64")
    }
}

/// [`direct`] in its AVX-512 kernels (`wide`) or its AVX2 + FMA ones.
#[cfg(target_arch = "x86_64")]
fn direct_run(input: &[f64], n: usize, g: &ConvGeom, plan: &Plan, out: &mut [f64], wide: bool) {
    let (in_len, out_len) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    assert!(input.len() >= n * in_len && out.len() >= n * out_len, "the batch does not fit the buffers");
    assert!(plan.wk.len() >= rows(g) * plan.coutp && plan.bias.len() >= plan.coutp, "the plan is too short");
    assert!(
        plan.coutp.is_multiple_of(plan.blocking.channels) && g.kw <= 8 && matches!(g.stride[1], 1 | 2),
        "the plan does not fit the kernel"
    );
    type Direct = unsafe fn(&[f64], &ConvGeom, &Plan, &mut [f64]);
    let kernel: Direct = if wide {
        assert!(std::arch::is_x86_feature_detected!("avx512f"));
        // A group of 16 channels (below) needs the padded channels to be a multiple of 16.
        assert!(g.ow > 8 || !g.cout.is_multiple_of(16) || plan.coutp.is_multiple_of(16));
        // Groups of 8 channels take 2 vectors of a row; where the rows are no longer than one vector (a second
        // would be all padding), groups of 16 channels take 1, or groups of 8 where the channels do not split
        // into 16s; fewer channels take 4 vectors.
        match (plan.blocking.channels, g.stride[1], g.ow <= 8) {
            (1, 1, _) => x86::direct_avx512::<1, 4, 1>,
            (1, _, _) => x86::direct_avx512::<1, 4, 2>,
            (2, 1, _) => x86::direct_avx512::<2, 4, 1>,
            (2, _, _) => x86::direct_avx512::<2, 4, 2>,
            (4, 1, _) => x86::direct_avx512::<4, 4, 1>,
            (4, _, _) => x86::direct_avx512::<4, 4, 2>,
            (_, 1, false) => x86::direct_avx512::<8, 2, 1>,
            (_, 1, true) if g.cout.is_multiple_of(16) => x86::direct_avx512::<16, 1, 1>,
            (_, 1, true) => x86::direct_avx512::<8, 1, 1>,
            (_, _, false) => x86::direct_avx512::<8, 2, 2>,
            (_, _, true) if g.cout.is_multiple_of(16) => x86::direct_avx512::<16, 1, 2>,
            (_, _, true) => x86::direct_avx512::<8, 1, 2>,
        }
    } else {
        use std::arch::is_x86_feature_detected as has;
        assert!(has!("avx2") && has!("fma"));
        // 8 accumulators of 16 registers: 8 channels × 1 vector where a row is one vector, else 4 × 2; fewer
        // channels take more vectors.
        match (plan.blocking.channels, g.stride[1], g.ow <= 4) {
            (1, 1, _) => x86::direct_avx2::<1, 8, 1>,
            (1, _, _) => x86::direct_avx2::<1, 8, 2>,
            (2, 1, _) => x86::direct_avx2::<2, 4, 1>,
            (2, _, _) => x86::direct_avx2::<2, 4, 2>,
            (_, 1, true) if plan.blocking.channels >= 8 => x86::direct_avx2::<8, 1, 1>,
            (_, _, true) if plan.blocking.channels >= 8 => x86::direct_avx2::<8, 1, 2>,
            (_, 1, _) => x86::direct_avx2::<4, 2, 1>,
            (_, _, _) => x86::direct_avx2::<4, 2, 2>,
        }
    };
    for (x, o) in input.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)).take(n) {
        #[allow(unsafe_code)]
        // SAFETY: the CPU supports the kernel's instructions and its stride is the layer's row stride (asserted
        // and matched above); `x` holds one point's input and `o` its output, and the plan's weights and bias
        // are as long as the assertions above say, its padded channels a multiple of the kernel's group: what
        // `x86::direct_avx512` and `x86::direct_avx2` require.
        unsafe {
            kernel(x, g, plan, o)
        }
    }
}

/// Runs the taps over `n` points, a block of the plan's lanes at a time (a block of at most [`NN`] points in
/// the narrow kernel, a short one in as many lanes as the wide kernel needs), writing
/// `out[point][co·pixels + pixel]`. Each block's pixels are computed a chunk at a time and transposed out while
/// the chunk is still in the cache.
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
    let Blocking { channels, lanes } = plan.blocking;
    let (wide, step) = wide_kernel(channels);
    let narrow = narrow_kernel(channels);
    let out_len = cout * pixels;
    let few = point_kernel(plan.coutp);
    for first in (0..n).step_by(lanes) {
        let m = lanes.min(n - first);
        if let Some(kernel) = few.filter(|_| m <= FEW) {
            // A point at a time, its channels in the vectors: no transposes, no idle lanes.
            for j in first..first + m {
                kernel(
                    &input[j * in_len..][..in_len],
                    plan,
                    (cout, pixels),
                    &mut out[j * out_len..][..out_len],
                );
            }
            continue;
        }
        let (l, kernel) = match narrow {
            Some(kernel) if m <= NN => (NN, kernel),
            _ => (m.next_multiple_of(step), wide),
        };
        let (input, out) = (&input[first * in_len..], &mut out[first * out_len..][..m * out_len]);
        // The block's points, transposed into `xt[row][lane]`; lanes past `m` are zero. Both buffers start on a
        // 64-byte line, so that a kernel's loads and stores of a row's lanes do not straddle lines.
        let xt = aligned(&mut s.xt, in_len * l);
        transpose(&input[..m * in_len], in_len, m, in_len, xt, l);
        if m < l {
            for row in xt.chunks_exact_mut(l) {
                row[m..].fill(0.0);
            }
        }
        let chunk = pixel_chunk(plan.coutp, l);
        let ot = aligned(&mut s.ot, plan.coutp * chunk.min(pixels) * l);
        for p0 in (0..pixels).step_by(chunk) {
            let np = chunk.min(pixels - p0);
            let ot = &mut ot[..plan.coutp * np * l];
            kernel(&Block { xt, plan, pixels: (p0, p0 + np), lanes: l }, ot);
            // `ot[(co·np + pixel − p0)·l + j]`: channel `co`'s rows go to `out[j][co·pixels + p0..]`.
            for (co, rows) in ot.chunks_exact(np * l).take(cout).enumerate() {
                transpose(rows, l, np, m, &mut out[co * pixels + p0..], out_len);
            }
        }
    }
}

/// `len` values of `buf` that start on a 64-byte line (the buffer grows by up to 7 values to hold them).
fn aligned(buf: &mut Vec<f64>, len: usize) -> &mut [f64] {
    buf.resize(len + 7, 0.0);
    let skip = buf.as_ptr().align_offset(64).min(7);
    &mut buf[skip..skip + len]
}

/// Pixels per chunk of a block: a multiple of 8 (the transposes' tile) whose `coutp × lanes` outputs take about
/// 16 KiB, half a first-level data cache (8 KiB and 64 KiB measured slower on the target composition).
fn pixel_chunk(coutp: usize, lanes: usize) -> usize {
    const BYTES: usize = 16 << 10;
    (BYTES / (coutp * lanes * std::mem::size_of::<f64>())).max(8) / 8 * 8
}

/// `dst[c·dst_stride + r] = src[r·src_stride + c]` for `r < rows`, `c < cols`: 8 × 8 tiles through vector
/// registers where the CPU has AVX-512, 4 × 4 tiles where it has AVX2, the edges (and every tile elsewhere) one
/// value at a time. A copy, so the values have the same bits either way. Without the AVX2 tiles, the transposes
/// took a third of the transposed convolutions' time on an AVX2-only CPU (docs/performance.md).
pub(super) fn transpose(
    src: &[f64],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f64],
    dst_stride: usize,
) {
    transpose_in(Tiles::cpu(), src, src_stride, rows, cols, dst, dst_stride);
}

/// The vector tiles [`transpose`] moves: 8 × 8 through AVX-512 registers, 4 × 4 through AVX2 ones, or none
/// (one value at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tiles {
    Avx512,
    Avx2,
    Scalar,
}

impl Tiles {
    /// The widest tiles this CPU runs.
    fn cpu() -> Tiles {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Tiles::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Tiles::Avx2;
            }
        }
        Tiles::Scalar
    }

    /// The side of a tile (1: no tiles).
    fn side(self) -> usize {
        match self {
            Tiles::Avx512 => 8,
            Tiles::Avx2 => 4,
            Tiles::Scalar => 1,
        }
    }
}

/// [`transpose`] with the given tiles, which the CPU must run.
fn transpose_in(
    tiles: Tiles,
    src: &[f64],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f64],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(cols <= src_stride && (rows - 1) * src_stride + cols <= src.len(), "the source is too short");
    assert!(
        rows <= dst_stride && (cols - 1) * dst_stride + rows <= dst.len(),
        "the destination is too short"
    );
    // The rows and columns the tiles cover (none without tiles).
    let (rt, ct) = match tiles.side() {
        1 => (0, 0),
        side => (rows - rows % side, cols - cols % side),
    };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        match tiles {
            Tiles::Avx512 => {
                assert!(has!("avx512f"), "AVX-512 tiles on a CPU without AVX-512F");
                #[allow(unsafe_code)]
                // SAFETY: the CPU supports AVX-512F (asserted just above). The tiles read rows below rt ≤ rows
                // at columns below ct ≤ cols, inside `src` by the first assertion, and write rows below ct at
                // columns below rt, inside `dst` by the second; both are multiples of 8.
                unsafe {
                    x86::tiles(s, src_stride, (rt, ct), d, dst_stride)
                }
            }
            Tiles::Avx2 => {
                assert!(has!("avx2"), "AVX2 tiles on a CPU without AVX2");
                #[allow(unsafe_code)]
                // SAFETY: as above, with AVX and multiples of 4.
                unsafe {
                    x86::tiles_avx2(s, src_stride, (rt, ct), d, dst_stride)
                }
            }
            Tiles::Scalar => {}
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    assert_eq!(tiles, Tiles::Scalar, "vector tiles off x86-64");
    // What the tiles left: the columns past ct of the tiled rows, and every column of the rows past rt.
    for r in 0..rows {
        let from = if r < rt { ct } else { 0 };
        for (c, v) in src[r * src_stride + from..r * src_stride + cols].iter().enumerate() {
            dst[(from + c) * dst_stride + r] = *v;
        }
    }
}

/// What a kernel reads for one block of points: the points' inputs transposed, `xt[row][lane]`, the layer's
/// plan, and the output pixels `first..end` to compute. It writes `ot[(co·np + pixel − first)·lanes + lane]`,
/// `np = end − first`.
#[derive(Clone, Copy)]
struct Block<'a> {
    xt: &'a [f64],
    plan: &'a Plan,
    pixels: (usize, usize),
    lanes: usize,
}

/// A kernel over one block.
type Kernel = fn(&Block, &mut [f64]);

/// The wide kernel for groups of `channels` output channels on this CPU, and the multiple of points its blocks
/// must have.
fn wide_kernel(channels: usize) -> (Kernel, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return match channels {
                1 => (wide_avx512::<1, 4>, 32),
                2 => (wide_avx512::<2, 4>, 32),
                4 => (wide_avx512::<4, 4>, 32),
                _ => (wide_avx512::<8, 2>, 16),
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return wide_avx2_kernel(channels);
        }
    }
    (block_portable, 1)
}

/// The AVX2 + FMA wide kernel for groups of `channels` output channels, and the multiple of points its blocks
/// must have: 8 accumulators of the 16 vector registers. On wide layers, 4 channels × 8 points were 5–13%
/// faster than 2 × 16 on the target case (AVX2-only EPYC, `hybrid_only`), and 4 × 12 (12 accumulators) with
/// the rest of a 16-point block in 8 × 4 slower than either: the rest ran at half the speed per point.
#[cfg(target_arch = "x86_64")]
fn wide_avx2_kernel(channels: usize) -> (Kernel, usize) {
    match channels {
        1 => (wide_avx2::<1, 8>, 32),
        2 => (wide_avx2::<2, 4>, 16),
        _ => (wide_avx2::<4, 2>, 8),
    }
}

/// Blocks of at most this many points run a point at a time in [`point_kernel`] where there is one: with 1–3
/// points the narrow kernel's vectors of 4 lanes are mostly idle.
const FEW: usize = 3;

/// A kernel over one point's input, writing its `cout × pixels` outputs.
type PointKernel = fn(&[f64], &Plan, (usize, usize), &mut [f64]);

/// The kernel over one point with its output channels in the vectors (AVX2 + FMA, `coutp` a multiple of 4),
/// for blocks of at most [`FEW`] points: each output starts at the bias and takes its taps in the plan's order
/// by fused multiply-adds, exactly as a lane of the block kernels does, so it gives their bits.
fn point_kernel(coutp: usize) -> Option<PointKernel> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return match coutp {
                c if c.is_multiple_of(32) => Some(point_avx2::<8>),
                c if c.is_multiple_of(16) => Some(point_avx2::<4>),
                c if c.is_multiple_of(8) => Some(point_avx2::<2>),
                c if c.is_multiple_of(4) => Some(point_avx2::<1>),
                _ => None,
            };
        }
    }
    let _ = coutp;
    None
}

/// [`point_kernel`]'s AVX2 kernel over groups of `4·G` channels, after checking every index it reads or writes.
#[cfg(target_arch = "x86_64")]
fn point_avx2<const G: usize>(x: &[f64], plan: &Plan, (cout, pixels): (usize, usize), out: &mut [f64]) {
    let Plan { taps, coutp, wk, bias, .. } = plan;
    assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
    assert!(coutp.is_multiple_of(4 * G) && cout <= *coutp && bias.len() >= *coutp, "the plan does not fit");
    assert!(pixels < taps.start.len() && out.len() >= cout * pixels, "the output is outside the layer");
    assert!(taps.max_row < x.len() && (taps.max_k + 1) * coutp <= wk.len(), "a tap reads outside");
    #[allow(unsafe_code)]
    // SAFETY: the CPU supports AVX2 and FMA, and the checks above bound every offset `point_avx2` forms.
    unsafe {
        x86::point_avx2::<G>(x, plan, (cout, pixels), out)
    }
}

/// The kernel for blocks of at most [`NN`] points, when one gives the same bits as the wide kernel on this CPU:
/// a point's lane is computed by the same products in the same order in both, fused where the wide kernel
/// fuses them.
fn narrow_kernel(channels: usize) -> Option<Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // The AVX2 kernel over one vector of points: its lanes are the wide kernels' lanes, product by product.
            return Some(match channels {
                1 => wide_avx2::<1, 1>,
                2 => wide_avx2::<2, 1>,
                4 => wide_avx2::<4, 1>,
                _ => wide_avx2::<8, 1>,
            });
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // The wide kernel fuses; without AVX2 + FMA no narrow kernel can.
            return None;
        }
    }
    Some(block_portable)
}

/// Every index a kernel over groups of `channels` channels, `step` lanes at a time, reads or writes lies inside
/// the block's slices and `ot` (checked once per block, not per tap).
fn check_block(b: &Block, ot: &[f64], channels: usize, step: usize) {
    let Plan { taps, coutp, wk, bias, .. } = b.plan;
    let (first, end) = b.pixels;
    assert!(first <= end && end < taps.start.len(), "the pixels are outside the layer");
    assert!(
        b.lanes.is_multiple_of(step) && coutp.is_multiple_of(channels),
        "the block does not fit the kernel"
    );
    assert!((taps.max_row + 1) * b.lanes <= b.xt.len(), "a tap reads outside the block");
    assert!((taps.max_k + 1) * coutp <= wk.len(), "a tap reads outside the weights");
    assert!(coutp * (end - first) * b.lanes <= ot.len(), "the output block is too small");
    assert!(bias.len() >= *coutp, "the bias is too short");
}

/// The AVX-512 kernel over groups of `C` channels and `8·V` lanes.
#[cfg(target_arch = "x86_64")]
fn wide_avx512<const C: usize, const V: usize>(b: &Block, ot: &mut [f64]) {
    check_block(b, ot, C, 8 * V);
    assert!(std::arch::is_x86_feature_detected!("avx512f"));
    #[allow(unsafe_code)]
    // SAFETY: the CPU supports AVX-512F (asserted just above), and `check_block` proves every pointer offset
    // `block_avx512` forms lies inside the block's slices and `ot`.
    unsafe {
        x86::block_avx512::<C, V>(b, ot)
    }
}

/// The AVX2 + FMA kernel over groups of `C` channels and `4·V` lanes.
#[cfg(target_arch = "x86_64")]
fn wide_avx2<const C: usize, const V: usize>(b: &Block, ot: &mut [f64]) {
    check_block(b, ot, C, 4 * V);
    assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
    #[allow(unsafe_code)]
    // SAFETY: the CPU supports AVX2 and FMA (asserted just above), and `check_block` proves every pointer
    // offset `block_avx2` forms lies inside the block's slices and `ot`.
    unsafe {
        x86::block_avx2::<C, V>(b, ot)
    }
}

/// The kernel without vector instructions (separate multiply and add), one channel at a time over any number
/// of lanes.
fn block_portable(b: &Block, ot: &mut [f64]) {
    check_block(b, ot, 1, 1);
    let Plan { taps, coutp, wk, bias, .. } = b.plan;
    let ((first, end), lanes) = (b.pixels, b.lanes);
    for pix in first..end {
        let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
        for c in 0..*coutp {
            let acc = &mut ot[(c * (end - first) + pix - first) * lanes..][..lanes];
            acc.fill(bias[c]);
            for (&k, &r) in taps.k[lo..hi].iter().zip(&taps.row[lo..hi]) {
                let w = wk[k * coutp + c];
                for (a, x) in acc.iter_mut().zip(&b.xt[r * lanes..(r + 1) * lanes]) {
                    *a += w * x;
                }
            }
        }
    }
}

/// The kernels with explicit vector instructions. All keep a group of channels × a group of lanes of
/// accumulators in registers over a pixel's taps and use fused multiply-adds in the same order, so they give the
/// same bits.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Block, ConvGeom, Plan};

    /// AVX-512: per tap and group of `8·V` lanes, `V` loads of the points' values and `C·V` fused
    /// multiply-adds with broadcast weights.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, and `check_block(b, ot, C, 8·V)` must hold: then every tap's row, weight
    /// and output offset lies inside `b.xt`, the plan's weights and `ot`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_avx512<const C: usize, const V: usize>(b: &Block, ot: &mut [f64]) {
        let Plan { taps, coutp, wk, bias, .. } = b.plan;
        let ((first, end), lanes) = (b.pixels, b.lanes);
        let (coutp, np) = (*coutp, end - first);
        let (x, w, o) = (b.xt.as_ptr(), wk.as_ptr(), ot.as_mut_ptr());
        for pix in first..end {
            let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
            let (ks, rows) = (&taps.k[lo..hi], &taps.row[lo..hi]);
            for lane0 in (0..lanes).step_by(8 * V) {
                for cb in (0..coutp).step_by(C) {
                    let mut acc = [[_mm512_setzero_pd(); V]; C];
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a = [_mm512_set1_pd(bias[cb + c]); V];
                    }
                    for (&k, &r) in ks.iter().zip(rows) {
                        // SAFETY (all pointer arithmetic here): bounds per this function's contract.
                        let xr = unsafe { x.add(r * lanes + lane0) };
                        let mut xv = [_mm512_setzero_pd(); V];
                        for (v, xq) in xv.iter_mut().enumerate() {
                            *xq = unsafe { _mm512_loadu_pd(xr.add(8 * v)) };
                        }
                        let wrow = unsafe { w.add(k * coutp + cb) };
                        for (c, a) in acc.iter_mut().enumerate() {
                            let wc = _mm512_set1_pd(unsafe { *wrow.add(c) });
                            for (aq, xq) in a.iter_mut().zip(&xv) {
                                *aq = _mm512_fmadd_pd(wc, *xq, *aq);
                            }
                        }
                    }
                    for (c, a) in acc.iter().enumerate() {
                        let dst = unsafe { o.add(((cb + c) * np + pix - first) * lanes + lane0) };
                        for (v, aq) in a.iter().enumerate() {
                            unsafe { _mm512_storeu_pd(dst.add(8 * v), *aq) };
                        }
                    }
                }
            }
        }
    }

    /// The direct kernel over one point, for a row stride `S` of 1 or 2: for each output row, group of `C`
    /// channels and `8·V` pixels of the row, the accumulators start at the bias and take the taps in the gather
    /// kernels' order (input channel, kernel row, kernel column), skipping rows outside the input and, by masks,
    /// the lanes whose column is outside it. With `S = 2` a vector's inputs are the even ones of 16 consecutive
    /// values, loaded as two vectors and permuted.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `g.stride[1] == S` and `g.kw ≤ 8`; `x` holds `cin·h·w` values and `o`
    /// `cout·oh·ow`; the plan's weights hold `cin·kh·kw·coutp` and its bias `coutp`, a multiple of `C`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn direct_avx512<const C: usize, const V: usize, const S: usize>(
        x: &[f64],
        g: &ConvGeom,
        plan: &Plan,
        o: &mut [f64],
    ) {
        let Plan { coutp, wk, bias, .. } = plan;
        let coutp = *coutp;
        let (w, ow, pw) = (g.w as isize, g.ow as isize, g.padding[1] as isize);
        // Masks per vector and kernel column: the lanes whose output pixel exists and whose input column is
        // inside the row.
        let mut masks = [[0u8; 8]; V];
        // With S = 2, the masks of the two loads: lane j's input is value 2j of the 16.
        let mut halves = [[(0u8, 0u8); 8]; V];
        let spread = |m: u8| (0..4).fold(0u8, |bits, j| bits | (((m >> j) & 1) << (2 * j)));
        let even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
        for ox0 in (0..g.ow).step_by(8 * V) {
            for (v, m) in masks.iter_mut().enumerate() {
                for (kx, mk) in m.iter_mut().enumerate().take(g.kw) {
                    *mk = (0..8).fold(0u8, |bits, j| {
                        let ox = (ox0 + 8 * v + j) as isize;
                        let ix = S as isize * ox + kx as isize - pw;
                        bits | (u8::from(ox < ow && ix >= 0 && ix < w) << j)
                    });
                    halves[v][kx] = (spread(*mk), spread(*mk >> 4));
                }
            }
            for oy in 0..g.oh {
                let iy0 = (oy * g.stride[0]) as isize - g.padding[0] as isize;
                for cb in (0..g.cout).step_by(C) {
                    let mut acc = [[_mm512_setzero_pd(); V]; C];
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a = [_mm512_set1_pd(bias[cb + c]); V];
                    }
                    for ci in 0..g.cin {
                        for ky in 0..g.kh {
                            let iy = iy0 + ky as isize;
                            if iy < 0 || iy >= g.h as isize {
                                continue;
                            }
                            let row = (ci * g.h + iy as usize) * g.w + S * ox0;
                            for kx in 0..g.kw {
                                let k = (ci * g.kh + ky) * g.kw + kx;
                                let mut xv = [_mm512_setzero_pd(); V];
                                for (v, xq) in xv.iter_mut().enumerate() {
                                    // The lanes outside the row are masked: neither read nor added.
                                    let p =
                                        x.as_ptr().wrapping_add(row + S * 8 * v + kx).wrapping_offset(-pw);
                                    // SAFETY: the lanes the masks keep read input columns inside the row, so
                                    // inside `x`.
                                    *xq = if S == 1 {
                                        unsafe { _mm512_maskz_loadu_pd(masks[v][kx], p) }
                                    } else {
                                        let (lo, hi) = halves[v][kx];
                                        let lo = unsafe { _mm512_maskz_loadu_pd(lo, p) };
                                        let hi = unsafe { _mm512_maskz_loadu_pd(hi, p.wrapping_add(8)) };
                                        _mm512_permutex2var_pd(lo, even, hi)
                                    };
                                }
                                let wrow = &wk[k * coutp + cb..][..C];
                                for (a, &wc) in acc.iter_mut().zip(wrow) {
                                    let wc = _mm512_set1_pd(wc);
                                    for (v, (aq, xq)) in a.iter_mut().zip(&xv).enumerate() {
                                        *aq = _mm512_mask3_fmadd_pd(wc, *xq, *aq, masks[v][kx]);
                                    }
                                }
                            }
                        }
                    }
                    let plane = g.oh * g.ow;
                    for (c, a) in acc.iter().enumerate().take(g.cout - cb) {
                        let dst = &mut o[(cb + c) * plane + oy * g.ow..][..g.ow];
                        for (v, aq) in a.iter().enumerate() {
                            let Some(left) = g.ow.checked_sub(ox0 + 8 * v).filter(|&l| l > 0) else { break };
                            let keep = if left >= 8 { 0xff } else { (1u8 << left) - 1 };
                            // SAFETY: the kept lanes are the pixels `ox0 + 8v ..` of the row that exist.
                            unsafe { _mm512_mask_storeu_pd(dst.as_mut_ptr().add(ox0 + 8 * v), keep, *aq) };
                        }
                    }
                }
            }
        }
    }

    /// [`direct_avx512`] in AVX2 + FMA: 4 output pixels of a row per vector. The taps outside the input are
    /// loaded as zeros by masked loads and kept out of the sums by blends (adding a zero product could turn a
    /// sum of −0 into +0), so each output is the same sum in the same order as in the gather kernels. With
    /// `S = 2` a vector's inputs are the even ones of 8 consecutive values, loaded as two vectors and permuted.
    ///
    /// # Safety
    /// As [`direct_avx512`], with AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn direct_avx2<const C: usize, const V: usize, const S: usize>(
        x: &[f64],
        g: &ConvGeom,
        plan: &Plan,
        o: &mut [f64],
    ) {
        let Plan { coutp, wk, bias, .. } = plan;
        let coutp = *coutp;
        let (w, ow, pw) = (g.w as isize, g.ow as isize, g.padding[1] as isize);
        // Per vector and kernel column: the lanes whose output pixel exists and whose input column is inside
        // the row (all ones or zero per lane), whether they all do, and with S = 2 the two loads' lanes.
        let mut masks = [[_mm256_setzero_si256(); 8]; V];
        let mut full = [[false; 8]; V];
        let mut halves = [[(_mm256_setzero_si256(), _mm256_setzero_si256()); 8]; V];
        let lane = |b: bool| if b { -1i64 } else { 0 };
        for ox0 in (0..g.ow).step_by(4 * V) {
            for v in 0..V {
                for kx in 0..g.kw {
                    let keep: [bool; 4] = std::array::from_fn(|j| {
                        let ox = (ox0 + 4 * v + j) as isize;
                        let ix = S as isize * ox + kx as isize - pw;
                        ox < ow && ix >= 0 && ix < w
                    });
                    masks[v][kx] =
                        _mm256_set_epi64x(lane(keep[3]), lane(keep[2]), lane(keep[1]), lane(keep[0]));
                    full[v][kx] = keep.iter().all(|&k| k);
                    // Lane j's input is value 2j of the 8: lanes 0 and 2 of each load.
                    halves[v][kx] = (
                        _mm256_set_epi64x(0, lane(keep[1]), 0, lane(keep[0])),
                        _mm256_set_epi64x(0, lane(keep[3]), 0, lane(keep[2])),
                    );
                }
            }
            for oy in 0..g.oh {
                let iy0 = (oy * g.stride[0]) as isize - g.padding[0] as isize;
                for cb in (0..g.cout).step_by(C) {
                    let mut acc = [[_mm256_setzero_pd(); V]; C];
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a = [_mm256_set1_pd(bias[cb + c]); V];
                    }
                    for ci in 0..g.cin {
                        for ky in 0..g.kh {
                            let iy = iy0 + ky as isize;
                            if iy < 0 || iy >= g.h as isize {
                                continue;
                            }
                            let row = (ci * g.h + iy as usize) * g.w + S * ox0;
                            for kx in 0..g.kw {
                                let k = (ci * g.kh + ky) * g.kw + kx;
                                let mut xv = [_mm256_setzero_pd(); V];
                                for (v, xq) in xv.iter_mut().enumerate() {
                                    // The lanes outside the row are masked: not read.
                                    let p =
                                        x.as_ptr().wrapping_add(row + S * 4 * v + kx).wrapping_offset(-pw);
                                    // SAFETY: the lanes the masks keep read input columns inside the row, so
                                    // inside `x`.
                                    *xq = if S == 1 && full[v][kx] {
                                        // Every lane inside the row: a plain load reads the same values.
                                        unsafe { _mm256_loadu_pd(p) }
                                    } else if S == 1 {
                                        unsafe { _mm256_maskload_pd(p, masks[v][kx]) }
                                    } else {
                                        let (lo, hi) = halves[v][kx];
                                        let lo = unsafe { _mm256_maskload_pd(p, lo) };
                                        let hi = unsafe { _mm256_maskload_pd(p.wrapping_add(4), hi) };
                                        // [x0, x4, x2, x6] → [x0, x2, x4, x6].
                                        _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_unpacklo_pd(lo, hi))
                                    };
                                }
                                let wrow = &wk[k * coutp + cb..][..C];
                                for (a, &wc) in acc.iter_mut().zip(wrow) {
                                    let wc = _mm256_set1_pd(wc);
                                    for (v, (aq, xq)) in a.iter_mut().zip(&xv).enumerate() {
                                        let sum = _mm256_fmadd_pd(wc, *xq, *aq);
                                        *aq = if full[v][kx] {
                                            sum
                                        } else {
                                            _mm256_blendv_pd(*aq, sum, _mm256_castsi256_pd(masks[v][kx]))
                                        };
                                    }
                                }
                            }
                        }
                    }
                    let plane = g.oh * g.ow;
                    for (c, a) in acc.iter().enumerate().take(g.cout - cb) {
                        let dst = &mut o[(cb + c) * plane + oy * g.ow..][..g.ow];
                        for (v, aq) in a.iter().enumerate() {
                            let start = ox0 + 4 * v;
                            let Some(left) = g.ow.checked_sub(start).filter(|&l| l > 0) else { break };
                            if left >= 4 {
                                // SAFETY: pixels `start .. start + 4` of the row exist.
                                unsafe { _mm256_storeu_pd(dst.as_mut_ptr().add(start), *aq) };
                            } else {
                                let mut lanes = [0.0; 4];
                                // SAFETY: `lanes` holds 4 values.
                                unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), *aq) };
                                dst[start..].copy_from_slice(&lanes[..left]);
                            }
                        }
                    }
                }
            }
        }
    }

    /// AVX2 with FMA: per tap and group of `4·V` lanes, `V` loads and `C·V` fused multiply-adds, the same
    /// products in the same order as the AVX-512 kernel.
    ///
    /// # Safety
    /// As [`block_avx512`] with `4·V` for `8·V`, and AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2<const C: usize, const V: usize>(b: &Block, ot: &mut [f64]) {
        let Plan { taps, coutp, wk, bias, .. } = b.plan;
        let ((first, end), lanes) = (b.pixels, b.lanes);
        let (coutp, np) = (*coutp, end - first);
        let (x, w, o) = (b.xt.as_ptr(), wk.as_ptr(), ot.as_mut_ptr());
        for pix in first..end {
            let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
            let (ks, rows) = (&taps.k[lo..hi], &taps.row[lo..hi]);
            for lane0 in (0..lanes).step_by(4 * V) {
                for cb in (0..coutp).step_by(C) {
                    let mut acc = [[_mm256_setzero_pd(); V]; C];
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a = [_mm256_set1_pd(bias[cb + c]); V];
                    }
                    for (&k, &r) in ks.iter().zip(rows) {
                        // SAFETY (all pointer arithmetic here): bounds per this function's contract.
                        let xr = unsafe { x.add(r * lanes + lane0) };
                        let mut xv = [_mm256_setzero_pd(); V];
                        for (v, xq) in xv.iter_mut().enumerate() {
                            *xq = unsafe { _mm256_loadu_pd(xr.add(4 * v)) };
                        }
                        let wrow = unsafe { w.add(k * coutp + cb) };
                        for (c, a) in acc.iter_mut().enumerate() {
                            let wc = _mm256_set1_pd(unsafe { *wrow.add(c) });
                            for (aq, xq) in a.iter_mut().zip(&xv) {
                                *aq = _mm256_fmadd_pd(wc, *xq, *aq);
                            }
                        }
                    }
                    for (c, a) in acc.iter().enumerate() {
                        let dst = unsafe { o.add(((cb + c) * np + pix - first) * lanes + lane0) };
                        for (v, aq) in a.iter().enumerate() {
                            unsafe { _mm256_storeu_pd(dst.add(4 * v), *aq) };
                        }
                    }
                }
            }
        }
    }

    /// One point, `4·G` output channels per group in `G` vectors: per pixel and group, the accumulators start at
    /// the bias and each tap adds its weights times the broadcast input by fused multiply-adds, in the plan's
    /// order (the block kernels' products, in their order).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `coutp` must be a multiple of `4·G` and the bias hold `coutp` values;
    /// every tap's row must lie in `x` and its weights in the plan's; `pixels` must be the plan's and `out`
    /// hold `cout·pixels` values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn point_avx2<const G: usize>(
        x: &[f64],
        plan: &Plan,
        (cout, pixels): (usize, usize),
        out: &mut [f64],
    ) {
        let Plan { taps, coutp, wk, bias, .. } = plan;
        let (coutp, xp, w) = (*coutp, x.as_ptr(), wk.as_ptr());
        let mut lanes = [0.0f64; 4];
        for pix in 0..pixels {
            let (lo, hi) = (taps.start[pix], taps.start[pix + 1]);
            let (ks, rows) = (&taps.k[lo..hi], &taps.row[lo..hi]);
            for cb in (0..coutp).step_by(4 * G) {
                let mut acc = [_mm256_setzero_pd(); G];
                for (g, a) in acc.iter_mut().enumerate() {
                    // SAFETY (all pointer arithmetic here): bounds per this function's contract.
                    *a = unsafe { _mm256_loadu_pd(bias.as_ptr().add(cb + 4 * g)) };
                }
                for (&k, &r) in ks.iter().zip(rows) {
                    let xb = _mm256_set1_pd(unsafe { *xp.add(r) });
                    let wrow = unsafe { w.add(k * coutp + cb) };
                    for (g, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_pd(unsafe { _mm256_loadu_pd(wrow.add(4 * g)) }, xb, *a);
                    }
                }
                for (g, a) in acc.iter().enumerate() {
                    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), *a) };
                    for (l, &v) in lanes.iter().enumerate() {
                        let co = cb + 4 * g + l;
                        if co < cout {
                            out[co * pixels + pix] = v;
                        }
                    }
                }
            }
        }
    }

    /// `dst[c·ds + r] = src[r·ss + c]` for `r < rows`, `c < cols`, both multiples of 8, in 8 × 8 tiles, in the
    /// order of [`tile_origins`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `src` must be readable at `r·ss + c` and `dst` writable at `c·ds + r` for
    /// every `r < rows`, `c < cols`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tiles(
        src: *const f64,
        ss: usize,
        (rows, cols): (usize, usize),
        dst: *mut f64,
        ds: usize,
    ) {
        for (r0, c0) in tile_origins(rows, cols, 8) {
            // SAFETY: rows r0..r0 + 8 ≤ rows and columns c0..c0 + 8 ≤ cols, per this function's contract.
            unsafe { tile8(src.add(r0 * ss + c0), ss, dst.add(c0 * ds + r0), ds) };
        }
    }

    /// The first row and column of every `side × side` tile of a `rows × cols` block, the outer loop over the
    /// short side (a block's points), so that the long side is read and written as `side` sequential streams.
    fn tile_origins(rows: usize, cols: usize, side: usize) -> impl Iterator<Item = (usize, usize)> {
        let by_row = rows <= cols;
        let (outer, inner) = if by_row { (rows, cols) } else { (cols, rows) };
        (0..outer)
            .step_by(side)
            .flat_map(move |a| (0..inner).step_by(side).map(move |b| if by_row { (a, b) } else { (b, a) }))
    }

    /// [`tiles`] in 4 × 4 tiles through AVX registers.
    ///
    /// # Safety
    /// The CPU must support AVX; `rows` and `cols` must be multiples of 4, `src` readable at `r·ss + c` and
    /// `dst` writable at `c·ds + r` for every `r < rows`, `c < cols`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tiles_avx2(
        src: *const f64,
        ss: usize,
        (rows, cols): (usize, usize),
        dst: *mut f64,
        ds: usize,
    ) {
        for (r0, c0) in tile_origins(rows, cols, 4) {
            // SAFETY: rows r0..r0 + 4 ≤ rows and columns c0..c0 + 4 ≤ cols, per this function's contract.
            unsafe { tile4(src.add(r0 * ss + c0), ss, dst.add(c0 * ds + r0), ds) };
        }
    }

    /// One 4 × 4 tile: `dst[c·ds + r] = src[r·ss + c]` for `r, c < 4`: pairs of rows interleaved, then halves
    /// exchanged.
    ///
    /// # Safety
    /// The CPU must support AVX; `src` must be readable at `r·ss + c` and `dst` writable at `c·ds + r` for every
    /// `r, c < 4`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile4(src: *const f64, ss: usize, dst: *mut f64, ds: usize) {
        // SAFETY: rows 0–3 of the tile, readable per this function's contract.
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| unsafe { _mm256_loadu_pd(src.add(i * ss)) });
        // [a0 b0 a2 b2], [a1 b1 a3 b3], [c0 d0 c2 d2], [c1 d1 c3 d3].
        let (ab0, ab1) = (_mm256_unpacklo_pd(a, b), _mm256_unpackhi_pd(a, b));
        let (cd0, cd1) = (_mm256_unpacklo_pd(c, d), _mm256_unpackhi_pd(c, d));
        let columns = [
            _mm256_permute2f128_pd::<0x20>(ab0, cd0),
            _mm256_permute2f128_pd::<0x20>(ab1, cd1),
            _mm256_permute2f128_pd::<0x31>(ab0, cd0),
            _mm256_permute2f128_pd::<0x31>(ab1, cd1),
        ];
        for (i, col) in columns.into_iter().enumerate() {
            // SAFETY: row i of the destination tile, writable per this function's contract.
            unsafe { _mm256_storeu_pd(dst.add(i * ds), col) };
        }
    }

    /// One 8 × 8 tile: `dst[c·ds + r] = src[r·ss + c]` for `r, c < 8`, in three rounds of shuffles (pairs of
    /// rows, pairs of pairs, halves).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `src` must be readable at `r·ss + c` and `dst` writable at `c·ds + r` for
    /// every `r, c < 8`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile8(src: *const f64, ss: usize, dst: *mut f64, ds: usize) {
        let mut r = [_mm512_setzero_pd(); 8];
        for (i, ri) in r.iter_mut().enumerate() {
            // SAFETY: row i of the tile, readable per this function's contract.
            *ri = unsafe { _mm512_loadu_pd(src.add(i * ss)) };
        }
        // t[2i] = rows 2i, 2i+1 interleaved at even columns, t[2i+1] at odd ones: [a0c b0c a2c b2c …].
        let mut t = [_mm512_setzero_pd(); 8];
        for i in 0..4 {
            t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
        }
        // Four rows of one column pair: columns (0, 4), (1, 5), (2, 6), (3, 7) of rows 0–3 and of rows 4–7.
        let lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
        let hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
        let mut v = [_mm512_setzero_pd(); 8];
        for half in 0..2 {
            let (a, b) = (4 * half, 4 * half + 2);
            v[4 * half] = _mm512_permutex2var_pd(t[a], lo, t[b]);
            v[4 * half + 1] = _mm512_permutex2var_pd(t[a + 1], lo, t[b + 1]);
            v[4 * half + 2] = _mm512_permutex2var_pd(t[a], hi, t[b]);
            v[4 * half + 3] = _mm512_permutex2var_pd(t[a + 1], hi, t[b + 1]);
        }
        // Column c (c < 4) is the low halves of v[c] and v[4 + c]; column c + 4 their high halves.
        for c in 0..4 {
            let low = _mm512_shuffle_f64x2::<0x44>(v[c], v[4 + c]);
            let high = _mm512_shuffle_f64x2::<0xEE>(v[c], v[4 + c]);
            // SAFETY: rows c and c + 4 of the destination tile, writable per this function's contract.
            unsafe {
                _mm512_storeu_pd(dst.add(c * ds), low);
                _mm512_storeu_pd(dst.add((c + 4) * ds), high);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
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

    /// For every blocking, the vector kernels give the same bits as each other, and the portable one the same
    /// values up to the rounding of separate multiplies and adds, on blocks with uneven tap counts per pixel; a
    /// lane has the same bits in every block width and in the narrow kernel.
    #[test]
    fn every_kernel_agrees() {
        for cout in [1, 2, 4, 8, 16, 32] {
            let blocking = super::Blocking::for_channels(cout);
            let super::Blocking { channels, lanes } = blocking;
            let (in_len, coutp, pixels) = (37, cout, 11);
            let mut taps = super::Taps::default();
            taps.clear();
            for pix in 0..pixels {
                for t in 0..(pix * 3 + 1) {
                    taps.k.push((pix + 5 * t) % 13);
                    taps.row.push((7 * pix + 3 * t) % in_len);
                }
                taps.close_pixel();
            }
            let plan = super::Plan {
                taps,
                blocking,
                coutp,
                wk: inputs(13 * coutp, 5),
                bias: inputs(coutp, 7),
                direct: false,
            };
            let xt = inputs(in_len * lanes, 3);
            // A kernel over `l` lanes (the first `l` of `xt`'s) and pixels `first..end`.
            let run = |kernel: super::Kernel, l: usize, (first, end): (usize, usize)| {
                let xl: Vec<f64> = xt.chunks(lanes).flat_map(|row| row[..l].to_vec()).collect();
                let mut ot = vec![0.0; coutp * (end - first) * l];
                kernel(&super::Block { xt: &xl, plan: &plan, pixels: (first, end), lanes: l }, &mut ot);
                ot
            };
            let all = (0, pixels);
            // The first `l` lanes of every row of an output block of `lanes`.
            let first = |v: &[f64], l: usize| -> Vec<f64> {
                v.chunks(lanes).flat_map(|row| row[..l].to_vec()).collect()
            };
            let portable = run(super::block_portable, lanes, all);
            let (wide, step) = super::wide_kernel(channels);
            let chosen = run(wide, lanes, all);
            for (a, b) in portable.iter().zip(&chosen) {
                assert!(close(*a, *b), "{cout} channels: {a} vs {b}");
            }
            // Narrower blocks (the kernel's own step, and the narrow kernel) give their lanes' bits.
            for (l, kernel) in [(step, Some(wide)), (super::NN, super::narrow_kernel(channels))] {
                let Some(kernel) = kernel.filter(|_| l < lanes) else { continue };
                assert_eq!(
                    run(kernel, l, all),
                    first(&chosen, l),
                    "{cout} channels: {l} lanes differ from {lanes}"
                );
            }
            // One point at a time, channels in the vectors: every lane's bits.
            if let Some(point) = super::point_kernel(coutp) {
                for j in 0..lanes {
                    let x: Vec<f64> = xt.chunks(lanes).map(|row| row[j]).collect();
                    let mut out = vec![f64::NAN; cout * pixels];
                    point(&x, &plan, (cout, pixels), &mut out);
                    for (i, got) in out.iter().enumerate() {
                        let want = chosen[i * lanes + j];
                        assert_eq!(got.to_bits(), want.to_bits(), "{cout} channels, point {j}, output {i}");
                    }
                }
            }
            // A range of pixels gives those pixels' rows of every channel.
            let (p0, p1) = (3, 8);
            let part = run(wide, lanes, (p0, p1));
            for c in 0..coutp {
                let (got, want) = (
                    &part[c * (p1 - p0) * lanes..][..(p1 - p0) * lanes],
                    &chosen[(c * pixels + p0) * lanes..][..(p1 - p0) * lanes],
                );
                assert_eq!(got, want, "{cout} channels: pixels {p0}..{p1} of channel {c}");
            }
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                let avx2 = (has!("avx2") && has!("fma"))
                    .then(|| run(super::wide_avx2_kernel(channels).0, lanes, all));
                let avx512 = has!("avx512f").then(|| chosen.clone());
                if let (Some(a), Some(b)) = (&avx2, &avx512) {
                    assert_eq!(a, b, "{cout} channels: the AVX2 and AVX-512 kernels differ");
                }
                for v in [avx2, avx512].into_iter().flatten() {
                    assert_eq!(v, chosen, "{cout} channels: the dispatched kernel is not the vector one");
                }
            }
        }
    }

    /// A square-kernel geometry: `(cin, cout, k, padding, stride, h, w)`.
    pub(in crate::ops) type Square = (usize, usize, usize, usize, [usize; 2], usize, usize);

    /// Square-kernel geometries for the kernels' tests (here and in
    /// `single`): channel counts on both sides of every blocking, kernels wider than the padding reaches,
    /// padding past the kernel's reach, rows shorter than a vector, exactly one or between, and strides above 1.
    pub(in crate::ops) const GEOMETRIES: [Square; 23] = [
        (1, 8, 3, 1, [1, 1], 32, 32),
        (3, 5, 5, 2, [2, 1], 9, 21),
        (2, 1, 1, 0, [1, 1], 4, 9),
        (16, 16, 3, 1, [1, 1], 16, 16),
        (4, 3, 7, 4, [3, 1], 11, 17),
        (2, 9, 4, 0, [1, 1], 5, 40),
        (8, 16, 4, 1, [2, 2], 32, 32),
        (16, 32, 4, 1, [2, 2], 16, 16),
        (3, 4, 5, 2, [1, 2], 7, 23),
        (1, 2, 2, 0, [2, 2], 6, 5),
        (5, 9, 3, 1, [3, 2], 10, 39),
        (4, 16, 3, 1, [1, 1], 6, 8),
        (3, 32, 2, 0, [1, 2], 5, 16),
        (64, 10, 4, 0, [1, 1], 4, 4),
        (32, 64, 4, 1, [2, 2], 8, 8),
        (2, 5, 2, 3, [1, 1], 4, 10),
        (3, 8, 3, 4, [1, 2], 6, 21),
        (1, 2, 3, 1, [1, 1], 5, 13),
        (2, 4, 3, 0, [1, 2], 4, 12),
        (1, 8, 3, 1, [1, 1], 3, 4),
        (2, 16, 3, 1, [1, 2], 4, 8),
        (1, 1, 4, 1, [2, 2], 8, 20),
        (3, 2, 2, 1, [1, 2], 5, 11),
    ];

    /// The convolution geometry of one entry of [`GEOMETRIES`].
    pub(in crate::ops) fn geometry((cin, cout, k, pad, stride, h, w): Square) -> super::ConvGeom {
        let (oh, ow) = ((h + 2 * pad - k) / stride[0] + 1, (w + 2 * pad - k) / stride[1] + 1);
        super::ConvGeom { cin, cout, kh: k, kw: k, stride, padding: [pad, pad], h, w, oh, ow }
    }

    /// Both direct kernels (AVX-512 and AVX2 + FMA, where the CPU has them) give the gather kernel's bits, for
    /// channel counts on both sides of every blocking, kernels wider than the padding reaches, padding past the
    /// kernel's reach (pixels with no tap keep a bias of −0), rows that are not a multiple of a vector, and a
    /// row stride above 1.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_direct_kernel_gives_the_gather_kernels_bits() {
        use std::arch::is_x86_feature_detected as has;
        let mut avx2_ran = 0;
        let avx512 = has!("avx512f");
        for g in GEOMETRIES.into_iter().map(geometry) {
            let super::ConvGeom { cin, cout, kh: k, h, w, oh, ow, .. } = g;
            // Only the geometries with rows shorter than a vector run in the gather kernel.
            assert_eq!(super::direct_avx512_fits(&g), ow >= 8, "{g:?}");
            // Each kernel the CPU has: AVX-512 (`true`) and AVX2 + FMA (`false`).
            let mut kernels = Vec::new();
            if avx512 && super::direct_avx512_fits(&g) {
                kernels.push(true);
            }
            if super::direct_avx2_fits(&g) {
                kernels.push(false);
                avx2_ran += 1;
            }
            let weight = inputs(cout * cin * k * k, 13);
            // A bias of −0 stays −0 only where the taps outside the input are skipped, not added as zeros.
            for bias in [inputs(cout, 17), vec![-0.0; cout]] {
                let plan = super::Plan::new(&g, &bias, |p| super::conv2d_plan(&weight, &g, p));
                let (in_len, out_len) = (cin * h * w, cout * oh * ow);
                for &wide in &kernels {
                    for n in [1, 3, 16, 37] {
                        let x = inputs(n * in_len, n as u64);
                        let mut direct = vec![f64::NAN; n * out_len];
                        let mut gathered = vec![f64::NAN; n * out_len];
                        super::direct_run(&x, n, &g, &plan, &mut direct, wide);
                        let mut s = super::ConvScratch::default();
                        super::gather(&x, n, in_len, cout, oh * ow, &plan, &mut s, &mut gathered);
                        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        let first = bits(&direct).iter().zip(bits(&gathered)).position(|(a, b)| *a != b);
                        assert_eq!(first, None, "{g:?}, {n} points, AVX-512: {wide}, bias {}", bias[0]);
                    }
                }
            }
        }
        assert!(avx2_ran >= 12 || !(has!("avx2") && has!("fma")), "{avx2_ran} geometries in the AVX2 kernel");
    }

    /// The tiled transpose is the transpose, for every shape around the tile size and any strides.
    #[test]
    fn transpose_is_the_transpose() {
        use super::Tiles;
        let cpu = Tiles::cpu();
        let every = [Tiles::Avx512, Tiles::Avx2, Tiles::Scalar];
        // The CPU's tiles and every narrower kind.
        let kinds = &every[every.iter().position(|t| *t == cpu).expect("a kind")..];
        for (tiles, (rows, cols)) in kinds.iter().flat_map(|t| {
            [(1, 1), (3, 17), (4, 4), (8, 8), (16, 9), (13, 40), (64, 1030), (9, 64), (6, 7)].map(|s| (*t, s))
        }) {
            for pad in [0, 3] {
                let (ss, ds) = (cols + pad, rows + 2 * pad);
                let src = inputs(rows * ss, 11);
                let mut dst = vec![f64::NAN; cols * ds];
                super::transpose_in(tiles, &src, ss, rows, cols, &mut dst, ds);
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(
                            dst[c * ds + r].to_bits(),
                            src[r * ss + c].to_bits(),
                            "{tiles:?} {rows}×{cols} at ({r}, {c})"
                        );
                    }
                }
                for c in 0..cols {
                    assert!(
                        dst[c * ds + rows..(c * ds + ds).min(dst.len())].iter().all(|v| v.is_nan()),
                        "wrote past a row"
                    );
                }
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
            h in 3usize..9, w in 3usize..9, n in 1usize..150, seed in any::<u64>(),
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
            n in 2usize..150, seed in any::<u64>(),
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
            opad in 0usize..2, h in 1usize..6, w in 1usize..6, n in 1usize..150, seed in any::<u64>(),
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
