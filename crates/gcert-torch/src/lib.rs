//! gcert models on libtorch: data, piecewise-linear generators, classifiers and pair networks, trained on the
//! CPU or CUDA and exported as model cards that gcert-core loads.
//!
//! A network is built layer by layer with [`nn::NetBuilder`]; each layer is a model-card entry whose tensors
//! are `VarStore` variables, so what is trained is exactly what is exported ([`nn::Net::save_card`]).
//!
//! ```
//! use gcert_torch::models::{self, ClassifierArch};
//! use tch::{nn::VarStore, Device, Kind, Tensor};
//!
//! let vs = VarStore::new(Device::Cpu);
//! let net = models::classifier(vs.root(), ClassifierArch::Conv2, "conv2", 0);
//! let dir = tempfile::tempdir()?;
//! let card = dir.path().join("conv2.toml");
//! net.save_card(&card, false)?;
//! let x = Tensor::zeros([1, 1, 32, 32], (Kind::Float, Device::Cpu));
//! let ours = Vec::<f64>::try_from(net.forward(&x, false)?.to_kind(Kind::Double).flatten(0, -1))?;
//! let core = gcert_core::Network::load(&card)?.forward(&[0.0; 1024], 1)?;
//! assert!(ours.iter().zip(&core).all(|(a, b)| (a - b).abs() < 1e-5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod augment;
pub mod data;
pub mod device;
pub mod error;
pub mod fixtures;
pub mod gan;
pub mod image;
pub mod invert;
pub mod models;
pub mod nn;
pub mod objective;
pub mod optim;
pub mod quality;
pub mod random;
pub mod reference;
pub mod style;
pub mod train;
pub mod vae;

pub use error::{Error, Result};
