//! Errors of archive reading and writing. Every variant names the archive and the member or image involved, and
//! says what to do.

use std::io;
use std::path::PathBuf;

use berth_spec::Digest;
use berth_spec::document::DocumentError;
use berth_spec::layout::LayoutError;

/// What went wrong with an oci-archive or docker-archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An I/O error on a named file (the archive, its temp file, or an extraction target).
    #[error(transparent)]
    Io(#[from] berth_spec::io_context::PathError),
    /// The archive is not a readable tar stream (bad header checksum, truncated, undecodable compression).
    #[error("{}: not a valid tar archive (check that the file is complete and really an image archive)", archive.display())]
    Tar {
        /// The archive.
        archive: PathBuf,
        /// The tar reader's complaint.
        source: io::Error,
    },
    /// A member that Berth refuses to read: an unsafe name, a link, a device, a duplicate, a bad blob name.
    #[error("{}: refusing member {member:?}: {reason}", archive.display())]
    BadMember {
        /// The archive.
        archive: PathBuf,
        /// The member's name as written in the archive.
        member: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A member that the archive's manifest refers to is not in the archive.
    #[error("{}: {referenced_by} refers to member {member:?}, which is not in the archive; the archive is incomplete: create it again", archive.display())]
    MissingMember {
        /// The archive.
        archive: PathBuf,
        /// The missing member.
        member: String,
        /// What refers to it (`manifest.json image 0 (busybox:latest)`).
        referenced_by: String,
    },
    /// A member (or document) larger than Berth reads into memory.
    #[error("{}: member {member:?} is {size} bytes, over the {limit}-byte limit for this kind of file; the archive is malformed or hostile", archive.display())]
    TooLarge {
        /// The archive.
        archive: PathBuf,
        /// The member.
        member: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// `manifest.json` of a docker-archive is missing or malformed.
    #[error("{}: manifest.json: {reason}", archive.display())]
    BadManifest {
        /// The archive.
        archive: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// No image in the archive matches the requested name or index.
    #[error("{}: no image {wanted} in the archive; it holds: {available}", archive.display())]
    ImageNotFound {
        /// The archive.
        archive: PathBuf,
        /// The name or `@N` asked for.
        wanted: String,
        /// The images present.
        available: String,
    },
    /// The request does not pick exactly one image.
    #[error("{}: {reason}", archive.display())]
    Ambiguous {
        /// The archive.
        archive: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A member whose name is its digest holds other content.
    #[error("{}: member {member:?} should hash to {expected} but its content hashes to {found}; the archive is corrupt", archive.display())]
    DigestMismatch {
        /// The archive.
        archive: PathBuf,
        /// The member.
        member: String,
        /// The digest the name states.
        expected: Digest,
        /// The digest of the content.
        found: Digest,
    },
    /// An image config that cannot be used (malformed, too large, or disagreeing with the image's layers).
    #[error("{}: image {image}: config {member:?}", archive.display())]
    Config {
        /// The archive.
        archive: PathBuf,
        /// The image (its first tag, or `@N`).
        image: String,
        /// The config member.
        member: String,
        /// The parse error.
        source: Box<DocumentError>,
    },
    /// The image lists a different number of layers than its config has diff_ids.
    #[error("{}: image {image} lists {layers} layers but its config has {diff_ids} diff_ids; the archive is corrupt", archive.display())]
    LayerCount {
        /// The archive.
        archive: PathBuf,
        /// The image.
        image: String,
        /// Layers listed.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
    /// A layer's uncompressed content does not hash to its diff_id.
    #[error("{}: {layer}: uncompressed content hashes to {found}, but the config's diff_id is {expected}; the image is corrupt", archive.display())]
    DiffIdMismatch {
        /// The archive.
        archive: PathBuf,
        /// The image and layer (`image @0 (busybox:latest): layer "abc/layer.tar"`).
        layer: String,
        /// The config's diff_id.
        expected: Digest,
        /// What the content hashes to.
        found: Digest,
    },
    /// A layer could not be read or decompressed.
    #[error("{}: image {image}: layer {member:?}", archive.display())]
    Layer {
        /// The archive.
        archive: PathBuf,
        /// The image.
        image: String,
        /// The layer member (or blob digest).
        member: String,
        /// The error.
        source: io::Error,
    },
    /// The image cannot be put into a docker-archive as it is.
    #[error("{}: image {image}: {reason}", archive.display())]
    Unsupported {
        /// The archive.
        archive: PathBuf,
        /// The image.
        image: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A RepoTag that is not a valid `NAME:TAG` reference.
    #[error("{}: invalid tag {tag:?}", archive.display())]
    BadTag {
        /// The archive.
        archive: PathBuf,
        /// The tag.
        tag: String,
        /// The reference error.
        source: Box<berth_spec::ReferenceError>,
    },
    /// Where an archive is to be extracted already holds something.
    #[error("{}: the destination exists and is not an empty directory; extract into a new directory", path.display())]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// A writer was used after an earlier error left its output unusable.
    #[error("{}: an earlier error aborted this archive; nothing was written; start a new one", archive.display())]
    Aborted {
        /// The archive.
        archive: PathBuf,
    },
    /// The OCI layout being read or written refused something.
    #[error("{}", archive.display())]
    Layout {
        /// The archive being read from or written to.
        archive: PathBuf,
        /// The layout's error (it names the layout, blob or ref).
        source: Box<LayoutError>,
    },
}

/// Result alias.
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

/// Attaches the archive to layout errors.
pub(crate) trait LayoutContext<T> {
    fn in_archive(self, archive: &std::path::Path) -> Result<T>;
}

impl<T> LayoutContext<T> for Result<T, LayoutError> {
    fn in_archive(self, archive: &std::path::Path) -> Result<T> {
        self.map_err(|source| ArchiveError::Layout {
            archive: archive.to_owned(),
            source: Box::new(source),
        })
    }
}
