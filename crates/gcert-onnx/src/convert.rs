//! The ONNX graph to a sequence of steps ([`Step`]): constants and shape computations are folded here, every
//! node on the computed path becomes one step on the sample (no batch dimension), and [`crate::emit`] then
//! merges the affine steps and writes the card.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gcert_core::card::{LayerSpec, Pair};

use crate::emit::{self, Ir, Step};
use crate::proto::{tensor_shape_proto::dimension, type_proto, GraphProto, ModelProto, NodeProto};
use crate::read::{is_float_type, tensor_value, type_name, Attrs, Const};
use crate::{Error, Imported, Result};

/// The default-domain opsets whose operator definitions this importer follows.
pub(crate) const OPSETS: std::ops::RangeInclusive<i64> = 7..=28;

/// The value computed from the graph's input: its full ONNX shape (batch of 1 included when `batched`).
#[derive(Debug, Clone)]
struct Dyn {
    shape: Vec<usize>,
    batched: bool,
}

impl Dyn {
    fn sample(&self) -> Vec<usize> {
        if self.batched {
            self.shape[1..].to_vec()
        } else {
            self.shape.clone()
        }
    }

    /// A reshape of the full shape; a leading 1 of a shape of rank two or more is the batch.
    fn reshaped(shape: Vec<usize>) -> Dyn {
        let batched = shape.len() >= 2 && shape[0] == 1;
        Dyn { shape, batched }
    }
}

enum Input<'a> {
    Const(&'a Const),
    Dyn,
    Absent,
}

struct Cx<'a> {
    path: &'a Path,
    dir: PathBuf,
    opset: i64,
    consts: HashMap<String, Const>,
    dyns: HashMap<String, Dyn>,
    current: String,
    steps: Vec<Step>,
}

/// What a node error needs: the node's label and op type.
struct At<'n> {
    node: &'n NodeProto,
    label: String,
}

pub(crate) fn convert(path: &Path, model: &ModelProto, name: &str) -> Result<Imported> {
    let graph: &GraphProto = model.graph.as_ref().expect("read_model checked that the model has a graph");
    let opset = default_opset(path, model)?;
    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut consts = HashMap::new();
    for t in &graph.initializer {
        let c = tensor_value(t, &dir).map_err(|m| Error::file(path, m))?;
        check_finite(path, &format!("initializer '{}'", t.name()), &c)?;
        consts.insert(t.name().to_string(), c);
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(Error::file(path, "the graph has sparse initializers, which gcert does not read"));
    }
    let inputs: Vec<_> = graph.input.iter().filter(|i| !consts.contains_key(i.name())).collect();
    let [input] = inputs.as_slice() else {
        let names: Vec<String> = inputs.iter().map(|i| format!("'{}'", i.name())).collect();
        return Err(Error::file(
            path,
            format!(
                "the graph has {} inputs ({}); gcert imports networks with exactly one input",
                inputs.len(),
                names.join(", ")
            ),
        ));
    };
    let input_dyn = input_shape(path, input)?;
    let input_sample = input_dyn.sample();
    let mut cx = Cx {
        path,
        dir,
        opset,
        consts,
        dyns: HashMap::from([(input.name().to_string(), input_dyn)]),
        current: input.name().to_string(),
        steps: Vec::new(),
    };
    for (i, node) in graph.node.iter().enumerate() {
        let label = if node.name().is_empty() {
            format!("#{i} ({})", node.output.first().map_or("", String::as_str))
        } else {
            node.name().to_string()
        };
        cx.node(&At { node, label })?;
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name()).collect();
    let [output] = outputs.as_slice() else {
        return Err(Error::file(
            path,
            format!(
                "the graph has {} outputs; gcert imports networks with exactly one output",
                outputs.len()
            ),
        ));
    };
    if *output != cx.current {
        let what = if cx.dyns.contains_key(*output) {
            "an intermediate value, not the last one computed (the graph is not a chain)"
        } else if cx.consts.contains_key(*output) {
            "a constant that does not depend on the input"
        } else {
            "a value no node computes"
        };
        return Err(Error::file(path, format!("the graph's output '{output}' is {what}")));
    }
    let description = format!(
        "imported from {} by gcert import (ONNX opset {opset}{}; {} nodes)",
        path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        match (model.producer_name(), model.producer_version()) {
            ("", _) => String::new(),
            (p, "") => format!(", made by {p}"),
            (p, v) => format!(", made by {p} {v}"),
        },
        graph.node.len()
    );
    let (card, tensors, precision) = emit::emit(name, input_sample, description, cx.steps, true);
    Ok(Imported { card, tensors, precision, opset, nodes: graph.node.len() })
}

fn default_opset(path: &Path, model: &ModelProto) -> Result<i64> {
    let mut opset = None;
    for o in &model.opset_import {
        if o.domain().is_empty() || o.domain() == "ai.onnx" {
            opset = Some(o.version());
        }
    }
    // IR version 3 and later must declare it; older files meant opset 1.
    let v = opset.unwrap_or(1);
    if !OPSETS.contains(&v) {
        return Err(Error::file(
            path,
            format!(
                "ONNX opset {v} is not supported; gcert imports opsets {} to {} (re-export with another opset_version)",
                OPSETS.start(),
                OPSETS.end()
            ),
        ));
    }
    Ok(v)
}

fn check_finite(path: &Path, what: &str, c: &Const) -> Result<()> {
    match c.data.iter().position(|v| !v.is_finite()) {
        Some(i) => {
            Err(Error::file(path, format!("{what} has a non-finite value ({}) at flat index {i}", c.data[i])))
        }
        None => Ok(()),
    }
}

fn input_shape(path: &Path, input: &crate::proto::ValueInfoProto) -> Result<Dyn> {
    let name = input.name();
    let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        _ => return Err(Error::file(path, format!("the graph input '{name}' is not a tensor"))),
    };
    if !is_float_type(tensor.elem_type()) {
        return Err(Error::file(
            path,
            format!(
                "the graph input '{name}' has element type {}; gcert imports float or double inputs",
                type_name(tensor.elem_type())
            ),
        ));
    }
    let Some(shape) = tensor.shape.as_ref() else {
        return Err(Error::file(
            path,
            format!("the graph input '{name}' has no shape; gcert needs a fixed input shape"),
        ));
    };
    let mut dims = Vec::new();
    for (axis, d) in shape.dim.iter().enumerate() {
        match &d.value {
            Some(dimension::Value::DimValue(v)) if *v > 0 => dims.push(Some(*v as usize)),
            Some(dimension::Value::DimParam(p)) if axis == 0 && shape.dim.len() >= 2 => {
                let _ = p;
                dims.push(None)
            }
            other => {
                let what = match other {
                    Some(dimension::Value::DimParam(p)) => format!("the symbolic size '{p}'"),
                    Some(dimension::Value::DimValue(v)) => format!("size {v}"),
                    None => "no size".to_string(),
                };
                return Err(Error::file(
                    path,
                    format!(
                        "the graph input '{name}' has {what} at axis {axis}; gcert needs a fixed sample shape \
                         (only the batch axis 0 may be symbolic): export with a fixed input size"
                    ),
                ));
            }
        }
    }
    if dims.is_empty() {
        return Err(Error::file(
            path,
            format!("the graph input '{name}' is a scalar; gcert needs a tensor input"),
        ));
    }
    let batched = dims.len() >= 2 && dims[0].is_none_or(|d| d == 1);
    Ok(Dyn { shape: dims.into_iter().map(|d| d.unwrap_or(1)).collect(), batched })
}

/// Numpy broadcasting of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// The values of `c` broadcast to `shape` (row-major), if `c`'s shape broadcasts to exactly `shape`.
fn expand(c: &Const, shape: &[usize]) -> Option<Vec<f64>> {
    if broadcast_shape(&c.shape, shape)? != shape {
        return None;
    }
    let n = shape.len();
    let mut strides = vec![0usize; n];
    let mut s = 1;
    for i in (0..c.shape.len()).rev() {
        let axis = i + n - c.shape.len();
        strides[axis] = if c.shape[i] == 1 { 0 } else { s };
        s *= c.shape[i];
    }
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; n];
    for _ in 0..total {
        out.push(c.data[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for axis in (0..n).rev() {
            idx[axis] += 1;
            if idx[axis] < shape[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
    Some(out)
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

fn pair(v: [usize; 2]) -> Pair {
    if v[0] == v[1] {
        Pair::One(v[0])
    } else {
        Pair::Two(v)
    }
}

impl Cx<'_> {
    fn err(&self, at: &At<'_>, message: impl Into<String>) -> Error {
        Error::Node {
            path: self.path.to_path_buf(),
            node: at.label.clone(),
            op: at.node.op_type().to_string(),
            message: message.into(),
        }
    }

    fn input(&self, at: &At<'_>, i: usize) -> Result<Input<'_>> {
        let Some(name) = at.node.input.get(i).filter(|n| !n.is_empty()) else {
            return Ok(Input::Absent);
        };
        if let Some(c) = self.consts.get(name) {
            return Ok(Input::Const(c));
        }
        if self.dyns.contains_key(name) {
            return Ok(Input::Dyn);
        }
        Err(self
            .err(at, format!("reads '{name}', which no initializer, graph input or earlier node defines")))
    }

    fn konst(&self, at: &At<'_>, i: usize, what: &str) -> Result<Option<Const>> {
        match self.input(at, i)? {
            Input::Const(c) => Ok(Some(c.clone())),
            Input::Absent => Ok(None),
            Input::Dyn => {
                Err(self.err(at, format!("its {what} (input {i}) must be a constant, it is computed")))
            }
        }
    }

    fn out_name(&self, at: &At<'_>) -> Result<String> {
        match at.node.output.first().filter(|o| !o.is_empty()) {
            Some(o) => Ok(o.clone()),
            None => Err(self.err(at, "has no output")),
        }
    }

    fn node(&mut self, at: &At<'_>) -> Result<()> {
        let node = at.node;
        if !(node.domain().is_empty() || node.domain() == "ai.onnx") {
            return Err(self.err(at, format!("operators of domain '{}' are not supported", node.domain())));
        }
        let mut n_dyn = 0;
        let mut dyn_names = Vec::new();
        for i in 0..node.input.len() {
            if let Input::Dyn = self.input(at, i)? {
                n_dyn += 1;
                dyn_names.push(node.input[i].clone());
            }
        }
        let out = self.out_name(at)?;
        if n_dyn == 0 {
            let c = self.fold(at)?;
            self.consts.insert(out, c);
            return Ok(());
        }
        if node.op_type() == "Shape" {
            let d = &self.dyns[&dyn_names[0]];
            let c = shape_of(&d.shape, at);
            self.consts.insert(out, c);
            return Ok(());
        }
        if n_dyn > 1 {
            return Err(self.err(
                at,
                "combines several values computed from the input (a skip connection or branch?); gcert imports \
                 networks that are a chain of layers",
            ));
        }
        if dyn_names[0] != self.current {
            return Err(self.err(
                at,
                format!(
                    "reads '{}', an earlier value than the last one computed ('{}'); gcert imports networks that \
                     are a chain of layers (no skip connections or branches)",
                    dyn_names[0], self.current
                ),
            ));
        }
        let x = self.dyns[&self.current].clone();
        let dyn_index = node.input.iter().position(|n| *n == dyn_names[0]).expect("found above");
        let next = self.layer(at, &x, dyn_index)?;
        self.dyns.insert(out.clone(), next);
        self.current = out;
        Ok(())
    }

    fn push(&mut self, ir: Ir, x: &Dyn, next: Dyn) -> Dyn {
        self.steps.push(Step { ir, in_shape: x.sample(), out_shape: next.sample() });
        next
    }

    fn reshape(&mut self, at: &At<'_>, x: &Dyn, shape: Vec<usize>) -> Result<Dyn> {
        let (n, m): (usize, usize) = (x.shape.iter().product(), shape.iter().product());
        if n != m || shape.is_empty() {
            return Err(self.err(at, format!("cannot reshape {:?} into {shape:?}", x.shape)));
        }
        let next = Dyn::reshaped(shape);
        Ok(self.push(Ir::Reshape, x, next))
    }

    /// A node on the computed path; `xi` is the index of its computed input.
    fn layer(&mut self, at: &At<'_>, x: &Dyn, xi: usize) -> Result<Dyn> {
        let a = Attrs::new(at.node);
        let op = at.node.op_type();
        match op {
            "Identity" => Ok(x.clone()),
            "Dropout" => {
                if let Some(t) = self.konst(at, 2, "training_mode")? {
                    if t.data.iter().any(|&v| v != 0.0) {
                        return Err(self.err(at, "training_mode is true; export the model in eval mode"));
                    }
                }
                Ok(x.clone())
            }
            "Relu" => Ok(self.push(Ir::Plain(LayerSpec::Relu), x, x.clone())),
            "Sigmoid" => Ok(self.push(Ir::Plain(LayerSpec::Sigmoid), x, x.clone())),
            "Tanh" => Ok(self.push(Ir::Plain(LayerSpec::Tanh), x, x.clone())),
            "LeakyRelu" => {
                let slope = a.float("alpha").unwrap_or(0.01);
                Ok(self.push(Ir::Plain(LayerSpec::LeakyRelu { slope }), x, x.clone()))
            }
            "Clip" => {
                let (lo, hi) = if self.opset < 11 {
                    (a.float("min"), a.float("max"))
                } else {
                    (self.bound(at, 1, "min")?, self.bound(at, 2, "max")?)
                };
                self.clamp(at, x, lo, hi)
            }
            "Max" | "Min" => {
                let mut bound: Option<f64> = None;
                for i in 0..at.node.input.len() {
                    if i == xi {
                        continue;
                    }
                    let Some(v) = self.bound(at, i, "operand")? else { continue };
                    bound = Some(match (bound, op) {
                        (None, _) => v,
                        (Some(b), "Max") => b.max(v),
                        (Some(b), _) => b.min(v),
                    });
                }
                match op {
                    "Max" => self.clamp(at, x, bound, None),
                    _ => self.clamp(at, x, None, bound),
                }
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let c = self.konst(at, 1 - xi, "operand")?.expect("a binary node has two inputs");
                let Some(v) = expand(&c, &x.shape) else {
                    return Err(self.err(
                        at,
                        format!(
                            "the constant of shape {:?} does not broadcast to the computed value's shape {:?} \
                             without enlarging it",
                            c.shape, x.shape
                        ),
                    ));
                };
                let n = v.len();
                let (scale, shift) = match (op, xi) {
                    ("Add", _) => (vec![1.0; n], v),
                    ("Sub", 0) => (vec![1.0; n], v.iter().map(|c| -c).collect()),
                    ("Sub", _) => (vec![-1.0; n], v),
                    ("Mul", _) => (v, vec![0.0; n]),
                    ("Div", 0) => {
                        if v.contains(&0.0) {
                            return Err(self.err(at, "divides by a constant that has a zero"));
                        }
                        (v.iter().map(|c| 1.0 / c).collect(), vec![0.0; n])
                    }
                    _ => return Err(self.err(at, "divides a constant by the computed value, which is not affine")),
                };
                Ok(self.push(Ir::Affine { scale, shift }, x, x.clone()))
            }
            "Neg" => {
                let n = x.shape.iter().product();
                Ok(self.push(Ir::Affine { scale: vec![-1.0; n], shift: vec![0.0; n] }, x, x.clone()))
            }
            "Gemm" => self.gemm(at, x, xi, &a),
            "MatMul" => self.matmul(at, x, xi),
            "Conv" => self.conv(at, x, &a, false),
            "ConvTranspose" => self.conv(at, x, &a, true),
            "BatchNormalization" => self.batch_norm(at, x, &a),
            "MaxPool" | "AveragePool" => self.pool(at, x, &a),
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let [c, h, w] = self.image(at, x)?;
                let kernel = Pair::Two([h, w]);
                let spec = if op == "GlobalMaxPool" {
                    LayerSpec::MaxPool2d { kernel, stride: None, padding: Pair::One(0) }
                } else {
                    LayerSpec::AvgPool2d { kernel, stride: None, padding: Pair::One(0) }
                };
                Ok(self.push(Ir::Plain(spec), x, Dyn { shape: vec![1, c, 1, 1], batched: true }))
            }
            "Flatten" => {
                let axis = a.int("axis").unwrap_or(1);
                let rank = x.shape.len();
                let axis = if axis < 0 { axis + rank as i64 } else { axis };
                if !(0..=rank as i64).contains(&axis) {
                    return Err(self.err(at, format!("axis {axis} is out of range for rank {rank}")));
                }
                let axis = axis as usize;
                let shape = vec![x.shape[..axis].iter().product(), x.shape[axis..].iter().product()];
                self.reshape(at, x, shape)
            }
            "Reshape" => {
                let target = match self.konst(at, 1, "shape")? {
                    Some(c) => c.ints().map_err(|m| self.err(at, format!("shape: {m}")))?,
                    None if self.opset < 5 => a.ints("shape").unwrap_or_default(),
                    None => return Err(self.err(at, "has no shape input")),
                };
                let allowzero = a.int("allowzero").unwrap_or(0) != 0;
                let shape = resolve_reshape(&x.shape, &target, allowzero).map_err(|m| self.err(at, m))?;
                self.reshape(at, x, shape)
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = match self.konst(at, 1, "axes")? {
                    Some(c) => Some(c.ints().map_err(|m| self.err(at, format!("axes: {m}")))?),
                    None => a.ints("axes"),
                };
                let shape = squeeze_shape(&x.shape, axes.as_deref(), op == "Unsqueeze").map_err(|m| self.err(at, m))?;
                self.reshape(at, x, shape)
            }
            "Transpose" => {
                let rank = x.shape.len();
                let perm: Vec<i64> = a.ints("perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
                let mut seen = vec![false; rank];
                let mut order = Vec::new();
                for &p in &perm {
                    let Some(p) = norm_axis(p, rank).filter(|&p| !seen[p]) else {
                        return Err(self.err(at, format!("perm {perm:?} is not a permutation of {rank} axes")));
                    };
                    seen[p] = true;
                    order.push(p);
                }
                if order.len() != rank {
                    return Err(self.err(at, format!("perm {perm:?} is not a permutation of {rank} axes")));
                }
                let moved: Vec<usize> = order.iter().copied().filter(|&p| x.shape[p] > 1).collect();
                if moved.windows(2).any(|w| w[0] > w[1]) {
                    return Err(self.err(
                        at,
                        format!(
                            "perm {perm:?} reorders the values of shape {:?}; gcert's cards express only \
                             transposes that move axes of size 1 (re-export without the transpose, e.g. flatten \
                             channels-first)",
                            x.shape
                        ),
                    ));
                }
                let shape = order.iter().map(|&p| x.shape[p]).collect();
                self.reshape(at, x, shape)
            }
            "Softmax" | "LogSoftmax" => Err(self.err(
                at,
                "is not supported: a certificate is about the arg-max, which the logits already give; export the \
                 model without its final softmax",
            )),
            _ => Err(self.err(
                at,
                "is not supported by gcert import (supported: Gemm, MatMul, Add, Sub, Mul, Div, Neg, Conv, \
                 ConvTranspose, BatchNormalization, Relu, LeakyRelu, Clip, Min, Max, Sigmoid, Tanh, MaxPool, \
                 AveragePool, GlobalAveragePool, GlobalMaxPool, Flatten, Reshape, Squeeze, Unsqueeze, Transpose of \
                 size-1 axes, Identity, Dropout, and constant or shape computations)",
            )),
        }
    }

    /// A scalar constant input (a clamp bound); `None` when the input is absent.
    fn bound(&self, at: &At<'_>, i: usize, what: &str) -> Result<Option<f64>> {
        let Some(c) = self.konst(at, i, what)? else { return Ok(None) };
        match c.data.split_first() {
            Some((&v, rest)) if rest.iter().all(|&r| r == v) => Ok(Some(v)),
            _ => Err(self.err(
                at,
                format!(
                    "its {what} must be one value (the card's clamp has scalar bounds), found shape {:?}",
                    c.shape
                ),
            )),
        }
    }

    fn clamp(&mut self, at: &At<'_>, x: &Dyn, min: Option<f64>, max: Option<f64>) -> Result<Dyn> {
        if min.is_none() && max.is_none() {
            return Ok(x.clone());
        }
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(self.err(at, format!("min {lo} is larger than max {hi}")));
            }
        }
        Ok(self.push(Ir::Plain(LayerSpec::Clamp { min, max }), x, x.clone()))
    }

    fn image(&self, at: &At<'_>, x: &Dyn) -> Result<[usize; 3]> {
        match (x.batched, x.shape.as_slice()) {
            (true, [1, c, h, w]) => Ok([*c, *h, *w]),
            _ => Err(self.err(
                at,
                format!(
                    "expects a [1, channels, height, width] input, found shape {:?} (only 2-D images)",
                    x.shape
                ),
            )),
        }
    }

    /// `y = x W + b` for a computed `x` of shape [.., in] with every leading axis of size 1.
    fn linear(&mut self, at: &At<'_>, x: &Dyn, w_in_out: &Const, bias: Vec<f64>, alpha: f64) -> Result<Dyn> {
        let (inputs, outputs) = (w_in_out.shape[0], w_in_out.shape[1]);
        let last = *x.shape.last().expect("a computed value has rank one or more");
        if last != inputs || x.shape.iter().rev().skip(1).any(|&d| d != 1) {
            return Err(self.err(
                at,
                format!(
                    "multiplies a value of shape {:?} by a [{inputs}, {outputs}] matrix; gcert's linear layer needs \
                     a flat input of {inputs} values",
                    x.shape
                ),
            ));
        }
        let mut weight = vec![0.0; inputs * outputs];
        for i in 0..inputs {
            for o in 0..outputs {
                weight[o * inputs + i] = alpha * w_in_out.data[i * outputs + o];
            }
        }
        let flat = Dyn { shape: vec![inputs], batched: false };
        if x.sample() != [inputs] {
            self.push(Ir::Reshape, x, flat.clone());
        }
        let mut out_shape = x.shape.clone();
        *out_shape.last_mut().expect("rank one or more") = outputs;
        let next = Dyn::reshaped(out_shape);
        let lin = Dyn { shape: vec![outputs], batched: false };
        self.push(Ir::Linear { weight, bias, inputs, outputs }, &flat, lin.clone());
        if next.sample() != [outputs] {
            self.push(Ir::Reshape, &lin, next.clone());
        }
        Ok(next)
    }

    fn gemm(&mut self, at: &At<'_>, x: &Dyn, xi: usize, a: &Attrs<'_>) -> Result<Dyn> {
        if xi != 0 || a.int("transA").unwrap_or(0) != 0 {
            return Err(
                self.err(at, "the computed value must be the first operand A, not transposed (transA = 0)")
            );
        }
        let b = self.konst(at, 1, "B")?.expect("Gemm has B");
        if b.shape.len() != 2 {
            return Err(self.err(at, format!("B must be a matrix, found shape {:?}", b.shape)));
        }
        let b = if a.int("transB").unwrap_or(0) != 0 { transpose(&b) } else { b };
        let (alpha, beta) = (a.float("alpha").unwrap_or(1.0), a.float("beta").unwrap_or(1.0));
        let outputs = b.shape[1];
        let bias = match self.konst(at, 2, "C")? {
            Some(c) => match expand(&c, &[outputs]).or_else(|| expand(&c, &[1, outputs])) {
                Some(v) => v.iter().map(|v| beta * v).collect(),
                None => {
                    return Err(self
                        .err(at, format!("C of shape {:?} does not broadcast to [1, {outputs}]", c.shape)))
                }
            },
            None => vec![0.0; outputs],
        };
        if x.shape.len() != 2 {
            return Err(self.err(at, format!("A must be a matrix, found shape {:?}", x.shape)));
        }
        self.linear(at, x, &b, bias, alpha)
    }

    fn matmul(&mut self, at: &At<'_>, x: &Dyn, xi: usize) -> Result<Dyn> {
        let w = self.konst(at, 1 - xi, "weight")?.expect("MatMul has two inputs");
        if xi == 1 {
            // W · x for a column x ([in] or [in, 1]): the same linear layer with W as it is.
            let fits = w.shape.len() == 2
                && (x.shape == [w.shape[1]] || x.shape == [w.shape[1], 1])
                && !(x.batched && w.shape[1] == 1 && x.shape.len() == 2 && w.shape[0] != 1);
            if !fits {
                return Err(self.err(
                    at,
                    format!(
                        "multiplies a constant of shape {:?} by a computed value of shape {:?} from the left; gcert \
                         imports W·x only for a column x",
                        w.shape, x.shape
                    ),
                ));
            }
            let (outputs, inputs) = (w.shape[0], w.shape[1]);
            let flat = Dyn { shape: vec![inputs], batched: false };
            if x.sample() != [inputs] {
                self.push(Ir::Reshape, x, flat.clone());
            }
            let lin = Dyn { shape: vec![outputs], batched: false };
            let ir = Ir::Linear { weight: w.data, bias: vec![0.0; outputs], inputs, outputs };
            self.push(ir, &flat, lin.clone());
            let next = if x.shape.len() == 2 {
                Dyn { shape: vec![outputs, 1], batched: false }
            } else {
                lin.clone()
            };
            if next.sample() != lin.sample() {
                self.push(Ir::Reshape, &lin, next.clone());
            }
            return Ok(next);
        }
        if w.shape.len() != 2 {
            return Err(
                self.err(at, format!("the constant operand must be a matrix, found shape {:?}", w.shape))
            );
        }
        let outputs = w.shape[1];
        self.linear(at, x, &w, vec![0.0; outputs], 1.0)
    }

    fn spatial(&self, at: &At<'_>, a: &Attrs<'_>, name: &str, default: usize) -> Result<[usize; 2]> {
        match a.ints(name) {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 && v.iter().all(|&d| d >= 0) => Ok([v[0] as usize, v[1] as usize]),
            Some(v) => Err(self.err(at, format!("{name} {v:?} must be two non-negative values (2-D only)"))),
        }
    }

    /// Symmetric padding from `pads` / `auto_pad`, for an input of `size` and kernel/stride.
    fn padding(
        &self,
        at: &At<'_>,
        a: &Attrs<'_>,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Result<[usize; 2]> {
        let auto = a.string("auto_pad").unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => {}
            "VALID" => return Ok([0, 0]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0; 2];
                for i in 0..2 {
                    let out = size[i].div_ceil(stride[i]);
                    let total = ((out - 1) * stride[i] + kernel[i]).saturating_sub(size[i]);
                    if !total.is_multiple_of(2) {
                        return Err(self.err(
                            at,
                            format!("auto_pad {auto} pads {total} unevenly on axis {i}; gcert's layers pad both sides equally"),
                        ));
                    }
                    p[i] = total / 2;
                }
                return Ok(p);
            }
            other => return Err(self.err(at, format!("auto_pad '{other}' is not supported"))),
        }
        match a.ints("pads") {
            None => Ok([0, 0]),
            Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) && p[0] == p[2] && p[1] == p[3] => {
                Ok([p[0] as usize, p[1] as usize])
            }
            Some(p) => Err(self.err(
                at,
                format!("pads {p:?} are not the same on both sides of each axis; gcert's layers pad symmetrically"),
            )),
        }
    }

    fn conv(&mut self, at: &At<'_>, x: &Dyn, a: &Attrs<'_>, transpose: bool) -> Result<Dyn> {
        let [c, h, w] = self.image(at, x)?;
        if a.int("group").unwrap_or(1) != 1 {
            return Err(self.err(
                at,
                format!(
                    "group = {} is not supported (gcert's convolutions have no groups)",
                    a.int("group").unwrap_or(1)
                ),
            ));
        }
        if self.spatial(at, a, "dilations", 1)? != [1, 1] {
            return Err(self.err(at, "dilations other than 1 are not supported"));
        }
        let weight = self.konst(at, 1, "weight")?.expect("Conv has a weight");
        let cin_axis = if transpose { 0 } else { 1 };
        if weight.shape.len() != 4 || weight.shape[cin_axis] != c {
            return Err(self.err(
                at,
                format!(
                    "weight of shape {:?} does not fit an input of {c} channels ({} layout)",
                    weight.shape,
                    if transpose { "[in, out, kh, kw]" } else { "[out, in, kh, kw]" }
                ),
            ));
        }
        let cout = if transpose { weight.shape[1] } else { weight.shape[0] };
        let kernel = [weight.shape[2], weight.shape[3]];
        if let Some(k) = a.ints("kernel_shape") {
            if k != [kernel[0] as i64, kernel[1] as i64] {
                return Err(
                    self.err(at, format!("kernel_shape {k:?} disagrees with the weight's {kernel:?}"))
                );
            }
        }
        let stride = self.spatial(at, a, "strides", 1)?;
        if stride.contains(&0) {
            return Err(self.err(at, "strides must be positive"));
        }
        let bias = match self.konst(at, 2, "bias")? {
            Some(b) if b.data.len() == cout => b.data,
            Some(b) => {
                return Err(self.err(at, format!("bias of shape {:?} does not fit {cout} channels", b.shape)))
            }
            None => vec![0.0; cout],
        };
        if !transpose {
            let padding = self.padding(at, a, [h, w], kernel, stride)?;
            if h + 2 * padding[0] < kernel[0] || w + 2 * padding[1] < kernel[1] {
                return Err(self.err(at, "the kernel is larger than the padded input"));
            }
            let oh = (h + 2 * padding[0] - kernel[0]) / stride[0] + 1;
            let ow = (w + 2 * padding[1] - kernel[1]) / stride[1] + 1;
            let ir = Ir::Conv {
                weight: weight.data,
                bias,
                cin: c,
                cout,
                kernel,
                stride,
                padding,
                transpose: None,
            };
            return Ok(self.push(ir, x, Dyn { shape: vec![1, cout, oh, ow], batched: true }));
        }
        if a.has("output_shape") {
            return Err(self.err(at, "output_shape is not supported; export with pads and output_padding"));
        }
        match a.string("auto_pad").unwrap_or_default().as_str() {
            "" | "NOTSET" | "VALID" => {}
            other => {
                return Err(self.err(at, format!("auto_pad '{other}' is not supported on ConvTranspose")))
            }
        }
        let pads = a.ints("pads").unwrap_or_else(|| vec![0; 4]);
        let out_pad = self.spatial(at, a, "output_padding", 0)?;
        if pads.len() != 4 || pads.iter().any(|&p| p < 0) {
            return Err(self.err(at, format!("pads {pads:?} must be four non-negative values")));
        }
        // ONNX crops pads[begin] at the start and pads[end] - output_padding at the end; PyTorch's layout crops
        // p at the start and p - output_padding at the end.
        let mut padding = [0; 2];
        let mut output_padding = [0; 2];
        for i in 0..2 {
            let (begin, end) = (pads[i] as usize, pads[i + 2] as usize);
            let op = (begin + out_pad[i]) as i64 - end as i64;
            if op < 0 || op as usize >= stride[i] {
                return Err(self.err(
                    at,
                    format!("pads {pads:?} with output_padding {out_pad:?} is not expressible as PyTorch's padding and output_padding"),
                ));
            }
            padding[i] = begin;
            output_padding[i] = op as usize;
        }
        let full = [
            (h - 1) * stride[0] + kernel[0] + output_padding[0],
            (w - 1) * stride[1] + kernel[1] + output_padding[1],
        ];
        if full[0] <= 2 * padding[0] || full[1] <= 2 * padding[1] {
            return Err(self.err(at, "the padding leaves an empty output"));
        }
        let (oh, ow) = (full[0] - 2 * padding[0], full[1] - 2 * padding[1]);
        let ir = Ir::Conv {
            weight: weight.data,
            bias,
            cin: c,
            cout,
            kernel,
            stride,
            padding,
            transpose: Some(output_padding),
        };
        Ok(self.push(ir, x, Dyn { shape: vec![1, cout, oh, ow], batched: true }))
    }

    fn batch_norm(&mut self, at: &At<'_>, x: &Dyn, a: &Attrs<'_>) -> Result<Dyn> {
        if a.int("training_mode").unwrap_or(0) != 0 {
            return Err(self.err(at, "training_mode is set; export the model in eval mode"));
        }
        if a.int("spatial").unwrap_or(1) != 1 {
            return Err(self.err(at, "spatial = 0 is not supported"));
        }
        if !x.batched {
            return Err(self
                .err(at, format!("expects a batched input [1, channels, ...], found shape {:?}", x.shape)));
        }
        let c = x.shape[1];
        let mut vals = Vec::new();
        for (i, what) in ["scale", "B", "mean", "var"].iter().enumerate() {
            let v =
                self.konst(at, i + 1, what)?.ok_or_else(|| self.err(at, format!("has no {what} input")))?;
            if v.data.len() != c {
                return Err(self.err(at, format!("{what} has shape {:?}, expected [{c}]", v.shape)));
            }
            vals.push(v.data);
        }
        let eps = a.float("epsilon").unwrap_or(1e-5);
        let spatial: usize = x.shape[2..].iter().product();
        let (mut scale, mut shift) = (Vec::with_capacity(c * spatial), Vec::with_capacity(c * spatial));
        for ch in 0..c {
            let denom = vals[3][ch] + eps;
            if denom.is_nan() || denom <= 0.0 {
                return Err(self.err(at, format!("var[{ch}] + epsilon = {denom} is not positive")));
            }
            let s = vals[0][ch] / denom.sqrt();
            let t = vals[1][ch] - vals[2][ch] * s;
            scale.extend(std::iter::repeat_n(s, spatial));
            shift.extend(std::iter::repeat_n(t, spatial));
        }
        Ok(self.push(Ir::Affine { scale, shift }, x, x.clone()))
    }

    fn pool(&mut self, at: &At<'_>, x: &Dyn, a: &Attrs<'_>) -> Result<Dyn> {
        let [c, h, w] = self.image(at, x)?;
        let max = at.node.op_type() == "MaxPool";
        let kernel = match a.ints("kernel_shape") {
            Some(k) if k.len() == 2 && k.iter().all(|&v| v > 0) => [k[0] as usize, k[1] as usize],
            other => return Err(self.err(at, format!("kernel_shape {other:?} must be two positive values"))),
        };
        if self.spatial(at, a, "dilations", 1)? != [1, 1] {
            return Err(self.err(at, "dilations other than 1 are not supported"));
        }
        let stride = self.spatial(at, a, "strides", 1)?;
        if stride.contains(&0) {
            return Err(self.err(at, "strides must be positive"));
        }
        let padding = self.padding(at, a, [h, w], kernel, stride)?;
        if !max && padding != [0, 0] && a.int("count_include_pad").unwrap_or(0) == 0 {
            return Err(self.err(
                at,
                "averages without counting the padding (count_include_pad = 0); gcert's avg_pool2d counts it",
            ));
        }
        if padding[0] * 2 > kernel[0] || padding[1] * 2 > kernel[1] {
            return Err(self.err(at, "padding larger than half the kernel is not supported"));
        }
        if h + 2 * padding[0] < kernel[0] || w + 2 * padding[1] < kernel[1] {
            return Err(self.err(at, "the kernel is larger than the padded input"));
        }
        let floor = |i: usize, s: usize| (s + 2 * padding[i] - kernel[i]) / stride[i] + 1;
        let (oh, ow) = (floor(0, h), floor(1, w));
        if a.int("ceil_mode").unwrap_or(0) != 0 {
            let ceil = |i: usize, s: usize| (s + 2 * padding[i] - kernel[i]).div_ceil(stride[i]) + 1;
            if ceil(0, h) != oh || ceil(1, w) != ow {
                return Err(self.err(at, "ceil_mode = 1 adds a partial window here; gcert's pooling floors"));
            }
        }
        let (kernel, stride, padding) = (pair(kernel), Some(pair(stride)), pair(padding));
        let spec = if max {
            LayerSpec::MaxPool2d { kernel, stride, padding }
        } else {
            LayerSpec::AvgPool2d { kernel, stride, padding }
        };
        Ok(self.push(Ir::Plain(spec), x, Dyn { shape: vec![1, c, oh, ow], batched: true }))
    }

    /// Constant folding: a node all of whose inputs are constants.
    fn fold(&self, at: &At<'_>) -> Result<Const> {
        let a = Attrs::new(at.node);
        let op = at.node.op_type();
        let arg = |i: usize| -> Result<Const> {
            self.konst(at, i, "operand")?.ok_or_else(|| self.err(at, format!("input {i} is missing")))
        };
        let c = match op {
            "Constant" => {
                if let Some(t) = a.tensor("value") {
                    tensor_value(t, &self.dir).map_err(|m| self.err(at, m))?
                } else if let Some(v) = a.float("value_float") {
                    Const::scalar(v, false)
                } else if let Some(v) = a.floats("value_floats") {
                    Const::vector(v, false)
                } else if let Some(v) = a.int("value_int") {
                    Const::scalar(v as f64, true)
                } else if let Some(v) = a.ints("value_ints") {
                    Const::vector(v.iter().map(|&v| v as f64).collect(), true)
                } else {
                    return Err(
                        self.err(at, format!("has no value gcert reads (attributes {:?})", a.names()))
                    );
                }
            }
            "Identity" | "Dropout" => arg(0)?,
            "Shape" => shape_of(&arg(0)?.shape, at),
            "Cast" => {
                let mut c = arg(0)?;
                let to = a.int("to").unwrap_or(1) as i32;
                if crate::read::is_int_type(to) {
                    c.data.iter_mut().for_each(|v| *v = v.trunc());
                    c.int = true;
                } else if is_float_type(to) {
                    c.int = false;
                } else {
                    return Err(
                        self.err(at, format!("casts to {}, which gcert does not fold", type_name(to)))
                    );
                }
                c
            }
            "Neg" => {
                let mut c = arg(0)?;
                c.data.iter_mut().for_each(|v| *v = -*v);
                c
            }
            "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Min" | "Max" | "Equal" | "Less" | "Greater" => {
                if at.node.input.len() != 2 {
                    return Err(self.err(at, "over constants is folded with exactly two operands"));
                }
                let (x, y) = (arg(0)?, arg(1)?);
                let Some(shape) = broadcast_shape(&x.shape, &y.shape) else {
                    return Err(
                        self.err(at, format!("shapes {:?} and {:?} do not broadcast", x.shape, y.shape))
                    );
                };
                let (xs, ys) =
                    (expand(&x, &shape).expect("broadcasts"), expand(&y, &shape).expect("broadcasts"));
                let int = x.int && y.int;
                let fmod = a.int("fmod").unwrap_or(0) != 0;
                let compare = matches!(op, "Equal" | "Less" | "Greater");
                let data = xs
                    .iter()
                    .zip(&ys)
                    .map(|(&p, &q)| match op {
                        "Add" => p + q,
                        "Sub" => p - q,
                        "Mul" => p * q,
                        "Min" => p.min(q),
                        "Max" => p.max(q),
                        "Equal" => f64::from(p == q),
                        "Less" => f64::from(p < q),
                        "Greater" => f64::from(p > q),
                        // Integer Mod takes the divisor's sign (Python's %); fmod = 1 the dividend's (C's fmod).
                        "Mod" if fmod => p % q,
                        "Mod" => p - q * (p / q).floor(),
                        _ if int => (p / q).trunc(),
                        _ => p / q,
                    })
                    .collect();
                Const { shape, data, int: int || compare }
            }
            "Reshape" => {
                let x = arg(0)?;
                let target = arg(1)?.ints().map_err(|m| self.err(at, m))?;
                let shape = resolve_reshape(&x.shape, &target, a.int("allowzero").unwrap_or(0) != 0)
                    .map_err(|m| self.err(at, m))?;
                Const { shape, ..x }
            }
            "Flatten" => {
                let x = arg(0)?;
                let axis = norm_axis(a.int("axis").unwrap_or(1), x.shape.len() + 1)
                    .ok_or_else(|| self.err(at, "axis out of range"))?;
                Const { shape: vec![x.shape[..axis].iter().product(), x.shape[axis..].iter().product()], ..x }
            }
            "Squeeze" | "Unsqueeze" => {
                let x = arg(0)?;
                let axes = match self.konst(at, 1, "axes")? {
                    Some(c) => Some(c.ints().map_err(|m| self.err(at, m))?),
                    None => a.ints("axes"),
                };
                let shape = squeeze_shape(&x.shape, axes.as_deref(), op == "Unsqueeze")
                    .map_err(|m| self.err(at, m))?;
                Const { shape, ..x }
            }
            "Concat" => {
                let parts: Vec<Const> = (0..at.node.input.len()).map(arg).collect::<Result<_>>()?;
                concat(&parts, a.int("axis").unwrap_or(0)).map_err(|m| self.err(at, m))?
            }
            "Gather" => {
                let (x, idx) = (arg(0)?, arg(1)?);
                let idx_i = idx.ints().map_err(|m| self.err(at, m))?;
                gather(&x, &idx.shape, &idx_i, a.int("axis").unwrap_or(0)).map_err(|m| self.err(at, m))?
            }
            "Slice" => {
                let x = arg(0)?;
                let list = |i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
                    if self.opset < 10 {
                        return Ok(a.ints(attr));
                    }
                    self.konst(at, i, attr)?.map(|c| c.ints().map_err(|m| self.err(at, m))).transpose()
                };
                let starts = list(1, "starts")?.ok_or_else(|| self.err(at, "has no starts"))?;
                let ends = list(2, "ends")?.ok_or_else(|| self.err(at, "has no ends"))?;
                let axes = list(3, "axes")?;
                let steps = if self.opset < 10 { None } else { list(4, "steps")? };
                slice(&x, &starts, &ends, axes.as_deref(), steps.as_deref()).map_err(|m| self.err(at, m))?
            }
            "Where" => {
                let (c, x, y) = (arg(0)?, arg(1)?, arg(2)?);
                let shape = broadcast_shape(&c.shape, &x.shape)
                    .and_then(|s| broadcast_shape(&s, &y.shape))
                    .ok_or_else(|| self.err(at, "operand shapes do not broadcast"))?;
                let (cs, xs, ys) = (
                    expand(&c, &shape).expect("broadcasts"),
                    expand(&x, &shape).expect("broadcasts"),
                    expand(&y, &shape).expect("broadcasts"),
                );
                let data = cs.iter().zip(xs.iter().zip(&ys)).map(|(&c, (&p, &q))| if c != 0.0 { p } else { q }).collect();
                Const { shape, data, int: x.int && y.int }
            }
            "Expand" => {
                let x = arg(0)?;
                let target: Vec<usize> = arg(1)?
                    .ints()
                    .map_err(|m| self.err(at, m))?
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| self.err(at, format!("negative size {d}"))))
                    .collect::<Result<_>>()?;
                let shape = broadcast_shape(&x.shape, &target)
                    .ok_or_else(|| self.err(at, format!("{:?} does not expand to {target:?}", x.shape)))?;
                Const { data: expand(&x, &shape).expect("broadcasts"), shape, int: x.int }
            }
            "Range" => {
                let (start, limit, delta) = (arg(0)?, arg(1)?, arg(2)?);
                let ([s0], [l], [d]) = (start.data.as_slice(), limit.data.as_slice(), delta.data.as_slice()) else {
                    return Err(self.err(at, "needs scalar start, limit and delta"));
                };
                let (s0, l, d) = (*s0, *l, *d);
                if d == 0.0 || ((l - s0) / d) > 1e7 {
                    return Err(self.err(at, "needs a non-zero delta and at most 10^7 values"));
                }
                let n = ((l - s0) / d).ceil().max(0.0) as usize;
                Const::vector((0..n).map(|i| s0 + i as f64 * d).collect(), start.int)
            }
            "ConstantOfShape" => {
                let shape: Vec<usize> = arg(0)?
                    .ints()
                    .map_err(|m| self.err(at, m))?
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| self.err(at, format!("negative size {d}"))))
                    .collect::<Result<_>>()?;
                let value = match a.tensor("value") {
                    Some(t) => tensor_value(t, &self.dir).map_err(|m| self.err(at, m))?,
                    None => Const::scalar(0.0, false),
                };
                let v = value.data.first().copied().unwrap_or(0.0);
                Const { data: vec![v; shape.iter().product()], shape, int: value.int }
            }
            _ => return Err(self.err(
                at,
                "over constants is not supported (gcert folds Constant, Shape, Gather, Slice, Concat, Cast, \
                     Reshape, Flatten, Squeeze, Unsqueeze, ConstantOfShape, Expand, Range, Where, Neg, Add, Sub, \
                     Mul, Div, Mod, Min, Max, Equal, Less, Greater)",
            )),
        };
        if !c.int {
            check_finite(self.path, &format!("the constant computed by node '{}'", at.label), &c)?;
        }
        Ok(c)
    }
}

fn shape_of(shape: &[usize], at: &At<'_>) -> Const {
    let a = Attrs::new(at.node);
    let rank = shape.len() as i64;
    let clip = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clip(a.int("start").unwrap_or(0));
    let end = clip(a.int("end").unwrap_or(rank));
    let dims = if start < end { &shape[start..end] } else { &[][..] };
    Const::vector(dims.iter().map(|&d| d as f64).collect(), true)
}

fn transpose(c: &Const) -> Const {
    let (r, k) = (c.shape[0], c.shape[1]);
    let mut data = vec![0.0; r * k];
    for i in 0..r {
        for j in 0..k {
            data[j * r + i] = c.data[i * k + j];
        }
    }
    Const { shape: vec![k, r], data, int: c.int }
}

fn resolve_reshape(
    shape: &[usize],
    target: &[i64],
    allowzero: bool,
) -> std::result::Result<Vec<usize>, String> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => {
                out.push(*shape.get(i).ok_or_else(|| format!("shape {target:?}: no axis {i} to copy"))?)
            }
            t if t > 0 => out.push(t as usize),
            _ => return Err(format!("cannot reshape {shape:?} into {target:?}")),
        }
    }
    if let Some(i) = infer {
        let rest: usize = out.iter().product();
        if rest == 0 || !numel.is_multiple_of(rest) {
            return Err(format!("cannot reshape {shape:?} into {target:?}"));
        }
        out[i] = numel / rest;
    }
    if out.iter().product::<usize>() != numel {
        return Err(format!("cannot reshape {shape:?} ({numel} values) into {target:?}"));
    }
    Ok(out)
}

fn squeeze_shape(
    shape: &[usize],
    axes: Option<&[i64]>,
    unsqueeze: bool,
) -> std::result::Result<Vec<usize>, String> {
    if unsqueeze {
        let axes = axes.ok_or("Unsqueeze needs axes")?;
        let rank = shape.len() + axes.len();
        let mut ones = vec![false; rank];
        for &a in axes {
            let a = norm_axis(a, rank)
                .filter(|&a| !ones[a])
                .ok_or_else(|| format!("axes {axes:?} are invalid"))?;
            ones[a] = true;
        }
        let mut it = shape.iter();
        return Ok(ones
            .iter()
            .map(|&o| if o { 1 } else { *it.next().expect("rank counts the new axes") })
            .collect());
    }
    let rank = shape.len();
    let drop: Vec<usize> = match axes {
        None => (0..rank).filter(|&i| shape[i] == 1).collect(),
        Some(ax) => ax
            .iter()
            .map(|&a| norm_axis(a, rank).ok_or_else(|| format!("axis {a} out of range")))
            .collect::<Result<_, _>>()?,
    };
    if let Some(&i) = drop.iter().find(|&&i| shape[i] != 1) {
        return Err(format!("cannot squeeze axis {i} of size {}", shape[i]));
    }
    Ok((0..rank).filter(|i| !drop.contains(i)).map(|i| shape[i]).collect())
}

fn concat(parts: &[Const], axis: i64) -> std::result::Result<Const, String> {
    let first = parts.first().ok_or("Concat has no inputs")?;
    let rank = first.shape.len();
    let axis = norm_axis(axis, rank).ok_or_else(|| format!("axis {axis} out of range"))?;
    for p in parts {
        if p.shape.len() != rank || (0..rank).any(|d| d != axis && p.shape[d] != first.shape[d]) {
            return Err(format!(
                "shapes {:?} and {:?} do not concatenate on axis {axis}",
                first.shape, p.shape
            ));
        }
    }
    let outer: usize = first.shape[..axis].iter().product();
    let inner: usize = first.shape[axis + 1..].iter().product();
    let mut data = Vec::new();
    for o in 0..outer {
        for p in parts {
            let block = p.shape[axis] * inner;
            data.extend_from_slice(&p.data[o * block..(o + 1) * block]);
        }
    }
    let mut shape = first.shape.clone();
    shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
    Ok(Const { shape, data, int: parts.iter().all(|p| p.int) })
}

fn gather(x: &Const, idx_shape: &[usize], idx: &[i64], axis: i64) -> std::result::Result<Const, String> {
    let rank = x.shape.len();
    let axis = norm_axis(axis, rank).ok_or_else(|| format!("axis {axis} out of range"))?;
    let n = x.shape[axis];
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut data = Vec::new();
    for o in 0..outer {
        for &i in idx {
            let i = if i < 0 { i + n as i64 } else { i };
            if !(0..n as i64).contains(&i) {
                return Err(format!("index {i} out of range for size {n}"));
            }
            let start = (o * n + i as usize) * inner;
            data.extend_from_slice(&x.data[start..start + inner]);
        }
    }
    let shape = x.shape[..axis].iter().chain(idx_shape).chain(&x.shape[axis + 1..]).copied().collect();
    Ok(Const { shape, data, int: x.int })
}

fn slice(
    x: &Const,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> std::result::Result<Const, String> {
    let rank = x.shape.len();
    let mut ranges: Vec<Vec<usize>> = x.shape.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts.len() {
        let axis = match axes {
            Some(a) => {
                norm_axis(*a.get(k).ok_or("axes shorter than starts")?, rank).ok_or("axis out of range")?
            }
            None => k,
        };
        let d = x.shape.get(axis).copied().ok_or("axis out of range")? as i64;
        let step = steps.and_then(|s| s.get(k).copied()).unwrap_or(1);
        if step == 0 {
            return Err("a slice step is zero".into());
        }
        let fix = |v: i64, lo: i64, hi: i64| (if v < 0 { v + d } else { v }).clamp(lo, hi);
        let end = *ends.get(k).ok_or("ends shorter than starts")?;
        let mut sel = Vec::new();
        if step > 0 {
            let (mut i, e) = (fix(starts[k], 0, d), fix(end, 0, d));
            while i < e {
                sel.push(i as usize);
                i += step;
            }
        } else if d > 0 {
            let (mut i, e) = (fix(starts[k], 0, d - 1), fix(end, -1, d - 1));
            while i > e {
                sel.push(i as usize);
                i += step;
            }
        }
        ranges[axis] = sel;
    }
    let shape: Vec<usize> = ranges.iter().map(Vec::len).collect();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * x.shape[i + 1];
    }
    let total: usize = shape.iter().product();
    let mut data = Vec::with_capacity(total);
    let mut idx = vec![0usize; rank];
    for _ in 0..total {
        data.push(x.data[(0..rank).map(|a| ranges[a][idx[a]] * strides[a]).sum::<usize>()]);
        for a in (0..rank).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(Const { shape, data, int: x.int })
}
