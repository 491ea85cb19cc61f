//! One build step's root filesystem: the stage's layers (extracted once into the layer cache) stacked with an
//! overlay mount whose upper directory collects what the step changes; the upper directory becomes the step's
//! layer. No step copies the whole root filesystem.

use std::path::{Path, PathBuf};

use berth_layer::apply::{LayerRef, OverlayCache};
use berth_layer::create::{CreateOptions, create_from_overlay_upper};
use berth_sandbox::overlay::{OverlayMount, prepare_layer_overlay};
use berth_spec::layout::Layout;
use berth_spec::media_type::{self, Format};
use berth_spec::{Algorithm, Digest};
use oci_spec::image::Descriptor;

use berth_spec::io_context::IoContext;

use crate::error::BuildError;
use crate::image::{ImageState, Layer};

/// A mounted step root. Dropping it unmounts and removes its directories; [`StepRoot::commit`] turns its
/// changes into a layer first.
#[derive(Debug)]
pub struct StepRoot {
    dir: PathBuf,
    mount: Option<OverlayMount>,
    lowers: Vec<PathBuf>,
}

/// The extracted directories of the state's layers, extracting what the cache lacks.
pub fn layer_dirs(state: &mut ImageState, cache: &OverlayCache) -> Result<Vec<PathBuf>, BuildError> {
    if let Some(dirs) = &state.layer_dirs {
        return Ok(dirs.clone());
    }
    let mut dirs = Vec::new();
    for layer in &state.layers {
        let r = LayerRef {
            digest: Digest::from_oci(layer.descriptor.digest()).map_err(|e| BuildError::Base {
                image: layer.layout.root().display().to_string(),
                source: e.to_string().into(),
            })?,
            size: layer.descriptor.size(),
            media_type: layer.descriptor.media_type().to_string(),
            diff_id: layer.diff_id.clone(),
        };
        dirs.extend(cache.ensure_layers(&layer.layout, &[r])?);
    }
    state.layer_dirs = Some(dirs.clone());
    Ok(dirs)
}

impl StepRoot {
    /// Mounts the state's layers at `dir/rootfs`, writes going to `dir/upper`.
    pub fn mount(state: &mut ImageState, cache: &OverlayCache, dir: &Path) -> Result<StepRoot, BuildError> {
        let mut lowers = layer_dirs(state, cache)?;
        std::fs::create_dir_all(dir).at("create", dir)?;
        if lowers.is_empty() {
            // FROM scratch: overlayfs needs one lower directory.
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).at("create", &empty)?;
            lowers.push(empty);
        }
        let mut root = StepRoot {
            dir: dir.to_owned(),
            mount: None,
            lowers: lowers.clone(),
        };
        let mount = prepare_layer_overlay(
            &lowers,
            &dir.join("upper"),
            &dir.join("work"),
            &dir.join("rootfs"),
            cache.user_xattr(),
        )
        .map_err(|e| BuildError::Work {
            what: "mount the step's root filesystem",
            source: Box::new(e),
        })?;
        root.mount = Some(mount);
        Ok(root)
    }

    /// The merged root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Whether nothing was written (the upper directory is empty).
    pub fn unchanged(&self) -> bool {
        std::fs::read_dir(self.dir.join("upper")).is_ok_and(|mut d| d.next().is_none())
    }

    /// The step's scratch directory (for the container's own files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unmounts, writes the upper directory as a layer blob into `out`, extracts it into the cache (the next
    /// steps mount it), and returns the layer and its directory.
    pub fn commit(
        mut self,
        out: &Layout,
        cache: &OverlayCache,
        create: &CreateOptions,
    ) -> Result<(Layer, PathBuf), BuildError> {
        self.unmount()?;
        let upper = self.dir.join("upper");
        crate::hardlinks::relink_copied_up(&upper, &self.lowers)?;
        let started = std::time::Instant::now();
        // The upper directory's data is flushed to disk (for the layer cache) while the layer is written from it.
        let (made, digest, size, flushed) = std::thread::scope(|scope| {
            let flush = scope.spawn(|| berth_layer::apply::sync_tree(&upper));
            let written = (|| {
                let writer = out.writer()?;
                let mut blob = writer.blob_writer(Algorithm::Sha256)?;
                let made = create_from_overlay_upper(&upper, &mut blob, create).map_err(|e| BuildError::Work {
                    what: "write the step's layer",
                    source: Box::new(e),
                })?;
                let (digest, size) = blob.commit()?;
                Ok::<_, BuildError>((made, digest, size))
            })();
            let flushed = flush.join().expect("the flush thread does not panic");
            written.map(|(m, d, s)| (m, d, s, flushed))
        })?;
        tracing::debug!(elapsed = ?started.elapsed(), %digest, "layer blob written");
        let mt = media_type::layer_media_type(Format::Oci, create.compression).map_err(|e| BuildError::Option {
            option: "--compress".into(),
            reason: e.to_string(),
        })?;
        let descriptor = Descriptor::new(mt.into(), size, digest.to_oci());
        // The upper directory is the layer in overlayfs form already: it goes into the cache as it is, rather than
        // being extracted again from the blob just written.
        flushed.at("flush the step's files to disk", &upper)?;
        let dir = cache
            .cache()
            .adopt_synced(&made.diff_id, &upper)
            .at("move the step's layer into the cache", &upper)?;
        let layer = Layer {
            descriptor,
            diff_id: made.diff_id,
            layout: out.clone(),
        };
        Ok((layer, dir))
    }

    /// Writes the whole merged root filesystem as one layer into `out` (`--squash`), then unmounts.
    pub fn squash(mut self, out: &Layout, create: &CreateOptions) -> Result<Layer, BuildError> {
        let writer = out.writer()?;
        let mut blob = writer.blob_writer(Algorithm::Sha256)?;
        let made =
            berth_layer::create::create_from_dir(&self.rootfs(), &mut blob, create).map_err(|e| BuildError::Work {
                what: "write the squashed layer",
                source: Box::new(e),
            })?;
        let (digest, size) = blob.commit()?;
        drop(writer);
        self.unmount()?;
        let mt = media_type::layer_media_type(Format::Oci, create.compression).map_err(|e| BuildError::Option {
            option: "--compress".into(),
            reason: e.to_string(),
        })?;
        Ok(Layer {
            descriptor: Descriptor::new(mt.into(), size, digest.to_oci()),
            diff_id: made.diff_id,
            layout: out.clone(),
        })
    }

    fn unmount(&mut self) -> Result<(), BuildError> {
        if let Some(m) = self.mount.take() {
            m.unmount().map_err(|e| BuildError::Work {
                what: "unmount the step's root filesystem",
                source: Box::new(e),
            })?;
        }
        Ok(())
    }
}

impl Drop for StepRoot {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!("{e}");
            return;
        }
        if let Err(e) = berth_layer::apply::remove_dir_all_forcing(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "could not remove a build step's directory: {e}");
        }
    }
}

/// Removes the step directories of builds that are gone (killed, or interrupted before they could clean up):
/// their overlay mounts are unmounted first. A step directory is named `PID-N` after the build that made it.
pub fn clean_stale_steps(steps: &Path) {
    let Ok(entries) = std::fs::read_dir(steps) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = rustix::process::Pid::from_raw(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
        if alive {
            continue;
        }
        let dir = e.path();
        // Mounts inside it (the step's root, the roots of COPY --from and RUN --mount from=), deepest first.
        let mut mounted: Vec<std::path::PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(std::path::PathBuf::from)
            .filter(|m| m.starts_with(&dir))
            .collect();
        mounted.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounted {
            if let Err(e) = berth_sandbox::overlay::unmount_overlay(&m) {
                tracing::warn!(path = %m.display(), "a stale build step stays mounted: {e}");
            }
        }
        if let Err(e) = berth_layer::apply::remove_dir_all_forcing(&dir) {
            tracing::warn!(dir = %dir.display(), "could not remove a stale build step: {e}");
        } else {
            tracing::info!(dir = %dir.display(), "removed the leftovers of an interrupted build");
        }
    }
}
