//! The layer cache a tool stacks root filesystems from: every layer extracted once, in overlayfs form, keyed by
//! diffID, in a private directory — the runner's containers and the builder's `RUN` steps both mount from one.
//!
//! Layers are extracted side by side with their whiteouts kept in overlayfs form (0:0 character devices, opaque
//! xattrs), never applied to one another. That one form serves both ways of making a root filesystem: an overlay
//! mount stacks the directories as they are, and a plain copy merges them bottom to top, applying the whiteouts as
//! overlayfs would. (Extracting each layer alone with whiteouts *applied* would lose them: there would be nothing
//! below to delete.)
//!
//! The directory must be private (`0700`) and belong to the user running Berth ([`berth_spec::private_dir`]): the
//! layers in it hold images' setuid programs and device nodes, and root runs whatever it finds there.

use std::io;
use std::path::{Path, PathBuf};

use berth_spec::io_context::{IoContext, PathError};
use berth_spec::layout::Layout;
use berth_spec::{Digest, media_type};

use super::{ApplyError, ApplyOptions, LayerCache, WhiteoutMode};

/// Why a layer could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory is another user's, or open to others.
    #[error(transparent)]
    Untrusted(#[from] berth_spec::private_dir::UntrustedDir),
    /// A file system operation on the cache failed.
    #[error(transparent)]
    Io(#[from] PathError),
    /// A layer whose media type is not one Berth can unpack.
    #[error("layer {digest} has media type {media_type:?}, which is not a layer Berth can unpack")]
    UnsupportedLayer {
        /// The layer blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A layer could not be extracted (corrupt, hostile, or its diffID does not match).
    #[error("layer {diff_id}")]
    Layer {
        /// The layer's diffID.
        diff_id: Digest,
        /// What went wrong.
        source: Box<ApplyError>,
    },
}

/// One layer of an image, as its manifest and config name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type (says its compression).
    pub media_type: String,
    /// The uncompressed layer's digest, from the image config.
    pub diff_id: Digest,
}

/// A layer cache in overlayfs form under a private directory.
#[derive(Debug)]
pub struct OverlayCache {
    cache: LayerCache,
    dir: PathBuf,
    user_xattr: bool,
    /// Told about each layer [`ensure_layers`](Self::ensure_layers) extracts.
    progress: Option<std::sync::Arc<dyn ExtractProgress + Send>>,
}

/// A shared (using layers) or exclusive (collecting garbage) hold on the cache; released on drop.
#[derive(Debug)]
pub struct CacheHold {
    _file: std::fs::File,
}

impl OverlayCache {
    /// Opens (creating, private) the cache under `root`. With `user_xattr` (in a user namespace) layers carry
    /// `user.overlay.*` xattrs and live in `overlay-userxattr/`, for `userxattr` overlay mounts; otherwise
    /// `trusted.overlay.*` in `overlay/`.
    pub fn open(root: &Path, user_xattr: bool) -> Result<OverlayCache, CacheError> {
        berth_spec::private_dir::ensure_private_dir(root)?;
        let dir = root.join(if user_xattr { "overlay-userxattr" } else { "overlay" });
        berth_spec::private_dir::ensure_private_dir(&dir)?;
        let cache = LayerCache::new(&dir).at("open the layer cache", &dir)?;
        Ok(OverlayCache {
            cache,
            dir,
            user_xattr,
            progress: None,
        })
    }

    /// Whether layers here carry `user.overlay.*` rather than `trusted.overlay.*` xattrs.
    pub fn user_xattr(&self) -> bool {
        self.user_xattr
    }

    /// The underlying cache.
    pub fn cache(&self) -> &LayerCache {
        &self.cache
    }

    fn lock(&self, op: rustix::fs::FlockOperation) -> Result<CacheHold, CacheError> {
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
    pub fn hold(&self) -> Result<CacheHold, CacheError> {
        self.lock(rustix::fs::FlockOperation::LockShared)
    }

    /// Removes every cached layer whose diffID is not in the set `in_use` returns. `in_use` runs under an
    /// exclusive hold, so no user of the cache is starting meanwhile. Returns the removed diffIDs and how many
    /// layers were kept.
    pub fn collect_garbage<E: From<CacheError>>(
        &self,
        in_use: impl FnOnce() -> Result<std::collections::HashSet<String>, E>,
    ) -> Result<(Vec<Digest>, usize), E> {
        let _hold = self.lock(rustix::fs::FlockOperation::LockExclusive)?;
        let keep = in_use()?;
        let mut removed = Vec::new();
        let mut kept = 0;
        let layers = self.cache.list().at("list", &self.dir).map_err(CacheError::from)?;
        for diff_id in layers {
            if keep.contains(&diff_id.to_string()) {
                kept += 1;
            } else {
                let path = self.cache.path_for(&diff_id);
                self.cache
                    .remove(&diff_id)
                    .at("remove", &path)
                    .map_err(CacheError::from)?;
                removed.push(diff_id);
            }
        }
        let tmp = self.dir.join("tmp");
        self.cache.clean_temp().at("clean", &tmp).map_err(CacheError::from)?;
        Ok((removed, kept))
    }

    /// Makes sure every layer is extracted (checking each blob's digest and each layer's diffID while extracting)
    /// and returns their directories, bottom layer first. Cached layers are not read again.
    pub fn ensure_layers(&self, layout: &Layout, layers: &[LayerRef]) -> Result<Vec<PathBuf>, CacheError> {
        match &self.progress {
            Some(p) => self.ensure_layers_reporting(layout, layers, &**p),
            None => self.ensure_layers_reporting(layout, layers, &()),
        }
    }

    /// Tells `progress` about each layer [`ensure_layers`](Self::ensure_layers) extracts from now on.
    pub fn report_extraction(&mut self, progress: std::sync::Arc<dyn ExtractProgress + Send>) {
        self.progress = Some(progress);
    }

    /// [`ensure_layers`](Self::ensure_layers), telling `progress` about each layer it extracts (not about those
    /// already cached).
    pub fn ensure_layers_reporting(
        &self,
        layout: &Layout,
        layers: &[LayerRef],
        progress: &dyn ExtractProgress,
    ) -> Result<Vec<PathBuf>, CacheError> {
        let mut dirs = Vec::new();
        for layer in layers {
            let Some(compression) = media_type::layer_compression(&layer.media_type) else {
                return Err(CacheError::UnsupportedLayer {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            };
            let opts = ApplyOptions {
                whiteouts: WhiteoutMode::Overlay {
                    user_xattr: self.user_xattr,
                },
                compression: Some(compression),
                ..ApplyOptions::default()
            };
            let started = std::cell::Cell::new(false);
            // Called only when the layer is not cached: its extraction starts.
            let open = || {
                let blob = layout.open_blob(&layer.digest, layer.size).map_err(io::Error::other)?;
                progress.start(layer);
                started.set(true);
                Ok(Reporting {
                    inner: blob,
                    layer,
                    progress,
                })
            };
            let dir = self
                .cache
                .ensure(&layer.diff_id, open, &opts)
                .map_err(|source| CacheError::Layer {
                    diff_id: layer.diff_id.clone(),
                    source: Box::new(source),
                })?;
            if started.get() {
                progress.done(layer);
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }
}

/// What extracting layers reports, for a progress display. Every method does nothing unless implemented.
pub trait ExtractProgress: Sync {
    /// `layer` is not cached: its blob is being read and extracted.
    fn start(&self, layer: &LayerRef) {
        let _ = layer;
    }
    /// `bytes` more of the layer's blob (compressed, as stored) were read.
    fn advance(&self, layer: &LayerRef, bytes: u64) {
        let _ = (layer, bytes);
    }
    /// The layer is extracted and in the cache.
    fn done(&self, layer: &LayerRef) {
        let _ = layer;
    }
}

/// No progress shown.
impl ExtractProgress for () {}

impl std::fmt::Debug for dyn ExtractProgress + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtractProgress")
    }
}

impl std::fmt::Debug for dyn ExtractProgress + Send + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtractProgress")
    }
}

/// A blob reader that tells the progress display how far it got.
struct Reporting<'a, R> {
    inner: R,
    layer: &'a LayerRef,
    progress: &'a dyn ExtractProgress,
}

impl<R: io::Read> io::Read for Reporting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.progress.advance(self.layer, n as u64);
        }
        Ok(n)
    }
}
