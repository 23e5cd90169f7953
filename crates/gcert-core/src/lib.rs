//! Shared types of gcert: model cards, validated networks and their batched forward pass, segments, exact
//! chains, `.npy` input/output and the one error type.
//!
//! A network is described by a TOML *model card* naming a safetensors file of weights in PyTorch layouts
//! (see `docs/model-card.md`). [`Network::load`] validates everything once; afterwards evaluation cannot fail
//! on the network's side.
//!
//! ```
//! use gcert_core::{card::ModelCard, tensors::{Tensor, TensorStore}, Network};
//! use std::path::Path;
//!
//! let card: ModelCard = toml::from_str(r#"
//!     format = "gcert-model/1"
//!     name = "tiny"
//!     weights = "tiny.safetensors"
//!     input_shape = [2]
//!     [[layers]]
//!     op = "linear"
//!     weight = "fc.weight"
//!     [[layers]]
//!     op = "relu"
//! "#).unwrap();
//! let mut tensors = TensorStore::new();
//! tensors.insert("fc.weight".into(), Tensor::new(vec![1, 2], vec![1.0, -1.0]));
//! let net = Network::from_card(&card, &tensors, Path::new("tiny.toml")).unwrap();
//! assert_eq!(net.forward(&[3.0, 1.0, 1.0, 3.0], 2).unwrap(), vec![2.0, 0.0]);
//! ```

pub mod builder;
pub mod card;
pub mod certificate;
pub mod chain;
pub mod direction;
pub mod error;
pub mod io;
pub mod limits;
pub mod loader;
pub mod measures;
pub mod network;
pub mod npy;
pub mod ops;
pub mod rect;
pub mod tensors;
pub mod translator;

pub use chain::{Chain, Segment};
pub use direction::{Direction, Provenance};
pub use error::{Error, Result};
pub use limits::Limits;
pub use network::{compose, Network};
pub use ops::{Activation, Kind, Layer, Op};
pub use translator::Translator;
