//! `berth-build prune`: empties the builder's caches — the step cache, the extracted layers, and with `--all`
//! the `RUN --mount=type=cache` directories — or, with `--dry-run`, says how much they hold.

use std::path::Path;

use berth_layer::apply::OverlayCache;

use crate::error::BuildError;
use crate::stepcache::{StepCache, dir_size};

/// What the caches held (and, unless dry, what was removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Cached steps.
    pub steps: usize,
    /// Bytes of the step cache's layers.
    pub step_bytes: u64,
    /// Bytes of the extracted layers.
    pub layer_bytes: u64,
    /// Bytes of the cache mounts (counted always, removed only with `all`).
    pub mount_bytes: u64,
}

/// Empties the caches under `work_dir` (waiting for running builds to finish with the layers they use).
pub fn prune(work_dir: &Path, all: bool, dry_run: bool) -> Result<PruneReport, BuildError> {
    let step_cache = StepCache::open(work_dir)?;
    let (step_bytes, steps) = step_cache.usage();
    let layers_dir = work_dir.join("overlay");
    let mounts_dir = work_dir.join("cache-mounts");
    let report = PruneReport {
        steps,
        step_bytes,
        layer_bytes: dir_size(&layers_dir),
        mount_bytes: dir_size(&mounts_dir),
    };
    if dry_run {
        return Ok(report);
    }
    let cache = OverlayCache::open(work_dir, false)?;
    // Under the cache's exclusive hold: no build is using a layer meanwhile.
    cache.collect_garbage(|| Ok::<_, BuildError>(std::collections::HashSet::new()))?;
    let remove = |p: &Path| -> Result<(), BuildError> {
        match berth_layer::apply::remove_dir_all_forcing(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(berth_spec::io_context::PathError::new("remove", p, e).into()),
        }
    };
    remove(&work_dir.join("step-cache"))?;
    if all {
        remove(&mounts_dir)?;
    }
    Ok(report)
}

/// The size over which a build warns about the cache when none is given: a tenth of the file system that holds
/// it, and at least 5 GiB.
pub fn default_warn_size(work_dir: &Path) -> u64 {
    let fs_bytes = rustix::fs::statvfs(work_dir).map_or(0, |s| s.f_blocks.saturating_mul(s.f_frsize));
    (fs_bytes / 10).max(5 << 30)
}

/// A warning when the step cache's layers exceed `limit` bytes (counting the layer blobs, a few files, not the
/// extracted trees beside them, which are about as large again): the cache grows with every build that changes
/// something, and only `berth-build prune` shrinks it.
pub fn oversize_warning(work_dir: &Path, limit: u64) -> Option<String> {
    let (bytes, steps) = StepCache::open(work_dir).ok()?.usage();
    (bytes > limit).then(|| {
        format!(
            "the build cache in {} holds {:.1} GiB of layers from {steps} cached step(s), over the {:.1} GiB warning \
             size (and about as much again as extracted layers); `berth-build prune` empties it, \
             `berth-build prune --dry-run` shows its size, --cache-warn-size changes this limit",
            work_dir.display(),
            bytes as f64 / (1u64 << 30) as f64,
            limit as f64 / (1u64 << 30) as f64,
        )
    })
}
