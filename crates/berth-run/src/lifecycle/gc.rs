//! `gc`: cached layers that no container and no stored image uses, removed.

use std::collections::HashSet;
use std::path::Path;

use berth_spec::Digest;
use berth_spec::document::ManifestOrIndex;
use berth_spec::layout::Layout;

use crate::RunError;
use crate::state::StateDir;

/// What [`collect_garbage`] did.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Removed layer directories.
    pub removed: Vec<Digest>,
    /// Layers kept.
    pub kept: usize,
}

/// Removes cached layers no container uses and (unless `all`) no image in the store at `store` references.
pub fn collect_garbage(state: &StateDir, cache: &Path, store: &Path, all: bool) -> Result<GcReport, RunError> {
    // Removed containers' directories a background sweep did not finish (the machine stopped, say).
    state.sweep_trash();
    let layers = crate::layers::open_cache(cache)?;
    let (removed, kept) = layers.collect_garbage(|| {
        let mut keep: HashSet<String> = HashSet::new();
        if !all && let Ok(layout) = Layout::open(store) {
            keep.extend(store_diff_ids(&layout));
        }
        for record in state.list()? {
            keep.extend(record.layers);
        }
        Ok::<_, RunError>(keep)
    })?;
    Ok(GcReport { removed, kept })
}

/// diffIDs of every image (every platform) in a layout; unreadable entries are skipped.
fn store_diff_ids(layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(index) = layout.index() else {
        return out;
    };
    let mut pending: Vec<oci_spec::image::Descriptor> = index.parsed().manifests().clone();
    let mut seen = HashSet::new();
    while let Some(desc) = pending.pop() {
        if !seen.insert(desc.digest().to_string()) {
            continue;
        }
        match layout.read_manifest_or_index(&desc) {
            Ok(ManifestOrIndex::Index(i)) => pending.extend(i.parsed().manifests().iter().cloned()),
            Ok(ManifestOrIndex::Manifest(m)) => {
                if let Ok(config) = layout.read_config(m.parsed().config()) {
                    out.extend(config.parsed().rootfs().diff_ids().iter().cloned());
                }
            }
            Err(e) => tracing::debug!("gc: skipping {}: {e}", desc.digest()),
        }
    }
    out
}
