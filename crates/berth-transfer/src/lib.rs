//! berth-transfer: the one engine that moves an image (index, manifests, config, layers) from one place to
//! another — OCI image layouts (and the default store), OCI and Docker archives, and registries. The copier's
//! `copy` and `sync`, the runner's `pull` and the builder's `FROM` all go through it, so every tool gets the same
//! parallel, resumable, verified transfer.
//!
//! - Blobs move in parallel; a registry download resumes where it was cut; every digest and size is checked
//!   before anything is committed; documents keep their bytes unless a conversion was asked for.
//! - Children are written before parents and the name last, so an interrupted transfer never leaves a name
//!   pointing at something incomplete, and a rerun finishes the job.
//! - The library never prints: it reports [`progress`] events, and each binary draws them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_transfer::CopyError> {
//! use berth_transfer::{copy, CopyOptions, Endpoints};
//! let endpoints = Endpoints::default();
//! let src = "docker://localhost:5000/app:1".parse().unwrap();
//! let dst = "oci:/tmp/layout:app:1".parse().unwrap();
//! let progress = std::sync::Arc::new(berth_transfer::progress::Silent);
//! let report = copy(&endpoints, &src, &dst, &CopyOptions::default(), progress).await?;
//! println!("{} ({} blobs copied)", report.digest, report.copied);
//! # Ok(()) }
//! ```

mod blob;
mod convert;
pub mod copy;
pub mod endpoint;
pub mod error;
pub mod plan;
pub mod progress;
pub mod pull;

pub use copy::{CopyOptions, CopyReport, copy, copy_between, refused_manifest};
pub use endpoint::{Endpoints, RegistryAccess};
pub use error::CopyError;
pub use plan::Selection;
pub use progress::{Outcome, Progress, Silent};
