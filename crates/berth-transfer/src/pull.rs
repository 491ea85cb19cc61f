//! Registry images pulled into a store (an OCI layout of named images), as `berth-run pull`, `run docker://…`
//! and the builder's `FROM` need them: one platform, named `HOST/PATH:TAG` (or by digest), fetched only when the
//! pull policy says so.

use std::path::Path;
use std::sync::Arc;

use berth_spec::Digest;
use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_spec::reference::{DockerReference, ImageRef, ReferenceError, StoreRef};

use crate::{CopyError, CopyOptions, Endpoints, Progress, RegistryAccess, Selection};

/// When a registry image is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the store lacks it (podman's default).
    #[default]
    Missing,
    /// Every time.
    Always,
    /// Never: it must be in the store.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;

    /// `missing`, `always`, `never` (and buildah's `ifmissing`, `true`, `false`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "missing" | "ifmissing" | "false" => Ok(PullPolicy::Missing),
            "always" | "true" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err(format!("{s:?}: use missing, always or never")),
        }
    }
}

/// The store name a registry image is kept under: `HOST/PATH:TAG` (`:latest` when none), or `HOST/PATH@DIGEST`.
pub fn store_name(reference: &DockerReference) -> Result<StoreRef, ReferenceError> {
    let text = match (reference.tag(), reference.digest()) {
        (_, Some(d)) => format!("{}@{d}", reference.name()),
        (Some(t), None) => format!("{}:{t}", reference.name()),
        (None, None) => format!("{}:latest", reference.name()),
    };
    StoreRef::parse(&text)
}

/// Whether the store has an image under `name`.
pub fn in_store(store: &Layout, name: &StoreRef) -> bool {
    match (name.digest(), name.ref_name()) {
        (Some(d), _) => store.resolve_digest(d).is_ok(),
        (None, n) => store.resolve(n.as_deref()).is_ok(),
    }
}

/// What [`pull`] did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image's name in the store.
    pub name: StoreRef,
    /// The digest of its top manifest (or index) in the store, when it was pulled now.
    pub digest: Option<Digest>,
}

/// One pull request.
#[derive(Clone)]
pub struct PullRequest<'a> {
    /// The image.
    pub reference: &'a DockerReference,
    /// The store (created if absent).
    pub store: &'a Path,
    /// The platform to pick from an index.
    pub platform: &'a Platform,
    /// Whether a stored copy is enough.
    pub policy: PullPolicy,
    /// Credentials, TLS and retries.
    pub access: RegistryAccess,
    /// `User-Agent` (`tool/version`).
    pub user_agent: String,
    /// Where progress events go.
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for PullRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequest")
            .field("reference", &self.reference.to_string())
            .field("store", &self.store)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Pulls the image into the store unless the policy finds it there already, through the transfer engine (blobs in
/// parallel, cut downloads resumed, the image config checked before the name is set). Blocking: it runs its own
/// async runtime, which ends (its threads joined) before it returns.
pub fn pull(req: &PullRequest<'_>) -> Result<Pulled, CopyError> {
    let label = format!("docker://{}", req.reference);
    // The callers name the image in their own message ("pulling docker://…"): these say only what went wrong.
    let name =
        store_name(req.reference).map_err(|e| CopyError::usage(format!("it cannot be named in the store: {e}")))?;
    let layout = Layout::create(req.store)?;
    let present = in_store(&layout, &name);
    match (req.policy, present) {
        (PullPolicy::Never, false) => {
            return Err(CopyError::usage(
                "it is not in the store, and --pull=never forbids pulling it",
            ));
        }
        (PullPolicy::Never | PullPolicy::Missing, true) => return Ok(Pulled { name, digest: None }),
        _ => {}
    }
    let endpoints = Endpoints {
        src: req.access.clone(),
        user_agent: Some(req.user_agent.clone()),
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CopyError::io("the async runtime"))?;
    req.progress.message(&format!("Pulling {label}"));
    let source = ImageRef::Docker(req.reference.clone());
    let report = runtime.block_on(crate::copy(&endpoints, &source, &dest, &options, req.progress.clone()))?;
    drop(runtime);
    req.progress
        .message(&format!("Stored {label} as {name} ({})", report.digest));
    Ok(Pulled {
        name,
        digest: Some(report.digest),
    })
}
