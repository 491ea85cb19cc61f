//! The builder's errors. Each names the Containerfile line, the image or the path involved; the binary prints
//! the chain of causes once.

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
    #[error(transparent)]
    Io(#[from] berth_spec::io_context::PathError),
    /// The Containerfile, an ignore file or a build argument cannot be read or used.
    #[error("{what}")]
    Input {
        /// What was being read, and what is wrong.
        what: String,
        /// The cause, when there is one.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
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
