//! Walking the members of an image archive with Berth's one tar reader ([`berth_layer::tar_walk`], which applies
//! GNU long names and PAX records under its caps), names normalized and checked, duplicates refused.
//!
//! The walk reads headers only; a visitor decides what to do with each member's data (stream it, skip it, or record
//! its offset for seeking later). A PAX `size` that disagrees with a non-zero header size is refused, since readers
//! that disagree about where a member ends see different archives (a header size of 0 with a PAX size is how Go
//! writes members of 8 GiB and more), and so are PAX sparse records.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use berth_layer::tar_walk::{TarWalker, WalkError};
use berth_spec::media_type::Compression;
use tar::EntryType;

use berth_spec::io_context::IoContext;

use crate::error::{ArchiveError, Result};

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
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        let lossy = String::from_utf8_lossy(bytes).into_owned();
        bad(archive, lossy, format!("the {what} is not UTF-8"))
    })
}

fn walk_error(archive: &Path, e: WalkError) -> ArchiveError {
    match e {
        WalkError::Read { source, .. } => ArchiveError::Tar {
            archive: archive.to_owned(),
            source,
        },
        WalkError::TooLarge {
            header,
            what,
            size,
            limit,
        } => ArchiveError::TooLarge {
            archive: archive.to_owned(),
            member: format!("{header} ({what})"),
            size,
            limit,
        },
        WalkError::Malformed { entry, reason } => bad(archive, entry, reason),
        other => ArchiveError::Tar {
            archive: archive.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        },
    }
}

/// Opens an archive file and undoes gzip or zstd compression (sniffed from its first bytes).
pub(crate) fn open_decompressed(archive: &Path) -> Result<(Box<dyn Read + Send>, Compression)> {
    let file = File::open(archive).at("open archive", archive)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let compression = Compression::sniff(reader.fill_buf().at("read archive", archive)?);
    let reader = berth_spec::diff_id::decoder(reader, compression).at("start decompressing archive", archive)?;
    Ok((reader, compression))
}

/// Walks every member of the archive, calling `visit` with each member and a reader of its data. Refuses unsafe
/// names and duplicates (a directory may repeat) with an error naming the member.
pub(crate) fn walk<R: Read>(
    archive: &Path,
    mut walker: TarWalker<R>,
    mut visit: impl FnMut(&Member, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let mut seen: HashMap<String, MemberKind> = HashMap::new();
    while let Some(entry) = walker.next_entry().map_err(|e| walk_error(archive, e))? {
        let raw_name = text(archive, entry.path_bytes(), "name")?;
        let header_size = entry.header_size();
        if let Some(pax_size) = entry.pax_size()
            && header_size != 0
            && pax_size != header_size
        {
            return Err(bad(
                archive,
                raw_name,
                format!(
                    "its PAX size {pax_size} disagrees with its header size {header_size}; the archive is ambiguous"
                ),
            ));
        }
        if entry.pax_records().any(|(k, _)| k.starts_with(b"GNU.sparse.")) {
            return Err(bad(
                archive,
                raw_name,
                "sparse members are not allowed in an image archive",
            ));
        }
        let link = match entry.link_bytes() {
            Some(l) => Some(text(archive, l, "link target")?),
            None => None,
        };
        let kind = match entry.entry_type() {
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
            size: entry.size(),
            data_offset: entry.data_offset(),
        };
        visit(&member, &mut walker.data())?;
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
        let mut out = Vec::new();
        walk(Path::new("t.tar"), TarWalker::new(tar), |m, _| {
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

    #[test]
    fn a_pax_size_counts_when_the_header_says_zero_as_go_writes_huge_members() {
        // Go writes members of 8 GiB and more with 0 in the header's size field and the size in a PAX record.
        let mut tar = raw_tar(&[(b"PaxHeader", EntryType::XHeader, b"10 size=3\n")]);
        tar.truncate(tar.len() - 1024);
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..3].copy_from_slice(b"big");
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(b"abc");
        tar.resize(tar.len().div_ceil(512) * 512, 0);
        tar.extend(raw_tar(&[(b"next", EntryType::Regular, b"n")]));
        let mut data = Vec::new();
        let mut seen = Vec::new();
        walk(Path::new("t.tar"), TarWalker::new(&tar[..]), |m, r| {
            seen.push((m.name.clone(), m.size));
            if m.name == "big" {
                r.read_to_end(&mut data).unwrap();
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![("big".to_owned(), 3), ("next".to_owned(), 1)]);
        assert_eq!(data, b"abc");
    }

    #[test]
    fn extension_headers_over_the_cap_are_refused_before_being_read() {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(1 << 30);
        h.set_cksum();
        let err = names(h.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::TooLarge { member, size: 1_073_741_824, limit: 1_048_576, .. }
                if member == "././@LongLink (GNU long name)"),
            "{err}"
        );
        let tar = raw_tar(&[(b"PaxHeader", EntryType::XHeader, b"12 path=abc\n")]);
        let err = names(&tar).unwrap_err();
        let text = berth_spec::error_chain(&err);
        assert!(text.contains("ends after a PAX header"), "{text}");
    }
}
