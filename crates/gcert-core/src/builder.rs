//! Building model cards in code: random networks for tests, benchmarks and fixtures, and exporters.
//!
//! The builder tracks the running shape, names tensors `"{index}.weight"` like a PyTorch `nn.Sequential`, and
//! initialises weights uniformly in `±gain/sqrt(fan_in)` from a seeded generator.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::card::{LayerSpec, ModelCard, Pair, FORMAT};
use crate::error::Result;
use crate::network::Network;
use crate::tensors::{Tensor, TensorStore};

/// A model card under construction, with its tensors.
#[derive(Debug, Clone)]
pub struct CardBuilder {
    name: String,
    input_shape: Vec<usize>,
    shape: Vec<usize>,
    layers: Vec<LayerSpec>,
    tensors: TensorStore,
    rng: ChaCha8Rng,
    gain: f64,
}

impl CardBuilder {
    pub fn new(name: &str, input_shape: &[usize], seed: u64) -> Self {
        CardBuilder {
            name: name.to_string(),
            input_shape: input_shape.to_vec(),
            shape: input_shape.to_vec(),
            layers: Vec::new(),
            tensors: TensorStore::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            gain: 1.0,
        }
    }

    /// Scales the initial weights of the layers added after this call.
    pub fn gain(mut self, gain: f64) -> Self {
        self.gain = gain;
        self
    }

    /// The shape the next layer will receive.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn uniform(&mut self, shape: Vec<usize>, bound: f64) -> Tensor {
        let n = shape.iter().product();
        let data = (0..n).map(|_| self.rng.gen_range(-bound..=bound)).collect();
        Tensor::new(shape, data)
    }

    fn add_tensor(&mut self, role: &str, t: Tensor) -> String {
        let name = format!("{}.{role}", self.layers.len());
        self.tensors.insert(name.clone(), t);
        name
    }

    fn push(mut self, spec: LayerSpec, out_shape: Vec<usize>) -> Self {
        self.layers.push(spec);
        self.shape = out_shape;
        self
    }

    pub fn linear(mut self, out: usize) -> Self {
        let inp: usize = self.shape.iter().product();
        let bound = self.gain / (inp as f64).sqrt();
        let w = self.uniform(vec![out, inp], bound);
        let b = self.uniform(vec![out], bound);
        let weight = self.add_tensor("weight", w);
        let bias = Some(self.add_tensor("bias", b));
        self.push(LayerSpec::Linear { weight, bias }, vec![out])
    }

    pub fn conv2d(mut self, out: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        let [c, h, w] = [self.shape[0], self.shape[1], self.shape[2]];
        let bound = self.gain / ((c * kernel * kernel) as f64).sqrt();
        let wt = self.uniform(vec![out, c, kernel, kernel], bound);
        let b = self.uniform(vec![out], bound);
        let weight = self.add_tensor("weight", wt);
        let bias = Some(self.add_tensor("bias", b));
        let oh = (h + 2 * padding - kernel) / stride + 1;
        let ow = (w + 2 * padding - kernel) / stride + 1;
        let spec = LayerSpec::Conv2d { weight, bias, stride: Pair::One(stride), padding: Pair::One(padding) };
        self.push(spec, vec![out, oh, ow])
    }

    pub fn conv_transpose2d(
        mut self,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Self {
        let [c, h, w] = [self.shape[0], self.shape[1], self.shape[2]];
        let bound = self.gain / ((c * kernel * kernel) as f64 / (stride * stride) as f64).max(1.0).sqrt();
        let wt = self.uniform(vec![c, out, kernel, kernel], bound);
        let b = self.uniform(vec![out], bound);
        let weight = self.add_tensor("weight", wt);
        let bias = Some(self.add_tensor("bias", b));
        let oh = (h - 1) * stride + kernel + output_padding - 2 * padding;
        let ow = (w - 1) * stride + kernel + output_padding - 2 * padding;
        let spec = LayerSpec::ConvTranspose2d {
            weight,
            bias,
            stride: Pair::One(stride),
            padding: Pair::One(padding),
            output_padding: Pair::One(output_padding),
        };
        self.push(spec, vec![out, oh, ow])
    }

    /// An eval-mode batch norm with random statistics near the identity.
    pub fn batch_norm(mut self) -> Self {
        let c = self.shape[0];
        let mean = self.uniform(vec![c], 0.1);
        let var_data = (0..c).map(|_| self.rng.gen_range(0.5..1.5)).collect();
        let gamma_data = (0..c).map(|_| self.rng.gen_range(0.8..1.2)).collect();
        let beta = self.uniform(vec![c], 0.1);
        let weight = Some(self.add_tensor("weight", Tensor::new(vec![c], gamma_data)));
        let bias = Some(self.add_tensor("bias", beta));
        let running_mean = self.add_tensor("running_mean", mean);
        let running_var = self.add_tensor("running_var", Tensor::new(vec![c], var_data));
        let shape = self.shape.clone();
        self.push(LayerSpec::BatchNorm { weight, bias, running_mean, running_var, eps: 1e-5 }, shape)
    }

    fn same(self, spec: LayerSpec) -> Self {
        let shape = self.shape.clone();
        self.push(spec, shape)
    }

    pub fn relu(self) -> Self {
        self.same(LayerSpec::Relu)
    }

    pub fn leaky_relu(self, slope: f64) -> Self {
        self.same(LayerSpec::LeakyRelu { slope })
    }

    pub fn clamp(self, min: f64, max: f64) -> Self {
        self.same(LayerSpec::Clamp { min: Some(min), max: Some(max) })
    }

    pub fn sigmoid(self) -> Self {
        self.same(LayerSpec::Sigmoid)
    }

    pub fn tanh(self) -> Self {
        self.same(LayerSpec::Tanh)
    }

    pub fn flatten(self) -> Self {
        let n = self.shape.iter().product();
        self.push(LayerSpec::Flatten, vec![n])
    }

    pub fn reshape(self, shape: &[usize]) -> Self {
        self.push(LayerSpec::Reshape { shape: shape.to_vec() }, shape.to_vec())
    }

    fn pool(self, max: bool, kernel: usize, stride: usize, padding: usize) -> Self {
        let [c, h, w] = [self.shape[0], self.shape[1], self.shape[2]];
        let oh = (h + 2 * padding - kernel) / stride + 1;
        let ow = (w + 2 * padding - kernel) / stride + 1;
        let (kernel, stride, padding) = (Pair::One(kernel), Some(Pair::One(stride)), Pair::One(padding));
        let spec = if max {
            LayerSpec::MaxPool2d { kernel, stride, padding }
        } else {
            LayerSpec::AvgPool2d { kernel, stride, padding }
        };
        self.push(spec, vec![c, oh, ow])
    }

    pub fn max_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Self {
        self.pool(true, kernel, stride, padding)
    }

    pub fn avg_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Self {
        self.pool(false, kernel, stride, padding)
    }

    /// The card (weights file named `{name}.safetensors`) and its tensors.
    pub fn build(self) -> (ModelCard, TensorStore) {
        let card = ModelCard {
            format: FORMAT.to_string(),
            weights: format!("{}.safetensors", self.name),
            name: self.name,
            input_shape: Some(self.input_shape),
            input_shapes: None,
            description: None,
            layers: self.layers,
        };
        (card, self.tensors)
    }

    /// The validated network.
    pub fn network(self) -> Result<Network> {
        let origin = format!("{}.toml", self.name);
        let (card, tensors) = self.build();
        Network::from_card(&card, &tensors, Path::new(&origin))
    }
}

/// A seeded random segment with both ends uniform in `[-scale, scale)^len` (for tests and benchmarks).
pub fn random_segment(len: usize, seed: u64, scale: f64) -> crate::Result<crate::Segment> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = (0..len).map(|_| rng.gen_range(-scale..scale)).collect();
    let b = (0..len).map(|_| rng.gen_range(-scale..scale)).collect();
    crate::Segment::new(a, b)
}
