//! One module per subcommand, and the helpers they share.

pub mod bounds;
pub mod certify;
pub mod continuity;
pub mod directions;
pub mod eval;
pub mod evaluate;
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

/// A value parser for a transform name (`--mutation`): exactly the names of
/// [`gcert_directions::Property::ALL`].
pub fn transform(s: &str) -> std::result::Result<gcert_directions::Property, String> {
    s.trim().parse().map_err(|e: gcert_directions::Error| e.to_string().replace("invalid input: ", ""))
}

/// A value parser for a positive finite number (`--amount`).
pub fn positive(s: &str) -> std::result::Result<f64, String> {
    match finite(s)? {
        v if v > 0.0 => Ok(v),
        v => Err(format!("must be a positive number, found {v}")),
    }
}

/// The options of a named-mutation search (`--mutation`), shared by `certify`, `directions` and `mutate`.
#[derive(Debug, Clone, clap::Args)]
pub struct MutationArgs {
    /// Named mutations: how many top local directions (right-singular vectors of J at the latent) the search
    /// combines
    #[arg(long, default_value_t = 16, value_parser = at_most::<4096>)]
    pub candidates: usize,
    /// Named mutations: the latent half-range over which calibration, linearity and purity are verified
    #[arg(long, default_value_t = 3.0, value_parser = positive)]
    pub span: f64,
    /// Named mutations: the purity bar (largest cross effect over the transform's own effect)
    #[arg(long, default_value_t = 0.25, value_parser = finite)]
    pub max_cross: f64,
    /// Named mutations: the linearity bar (R² of the transform's amount against t over ±span)
    #[arg(long, default_value_t = 0.9, value_parser = finite)]
    pub min_linearity: f64,
    /// Geometry: pixels brighter than this (channels averaged) belong to the object
    #[arg(long, default_value_t = 0.5, value_parser = finite)]
    pub threshold: f64,
}

impl MutationArgs {
    pub fn params(&self) -> gcert_directions::MutationParams {
        let d = gcert_directions::MutationParams::default();
        gcert_directions::MutationParams {
            geometry: gcert_directions::geometry::GeometryParams { threshold: self.threshold, ..d.geometry },
            candidates: self.candidates,
            span: self.span,
            max_cross: self.max_cross,
            min_linearity: self.min_linearity,
        }
    }
}

/// The named mutation `transform` of `net` at `z`, or an error that says why there is none (never a
/// direction that does something else).
pub fn named_mutation(
    net: &Network,
    generator: &Path,
    latent: &Path,
    z: &[f64],
    transform: gcert_directions::Property,
    args: &MutationArgs,
) -> Result<gcert_directions::NamedMutation> {
    let found = gcert_directions::find_mutation(net, z, transform, &args.params())
        .with_context(|| format!("cannot search for a {transform} direction in {}", generator.display()))?;
    match found {
        gcert_directions::Found::Named(m) => Ok(m),
        gcert_directions::Found::NotFound { why, .. } => bail!(
            "no direction realises {transform} cleanly at {} under {}: {why}",
            latent.display(),
            generator.display()
        ),
    }
}

/// One line describing a named mutation.
pub fn describe_mutation(m: &gcert_directions::NamedMutation) -> String {
    let cross: Vec<String> = gcert_directions::Property::ALL
        .iter()
        .zip(&m.cross)
        .filter(|(p, _)| **p != m.transform)
        .map(|(p, c)| format!("{} {c:.2}", p.name()))
        .collect();
    format!(
        "{}: {:.4} {}/latent unit, linearity R² {:.3}, purity {:.3} (cross effects: {})",
        m.transform,
        m.per_latent_unit,
        m.transform.unit(),
        m.linearity,
        m.purity,
        cross.join(", ")
    )
}

/// A style translator (`--translator`) with the image (`--image`) it holds fixed: the card must be a translator
/// (two inputs, one of them a scalar strength; docs/stylized.md) and the image must have its image input's
/// shape. Every error names the file.
pub fn load_translator(card: &Path, image: &Path) -> Result<gcert_core::Translator> {
    let net = load_network(card)?;
    let inputs = gcert_core::translator::translator_inputs(&net)?;
    let x = read_input(image, &inputs.image_shape, "the image")?;
    gcert_core::Translator::new(net, x).with_context(|| format!("{}", image.display()))
}

/// The style a translator card moves, for provenance and messages: the card's name.
pub fn style_name(t: &gcert_core::Translator) -> String {
    t.network().name().to_string()
}
