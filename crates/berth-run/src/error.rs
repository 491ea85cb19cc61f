//! Why the runner could not do what it was asked.

use std::path::PathBuf;

use berth_archive::ArchiveError;
use berth_layer::apply::ApplyError;
use berth_sandbox::SandboxError;
use berth_spec::Digest;
use berth_spec::layout::LayoutError;

/// A failure of the runner library. Every variant names the image, layer, directory or option involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The image could not be found or read.
    #[error("image {image}")]
    Layout {
        /// The image as the user named it.
        image: String,
        /// What went wrong in the layout.
        #[source]
        source: Box<LayoutError>,
    },
    /// The image's archive could not be read.
    #[error("image {image}")]
    Archive {
        /// The image as the user named it.
        image: String,
        /// What went wrong in the archive.
        #[source]
        source: Box<ArchiveError>,
    },
    /// The image cannot be used this way.
    #[error("image {image}: {reason}")]
    Unsupported {
        /// The image as the user named it.
        image: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Pulling the image from its registry failed.
    #[error("pulling {image}")]
    Pull {
        /// The image as the user named it.
        image: String,
        /// What went wrong (authentication, network, a digest mismatch, …).
        #[source]
        source: Box<berth_transfer::CopyError>,
    },
    /// A layer has a media type Berth cannot unpack.
    #[error("image {image}: layer {digest} has media type {media_type:?}, which is not a layer Berth can unpack")]
    UnsupportedLayer {
        /// The image as the user named it.
        image: String,
        /// The layer blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A layer could not be extracted (corrupt, hostile, or its diffID does not match).
    #[error("image {image}: layer {diff_id}")]
    Layer {
        /// The image as the user named it.
        image: String,
        /// The layer's diffID.
        diff_id: Digest,
        /// What went wrong.
        #[source]
        source: Box<ApplyError>,
    },
    /// The bundle directory cannot be used.
    #[error("bundle directory {}: {reason}", dir.display())]
    BundleDir {
        /// The directory.
        dir: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A container cannot be found, or cannot do what was asked in its state.
    #[error("container {container}: {reason}")]
    Container {
        /// The container as the user named it.
        container: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The layer cache could not be opened or used.
    #[error(transparent)]
    Cache(#[from] berth_layer::apply::CacheError),
    /// A cache or state directory another user controls, or one that cannot be made private.
    #[error(transparent)]
    UntrustedDir(#[from] berth_spec::private_dir::UntrustedDir),
    /// Preparing the container (spec, root filesystem, options) failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A file system operation failed.
    #[error(transparent)]
    Io(#[from] berth_spec::io_context::PathError),
}

impl RunError {
    /// A [`RunError::Container`].
    pub fn container(container: impl Into<String>, reason: impl Into<String>) -> Self {
        RunError::Container {
            container: container.into(),
            reason: reason.into(),
        }
    }

    /// An invalid command-line option.
    pub fn option(option: impl Into<String>, reason: impl Into<String>) -> Self {
        RunError::Sandbox(SandboxError::option(option, reason))
    }
}
