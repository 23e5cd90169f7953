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
use serde_json::Value;

use crate::setup::{run, torch_cargo};

/// The training configuration (relative to the repository root).
pub const CONFIG: &str = "fixtures/trained/geometric.toml";
/// The cards, and the continuity weight each is trained with: λ = 1875 is the VAE's choice in docs/continuity.md
/// (λ = 300 at σ = 0.25) at the same weight relative to the likelihood, which scales as 1/σ² (σ = 0.1 here).
pub const CARDS: [(&str, f64); 2] = [
    ("fixtures/trained/generator-geometric.toml", 0.0),
    ("fixtures/trained/generator-geometric-regulated.toml", 1875.0),
];

pub fn geometric(root: &Path, train: bool, device: &str, render: bool) -> Result<()> {
    if render {
        return readme_section(root);
    }
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
    run(&mut cmd)?;
    readme_section(root)
}

const BEGIN: &str = "<!-- begin: cargo xtask geometric -->";
const END: &str = "<!-- end: cargo xtask geometric -->";

/// Writes the section on the geometric generators into `fixtures/trained/README.md` (between markers, so that
/// a rerun replaces it) from `geometric-axes.json` and each card's training report.
fn readme_section(root: &Path) -> Result<()> {
    let dir = root.join("fixtures/trained");
    let axes: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("geometric-axes.json"))?)?;
    let mut s = String::new();
    s.push_str(&format!("{BEGIN}\n## Generators with geometry coordinates\n\n"));
    s.push_str(
        "`generator-geometric.toml` and `generator-geometric-regulated.toml` (continuity λ = 1875: the VAE's λ = 300 of docs/continuity.md, at σ = 0.25, \
         scaled by (0.25 / 0.1)² to keep its weight relative to the likelihood at σ = 0.1) are the decoder of \
         a VAE trained with `fixtures/trained/geometric.toml` (`cargo xtask geometric --train`): their latent \
         has 51 units: first a class selector (a piecewise-linear staircase that picks the class mean of a \
         class-conditional Gaussian prior, docs/directions.md \"Sample quality\"), then 46 content units, and last \
         four geometry coordinates (rotation, translate-x, translate-y, scale at 10°, 1.5 px and 10 % per unit; rotation \
         and scaling about the centre of the digit's minimum-area rectangle, docs/directions.md \
         \"Where rotation lost its purity\"). \
         `vae-decoder.toml` is the unregulated one. Measured by `cargo xtask \
         geometric` at the latents of the first 100 MNIST test digits (each inverted with \
         `gcert_directions::invert`): along each geometry axis, t ∈ [−3, 3], the calibration (the property's \
         slope per latent unit), the purity (largest other property's effect over the own effect) and R²; an axis \
         is available at a digit when it reaches ±15°, ±2 px or ±10 % within |t| ≤ 3 with purity ≤ 0.25 \
         (per-digit figures in `geometric-axes.json`). The raw axis is a strict test: `find_mutation` (what \
         `gcert certify --mutation` runs) searches the span of the top local directions at each latent for the \
         purest direction, and finds each transform at many more digits: `cargo xtask geometry-tables --generator \
         CARD --out PAGE` writes its figures, Table 2 and Table 3 for these cards into \
         `docs/geometry-tables-geometric.md` and `docs/geometry-tables-geometric-regulated.md`.\n\n",
    );
    s.push_str("| card | training | samples | transform | available | median calibration | median purity | median R² |\n|---|---|---|---|---|---|---|---|\n");
    for card in axes["cards"].as_array().into_iter().flatten() {
        let name = card["card"].as_str().unwrap_or("?");
        let report_path = root.join(name).with_extension("json");
        let report: Value = std::fs::read_to_string(&report_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let training = format!(
            "{:.0} s, {}",
            report["training"]["seconds"].as_f64().unwrap_or(f64::NAN),
            report["training"]["device"].as_str().unwrap_or("?")
        );
        let q = &report["quality"];
        let counts: Vec<u64> =
            q["class_counts"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
        let total: u64 = counts.iter().sum();
        let rarest = counts.iter().min().copied().unwrap_or(0) as f64 / total.max(1) as f64;
        let samples = format!(
            "mean confidence {:.3}, {:.1}% above 0.9, rarest digit {:.1}%",
            q["mean_confidence"].as_f64().unwrap_or(f64::NAN),
            100.0 * q["confident_fraction"].as_f64().unwrap_or(f64::NAN),
            100.0 * rarest
        );
        let short = Path::new(name).file_name().and_then(|f| f.to_str()).unwrap_or(name);
        for (i, t) in card["summary"].as_array().into_iter().flatten().enumerate() {
            let (c, tr, sa) = if i == 0 {
                (format!("`{short}`"), training.clone(), samples.clone())
            } else {
                (String::new(), String::new(), String::new())
            };
            s.push_str(&format!(
                "| {c} | {tr} | {sa} | {} | {:.0}% | {:.2} {}/unit | {:.3} | {:.3} |\n",
                t["transform"].as_str().unwrap_or("?"),
                100.0 * t["available_fraction"].as_f64().unwrap_or(f64::NAN),
                t["median_calibration"].as_f64().unwrap_or(f64::NAN),
                t["unit"].as_str().unwrap_or("?"),
                t["median_purity"].as_f64().unwrap_or(f64::NAN),
                t["median_r2"].as_f64().unwrap_or(f64::NAN),
            ));
        }
    }
    s.push_str(&format!("{END}\n"));
    let path = dir.join("README.md");
    let text = std::fs::read_to_string(&path)?;
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{s}{}", &text[..a], &text[b + END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{s}", text.trim_end()),
    };
    std::fs::write(&path, new)?;
    eprintln!("updated {}", path.display());
    Ok(())
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
