//! One build step's root filesystem: the stage's layers (extracted once into the layer cache) stacked with an
//! overlay mount whose upper directory collects what the step changes; the upper directory becomes the step's
//! layer. No step copies the whole root filesystem.

use std::path::{Path, PathBuf};

use berth_layer::apply::{LayerRef, OverlayCache};
use berth_layer::compress::LayerDigests;
use berth_layer::create::{
    ContentElsewhere, CreateError, CreateOptions, Elsewhere, create_from_overlay_upper,
    create_from_overlay_upper_elsewhere,
};
use berth_layer::writer_thread::{ThreadedWriter, with_writer_thread};
use berth_sandbox::overlay::{OverlayMount, prepare_layer_overlay};
use berth_spec::layout::Layout;
use berth_spec::media_type::{self, Format};
use berth_spec::{Algorithm, Digest};
use oci_spec::image::Descriptor;

use berth_spec::io_context::IoContext;

use crate::error::BuildError;
use crate::image::{ImageState, Layer};

/// A step's layer, as [`StepRoot::commit`] wrote it.
#[derive(Debug)]
pub struct Committed {
    /// The layer.
    pub layer: Layer,
    /// Its extracted directory in the layer cache, when it went there.
    pub dir: Option<PathBuf>,
    /// The sources whose content the layer read from elsewhere, hashed (with [`StepRoot::hash_deferred_sources`]).
    pub sources: Vec<berth_layer::create::SourceDigest>,
}

/// A mounted step root. Dropping it unmounts and removes its directories; [`StepRoot::commit`] turns its
/// changes into a layer first.
#[derive(Debug)]
pub struct StepRoot {
    dir: PathBuf,
    mount: Option<OverlayMount>,
    lowers: Vec<PathBuf>,
    /// Files written as empty placeholders, their content left where it was copied from (see
    /// [`StepRoot::defer`]).
    deferred: std::cell::RefCell<ContentElsewhere>,
    /// The overlay's upper directory.
    upper: PathBuf,
    /// The tmpfs holding the upper directory, when it is in memory.
    mem: Option<PathBuf>,
    /// The root filesystem's path with no symlinks (as `/proc/self/fd` shows the files under it).
    rootfs_real: PathBuf,
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
        Self::mount_with(state, cache, dir, false)
    }

    /// [`mount`](Self::mount), with the upper directory in memory (a private tmpfs) when `in_memory`: for a step
    /// that writes little besides [deferred](Self::defer) placeholders, whose upper directory is not kept (creating
    /// thousands of inodes on a disk file system that just deleted many is what such a step would spend its time
    /// on). Falls back to the disk when tmpfs cannot be mounted.
    pub fn mount_with(
        state: &mut ImageState,
        cache: &OverlayCache,
        dir: &Path,
        in_memory: bool,
    ) -> Result<StepRoot, BuildError> {
        let mut lowers = layer_dirs(state, cache)?;
        std::fs::create_dir_all(dir).at("create", dir)?;
        let mem = dir.join("mem");
        let mut in_memory = in_memory;
        if in_memory {
            std::fs::create_dir_all(&mem).at("create", &mem)?;
            let mounted = rustix::mount::mount(
                "tmpfs",
                &mem,
                "tmpfs",
                rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
                c"mode=0700",
            );
            if let Err(e) = mounted {
                tracing::debug!("no tmpfs for the step's upper directory ({e}): it stays on disk");
                in_memory = false;
            }
        }
        let scratch = if in_memory { mem.clone() } else { dir.to_owned() };
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
            deferred: Default::default(),
            upper: scratch.join("upper"),
            mem: in_memory.then_some(mem),
            rootfs_real: PathBuf::new(),
        };
        let mount = prepare_layer_overlay(
            &lowers,
            &scratch.join("upper"),
            &scratch.join("work"),
            &dir.join("rootfs"),
            cache.user_xattr(),
        )
        .map_err(|e| BuildError::Work {
            what: "mount the step's root filesystem",
            source: Box::new(e),
        })?;
        root.mount = Some(mount);
        root.rootfs_real = std::fs::canonicalize(root.rootfs()).at("resolve", root.rootfs())?;
        Ok(root)
    }

    /// The merged root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Whether nothing was written (the upper directory is empty).
    pub fn unchanged(&self) -> bool {
        std::fs::read_dir(&self.upper).is_ok_and(|mut d| d.next().is_none())
    }

    /// The step's scratch directory (for the container's own files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records that the file at `copy` (a path under [`rootfs`](Self::rootfs), still the empty file with inode
    /// `ino` there) is a placeholder for `source`: the layer reads its content from `source`, and the step's
    /// upper directory then cannot go into the layer cache (the next mount extracts the layer from its blob). A
    /// path that is no longer that placeholder (replaced later in the step) is left alone.
    pub fn defer(&self, copy: &Path, ino: u64, source: Elsewhere) -> Result<(), BuildError> {
        use std::os::unix::fs::MetadataExt;
        let rootfs = &self.rootfs_real;
        let Ok(rel) = copy.strip_prefix(rootfs) else {
            // Not where the copy was made: the placeholder would go into the layer empty.
            return Err(BuildError::Work {
                what: "record a copied file",
                source: format!("{} is not under the step's root {}", copy.display(), rootfs.display()).into(),
            });
        };
        match std::fs::symlink_metadata(copy) {
            Ok(m) if m.is_file() && m.len() == 0 && m.ino() == ino => {}
            _ => return Ok(()),
        }
        let upper = self.upper.join(rel);
        self.deferred
            .borrow_mut()
            .insert(&upper, source)
            .at("record the copied file", &upper)?;
        Ok(())
    }

    /// Hashes the content of the deferred placeholders' sources (BLAKE3) while the layer reads it: the commit
    /// then returns their digests (see [`Committed::sources`]), so that the context is not read a second time for
    /// the step's key.
    pub fn hash_deferred_sources(&self) {
        self.deferred.borrow_mut().hash_sources();
    }

    /// Unmounts, writes the upper directory as a layer blob into `out`, extracts it into the cache (the next
    /// steps mount it), and returns the layer and its directory.
    pub fn commit(
        mut self,
        out: &Layout,
        cache: &OverlayCache,
        create: &CreateOptions,
    ) -> Result<Committed, BuildError> {
        self.unmount()?;
        // The layout's blob writer hashes the compressed stream: the layer writer need not hash it too.
        let create = &CreateOptions {
            hash_output: false,
            ..create.clone()
        };
        let upper = self.upper.clone();
        crate::hardlinks::relink_copied_up(&upper, &self.lowers)?;
        let started = std::time::Instant::now();
        let deferred = self.deferred.take();
        if !deferred.is_empty() || self.mem.is_some() {
            let (layer, _) = write_layer(out, create, |w| {
                create_from_overlay_upper_elsewhere(&upper, &deferred, w, create)
            })?;
            tracing::debug!(
                elapsed = ?started.elapsed(),
                placeholders = deferred.len(),
                "layer blob written from the copy's sources"
            );
            return Ok(Committed {
                layer,
                dir: None,
                sources: deferred.source_digests(),
            });
        }
        // The upper directory's data is flushed to disk (for the layer cache) while the layer is written from it.
        let (written, flushed) = std::thread::scope(|scope| {
            let flush = scope.spawn(|| berth_layer::apply::sync_tree(&upper));
            let written = write_layer(out, create, |w| create_from_overlay_upper(&upper, w, create));
            (written, flush.join().expect("the flush thread does not panic"))
        });
        let (layer, _) = written?;
        tracing::debug!(elapsed = ?started.elapsed(), digest = %layer.descriptor.digest(), "layer blob written");
        // The upper directory is the layer in overlayfs form already: it goes into the cache as it is, rather than
        // being extracted again from the blob just written.
        flushed.at("flush the step's files to disk", &upper)?;
        let dir = cache
            .cache()
            .adopt_synced(&layer.diff_id, &upper)
            .at("move the step's layer into the cache", &upper)?;
        Ok(Committed {
            layer,
            dir: Some(dir),
            sources: Vec::new(),
        })
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

    /// Unmounts the in-memory upper directory (after the overlay).
    fn unmount_memory(&mut self) -> Result<(), BuildError> {
        if let Some(mem) = self.mem.take() {
            rustix::mount::unmount(&mem, rustix::mount::UnmountFlags::DETACH).map_err(|e| BuildError::Work {
                what: "unmount the step's in-memory upper directory",
                source: format!("{}: {e}", mem.display()).into(),
            })?;
        }
        Ok(())
    }
}

/// Writes a layer blob into `out` with `make` (which gets the blob's writer), the blob's digest and file writes on a
/// thread of their own beside the tar and the compression.
fn write_layer(
    out: &Layout,
    create: &CreateOptions,
    make: impl FnOnce(&mut ThreadedWriter) -> Result<LayerDigests, CreateError>,
) -> Result<(Layer, LayerDigests), BuildError> {
    let writer = out.writer()?;
    let blob = writer.blob_writer(Algorithm::Sha256)?;
    let (made, blob) = with_writer_thread(blob, make, |e| CreateError::Write {
        entry: out.root().join("blobs"),
        source: e,
    })
    .map_err(|e| BuildError::Work {
        what: "write the step's layer",
        source: Box::new(e),
    })?;
    let (digest, size) = blob.commit()?;
    let mt = media_type::layer_media_type(Format::Oci, create.compression).map_err(|e| BuildError::Option {
        option: "--compress".into(),
        reason: e.to_string(),
    })?;
    let layer = Layer {
        descriptor: Descriptor::new(mt.into(), size, digest.to_oci()),
        diff_id: made.diff_id.clone(),
        layout: out.clone(),
    };
    Ok((layer, made))
}

impl Drop for StepRoot {
    fn drop(&mut self) {
        if let Err(e) = self.unmount().and_then(|()| self.unmount_memory()) {
            tracing::warn!("{e}");
            return;
        }
        if let Err(e) = berth_layer::apply::remove_dir_all_forcing(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "could not remove a build step's directory: {e}");
        }
    }
}

/// Whether the build that made `made_at` (a step or container directory named after its pid) is still running:
/// process `pid` exists, is not a zombie (a killed build its parent has not reaped yet), and started before the
/// directory was made (else the pid was given to another process since).
pub fn build_alive(pid: i32, made_at: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The fields after the parenthesised command name (which may itself hold spaces and parentheses): the state
    // is the first, the start time (clock ticks after boot) the 20th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    if matches!(fields.first(), None | Some(&("Z" | "X" | "x"))) {
        return false;
    }
    let started = fields.get(19).and_then(|t| t.parse::<u64>().ok());
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|t| t.trim().parse::<u64>().ok())
    });
    let made = std::fs::symlink_metadata(made_at).ok().and_then(|m| {
        use std::os::unix::fs::MetadataExt;
        u64::try_from(m.mtime()).ok()
    });
    // The kernel's USER_HZ, which /proc reports times in, is 100 on every Linux architecture Berth runs on.
    match (started, boot, made) {
        (Some(ticks), Some(boot), Some(made)) => boot + ticks / 100 <= made + 1,
        // Cannot tell: treat it as running, so nothing in use is removed.
        _ => true,
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
        if build_alive(pid, &e.path()) {
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
        // A step's in-memory upper directory (`mem`) is busy until the overlay above it is gone: a second pass.
        for pass in 0..2 {
            mounted.retain(|m| match berth_sandbox::overlay::unmount_overlay(m) {
                Ok(()) => false,
                Err(e) => {
                    if pass == 1 {
                        tracing::warn!(path = %m.display(), "a stale build step stays mounted: {e}");
                    }
                    true
                }
            });
        }
        if let Err(e) = berth_layer::apply::remove_dir_all_forcing(&dir) {
            tracing::warn!(dir = %dir.display(), "could not remove a stale build step: {e}");
        } else {
            tracing::info!(dir = %dir.display(), "removed the leftovers of an interrupted build");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts_under(dir: &Path) -> usize {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(dir))
            .count()
    }

    /// A killed build's step with its upper directory in memory: an overlay on top of a tmpfs, both in the step's
    /// directory. The next build unmounts both (the tmpfs only once the overlay is gone) and removes the step.
    #[test]
    fn stale_steps_with_an_in_memory_upper_are_unmounted_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        // A pid that is not running: the largest possible one.
        let step = tmp.path().join("steps").join("4194304-0");
        let lower = tmp.path().join("lower");
        std::fs::create_dir_all(&lower).unwrap();
        std::fs::write(lower.join("f"), "x").unwrap();
        let mem = step.join("mem");
        std::fs::create_dir_all(&mem).unwrap();
        if rustix::mount::mount("tmpfs", &mem, "tmpfs", rustix::mount::MountFlags::empty(), c"mode=0700").is_err() {
            eprintln!("note: cannot mount tmpfs here (not root?): skipped");
            return;
        }
        let overlay = prepare_layer_overlay(
            std::slice::from_ref(&lower),
            &mem.join("upper"),
            &mem.join("work"),
            &step.join("rootfs"),
            false,
        )
        .unwrap();
        std::fs::write(step.join("rootfs/new"), "y").unwrap();
        std::mem::forget(overlay);
        assert_eq!(mounts_under(&step), 2);
        clean_stale_steps(&tmp.path().join("steps"));
        assert_eq!(mounts_under(&step), 0, "both mounts are gone");
        assert!(!step.exists(), "and the step's directory");
        assert!(lower.join("f").exists(), "the lower layer is untouched");
    }
}
