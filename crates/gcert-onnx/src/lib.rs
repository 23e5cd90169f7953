//! ONNX import for gcert: an ONNX network (`.onnx`, or gzipped `.onnx.gz`) to a validated model card and its
//! weights (`docs/onnx.md` lists the operators and what is refused).
//!
//! The file is decoded with `prost` types generated from the official `onnx.proto`. The graph must be a chain
//! with one input and one output; constants and shape computations are folded; affine steps (Gemm, MatMul,
//! Add/Sub/Mul/Div by constants, BatchNormalization) are merged into the neighbouring linear or convolution
//! layer where that is exact, and written as a `batch_norm` layer where it is not. The result passes
//! [`Network::from_card`] before it is returned, so an imported network is as valid as a hand-written card.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! let onnx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx/test_tiny.onnx");
//! let net = gcert_onnx::load(&onnx).unwrap();
//! assert_eq!(net.input_shapes(), [vec![1]]);
//! // `gcert import` writes the card and its weights beside it:
//! let card = dir.path().join("tiny.toml");
//! let imported = gcert_onnx::import_to(&onnx, &card, false).unwrap();
//! assert!(dir.path().join("tiny.safetensors").exists());
//! assert_eq!(gcert_core::Network::load(&card).unwrap().forward(&[0.5], 1).unwrap(),
//!            net.forward(&[0.5], 1).unwrap());
//! assert_eq!(imported.card.layers.len(), net.layers().len());
//! ```

mod convert;
mod emit;
mod read;

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use std::path::{Path, PathBuf};

use gcert_core::card::ModelCard;
use gcert_core::network::save_card;
use gcert_core::tensors::{Precision, TensorStore};
use gcert_core::Network;

/// Every way importing an ONNX file can fail. Messages name the file, and for a node its name and op type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{}: node '{node}' ({op}): {message}", path.display())]
    Node { path: PathBuf, node: String, op: String, message: String },
    /// The imported card failed gcert's own validation, or could not be written.
    #[error(transparent)]
    Card(#[from] gcert_core::Error),
}

impl Error {
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> Self {
        Error::File { path: path.to_path_buf(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An imported network: its card, its tensors, and facts about the import for reports.
#[derive(Debug, Clone)]
pub struct Imported {
    pub card: ModelCard,
    pub tensors: TensorStore,
    /// F32 when every weight is exactly an f32 (nothing was folded into a value f32 cannot hold), else F64.
    pub precision: Precision,
    /// The ONNX default-domain opset the file declares.
    pub opset: i64,
    /// Number of nodes in the ONNX graph.
    pub nodes: usize,
}

/// Imports an ONNX file into a model card and tensors, validated with [`Network::from_card`]. The card's
/// `weights` is `{name}.safetensors`, `name` being the file name without `.onnx`/`.onnx.gz`.
pub fn import(path: &Path) -> Result<Imported> {
    let model = read::read_model(path)?;
    let name = stem(path);
    let imported = convert::convert(path, &model, &name)?;
    Network::from_card(&imported.card, &imported.tensors, path)?;
    Ok(imported)
}

/// Imports an ONNX file and returns the validated network (as `Network::load` does for a card).
pub fn load(path: &Path) -> Result<Network> {
    let imported = import(path)?;
    Ok(Network::from_card(&imported.card, &imported.tensors, path)?)
}

/// Imports an ONNX file and writes the card to `card_path` with its weights beside it
/// (`{card stem}.safetensors`); refuses to overwrite either unless `overwrite`.
pub fn import_to(path: &Path, card_path: &Path, overwrite: bool) -> Result<Imported> {
    let mut imported = import(path)?;
    let card_stem =
        card_path.file_stem().map_or_else(|| imported.card.name.clone(), |s| s.to_string_lossy().into());
    imported.card.weights = format!("{card_stem}.safetensors");
    save_card(card_path, &imported.card, &imported.tensors, imported.precision, overwrite)?;
    Ok(imported)
}

/// Whether a path names an ONNX file (`.onnx` or `.onnx.gz`), by its name.
pub fn is_onnx_path(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.ends_with(".onnx") || name.ends_with(".onnx.gz")
}

fn stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let name = name.strip_suffix(".onnx").unwrap_or(name);
    if name.is_empty() {
        "model".into()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests;
