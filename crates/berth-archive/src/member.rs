//! Walking the members of an image archive: raw tar headers, with GNU long names and PAX records applied under
//! caps Berth controls, names normalized and checked, duplicates refused.
//!
//! The walk reads headers only; a visitor decides what to do with each member's data (stream it, skip it, or record
//! its offset for seeking later). Extension headers are read into memory only up to [`MAX_EXTENSION_HEADER`], and a
//! PAX `size` that disagrees with the header is refused, since readers that disagree about where a member ends see
//! different archives.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use berth_spec::media_type::Compression;
use tar::EntryType;

use crate::error::{ArchiveError, IoContext, Result};

/// Cap on a GNU long-name or PAX extension header's data.
pub(crate) const MAX_EXTENSION_HEADER: u64 = 1024 * 1024;

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link.
    Hardlink,
    /// Anything else (device, FIFO, sparse file, …): the tar type byte.
    Other(u8),
}

impl MemberKind {
    /// A word for error messages.
    pub(crate) fn describe(self) -> String {
        match self {
            MemberKind::File => "regular file".into(),
            MemberKind::Dir => "directory".into(),
            MemberKind::Symlink => "symlink".into(),
            MemberKind::Hardlink => "hardlink".into(),
            MemberKind::Other(t) => format!("special file (tar type {:?})", t as char),
        }
    }
}

/// One member's header, after extension headers are applied.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The name as written in the archive (for error messages).
    pub(crate) raw_name: String,
    /// The normalized name: no `.` or empty components, no trailing `/`; empty for the archive root.
    pub(crate) name: String,
    /// What it is.
    pub(crate) kind: MemberKind,
    /// The link target as written, for links.
    pub(crate) link: Option<String>,
    /// Size of the data.
    pub(crate) size: u64,
    /// Offset of the data from the start of the (uncompressed) archive.
    pub(crate) data_offset: u64,
}

/// Normalizes a member name or a path written in a manifest: drops `.` and empty components and a trailing `/`;
/// refuses absolute names and `..`. The root (`.`, `./`) normalizes to the empty string.
pub(crate) fn normalize(name: &str) -> Result<String, &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.starts_with('/') {
        return Err("absolute names are not allowed in an image archive");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("names containing `..` could escape the destination"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn bad(archive: &Path, member: impl Into<String>, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::BadMember {
        archive: archive.to_owned(),
        member: member.into(),
        reason: reason.into(),
    }
}

fn text(archive: &Path, bytes: &[u8], what: &str) -> Result<String> {
    let trimmed = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    String::from_utf8(trimmed.to_vec()).map_err(|_| {
        let lossy = String::from_utf8_lossy(trimmed).into_owned();
        bad(archive, lossy, format!("the {what} is not UTF-8"))
    })
}

/// Extension headers waiting for the member they describe.
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax_size: Option<u64>,
}

fn read_extension(archive: &Path, entry: &mut impl Read, size: u64, what: &str) -> Result<Vec<u8>> {
    if size > MAX_EXTENSION_HEADER {
        return Err(ArchiveError::TooLarge {
            archive: archive.to_owned(),
            member: format!("({what} header)"),
            size,
            limit: MAX_EXTENSION_HEADER,
        });
    }
    let mut buf = Vec::new();
    entry
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|source| ArchiveError::Tar {
            archive: archive.to_owned(),
            source,
        })?;
    Ok(buf)
}

fn apply_pax(archive: &Path, data: &[u8], pending: &mut Pending) -> Result<()> {
    for record in tar::PaxExtensions::new(data) {
        let record = record.map_err(|e| bad(archive, "(PAX header)", format!("malformed PAX record: {e}")))?;
        match record.key_bytes() {
            b"path" => pending.name = Some(record.value_bytes().to_vec()),
            b"linkpath" => pending.link = Some(record.value_bytes().to_vec()),
            b"size" => {
                let size = record
                    .value()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad(archive, "(PAX header)", "the PAX size is not a number"))?;
                pending.pax_size = Some(size);
            }
            key if key.starts_with(b"GNU.sparse.") => {
                return Err(bad(
                    archive,
                    "(PAX header)",
                    "sparse members are not allowed in an image archive",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Opens an archive file and undoes gzip or zstd compression (sniffed from its first bytes).
pub(crate) fn open_decompressed(archive: &Path) -> Result<(Box<dyn Read + Send>, Compression)> {
    let file = File::open(archive).at(archive, "open archive")?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let compression = Compression::sniff(reader.fill_buf().at(archive, "read archive")?);
    let reader = berth_spec::diff_id::decoder(reader, compression).at(archive, "start decompressing archive")?;
    Ok((reader, compression))
}

/// Walks every member of `entries` (which must be raw), calling `visit` with each member and a reader of its data.
/// Refuses unsafe names and duplicates (a directory may repeat) with an error naming the member.
pub(crate) fn walk<R: Read>(
    archive: &Path,
    entries: tar::Entries<'_, R>,
    mut visit: impl FnMut(&Member, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let tar_err = |source| ArchiveError::Tar {
        archive: archive.to_owned(),
        source,
    };
    let mut seen: HashMap<String, MemberKind> = HashMap::new();
    let mut pending = Pending::default();
    for entry in entries {
        let mut entry = entry.map_err(tar_err)?;
        let header = entry.header().clone();
        let size = header.entry_size().map_err(tar_err)?;
        match header.entry_type() {
            EntryType::GNULongName => {
                pending.name = Some(read_extension(archive, &mut entry, size, "GNU long name")?);
                continue;
            }
            EntryType::GNULongLink => {
                pending.link = Some(read_extension(archive, &mut entry, size, "GNU long link")?);
                continue;
            }
            EntryType::XHeader => {
                let data = read_extension(archive, &mut entry, size, "PAX")?;
                apply_pax(archive, &data, &mut pending)?;
                continue;
            }
            // Global PAX headers carry only defaults (comments, mtimes) that nothing here uses.
            EntryType::XGlobalHeader => continue,
            _ => {}
        }
        let pending = std::mem::take(&mut pending);
        let raw_name = text(
            archive,
            &pending.name.unwrap_or_else(|| header.path_bytes().into_owned()),
            "name",
        )?;
        if let Some(pax_size) = pending.pax_size
            && pax_size != size
        {
            return Err(bad(
                archive,
                raw_name,
                format!("its PAX size {pax_size} disagrees with its header size {size}; the archive is ambiguous"),
            ));
        }
        let link = match pending
            .link
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
        {
            Some(l) => Some(text(archive, &l, "link target")?),
            None => None,
        };
        let kind = match header.entry_type() {
            EntryType::Regular | EntryType::Continuous => MemberKind::File,
            EntryType::Directory => MemberKind::Dir,
            EntryType::Symlink => MemberKind::Symlink,
            EntryType::Link => MemberKind::Hardlink,
            other => MemberKind::Other(other.as_byte()),
        };
        let name = normalize(&raw_name).map_err(|reason| bad(archive, raw_name.as_str(), reason))?;
        if name.is_empty() && kind != MemberKind::Dir {
            return Err(bad(
                archive,
                raw_name,
                "only a directory may be named after the archive root",
            ));
        }
        if let Some(before) = seen.insert(name.clone(), kind)
            && !(before == MemberKind::Dir && kind == MemberKind::Dir)
        {
            return Err(bad(
                archive,
                raw_name,
                "the name appears twice in the archive; readers would disagree about which one counts",
            ));
        }
        let member = Member {
            raw_name,
            name,
            kind,
            link,
            size,
            data_offset: entry.raw_file_position(),
        };
        visit(&member, &mut entry)?;
    }
    if pending.name.is_some() || pending.link.is_some() || pending.pax_size.is_some() {
        return Err(tar_err(std::io::Error::other(
            "the archive ends after an extension header",
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_names() {
        assert_eq!(normalize("./blobs/sha256/").unwrap(), "blobs/sha256");
        assert_eq!(normalize("a//b/./c").unwrap(), "a/b/c");
        assert_eq!(normalize("./").unwrap(), "");
        for hostile in ["", "/abs", "/../x", "../x", "a/../../x", "a/.."] {
            assert!(normalize(hostile).is_err(), "{hostile:?} accepted");
        }
    }

    fn raw_tar(members: &[(&[u8], EntryType, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in members {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len();
        while (len.to_string().len() + body.len()) != len {
            len = len.to_string().len() + body.len();
        }
        format!("{len}{body}")
    }

    fn names(tar: &[u8]) -> Result<Vec<(String, MemberKind, u64)>> {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        walk(Path::new("t.tar"), archive.entries().unwrap().raw(true), |m, _| {
            out.push((m.name.clone(), m.kind, m.data_offset));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn long_names_and_pax_paths_apply_to_the_next_member() {
        let long = format!("blobs/sha512/{}", "a".repeat(128));
        let pax = pax_record("path", &long);
        let tar = raw_tar(&[
            (b"././@LongLink", EntryType::GNULongName, format!("{long}\0").as_bytes()),
            (b"short", EntryType::Regular, b"x"),
            (b"PaxHeader", EntryType::XHeader, pax.as_bytes()),
            (b"other", EntryType::Regular, b"y"),
        ]);
        let err = names(&tar).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let tar = raw_tar(&[
            (b"././@LongLink", EntryType::GNULongName, format!("{long}\0").as_bytes()),
            (b"short", EntryType::Regular, b"x"),
            (b"./d/", EntryType::Directory, b""),
            (b"d", EntryType::Directory, b""),
        ]);
        let found = names(&tar).unwrap();
        assert_eq!(found[0], (long, MemberKind::File, 1536));
        assert_eq!(found[1].0, "d");
    }

    #[test]
    fn hostile_headers_are_refused() {
        let pax = b"12 size=999\n";
        let tar = raw_tar(&[
            (b"PaxHeader", EntryType::XHeader, pax),
            (b"f", EntryType::Regular, b"x"),
        ]);
        assert!(names(&tar).unwrap_err().to_string().contains("disagrees"));
        let tar = raw_tar(&[(b"../x", EntryType::Regular, b"x")]);
        assert!(names(&tar).unwrap_err().to_string().contains("`..`"));
        let tar = raw_tar(&[(b"/abs", EntryType::Regular, b"x")]);
        assert!(names(&tar).unwrap_err().to_string().contains("absolute"));
        let tar = raw_tar(&[(b"f", EntryType::Regular, b"x"), (b"./f", EntryType::Regular, b"x")]);
        assert!(names(&tar).unwrap_err().to_string().contains("twice"));
        let tar = raw_tar(&[(b"./", EntryType::Regular, b"x")]);
        assert!(names(&tar).unwrap_err().to_string().contains("root"));
        let tar = raw_tar(&[(b"\xff", EntryType::Regular, b"x")]);
        assert!(names(&tar).unwrap_err().to_string().contains("UTF-8"));
        let sparse = pax_record("GNU.sparse.major", "1");
        let tar = raw_tar(&[
            (b"PaxHeader", EntryType::XHeader, sparse.as_bytes()),
            (b"f", EntryType::Regular, b"x"),
        ]);
        assert!(names(&tar).unwrap_err().to_string().contains("sparse"));
    }
}
