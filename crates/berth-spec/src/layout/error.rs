//! Errors of the OCI image layout store.

use std::path::PathBuf;

use crate::digest::{Digest, DigestError, VerifyError};
use crate::document::DocumentError;
use crate::platform::PlatformError;

/// What went wrong with a layout. Every variant names the layout path, blob or ref involved.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// An I/O error on a named path.
    #[error(transparent)]
    Io(#[from] crate::io_context::PathError),
    /// The directory is not an OCI image layout.
    #[error("{}: not an OCI image layout: {reason}", path.display())]
    NotALayout {
        /// The layout directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `oci-layout` names a version Berth does not know.
    #[error(
        "{}: unsupported imageLayoutVersion {version:?} in oci-layout (Berth reads 1.0.0)",
        path.display()
    )]
    UnsupportedVersion {
        /// The layout directory.
        path: PathBuf,
        /// The version found.
        version: String,
    },
    /// `index.json` is unreadable as an image index.
    // The document error starts with the path already.
    #[error("{error}; restore index.json from a backup or re-create the layout")]
    BadIndex {
        /// Path to index.json.
        path: PathBuf,
        /// The parse error.
        error: DocumentError,
    },
    /// A referenced blob is absent.
    #[error("{}: blob {digest} is missing", path.display())]
    BlobMissing {
        /// The blob's path.
        path: PathBuf,
        /// Its digest.
        digest: Digest,
    },
    /// The blob path is not a regular file.
    #[error("{}: blob {digest} is a {kind}, not a regular file; remove it and copy the image again", path.display())]
    BlobNotRegular {
        /// The blob's path.
        path: PathBuf,
        /// Its digest.
        digest: Digest,
        /// What it is instead.
        kind: &'static str,
    },
    /// Blob content does not match its descriptor.
    #[error("{}: {error}; the blob is corrupt: remove it and copy the image again", path.display())]
    Corrupt {
        /// The blob's path.
        path: PathBuf,
        /// The mismatch.
        error: VerifyError,
    },
    /// Content offered for a blob does not match the descriptor it was offered under; nothing was written.
    #[error("content offered for blob {digest} was refused: {error}; nothing was written")]
    Rejected {
        /// The expected digest.
        digest: Digest,
        /// The mismatch.
        error: VerifyError,
    },
    /// A layer does not match its diff_id.
    #[error(transparent)]
    DiffId(#[from] crate::diff_id::DiffIdError),
    /// A document in the layout is refused.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A digest in index.json is not canonical.
    #[error("{}: {error}", path.display())]
    BadDigest {
        /// Path to index.json.
        path: PathBuf,
        /// The digest error.
        error: DigestError,
    },
    /// A ref name violates the image-spec grammar.
    #[error("invalid ref name {name:?}: use letters, digits and separators [-._:@+] between them")]
    InvalidRefName {
        /// The ref name.
        name: String,
    },
    /// No entry carries the ref name.
    #[error("{}: no image named {name:?}; the layout has: {available}", layout.display())]
    RefNotFound {
        /// The layout.
        layout: PathBuf,
        /// The ref name asked for.
        name: String,
        /// The ref names present.
        available: String,
    },
    /// More than one entry carries the ref name.
    #[error(
        "{}: {count} entries of index.json are named {name:?}; the layout is ambiguous: delete the duplicates or \
         address the image by digest",
        layout.display()
    )]
    AmbiguousRef {
        /// The layout.
        layout: PathBuf,
        /// The ref name.
        name: String,
        /// How many entries carry it.
        count: usize,
    },
    /// No ref given, and the layout does not hold exactly one image.
    #[error("{}: the layout holds {count} images; name one (oci:PATH:REF)", layout.display())]
    RefRequired {
        /// The layout.
        layout: PathBuf,
        /// Entries in index.json.
        count: usize,
    },
    /// No image for the wanted platform.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// Indexes nest deeper than Berth follows.
    #[error("{}: indexes nest deeper than {limit} levels at {digest}; refusing to follow", layout.display())]
    TooDeep {
        /// The layout.
        layout: PathBuf,
        /// Where the limit was hit.
        digest: Digest,
        /// The limit.
        limit: usize,
    },
    /// The layout is busy (another process holds a conflicting lock).
    #[error("{}: {what}", layout.display())]
    Busy {
        /// The layout.
        layout: PathBuf,
        /// What holds it.
        what: &'static str,
    },
}

/// Result alias.
pub type Result<T, E = LayoutError> = std::result::Result<T, E>;
