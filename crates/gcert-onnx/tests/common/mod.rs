//! What the tests that run Python share: the project's venv (`cargo xtask setup` makes it, with torch, onnx
//! and onnxruntime) and the committed fixtures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The committed ONNX fixtures (the VNN-COMP 2022 networks, `fixtures/onnx/README.md`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx")
}

/// This crate's Python scripts.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// The venv's python (`$GCERT_CACHE/venv`, else `~/.cache/gcert/venv`, the rule of `cargo xtask setup`), else
/// the `python3` on `PATH` (`cargo xtask test` puts the venv first there). Panics with what to run when it
/// lacks a module the tests need.
pub fn python(modules: &[&str]) -> PathBuf {
    let cache = std::env::var_os("GCERT_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache").join("gcert")
    });
    let venv = cache.join("venv").join("bin").join("python3");
    let py = if venv.exists() { venv } else { PathBuf::from("python3") };
    let check = format!("import {}", modules.join(", "));
    let ok = Command::new(&py).args(["-c", &check]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(
        ok,
        "{} cannot `{check}`: run `cargo xtask setup` (it installs them into the venv)",
        py.display()
    );
    py
}

/// Runs a Python script; panics with its stderr if it fails, returns its stdout.
pub fn run_python(py: &Path, script: &Path, args: &[&Path]) -> String {
    let out = Command::new(py).arg(script).args(args).output().expect("python starts");
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The largest `‖a_i − b_i‖∞ / ‖b_i‖∞` over rows of `width` values (the denominator at least 1e-6).
pub fn max_relative(a: &[f64], b: &[f64], width: usize) -> f64 {
    assert_eq!(a.len(), b.len(), "row counts differ");
    a.chunks(width)
        .zip(b.chunks(width))
        .map(|(x, y)| {
            let d = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
            let s = y.iter().map(|q| q.abs()).fold(1e-6, f64::max);
            d / s
        })
        .fold(0.0, f64::max)
}
