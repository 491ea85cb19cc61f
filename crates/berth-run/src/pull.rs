//! `docker://` images for `run` and `pull`: fetched into the default store by the shared transfer engine (one
//! platform, blobs in parallel, cut downloads resumed, every blob verified), then run from there like any stored
//! image.

use berth_spec::reference::StoreRef;
pub use berth_transfer::pull::{PullPolicy, PullRequest};

use crate::RunError;

/// Pulls the image into the store and names it `HOST/PATH:TAG` (or by digest), unless the policy finds it there
/// already. Returns the store name.
pub fn pull(req: &PullRequest<'_>) -> Result<StoreRef, RunError> {
    berth_transfer::pull::pull(req)
        .map(|p| p.name)
        .map_err(|source| RunError::Pull {
            image: format!("docker://{}", req.reference),
            source: Box::new(source),
        })
}
