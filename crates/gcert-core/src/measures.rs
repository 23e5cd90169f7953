//! Measurements that several backends produce (pure Rust and libtorch) and reports read: one type per
//! concept, whoever computed it.

use serde::{Deserialize, Serialize};

/// A generator's sample quality, judged by a classifier: how confidently and how evenly it recognises
/// generated images (`gcert_continuity::quality` in pure Rust, `gcert_torch::quality` at training time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub samples: usize,
    /// Mean of the judge's top softmax probability.
    pub mean_confidence: f64,
    /// Fraction of samples whose top probability exceeds 0.9.
    pub confident_fraction: f64,
    /// How many samples the judge assigns to each of its classes (arg-max; the first on ties).
    pub class_counts: Vec<u64>,
    /// Entropy (bits) of that histogram; `log2(classes)` for perfectly even classes, 0 for one class.
    pub class_entropy_bits: f64,
}

/// The latent point found for an image by GAN inversion, and how well it reconstructs the image
/// (`gcert_directions::invert` in pure Rust, `gcert_torch::invert` with libtorch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inversion {
    /// The latent point.
    pub z: Vec<f64>,
    /// Per-pixel mean squared error of `G(z)` against the image.
    pub mse: f64,
    /// The per-pixel mean squared error reached from each starting point.
    pub restart_mse: Vec<f64>,
}
