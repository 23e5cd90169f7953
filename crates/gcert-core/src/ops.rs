//! Resolved layers and their batched kernels.
//!
//! A batch is a flat row-major buffer of `n` samples, each of `in_len` values. Affine layers run as one matrix
//! product over the whole batch (in bounded sub-batches, so that scratch memory stays small), never one sample
//! at a time.

mod activation;
mod adjoint;
mod conv;
mod linear;
mod single;
mod wide;

pub use activation::{Activation, Face, SLACK};
pub use adjoint::{abs_layer, adjoint_layer, transpose_apply};
pub use single::{Single, INPUT_FLOOR};
pub use wide::wide;

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Geometry of a 2-D convolution or transposed convolution on one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Geometry of a pooling window on one sample (`c` channels of `h×w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    pub c: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// The input indices (within one sample) of the window feeding output `(ch, oy, ox)`; padding excluded.
    pub fn window(&self, ch: usize, oy: usize, ox: usize, out: &mut Vec<usize>) {
        out.clear();
        for ky in 0..self.kernel[0] {
            let y = (oy * self.stride[0] + ky) as isize - self.padding[0] as isize;
            if y < 0 || y >= self.h as isize {
                continue;
            }
            for kx in 0..self.kernel[1] {
                let x = (ox * self.stride[1] + kx) as isize - self.padding[1] as isize;
                if x < 0 || x >= self.w as isize {
                    continue;
                }
                out.push(ch * self.h * self.w + y as usize * self.w + x as usize);
            }
        }
    }
}

/// What a layer computes, with its parameters resolved to `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `y = W x + b`; `weight` is `[outputs, inputs]`.
    Linear {
        weight: Vec<f64>,
        bias: Vec<f64>,
        inputs: usize,
        outputs: usize,
    },
    /// `weight` is `[cout, cin, kh, kw]`.
    Conv2d {
        weight: Vec<f64>,
        bias: Vec<f64>,
        geom: ConvGeom,
    },
    /// `weight` is `[cin, cout, kh, kw]` (PyTorch's layout).
    ConvTranspose2d {
        weight: Vec<f64>,
        bias: Vec<f64>,
        geom: ConvGeom,
    },
    /// `y = scale[c] x + shift[c]` per channel (dimension 0); an eval-mode batch norm folded.
    ChannelAffine {
        scale: Vec<f64>,
        shift: Vec<f64>,
        spatial: usize,
    },
    Relu,
    LeakyRelu {
        slope: f64,
    },
    Clamp {
        min: f64,
        max: f64,
    },
    /// Flatten or reshape: the data is unchanged, only the shape.
    Reshape,
    AvgPool2d(PoolGeom),
    MaxPool2d(PoolGeom),
    Sigmoid,
    Tanh,
    /// `y[i] = x[index[i]]`: a concatenation of inputs along an inner axis.
    Gather {
        index: Vec<usize>,
    },
    /// `y = prefix ++ x ++ suffix`: one input of a multi-input model, the other inputs held fixed.
    Embed {
        prefix: Vec<f64>,
        suffix: Vec<f64>,
    },
}

/// How the exact chain treats a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Affine: no new breakpoints.
    Affine,
    /// Elementwise piecewise linear with faces at fixed thresholds (relu, leaky relu, clamp).
    Elementwise,
    /// Max pooling: breakpoints where a window's arg-max changes.
    MaxPool,
    /// Not piecewise linear (sigmoid, tanh).
    NonLinear,
}

impl Op {
    /// How the exact chain treats the op. Every op is listed: a new op is a compile error here until it is
    /// classified, so none can be walked as affine by accident.
    pub fn kind(&self) -> Kind {
        match self {
            Op::Linear { .. }
            | Op::Conv2d { .. }
            | Op::ConvTranspose2d { .. }
            | Op::ChannelAffine { .. }
            | Op::Reshape
            | Op::AvgPool2d(_)
            | Op::Gather { .. }
            | Op::Embed { .. } => Kind::Affine,
            Op::Relu | Op::LeakyRelu { .. } | Op::Clamp { .. } => Kind::Elementwise,
            Op::MaxPool2d(_) => Kind::MaxPool,
            Op::Sigmoid | Op::Tanh => Kind::NonLinear,
        }
    }

    /// Whether finite inputs always give finite outputs, whatever their size: then a check of the op's output
    /// for overflow can be skipped when its input was checked (relu, clamp and max-pooling select or bound
    /// values, reshape, gather and embed copy them (embed's fixed values are checked when it is built); a leaky
    /// relu scales them by at most 1 when `|slope| ≤ 1`; sigmoid and tanh are bounded; every other op multiplies
    /// or sums).
    pub fn keeps_finite(&self) -> bool {
        match *self {
            Op::Relu
            | Op::Clamp { .. }
            | Op::MaxPool2d(_)
            | Op::Reshape
            | Op::Gather { .. }
            | Op::Embed { .. } => true,
            Op::LeakyRelu { slope } => slope.abs() <= 1.0,
            Op::Sigmoid | Op::Tanh => true,
            Op::Linear { .. }
            | Op::Conv2d { .. }
            | Op::ConvTranspose2d { .. }
            | Op::ChannelAffine { .. }
            | Op::AvgPool2d(_) => false,
        }
    }

    /// The elementwise activation of the op, if it is one.
    pub fn activation(&self) -> Option<Activation> {
        match *self {
            Op::Relu => Some(Activation::Leaky(0.0)),
            Op::LeakyRelu { slope } => Some(Activation::Leaky(slope)),
            Op::Clamp { min, max } => Some(Activation::Clamp(min, max)),
            Op::Sigmoid => Some(Activation::Sigmoid),
            Op::Tanh => Some(Activation::Tanh),
            Op::Linear { .. }
            | Op::Conv2d { .. }
            | Op::ConvTranspose2d { .. }
            | Op::ChannelAffine { .. }
            | Op::Reshape
            | Op::AvgPool2d(_)
            | Op::MaxPool2d(_)
            | Op::Gather { .. }
            | Op::Embed { .. } => None,
        }
    }
}

/// One layer of a network: what it computes and the shapes it maps between.
///
/// The fields are private: a layer is made by [`Network::load`](crate::Network::load) (or
/// [`Network::from_card`](crate::Network::from_card)), which checks that the op's parameters fit the shapes, or
/// by the validated constructors here, so every `Layer` a backend sees is consistent.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The `op` string of the card (`"relu"`, `"conv2d"`, ...).
    pub(crate) name: &'static str,
    pub(crate) op: Op,
    pub(crate) in_shape: Vec<usize>,
    pub(crate) out_shape: Vec<usize>,
    /// A convolution's tap lists and packed weights, or a linear layer's packed weights, built on first use
    /// (unused by other ops).
    pub(crate) plan: Plans,
}

/// The kernels' per-layer data (a convolution's tap lists and packed weights, a linear layer's packed weights),
/// built on the layer's first use and kept with it: layers are immutable, so a plan never goes stale, and every
/// caller (the engine's levels, the bounds, a single forward pass) shares it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Plans {
    conv: OnceLock<Box<conv::Plan>>,
    linear: OnceLock<Box<linear::Packed>>,
    /// [`abs_layer`] and [`adjoint_layer`] of the layer, for the bounds, with their own plans.
    abs: OnceLock<Option<Box<Layer>>>,
    adjoint: OnceLock<Option<Box<Layer>>>,
    /// [`Single`]: `|W|` in `f32`, for the bounds.
    single: OnceLock<Option<Box<Single>>>,
    /// [`Single`] of `W` itself (rounded to nearest), for the hybrid's chord bands.
    signed: OnceLock<Option<Box<Single>>>,
}

/// Equal whatever they hold, so that layers compare by their ops.
impl PartialEq for Plans {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The linear part of an op, as [`Layer::linear_op`] finds it.
pub(crate) enum LinearOp {
    /// An affine op with coefficients or a constant term: its linear part, coefficients mapped.
    Mapped(Op),
    /// An op that is linear already, with non-negative coefficients (reshape, average pool, gather).
    AlreadyLinear,
    /// Not affine.
    NotAffine,
}

/// Reusable scratch memory for the kernels.
#[derive(Debug, Default)]
pub struct Scratch {
    conv: conv::ConvScratch,
    window: Vec<usize>,
    /// One sample's output ([`Layer::apply_append`]).
    row: Vec<f64>,
    linear: linear::LinearScratch,
    /// A block of points packed for [`Single`]'s linear kernel.
    single: Vec<f32>,
}

impl Layer {
    /// The layer that places one input of a multi-input model among the others, held fixed:
    /// `y = prefix ++ x ++ suffix` for an `x` of `input_len` values. The fixed values must be finite.
    pub fn embed(prefix: Vec<f64>, input_len: usize, suffix: Vec<f64>) -> Result<Layer> {
        if input_len == 0 {
            return Err(Error::input("the embedded input must have at least one value"));
        }
        if let Some(i) = prefix.iter().chain(&suffix).position(|v| !v.is_finite()) {
            return Err(Error::input(format!("the fixed inputs have a non-finite value at index {i}")));
        }
        let out_len = prefix.len() + input_len + suffix.len();
        Ok(Layer {
            name: "embed",
            op: Op::Embed { prefix, suffix },
            in_shape: vec![input_len],
            out_shape: vec![out_len],
            plan: Plans::default(),
        })
    }

    /// The `op` string of the card (`"relu"`, `"conv2d"`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What the layer computes, with its resolved parameters.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// The shape of one sample's input.
    pub fn in_shape(&self) -> &[usize] {
        &self.in_shape
    }

    /// The shape of one sample's output.
    pub fn out_shape(&self) -> &[usize] {
        &self.out_shape
    }

    pub fn in_len(&self) -> usize {
        self.in_shape.iter().product()
    }

    pub fn out_len(&self) -> usize {
        self.out_shape.iter().product()
    }

    /// Per sample: the layer's multiply-adds (or window reads, or value copies), and the scratch values its
    /// kernel needs; `None` if a count overflows `usize`. The element budget and the certifiers' cost model
    /// read these.
    pub fn cost(&self) -> (Option<usize>, Option<usize>) {
        let mul = crate::limits::mul;
        let out = crate::limits::numel(&self.out_shape);
        match &self.op {
            Op::Linear { inputs, outputs, .. } => (mul(&[*inputs, *outputs]), Some(0)),
            Op::Conv2d { geom: g, .. } => {
                (mul(&[g.cout, g.cin, g.kh, g.kw, g.oh, g.ow]), mul(&[g.cin, g.kh, g.kw, g.oh, g.ow]))
            }
            Op::ConvTranspose2d { geom: g, .. } => {
                (mul(&[g.cin, g.cout, g.kh, g.kw, g.h, g.w]), mul(&[g.cout, g.kh, g.kw, g.h, g.w]))
            }
            Op::AvgPool2d(g) | Op::MaxPool2d(g) => {
                (mul(&[g.c, g.oh, g.ow, g.kernel[0], g.kernel[1]]), Some(0))
            }
            Op::ChannelAffine { .. }
            | Op::Relu
            | Op::LeakyRelu { .. }
            | Op::Clamp { .. }
            | Op::Reshape
            | Op::Sigmoid
            | Op::Tanh
            | Op::Gather { .. }
            | Op::Embed { .. } => (out, Some(0)),
        }
    }

    /// How the exact chain treats the layer.
    pub fn kind(&self) -> Kind {
        self.op.kind()
    }

    /// [`abs_layer`] of this layer, built on first use and kept with it (with its kernels' plans), so that
    /// every bound over the layer shares one.
    pub fn abs(&self) -> Option<&Layer> {
        self.plan.abs.get_or_init(|| abs_layer(self).map(Box::new)).as_deref()
    }

    /// [`adjoint_layer`] of this layer, built on first use and kept with it, like [`Self::abs`].
    pub fn adjoint(&self) -> Option<&Layer> {
        self.plan.adjoint.get_or_init(|| adjoint_layer(self).map(Box::new)).as_deref()
    }

    /// The absolute value of the layer's weights in single precision, for the radius pass of sound bounds
    /// ([`Single`]): a `conv2d` (row stride 1 or 2, kernels up to 8 wide) or `linear` layer on a CPU with
    /// AVX-512F whose weights are zero or of magnitude in `[2^-40, 2^40]`; built on first use and kept with the
    /// layer.
    pub fn single(&self) -> Option<&Single> {
        self.plan
            .single
            .get_or_init(|| {
                match &self.op {
                    Op::Linear { weight, inputs, outputs, .. } => Single::linear(weight, *inputs, *outputs),
                    Op::Conv2d { weight, geom, .. } => Single::conv2d(weight, geom),
                    _ => None,
                }
                .map(Box::new)
            })
            .as_deref()
    }

    /// The layer's linear part `W` in single precision, each weight rounded to the nearest `f32`, for the offset
    /// pass of the hybrid's chord bands: where [`Self::single`] exists, on the same kernels; built on first use
    /// and kept with the layer.
    pub fn single_signed(&self) -> Option<&Single> {
        self.plan
            .signed
            .get_or_init(|| {
                match &self.op {
                    Op::Linear { weight, inputs, outputs, .. } => {
                        Single::linear_signed(weight, *inputs, *outputs)
                    }
                    Op::Conv2d { weight, geom, .. } => Single::conv2d_signed(weight, geom),
                    _ => None,
                }
                .map(Box::new)
            })
            .as_deref()
    }

    /// The elementwise activation the layer applies, if it is one.
    pub fn activation(&self) -> Option<Activation> {
        self.op.activation()
    }

    /// The thresholds at which an elementwise PL activation changes its linear face (none for other layers).
    pub fn faces(&self) -> &'static [Face] {
        self.activation().map_or(&[], Activation::faces)
    }

    /// The threshold value of a face (`0` for relu, the bounds for clamp).
    pub fn face_value(&self, face: Face) -> f64 {
        self.activation().map_or(f64::NAN, |a| a.face_value(face))
    }

    /// An elementwise activation applied to one value (the identity for layers that are not activations).
    #[inline]
    pub fn activate(&self, x: f64) -> f64 {
        self.activation().map_or(x, |a| a.value(x))
    }

    /// For an affine layer with a constant term (bias, shift, fixed inputs), the same layer with that term set
    /// to zero: its linear part, which maps differences of inputs (Jacobian columns, directions). `None` for
    /// affine layers that are already linear and for layers that are not affine.
    pub fn linear_part(&self) -> Option<Layer> {
        match self.linear_op(|c| c.to_vec()) {
            LinearOp::Mapped(op) => Some(self.with_op(op)),
            LinearOp::AlreadyLinear | LinearOp::NotAffine => None,
        }
    }

    /// The same shapes and name with another op (without copying this layer's parameters).
    pub(crate) fn with_op(&self, op: Op) -> Layer {
        Layer {
            name: self.name,
            op,
            in_shape: self.in_shape.clone(),
            out_shape: self.out_shape.clone(),
            plan: Plans::default(),
        }
    }

    /// The linear part of an affine op with its coefficients (weights, scales) mapped by `coef` and its
    /// constant term (bias, shift, fixed inputs) set to zero. Every op is listed: [`Layer::linear_part`] and
    /// [`abs_layer`] both read this one table.
    pub(crate) fn linear_op(&self, coef: impl Fn(&[f64]) -> Vec<f64>) -> LinearOp {
        let zeros = |v: &[f64]| vec![0.0; v.len()];
        LinearOp::Mapped(match &self.op {
            Op::Linear { weight, bias, inputs, outputs } => {
                Op::Linear { weight: coef(weight), bias: zeros(bias), inputs: *inputs, outputs: *outputs }
            }
            Op::Conv2d { weight, bias, geom } => {
                Op::Conv2d { weight: coef(weight), bias: zeros(bias), geom: *geom }
            }
            Op::ConvTranspose2d { weight, bias, geom } => {
                Op::ConvTranspose2d { weight: coef(weight), bias: zeros(bias), geom: *geom }
            }
            Op::ChannelAffine { scale, shift, spatial } => {
                Op::ChannelAffine { scale: coef(scale), shift: zeros(shift), spatial: *spatial }
            }
            Op::Embed { prefix, suffix } => Op::Embed { prefix: zeros(prefix), suffix: zeros(suffix) },
            // Linear already, with coefficients that are non-negative (copies, averages).
            Op::Reshape | Op::AvgPool2d(_) | Op::Gather { .. } => return LinearOp::AlreadyLinear,
            Op::Relu
            | Op::LeakyRelu { .. }
            | Op::Clamp { .. }
            | Op::MaxPool2d(_)
            | Op::Sigmoid
            | Op::Tanh => return LinearOp::NotAffine,
        })
    }

    /// Applies the layer to one sample, appending its `out_len` values to `out`: the bits [`Layer::apply`]
    /// gives. The exact chain applies an activation this way as it walks a layer's breakpoints, so that the
    /// layer's input is never copied.
    pub fn apply_append(&self, x: &[f64], out: &mut Vec<f64>, scratch: &mut Scratch) {
        debug_assert_eq!(x.len(), self.in_len());
        if !self.append_piecewise(x, out) {
            let mut row = std::mem::take(&mut scratch.row);
            self.apply(x, 1, &mut row, scratch);
            out.extend_from_slice(&row);
            scratch.row = row;
        }
    }

    /// Appends the values of an elementwise piecewise-linear op (relu, leaky relu, clamp) at every value of `x`
    /// to `out`, for [`Layer::apply`] and [`Layer::apply_append`] alike; `false` (nothing appended) for other ops.
    fn append_piecewise(&self, x: &[f64], out: &mut Vec<f64>) -> bool {
        match &self.op {
            Op::Relu => out.extend(x.iter().map(|&v| v.max(0.0))),
            Op::LeakyRelu { slope } => out.extend(x.iter().map(|&v| if v >= 0.0 { v } else { slope * v })),
            Op::Clamp { min, max } => out.extend(x.iter().map(|&v| v.max(*min).min(*max))),
            _ => return false,
        }
        true
    }

    /// Applies the layer to a batch of `n` samples, writing `n × out_len` values into `out`.
    pub fn apply(&self, input: &[f64], n: usize, out: &mut Vec<f64>, scratch: &mut Scratch) {
        debug_assert_eq!(input.len(), n * self.in_len());
        let out_len = self.out_len();
        // Every op below writes every output value, so the buffer is only resized, not cleared: zeroing it
        // first was a tenth of the engine's time (`ops::tests::every_op_writes_every_output` keeps this true).
        out.resize(n * out_len, 0.0);
        match &self.op {
            Op::Linear { weight, bias, inputs, outputs } => linear::linear(
                input,
                n,
                weight,
                bias,
                (*inputs, *outputs),
                out,
                &self.plan.linear,
                &mut scratch.linear,
            ),
            Op::Conv2d { weight, bias, geom } => {
                conv::conv2d(input, n, weight, bias, geom, out, &self.plan.conv, scratch)
            }
            Op::ConvTranspose2d { weight, bias, geom } => {
                conv::conv_transpose2d(input, n, weight, bias, geom, out, &self.plan.conv, scratch)
            }
            Op::ChannelAffine { scale, shift, spatial } => {
                for (x_s, y_s) in input.chunks_exact(self.in_len()).zip(out.chunks_exact_mut(out_len)) {
                    for (c, (xc, yc)) in
                        x_s.chunks_exact(*spatial).zip(y_s.chunks_exact_mut(*spatial)).enumerate()
                    {
                        for (x, y) in xc.iter().zip(yc) {
                            *y = scale[c] * x + shift[c];
                        }
                    }
                }
            }
            Op::Relu | Op::LeakyRelu { .. } | Op::Clamp { .. } => {
                out.clear();
                self.append_piecewise(input, out);
            }
            Op::Sigmoid => out.iter_mut().zip(input).for_each(|(y, &x)| *y = Activation::Sigmoid.value(x)),
            Op::Tanh => out.iter_mut().zip(input).for_each(|(y, &x)| *y = x.tanh()),
            Op::Reshape => out.copy_from_slice(input),
            Op::AvgPool2d(g) => pool(input, n, g, out, scratch, false),
            Op::MaxPool2d(g) => pool(input, n, g, out, scratch, true),
            Op::Gather { index } => {
                for (x_s, y_s) in input.chunks_exact(self.in_len()).zip(out.chunks_exact_mut(out_len)) {
                    for (y, &i) in y_s.iter_mut().zip(index) {
                        *y = x_s[i];
                    }
                }
            }
            Op::Embed { prefix, suffix } => {
                let m = self.in_len();
                for (x_s, y_s) in input.chunks_exact(m).zip(out.chunks_exact_mut(out_len)) {
                    y_s[..prefix.len()].copy_from_slice(prefix);
                    y_s[prefix.len()..prefix.len() + m].copy_from_slice(x_s);
                    y_s[prefix.len() + m..].copy_from_slice(suffix);
                }
            }
        }
    }
}

fn pool(input: &[f64], n: usize, g: &PoolGeom, out: &mut [f64], scratch: &mut Scratch, max: bool) {
    let in_len = g.c * g.h * g.w;
    let out_len = g.c * g.oh * g.ow;
    let area = (g.kernel[0] * g.kernel[1]) as f64;
    let window = &mut scratch.window;
    for ch in 0..g.c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                g.window(ch, oy, ox, window);
                let o = (ch * g.oh + oy) * g.ow + ox;
                for s in 0..n {
                    let x = &input[s * in_len..(s + 1) * in_len];
                    out[s * out_len + o] = if max {
                        window.iter().map(|&i| x[i]).fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        window.iter().map(|&i| x[i]).sum::<f64>() / area
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::CardBuilder;

    /// `Layer::apply` reuses its output buffer without clearing it, so every op must write every output value:
    /// each layer of networks that hold every op kind is applied into a buffer full of NaN.
    #[test]
    fn every_op_writes_every_output() {
        let convs = CardBuilder::new("a", &[2, 8, 8], 1)
            .conv2d(3, 3, 1, 1)
            .batch_norm()
            .relu()
            .max_pool2d(2, 2, 0)
            .conv_transpose2d(2, 4, 2, 1, 0)
            .leaky_relu(0.1)
            .avg_pool2d(2, 2, 0)
            .clamp(-1.0, 1.0)
            .flatten()
            .linear(5)
            .sigmoid()
            .reshape(&[5, 1])
            .tanh()
            .network()
            .unwrap();
        let embed = Layer::embed(vec![1.0, 2.0], 3, vec![4.0]).unwrap();
        let card: crate::card::ModelCard = toml::from_str(
            r#"format = "gcert-model/1"
            name = "pair"
            weights = "pair.safetensors"
            input_shapes = [[1, 2, 2], [1, 2, 2]]
            [[layers]]
            op = "concat"
            axis = 2"#,
        )
        .unwrap();
        let pair =
            crate::Network::from_card(&card, &Default::default(), std::path::Path::new("pair.toml")).unwrap();
        let layers: Vec<&Layer> = convs.layers().iter().chain([&embed]).chain(pair.layers()).collect();
        let mut names: Vec<&str> = Vec::new();
        for layer in layers {
            for n in [1, 3, 17] {
                let x: Vec<f64> = (0..n * layer.in_len()).map(|i| (i % 13) as f64 / 7.0 - 0.9).collect();
                let mut out = vec![f64::NAN; n * layer.out_len()];
                layer.apply(&x, n, &mut out, &mut Scratch::default());
                assert!(
                    out.iter().all(|v| v.is_finite()),
                    "{} leaves values unwritten (n = {n})",
                    layer.name()
                );
            }
            names.push(layer.name());
        }
        for op in ["conv2d", "conv_transpose2d", "linear", "max_pool2d", "avg_pool2d", "embed", "concat"] {
            assert!(names.contains(&op), "{op} not covered: {names:?}");
        }
    }

    /// `apply_append` gives `apply`'s bits on every op, appended after what the buffer held.
    #[test]
    fn apply_append_is_apply() {
        let net = CardBuilder::new("a", &[2, 6, 6], 3)
            .gain(2.0)
            .conv2d(3, 3, 1, 1)
            .batch_norm()
            .relu()
            .max_pool2d(2, 2, 0)
            .leaky_relu(0.1)
            .clamp(-0.5, 0.5)
            .avg_pool2d(3, 3, 0)
            .flatten()
            .linear(4)
            .tanh()
            .network()
            .unwrap();
        let mut scratch = Scratch::default();
        for layer in net.layers() {
            let x: Vec<f64> = (0..layer.in_len()).map(|i| ((i * 37) % 17) as f64 / 5.0 - 1.6).collect();
            let mut want = Vec::new();
            layer.apply(&x, 1, &mut want, &mut scratch);
            let mut got = vec![7.0];
            layer.apply_append(&x, &mut got, &mut scratch);
            assert_eq!(got[0], 7.0);
            assert_eq!(&got[1..], &want[..], "{}", layer.name());
        }
    }
}
