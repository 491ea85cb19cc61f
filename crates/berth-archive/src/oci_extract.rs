//! Reading an oci-archive: a tar (plain, gzip or zstd) of an OCI image layout, extracted member by member into a
//! staging directory next to the destination and renamed into place once the layout inside validates.
//!
//! Only the members of a layout are written: `oci-layout`, `index.json`, and `blobs/ALG/HEX` whose name is a
//! digest (each blob is hashed while written and must match its name). Links, devices and unsafe names are refused
//! with an error naming the member; other regular files and directories are skipped. Every path written is built
//! from validated parts inside a fresh directory, and files are created exclusively, so nothing lands outside the
//! destination.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_layer::tar_walk::TarWalker;
use berth_spec::layout::{Layout, MAX_INDEX_JSON_SIZE};
use berth_spec::{Algorithm, Digest, Hasher};

use berth_spec::io_context::IoContext;

use crate::error::{ArchiveError, LayoutContext, Result};
use crate::member::{self, Member, MemberKind};

/// Cap on the size of `oci-layout`.
const MAX_OCI_LAYOUT: u64 = 64 * 1024;

/// What a member of an oci-archive is to Berth.
enum Role {
    /// A file of the layout, with its size cap and, for blobs, the digest its content must have.
    File { cap: u64, digest: Option<Digest> },
    /// A directory of the layout (`blobs`, `blobs/ALG`).
    Dir,
    /// Not part of a layout: skipped.
    Foreign,
}

/// The digest algorithm a `blobs/ALG` directory is named after.
pub(crate) fn algorithm(name: &str) -> Option<Algorithm> {
    [Algorithm::Sha256, Algorithm::Sha512]
        .into_iter()
        .find(|a| a.as_str() == name)
}

fn role(archive: &Path, m: &Member) -> Result<Role> {
    let bad = |reason: String| ArchiveError::BadMember {
        archive: archive.to_owned(),
        member: m.raw_name.clone(),
        reason,
    };
    if !matches!(m.kind, MemberKind::File | MemberKind::Dir) {
        return Err(bad(format!(
            "it is a {}; an oci-archive holds only regular files and directories",
            m.kind.describe()
        )));
    }
    let parts: Vec<&str> = m.name.split('/').collect();
    let want = match parts.as_slice() {
        [""] => return Ok(Role::Foreign),
        ["oci-layout"] => Role::File {
            cap: MAX_OCI_LAYOUT,
            digest: None,
        },
        ["index.json"] => Role::File {
            cap: MAX_INDEX_JSON_SIZE,
            digest: None,
        },
        ["blobs"] => Role::Dir,
        ["blobs", alg] if algorithm(alg).is_some() => Role::Dir,
        ["blobs", alg, hex] if algorithm(alg).is_some() => {
            let digest = Digest::parse(&format!("{alg}:{hex}"))
                .map_err(|e| bad(format!("a blob's name must be its digest: {e}")))?;
            Role::File {
                cap: u64::MAX,
                digest: Some(digest),
            }
        }
        ["blobs", ..] => {
            return Err(bad(
                "blobs/ may hold only ALGORITHM/HEX (sha256 or sha512) in an OCI layout".into(),
            ));
        }
        _ => return Ok(Role::Foreign),
    };
    let is_dir = matches!(want, Role::Dir);
    if is_dir != (m.kind == MemberKind::Dir) {
        return Err(bad(format!(
            "it is a {} where an OCI layout has a {}",
            m.kind.describe(),
            if is_dir { "directory" } else { "regular file" }
        )));
    }
    Ok(want)
}

/// Writes one member's data to `dest` (created exclusively), hashing it when it is a blob.
fn write_member(archive: &Path, dest: &Path, m: &Member, data: &mut dyn Read, digest: Option<&Digest>) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .at("create extracted file", dest)?;
    let mut hasher = digest.map(|d| Hasher::new(d.algorithm()));
    let mut buf = vec![0u8; 1 << 20];
    let mut data = data.take(m.size);
    let mut total = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ArchiveError::Tar {
                    archive: archive.to_owned(),
                    source,
                });
            }
        };
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        file.write_all(&buf[..n]).at("write extracted file", dest)?;
        total += n as u64;
    }
    if total != m.size {
        return Err(ArchiveError::Tar {
            archive: archive.to_owned(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("member {:?} is truncated", m.raw_name),
            ),
        });
    }
    if let (Some(h), Some(expected)) = (hasher, digest) {
        let found = h.finish();
        if &found != expected {
            return Err(ArchiveError::DigestMismatch {
                archive: archive.to_owned(),
                member: m.raw_name.clone(),
                expected: expected.clone(),
                found,
            });
        }
    }
    file.sync_all().at("fsync extracted file", dest).map_err(Into::into)
}

fn check_destination(into: &Path) -> Result<()> {
    match fs::symlink_metadata(into) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at("inspect destination", into).map_err(Into::into),
        Ok(meta) if meta.is_dir() && fs::read_dir(into).at("read destination", into)?.next().is_none() => Ok(()),
        Ok(_) => Err(ArchiveError::DestinationExists { path: into.to_owned() }),
    }
}

/// Extracts the OCI image layout in `archive` (an oci-archive: plain, gzip or zstd tar) into `into`, which must not
/// exist or be an empty directory, and opens it.
///
/// Nothing appears at `into` unless the whole archive extracted and its `oci-layout` and `index.json` validate and
/// every image index.json names is present; blob names are digests and each blob's content matches its name.
/// Several images in one archive are several entries of its index.json: pick one with [`Layout::resolve`] (the
/// `REF` of `oci-archive:PATH:REF` is a ref name) or list them with [`Layout::refs`].
pub fn extract_oci_archive(archive: &Path, into: &Path) -> Result<Layout> {
    check_destination(into)?;
    let parent = match into.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).at("create directory", parent)?;
    let base = into.file_name().map_or("layout".into(), |n| n.to_string_lossy());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{base}."))
        .suffix(".extracting")
        .tempdir_in(parent)
        .at("create staging directory", parent)?;
    let (reader, compression) = member::open_decompressed(archive)?;
    tracing::debug!(archive = %archive.display(), %compression, "extracting oci-archive");
    let mut skipped = 0usize;
    member::walk(archive, TarWalker::new(reader), |m, data| match role(archive, m)? {
        Role::Foreign => {
            skipped += 1;
            tracing::debug!(member = %m.raw_name, "skipping a member that is not part of an OCI layout");
            Ok(())
        }
        Role::Dir => {
            let dest = staging.path().join(&m.name);
            fs::create_dir_all(&dest)
                .at("create directory", &dest)
                .map_err(Into::into)
        }
        Role::File { cap, digest } => {
            if m.size > cap {
                return Err(ArchiveError::TooLarge {
                    archive: archive.to_owned(),
                    member: m.raw_name.clone(),
                    size: m.size,
                    limit: cap,
                });
            }
            let dest = staging.path().join(&m.name);
            if let Some(dir) = dest.parent() {
                fs::create_dir_all(dir).at("create directory", dir)?;
            }
            write_member(archive, &dest, m, data, digest.as_ref())
        }
    })?;
    if skipped > 0 {
        tracing::info!(archive = %archive.display(), skipped, "skipped members that are not part of the OCI layout");
    }
    check_layout(archive, staging.path())?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755)).at("set permissions", staging.path())?;
    File::open(staging.path())
        .and_then(|d| d.sync_all())
        .at("fsync directory", staging.path())?;
    fs::rename(staging.path(), into).at("move the extracted layout into place", into)?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .at("fsync directory", parent)?;
    Layout::open(into).in_archive(archive)
}

/// Opens the extracted layout (validating `oci-layout` and `index.json`) and checks that every entry of
/// index.json is present.
fn check_layout(archive: &Path, dir: &Path) -> Result<()> {
    let layout = Layout::open(dir).in_archive(archive)?;
    for desc in layout.index().in_archive(archive)?.parsed().manifests() {
        let digest = Digest::from_oci(desc.digest()).map_err(|e| ArchiveError::BadMember {
            archive: archive.to_owned(),
            member: "index.json".into(),
            reason: e.to_string(),
        })?;
        if !layout.has_blob(&digest) {
            return Err(ArchiveError::MissingMember {
                archive: archive.to_owned(),
                member: format!("blobs/{}/{}", digest.algorithm(), digest.hex()),
                referenced_by: "index.json".into(),
            });
        }
    }
    Ok(())
}
