//! The exact line on libtorch: the algorithm of `gcert-exactline` (docs/mathematics.md §2), batched in
//! PyTorch tensors, as an outside reference for the engine — its speed (`benches/reference.rs`, in f64 and
//! f32) and its chains (the tests compare the two).
//!
//! Every breakpoint of a layer's input goes through each affine layer as one batch (libtorch's own GEMM and
//! convolution kernels, oneDNN on CPU). At an elementwise piecewise-linear layer (relu, leaky relu, clamp),
//! each coordinate whose value crosses one of the layer's thresholds strictly between two consecutive
//! breakpoints adds a breakpoint at the crossing, with the layer's input there interpolated from its two
//! neighbours (exact: the input is affine in `t` between them); the new breakpoints are merged in ratio order
//! and a ratio that repeats one already present is dropped. Ratios are kept in f64 whatever the precision of
//! the values. Unlike the engine, the reference does not stream: each layer holds the whole chain at once,
//! which is what lets libtorch batch it, and what bounds the segments it can take by memory.
//!
//! Max pooling (whose breakpoints are arg-max switches, not threshold crossings) and non-piecewise-linear
//! layers are refused with an error naming the layer.

use gcert_core::card::LayerSpec;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::nn::{Net, BN_MOMENTUM};

/// The chain of a segment as the reference computes it: the ratios in `[0, 1]`, increasing, and the last
/// network's output at each (`[ratios.len(), ...output shape]`, in the networks' precision).
#[derive(Debug)]
pub struct ReferenceChain {
    pub ratios: Vec<f64>,
    pub outputs: Tensor,
}

impl ReferenceChain {
    /// Number of linear pieces.
    pub fn pieces(&self) -> usize {
        self.ratios.len().saturating_sub(1)
    }
}

/// The thresholds at which a layer's output stops being affine in its input, or `None` for an affine layer.
fn thresholds(net: &Net, index: usize, spec: &LayerSpec) -> Result<Option<Vec<f64>>> {
    Ok(match spec {
        LayerSpec::Linear { .. }
        | LayerSpec::Conv2d { .. }
        | LayerSpec::ConvTranspose2d { .. }
        | LayerSpec::BatchNorm { .. }
        | LayerSpec::AvgPool2d { .. }
        | LayerSpec::Flatten
        | LayerSpec::Reshape { .. } => None,
        LayerSpec::Relu | LayerSpec::LeakyRelu { .. } => Some(vec![0.0]),
        LayerSpec::Clamp { min, max } => Some(min.iter().chain(max).copied().collect()),
        LayerSpec::MaxPool2d { .. } | LayerSpec::Sigmoid | LayerSpec::Tanh | LayerSpec::Concat { .. } => {
            return Err(Error::input(format!(
                "{}: layer {index} ({}) is not supported by the libtorch reference of the exact line",
                net.name,
                spec.op_name()
            )))
        }
    })
}

/// The chain of the segment from `a` to `b` through `nets` composed in order (each single-input, all of one
/// kind and on one device). `a` and `b` are the first network's input, flattened.
pub fn exact_line(nets: &[&Net], a: &[f64], b: &[f64]) -> Result<ReferenceChain> {
    let Some(first) = nets.first() else {
        return Err(Error::input("the reference exact line needs at least one network"));
    };
    if first.input_shapes.len() != 1 {
        return Err(Error::input(format!("{}: the reference takes single-input networks only", first.name)));
    }
    let shape = &first.input_shapes[0];
    let len: i64 = shape.iter().product();
    if a.len() as i64 != len || b.len() as i64 != len {
        return Err(Error::input(format!(
            "{}: the segment's ends have {} and {} values, the network takes {len}",
            first.name,
            a.len(),
            b.len()
        )));
    }
    let (kind, device) = (first.kind(), first.device());
    let mut batch_shape = vec![2];
    batch_shape.extend_from_slice(shape);
    let ends: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut x = Tensor::f_from_slice(&ends)?
        .f_reshape(batch_shape.as_slice())?
        .f_to_kind(kind)?
        .f_to_device(device)?;
    let mut ratios = Tensor::f_from_slice(&[0.0f64, 1.0])?.f_to_device(device)?;
    for net in nets {
        for (index, layer) in net.layers.iter().enumerate() {
            if let Some(cuts) = thresholds(net, index, &layer.spec)? {
                (x, ratios) = refine(&x, &ratios, &cuts)?;
            }
            x = layer.apply(&x, false, BN_MOMENTUM)?;
        }
    }
    let ratios = Vec::<f64>::try_from(ratios.f_to_device(Device::Cpu)?)?;
    Ok(ReferenceChain { ratios, outputs: x })
}

/// Adds the breakpoints where a coordinate of `x` (`[n, ...]`, at `ratios`) crosses one of `cuts` strictly
/// between two consecutive breakpoints, with `x` interpolated there.
fn refine(x: &Tensor, ratios: &Tensor, cuts: &[f64]) -> Result<(Tensor, Tensor)> {
    let n = x.size()[0];
    if n < 2 {
        return Ok((x.shallow_clone(), ratios.shallow_clone()));
    }
    let flat = x.f_reshape([n, -1])?;
    let width = flat.size()[1];
    let (u, v) = (flat.f_narrow(0, 0, n - 1)?, flat.f_narrow(0, 1, n - 1)?);
    let mut intervals = Vec::with_capacity(cuts.len());
    let mut fractions = Vec::with_capacity(cuts.len());
    for &c in cuts {
        let (du, dv) = (u.f_sub_scalar(c)?, v.f_sub_scalar(c)?);
        let rising = du.f_lt(0.0)?.f_logical_and(&dv.f_gt(0.0)?)?;
        let falling = du.f_gt(0.0)?.f_logical_and(&dv.f_lt(0.0)?)?;
        let hits = rising.f_logical_or(&falling)?.f_nonzero()?;
        if hits.size()[0] == 0 {
            continue;
        }
        let (row, col) = (hits.f_select(1, 0)?, hits.f_select(1, 1)?);
        let at = row.f_mul_scalar(width)?.f_add(&col)?;
        let (a, b) =
            (du.f_reshape([-1])?.f_index_select(0, &at)?, dv.f_reshape([-1])?.f_index_select(0, &at)?);
        let s = a.f_div(&a.f_sub(&b)?)?;
        intervals.push(row);
        fractions.push(s);
    }
    if intervals.is_empty() {
        return Ok((x.shallow_clone(), ratios.shallow_clone()));
    }
    let row = Tensor::f_cat(&intervals, 0)?;
    let s = Tensor::f_cat(&fractions, 0)?;
    // The new points: ratios t0 + s (t1 − t0) in f64, values u + s (v − u) in the values' precision.
    let t0 = ratios.f_index_select(0, &row)?;
    let t1 = ratios.f_index_select(0, &row.f_add_scalar(1)?)?;
    let t = t0.f_add(&s.f_to_kind(Kind::Double)?.f_mul(&t1.f_sub(&t0)?)?)?;
    let (ur, vr) = (u.f_index_select(0, &row)?, v.f_index_select(0, &row)?);
    let pre = ur.f_add(&vr.f_sub(&ur)?.f_mul(&s.f_unsqueeze(1)?)?)?;
    // Merge in ratio order; a stable sort keeps an existing point before a new one at the same ratio, and only
    // the first of equal ratios stays.
    let all_t = Tensor::f_cat(&[ratios, &t], 0)?;
    let all_x = Tensor::f_cat(&[&flat, &pre], 0)?;
    let (sorted, order) = all_t.f_sort_stable(true, 0, false)?;
    let m = sorted.size()[0];
    let keep = Tensor::f_cat(
        &[
            Tensor::f_ones([1], (Kind::Bool, sorted.device()))?,
            sorted.f_narrow(0, 1, m - 1)?.f_gt_tensor(&sorted.f_narrow(0, 0, m - 1)?)?,
        ],
        0,
    )?;
    let kept = order.f_masked_select(&keep)?;
    let new_ratios = all_t.f_index_select(0, &kept)?;
    let mut shape = x.size();
    shape[0] = kept.size()[0];
    let new_x = all_x.f_index_select(0, &kept)?.f_reshape(shape.as_slice())?;
    Ok((new_x, new_ratios))
}
