//! berth-build: the builder. A Containerfile and a context directory become an OCI image, written natively into an
//! OCI image layout (the default store, or any layout) — buildah's job, on the same shared crates as the copier and
//! the runner, and never depending on either.
//!
//! This first part is the Containerfile front end: [`containerfile::parse`] turns the text into stages of
//! instructions with their line numbers (directives, line continuations, comments, heredocs, flags, JSON forms),
//! and [`containerfile::expand`] implements the variable expansion rules of Docker's (BuildKit's) shell lexer.
//!
//! ```
//! use berth_build::containerfile::{parse, Keyword};
//! let file = parse("Containerfile", "FROM scratch AS base\nCOPY --chown=1:1 a /a\n").unwrap();
//! assert_eq!(file.stages[0].name.as_deref(), Some("base"));
//! assert_eq!(file.stages[0].instructions[0].keyword, Keyword::Copy);
//! ```

mod base;
mod build;
pub mod containerfile;
mod error;
mod hardlinks;
mod image;
pub mod inputs;
pub mod naming;
pub mod options;
pub mod pattern;
mod prune;
mod statcache;
pub mod stepcache;
pub mod steps;
mod vars;
mod workspace;

pub use base::PullPolicy;
pub use build::{BuildOptions, BuildReport, NamedContext, build};
pub use error::BuildError;
pub use prune::{PruneReport, default_warn_size, oversize_warning, prune};
