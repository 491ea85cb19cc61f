//! Random access to the members of an archive file: the tar headers are walked once and every member's data offset
//! and size recorded; members are then read in place by positional reads, so several readers of one archive never
//! share a file offset and nothing is extracted.
//!
//! Unsafe names, duplicates and devices are refused while walking, as are links that leave the archive; links
//! inside it (old `docker save` links repeated layers) are followed when a member is looked up. A compressed
//! archive is first decompressed into an anonymous temp file, since members are read by seeking.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_layer::tar_walk::TarWalker;
use berth_spec::media_type::Compression;

use berth_spec::io_context::IoContext;

use crate::error::{ArchiveError, Result};
use crate::member::{self, MemberKind, normalize};

/// How many links in a row are followed to reach a member.
const MAX_LINK_HOPS: usize = 16;

/// Where a member's data lies in the archive file.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    kind: MemberKind,
    /// For links: the normalized name of the member linked to.
    link: Option<String>,
    offset: u64,
    size: u64,
}

/// The members of an archive file, by normalized name.
#[derive(Debug)]
pub(crate) struct MemberIndex {
    path: PathBuf,
    file: Arc<File>,
    members: HashMap<String, Entry>,
}

impl MemberIndex {
    /// Indexes the archive at `path` (plain, gzip or zstd tar).
    pub(crate) fn open(path: &Path) -> Result<MemberIndex> {
        let file = seekable(path)?;
        let file_len = file.metadata().at("stat archive", path)?.len();
        let mut members = HashMap::new();
        member::walk(path, TarWalker::seekable(&file), |m, _| {
            let bad = |reason: String| ArchiveError::BadMember {
                archive: path.to_owned(),
                member: m.raw_name.clone(),
                reason,
            };
            let link = match (m.kind, &m.link) {
                (MemberKind::File | MemberKind::Dir, _) => None,
                (MemberKind::Symlink, Some(target)) => {
                    let base = m.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                    Some(link_target(&format!("{base}/{target}"), target).map_err(bad)?)
                }
                (MemberKind::Hardlink, Some(target)) => Some(link_target(target, target).map_err(bad)?),
                (kind, _) => return Err(bad(format!("an image archive holds no {}", kind.describe()))),
            };
            if m.kind == MemberKind::File && m.data_offset.checked_add(m.size).is_none_or(|end| end > file_len) {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "member {:?} runs past the end of the file; the archive is truncated",
                        m.raw_name
                    ),
                );
                return Err(ArchiveError::Tar {
                    archive: path.to_owned(),
                    source: e,
                });
            }
            let entry = Entry {
                kind: m.kind,
                link,
                offset: m.data_offset,
                size: m.size,
            };
            members.insert(m.name.clone(), entry);
            Ok(())
        })?;
        Ok(MemberIndex {
            path: path.to_owned(),
            file: Arc::new(file),
            members,
        })
    }

    /// The archive's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a member of this (normalized) name exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// Finds the regular file `path` names (following links inside the archive). `referenced_by` says who named it,
    /// for errors.
    pub(crate) fn resolve(&self, path: &str, referenced_by: &str) -> Result<&Entry> {
        let bad = |reason: String| ArchiveError::BadMember {
            archive: self.path.clone(),
            member: path.to_owned(),
            reason,
        };
        let mut name = normalize(path).map_err(|reason| ArchiveError::BadManifest {
            archive: self.path.clone(),
            reason: format!("{referenced_by} names {path:?}: {reason}"),
        })?;
        for _ in 0..MAX_LINK_HOPS {
            let entry = self.members.get(&name).ok_or_else(|| ArchiveError::MissingMember {
                archive: self.path.clone(),
                member: name.clone(),
                referenced_by: referenced_by.to_owned(),
            })?;
            match (&entry.link, entry.kind) {
                (Some(target), _) => name = target.clone(),
                (None, MemberKind::File) => return Ok(entry),
                (None, kind) => {
                    return Err(bad(format!(
                        "{referenced_by} names it, but it is a {}",
                        kind.describe()
                    )));
                }
            }
        }
        Err(bad(format!(
            "more than {MAX_LINK_HOPS} links in a row; the archive is malformed or hostile"
        )))
    }

    /// Reads a whole member of at most `cap` bytes (checked before anything is read).
    pub(crate) fn read(&self, path: &str, cap: u64, referenced_by: &str) -> Result<Vec<u8>> {
        let entry = self.resolve(path, referenced_by)?;
        if entry.size > cap {
            return Err(ArchiveError::TooLarge {
                archive: self.path.clone(),
                member: path.to_owned(),
                size: entry.size,
                limit: cap,
            });
        }
        let mut out = Vec::new();
        self.reader(entry)
            .read_to_end(&mut out)
            .at("read archive", &self.path)?;
        Ok(out)
    }

    /// A reader of a member's bytes.
    pub(crate) fn reader(&self, entry: &Entry) -> MemberReader {
        MemberReader {
            file: Arc::clone(&self.file),
            pos: entry.offset,
            end: entry.offset + entry.size,
        }
    }
}

/// A reader of one archive member's bytes, exactly as stored.
#[derive(Debug)]
pub struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl MemberReader {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.remaining()).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive file ends inside this member; it was truncated after it was opened",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Checks a link target (already joined to the link's directory for symlinks) stays inside the archive.
fn link_target(joined: &str, written: &str) -> Result<String, String> {
    let refuse = || format!("it links to {written:?}, outside the archive; refusing it");
    if written.starts_with('/') {
        return Err(refuse());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(refuse)?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The archive as a seekable, uncompressed file: the file itself, or — when it is compressed or not a regular file
/// (a pipe) — its decompressed copy in an anonymous temp file.
fn seekable(path: &Path) -> Result<File> {
    let (mut reader, compression) = member::open_decompressed(path)?;
    let regular = std::fs::metadata(path).at("stat archive", path)?.is_file();
    if compression == Compression::None && regular {
        return File::open(path).at("open archive", path).map_err(Into::into);
    }
    tracing::debug!(archive = %path.display(), %compression, regular, "copying the archive to a temp file");
    let mut temp = tempfile::tempfile().at("create temp file", std::env::temp_dir())?;
    io::copy(&mut reader, &mut temp).map_err(|source| ArchiveError::Tar {
        archive: path.to_owned(),
        source,
    })?;
    temp.rewind().at("rewind temp file", std::env::temp_dir())?;
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_stay_inside() {
        assert_eq!(
            link_target("a/../b/layer.tar", "../b/layer.tar").unwrap(),
            "b/layer.tar"
        );
        assert!(link_target("/../x", "../x").is_err());
        assert!(link_target("a/../../x", "../../x").is_err());
        assert!(link_target("/etc/passwd", "/etc/passwd").is_err());
    }
}
