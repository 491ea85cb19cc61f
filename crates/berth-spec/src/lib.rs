//! berth-spec: the shared spec crate of Berth.

pub mod digest;

pub use digest::{Algorithm, Digest, DigestError, Hasher, VerifyError, VerifyingReader};
pub mod diff_id;
pub mod dirs;
pub mod document;
pub mod layout;
pub mod media_type;
pub mod platform;
pub mod private_dir;
pub mod reference;
pub mod store;
pub use reference::{DockerArchiveRef, DockerReference, ImageRef, ReferenceError, StoreRef, validate_ref_name};
pub mod runtime_config;
