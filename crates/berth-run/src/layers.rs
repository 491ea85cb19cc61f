//! The runner's layer cache: every layer extracted once, in overlayfs form, keyed by diffID.
//!
//! It lives under the runner's cache directory: `$BERTH_CACHE` (or `--cache`); else, for root, `/var/cache/berth`;
//! else `$XDG_CACHE_HOME/berth`; else `$HOME/.cache/berth` ([`default_cache_path`]). Root ignores `XDG_*`, as
//! podman does (they come from a user's session, through `sudo -E`). The directory is private (`0700`) and must
//! belong to the user running Berth ([`berth_spec::private_dir`]): the layers in it hold the images' setuid
//! programs and device nodes, and root runs whatever it finds there.
//!
//! Layers are extracted side by side with their whiteouts kept in overlayfs form (0:0 character devices, opaque
//! xattrs), never applied to one another. That one form serves both ways of making a root filesystem: an overlay
//! mount stacks the directories as they are ([`berth_sandbox::overlay::prepare_rootfs_overlay`]), and a plain copy merges them
//! bottom to top, applying the whiteouts as overlayfs would ([`berth_sandbox::overlay::build_rootfs_copy`]). (Extracting each layer
//! alone with whiteouts *applied* would lose them: there would be nothing below to delete.)

use std::io;
use std::path::{Path, PathBuf};

use berth_layer::apply::{ApplyOptions, LayerCache, WhiteoutMode};
use berth_spec::{Digest, media_type};

use crate::RunError;
use crate::error::IoContext;
use crate::source::OpenedImage;

/// The runner's cache directory, from the environment of this process ([`berth_spec::dirs`]).
pub fn default_cache_path() -> PathBuf {
    berth_spec::dirs::default_path(berth_spec::dirs::Place::Cache)
}

/// The layer cache under the runner's cache directory.
#[derive(Debug, Clone)]
pub struct LayerStore {
    cache: LayerCache,
    dir: PathBuf,
    user_xattr: bool,
}

/// A shared (`berth-run run`) or exclusive (`berth-run gc`) hold on the layer cache; released on drop.
#[derive(Debug)]
pub struct CacheHold {
    _file: std::fs::File,
}

impl LayerStore {
    /// Opens (creating) the layer cache under `cache_root`. Root extracts with `trusted.overlay.*` xattrs into
    /// `overlay/`; other users with `user.overlay.*` into `overlay-userxattr/` (for `userxattr` overlay mounts).
    pub fn open(cache_root: &Path) -> Result<LayerStore, RunError> {
        let user_xattr = crate::rootless::is_rootless();
        berth_spec::private_dir::ensure_private_dir(cache_root)?;
        let dir = cache_root.join(if user_xattr { "overlay-userxattr" } else { "overlay" });
        berth_spec::private_dir::ensure_private_dir(&dir)?;
        let cache = LayerCache::new(&dir).at("open the layer cache", &dir)?;
        Ok(LayerStore { cache, dir, user_xattr })
    }

    /// Whether layers here carry `user.overlay.*` rather than `trusted.overlay.*` xattrs.
    pub fn user_xattr(&self) -> bool {
        self.user_xattr
    }

    fn lock(&self, op: rustix::fs::FlockOperation) -> Result<CacheHold, RunError> {
        let path = self.dir.join("gc.lock");
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("open", &path)?;
        rustix::fs::flock(&file, op).at("lock", &path)?;
        Ok(CacheHold { _file: file })
    }

    /// A shared hold: layers used under it are not garbage-collected until it is dropped.
    pub fn hold(&self) -> Result<CacheHold, RunError> {
        self.lock(rustix::fs::FlockOperation::LockShared)
    }

    /// Removes every cached layer whose diffID is not in the set `in_use` returns. `in_use` runs under an
    /// exclusive hold, so no container is being created meanwhile. Returns the removed diffIDs and how many
    /// layers were kept.
    pub fn collect_garbage(
        &self,
        in_use: impl FnOnce() -> Result<std::collections::HashSet<String>, RunError>,
    ) -> Result<(Vec<Digest>, usize), RunError> {
        let _hold = self.lock(rustix::fs::FlockOperation::LockExclusive)?;
        let keep = in_use()?;
        let mut removed = Vec::new();
        let mut kept = 0;
        for diff_id in self.cache.list().at("list", &self.dir)? {
            if keep.contains(&diff_id.to_string()) {
                kept += 1;
            } else {
                let path = self.cache.path_for(&diff_id);
                self.cache.remove(&diff_id).at("remove", path)?;
                removed.push(diff_id);
            }
        }
        self.cache.clean_temp().at("clean", self.dir.join("tmp"))?;
        Ok((removed, kept))
    }

    /// The underlying cache.
    pub fn cache(&self) -> &LayerCache {
        &self.cache
    }

    /// Makes sure every layer of the image is extracted (checking each blob's digest and each layer's diffID while
    /// extracting) and returns their directories, bottom layer first. Cached layers are not read again.
    pub fn ensure_image(&self, opened: &OpenedImage) -> Result<Vec<PathBuf>, RunError> {
        let manifest = opened.image.manifest.parsed();
        let config = opened.image.config.parsed();
        let mut dirs = Vec::new();
        for (layer, diff_id) in manifest.layers().iter().zip(config.rootfs().diff_ids()) {
            let bad_digest = |e: berth_spec::DigestError| RunError::Unsupported {
                image: opened.label.clone(),
                reason: format!("invalid layer digest: {e}"),
            };
            let digest = Digest::from_oci(layer.digest()).map_err(bad_digest)?;
            let diff_id = Digest::parse(diff_id).map_err(bad_digest)?;
            let media = layer.media_type().to_string();
            let Some(compression) = media_type::layer_compression(&media) else {
                return Err(RunError::UnsupportedLayer {
                    image: opened.label.clone(),
                    digest,
                    media_type: media,
                });
            };
            let opts = ApplyOptions {
                whiteouts: WhiteoutMode::Overlay {
                    user_xattr: self.user_xattr,
                },
                compression: Some(compression),
                ..ApplyOptions::default()
            };
            let open = || opened.layout.open_blob(&digest, layer.size()).map_err(io::Error::other);
            let dir = self
                .cache
                .ensure(&diff_id, open, &opts)
                .map_err(|source| RunError::Layer {
                    image: opened.label.clone(),
                    diff_id: diff_id.clone(),
                    source: Box::new(source),
                })?;
            dirs.push(dir);
        }
        Ok(dirs)
    }
}
