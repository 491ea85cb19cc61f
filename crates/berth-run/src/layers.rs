//! Where the runner's layer cache is, and the layers of an image as the cache takes them.
//!
//! It lives under the runner's cache directory: `$BERTH_CACHE` (or `--cache`); else, for root, `/var/cache/berth`;
//! else `$XDG_CACHE_HOME/berth`; else `$HOME/.cache/berth` ([`default_cache_path`]). Root ignores `XDG_*`, as
//! podman does (they come from a user's session, through `sudo -E`). The directory is private (`0700`) and must
//! belong to the user running Berth ([`berth_spec::private_dir`]): the layers in it hold the images' setuid
//! programs and device nodes, and root runs whatever it finds there.
//!
//! The cache itself is [`berth_layer::apply::OverlayCache`], shared with the builder's `RUN` steps' code.

use std::path::{Path, PathBuf};

use berth_layer::apply::{CacheError, LayerRef, OverlayCache};
use berth_spec::Digest;

use crate::RunError;
use crate::source::OpenedImage;

/// The runner's cache directory, from the environment of this process ([`berth_spec::dirs`]).
pub fn default_cache_path() -> PathBuf {
    berth_spec::dirs::default_path(berth_spec::dirs::Place::Cache)
}

/// Opens (creating) the runner's layer cache under `cache_root`, with xattrs for this process's mode (rootless
/// or not).
pub fn open_cache(cache_root: &Path) -> Result<OverlayCache, RunError> {
    Ok(OverlayCache::open(cache_root, crate::rootless::is_rootless())?)
}

/// The layers of an opened image, as the cache takes them.
pub fn layer_refs(opened: &OpenedImage) -> Result<Vec<LayerRef>, RunError> {
    let manifest = opened.image.manifest.parsed();
    let config = opened.image.config.parsed();
    let bad_digest = |e: berth_spec::DigestError| RunError::Unsupported {
        image: opened.label.clone(),
        reason: format!("invalid layer digest: {}", berth_spec::error_chain(&e)),
    };
    manifest
        .layers()
        .iter()
        .zip(config.rootfs().diff_ids())
        .map(|(layer, diff_id)| {
            Ok(LayerRef {
                digest: Digest::from_oci(layer.digest()).map_err(bad_digest)?,
                size: layer.size(),
                media_type: layer.media_type().to_string(),
                diff_id: Digest::parse(diff_id).map_err(bad_digest)?,
            })
        })
        .collect()
}

/// Makes sure every layer of the image is extracted and returns their directories, bottom layer first.
/// `progress` is told about each layer extracted.
pub fn ensure_image(
    cache: &OverlayCache,
    opened: &OpenedImage,
    progress: &dyn berth_layer::apply::ExtractProgress,
) -> Result<Vec<PathBuf>, RunError> {
    let refs = layer_refs(opened)?;
    cache
        .ensure_layers_reporting(&opened.layout, &refs, progress)
        .map_err(|e| match e {
            CacheError::Layer { diff_id, source } => RunError::Layer {
                image: opened.label.clone(),
                diff_id,
                source,
            },
            CacheError::UnsupportedLayer { digest, media_type } => RunError::UnsupportedLayer {
                image: opened.label.clone(),
                digest,
                media_type,
            },
            other => other.into(),
        })
}
