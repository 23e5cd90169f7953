//! The error type of gcert-torch.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data, building, training or exporting a model.
///
/// Messages are lower-case and say what was wrong and where (file, layer, expected against found).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data file that is missing, corrupt or of the wrong shape.
    #[error("{}: {message}", path.display())]
    Data { path: PathBuf, message: String },
    /// A model card or weights file that gcert-core rejects.
    #[error(transparent)]
    Card(#[from] gcert_core::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{}: checkpoint: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("invalid argument: {0}")]
    Input(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data { path: path.into(), message: message.into() }
    }

    pub(crate) fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }
}
