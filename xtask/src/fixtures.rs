//! `cargo xtask fixtures`: small deterministic random piecewise-linear models for the demo and the tests.

use std::path::Path;

use anyhow::{Context, Result};
use gcert_core::builder::CardBuilder;
use gcert_core::network::save_card;
use gcert_core::npy::write_npy;
use gcert_core::tensors::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed every fixture derives from; change it and the committed files change.
const SEED: u64 = 20231;

pub fn run(root: &Path) -> Result<()> {
    let dir = root.join("fixtures");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    // A DCGAN-shaped generator: latent 8 → 1×16×16 in [0, 1].
    let (card, tensors) = CardBuilder::new("generator", &[8], SEED)
        // Gains chosen so that images are not blank (about 40% of pixels lit) and the classifier's label
        // changes between the two latents: the demo then shows both verdicts.
        .gain(3.0)
        .reshape(&[8, 1, 1])
        .conv_transpose2d(16, 4, 1, 0, 0)
        .batch_norm()
        .relu()
        .conv_transpose2d(8, 4, 2, 1, 0)
        .batch_norm()
        .relu()
        .conv_transpose2d(1, 4, 2, 1, 0)
        .clamp(0.0, 1.0)
        .build();
    let card = gcert_core::card::ModelCard {
        description: Some("random DCGAN-shaped generator (cargo xtask fixtures): latent 8 -> 1x16x16".into()),
        ..card
    };
    save_card(&dir.join("generator.toml"), &card, &tensors, Precision::F32, true)?;

    // A small convolutional classifier: 1×16×16 → 10 logits.
    let (card, tensors) = CardBuilder::new("classifier", &[1, 16, 16], SEED + 1)
        .gain(2.0)
        .conv2d(8, 3, 1, 1)
        .relu()
        .max_pool2d(2, 2, 0)
        .conv2d(16, 3, 1, 1)
        .relu()
        .max_pool2d(2, 2, 0)
        .flatten()
        .linear(32)
        .relu()
        .linear(10)
        .build();
    let card = gcert_core::card::ModelCard {
        description: Some("random convolutional classifier (cargo xtask fixtures): 1x16x16 -> 10".into()),
        ..card
    };
    save_card(&dir.join("classifier.toml"), &card, &tensors, Precision::F32, true)?;

    // Two latents and a unit direction between them.
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 2);
    let mut normal = || -> f64 {
        // Box–Muller: the prior of the latent space is a standard normal.
        let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let a: Vec<f64> = (0..8).map(|_| normal()).collect();
    let b: Vec<f64> = (0..8).map(|_| normal()).collect();
    let diff: Vec<f64> = a.iter().zip(&b).map(|(a, b)| b - a).collect();
    let norm = diff.iter().map(|v| v * v).sum::<f64>().sqrt();
    let d: Vec<f64> = diff.iter().map(|v| v / norm).collect();
    write_npy(&dir.join("latent_a.npy"), &[8], &a)?;
    write_npy(&dir.join("latent_b.npy"), &[8], &b)?;
    write_npy(&dir.join("direction.npy"), &[8], &d)?;
    println!("wrote fixtures to {}", dir.display());
    Ok(())
}
