//! The error type of the evaluation pipeline.

use std::path::PathBuf;

/// Every way an evaluation can fail. Messages are lower-case, name the file and say what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or running a network, reading an array or writing a file failed.
    #[error(transparent)]
    Core(#[from] gcert_core::Error),
    /// Inversion, directions or a mutation failed.
    #[error(transparent)]
    Directions(#[from] gcert_directions::Error),
    /// A caller's input is unusable (an unknown mutation, an amount that is not positive, counts that differ).
    #[error("{0}")]
    Input(String),
    /// A file's content or place is unusable for its role.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

/// Result alias of the evaluation pipeline.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }

    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File { path: path.into(), message: message.into() }
    }
}
