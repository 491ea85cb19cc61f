//! berth-spec: the OCI image-spec vocabulary every Berth tool shares, and the OCI image layout store.
//!
//! - [`digest`]: validated [`Digest`]s, hashing ([`Hasher`]) and readers that verify as they read.
//! - [`document`]: manifests, indexes and configs kept as raw bytes + digest + parsed value, so digests survive.
//! - [`media_type`], [`platform`] and [`reference`](mod@reference): media types and their conversions, platform
//!   matching, and image references with their transports (`oci:`, `oci-archive:`, `docker://`,
//!   `docker-archive:`, store names).
//! - [`layout`]: the OCI image layout on disk, where every blob is verified before it is committed and
//!   `index.json` is replaced atomically; [`store`] and [`dirs`] say where Berth keeps its layouts and caches.
//! - [`runtime_config`]: image config -> OCI runtime process (the image-spec conversion rules).
//!
//! Write a blob into a new layout and read it back, verified:
//!
//! ```
//! use std::io::Read;
//!
//! use berth_spec::layout::Layout;
//! use berth_spec::{Algorithm, Digest};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let layout = Layout::create(dir.path().join("layout"))?;
//! let digest = layout.writer()?.put_bytes(b"hello", Algorithm::Sha256)?;
//! assert_eq!(digest, Digest::sha256(b"hello"));
//!
//! let mut back = Vec::new();
//! layout.open_blob(&digest, 5)?.read_to_end(&mut back)?;
//! assert_eq!(back, b"hello");
//! # Ok(()) }
//! ```

pub mod digest;

pub use digest::{Algorithm, Digest, DigestError, Hasher, VerifyError, VerifyingReader};
pub mod diff_id;
pub mod dirs;
pub mod document;
pub mod in_root;
pub mod io_context;
pub mod layout;
pub mod media_type;
pub mod platform;
pub mod private_dir;
pub mod reference;
pub mod store;
pub mod time;
pub use reference::{DockerArchiveRef, DockerReference, ImageRef, ReferenceError, StoreRef, validate_ref_name};
pub mod runtime_config;
pub mod whiteout;

/// An error and its sources as one line, `outer: inner: innermost`, for carrying a foreign error (a library's,
/// whose chain Berth does not control) inside a message. Berth's own errors say only their own part and keep
/// their cause as `source()`; the binary prints the chain once.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
