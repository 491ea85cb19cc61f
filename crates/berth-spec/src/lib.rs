//! berth-spec: the shared spec crate of Berth.

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
pub use reference::{DockerArchiveRef, DockerReference, ImageRef, ReferenceError, StoreRef, validate_ref_name};
pub mod runtime_config;

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
