//! `cargo xtask geometric`: the generators that offer all four geometric mutations (issue 9, item 3).
//!
//! With `--train`, trains `fixtures/trained/generator-geometric.toml` and its continuity-regulated variant with
//! `gcert-train` from `fixtures/trained/geometric.toml`. Then measures the four geometry axes of both cards at the
//! latents of the first 100 MNIST test digits with the `geometric_axes` example of gcert-directions (xtask itself
//! links neither libtorch nor BLAS) into `fixtures/trained/geometric-axes.json`, writing the digits and each
//! card's latents into the cache (`~/.cache/gcert/geometric/`).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::setup::{run, torch_cargo};

/// The training configuration (relative to the repository root).
pub const CONFIG: &str = "fixtures/trained/geometric.toml";
/// The cards, and the continuity weight each is trained with (λ = 300: the VAE's choice in docs/continuity.md).
pub const CARDS: [(&str, f64); 2] = [
    ("fixtures/trained/generator-geometric.toml", 0.0),
    ("fixtures/trained/generator-geometric-regulated.toml", 300.0),
];

pub fn geometric(root: &Path, train: bool, device: &str) -> Result<()> {
    if train {
        train_cards(root, device)?;
    }
    let mnist = crate::data::mnist_file();
    if !mnist.exists() {
        crate::data::run_data(false)?;
    }
    let mut cmd = torch_cargo()?;
    cmd.current_dir(root)
        .args(["run", "--release", "-p", "gcert-directions", "--example", "geometric_axes", "--"])
        .arg("--mnist")
        .arg(&mnist)
        .arg("--digits")
        .arg(crate::setup::cache_dir().join("geometric"))
        .args(["--out", "fixtures/trained/geometric-axes.json"]);
    for (card, lambda) in CARDS {
        if !root.join(card).exists() {
            bail!("{card} does not exist: run `cargo xtask geometric --train`");
        }
        cmd.arg(format!("{card}={lambda}"));
    }
    run(&mut cmd)
}

fn train_cards(root: &Path, device: &str) -> Result<()> {
    run(torch_cargo()?.args(["build", "--release", "-p", "gcert-regulate", "--bin", "gcert-train"]))?;
    let trainer = root.join("target/release/gcert-train");
    let checkpoints = crate::setup::cache_dir().join("checkpoints").join("geometric");
    for (card, lambda) in CARDS {
        let stem = Path::new(card).file_stem().and_then(|s| s.to_str()).unwrap_or("run").to_string();
        let mut cmd = Command::new(&trainer);
        cmd.current_dir(root)
            .args(["--device", device, "--config", CONFIG, "--out", card, "--force"])
            .args(["--regulate", &lambda.to_string()])
            .arg("--checkpoint")
            .arg(checkpoints.join(&stem));
        run(&mut cmd)?;
    }
    Ok(())
}
