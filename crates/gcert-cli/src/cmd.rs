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

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use gcert_core::loader::{parse_card, weights_path, LoadOptions};
use gcert_core::npy::read_npy;
use gcert_core::{Direction, Network, Provenance};

/// How this run loads model cards (`--allow-outside-weights`, `--max-elements`); set once by `main`.
static LOAD_OPTIONS: OnceLock<LoadOptions> = OnceLock::new();

/// Sets how this run loads cards and how large its inputs may be (called once, before any command runs).
pub fn set_load_options(options: LoadOptions) {
    gcert_core::Limits::set_current(options.limits);
    let _ = LOAD_OPTIONS.set(options);
}

pub fn load_options() -> LoadOptions {
    LOAD_OPTIONS.get().copied().unwrap_or_else(LoadOptions::current)
}

/// Loads and validates a network: a model card, or an ONNX file (`.onnx`, `.onnx.gz`) imported on the fly.
pub fn load_network(path: &Path) -> Result<Network> {
    if gcert_onnx::is_onnx_path(path) {
        return gcert_onnx::load(path)
            .with_context(|| format!("cannot import ONNX network {}", path.display()));
    }
    Network::load_with(path, &load_options())
        .with_context(|| format!("cannot load model card {}", path.display()))
}

/// The files a model card makes a run read: the card and, if it parses, its weights file. An output must be
/// none of them.
pub fn card_files(card: &Path) -> Vec<PathBuf> {
    let mut files = vec![card.to_path_buf()];
    let limits = load_options().limits;
    if let Ok(text) = gcert_core::io::read_text_capped(card, "a model card", limits.max_card_bytes) {
        if let Ok(c) = parse_card(&text, card) {
            if let Ok(w) = weights_path(card, &c.weights, true) {
                files.push(w);
            }
        }
    }
    files
}

/// Refuses an output that is one of the run's inputs, or not a regular file, or (without `force`) exists.
pub fn check_output(out: &Path, force: bool, inputs: &[PathBuf]) -> Result<()> {
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    gcert_core::io::refuse_input_as_output(out, &inputs)?;
    gcert_core::io::check_output(out, force)?;
    Ok(())
}

/// A value parser for a finite number (NaN and infinities are refused by the option parser).
pub fn finite(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("must be a finite number, found {v}")),
        Err(e) => Err(format!("{e}")),
    }
}

/// A value parser for a count of at most `MAX` (larger counts would only abort on allocation or run for days).
pub fn at_most<const MAX: usize>(s: &str) -> std::result::Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|e| format!("{e}"))?;
    if v > MAX {
        return Err(format!("must be at most {MAX}, found {v} (docs/limits.md)"));
    }
    Ok(v)
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

/// At most `2·ends` values: the first and last `ends`, with the number left out between them (a chain of
/// thousands of ratios is for `--json`, not for a terminal).
pub fn fmt_some_values(values: &[f64], ends: usize) -> String {
    if values.len() <= 2 * ends {
        return fmt_values(values);
    }
    let head: Vec<String> = values[..ends].iter().map(|v| format!("{v:.6}")).collect();
    let tail: Vec<String> = values[values.len() - ends..].iter().map(|v| format!("{v:.6}")).collect();
    format!("[{}, … {} more …, {}]", head.join(", "), values.len() - 2 * ends, tail.join(", "))
}

/// Splits `FILE.npy:ROW` into the file and the row, without converting the path to UTF-8 (a non-UTF-8 file
/// name is read as given).
fn split_row(spec: &OsStr) -> (&Path, Option<usize>) {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = spec.as_bytes();
        if let Some(i) = bytes.iter().rposition(|&b| b == b':') {
            let row = std::str::from_utf8(&bytes[i + 1..]).ok().and_then(|r| r.parse::<usize>().ok());
            if i > 0 && row.is_some() {
                return (Path::new(OsStr::from_bytes(&bytes[..i])), row);
            }
        }
        (Path::new(spec), None)
    }
    #[cfg(not(unix))]
    match spec.to_str().and_then(|s| s.rsplit_once(':')) {
        Some((p, r)) if !p.is_empty() && r.parse::<usize>().is_ok() => (Path::new(p), r.parse().ok()),
        _ => (Path::new(spec), None),
    }
}

/// Reads `FILE.npy:ROW` or `FILE.npy` as a unit direction (an error names the file if it cannot be
/// normalised).
pub fn read_direction(spec: &OsStr, k: usize) -> Result<Direction> {
    let (path, row) = split_row(spec);
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
    let source = spec.to_string_lossy().into_owned();
    Ok(Direction::from_values(all.swap_remove(row), Provenance::Given { source })?)
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
