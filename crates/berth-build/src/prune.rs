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
