//! `docker://` images for `run` and `pull`: fetched into the default store by the shared transfer engine (one
//! platform, blobs in parallel, cut downloads resumed, every blob verified), then run from there like any stored
//! image.

use std::path::Path;
use std::sync::Arc;

use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_spec::reference::{DockerReference, ImageRef, StoreRef};
use berth_transfer::{CopyOptions, Endpoints, Progress, RegistryAccess, Selection};

use crate::RunError;

/// When `run` pulls a `docker://` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the store lacks it (podman's default).
    #[default]
    Missing,
    /// Every time.
    Always,
    /// Never: the image must be in the store.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = RunError;

    fn from_str(s: &str) -> Result<Self, RunError> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err(RunError::option(format!("--pull {s}"), "use missing, always or never")),
        }
    }
}

/// What to pull, from where, into which store.
#[derive(Clone)]
pub struct PullRequest<'a> {
    /// The image.
    pub reference: &'a DockerReference,
    /// The store it is kept in (created if absent).
    pub store: &'a Path,
    /// The platform to pick from an index.
    pub platform: &'a Platform,
    /// Whether a stored copy is enough.
    pub policy: PullPolicy,
    /// Credentials, TLS and retries.
    pub access: RegistryAccess,
    /// Where progress events go.
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for PullRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequest")
            .field("reference", &self.reference.to_string())
            .field("store", &self.store)
            .field("platform", &self.platform.to_string())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The store name a `docker://` reference is kept under: its full name and tag (`localhost:5000/app:1`), or
/// its digest.
pub fn store_name(reference: &DockerReference) -> Result<StoreRef, RunError> {
    let text = match (reference.tag(), reference.digest()) {
        (_, Some(d)) => format!("{}@{d}", reference.name()),
        (Some(t), None) => format!("{}:{t}", reference.name()),
        (None, None) => format!("{}:latest", reference.name()),
    };
    StoreRef::parse(&text).map_err(|e| RunError::Unsupported {
        image: format!("docker://{reference}"),
        reason: format!("cannot be named in the store: {}", berth_spec::error_chain(&e)),
    })
}

/// Pulls the image into the store and names it as [`store_name`] says, unless the policy finds it there
/// already. Returns the store name.
pub fn pull(req: &PullRequest<'_>) -> Result<StoreRef, RunError> {
    let label = format!("docker://{}", req.reference);
    let name = store_name(req.reference)?;
    let layout = Layout::create(req.store).map_err(|e| RunError::Layout {
        image: label.clone(),
        source: Box::new(e),
    })?;
    let present = match (name.digest(), name.ref_name()) {
        (Some(d), _) => layout.resolve_digest(d).is_ok(),
        (None, n) => layout.resolve(n.as_deref()).is_ok(),
    };
    match (req.policy, present) {
        (PullPolicy::Never, false) => {
            return Err(RunError::Unsupported {
                image: label,
                reason: "it is not in the store and --pull=never forbids pulling it".into(),
            });
        }
        (PullPolicy::Never, true) | (PullPolicy::Missing, true) => return Ok(name),
        _ => {}
    }
    let endpoints = Endpoints {
        src: req.access.clone(),
        user_agent: Some(format!("berth-run/{}", env!("CARGO_PKG_VERSION"))),
        ..Endpoints::default()
    };
    let dest = ImageRef::Oci {
        path: req.store.to_owned(),
        reference: name.ref_name(),
    };
    let options = CopyOptions {
        selection: Selection::One(req.platform.clone()),
        require_image_config: true,
        ..CopyOptions::default()
    };
    let source = ImageRef::Docker(req.reference.clone());
    let pulling = |source| RunError::Pull {
        image: label.clone(),
        source: Box::new(source),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| pulling(berth_transfer::CopyError::io("the network runtime")(e)))?;
    req.progress.message(&format!("Pulling {label}"));
    // The runtime and its threads end with this function, before any container is cloned from this process.
    let report = runtime
        .block_on(berth_transfer::copy(
            &endpoints,
            &source,
            &dest,
            &options,
            req.progress.clone(),
        ))
        .map_err(pulling)?;
    drop(runtime);
    req.progress
        .message(&format!("Stored {label} as {name} ({})", report.digest));
    Ok(name)
}
