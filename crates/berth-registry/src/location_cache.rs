//! The blob-location cache: which repositories of a registry are known to hold a blob, so an upload can be a
//! cross-repository mount instead.
//!
//! A small JSON file, `{"version": 1, "hosts": {HOST: {DIGEST: [REPO, …]}}}`, most recent repository first.
//! Every update re-reads the file, changes it and replaces it atomically (temporary file in the same directory,
//! fsync, rename), so concurrent writers can lose each other's latest entry but never leave a corrupt file. It is
//! only a hint: a stale entry costs one failed mount, so read and write failures are logged, never fatal.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_spec::Digest;
use serde::{Deserialize, Serialize};

/// Repositories remembered per blob.
const REPOS_PER_BLOB: usize = 8;
/// Blobs remembered per registry; beyond this the oldest-recorded are dropped.
const BLOBS_PER_HOST: usize = 20_000;
/// Cache files larger than this are ignored (and then replaced).
const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// Format version written.
const VERSION: u32 = 1;

/// Distinguishes temporary files of concurrent writers within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    #[serde(default)]
    version: u32,
    /// host → digest → repositories; a `serde_json` map keeps insertion order, which is the eviction order.
    #[serde(default)]
    hosts: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// A blob-location cache file.
#[derive(Debug)]
pub(crate) struct LocationCache {
    path: PathBuf,
    /// Serializes this process's read-modify-write cycles.
    lock: Mutex<()>,
}

impl LocationCache {
    pub(crate) fn new(path: PathBuf) -> Self {
        LocationCache {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Repositories of `host` known to hold `digest`, most recently seen first.
    pub(crate) fn repos_with(&self, host: &str, digest: &Digest) -> Vec<String> {
        let file = self.load();
        let Some(list) = file.hosts.get(host).and_then(|m| m.get(&digest.to_string())) else {
            return Vec::new();
        };
        let repos: Vec<String> = serde_json::from_value(list.clone()).unwrap_or_default();
        repos.into_iter().take(REPOS_PER_BLOB).collect()
    }

    /// Notes that `repo` on `host` holds `digest`.
    pub(crate) fn record(&self, host: &str, digest: &Digest, repo: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = self.load();
        let blobs = file.hosts.entry(host.to_owned()).or_default();
        let key = digest.to_string();
        let mut repos: Vec<String> = blobs
            .shift_remove(&key)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if repos.first().map(String::as_str) == Some(repo) {
            // Already known as the latest location: no write. (Re-insert keeps the map intact.)
            blobs.insert(key, serde_json::json!(repos));
            return;
        }
        repos.retain(|r| r != repo);
        repos.insert(0, repo.to_owned());
        repos.truncate(REPOS_PER_BLOB);
        blobs.insert(key, serde_json::json!(repos));
        while blobs.len() > BLOBS_PER_HOST {
            let Some(oldest) = blobs.keys().next().cloned() else {
                break;
            };
            blobs.shift_remove(&oldest);
        }
        file.version = VERSION;
        if let Err(e) = self.store(&file) {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot update the blob-location cache");
        }
    }

    fn load(&self) -> CacheFile {
        match read_bounded(&self.path) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %self.path.display(), error = %e, "ignoring a malformed blob-location cache");
                CacheFile::default()
            }),
            Ok(None) => CacheFile::default(),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read the blob-location cache");
                CacheFile::default()
            }
        }
    }

    fn store(&self, file: &CacheFile) -> std::io::Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A new file, never one that is there already nor what a symlink planted there points at: the directory
        // may be shared, and the names are predictable.
        let (tmp, mut f) = 'create: {
            let mut last = None;
            for _ in 0..16 {
                let tmp = dir.join(format!(
                    ".{name}.{}.{}.tmp",
                    std::process::id(),
                    TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
                ));
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .mode(0o600)
                    .open(&tmp)
                {
                    Ok(f) => break 'create (tmp, f),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            return Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name was free")));
        };
        let result = (|| {
            f.write_all(&serde_json::to_vec(file).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_SIZE => Err(std::io::Error::other(format!("larger than {MAX_FILE_SIZE} bytes"))),
        Ok(_) => std::fs::read(path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_look_up() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocationCache::new(dir.path().join("sub/cache.json"));
        let d = Digest::sha256(b"blob");
        assert!(cache.repos_with("h", &d).is_empty());
        cache.record("h", &d, "a");
        cache.record("h", &d, "b");
        cache.record("h", &d, "a");
        cache.record("other", &d, "z");
        assert_eq!(cache.repos_with("h", &d), ["a", "b"]);
        assert_eq!(cache.repos_with("other", &d), ["z"]);
        for i in 0..20 {
            cache.record("h", &d, &format!("r{i}"));
        }
        assert_eq!(cache.repos_with("h", &d).len(), REPOS_PER_BLOB);
        assert_eq!(cache.repos_with("h", &d)[0], "r19");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    /// HOSTILE-INPUTS 38: in a directory another user can write, a symlink planted at the next temporary name is
    /// neither followed nor removed.
    #[test]
    fn hostile_38_a_planted_temporary_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let next = TEMP_COUNTER.load(Ordering::Relaxed);
        for n in next..next + 8 {
            let planted = dir.path().join(format!(".cache.json.{}.{n}.tmp", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        let cache = LocationCache::new(dir.path().join("cache.json"));
        let d = Digest::sha256(b"blob");
        cache.record("h", &d, "a");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(cache.repos_with("h", &d), ["a"]);
    }

    #[test]
    fn corrupt_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::fs::write(&path, b"{\"hosts\": [garbage").unwrap();
        let cache = LocationCache::new(path.clone());
        let d = Digest::sha256(b"x");
        assert!(cache.repos_with("h", &d).is_empty());
        cache.record("h", &d, "r");
        assert_eq!(LocationCache::new(path).repos_with("h", &d), ["r"]);
    }

    #[test]
    fn concurrent_writers_never_corrupt_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::thread::scope(|s| {
            for t in 0..8 {
                let path = path.clone();
                s.spawn(move || {
                    // Separate instances: like separate processes, they share only the file.
                    let cache = LocationCache::new(path);
                    for i in 0..25 {
                        cache.record("h", &Digest::sha256(format!("{t}-{i}").as_bytes()), &format!("repo{t}"));
                    }
                });
            }
        });
        let parsed: CacheFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(!parsed.hosts["h"].is_empty());
    }
}
