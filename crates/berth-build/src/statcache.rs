//! The context's stat cache (as git's index does it): for each file of the build context that a step read, its
//! size, modification and change times, inode and device, with the digest of its content. A file whose stat
//! fields all match is not read again; any difference (or a time too close to when the entry was recorded to
//! trust: a "racily clean" file) and it is hashed afresh. It only spares reading; keys are always content
//! digests.
//!
//! Files are hashed with BLAKE3 (`blake3:HEX`): these digests only key the builder's own step cache and never leave
//! the machine, and BLAKE3 reads a cold context several times faster than SHA-256, which the build then still
//! spends on the layer's diffID and blob digest (OCI's). Entries of another algorithm are hashed again.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// How long after its last change a file's entry must have been recorded to be trusted: a change within the
/// same clock tick as the recording would keep the times the entry holds (git's "racily clean" files).
const RACY_NS: i128 = 100_000_000;

/// One file's stat fields and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    size: u64,
    mtime: i128,
    ctime: i128,
    ino: u64,
    dev: u64,
    /// When the entry was recorded (ns since the epoch).
    recorded: i128,
    /// `blake3:HEX`.
    digest: String,
    /// Recorded in this build from a file read elsewhere ([`StatCache::record`]): a later lookup is counted as
    /// the read it was, not as a reuse.
    read_elsewhere: bool,
}

/// The prefix of this cache's digests.
const ALGORITHM: &str = "blake3:";

fn ns(secs: i64, nanos: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nanos)
}

/// The cache, loaded from and saved to one file.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    dirty: bool,
    /// Files hashed (read) and files answered from the cache, for `-v`.
    pub hashed: usize,
    /// Files whose digest came from the cache.
    pub reused: usize,
    /// The read buffer, kept between files: a zeroed 1 MiB per file cost more than hashing a small file.
    buf: Vec<u8>,
}

impl StatCache {
    /// The cache, moved out (to another thread), leaving an empty one that saves nothing in its place.
    pub fn take(&mut self) -> StatCache {
        let empty = StatCache {
            path: self.path.clone(),
            entries: HashMap::new(),
            dirty: false,
            hashed: 0,
            reused: 0,
            buf: Vec::new(),
        };
        std::mem::replace(self, empty)
    }

    /// Loads `path` (an absent or unreadable file is an empty cache).
    pub fn load(path: &Path) -> StatCache {
        let mut entries = HashMap::new();
        if let Ok(bytes) = std::fs::read(path)
            && let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes)
        {
            for (k, v) in map {
                let field = |n: &str| v[n].as_str().and_then(|s| s.parse::<i128>().ok());
                let entry = (|| {
                    Some(Entry {
                        size: v["size"].as_u64()?,
                        mtime: field("mtime")?,
                        ctime: field("ctime")?,
                        ino: v["ino"].as_u64()?,
                        dev: v["dev"].as_u64()?,
                        recorded: field("recorded")?,
                        digest: v["digest"].as_str().filter(|d| d.starts_with(ALGORITHM))?.to_owned(),
                        read_elsewhere: false,
                    })
                })();
                if let Some(e) = entry {
                    entries.insert(k, e);
                }
            }
        }
        StatCache {
            path: path.to_owned(),
            entries,
            dirty: false,
            hashed: 0,
            reused: 0,
            buf: Vec::new(),
        }
    }

    /// The digest of the regular file `path` (with metadata `meta`), from the cache when its stat fields match.
    pub fn digest(&mut self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<String> {
        let key = path.display().to_string();
        let mtime = ns(meta.mtime(), meta.mtime_nsec());
        let ctime = ns(meta.ctime(), meta.ctime_nsec());
        if let Some(e) = self.entries.get(&key)
            && e.size == meta.len()
            && e.mtime == mtime
            && e.ctime == ctime
            && e.ino == meta.ino()
            && e.dev == meta.dev()
            // Changed within RACY_NS of being recorded: the times cannot tell a later change apart.
            && e.recorded > mtime.max(ctime) + RACY_NS
        {
            if !e.read_elsewhere {
                self.reused += 1;
            }
            return Ok(e.digest.clone());
        }
        // A file read elsewhere in this build and read again (changed since, or too recently changed to trust
        // its times) is one file read, not two.
        let read_elsewhere = self.entries.get(&key).is_some_and(|e| e.read_elsewhere);
        let mut h = blake3::Hasher::new();
        let mut file = std::fs::File::open(path)?;
        if self.buf.is_empty() {
            self.buf = vec![0u8; 1 << 20];
        }
        let buf = &mut self.buf;
        loop {
            let n = file.read(buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let digest = format!("{ALGORITHM}{}", h.finalize().to_hex());
        if !read_elsewhere {
            self.hashed += 1;
        }
        self.insert(path, meta, digest.clone(), read_elsewhere);
        Ok(digest)
    }

    fn insert(&mut self, path: &Path, meta: &std::fs::Metadata, digest: String, read_elsewhere: bool) {
        let key = path.display().to_string();
        let mtime = ns(meta.mtime(), meta.mtime_nsec());
        let ctime = ns(meta.ctime(), meta.ctime_nsec());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        self.entries.insert(
            key,
            Entry {
                size: meta.len(),
                mtime,
                ctime,
                ino: meta.ino(),
                dev: meta.dev(),
                recorded: now,
                digest,
                read_elsewhere,
            },
        );
        self.dirty = true;
    }

    /// The digest last recorded for `path`, if any.
    pub fn known(&self, path: &Path) -> Option<&str> {
        self.entries.get(&path.display().to_string()).map(|e| e.digest.as_str())
    }

    /// Records the digest of a file hashed elsewhere (BLAKE3 of its content when it had metadata `meta`), as if
    /// [`digest`](Self::digest) had read it.
    pub fn record(&mut self, path: &Path, meta: &std::fs::Metadata, blake3: &[u8; 32]) {
        let digest = format!("{ALGORITHM}{}", blake3::Hash::from_bytes(*blake3).to_hex());
        self.insert(path, meta, digest, true);
        self.hashed += 1;
    }

    /// Writes the cache back (atomically) if it changed.
    pub fn save(&self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let map: serde_json::Map<String, Value> = self
            .entries
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    json!({
                        "size": e.size, "mtime": e.mtime.to_string(), "ctime": e.ctime.to_string(),
                        "ino": e.ino, "dev": e.dev, "recorded": e.recorded.to_string(), "digest": e.digest,
                    }),
                )
            })
            .collect();
        let tmp = self.path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&Value::Object(map)).expect("JSON"))?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_are_not_read_again_and_changes_are_seen() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "one").unwrap();
        // Old enough to be trusted once recorded.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        // Past the racy window after the last change (the change time is now): this waits for the clock.
        std::thread::sleep(std::time::Duration::from_millis(150));
        let cache_file = t.path().join("stat.json");
        let mut c = StatCache::load(&cache_file);
        let d1 = c.digest(&f, &std::fs::metadata(&f).unwrap()).unwrap();
        assert_eq!((c.hashed, c.reused), (1, 0));
        c.save().unwrap();
        let mut c = StatCache::load(&cache_file);
        let d2 = c.digest(&f, &std::fs::metadata(&f).unwrap()).unwrap();
        assert_eq!((d1.clone(), c.hashed, c.reused), (d2, 0, 1), "read from the cache");
        // Same size, same mtime, new content: the change time differs, so it is hashed again.
        std::fs::write(&f, "two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let d3 = c.digest(&f, &std::fs::metadata(&f).unwrap()).unwrap();
        assert_ne!(d3, d1);
        assert_eq!(c.hashed, 1);
    }
}
