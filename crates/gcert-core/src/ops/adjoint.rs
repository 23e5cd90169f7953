//! The transposed and absolute linear parts of affine layers, for back-substitution in the bounds of the
//! certifiers: `g ↦ Aᵀ g` and `|A|` where the layer computes `x ↦ A x + c`. Every op is listed in each match,
//! so a new op is a compile error here until its transpose is written.

use super::{ConvGeom, Layer, LinearOp, Op};

/// For each of the `k` rows `g_r` of `g` (covectors on the layer's output), writes the covector `g_r A` on
/// the layer's input into `out`, for the affine layers without weights (channel affine, reshape, average pool,
/// gather, embed). Returns `false` for the others: linear and convolution layers transpose through
/// [`adjoint_layer`], and non-affine layers have no transpose. Every affine layer is covered by exactly one
/// of the two.
pub fn transpose_apply(layer: &Layer, g: &[f64], k: usize, out: &mut Vec<f64>) -> bool {
    let (n_in, n_out) = (layer.in_len(), layer.out_len());
    debug_assert_eq!(g.len(), k * n_out);
    out.clear();
    out.resize(k * n_in, 0.0);
    match &layer.op {
        Op::ChannelAffine { scale, spatial, .. } => {
            for (gr, or) in g.chunks_exact(n_out).zip(out.chunks_exact_mut(n_in)) {
                for (c, (gc, oc)) in gr.chunks_exact(*spatial).zip(or.chunks_exact_mut(*spatial)).enumerate()
                {
                    for (o, v) in oc.iter_mut().zip(gc) {
                        *o = scale[c] * v;
                    }
                }
            }
        }
        Op::Reshape => out.copy_from_slice(g),
        Op::AvgPool2d(p) => {
            let area = (p.kernel[0] * p.kernel[1]) as f64;
            let mut window = Vec::new();
            for (gr, or) in g.chunks_exact(n_out).zip(out.chunks_exact_mut(n_in)) {
                for ch in 0..p.c {
                    for oy in 0..p.oh {
                        for ox in 0..p.ow {
                            p.window(ch, oy, ox, &mut window);
                            let v = gr[(ch * p.oh + oy) * p.ow + ox] / area;
                            for &i in &window {
                                or[i] += v;
                            }
                        }
                    }
                }
            }
        }
        Op::Gather { index } => {
            for (gr, or) in g.chunks_exact(n_out).zip(out.chunks_exact_mut(n_in)) {
                for (v, &i) in gr.iter().zip(index) {
                    or[i] += v;
                }
            }
        }
        Op::Embed { prefix, .. } => {
            for (gr, or) in g.chunks_exact(n_out).zip(out.chunks_exact_mut(n_in)) {
                or.copy_from_slice(&gr[prefix.len()..prefix.len() + n_in]);
            }
        }
        // Weighted layers transpose into a layer of the opposite kind ([`adjoint_layer`]), which runs on the
        // core's batched kernels; non-affine layers have no transpose.
        Op::Linear { .. }
        | Op::Conv2d { .. }
        | Op::ConvTranspose2d { .. }
        | Op::Relu
        | Op::LeakyRelu { .. }
        | Op::Clamp { .. }
        | Op::MaxPool2d(_)
        | Op::Sigmoid
        | Op::Tanh => return false,
    }
    true
}

/// The layer with every coefficient of its linear part replaced by its absolute value and no constant
/// term: `|A|`, for propagating interval radii. `None` for layers that are not affine.
pub fn abs_layer(layer: &Layer) -> Option<Layer> {
    let op = match layer.linear_op(|c| c.iter().map(|x| x.abs()).collect()) {
        LinearOp::Mapped(op) => op,
        LinearOp::AlreadyLinear => layer.op.clone(),
        LinearOp::NotAffine => return None,
    };
    Some(layer.with_op(op))
}

/// The adjoint of a linear, convolution or transposed-convolution layer as a layer of the opposite kind
/// with the same weights (no bias), so that back-substitution runs on the core's batched kernels:
/// `adjoint.apply(g)` writes `g_r A` for every row, as [`transpose_apply`] does for the other affine layers.
/// `None` for other layers.
pub fn adjoint_layer(layer: &Layer) -> Option<Layer> {
    let swap = |g: &ConvGeom| ConvGeom { cin: g.cout, cout: g.cin, h: g.oh, w: g.ow, oh: g.h, ow: g.w, ..*g };
    let op = match &layer.op {
        Op::Linear { weight, inputs, outputs, .. } => {
            let mut t = vec![0.0; weight.len()];
            for o in 0..*outputs {
                for i in 0..*inputs {
                    t[i * outputs + o] = weight[o * inputs + i];
                }
            }
            Op::Linear { weight: t, bias: vec![0.0; *inputs], inputs: *outputs, outputs: *inputs }
        }
        // Conv2d weight [cout, cin, kh, kw] read as a transposed convolution's [cin', cout', kh, kw] from
        // cout channels to cin: the same array. The kernels skip positions outside either image.
        Op::Conv2d { weight, geom, .. } => {
            Op::ConvTranspose2d { weight: weight.clone(), bias: vec![0.0; geom.cin], geom: swap(geom) }
        }
        Op::ConvTranspose2d { weight, geom, .. } => {
            Op::Conv2d { weight: weight.clone(), bias: vec![0.0; geom.cin], geom: swap(geom) }
        }
        Op::ChannelAffine { .. }
        | Op::Reshape
        | Op::AvgPool2d(_)
        | Op::Gather { .. }
        | Op::Embed { .. }
        | Op::Relu
        | Op::LeakyRelu { .. }
        | Op::Clamp { .. }
        | Op::MaxPool2d(_)
        | Op::Sigmoid
        | Op::Tanh => return None,
    };
    Some(Layer {
        name: layer.name,
        op,
        in_shape: layer.out_shape.clone(),
        out_shape: layer.in_shape.clone(),
        plan: Default::default(),
    })
}
