//! Locks and temp files in a layout's private `.berth/` directory.
//!
//! - `.berth/index.lock`: held exclusively while index.json is read, modified and replaced.
//! - `.berth/gc.lock`: held shared by every writer for the length of an ingest, exclusively by gc, so gc never
//!   deletes blobs a writer has stored but not yet referenced.
//! - `.berth/tmp/`: temp files, each flock'ed exclusively by the process writing it; a temp file whose lock can be
//!   taken belongs to a process that died, and is removed by `clean_temp`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use super::error::Result;
use crate::io_context::IoContext;

pub(crate) const TMP_DIR: &str = ".berth/tmp";

/// An flock held until dropped (closing the file releases it).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .at("open lock", path)
        .map_err(Into::into)
}

pub(crate) fn lock(path: &Path, exclusive: bool) -> Result<LockGuard> {
    let file = open_lock_file(path)?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&file, op).at("lock", path)?;
    Ok(LockGuard { _file: file })
}

pub(crate) fn ensure_private_dirs(root: &Path) -> Result<()> {
    let tmp = root.join(TMP_DIR);
    fs::create_dir_all(&tmp)
        .at("create directory", &tmp)
        .map_err(Into::into)
}

/// A temp file inside the layout, locked by this process, removed on drop unless persisted.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    persisted: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempFile {
    pub(crate) fn new(root: &Path, prefix: &str) -> Result<TempFile> {
        let dir = root.join(TMP_DIR);
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!(
                "{prefix}-{}-{}-{nanos:08x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = dir.join(name);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(file) => {
                    flock(&file, FlockOperation::LockExclusive).at("lock temp file", &path)?;
                    return Ok(TempFile {
                        file,
                        path,
                        persisted: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).at("create temp file", &path).map_err(Into::into),
            }
        }
    }

    /// Renames the (already fsynced) file to `dest`; it is no longer removed on drop.
    pub(crate) fn rename_to(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest).at("rename into place", dest)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Removes temp files whose writer is gone; returns how many were removed.
pub(crate) fn clean_temp(root: &Path) -> Result<usize> {
    sweep_temp(root, true)
}

/// Counts temp files whose writer is gone.
pub(crate) fn count_stale_temp(root: &Path) -> Result<usize> {
    sweep_temp(root, false)
}

/// Removes temp files whose writer is gone and that are older than `min_age`, while other writers may be
/// working: a writer creates its temp file and locks it a moment later, so a young unlocked file may be one
/// that is about to be locked, and is left alone.
pub(crate) fn clean_old_temp(root: &Path, min_age: std::time::Duration) -> Result<usize> {
    sweep(root, true, Some(min_age))
}

fn sweep_temp(root: &Path, remove: bool) -> Result<usize> {
    sweep(root, remove, None)
}

fn sweep(root: &Path, remove: bool, min_age: Option<std::time::Duration>) -> Result<usize> {
    let dir = root.join(TMP_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).at("read directory", &dir).map_err(Into::into),
    };
    let mut stale = 0;
    for entry in entries {
        let entry = entry.at("read directory", &dir)?;
        let path = entry.path();
        if let Some(min_age) = min_age {
            // The inode's change time: a staged hard link to an old blob has that blob's mtime, but its ctime is
            // the moment it was linked.
            use std::os::unix::fs::MetadataExt;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let young = entry
                .metadata()
                .map(|m| now.saturating_sub(m.ctime()) < min_age.as_secs() as i64)
                .unwrap_or(true);
            if young {
                continue;
            }
        }
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nofollow())
            .open(&path)
        else {
            continue;
        };
        // A writer holds its temp file's lock until it renames or removes it: a free lock means a dead writer.
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            if remove {
                match fs::remove_file(&path) {
                    // Renamed into place or removed by another sweep meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    other => other.at("remove stale temp file", &path)?,
                }
            }
            stale += 1;
        }
    }
    Ok(stale)
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Flushes a directory's entries to disk.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
        .map_err(Into::into)
}
