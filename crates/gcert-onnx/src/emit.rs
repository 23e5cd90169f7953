//! Steps to a model card: affine steps are merged into a neighbouring linear or convolution layer where that
//! is exact, consecutive reshapes collapse, and what remains is written as card layers with tensors named
//! `"{layer}.weight"` like a PyTorch `nn.Sequential`.

use gcert_core::card::{LayerSpec, ModelCard, Pair, FORMAT};
use gcert_core::tensors::{Precision, Tensor, TensorStore};

/// One step on the sample (no batch dimension).
#[derive(Debug, Clone)]
pub(crate) enum Ir {
    /// `y = W x + b`, weight `[outputs, inputs]` row-major.
    Linear { weight: Vec<f64>, bias: Vec<f64>, inputs: usize, outputs: usize },
    /// A convolution (weight `[out, in, kh, kw]`) or, with `transpose = Some(output_padding)`, a transposed one
    /// (weight `[in, out, kh, kw]`).
    Conv {
        weight: Vec<f64>,
        bias: Vec<f64>,
        cin: usize,
        cout: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        transpose: Option<[usize; 2]>,
    },
    /// `y = scale ⊙ x + shift`, one value per element of the sample.
    Affine { scale: Vec<f64>, shift: Vec<f64> },
    /// A layer written as it is (activations, pooling).
    Plain(LayerSpec),
    /// The same values in another shape.
    Reshape,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub ir: Ir,
    pub in_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
}

/// Per-channel values of a per-element vector over `[C, ...]`, if each channel's block is constant.
fn per_channel(v: &[f64], channels: usize) -> Option<Vec<f64>> {
    if channels == 0 || !v.len().is_multiple_of(channels) {
        return None;
    }
    let block = v.len() / channels;
    v.chunks_exact(block).map(|c| c.iter().all(|&x| x == c[0]).then_some(c[0])).collect()
}

/// Folds `affine` (applied after `step`) into `step`, if exact.
fn fold_after(step: &mut Step, scale: &[f64], shift: &[f64]) -> bool {
    match &mut step.ir {
        Ir::Linear { weight, bias, inputs, .. } => {
            for (o, row) in weight.chunks_exact_mut(*inputs).enumerate() {
                row.iter_mut().for_each(|w| *w *= scale[o]);
                bias[o] = scale[o] * bias[o] + shift[o];
            }
            true
        }
        Ir::Conv { weight, bias, cout, transpose, cin, .. } => {
            let (Some(s), Some(t)) = (per_channel(scale, *cout), per_channel(shift, *cout)) else {
                return false;
            };
            let k = weight.len() / (*cin * *cout);
            for (i, w) in weight.iter_mut().enumerate() {
                let o = match transpose {
                    None => i / (*cin * k),
                    Some(_) => (i / k) % *cout,
                };
                *w *= s[o];
            }
            for o in 0..*cout {
                bias[o] = s[o] * bias[o] + t[o];
            }
            true
        }
        Ir::Affine { scale: s0, shift: t0 } => {
            for i in 0..s0.len() {
                s0[i] *= scale[i];
                t0[i] = scale[i] * t0[i] + shift[i];
            }
            true
        }
        Ir::Plain(_) | Ir::Reshape => false,
    }
}

/// Folds `affine` (applied before `step`) into `step`, if exact.
fn fold_before(step: &mut Step, scale: &[f64], shift: &[f64]) -> bool {
    match &mut step.ir {
        Ir::Linear { weight, bias, inputs, .. } => {
            for (o, row) in weight.chunks_exact_mut(*inputs).enumerate() {
                bias[o] += row.iter().zip(shift).map(|(w, t)| w * t).sum::<f64>();
                row.iter_mut().zip(scale).for_each(|(w, s)| *w *= s);
            }
            true
        }
        Ir::Conv { weight, bias, cin, cout, padding, transpose, .. } => {
            let (Some(s), Some(t)) = (per_channel(scale, *cin), per_channel(shift, *cin)) else {
                return false;
            };
            // A shift moves every window's sum by the same amount only where no window reaches the zero padding,
            // and never for a transposed convolution (its windows overlap unevenly).
            let shifts = t.iter().any(|&v| v != 0.0);
            if shifts && (transpose.is_some() || *padding != [0, 0]) {
                return false;
            }
            let k = weight.len() / (*cin * *cout);
            for (i, w) in weight.iter().enumerate() {
                let (o, c) = match transpose {
                    None => (i / (*cin * k), (i / k) % *cin),
                    Some(_) => ((i / k) % *cout, i / (*cout * k)),
                };
                bias[o] += w * t[c];
            }
            for (i, w) in weight.iter_mut().enumerate() {
                let c = match transpose {
                    None => (i / k) % *cin,
                    Some(_) => i / (*cout * k),
                };
                *w *= s[c];
            }
            true
        }
        Ir::Affine { .. } | Ir::Plain(_) | Ir::Reshape => false,
    }
}

/// Merges the steps: affines into neighbours, consecutive linears where that is smaller, reshapes together.
fn simplify(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    let mut pending: Vec<Step> = Vec::new();
    // Pass 1: affines into the previous layer (reshapes in between keep the flat order).
    for step in steps {
        if let Ir::Affine { scale, shift } = &step.ir {
            if scale.iter().all(|&s| s == 1.0) && shift.iter().all(|&t| t == 0.0) {
                continue;
            }
            if let Some(prev) = out.iter_mut().rev().find(|s| !matches!(s.ir, Ir::Reshape)) {
                let (scale, shift) = (scale.clone(), shift.clone());
                if fold_after(prev, &scale, &shift) {
                    continue;
                }
            }
        }
        out.push(step);
    }
    // Pass 2: what is left into the next layer.
    for step in out.into_iter().rev() {
        if let Ir::Affine { scale, shift } = &step.ir {
            if let Some(next) = pending.iter_mut().rev().find(|s| !matches!(s.ir, Ir::Reshape)) {
                if fold_before(next, scale, shift) {
                    continue;
                }
            }
        }
        pending.push(step);
    }
    pending.reverse();
    // Pass 3: consecutive linear layers (only reshapes between) into one, where the product is no larger.
    let mut out: Vec<Step> = Vec::with_capacity(pending.len());
    for step in pending {
        if let Ir::Linear { weight: w2, bias: b2, inputs: n1, outputs: n2 } = &step.ir {
            let prev_linear = out.iter().rposition(|s| !matches!(s.ir, Ir::Reshape));
            if let Some(p) = prev_linear {
                if let Ir::Linear { weight: w1, bias: b1, inputs: n0, outputs: m1 } = &out[p].ir {
                    let (n0, n1, n2) = (*n0, *n1, *n2);
                    if *m1 == n1 && n2 * n0 <= n1 * n0 + n2 * n1 {
                        let mut weight = vec![0.0; n2 * n0];
                        let mut bias = b2.clone();
                        for o in 0..n2 {
                            for k in 0..n1 {
                                let v = w2[o * n1 + k];
                                bias[o] += v * b1[k];
                                for i in 0..n0 {
                                    weight[o * n0 + i] += v * w1[k * n0 + i];
                                }
                            }
                        }
                        let in_shape = out[p].in_shape.clone();
                        out.truncate(p);
                        out.push(Step {
                            ir: Ir::Linear { weight, bias, inputs: n0, outputs: n2 },
                            in_shape,
                            out_shape: step.out_shape,
                        });
                        continue;
                    }
                }
            }
        }
        out.push(step);
    }
    // Pass 4: consecutive reshapes into one; a reshape to the same shape disappears.
    let mut merged: Vec<Step> = Vec::with_capacity(out.len());
    for step in out {
        if matches!(step.ir, Ir::Reshape) {
            if let Some(prev) = merged.last_mut().filter(|p| matches!(p.ir, Ir::Reshape)) {
                prev.out_shape = step.out_shape;
                if prev.in_shape == prev.out_shape {
                    merged.pop();
                }
                continue;
            }
            if step.in_shape == step.out_shape {
                continue;
            }
        }
        merged.push(step);
    }
    merged
}

struct Writer {
    layers: Vec<LayerSpec>,
    tensors: TensorStore,
}

impl Writer {
    fn tensor(&mut self, role: &str, shape: Vec<usize>, data: Vec<f64>) -> String {
        let name = format!("{}.{role}", self.layers.len());
        self.tensors.insert(name.clone(), Tensor::new(shape, data));
        name
    }

    fn reshape(&mut self, shape: &[usize]) {
        self.layers.push(if shape.len() == 1 {
            LayerSpec::Flatten
        } else {
            LayerSpec::Reshape { shape: shape.to_vec() }
        });
    }

    /// `scale ⊙ x + shift` as an eval-mode batch norm (mean 0, variance 1, eps 0), over the channels of
    /// `shape` when each channel has one value, else per element on the flattened sample.
    fn affine(&mut self, shape: &[usize], scale: Vec<f64>, shift: Vec<f64>) {
        let channels = shape[0];
        let (scale, shift, flat) = match (per_channel(&scale, channels), per_channel(&shift, channels)) {
            (Some(s), Some(t)) => (s, t, false),
            _ => (scale, shift, shape.len() > 1),
        };
        if flat {
            self.reshape(&[scale.len()]);
        }
        let c = scale.len();
        let weight = Some(self.tensor("weight", vec![c], scale));
        let bias = Some(self.tensor("bias", vec![c], shift));
        let running_mean = self.tensor("running_mean", vec![c], vec![0.0; c]);
        let running_var = self.tensor("running_var", vec![c], vec![1.0; c]);
        self.layers.push(LayerSpec::BatchNorm { weight, bias, running_mean, running_var, eps: 0.0 });
        if flat {
            self.reshape(shape);
        }
    }
}

/// The card, its tensors and the precision that holds them exactly.
pub(crate) fn emit(
    name: &str,
    input_shape: Vec<usize>,
    description: String,
    steps: Vec<Step>,
    merge: bool,
) -> (ModelCard, TensorStore, Precision) {
    let mut w = Writer { layers: Vec::new(), tensors: TensorStore::new() };
    let steps = if merge { simplify(steps) } else { steps };
    for step in steps {
        match step.ir {
            Ir::Linear { weight, bias, inputs, outputs } => {
                let weight = w.tensor("weight", vec![outputs, inputs], weight);
                let bias = Some(w.tensor("bias", vec![outputs], bias));
                w.layers.push(LayerSpec::Linear { weight, bias });
            }
            Ir::Conv { weight, bias, cin, cout, kernel, stride, padding, transpose } => {
                let shape = match transpose {
                    None => vec![cout, cin, kernel[0], kernel[1]],
                    Some(_) => vec![cin, cout, kernel[0], kernel[1]],
                };
                let weight = w.tensor("weight", shape, weight);
                let bias = Some(w.tensor("bias", vec![cout], bias));
                let (stride, padding) = (pair(stride), pair(padding));
                w.layers.push(match transpose {
                    None => LayerSpec::Conv2d { weight, bias, stride, padding },
                    Some(op) => {
                        LayerSpec::ConvTranspose2d { weight, bias, stride, padding, output_padding: pair(op) }
                    }
                });
            }
            Ir::Affine { scale, shift } => w.affine(&step.in_shape, scale, shift),
            Ir::Plain(spec) => w.layers.push(spec),
            Ir::Reshape => w.reshape(&step.out_shape),
        }
    }
    if w.layers.is_empty() {
        // The graph computes the identity; a card needs a layer.
        w.reshape(&input_shape);
    }
    let exact_f32 = w.tensors.values().all(|t| t.data.iter().all(|&v| (v as f32) as f64 == v));
    let card = ModelCard {
        format: FORMAT.to_string(),
        name: name.to_string(),
        weights: format!("{name}.safetensors"),
        input_shape: Some(input_shape),
        input_shapes: None,
        description: Some(description),
        layers: w.layers,
    };
    (card, w.tensors, if exact_f32 { Precision::F32 } else { Precision::F64 })
}

fn pair(v: [usize; 2]) -> Pair {
    if v[0] == v[1] {
        Pair::One(v[0])
    } else {
        Pair::Two(v)
    }
}
