//! One module per subcommand, and the helpers they share.

pub mod bounds;
pub mod certify;
pub mod continuity;
pub mod directions;
pub mod eval;
pub mod exactline;
pub mod import;
pub mod invert;
pub mod mutate;
pub mod train;

use std::path::Path;

use anyhow::{bail, Context, Result};
use gcert_core::npy::read_npy;
use gcert_core::{Direction, Network, Provenance};

/// Loads and validates a network: a model card, or an ONNX file (`.onnx`, `.onnx.gz`) imported on the fly.
pub fn load_network(path: &Path) -> Result<Network> {
    if gcert_onnx::is_onnx_path(path) {
        return gcert_onnx::load(path)
            .with_context(|| format!("cannot import ONNX network {}", path.display()));
    }
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

/// Reads `FILE.npy:ROW` or `FILE.npy` as a unit direction (an error names the file if it cannot be
/// normalised).
pub fn read_direction(spec: &str, k: usize) -> Result<Direction> {
    let (path, row) = match spec.rsplit_once(':') {
        Some((p, r)) if !p.is_empty() && r.parse::<usize>().is_ok() => (p, r.parse::<usize>().ok()),
        _ => (spec, None),
    };
    let path = Path::new(path);
    let mut all = read_directions(path, k, "a direction file")?;
    let rows = all.len();
    let row = match row {
        Some(r) if r < rows => r,
        Some(r) => bail!("{}: row {r} does not exist, the file has {rows} direction(s)", path.display()),
        None if rows == 1 => 0,
        None => {
            bail!("{}: the file has {rows} directions; name one as {}:ROW", path.display(), path.display())
        }
    };
    Ok(Direction::from_values(all.swap_remove(row), Provenance::Given { source: spec.to_string() })?)
}

/// Every direction of a file of shape `[k]` (one) or `[rows, k]` (one per row), for a latent of `k` values;
/// `what` names the file in the error ("a direction file", "a directions file").
pub fn read_directions(path: &Path, k: usize, what: &str) -> Result<Vec<Vec<f64>>> {
    let arr = read_npy(path)?;
    match arr.shape.as_slice() {
        [n] if *n == k => Ok(vec![arr.data]),
        [r, n] if *n == k && *r > 0 => Ok(arr.data.chunks_exact(k).map(<[f64]>::to_vec).collect()),
        s => bail!("{}: {what} must have shape [{k}] or [rows, {k}], found {s:?}", path.display()),
    }
}
