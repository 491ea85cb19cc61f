//! The copier's errors. Every variant names the reference, blob or file involved.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A layout (directory, store) error.
    #[error(transparent)]
    Layout(#[from] berth_spec::layout::LayoutError),
    /// The default store is controlled by another user (HOSTILE-INPUTS 38).
    #[error(transparent)]
    UntrustedStore(#[from] berth_spec::private_dir::UntrustedDir),
    /// A registry error.
    #[error(transparent)]
    Registry(#[from] berth_registry::RegistryError),
    /// An archive error.
    #[error(transparent)]
    Archive(#[from] berth_archive::ArchiveError),
    /// A document was refused.
    #[error(transparent)]
    Document(#[from] berth_spec::document::DocumentError),
    /// No manifest for the wanted platform.
    #[error(transparent)]
    Platform(#[from] berth_spec::platform::PlatformError),
    /// A layer could not be recompressed.
    #[error("{image}: layer {layer}: {reason}")]
    Layer {
        /// The image.
        image: String,
        /// The layer.
        layer: String,
        /// What failed.
        reason: String,
    },
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Usage(String),
    /// An I/O error on a named path.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl CopyError {
    pub fn usage(msg: impl Into<String>) -> Self {
        CopyError::Usage(msg.into())
    }

    pub fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> CopyError {
        let path = path.to_string();
        move |source| CopyError::Io { path, source }
    }
}
