//! The transposed linear part of affine layers, for back-substitution: `g ↦ Aᵀ g` where the layer computes
//! `x ↦ A x + c`.

use gcert_core::ops::ConvGeom;
use gcert_core::{Layer, Op};

/// For each of the `k` rows `g_r` of `g` (covectors on the layer's output), writes the covector `g_r A` on
/// the layer's input into `out`. Returns `false` for layers that are not affine.
pub fn transpose_apply(layer: &Layer, g: &[f64], k: usize, out: &mut Vec<f64>) -> bool {
    let (n_in, n_out) = (layer.in_len(), layer.out_len());
    debug_assert_eq!(g.len(), k * n_out);
    out.clear();
    out.resize(k * n_in, 0.0);
    match &layer.op {
        Op::Linear { weight, inputs, .. } => {
            for (gr, or) in g.chunks_exact(n_out).zip(out.chunks_exact_mut(n_in)) {
                for (&v, w) in gr.iter().zip(weight.chunks_exact(*inputs)) {
                    if v != 0.0 {
                        for (o, w) in or.iter_mut().zip(w) {
                            *o += v * w;
                        }
                    }
                }
            }
        }
        Op::Conv2d { weight, geom: c, .. } => {
            for r in 0..k {
                let gr = &g[r * n_out..(r + 1) * n_out];
                let or = &mut out[r * n_in..(r + 1) * n_in];
                for co in 0..c.cout {
                    for ci in 0..c.cin {
                        for ky in 0..c.kh {
                            for kx in 0..c.kw {
                                let w = weight[((co * c.cin + ci) * c.kh + ky) * c.kw + kx];
                                if w == 0.0 {
                                    continue;
                                }
                                for oy in 0..c.oh {
                                    let iy = (oy * c.stride[0] + ky) as isize - c.padding[0] as isize;
                                    if iy < 0 || iy >= c.h as isize {
                                        continue;
                                    }
                                    let grow = &gr[(co * c.oh + oy) * c.ow..][..c.ow];
                                    let orow = &mut or[(ci * c.h + iy as usize) * c.w..][..c.w];
                                    for ox in 0..c.ow {
                                        let ix = (ox * c.stride[1] + kx) as isize - c.padding[1] as isize;
                                        if ix >= 0 && ix < c.w as isize {
                                            orow[ix as usize] += w * grow[ox];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Op::ConvTranspose2d { weight, geom: c, .. } => {
            for r in 0..k {
                let gr = &g[r * n_out..(r + 1) * n_out];
                let or = &mut out[r * n_in..(r + 1) * n_in];
                for ci in 0..c.cin {
                    for co in 0..c.cout {
                        for ky in 0..c.kh {
                            for kx in 0..c.kw {
                                let w = weight[((ci * c.cout + co) * c.kh + ky) * c.kw + kx];
                                if w == 0.0 {
                                    continue;
                                }
                                for iy in 0..c.h {
                                    let oy = (iy * c.stride[0] + ky) as isize - c.padding[0] as isize;
                                    if oy < 0 || oy >= c.oh as isize {
                                        continue;
                                    }
                                    let grow = &gr[(co * c.oh + oy as usize) * c.ow..][..c.ow];
                                    let orow = &mut or[(ci * c.h + iy) * c.w..][..c.w];
                                    for ix in 0..c.w {
                                        let ox = (ix * c.stride[1] + kx) as isize - c.padding[1] as isize;
                                        if ox >= 0 && ox < c.ow as isize {
                                            orow[ix] += w * grow[ox as usize];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
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
        Op::Relu | Op::LeakyRelu { .. } | Op::Clamp { .. } | Op::MaxPool2d(_) | Op::Sigmoid | Op::Tanh => {
            return false
        }
    }
    true
}

/// The layer with every coefficient of its linear part replaced by its absolute value and no constant
/// term: `|A|`, for propagating interval radii. `None` for layers that are not affine.
pub fn abs_layer(layer: &Layer) -> Option<Layer> {
    let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let op = match &layer.op {
        Op::Linear { weight, bias, inputs, outputs } => Op::Linear {
            weight: abs(weight),
            bias: vec![0.0; bias.len()],
            inputs: *inputs,
            outputs: *outputs,
        },
        Op::Conv2d { weight, bias, geom } => {
            Op::Conv2d { weight: abs(weight), bias: vec![0.0; bias.len()], geom: *geom }
        }
        Op::ConvTranspose2d { weight, bias, geom } => {
            Op::ConvTranspose2d { weight: abs(weight), bias: vec![0.0; bias.len()], geom: *geom }
        }
        Op::ChannelAffine { scale, shift, spatial } => {
            Op::ChannelAffine { scale: abs(scale), shift: vec![0.0; shift.len()], spatial: *spatial }
        }
        Op::Embed { prefix, suffix } => {
            Op::Embed { prefix: vec![0.0; prefix.len()], suffix: vec![0.0; suffix.len()] }
        }
        Op::Reshape | Op::AvgPool2d(_) | Op::Gather { .. } => layer.op.clone(),
        Op::Relu | Op::LeakyRelu { .. } | Op::Clamp { .. } | Op::MaxPool2d(_) | Op::Sigmoid | Op::Tanh => {
            return None
        }
    };
    Some(Layer { name: layer.name, op, in_shape: layer.in_shape.clone(), out_shape: layer.out_shape.clone() })
}

/// The adjoint of a linear, convolution or transposed-convolution layer as a layer of the opposite kind
/// with the same weights (no bias), so that back-substitution runs on the core's batched kernels:
/// `adjoint.apply(g)` equals [`transpose_apply`] for these layers. `None` for other layers.
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
        _ => return None,
    };
    Some(Layer { name: layer.name, op, in_shape: layer.out_shape.clone(), out_shape: layer.in_shape.clone() })
}
