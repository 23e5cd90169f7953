//! Validated networks: a model card resolved against its weights.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::card::{LayerSpec, ModelCard, FORMAT};
use crate::error::{Error, Result};
use crate::limits::{checked_numel, conv2d_out, conv_transpose2d_out, numel, pool2d_out, Limits};
use crate::ops::{ConvGeom, Kind, Layer, Op, PoolGeom, Scratch};
use crate::tensors::{write_safetensors, Precision, Tensor, TensorStore};

/// A network ready to evaluate: every tensor present, every shape checked, every value finite.
///
/// The fields are private so that every `Network` has passed [`Network::from_card`]'s validation; read them
/// through the accessors.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    name: String,
    /// The card this network was loaded from (or a label for in-memory networks); used in messages.
    path: PathBuf,
    /// One shape per input (one sample each, no batch dimension).
    input_shapes: Vec<Vec<usize>>,
    layers: Vec<Layer>,
}

impl Network {
    /// Loads and validates a model card and the weights it names.
    pub fn load(card_path: impl AsRef<Path>) -> Result<Network> {
        Network::load_with(card_path, &crate::loader::LoadOptions::current())
    }

    /// Builds a network from a card and tensors already in memory; `origin` labels error messages.
    pub fn from_card(card: &ModelCard, tensors: &TensorStore, origin: &Path) -> Result<Network> {
        Network::from_card_with(card, tensors, origin, &Limits::current())
    }

    /// [`Network::from_card`] under explicit limits: every size is checked against them before anything of
    /// that size is allocated or run.
    pub fn from_card_with(
        card: &ModelCard,
        tensors: &TensorStore,
        origin: &Path,
        limits: &Limits,
    ) -> Result<Network> {
        if card.format != FORMAT {
            return Err(Error::card(
                origin,
                format!("unsupported format '{}', expected '{FORMAT}'", card.format),
            ));
        }
        let input_shapes = match (&card.input_shape, &card.input_shapes) {
            (Some(s), None) => vec![s.clone()],
            (None, Some(s)) if !s.is_empty() => s.clone(),
            (None, None) | (None, Some(_)) => {
                return Err(Error::card(
                    origin,
                    "the card needs input_shape (or input_shapes for several inputs)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Error::card(origin, "give either input_shape or input_shapes, not both"))
            }
        };
        let mut total = 0usize;
        for s in &input_shapes {
            if s.is_empty() || s.contains(&0) {
                return Err(Error::card(origin, format!("input shape {s:?} must have positive dimensions")));
            }
            let n = checked_numel(s, "input shape", limits).map_err(|m| Error::card(origin, m))?;
            total = total.checked_add(n).ok_or_else(|| Error::card(origin, "the inputs' sizes overflow"))?;
            limits.check_elements("the inputs together", total).map_err(|m| Error::card(origin, m))?;
        }
        if card.layers.is_empty() {
            return Err(Error::card(origin, "the card has no layers"));
        }
        let mut used = BTreeSet::new();
        let mut layers = Vec::with_capacity(card.layers.len());
        let mut shape = input_shapes[0].clone();
        for (index, spec) in card.layers.iter().enumerate() {
            let ctx = Ctx { origin, index, op: spec.op_name(), tensors, used: &mut used };
            let layer = if index == 0 && input_shapes.len() > 1 {
                match spec {
                    LayerSpec::Concat { axis } => concat(&ctx, &input_shapes, *axis)?,
                    _ => return Err(ctx.err("a model with several inputs must start with a concat layer")),
                }
            } else {
                resolve(ctx, spec, &shape)?
            };
            limits.check_layer(&layer).map_err(|message| Error::Layer {
                path: origin.to_path_buf(),
                index,
                op: spec.op_name().to_string(),
                message,
            })?;
            shape = layer.out_shape.clone();
            layers.push(layer);
        }
        let unused: Vec<&String> = tensors
            .keys()
            .filter(|k| !used.contains(k.as_str()) && !k.ends_with("num_batches_tracked"))
            .collect();
        if !unused.is_empty() {
            return Err(Error::card(
                origin,
                format!("the weights file has tensors no layer uses: {}", join_names(&unused)),
            ));
        }
        Ok(Network { name: card.name.clone(), path: origin.to_path_buf(), input_shapes, layers })
    }

    /// The card's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The card this network was loaded from (or the label given to [`Network::from_card`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One shape per input (one sample each, no batch dimension).
    pub fn input_shapes(&self) -> &[Vec<usize>] {
        &self.input_shapes
    }

    /// The validated layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The shape of a point of the network's whole input space: the input's shape for a model with one
    /// input, else `[input_len()]` (the inputs' values concatenated in order). Every command that reads a
    /// point or a segment end for a network reads it in this shape (or flat).
    pub fn input_point_shape(&self) -> Vec<usize> {
        match self.input_shapes.as_slice() {
            [one] => one.clone(),
            _ => vec![self.input_len()],
        }
    }

    /// The shape of the one input of a network used as `role` ("generator", say); an error naming the card
    /// if it has several.
    pub fn single_input_shape(&self, role: &str) -> Result<&[usize]> {
        match self.input_shapes.as_slice() {
            [one] => Ok(one),
            many => Err(Error::card(
                &self.path,
                format!("a {role} takes one input, this card has {}", many.len()),
            )),
        }
    }

    /// Number of values of one sample's input (all inputs together).
    pub fn input_len(&self) -> usize {
        self.input_shapes.iter().map(|s| s.iter().product::<usize>()).sum()
    }

    pub fn output_shape(&self) -> &[usize] {
        &self.layers.last().expect("a network has layers").out_shape
    }

    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// The index of the first layer that is not piecewise linear, if any.
    pub fn first_nonlinear(&self) -> Option<usize> {
        self.layers.iter().position(|l| l.kind() == Kind::NonLinear)
    }

    /// Evaluates a batch of `n` inputs (row-major, `n × input_len`).
    pub fn forward(&self, input: &[f64], n: usize) -> Result<Vec<f64>> {
        forward_layers(self.layers.iter(), self.input_len(), input, n)
    }
}

/// Evaluates a batch through a sequence of layers; checks the batch length and that values are finite.
///
/// The batch runs in chunks of [`chunk_points`] points through reused buffers, so that a layer's input and
/// output stay in the second-level cache: on the trained MNIST composition (8,192 values at its widest), 53
/// points at once cost about 165 µs per point, chunks of 16 about 100. A point's output does not depend on the
/// points it shares a batch with, so the chunks give the same bits as one batch.
pub fn forward_layers<'a>(
    layers: impl IntoIterator<Item = &'a Layer>,
    input_len: usize,
    input: &[f64],
    n: usize,
) -> Result<Vec<f64>> {
    if input.len() != n * input_len {
        return Err(Error::input(format!(
            "a batch of {n} samples needs {} values, found {}",
            n * input_len,
            input.len()
        )));
    }
    check_finite("input", input)?;
    let layers: Vec<&Layer> = layers.into_iter().collect();
    let output_len = layers.last().map_or(input_len, |l| l.out_len());
    let chunk = chunk_points(&layers, input_len);
    let mut outputs = Vec::with_capacity(n * output_len);
    let mut scratch = Scratch::default();
    let (mut cur, mut next) = (Vec::new(), Vec::new());
    for first in (0..n).step_by(chunk) {
        let m = chunk.min(n - first);
        cur.clear();
        cur.extend_from_slice(&input[first * input_len..(first + m) * input_len]);
        for (index, layer) in layers.iter().enumerate() {
            layer.apply(&cur, m, &mut next, &mut scratch);
            check_output(index, layer, &next, first)?;
            std::mem::swap(&mut cur, &mut next);
        }
        outputs.extend_from_slice(&cur);
    }
    Ok(outputs)
}

/// Points per chunk of [`forward_layers`]: as many as keep the widest value vector of the sequence within 1 MiB
/// (16 points of 8,192 values; 16–24 were fastest on the trained MNIST composition, 8 and 53 slower).
pub fn chunk_points(layers: &[&Layer], input_len: usize) -> usize {
    const CHUNK_BYTES: usize = 1 << 20;
    let widest = layers.iter().map(|l| l.out_len()).fold(input_len, usize::max).max(1);
    (CHUNK_BYTES / (widest * std::mem::size_of::<f64>())).max(1)
}

/// An error naming the layer (its index in the sequence evaluated, and its op) if its output holds a NaN or an
/// infinity: finite weights and inputs whose products overflow `f64`. Never passed on as a value.
pub fn check_layer_output(index: usize, layer: &Layer, output: &[f64]) -> Result<()> {
    check_output(index, layer, output, 0)
}

/// [`check_layer_output`] for a chunk whose first sample is sample `first` of the batch.
fn check_output(index: usize, layer: &Layer, output: &[f64], first: usize) -> Result<()> {
    if all_finite(output) {
        return Ok(());
    }
    match output.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::NonFinite {
            index,
            op: layer.name.to_string(),
            message: format!(
                "produced a non-finite value ({}) at output {} of sample {}: the computation overflows f64 \
                 (weights or inputs too large); no answer can be trusted",
                output[i],
                i % layer.out_len().max(1),
                first + i / layer.out_len().max(1)
            ),
        }),
    }
}

/// Whether every value is finite: the exponent bits of none are all ones. Written without an early exit inside
/// each chunk so that the compiler vectorises it (it runs on every layer output of the engine).
fn all_finite(values: &[f64]) -> bool {
    // `(bits & EXPONENT) + 2⁵²` reaches the sign bit exactly when the exponent is all ones: integer and, add
    // and or, which vectorise, unlike an early exit or a floating-point sum.
    const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
    const CARRY: u64 = 1 << 52;
    values
        .chunks(1024)
        .all(|c| c.iter().fold(0u64, |acc, v| acc | ((v.to_bits() & EXPONENT) + CARRY)) >> 63 == 0)
}

/// An error if any value is NaN or infinite.
pub fn check_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::input(format!("{what} has a non-finite value ({}) at index {i}", values[i]))),
        None => Ok(()),
    }
}

/// Writes a model card and its weights next to each other; refuses to overwrite existing files.
pub fn save_card(
    card_path: &Path,
    card: &ModelCard,
    tensors: &TensorStore,
    precision: Precision,
    overwrite: bool,
) -> Result<()> {
    let weights_path = card_path.parent().unwrap_or(Path::new(".")).join(&card.weights);
    for p in [card_path, weights_path.as_path()] {
        if p.exists() && !overwrite {
            return Err(Error::card(p, "already exists; refusing to overwrite it"));
        }
    }
    // Validate before writing so that a broken card never reaches the disk.
    Network::from_card(card, tensors, card_path)?;
    let text = toml::to_string(card).map_err(|e| Error::card(card_path, e.to_string()))?;
    write_safetensors(&weights_path, tensors, precision)?;
    crate::io::write_atomic(card_path, true, |w| w.write_all(text.as_bytes()))
}

fn join_names(names: &[&String]) -> String {
    names.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

struct Ctx<'a> {
    origin: &'a Path,
    index: usize,
    op: &'static str,
    tensors: &'a TensorStore,
    used: &'a mut BTreeSet<String>,
}

impl Ctx<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Layer {
            path: self.origin.to_path_buf(),
            index: self.index,
            op: self.op.to_string(),
            message: message.into(),
        }
    }

    /// Fetches a tensor and checks its rank; `expected` entries of `None` accept any size.
    fn tensor(&mut self, role: &str, name: &str, expected: &[Option<usize>]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| self.err(format!("{role} tensor '{name}' is missing from the weights file")))?;
        self.used.insert(name.to_string());
        let fits = t.shape.len() == expected.len()
            && t.shape.iter().zip(expected).all(|(&f, e)| e.is_none_or(|e| e == f));
        if !fits {
            let exp: Vec<String> =
                expected.iter().map(|e| e.map_or("_".to_string(), |v| v.to_string())).collect();
            return Err(self.err(format!(
                "{role} tensor '{name}' has shape {:?}, expected [{}]",
                t.shape,
                exp.join(", ")
            )));
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(self.err(format!(
                "{role} tensor '{name}' has a non-finite value ({}) at flat index {i}",
                t.data[i]
            )));
        }
        Ok(t.clone())
    }

    fn bias(&mut self, bias: &Option<String>, len: usize) -> Result<Vec<f64>> {
        match bias {
            Some(b) => Ok(self.tensor("bias", b, &[Some(len)])?.data),
            None => Ok(vec![0.0; len]),
        }
    }

    fn image(&self, shape: &[usize]) -> Result<[usize; 3]> {
        match shape {
            [c, h, w] => Ok([*c, *h, *w]),
            _ => Err(self.err(format!("expects a [channels, height, width] input, found shape {shape:?}"))),
        }
    }
}

fn layer(name: &'static str, op: Op, in_shape: &[usize], out_shape: Vec<usize>) -> Layer {
    Layer { name, op, in_shape: in_shape.to_vec(), out_shape, plan: Default::default() }
}

fn resolve(mut ctx: Ctx<'_>, spec: &LayerSpec, shape: &[usize]) -> Result<Layer> {
    let name = ctx.op;
    let numel: usize = numel(shape).ok_or_else(|| ctx.err(format!("input shape {shape:?} overflows")))?;
    Ok(match spec {
        LayerSpec::Linear { weight, bias } => {
            let w = ctx.tensor("weight", weight, &[None, None])?;
            let (outputs, inputs) = (w.shape[0], w.shape[1]);
            if shape != [inputs] {
                return Err(ctx.err(format!(
                    "expects a flat input of {inputs} values (weight {:?}), found shape {shape:?}{}",
                    w.shape,
                    if shape.len() > 1 { "; add a flatten layer before it" } else { "" }
                )));
            }
            let bias = ctx.bias(bias, outputs)?;
            layer(name, Op::Linear { weight: w.data, bias, inputs, outputs }, shape, vec![outputs])
        }
        LayerSpec::Conv2d { weight, bias, stride, padding } => {
            let [c, h, wd] = ctx.image(shape)?;
            let w = ctx.tensor("weight", weight, &[None, Some(c), None, None])?;
            let (cout, kh, kw) = (w.shape[0], w.shape[2], w.shape[3]);
            let (stride, padding) = (stride.get(), padding.get());
            if stride.contains(&0) {
                return Err(ctx.err("stride must be positive"));
            }
            let [oh, ow] = conv2d_out([h, wd], [kh, kw], stride, padding).map_err(|m| ctx.err(m))?;
            let bias = ctx.bias(bias, cout)?;
            let geom = ConvGeom { cin: c, cout, kh, kw, stride, padding, h, w: wd, oh, ow };
            layer(name, Op::Conv2d { weight: w.data, bias, geom }, shape, vec![cout, oh, ow])
        }
        LayerSpec::ConvTranspose2d { weight, bias, stride, padding, output_padding } => {
            let [c, h, wd] = ctx.image(shape)?;
            let w = ctx.tensor("weight", weight, &[Some(c), None, None, None])?;
            let (cout, kh, kw) = (w.shape[1], w.shape[2], w.shape[3]);
            let (stride, padding, op) = (stride.get(), padding.get(), output_padding.get());
            if stride.contains(&0) {
                return Err(ctx.err("stride must be positive"));
            }
            if op[0] >= stride[0] || op[1] >= stride[1] {
                return Err(ctx.err("output_padding must be smaller than stride"));
            }
            let [oh, ow] =
                conv_transpose2d_out([h, wd], [kh, kw], stride, padding, op).map_err(|m| ctx.err(m))?;
            let bias = ctx.bias(bias, cout)?;
            let geom = ConvGeom { cin: c, cout, kh, kw, stride, padding, h, w: wd, oh, ow };
            layer(name, Op::ConvTranspose2d { weight: w.data, bias, geom }, shape, vec![cout, oh, ow])
        }
        LayerSpec::BatchNorm { weight, bias, running_mean, running_var, eps } => {
            let c = shape[0];
            let mean = ctx.tensor("running_mean", running_mean, &[Some(c)])?.data;
            let var = ctx.tensor("running_var", running_var, &[Some(c)])?.data;
            let gamma = match weight {
                Some(w) => ctx.tensor("weight", w, &[Some(c)])?.data,
                None => vec![1.0; c],
            };
            let beta = ctx.bias(bias, c)?;
            if eps.is_nan() || *eps < 0.0 {
                return Err(ctx.err(format!("eps must be non-negative, found {eps}")));
            }
            if let Some(i) = var.iter().position(|&v| v + eps <= 0.0 || (v + eps).is_nan()) {
                return Err(ctx.err(format!("running_var[{i}] + eps = {} is not positive", var[i] + eps)));
            }
            let scale: Vec<f64> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
            let shift: Vec<f64> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
            if let Some(i) = (0..c).find(|&i| !scale[i].is_finite() || !shift[i].is_finite()) {
                return Err(ctx.err(format!(
                    "channel {i} folds to scale {} and shift {}, which overflow f64 (weight / sqrt(running_var + \
                     eps) is too large)",
                    scale[i], shift[i]
                )));
            }
            layer(name, Op::ChannelAffine { scale, shift, spatial: numel / c }, shape, shape.to_vec())
        }
        LayerSpec::Relu => layer(name, Op::Relu, shape, shape.to_vec()),
        LayerSpec::LeakyRelu { slope } => {
            if !slope.is_finite() {
                return Err(ctx.err("slope must be finite"));
            }
            layer(name, Op::LeakyRelu { slope: *slope }, shape, shape.to_vec())
        }
        LayerSpec::Clamp { min, max } => {
            let (lo, hi) = (min.unwrap_or(f64::NEG_INFINITY), max.unwrap_or(f64::INFINITY));
            if min.is_none() && max.is_none() {
                return Err(ctx.err("clamp needs min, max or both"));
            }
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(
                    ctx.err(format!("clamp bounds must satisfy min <= max, found min {lo}, max {hi}"))
                );
            }
            layer(name, Op::Clamp { min: lo, max: hi }, shape, shape.to_vec())
        }
        LayerSpec::Flatten => layer(name, Op::Reshape, shape, vec![numel]),
        LayerSpec::Reshape { shape: target } => {
            let n =
                crate::limits::numel(target).ok_or_else(|| ctx.err(format!("shape {target:?} overflows")))?;
            if n != numel || target.is_empty() {
                return Err(ctx
                    .err(format!("cannot reshape {shape:?} ({numel} values) into {target:?} ({n} values)")));
            }
            layer(name, Op::Reshape, shape, target.clone())
        }
        LayerSpec::AvgPool2d { kernel, stride, padding }
        | LayerSpec::MaxPool2d { kernel, stride, padding } => {
            let [c, h, w] = ctx.image(shape)?;
            let kernel = kernel.get();
            let stride = stride.map_or(kernel, |s| s.get());
            let padding = padding.get();
            if kernel.contains(&0) || stride.contains(&0) {
                return Err(ctx.err("kernel and stride must be positive"));
            }
            if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
                return Err(ctx.err("padding must be at most half the kernel"));
            }
            let [oh, ow] = pool2d_out([h, w], kernel, stride, padding).map_err(|m| ctx.err(m))?;
            let g = PoolGeom { c, kernel, stride, padding, h, w, oh, ow };
            let op =
                if matches!(spec, LayerSpec::MaxPool2d { .. }) { Op::MaxPool2d(g) } else { Op::AvgPool2d(g) };
            layer(name, op, shape, vec![c, oh, ow])
        }
        LayerSpec::Sigmoid => layer(name, Op::Sigmoid, shape, shape.to_vec()),
        LayerSpec::Tanh => layer(name, Op::Tanh, shape, shape.to_vec()),
        LayerSpec::Concat { .. } => {
            return Err(ctx.err("concat may only be the first layer of a model with several inputs"))
        }
    })
}

/// Concatenation of all inputs along `axis` of a sample, as a gather over their flat concatenation.
///
/// Along channels (`axis = 0`) an input of shape `[1]` (a scalar, such as a style translator's strength α)
/// is broadcast over the other inputs' spatial axes: it becomes one constant channel.
fn concat(ctx: &Ctx<'_>, shapes: &[Vec<usize>], axis: usize) -> Result<Layer> {
    let scalar = |s: &Vec<usize>| s.as_slice() == [1];
    let Some(base) = shapes.iter().find(|s| !scalar(s)) else {
        return Err(
            ctx.err(format!("inputs {shapes:?} are all scalars; there is nothing to concatenate them to"))
        );
    };
    let rank = base.len();
    if axis >= rank {
        return Err(ctx.err(format!("axis {axis} is out of range for inputs of rank {rank}")));
    }
    let broadcast = axis == 0 && rank > 1;
    // Each input's shape as concatenated: a broadcast scalar counts as one channel of the base's extent.
    let mut spread = Vec::with_capacity(shapes.len());
    for s in shapes {
        let s = if broadcast && scalar(s) {
            let mut b = base.clone();
            b[0] = 1;
            b
        } else {
            s.clone()
        };
        let same = s.len() == rank && (0..rank).all(|d| d == axis || s[d] == base[d]);
        if !same {
            return Err(ctx.err(format!(
                "inputs {shapes:?} differ outside axis {axis}; they cannot be concatenated (only a scalar \
                 input [1] is broadcast, and only along axis 0)"
            )));
        }
        spread.push(s);
    }
    let mut out_shape = base.clone();
    out_shape[axis] = spread.iter().map(|s| s[axis]).sum();
    let total: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let in_shape = vec![total];
    let offsets: Vec<usize> = shapes
        .iter()
        .scan(0, |acc, s| {
            let o = *acc;
            *acc += s.iter().product::<usize>();
            Some(o)
        })
        .collect();
    let op = if axis == 0 && spread == shapes {
        Op::Reshape
    } else {
        let outer: usize = base[..axis].iter().product();
        let inner: usize = base[axis + 1..].iter().product();
        let mut index = Vec::with_capacity(out_shape.iter().product());
        for o in 0..outer {
            for ((s, full), off) in spread.iter().zip(shapes).zip(&offsets) {
                let block = s[axis] * inner;
                if broadcast && scalar(full) {
                    index.extend(std::iter::repeat_n(*off, block));
                } else {
                    index.extend((0..block).map(|i| off + o * block + i));
                }
            }
        }
        Op::Gather { index }
    };
    Ok(layer("concat", op, &in_shape, out_shape))
}

#[cfg(test)]
mod tests;

/// The layers of networks applied one after the other (a generator, then a classifier), checking that each
/// network's output fits the next one's input.
pub fn compose<'a>(nets: &[&'a Network]) -> Result<Vec<&'a Layer>> {
    for pair in nets.windows(2) {
        let (g, n) = (pair[0], pair[1]);
        if n.input_shapes.len() != 1 {
            return Err(Error::card(
                &n.path,
                format!(
                    "{} has {} inputs; compose it through one input with the others fixed",
                    n.name,
                    n.input_shapes.len()
                ),
            ));
        }
        let fits = g.output_len() == n.input_len()
            && (g.output_shape() == n.input_shapes[0].as_slice() || n.input_shapes[0].len() == 1);
        if !fits {
            return Err(Error::input(format!(
                "{} ({}) outputs shape {:?} but {} ({}) takes input shape {:?}",
                g.name,
                g.path.display(),
                g.output_shape(),
                n.name,
                n.path.display(),
                n.input_shapes[0]
            )));
        }
    }
    Ok(nets.iter().flat_map(|n| n.layers.iter()).collect())
}
