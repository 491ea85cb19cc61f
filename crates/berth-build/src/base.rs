//! Base images of `FROM` (and `COPY --from=IMAGE`): a store name, an `oci:` layout, or a registry image pulled
//! into the store through the shared transfer engine (as `berth-run pull` does).

use std::sync::Arc;

use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_spec::reference::{DockerReference, ImageRef, StoreRef};
use berth_transfer::{Progress, RegistryAccess};

use crate::error::BuildError;
use crate::image::ImageState;

pub use berth_transfer::pull::PullPolicy;
use berth_transfer::pull::{PullRequest, in_store};

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
            ImageRef::Docker(r) => self.pull(text, &r),
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
        let pulled = berth_transfer::pull::pull(&PullRequest {
            reference: r,
            store: self.store.root(),
            platform: self.platform,
            policy: self.pull,
            access: self.registry.clone(),
            user_agent: format!("berth-build/{}", env!("CARGO_PKG_VERSION")),
            progress: self.progress.clone(),
        })
        .map_err(|e| base_err(text, e))?;
        let desc = match &pulled.digest {
            Some(d) => self.store.resolve_digest(d).map_err(|e| base_err(text, e))?,
            None => return self.load_store(text, &pulled.name),
        };
        let img = self
            .store
            .load_image_from(desc, self.platform)
            .map_err(|e| base_err(text, e))?;
        ImageState::from_image(self.store, &img)
    }
}
