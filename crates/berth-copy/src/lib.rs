//! berth-copy: copy, inspect, list, delete and sync container images between OCI image layouts (`oci:`), the
//! default local store (bare names), OCI and Docker archives (`oci-archive:`, `docker-archive:`) and registries
//! (`docker://`) — skopeo's job, with every digest verified, resumable downloads, retries, and progress that
//! never touches stdout.
//!
//! The library never prints; the `berth-copy` binary owns output and exit codes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_copy::CopyError> {
//! use berth_copy::{copy, CopyOptions, Endpoints};
//! let endpoints = Endpoints::default();
//! let src = "oci:/tmp/layout:app:1".parse().unwrap();
//! let dst = "docker://localhost:5000/app:1".parse().unwrap();
//! let progress = std::sync::Arc::new(berth_copy::progress::Silent);
//! let report = copy(&endpoints, &src, &dst, &CopyOptions::default(), progress).await?;
//! println!("{}", report.digest);
//! # Ok(()) }
//! ```

pub mod convert;
pub mod copy;
pub mod endpoint;
pub mod error;
pub mod inspect;
pub mod plan;
pub mod progress;
pub mod sync;
pub mod transfer;

pub use copy::{CopyOptions, CopyReport, copy};
pub use endpoint::Endpoints;
pub use error::CopyError;
