//! One module per verb: its options (clap) and a short function over the library; the options several verbs
//! share (registry access, layouts) are here.

pub(crate) mod copy;
pub(crate) mod delete;
pub(crate) mod fsck;
pub(crate) mod gc;
pub(crate) mod images;
pub(crate) mod inspect;
pub(crate) mod list_tags;
pub(crate) mod login;
pub(crate) mod sync;

use std::path::PathBuf;

use anyhow::Result;
use berth_copy::{Endpoints, RegistryAccess};
use berth_registry::Credentials;
use berth_spec::reference::ImageRef;
use clap::{Args, ValueEnum};

#[derive(Args, Clone)]
pub(crate) struct Auth {
    /// Credentials USER:PASS for the registry of inspect, list-tags and delete (skopeo's flag). Copy and sync take
    /// --src-creds and --dest-creds, so that no password reaches the other side's registry.
    #[arg(long)]
    pub(crate) creds: Option<String>,
    /// Require HTTPS and verify certificates (both sides unless --src-tls-verify/--dest-tls-verify say otherwise).
    #[arg(long)]
    pub(crate) tls_verify: Option<bool>,
    /// Credentials USER:PASS for the source registry.
    #[arg(long)]
    pub(crate) src_creds: Option<String>,
    /// Credentials USER:PASS for the destination registry.
    #[arg(long)]
    pub(crate) dest_creds: Option<String>,
    /// Auth file (containers auth.json / docker config.json format) for both sides.
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub(crate) authfile: Option<PathBuf>,
    /// Require HTTPS and verify certificates for the source (default: automatic; plain HTTP only for localhost).
    #[arg(long)]
    pub(crate) src_tls_verify: Option<bool>,
    /// Require HTTPS and verify certificates for the destination.
    #[arg(long)]
    pub(crate) dest_tls_verify: Option<bool>,
    /// Retries of a failed request.
    #[arg(long, default_value_t = 3)]
    pub(crate) retry_times: u32,
}

#[derive(Args)]
pub(crate) struct LayoutArgs {
    /// oci:PATH, or nothing for the default store.
    pub(crate) layout: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, value_enum)]
    pub(crate) format: Option<OutputFormat>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Json,
}

fn access(creds: &Option<String>, auth: &Auth, tls: Option<bool>) -> Result<RegistryAccess> {
    Ok(RegistryAccess {
        // The parse error already says to write USER:PASSWORD; no prompting (it would hang scripts and CI).
        creds: creds.as_deref().map(Credentials::parse).transpose()?,
        authfile: auth.authfile.clone(),
        tls_verify: tls,
        retry_times: Some(auth.retry_times),
    })
}

pub(crate) fn endpoints(cli_store: &Option<PathBuf>, auth: &Auth) -> Result<Endpoints> {
    let cache = blob_location_cache();
    anyhow::ensure!(
        auth.creds.is_none(),
        "--creds: copy and sync have two registries; give --src-creds and/or --dest-creds, so that each password \
         goes only to its own registry"
    );
    Ok(Endpoints {
        store: cli_store.clone(),
        src: access(&auth.src_creds, auth, auth.src_tls_verify.or(auth.tls_verify))?,
        dest: access(&auth.dest_creds, auth, auth.dest_tls_verify.or(auth.tls_verify))?,
        blob_cache: cache,
        user_agent: Some(format!("berth-copy/{}", env!("CARGO_PKG_VERSION"))),
    })
}

/// Where the registry blob locations seen are kept (for cross-repository mounts): in Berth's cache directory, the
/// same for root whatever `$HOME` and `$XDG_CACHE_HOME` say. It is only an optimisation: a directory that cannot be
/// made private, or that another user controls, turns it off with a warning.
fn blob_location_cache() -> Option<PathBuf> {
    let dir = berth_spec::dirs::default_path(berth_spec::dirs::Place::Cache);
    match berth_spec::private_dir::ensure_private_dir(&dir) {
        Ok(()) => Some(dir.join("blob-locations.json")),
        Err(e) => {
            tracing::warn!("not remembering blob locations: {e}");
            None
        }
    }
}

/// Endpoints for a command on one reference (inspect, list-tags, delete): whichever of the credential and TLS flags
/// was given applies to it.
pub(crate) fn one_endpoint(cli_store: &Option<PathBuf>, auth: &Auth) -> Result<Endpoints> {
    let mut auth = auth.clone();
    auth.src_creds = auth.creds.take().or(auth.src_creds.take()).or(auth.dest_creds.take());
    auth.src_tls_verify = auth.tls_verify.or(auth.src_tls_verify).or(auth.dest_tls_verify);
    endpoints(cli_store, &auth)
}

pub(crate) fn image(s: &str) -> Result<ImageRef> {
    s.parse::<ImageRef>().map_err(anyhow::Error::from)
}

pub(crate) fn open_layout(store: &Option<PathBuf>, arg: Option<&str>) -> Result<berth_spec::layout::Layout> {
    let path = match arg.map(image).transpose()? {
        Some(ImageRef::Oci { path, .. }) => path,
        None => match store {
            Some(path) => path.clone(),
            None => berth_spec::store::trusted_default_store_path()?,
        },
        Some(other) => anyhow::bail!("fsck and gc work on oci:PATH layouts or the store, not {other}"),
    };
    Ok(berth_spec::layout::Layout::open(&path)?)
}
