//! The one error type of the gcert libraries.

use std::path::PathBuf;

/// Every way loading, validating or running a network can fail.
///
/// Messages are lower-case and say what was wrong and where: the file, the layer index and op, the tensor
/// name, and the expected against the found value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error's text is part of this message (not a separate source), so chains print it once.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: {message}", path.display())]
    Card { path: PathBuf, message: String },
    #[error("{}: layer {index} ({op}): {message}", path.display())]
    Layer { path: PathBuf, index: usize, op: String, message: String },
    #[error("{}: {message}", path.display())]
    Npy { path: PathBuf, message: String },
    #[error("layer {index} ({op}) is not piecewise linear: the exact chain cannot pass it{hint}")]
    NotPiecewiseLinear { index: usize, op: String, hint: String },
    /// The message says what was wrong with the caller's input (reason first).
    #[error("{0}")]
    Input(String),
    /// A file that cannot be read or written as asked: not a regular file, over its size cap, an output that
    /// already exists or is one of the inputs, a results file another run holds.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A layer produced a NaN or an infinity from finite inputs (its products overflow `f64`): never a verdict.
    #[error("layer {index} ({op}): {message}")]
    NonFinite { index: usize, op: String, message: String },
}

/// Result alias used across the gcert libraries.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), err: source }
    }

    /// A file whose content is wrong (a model card, a reference input): the message names what.
    pub fn card(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Card { path: path.into(), message: message.into() }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }

    /// An invalid argument from a caller (a zero-length segment, a wrong length, a non-finite value).
    pub fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }
}
