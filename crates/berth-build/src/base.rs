//! Base images of `FROM` (and `COPY --from=IMAGE`): a store name, an `oci:` layout, or a registry image pulled
//! into the store through the shared transfer engine (as `berth-run pull` does).

use std::sync::Arc;

use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_spec::reference::{DockerReference, ImageRef, StoreRef};
use berth_transfer::{CopyOptions, Endpoints, Progress, RegistryAccess, Selection};

use crate::error::BuildError;
use crate::image::ImageState;

/// When base images are pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the store lacks them.
    #[default]
    Missing,
    /// Every time.
    Always,
    /// Never: they must be in the store.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "missing" | "ifmissing" | "false" => Ok(PullPolicy::Missing),
            "always" | "true" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err(format!("{s:?}: use missing, always or never")),
        }
    }
}

/// How base images are found.
#[derive(Clone)]
pub struct BaseResolver<'a> {
    /// The store (bare names, and where pulled images go).
    pub store: &'a Layout,
    /// The platform to pick from indexes.
    pub platform: &'a Platform,
    /// When to pull.
    pub pull: PullPolicy,
    /// Registry credentials and TLS.
    pub registry: &'a RegistryAccess,
    /// Pull progress.
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for BaseResolver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseResolver")
            .field("store", &self.store.root())
            .field("pull", &self.pull)
            .finish_non_exhaustive()
    }
}

fn base_err(image: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BuildError {
    BuildError::Base {
        image: image.to_owned(),
        source: e.into(),
    }
}

/// The store name a registry image is kept under (`HOST/PATH:TAG`, or `HOST/PATH@DIGEST`).
fn store_name(r: &DockerReference) -> Result<StoreRef, BuildError> {
    let text = match (r.tag(), r.digest()) {
        (_, Some(d)) => format!("{}@{d}", r.name()),
        (Some(t), None) => format!("{}:{t}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    };
    StoreRef::parse(&text).map_err(|e| base_err(&text, e))
}

fn in_store(store: &Layout, name: &StoreRef) -> bool {
    match (name.digest(), name.ref_name()) {
        (Some(d), _) => store.resolve_digest(d).is_ok(),
        (None, n) => store.resolve(n.as_deref()).is_ok(),
    }
}

impl BaseResolver<'_> {
    /// The image `text` names (already expanded).
    pub fn resolve(&self, text: &str) -> Result<ImageState, BuildError> {
        let image = ImageRef::parse(text).map_err(|e| base_err(text, e))?;
        match image {
            ImageRef::Store(s) => {
                if in_store(self.store, &s) && self.pull != PullPolicy::Always {
                    return self.load_store(text, &s);
                }
                // A name that is not in the store is a registry name (as for podman and buildah).
                match DockerReference::parse_normalized(text) {
                    Ok(r) if self.pull != PullPolicy::Never => self.pull(text, &r),
                    _ => Err(base_err(
                        text,
                        "not in the store; pull it first (berth-copy copy docker://... NAME), or name it \
                         docker://HOST/NAME:TAG",
                    )),
                }
            }
            ImageRef::Docker(r) => {
                let name = store_name(&r)?;
                if self.pull == PullPolicy::Never || (self.pull == PullPolicy::Missing && in_store(self.store, &name)) {
                    return self.load_store(text, &name);
                }
                self.pull(text, &r)
            }
            ImageRef::Oci { path, reference } => {
                let layout = Layout::open(&path).map_err(|e| base_err(text, e))?;
                let img = layout
                    .load_image(reference.as_deref(), self.platform)
                    .map_err(|e| base_err(text, e))?;
                ImageState::from_image(&layout, &img)
            }
            other => Err(base_err(
                text,
                format!(
                    "{other}: berth-build reads bases from the store, oci: layouts and registries; import archives \
                     with berth-copy copy first"
                ),
            )),
        }
    }

    fn load_store(&self, text: &str, name: &StoreRef) -> Result<ImageState, BuildError> {
        let desc = match (name.digest(), name.ref_name()) {
            (Some(d), _) => self.store.resolve_digest(d),
            (None, n) => self.store.resolve(n.as_deref()),
        }
        .map_err(|e| base_err(text, e))?;
        let img = self
            .store
            .load_image_from(desc, self.platform)
            .map_err(|e| base_err(text, e))?;
        ImageState::from_image(self.store, &img)
    }

    fn pull(&self, text: &str, r: &DockerReference) -> Result<ImageState, BuildError> {
        let name = store_name(r)?;
        let endpoints = Endpoints {
            src: self.registry.clone(),
            user_agent: Some(format!("berth-build/{}", env!("CARGO_PKG_VERSION"))),
            ..Endpoints::default()
        };
        let dest = ImageRef::Oci {
            path: self.store.root().to_owned(),
            reference: name.ref_name(),
        };
        let options = CopyOptions {
            selection: Selection::One(self.platform.clone()),
            require_image_config: true,
            ..CopyOptions::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| base_err(text, e))?;
        self.progress.message(&format!("Pulling docker://{r}"));
        let report = runtime
            .block_on(berth_transfer::copy(
                &endpoints,
                &ImageRef::Docker(r.clone()),
                &dest,
                &options,
                self.progress.clone(),
            ))
            .map_err(|e| base_err(text, e))?;
        drop(runtime);
        let desc = self
            .store
            .resolve_digest(&report.digest)
            .map_err(|e| base_err(text, e))?;
        let img = self
            .store
            .load_image_from(desc, self.platform)
            .map_err(|e| base_err(text, e))?;
        ImageState::from_image(self.store, &img)
    }
}
