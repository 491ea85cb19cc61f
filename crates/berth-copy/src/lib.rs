//! berth-copy: copy, inspect, list, delete and sync container images between OCI image layouts (`oci:`), the
//! default local store (bare names), OCI and Docker archives (`oci-archive:`, `docker-archive:`) and registries
//! (`docker://`) — skopeo's job. Moving images is the shared engine's ([`berth_transfer`]: every digest
//! verified, parallel and resumable downloads, retries, progress events); this crate adds the copier's other
//! verbs.
//!
//! The library never prints; the `berth-copy` binary owns output and exit codes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_copy::CopyError> {
//! use berth_copy::{copy, CopyOptions, Endpoints};
//! let endpoints = Endpoints::default();
//! let src = "oci:/tmp/layout:app:1".parse().unwrap();
//! let dst = "docker://localhost:5000/app:1".parse().unwrap();
//! let progress = std::sync::Arc::new(berth_copy::Silent);
//! let report = copy(&endpoints, &src, &dst, &CopyOptions::default(), progress).await?;
//! println!("{}", report.digest);
//! # Ok(()) }
//! ```

pub mod delete;
pub mod inspect;
pub mod sync;

pub use berth_transfer::{
    CopyError, CopyOptions, CopyReport, Endpoints, Outcome, Progress, RegistryAccess, Selection, Silent, copy,
};
