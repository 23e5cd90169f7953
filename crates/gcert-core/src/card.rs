//! The model card: the public TOML description of a network (`format = "gcert-model/1"`).
//!
//! A card names a safetensors file of weights in PyTorch layouts and lists the layers in order. This module is
//! only the schema; [`crate::Network::load`] turns a card into a validated network.

use serde::{Deserialize, Serialize};

/// The only card format this version reads.
pub const FORMAT: &str = "gcert-model/1";

/// A model card as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub format: String,
    pub name: String,
    /// Path of the safetensors file, relative to the card.
    pub weights: String,
    /// One sample's shape, no batch dimension (single-input models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// The shapes of each input of a multi-input model; the first layer must be a `concat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shapes: Option<Vec<Vec<usize>>>,
    /// Free text: how the model was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub layers: Vec<LayerSpec>,
}

/// A pair of sizes (height, width), written either `3` or `[3, 3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pair {
    One(usize),
    Two([usize; 2]),
}

impl Pair {
    pub fn get(self) -> [usize; 2] {
        match self {
            Pair::One(v) => [v, v],
            Pair::Two(v) => v,
        }
    }
}

fn zero() -> Pair {
    Pair::One(0)
}

fn one() -> Pair {
    Pair::One(1)
}

fn default_eps() -> f64 {
    1e-5
}

fn default_slope() -> f64 {
    0.01
}

/// One layer of a card. `op` selects the variant; tensor fields name entries of the weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `y = W x + b`, weight `[out, in]`, bias `[out]`.
    Linear {
        weight: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias: Option<String>,
    },
    /// Weight `[out, in, kh, kw]`, bias `[out]`.
    Conv2d {
        weight: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias: Option<String>,
        #[serde(default = "one")]
        stride: Pair,
        #[serde(default = "zero")]
        padding: Pair,
    },
    /// Weight `[in, out, kh, kw]`, bias `[out]`.
    ConvTranspose2d {
        weight: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias: Option<String>,
        #[serde(default = "one")]
        stride: Pair,
        #[serde(default = "zero")]
        padding: Pair,
        #[serde(default = "zero")]
        output_padding: Pair,
    },
    /// Eval-mode batch normalisation over channels (dimension 0 of a sample).
    BatchNorm {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias: Option<String>,
        running_mean: String,
        running_var: String,
        #[serde(default = "default_eps")]
        eps: f64,
    },
    Relu,
    LeakyRelu {
        #[serde(default = "default_slope")]
        slope: f64,
    },
    /// `min(max(x, min), max)`; either bound may be left out.
    Clamp {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    Flatten,
    Reshape {
        shape: Vec<usize>,
    },
    /// Average pooling; zero padding is counted in the average (PyTorch's `count_include_pad=True`).
    AvgPool2d {
        kernel: Pair,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Pair>,
        #[serde(default = "zero")]
        padding: Pair,
    },
    /// Max pooling; padding never wins (PyTorch pads with -inf).
    MaxPool2d {
        kernel: Pair,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Pair>,
        #[serde(default = "zero")]
        padding: Pair,
    },
    Sigmoid,
    Tanh,
    /// Joins the inputs of a multi-input model along `axis` of a sample (0: channels). Only as first layer.
    Concat {
        #[serde(default)]
        axis: usize,
    },
}

impl LayerSpec {
    /// The `op` string of this layer, as written in the card.
    pub fn op_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::ConvTranspose2d { .. } => "conv_transpose2d",
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::Relu => "relu",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Clamp { .. } => "clamp",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Reshape { .. } => "reshape",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Concat { .. } => "concat",
        }
    }

    /// The tensors this layer reads from the weights file, with their role.
    pub fn tensor_names(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        match self {
            LayerSpec::Linear { weight, bias }
            | LayerSpec::Conv2d { weight, bias, .. }
            | LayerSpec::ConvTranspose2d { weight, bias, .. } => {
                out.push(("weight", weight.as_str()));
                if let Some(b) = bias {
                    out.push(("bias", b.as_str()));
                }
            }
            LayerSpec::BatchNorm { weight, bias, running_mean, running_var, .. } => {
                if let Some(w) = weight {
                    out.push(("weight", w.as_str()));
                }
                if let Some(b) = bias {
                    out.push(("bias", b.as_str()));
                }
                out.push(("running_mean", running_mean.as_str()));
                out.push(("running_var", running_var.as_str()));
            }
            LayerSpec::Relu
            | LayerSpec::LeakyRelu { .. }
            | LayerSpec::Clamp { .. }
            | LayerSpec::Flatten
            | LayerSpec::Reshape { .. }
            | LayerSpec::AvgPool2d { .. }
            | LayerSpec::MaxPool2d { .. }
            | LayerSpec::Sigmoid
            | LayerSpec::Tanh
            | LayerSpec::Concat { .. } => {}
        }
        out
    }
}
