//! The builder's errors. Each names the Containerfile line, the image or the path involved; the binary prints
//! the chain of causes once.

use std::path::PathBuf;

use crate::containerfile::{ParseError, Pos};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The Containerfile is not valid syntax.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An instruction cannot be carried out as written.
    #[error("{file}:{}:{}: {message}", pos.line, pos.col)]
    Instruction {
        /// The Containerfile.
        file: String,
        /// Where the instruction is.
        pos: Pos,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A step failed; its cause follows.
    #[error("{file}:{}:{}: {step}", pos.line, pos.col)]
    Step {
        /// The Containerfile.
        file: String,
        /// Where the instruction is.
        pos: Pos,
        /// The step, as the progress output names it (`RUN make`).
        step: String,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Preparing or finishing a step's root filesystem failed.
    #[error("cannot {what}")]
    Work {
        /// What was being done.
        what: &'static str,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A base image could not be found or read.
    #[error("base image {image}")]
    Base {
        /// The image as written.
        image: String,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The output layout could not be written.
    #[error(transparent)]
    Layout(#[from] berth_spec::layout::LayoutError),
    /// The layer cache could not be used.
    #[error(transparent)]
    Cache(#[from] berth_layer::apply::CacheError),
    /// A directory another user controls.
    #[error(transparent)]
    Untrusted(#[from] berth_spec::private_dir::UntrustedDir),
    /// A file system operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// An option cannot be used as given.
    #[error("{option}: {reason}")]
    Option {
        /// The option.
        option: String,
        /// Why, and what to do.
        reason: String,
    },
}

/// Attaches an action and a path to I/O errors.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, BuildError>;
}

impl<T, E: Into<std::io::Error>> IoContext<T> for Result<T, E> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, BuildError> {
        self.map_err(|e| BuildError::Io {
            action,
            path: path.into(),
            source: e.into(),
        })
    }
}
