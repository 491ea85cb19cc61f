//! A content-addressed cache of extracted layers, keyed by diffID.
//!
//! A layer is extracted into a private temp directory, its diffID verified, and only then renamed to
//! `layers/sha256/HEX` — so a directory under that name is always complete, and a failed or killed extraction
//! leaves nothing that looks complete. Two processes extracting the same layer at once each work in their own temp
//! directory; the first rename wins and the other discards its copy.
//!
//! A temp directory is removed whatever ends the extraction — an error (a disk that fills up included), the
//! diffID check, a lost rename race, a panic — and removal copes with what a layer may hold: directories of mode
//! 0000 or 0500 that a non-root remover could not otherwise empty, and trees of any depth.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_spec::Digest;

use super::fsops::remove_dir_all_forcing;
use super::{ApplyError, ApplyOptions, apply_layer, io_err};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The cache directory.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// Opens (creating) a cache rooted at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("layers/sha256"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(LayerCache { dir })
    }

    /// Where the layer with this diffID lives once extracted.
    pub fn path_for(&self, diff_id: &Digest) -> PathBuf {
        self.dir
            .join("layers")
            .join(diff_id.algorithm().as_str())
            .join(diff_id.hex())
    }

    /// The extracted layer, if it is in the cache: a directory (not a symlink) that this user made, as
    /// [`ensure`](Self::ensure) makes them — owned by the effective uid and writable by nobody else. Anything else
    /// under that name was not extracted here and is not trusted (HOSTILE-INPUTS 38); the cache's own directory
    /// must be private too, which its user checks (berth-run: `berth_spec::private_dir`).
    pub fn get(&self, diff_id: &Digest) -> Option<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let p = self.path_for(diff_id);
        let euid = rustix::process::geteuid().as_raw();
        std::fs::symlink_metadata(&p)
            .is_ok_and(|m| m.is_dir() && m.uid() == euid && m.mode() & 0o022 == 0)
            .then_some(p)
    }

    /// Returns the extracted layer, extracting it from `open()` first if it is not cached. The stream's diffID is
    /// always verified against `diff_id` (whatever `opts.diff_id` says).
    pub fn ensure<R: Read + Send>(
        &self,
        diff_id: &Digest,
        open: impl FnOnce() -> io::Result<R>,
        opts: &ApplyOptions,
    ) -> Result<PathBuf, ApplyError> {
        if let Some(p) = self.get(diff_id) {
            return Ok(p);
        }
        let name = diff_id.to_string();
        let tmp = self.dir.join("tmp").join(format!(
            "{}-{}-{}",
            diff_id.hex(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o755)
            .create(&tmp)
            .map_err(io_err(&name, "create extraction directory"))?;
        // 0755 whatever the umask: the layer's root, which `get` checks (the cache's directory keeps others out).
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(io_err(&name, "create extraction directory"))?;
        let mut scratch = Scratch(Some(tmp));
        let tmp = scratch.0.as_deref().expect("just set");
        let reader = open().map_err(io_err(&name, "open layer"))?;
        let opts = ApplyOptions {
            diff_id: Some(diff_id.clone()),
            ..opts.clone()
        };
        apply_layer(reader, tmp, &opts)?;
        sync_dir_tree(tmp).map_err(io_err(&name, "sync extracted layer"))?;
        let dest = self.path_for(diff_id);
        match std::fs::rename(tmp, &dest) {
            Ok(()) => {
                scratch.0 = None;
                Ok(dest)
            }
            // Another process finished the same layer first: use theirs (ours goes with `scratch`).
            Err(e) if self.get(diff_id).is_some() => {
                tracing::debug!("{name}: extracted meanwhile by another process ({e})");
                Ok(dest)
            }
            Err(e) if dest.exists() => Err(ApplyError::Refused {
                entry: name.clone(),
                reason: format!(
                    "{} is in the way in the layer cache and was not made by this user ({e}); remove it",
                    dest.display()
                ),
            }),
            Err(e) => Err(io_err(&name, "move extracted layer into the cache")(e)),
        }
    }

    /// Puts a directory that already holds the layer `diff_id` in overlayfs form (a build step's overlay upper
    /// directory, whose layer was just written from it) into the cache by renaming it, instead of extracting the
    /// layer again. Overlay bookkeeping xattrs other than the opaque marker (`origin`, `impure`, …) are removed
    /// first, since the directory will serve as a lower layer. `dir` must be on the cache's file system. When the
    /// cache has the layer already, that copy is returned and `dir` is left to the caller.
    pub fn adopt(&self, diff_id: &Digest, dir: &Path) -> io::Result<PathBuf> {
        if let Some(p) = self.get(diff_id) {
            return Ok(p);
        }
        sync_dir_tree(dir)?;
        self.adopt_synced(diff_id, dir)
    }

    /// [`Self::adopt`] for a directory whose file data the caller has flushed already ([`sync_tree`]; a build
    /// flushes a step's upper directory while it writes the layer from it). Changes made to the tree after the
    /// flush must be metadata only: the file system's journal commits them before the rename.
    pub fn adopt_synced(&self, diff_id: &Digest, dir: &Path) -> io::Result<PathBuf> {
        if let Some(p) = self.get(diff_id) {
            return Ok(p);
        }
        strip_overlay_bookkeeping(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let dest = self.path_for(diff_id);
        match std::fs::rename(dir, &dest) {
            Ok(()) => Ok(dest),
            Err(_) if self.get(diff_id).is_some() => Ok(dest),
            Err(e) => Err(e),
        }
    }

    /// Removes a layer from the cache: renamed away first (atomically gone), then deleted.
    pub fn remove(&self, diff_id: &Digest) -> io::Result<()> {
        let p = self.path_for(diff_id);
        let doomed = self
            .dir
            .join("tmp")
            .join(format!("rm-{}-{}", diff_id.hex(), std::process::id()));
        match std::fs::rename(&p, &doomed) {
            Ok(()) => remove_dir_all_forcing(&doomed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// diffIDs of every cached layer.
    pub fn list(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir.join("layers/sha256"))? {
            if let Ok(d) = Digest::parse(&format!("sha256:{}", e?.file_name().to_string_lossy())) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes leftovers of extractions that died (temp directories not being written by a live process).
    pub fn clean_temp(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in std::fs::read_dir(self.dir.join("tmp"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = name.split('-').nth(1).and_then(|p| p.parse().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                remove_dir_all_forcing(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// An extraction's temp directory, removed when dropped unless taken (set to `None`) once it is in place.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take()
            && let Err(e) = remove_dir_all_forcing(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a failed extraction's temp directory");
        }
    }
}

/// Flushes the file data of a tree about to go into a [`LayerCache`] (syncfs on its file system), so that a crash
/// after the rename cannot leave a complete-looking layer of empty files.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    sync_dir_tree(dir)
}

/// syncfs on the tree's file system, so a crash after the rename cannot leave a complete-looking empty layer.
fn sync_dir_tree(dir: &Path) -> io::Result<()> {
    let f = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&f).map_err(io::Error::from)
}

/// Removes `trusted.overlay.*` / `user.overlay.*` xattrs other than the opaque markers from every entry below
/// (and of) `dir`, without following symlinks.
fn strip_overlay_bookkeeping(dir: &Path) -> io::Result<()> {
    let keep = [
        berth_spec::whiteout::OVERLAY_OPAQUE_XATTR.as_bytes(),
        berth_spec::whiteout::USER_OVERLAY_OPAQUE_XATTR.as_bytes(),
    ];
    let mut todo = vec![dir.to_owned()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        }
        let mut buf = vec![0u8; 4096];
        let names = match rustix::fs::llistxattr(&p, &mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(rustix::io::Errno::NOTSUP) => continue,
            Err(rustix::io::Errno::RANGE) => {
                buf.resize(1 << 16, 0);
                let n = rustix::fs::llistxattr(&p, &mut buf)?;
                buf[..n].to_vec()
            }
            Err(e) => return Err(e.into()),
        };
        for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let overlay = name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.");
            if overlay && !keep.contains(&name) {
                let cname = std::ffi::CString::new(name).expect("split at NUL");
                match rustix::fs::lremovexattr(&p, &cname) {
                    Ok(()) | Err(rustix::io::Errno::NODATA) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}
