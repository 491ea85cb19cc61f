//! berth-registry: the OCI distribution-spec (Docker registry v2) client shared by the copier and anything that
//! pulls or pushes.
//!
//! One [`Registry`] talks to one registry host:
//!
//! - **Authentication**: anonymous, Basic, or the bearer-token flow (`WWW-Authenticate: Bearer realm=…`), with
//!   tokens cached per scope. Credentials come from [`ClientOptions::credentials`] or the auth files and
//!   `docker-credential-*` helpers that skopeo and docker use ([`lookup_credentials`]). Credentials are sent only
//!   to the registry's own origin (and Basic to a token realm); token realms on plain http are refused unless the
//!   registry itself is local or `tls_verify` is off.
//! - **Resilience**: bounded retries with exponential backoff on 429, 5xx and connection errors, honoring
//!   `Retry-After`; a stall timeout on bodies; downloads that resume with `Range` and accept only a matching 206.
//! - **Integrity**: every digest is computed here over the bytes received or sent; `Docker-Content-Digest` is
//!   never trusted. Manifests are capped at 4 MiB; nothing is allocated from a size the other side announced.
//! - **Uploads**: existence check, cross-repository mounts from repositories a small blob-location cache file
//!   remembers, then one PUT for small blobs or one streamed PATCH that resumes from the offset the registry
//!   reports; one retry layer (the upload session), manually followed redirects that drop `Authorization` when
//!   the host changes.
//!
//! Why not the `oci-client` crate: the copier needs resumable downloads with a strictly checked 206,
//! `Retry-After`, a blob-location cache feeding cross-repository mounts, and per-blob progress, which it does
//! not offer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_registry::RegistryError> {
//! use berth_registry::{ClientOptions, Registry};
//!
//! let registry = Registry::new("localhost:5000", &ClientOptions::default())?;
//! let manifest = registry.get_manifest("library/alpine", "latest", &[]).await?;
//! println!("{} {}", manifest.media_type, manifest.digest);
//! let mut layer = Vec::new();
//! let digest = berth_spec::Digest::sha256(b"");
//! registry.get_blob("library/alpine", &digest, 0, &mut layer, &|_| {}).await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Duration;

mod auth;
mod authfile;
mod blobs;
mod challenge;
mod client;
mod credentials;
mod endpoint;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod location_cache;
mod manifests;
mod redirect;
mod response;
mod retry;
mod tags;
mod token;
mod upload;
mod upload_feed;

pub use authfile::{login_authfile, lookup_credentials, remove_credentials, store_credentials};
pub use blobs::DigestCheck;
pub use client::Registry;
pub use credentials::Credentials;
pub use error::{ErrorCode, RegistryError, Subject, Target};
pub use manifests::Manifest;
pub use upload::{OpenBlob, PutOutcome};

/// How to reach and authenticate to a registry.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `None`: automatic — plain HTTP for `localhost`, 127.0.0.0/8 and `[::1]`, verified HTTPS elsewhere.
    /// `Some(true)`: always verified HTTPS. `Some(false)`: HTTPS without certificate verification, falling back to
    /// plain HTTP.
    pub tls_verify: Option<bool>,
    /// Explicit credentials; when set, auth files are not read.
    pub credentials: Option<Credentials>,
    /// An auth file to search first (containers-auth.json / docker `config.json` format); without it
    /// `$REGISTRY_AUTH_FILE` takes its place. Then `$XDG_RUNTIME_DIR/containers/auth.json` and
    /// `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`) are searched; the first that knows the host
    /// wins.
    pub authfile: Option<PathBuf>,
    /// Retries after a failed attempt (429, 5xx, connection errors, interrupted downloads).
    pub retry_times: u32,
    /// `User-Agent`; empty means `berth-registry/VERSION`.
    pub user_agent: String,
    /// The blob-location cache file that guides cross-repository mounts; `None` disables it.
    pub blob_cache: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls_verify: None,
            credentials: None,
            authfile: None,
            retry_times: 3,
            user_agent: String::new(),
            blob_cache: None,
        }
    }
}

/// Network timeouts (see [`Registry::with_timeouts`]).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Establishing a connection (TCP and TLS). Default 30 s.
    pub connect: Duration,
    /// Waiting for the next bytes of a response; a body that stalls this long is an error (and a download then
    /// resumes). Default 60 s.
    pub stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            stall: Duration::from_secs(60),
        }
    }
}
