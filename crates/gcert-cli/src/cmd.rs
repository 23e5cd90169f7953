//! One module per subcommand, and the helpers they share.

pub mod bounds;
pub mod certify;
pub mod directions;
pub mod eval;
pub mod exactline;
pub mod invert;
pub mod mutate;

use std::path::Path;

use anyhow::{bail, Context, Result};
use gcert_core::npy::read_npy;
use gcert_core::Network;

/// Loads and validates a model card.
pub fn load_network(path: &Path) -> Result<Network> {
    Network::load(path).with_context(|| format!("cannot load model card {}", path.display()))
}

/// Reads an input `.npy` shaped as `shape`, `[1, ..shape]` or flat; returns the flat values.
pub fn read_input(path: &Path, shape: &[usize], what: &str) -> Result<Vec<f64>> {
    let arr = read_npy(path)?;
    let len: usize = shape.iter().product();
    let batched: Vec<usize> = std::iter::once(1).chain(shape.iter().copied()).collect();
    if arr.data.len() != len || !(arr.shape == shape || arr.shape == [len] || arr.shape == batched) {
        bail!(
            "{}: {what} must have shape {shape:?} (or [{len}]), found {:?} with {} values",
            path.display(),
            arr.shape,
            arr.data.len()
        );
    }
    Ok(arr.data)
}

/// Prints a JSON value on stdout.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Formats numbers compactly for the human-readable outputs.
pub fn fmt_values(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
    format!("[{}]", parts.join(", "))
}
