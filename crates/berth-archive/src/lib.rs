//! berth-archive: images in tar archives, in and out, several images per archive.
//!
//! Two archive formats, as skopeo names them:
//!
//! - **oci-archive** (`oci-archive:PATH[:REF]`): a tar of an OCI image layout (`oci-layout`, `index.json`,
//!   `blobs/ALG/HEX`). [`extract_oci_archive`] unpacks one into a directory and opens it as a
//!   [`Layout`](berth_spec::layout::Layout); [`write_oci_archive`] packs a layout. Several images per archive are
//!   simply several entries of the layout's `index.json`, each named by its `org.opencontainers.image.ref.name`
//!   annotation: `REF` picks one (`Layout::resolve(Some(REF))`), and an archive of one image needs no `REF`.
//! - **docker-archive** (`docker-archive:PATH[:NAME:TAG|:@N]`, the `docker save` / `docker load` format): a
//!   `manifest.json` array of `{"Config", "RepoTags", "Layers"}`, with config and layer members at those paths.
//!   [`DockerArchiveReader`] indexes an archive once and reads members in place; [`import_docker_archive`] turns one
//!   of its images into an OCI image in a layout (config bytes kept, diffIDs checked); [`DockerArchiveWriter`]
//!   writes images from a layout (layers stored once, uncompressed, diffIDs checked). Several images per archive are
//!   several `manifest.json` entries, picked by RepoTag or position.
//!
//! Archives are hostile input: member names are normalized and `..`, absolute names, links out of the archive,
//! devices and duplicate names are refused with an error naming the member; documents are size-capped before
//! they are read; blobs and layers are checked against their digests and diffIDs while streamed. Written archives
//! are deterministic (sorted or insertion-ordered members, mtime 0, root ownership) and appear at their
//! destination only when complete (temp file, fsync, rename).
//!
//! ```no_run
//! use std::path::Path;
//! use berth_archive::{DockerArchiveReader, extract_oci_archive, import_docker_archive};
//! use berth_spec::media_type::Compression;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An oci-archive with several images: extract it and pick one by ref name.
//! let layout = extract_oci_archive(Path::new("images.tar"), Path::new("/tmp/images"))?;
//! let manifest = layout.resolve(Some("busybox:latest"))?;
//!
//! // A `docker save` archive: import its busybox image into the layout, with gzip layers.
//! let archive = DockerArchiveReader::open(Path::new("saved.tar"))?;
//! let wanted = berth_spec::DockerArchiveRef::Named(berth_spec::DockerReference::parse_normalized("busybox")?);
//! let image = archive.select(&wanted)?;
//! import_docker_archive(&archive, image, &layout, Some("busybox:imported"), Compression::Gzip)?;
//! # let _ = manifest; Ok(()) }
//! ```

mod docker_import;
mod docker_reader;
mod docker_writer;
mod error;
mod member;
mod member_index;
mod oci_extract;
mod oci_write;
mod tar_out;

pub use docker_import::import_docker_archive;
pub use docker_reader::{DockerArchiveImage, DockerArchiveReader, MAX_MANIFEST_JSON};
pub use docker_writer::DockerArchiveWriter;
pub use error::{ArchiveError, Result};
pub use member_index::MemberReader;
pub use oci_extract::extract_oci_archive;
pub use oci_write::write_oci_archive;
