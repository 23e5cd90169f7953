//! Networks as ordered layers that mirror the model card one to one, so that what is trained is exactly what
//! is exported: a layer's card entry ([`LayerSpec`]) names its tensors, and the same names key the
//! `VarStore` variables (`l<i>.weight`, `l<i>.running_mean`, …).

use std::collections::BTreeMap;
use std::path::Path;

use gcert_core::card::{LayerSpec, ModelCard, Pair, FORMAT};
use gcert_core::tensors::{read_safetensors, Precision, Tensor as CoreTensor, TensorStore};
use gcert_core::Network;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// One card layer on libtorch: its card entry and its tensors by role (`weight`, `bias`, `running_mean`,
/// `running_var`). `gcert_core::Layer` is the same layer resolved to the pure-Rust f64 kernels.
#[derive(Debug)]
pub struct TchLayer {
    pub spec: LayerSpec,
    pub params: BTreeMap<&'static str, Tensor>,
}

/// A feed-forward network of card layers on libtorch tensors.
#[derive(Debug)]
pub struct Net {
    pub name: String,
    pub description: Option<String>,
    /// One shape per input, no batch dimension.
    pub input_shapes: Vec<Vec<i64>>,
    pub layers: Vec<TchLayer>,
}

/// Batch-norm momentum while training (PyTorch's default).
pub const BN_MOMENTUM: f64 = 0.1;

fn p2(p: Pair) -> [i64; 2] {
    let [a, b] = p.get();
    [a as i64, b as i64]
}

impl Net {
    /// The output shape of one sample, computed by running a zero batch of one sample in eval mode.
    pub fn output_shape(&self) -> Result<Vec<i64>> {
        let device = self.device();
        let zeros: Vec<Tensor> = self
            .input_shapes
            .iter()
            .map(|s| {
                let mut shape = vec![1];
                shape.extend(s);
                Tensor::zeros(shape.as_slice(), (self.kind(), device))
            })
            .collect();
        let refs: Vec<&Tensor> = zeros.iter().collect();
        let y = tch::no_grad(|| self.forward_multi(&refs, false))?;
        Ok(y.size()[1..].to_vec())
    }

    /// The device of the first tensor (CPU for a network without tensors).
    pub fn device(&self) -> Device {
        self.layers.iter().flat_map(|l| l.params.values()).next().map_or(Device::Cpu, |t| t.device())
    }

    /// The floating kind of the tensors (f32 unless converted).
    pub fn kind(&self) -> Kind {
        self.layers.iter().flat_map(|l| l.params.values()).next().map_or(Kind::Float, |t| t.kind())
    }

    /// A copy of the network with every tensor converted (e.g. to f64 for exact comparisons).
    pub fn to(&self, kind: Kind, device: Device) -> Net {
        Net {
            name: self.name.clone(),
            description: self.description.clone(),
            input_shapes: self.input_shapes.clone(),
            layers: self
                .layers
                .iter()
                .map(|l| TchLayer {
                    spec: l.spec.clone(),
                    params: l
                        .params
                        .iter()
                        .map(|(k, t)| (*k, t.to_device(device).to_kind(kind).detach()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Forward pass of a single-input network on a batch `[n, ...input_shape]`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_multi(&[x], train)
    }

    /// Forward pass; `train` selects batch statistics (and updates the running ones) in batch-norm layers.
    pub fn forward_multi(&self, inputs: &[&Tensor], train: bool) -> Result<Tensor> {
        self.forward_multi_layers(inputs, self.layers.len(), train)
    }

    /// Forward pass without a final `clamp` (the output before it; the whole network when it does not end in
    /// one). Training losses on this output keep their gradient where the clamp would cut it (a translator whose
    /// output clamps to black everywhere never recovers otherwise); the trainer adds a penalty that keeps it
    /// inside the clamp's range, so that the exported card, which clamps, computes the same images.
    pub fn forward_multi_before_clamp(&self, inputs: &[&Tensor], train: bool) -> Result<Tensor> {
        let n = match self.layers.last() {
            Some(TchLayer { spec: LayerSpec::Clamp { .. }, .. }) => self.layers.len() - 1,
            _ => self.layers.len(),
        };
        self.forward_multi_layers(inputs, n, train)
    }

    /// The first `n` layers.
    fn forward_multi_layers(&self, inputs: &[&Tensor], n: usize, train: bool) -> Result<Tensor> {
        self.check_inputs(inputs)?;
        let mut x = inputs[0].shallow_clone();
        for (i, layer) in self.layers[..n].iter().enumerate() {
            if i == 0 && self.input_shapes.len() > 1 {
                let LayerSpec::Concat { axis } = layer.spec else {
                    return Err(Error::input(format!(
                        "{}: a multi-input network must start with concat",
                        self.name
                    )));
                };
                x = Tensor::f_cat(&self.broadcast_scalars(inputs, axis)?, axis as i64 + 1)?;
                continue;
            }
            x = layer.apply(&x, train, BN_MOMENTUM)?;
        }
        Ok(x)
    }

    /// The inputs as `concat` joins them: along channels, a scalar input (shape `[1]`, such as a translator's
    /// strength α) becomes one constant channel of the other inputs' extent (as gcert-core's `concat`).
    fn broadcast_scalars(&self, inputs: &[&Tensor], axis: usize) -> Result<Vec<Tensor>> {
        let base = self.input_shapes.iter().find(|s| s.as_slice() != [1]);
        let Some(base) = base.filter(|b| axis == 0 && b.len() > 1) else {
            return Ok(inputs.iter().map(|t| t.shallow_clone()).collect());
        };
        inputs
            .iter()
            .zip(&self.input_shapes)
            .map(|(t, s)| {
                if s.as_slice() != [1] {
                    return Ok(t.shallow_clone());
                }
                let n = t.size()[0];
                let mut view = vec![n, 1];
                view.resize(base.len() + 1, 1);
                let mut full = vec![n, 1];
                full.extend_from_slice(&base[1..]);
                Ok(t.f_reshape(view.as_slice())?.f_expand(full.as_slice(), false)?)
            })
            .collect()
    }

    /// Re-estimates every batch-norm layer's running statistics as the plain average over `batches`
    /// training-mode passes (better than the exponential average of the last training steps).
    pub fn recalibrate_batch_norm(&self, batches: &[Tensor]) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for layer in &self.layers {
                if let (Some(m), Some(v)) =
                    (layer.params.get("running_mean"), layer.params.get("running_var"))
                {
                    let _ = m.shallow_clone().zero_();
                    let _ = v.shallow_clone().fill_(1.0);
                }
            }
            for (k, x) in batches.iter().enumerate() {
                // Momentum 1/(k+1) makes the running value the mean over the batches seen so far.
                let momentum = 1.0 / (k as f64 + 1.0);
                let mut h = x.shallow_clone();
                for layer in &self.layers {
                    h = layer.apply(&h, true, momentum)?;
                }
            }
            Ok(())
        })
    }

    /// Runs layers `range` of a single-input network (e.g. an encoder's trunk without its head).
    pub fn forward_range(&self, x: &Tensor, range: std::ops::Range<usize>, train: bool) -> Result<Tensor> {
        let mut x = x.shallow_clone();
        for layer in &self.layers[range] {
            x = layer.apply(&x, train, BN_MOMENTUM)?;
        }
        Ok(x)
    }

    fn check_inputs(&self, inputs: &[&Tensor]) -> Result<()> {
        if inputs.len() != self.input_shapes.len() {
            return Err(Error::input(format!(
                "{} takes {} inputs, {} given",
                self.name,
                self.input_shapes.len(),
                inputs.len()
            )));
        }
        for (k, (x, s)) in inputs.iter().zip(&self.input_shapes).enumerate() {
            let size = x.size();
            if size.len() != s.len() + 1 || size[1..] != s[..] {
                return Err(Error::input(format!(
                    "{}: input {k} must be a batch of shape [n, {}], found {size:?}",
                    self.name,
                    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The model card and tensors of this network (batch-norm exported with its running statistics).
    pub fn to_card(&self, weights_file: &str) -> Result<(ModelCard, TensorStore)> {
        let mut tensors = TensorStore::new();
        for layer in &self.layers {
            for (role, name) in layer.spec.tensor_names() {
                let t = layer.params.get(role).ok_or_else(|| {
                    Error::input(format!("{}: layer tensor '{name}' ({role}) is missing", self.name))
                })?;
                let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
                let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
                let data = Vec::<f64>::try_from(t.flatten(0, -1))?;
                tensors.insert(name.to_string(), CoreTensor::new(shape, data));
            }
        }
        let shapes: Vec<Vec<usize>> =
            self.input_shapes.iter().map(|s| s.iter().map(|&d| d as usize).collect()).collect();
        let (input_shape, input_shapes) =
            if shapes.len() == 1 { (Some(shapes[0].clone()), None) } else { (None, Some(shapes)) };
        let card = ModelCard {
            format: FORMAT.to_string(),
            name: self.name.clone(),
            weights: weights_file.to_string(),
            input_shape,
            input_shapes,
            description: self.description.clone(),
            layers: self.layers.iter().map(|l| l.spec.clone()).collect(),
        };
        Ok((card, tensors))
    }

    /// Writes `<card_path>` and its weights (`<stem>.safetensors` beside it, f32), validated by gcert-core.
    pub fn save_card(&self, card_path: &Path, overwrite: bool) -> Result<()> {
        let stem = card_path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| Error::input(format!("{}: not a card file name", card_path.display())))?;
        if let Some(dir) = card_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let (card, tensors) = self.to_card(&format!("{stem}.safetensors"))?;
        gcert_core::network::save_card(card_path, &card, &tensors, Precision::F32, overwrite)?;
        Ok(())
    }

    /// Loads a model card (validated by gcert-core first, so a broken card fails with gcert-core's message)
    /// into libtorch tensors of `kind` on `device`.
    pub fn load_card(card_path: &Path, kind: Kind, device: Device) -> Result<Net> {
        let network = Network::load(card_path)?;
        let text = std::fs::read_to_string(card_path).map_err(|e| Error::io(card_path, e))?;
        let card: ModelCard = toml::from_str(&text).map_err(|e| Error::data(card_path, e.to_string()))?;
        let weights = card_path.parent().unwrap_or(Path::new(".")).join(&card.weights);
        let tensors = read_safetensors(&weights)?;
        Net::with_tensors(&network, &card, &tensors, &weights, kind, device)
    }

    /// A card and its tensors held in memory (e.g. from `gcert_core::builder::CardBuilder::build`), validated
    /// by gcert-core first, as libtorch tensors of `kind` on `device`.
    pub fn from_card(card: &ModelCard, tensors: &TensorStore, kind: Kind, device: Device) -> Result<Net> {
        let network = Network::from_card(card, tensors, Path::new(&card.name))?;
        Net::with_tensors(&network, card, tensors, Path::new(&card.weights), kind, device)
    }

    fn with_tensors(
        network: &Network,
        card: &ModelCard,
        tensors: &TensorStore,
        weights: &Path,
        kind: Kind,
        device: Device,
    ) -> Result<Net> {
        let mut layers = Vec::with_capacity(card.layers.len());
        for spec in &card.layers {
            let mut params = BTreeMap::new();
            for (role, name) in spec.tensor_names() {
                let t =
                    tensors.get(name).ok_or_else(|| Error::data(weights, format!("no tensor '{name}'")))?;
                let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
                let tt =
                    Tensor::from_slice(&t.data).reshape(shape.as_slice()).to_kind(kind).to_device(device);
                params.insert(role, tt);
            }
            layers.push(TchLayer { spec: spec.clone(), params });
        }
        let input_shapes =
            network.input_shapes().iter().map(|s| s.iter().map(|&d| d as i64).collect()).collect();
        Ok(Net { name: card.name.clone(), description: card.description.clone(), input_shapes, layers })
    }

    /// Every tensor of the network by card name (parameters and batch-norm statistics).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for layer in &self.layers {
            for (role, name) in layer.spec.tensor_names() {
                if let Some(t) = layer.params.get(role) {
                    out.push((name.to_string(), t.shallow_clone()));
                }
            }
        }
        out
    }
}

impl TchLayer {
    fn p(&self, role: &str) -> Result<&Tensor> {
        self.params
            .get(role)
            .ok_or_else(|| Error::input(format!("layer {} has no {role} tensor", self.spec.op_name())))
    }

    pub(crate) fn apply(&self, x: &Tensor, train: bool, momentum: f64) -> Result<Tensor> {
        let bias = self.params.get("bias");
        Ok(match &self.spec {
            LayerSpec::Linear { .. } => x.f_linear(self.p("weight")?, bias)?,
            LayerSpec::Conv2d { stride, padding, .. } => {
                x.f_conv2d(self.p("weight")?, bias, p2(*stride), p2(*padding), [1, 1], 1)?
            }
            LayerSpec::ConvTranspose2d { stride, padding, output_padding, .. } => x.f_conv_transpose2d(
                self.p("weight")?,
                bias,
                p2(*stride),
                p2(*padding),
                p2(*output_padding),
                1,
                [1, 1],
            )?,
            LayerSpec::BatchNorm { eps, .. } => x.f_batch_norm(
                self.params.get("weight"),
                bias,
                Some(self.p("running_mean")?),
                Some(self.p("running_var")?),
                train,
                momentum,
                *eps,
                false,
            )?,
            LayerSpec::Relu => x.f_relu()?,
            LayerSpec::LeakyRelu { slope } => {
                let pos = x.f_relu()?;
                let neg = x.f_neg()?.f_relu()?;
                pos.f_sub(&neg.f_mul_scalar(*slope)?)?
            }
            LayerSpec::Clamp { min, max } => match (min, max) {
                (Some(lo), Some(hi)) => x.f_clamp(*lo, *hi)?,
                (Some(lo), None) => x.f_clamp_min(*lo)?,
                (None, Some(hi)) => x.f_clamp_max(*hi)?,
                (None, None) => x.shallow_clone(),
            },
            LayerSpec::Flatten => x.f_flatten(1, -1)?,
            LayerSpec::Reshape { shape } => {
                let mut s = vec![x.size()[0]];
                s.extend(shape.iter().map(|&d| d as i64));
                x.f_reshape(s.as_slice())?
            }
            LayerSpec::AvgPool2d { kernel, stride, padding } => {
                x.f_avg_pool2d(p2(*kernel), p2(stride.unwrap_or(*kernel)), p2(*padding), false, true, None)?
            }
            LayerSpec::MaxPool2d { kernel, stride, padding } => {
                x.f_max_pool2d(p2(*kernel), p2(stride.unwrap_or(*kernel)), p2(*padding), [1, 1], false)?
            }
            LayerSpec::Sigmoid => x.f_sigmoid()?,
            LayerSpec::Tanh => x.f_tanh()?,
            LayerSpec::Concat { .. } => {
                return Err(Error::input("concat is only valid as the first layer of a multi-input network"))
            }
        })
    }
}

/// Builds a [`Net`] layer by layer, creating trainable variables in a `VarStore` path and tracking the shape.
#[derive(Debug)]
pub struct NetBuilder<'a> {
    root: nn::Path<'a>,
    name: String,
    input_shapes: Vec<Vec<i64>>,
    shape: Vec<i64>,
    layers: Vec<TchLayer>,
    rng: ChaCha8Rng,
}

/// A seed from a network's name and the run's seed (FNV-1a), so that each network starts differently.
fn init_seed(name: &str, seed: u64) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl<'a> NetBuilder<'a> {
    pub fn new(root: nn::Path<'a>, name: &str, input_shape: &[i64]) -> Self {
        NetBuilder {
            root,
            name: name.to_string(),
            input_shapes: vec![input_shape.to_vec()],
            shape: input_shape.to_vec(),
            layers: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(init_seed(name, 0)),
        }
    }

    /// Draws the initial weights from `seed` (mixed with the name); the default seed is 0.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.rng = ChaCha8Rng::seed_from_u64(init_seed(&self.name, seed));
        self
    }

    /// A variable initialised like PyTorch's linear and convolution layers: U(±1/√fan_in), drawn from this
    /// builder's seeded stream.
    fn init_var(&mut self, p: &nn::Path<'_>, name: &str, shape: &[i64], fan_in: i64) -> Tensor {
        let b = 1.0 / (fan_in as f64).sqrt();
        let t = crate::random::uniform(&mut self.rng, shape, -b, b, p.device());
        p.var_copy(name, &t)
    }

    /// A multi-input network whose inputs are concatenated along channels (axis 0 of a sample).
    pub fn concat(root: nn::Path<'a>, name: &str, input_shapes: &[Vec<i64>]) -> Self {
        // A scalar input ([1]) is broadcast as one channel (see `Net::forward_multi`).
        let base = input_shapes.iter().find(|s| s.as_slice() != [1]).unwrap_or(&input_shapes[0]);
        let mut shape = base.clone();
        shape[0] = input_shapes.iter().map(|s| if s.as_slice() == [1] { 1 } else { s[0] }).sum();
        NetBuilder {
            root,
            name: name.to_string(),
            input_shapes: input_shapes.to_vec(),
            shape,
            layers: vec![TchLayer { spec: LayerSpec::Concat { axis: 0 }, params: BTreeMap::new() }],
            rng: ChaCha8Rng::seed_from_u64(init_seed(name, 0)),
        }
    }

    /// The shape of one sample after the layers so far.
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    fn prefix(&self) -> String {
        format!("l{}", self.layers.len())
    }

    fn push(mut self, spec: LayerSpec, params: BTreeMap<&'static str, Tensor>, shape: Vec<i64>) -> Self {
        self.layers.push(TchLayer { spec, params });
        self.shape = shape;
        self
    }

    fn image(&self) -> [i64; 3] {
        match self.shape[..] {
            [c, h, w] => [c, h, w],
            _ => panic!(
                "{}: layer {} needs an image input, the shape is {:?}",
                self.name,
                self.layers.len(),
                self.shape
            ),
        }
    }

    pub fn linear(mut self, out: i64) -> Self {
        let fan_in: i64 = self.shape.iter().product();
        assert_eq!(self.shape.len(), 1, "{}: linear needs a flat input, found {:?}", self.name, self.shape);
        let pre = self.prefix();
        let p = &self.root / pre.as_str();
        let w = self.init_var(&p, "weight", &[out, fan_in], fan_in);
        let b = self.init_var(&p, "bias", &[out], fan_in);
        let spec = LayerSpec::Linear { weight: format!("{pre}.weight"), bias: Some(format!("{pre}.bias")) };
        self.push(spec, BTreeMap::from([("weight", w), ("bias", b)]), vec![out])
    }

    pub fn conv2d(mut self, out: i64, k: i64, stride: i64, padding: i64) -> Self {
        let [c, h, w] = self.image();
        let pre = self.prefix();
        let p = &self.root / pre.as_str();
        let fan_in = c * k * k;
        let wt = self.init_var(&p, "weight", &[out, c, k, k], fan_in);
        let b = self.init_var(&p, "bias", &[out], fan_in);
        let spec = LayerSpec::Conv2d {
            weight: format!("{pre}.weight"),
            bias: Some(format!("{pre}.bias")),
            stride: Pair::One(stride as usize),
            padding: Pair::One(padding as usize),
        };
        let o = |d: i64| (d + 2 * padding - k) / stride + 1;
        self.push(spec, BTreeMap::from([("weight", wt), ("bias", b)]), vec![out, o(h), o(w)])
    }

    /// A transposed convolution; `bias` false when a batch-norm follows.
    pub fn conv_transpose2d(mut self, out: i64, k: i64, stride: i64, padding: i64, bias: bool) -> Self {
        let [c, h, w] = self.image();
        let pre = self.prefix();
        let p = &self.root / pre.as_str();
        // PyTorch computes the fan-in of a transposed convolution from weight dimension 1 (`out`).
        let fan_in = out * k * k;
        let wt = self.init_var(&p, "weight", &[c, out, k, k], fan_in);
        let mut params = BTreeMap::from([("weight", wt)]);
        if bias {
            params.insert("bias", self.init_var(&p, "bias", &[out], fan_in));
        }
        let spec = LayerSpec::ConvTranspose2d {
            weight: format!("{pre}.weight"),
            bias: bias.then(|| format!("{pre}.bias")),
            stride: Pair::One(stride as usize),
            padding: Pair::One(padding as usize),
            output_padding: Pair::One(0),
        };
        let o = |d: i64| (d - 1) * stride - 2 * padding + k;
        self.push(spec, params, vec![out, o(h), o(w)])
    }

    pub fn batch_norm(self) -> Self {
        let c = self.shape[0];
        let pre = self.prefix();
        let p = &self.root / pre.as_str();
        let params = BTreeMap::from([
            ("weight", p.var("weight", &[c], Init::Const(1.0))),
            ("bias", p.var("bias", &[c], Init::Const(0.0))),
            ("running_mean", p.zeros_no_train("running_mean", &[c])),
            ("running_var", p.ones_no_train("running_var", &[c])),
        ]);
        let spec = LayerSpec::BatchNorm {
            weight: Some(format!("{pre}.weight")),
            bias: Some(format!("{pre}.bias")),
            running_mean: format!("{pre}.running_mean"),
            running_var: format!("{pre}.running_var"),
            eps: 1e-5,
        };
        let shape = self.shape.clone();
        self.push(spec, params, shape)
    }

    fn plain(self, spec: LayerSpec) -> Self {
        let shape = self.shape.clone();
        self.push(spec, BTreeMap::new(), shape)
    }

    pub fn relu(self) -> Self {
        self.plain(LayerSpec::Relu)
    }

    pub fn leaky_relu(self, slope: f64) -> Self {
        self.plain(LayerSpec::LeakyRelu { slope })
    }

    pub fn clamp(self, min: f64, max: f64) -> Self {
        self.plain(LayerSpec::Clamp { min: Some(min), max: Some(max) })
    }

    pub fn sigmoid(self) -> Self {
        self.plain(LayerSpec::Sigmoid)
    }

    pub fn tanh(self) -> Self {
        self.plain(LayerSpec::Tanh)
    }

    pub fn flatten(self) -> Self {
        let n = self.shape.iter().product();
        self.push(LayerSpec::Flatten, BTreeMap::new(), vec![n])
    }

    pub fn reshape(self, shape: &[i64]) -> Self {
        assert_eq!(
            shape.iter().product::<i64>(),
            self.shape.iter().product::<i64>(),
            "{}: bad reshape",
            self.name
        );
        let spec = LayerSpec::Reshape { shape: shape.iter().map(|&d| d as usize).collect() };
        self.push(spec, BTreeMap::new(), shape.to_vec())
    }

    pub fn max_pool2d(self, k: i64) -> Self {
        let [c, h, w] = self.image();
        let spec =
            LayerSpec::MaxPool2d { kernel: Pair::One(k as usize), stride: None, padding: Pair::One(0) };
        self.push(spec, BTreeMap::new(), vec![c, h / k, w / k])
    }

    pub fn avg_pool2d(self, k: i64) -> Self {
        let [c, h, w] = self.image();
        let spec =
            LayerSpec::AvgPool2d { kernel: Pair::One(k as usize), stride: None, padding: Pair::One(0) };
        self.push(spec, BTreeMap::new(), vec![c, h / k, w / k])
    }

    pub fn build(self, description: impl Into<String>) -> Net {
        Net {
            name: self.name,
            description: Some(description.into()),
            input_shapes: self.input_shapes,
            layers: self.layers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{self, ClassifierArch, LATENT};
    use tch::nn::VarStore;

    /// Max |a − b| between gcert-core's f64 forward of the saved card and libtorch's.
    fn compare(net: &Net, inputs: &[Tensor], dir: &Path) -> (f64, f64) {
        let card = dir.join(format!("{}.toml", net.name));
        net.save_card(&card, false).unwrap();
        let core = Network::load(&card).unwrap();
        let n = inputs[0].size()[0];
        let flat: Vec<f64> = {
            let per: Vec<Tensor> = inputs.iter().map(|x| x.to_kind(Kind::Double).reshape([n, -1])).collect();
            Vec::<f64>::try_from(Tensor::cat(&per, 1).flatten(0, -1)).unwrap()
        };
        let ours = core.forward(&flat, n as usize).unwrap();
        // The card loaded back into libtorch in f64: the same function, exactly.
        let back = Net::load_card(&card, Kind::Double, Device::Cpu).unwrap();
        let x64: Vec<Tensor> = inputs.iter().map(|x| x.to_kind(Kind::Double)).collect();
        let r64: Vec<&Tensor> = x64.iter().collect();
        let t64 = Vec::<f64>::try_from(back.forward_multi(&r64, false).unwrap().flatten(0, -1)).unwrap();
        // The trained f32 network itself.
        let r32: Vec<&Tensor> = inputs.iter().collect();
        let t32 = Vec::<f64>::try_from(
            tch::no_grad(|| net.forward_multi(&r32, false)).unwrap().to_kind(Kind::Double).flatten(0, -1),
        )
        .unwrap();
        assert_eq!(ours.len(), t64.len());
        let d64 = ours.iter().zip(&t64).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let d32 = ours.iter().zip(&t32).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        (d64, d32)
    }

    /// Moves batch-norm statistics away from (0, 1) so that the export of eval-mode BN is exercised.
    fn warm_bn(net: &Net, x: &[Tensor]) {
        let r: Vec<&Tensor> = x.iter().collect();
        tch::no_grad(|| {
            for _ in 0..3 {
                let _ = net.forward_multi(&r, true).unwrap();
            }
        });
    }

    #[test]
    fn exported_cards_compute_what_libtorch_computes() {
        tch::manual_seed(11);
        let dir = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let images = Tensor::rand([6, 1, 32, 32], (Kind::Float, Device::Cpu));
        for arch in ClassifierArch::ALL {
            let net = models::classifier(vs.root() / arch.name(), arch, arch.name(), 0);
            let (d64, d32) = compare(&net, &[images.shallow_clone()], dir.path());
            assert!(d64 <= 1e-9 && d32 <= 1e-5, "{arch}: f64 {d64:e}, f32 {d32:e}");
        }
        let pair = models::pair_net(vs.root() / "pair", "pair", 0);
        let other = Tensor::rand([6, 1, 32, 32], (Kind::Float, Device::Cpu));
        let (d64, d32) = compare(&pair, &[images.shallow_clone(), other], dir.path());
        assert!(d64 <= 1e-9 && d32 <= 1e-5, "pair: {d64:e} {d32:e}");

        let g = models::generator(vs.root() / "g", LATENT, [16, 8, 4], "generator", 0);
        let z = Tensor::randn([6, LATENT], (Kind::Float, Device::Cpu));
        warm_bn(&g, &[Tensor::randn([32, LATENT], (Kind::Float, Device::Cpu))]);
        let (d64, d32) = compare(&g, &[z], dir.path());
        assert!(d64 <= 1e-9 && d32 <= 1e-5, "generator: {d64:e} {d32:e}");
        let core = Network::load(dir.path().join("generator.toml")).unwrap();
        assert_eq!(core.output_shape(), [1, 32, 32]);
        assert_eq!(core.first_nonlinear(), None, "the generator is piecewise linear");
    }

    #[test]
    fn every_card_op_round_trips() {
        // Pooling, leaky relu, tanh and reshape: ops the fixtures do not use.
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let net = NetBuilder::new(vs.root(), "misc", &[2, 8, 8])
            .conv2d(4, 3, 1, 1)
            .batch_norm()
            .leaky_relu(0.1)
            .max_pool2d(2)
            .avg_pool2d(2)
            .reshape(&[4, 4])
            .flatten()
            .linear(3)
            .tanh()
            .build("misc");
        let x = Tensor::randn([5, 2, 8, 8], (Kind::Float, Device::Cpu));
        warm_bn(&net, &[x.shallow_clone()]);
        let dir = tempfile::tempdir().unwrap();
        let (d64, d32) = compare(&net, &[x], dir.path());
        assert!(d64 <= 1e-9 && d32 <= 1e-5, "{d64:e} {d32:e}");
    }

    #[test]
    fn bad_cards_and_inputs_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let net = models::classifier(vs.root(), ClassifierArch::Conv2, "c", 0);
        let card = dir.path().join("c.toml");
        net.save_card(&card, false).unwrap();
        let err = net.save_card(&card, false).unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");

        // A convolution whose weight is not 4-D cannot be built.
        let (mut c, mut tensors) = net.to_card("bad.safetensors").unwrap();
        let w = tensors.get_mut("l0.weight").unwrap();
        w.shape = vec![16, 16];
        c.weights = "bad.safetensors".into();
        gcert_core::tensors::write_safetensors(&dir.path().join("bad.safetensors"), &tensors, Precision::F32)
            .unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, toml::to_string(&c).unwrap()).unwrap();
        let err = Net::load_card(&bad, Kind::Float, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("layer 0 (conv2d)"), "{err}");

        let err =
            Net::load_card(&dir.path().join("none.toml"), Kind::Float, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("none.toml"), "{err}");

        let back = Net::load_card(&card, Kind::Float, Device::Cpu).unwrap();
        let err =
            back.forward(&Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu)), false).unwrap_err();
        assert!(
            err.to_string().contains("must be a batch of shape [n, 1, 32, 32], found [2, 1, 28, 28]"),
            "{err}"
        );
    }
}
