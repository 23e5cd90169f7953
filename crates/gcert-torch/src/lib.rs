//! gcert models on libtorch: data, piecewise-linear generators, classifiers and pair networks, trained on the
//! CPU or CUDA and exported as model cards that gcert-core loads.
pub mod augment;
pub mod data;
pub mod device;
pub mod error;
pub mod models;
pub mod nn;
pub mod optim;
pub mod train;

pub use error::{Error, Result};
