//! The error type of the directions library.

use std::path::PathBuf;

/// Every way computing or using mutation directions can fail.
///
/// Messages are lower-case and say what was wrong and where (the file, the expected against the found size).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or running the generator failed, or the core rejected an input.
    #[error(transparent)]
    Core(#[from] gcert_core::Error),
    /// A caller's argument is unusable (wrong length, non-finite, zero direction, bad parameter).
    #[error("invalid input: {0}")]
    Input(String),
    /// A file's content is unusable for its role (a latent of the wrong size, an empty mask).
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A LAPACK routine failed (it does not converge on matrices with NaN or overflowing entries).
    #[error("linear algebra failed in {routine}: {message}")]
    Linalg { routine: &'static str, message: String },
}

/// Result alias of the directions library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }

    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }

    pub(crate) fn linalg(routine: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Linalg { routine, message: e.to_string() }
    }
}

/// An error if any value is NaN or infinite; `what` names the values in the message.
pub(crate) fn check_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::input(format!("{what} has a non-finite value ({}) at index {i}", values[i]))),
        None => Ok(()),
    }
}
