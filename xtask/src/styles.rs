//! `cargo xtask styles`: the stylized mutations (issue 10, docs/stylized.md).
//!
//! With `--train`, trains every style's translators with `gcert-train` from `fixtures/trained/style-<name>.toml`:
//! `translator-<name>.toml` with the continuity term in α (λ = [`LAMBDA`]) and
//! `translator-<name>-unregulated.toml` without it, each with its reverse translator, strip PNG and report.
//! Then measures them over real MNIST test digits with the `style_tables` example of the CLI crate (xtask links
//! neither libtorch nor BLAS) and writes `docs/stylized-tables.md`: identity at α = 0, judged accuracy at α = 1,
//! continuity in α with and without the term, and the paper's Table 7 analogue for the four committed classifiers.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::setup::{run, torch_cargo};

/// The styles with committed translators.
pub const STYLES: [&str; 2] = ["fog", "rain"];
/// The continuity weight of the regulated translators.
pub const LAMBDA: f64 = 100.0;

pub fn styles(
    root: &Path,
    train: bool,
    device: &str,
    digits: usize,
    threads: usize,
    out: &Path,
) -> Result<()> {
    if train {
        run(torch_cargo()?.args(["build", "--release", "-p", "gcert-regulate", "--bin", "gcert-train"]))?;
        let trainer = root.join("target/release/gcert-train");
        let checkpoints = crate::setup::cache_dir().join("checkpoints").join("styles");
        for style in STYLES {
            for (suffix, lambda) in [("", LAMBDA), ("-unregulated", 0.0)] {
                let card = format!("fixtures/trained/translator-{style}{suffix}.toml");
                let mut cmd = Command::new(&trainer);
                cmd.current_dir(root)
                    .args([
                        "style",
                        "--device",
                        device,
                        "--config",
                        &format!("fixtures/trained/style-{style}.toml"),
                    ])
                    .args(["--out", &card, "--force", "--regulate", &lambda.to_string()])
                    .arg("--checkpoint")
                    .arg(checkpoints.join(format!("{style}{suffix}")));
                run(&mut cmd)?;
            }
        }
    }
    let mnist = crate::data::mnist_file();
    if !mnist.exists() {
        crate::data::run_data(false)?;
    }
    let mut cmd = torch_cargo()?;
    cmd.current_dir(root)
        .args(["run", "--release", "-p", "gcert-cli", "--example", "style_tables", "--"])
        .arg("--mnist")
        .arg(&mnist)
        .args(["--digits", &digits.to_string(), "--threads", &threads.to_string()])
        .arg("--out")
        .arg(root.join(out));
    for style in STYLES {
        let regulated = format!("fixtures/trained/translator-{style}.toml");
        let unregulated = format!("fixtures/trained/translator-{style}-unregulated.toml");
        if !root.join(&regulated).exists() {
            bail!("{regulated} does not exist: run `cargo xtask styles --train`");
        }
        let spec = if root.join(&unregulated).exists() {
            format!("{style}={regulated}:{unregulated}")
        } else {
            format!("{style}={regulated}")
        };
        cmd.args(["--style", &spec]);
    }
    run(&mut cmd)
}
