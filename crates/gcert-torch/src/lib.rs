//! gcert models on libtorch: data, piecewise-linear generators, classifiers and pair networks, trained on the
//! CPU or CUDA and exported as model cards that gcert-core loads.
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
pub mod train;
pub mod vae;

pub use error::{Error, Result};
