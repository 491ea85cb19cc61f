//! Writing an oci-archive: a deterministic tar of an OCI image layout.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use berth_spec::layout::{LAYOUT_VERSION, Layout};
use berth_spec::{Digest, VerifyError};

use berth_spec::io_context::IoContext;

use crate::error::{ArchiveError, LayoutContext, Result};
use crate::oci_extract::algorithm;
use crate::tar_out::TarOut;

/// One member to write, sorted by name.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Dir(String),
    Blob(String, Digest, u64),
}

impl Item {
    fn name(&self) -> &str {
        match self {
            Item::Dir(n) | Item::Blob(n, ..) => n,
        }
    }
}

/// Lists `blobs/ALG/HEX` of the layout. Files whose names are not digests are left out (fsck reports them);
/// symlinks and special files are refused, since following them could put files from outside the layout into
/// the archive.
fn list_blobs(layout_dir: &Path, out: &Path) -> Result<Vec<Item>> {
    let blobs = layout_dir.join("blobs");
    let mut items = vec![Item::Dir("blobs".into())];
    let refuse = |name: String, what: &str| ArchiveError::BadMember {
        archive: out.to_owned(),
        member: name,
        reason: format!(
            "the layout has a {what} here; refusing to follow it out of the layout: run fsck on {}",
            layout_dir.display()
        ),
    };
    for alg in fs::read_dir(&blobs).at("read directory", &blobs)? {
        let alg = alg.at("read directory", &blobs)?;
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        if algorithm(&alg_name).is_none() {
            tracing::warn!(layout = %layout_dir.display(), dir = alg_name, "leaving out blobs of an unknown algorithm");
            continue;
        }
        let ft = alg.file_type().at("stat", alg.path())?;
        if !ft.is_dir() {
            return Err(refuse(format!("blobs/{alg_name}"), "non-directory"));
        }
        items.push(Item::Dir(format!("blobs/{alg_name}")));
        for f in fs::read_dir(alg.path()).at("read directory", alg.path())? {
            let f = f.at("read directory", alg.path())?;
            let name = format!("blobs/{alg_name}/{}", f.file_name().to_string_lossy());
            let Ok(digest) = Digest::parse(&format!("{alg_name}:{}", f.file_name().to_string_lossy())) else {
                tracing::warn!(layout = %layout_dir.display(), file = name, "leaving out a file whose name is not a digest");
                continue;
            };
            let meta = f.metadata().at("stat", f.path())?;
            if !meta.file_type().is_file() {
                return Err(refuse(name, "symlink or special file"));
            }
            items.push(Item::Blob(name, digest, meta.len()));
        }
    }
    Ok(items)
}

/// Writes the layout at `layout_dir` as an oci-archive at `out`.
///
/// The tar is deterministic (members sorted by name, mtime 0, uid/gid 0, mode 0644 files / 0755 directories) and
/// holds `oci-layout`, `index.json` and every `blobs/ALG/HEX` — never Berth's private `.berth/` directory nor
/// files whose names are not digests. Each blob is re-hashed while copied and must match its name. The archive is
/// written to a temp file next to `out`, fsynced and renamed, so `out` is either the old file or the complete new
/// archive. Several images are several named entries of index.json; all of them go into the archive.
pub fn write_oci_archive(layout_dir: &Path, out: &Path) -> Result<()> {
    let layout = Layout::open(layout_dir).in_archive(out)?;
    // index.json first: blobs are committed before anything names them, so every blob this snapshot names is
    // listed below.
    let index = layout.index().in_archive(out)?;
    for desc in index.parsed().manifests() {
        let digest = Digest::from_oci(desc.digest()).map_err(|e| ArchiveError::BadMember {
            archive: out.to_owned(),
            member: "index.json".into(),
            reason: e.to_string(),
        })?;
        if !layout.has_blob(&digest) {
            return Err(ArchiveError::MissingMember {
                archive: layout_dir.to_owned(),
                member: format!("blobs/{}/{}", digest.algorithm(), digest.hex()),
                referenced_by: "index.json".into(),
            });
        }
    }
    let mut items = list_blobs(layout_dir, out)?;
    items.sort();
    let mut tar = TarOut::create(out)?;
    for item in &items {
        match item {
            Item::Dir(name) => tar.dir(name)?,
            Item::Blob(name, digest, size) => copy_blob(&layout, &mut tar, name, digest, *size)?,
        }
    }
    debug_assert!(items.iter().all(|i| i.name() < "index.json"));
    tar.file_bytes("index.json", index.bytes())?;
    let oci_layout = format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#);
    tar.file_bytes("oci-layout", oci_layout.as_bytes())?;
    tar.finish()
}

fn copy_blob(layout: &Layout, tar: &mut TarOut, name: &str, digest: &Digest, size: u64) -> Result<()> {
    let mut reader = layout.open_blob(digest, size).in_archive(tar.target())?;
    let member = tar.begin_file(name, Some(size))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(match VerifyError::from_io(&e) {
                    Some(VerifyError::DigestMismatch { expected, found }) => ArchiveError::DigestMismatch {
                        archive: layout.root().to_owned(),
                        member: name.to_owned(),
                        expected: expected.clone(),
                        found: found.clone(),
                    },
                    _ => ArchiveError::Io(berth_spec::io_context::PathError::new(
                        "read blob",
                        layout.blob_path(digest),
                        e,
                    )),
                });
            }
        };
        tar.write_all(&buf[..n]).at("write archive", tar.target())?;
    }
    tar.end_file(member)
}
