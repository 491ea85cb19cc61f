//! The OCI image layout store: a directory holding `oci-layout`, `index.json` and `blobs/ALG/HEX`.
//!
//! Reads verify every byte against its digest. Writes go through a [`LayoutWriter`]: each blob is hashed while
//! written to a locked temp file inside the layout, checked against the expected digest and size, fsynced and
//! renamed into place; `index.json` is read, modified and atomically replaced under an exclusive lock. A crash at
//! any instant leaves a valid layout: blobs are committed before anything refers to them, and index.json is always
//! either the old or the new file.
//!
//! ```no_run
//! use berth_spec::layout::Layout;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layout = Layout::create("/tmp/my-layout")?;
//! let writer = layout.writer()?;
//! let digest = writer.put_bytes(b"hello", berth_spec::Algorithm::Sha256)?;
//! assert!(layout.has_blob(&digest));
//! # Ok(()) }
//! ```

mod blob;
mod direct_io;
mod error;
mod fsck;
mod index_file;
mod lock;

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use rustix::fs::{Mode, OFlags, open};

pub use blob::BlobWriter;
pub use error::{LayoutError, Result};
pub use fsck::{FsckReport, GcReport, Problem};
pub use lock::LockGuard;

use crate::digest::{Algorithm, Digest};
use crate::document::{self, DEFAULT_MAX_DOCUMENT_SIZE, Document, Expect, ManifestOrIndex};
use crate::io_context::IoContext;
use crate::media_type::{self, Kind};
use crate::platform::{self, Platform};

/// The annotation that names an image in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The only image layout version.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// How deep nested indexes are followed.
pub const MAX_INDEX_DEPTH: usize = 8;
/// Cap on the size of `index.json` (a store can name many images).
pub const MAX_INDEX_JSON_SIZE: u64 = 64 * 1024 * 1024;
/// Opens `name` in the layout root for reading, `None` when it does not exist. It must be a regular file: a
/// symlink is not followed and a FIFO or device is refused without blocking on it.
pub(crate) fn open_layout_file(root: &Path, name: &str) -> Result<Option<fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(name);
    // Looked at before it is opened: opening a device can have effects of its own.
    match fs::symlink_metadata(&path) {
        Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
            return Err(LayoutError::NotALayout {
                path: root.to_owned(),
                reason: format!(
                    "{name} is a {}; it must be a regular file",
                    blob::kind_name(m.file_type())
                ),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(LayoutError::NotALayout {
                path: root.to_owned(),
                reason: format!("{name} is a symbolic link; it must be a regular file"),
            });
        }
        Err(e) => return Err(e).at("open", &path).map_err(Into::into),
    };
    let meta = file.metadata().at("stat", &path)?;
    if !meta.is_file() {
        return Err(LayoutError::NotALayout {
            path: root.to_owned(),
            reason: format!(
                "{name} is a {}; it must be a regular file",
                blob::kind_name(meta.file_type())
            ),
        });
    }
    Ok(Some(file))
}

/// Age after which an unlocked temp file is surely a dead writer's (see [`lock::clean_old_temp`]).
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Cap on the size of `oci-layout`.
const MAX_OCI_LAYOUT_SIZE: u64 = 64 * 1024;

/// An open OCI image layout.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    dir: Arc<OwnedFd>,
}

/// A resolved image: its manifest, config and (if it came through one) the index that led to it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The top-level index, when the reference named an index.
    pub index: Option<Document<ImageIndex>>,
    /// The descriptor of the manifest.
    pub manifest_descriptor: Descriptor,
    /// The manifest.
    pub manifest: Document<ImageManifest>,
    /// The config.
    pub config: Document<ImageConfiguration>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayoutFile {
    image_layout_version: String,
}

impl Layout {
    /// Opens an existing layout, validating `oci-layout` and `index.json`.
    pub fn open(path: impl AsRef<Path>) -> Result<Layout> {
        let root = path.as_ref().to_owned();
        let dir = match open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                return Err(LayoutError::NotALayout {
                    path: root,
                    reason: "the directory does not exist".into(),
                });
            }
            Err(rustix::io::Errno::NOTDIR) => {
                return Err(LayoutError::NotALayout {
                    path: root,
                    reason: "it is not a directory".into(),
                });
            }
            Err(e) => return Err(e).at("open layout directory", &root).map_err(Into::into),
        };
        let layout = Layout {
            root,
            dir: Arc::new(dir),
        };
        layout.check_oci_layout()?;
        layout.index()?;
        Ok(layout)
    }

    /// Opens the layout at `path`, creating it when the directory is absent or empty.
    pub fn create(path: impl AsRef<Path>) -> Result<Layout> {
        let root = path.as_ref();
        let marker = root.join("oci-layout");
        if !marker.exists() {
            if let Ok(m) = fs::metadata(root)
                && !m.is_dir()
            {
                return Err(LayoutError::NotALayout {
                    path: root.to_owned(),
                    reason: format!("it is a {}, not a directory", blob::kind_name(m.file_type())),
                });
            }
            fs::create_dir_all(root).at("create layout directory", root)?;
            let stray = fs::read_dir(root)
                .at("read layout directory", root)?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name() != ".berth" && e.file_name() != "blobs" && e.file_name() != "index.json");
            if stray {
                return Err(LayoutError::NotALayout {
                    path: root.to_owned(),
                    reason: "the directory is not empty and has no oci-layout file; choose an empty directory".into(),
                });
            }
            lock::ensure_private_dirs(root)?;
            let blobs = root.join("blobs").join("sha256");
            fs::create_dir_all(&blobs).at("create directory", &blobs)?;
            let _guard = lock::lock(&root.join(".berth/index.lock"), true)?;
            if !root.join("index.json").exists() {
                let empty =
                    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
                index_file::write_atomically(root, "index.json", empty)?;
            }
            if !marker.exists() {
                let body = format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#);
                index_file::write_atomically(root, "oci-layout", body.as_bytes())?;
            }
        }
        Layout::open(root)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn check_oci_layout(&self) -> Result<()> {
        let path = self.root.join("oci-layout");
        let bytes = match open_layout_file(&self.root, "oci-layout")? {
            Some(f) => {
                let mut buf = Vec::new();
                f.take(MAX_OCI_LAYOUT_SIZE + 1)
                    .read_to_end(&mut buf)
                    .at("read", &path)?;
                buf
            }
            None => {
                return Err(LayoutError::NotALayout {
                    path: self.root.clone(),
                    reason: "the oci-layout file is missing".into(),
                });
            }
        };
        let parsed: OciLayoutFile = serde_json::from_slice(&bytes).map_err(|e| LayoutError::NotALayout {
            path: self.root.clone(),
            reason: format!("oci-layout is malformed ({e}); it must be {{\"imageLayoutVersion\":\"1.0.0\"}}"),
        })?;
        if parsed.image_layout_version != LAYOUT_VERSION {
            return Err(LayoutError::UnsupportedVersion {
                path: self.root.clone(),
                version: parsed.image_layout_version,
            });
        }
        Ok(())
    }

    /// Reads and validates `index.json`.
    pub fn index(&self) -> Result<Document<ImageIndex>> {
        index_file::read(&self.root)
    }

    /// Every `(ref name, descriptor)` in index.json, in file order (entries without a name are skipped).
    pub fn refs(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self
            .index()?
            .parsed()
            .manifests()
            .iter()
            .filter_map(|d| ref_name_of(d).map(|n| (n.to_owned(), d.clone())))
            .collect())
    }

    /// Finds the entry named `name`, or — with no name — the only entry.
    pub fn resolve(&self, name: Option<&str>) -> Result<Descriptor> {
        let index = self.index()?;
        let entries = index.parsed().manifests();
        let Some(name) = name else {
            return match entries.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(LayoutError::RefRequired {
                    layout: self.root.clone(),
                    count: entries.len(),
                }),
            };
        };
        let found: Vec<&Descriptor> = entries.iter().filter(|d| ref_name_of(d) == Some(name)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => {
                let names: Vec<&str> = entries.iter().filter_map(ref_name_of).collect();
                Err(LayoutError::RefNotFound {
                    layout: self.root.clone(),
                    name: name.to_owned(),
                    available: if names.is_empty() {
                        "no named images".into()
                    } else {
                        names.join(", ")
                    },
                })
            }
            many => Err(LayoutError::AmbiguousRef {
                layout: self.root.clone(),
                name: name.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// Finds `REPO:TAG@DIGEST` (the entry named `REPO:TAG`, which must be DIGEST) or `REPO@DIGEST` (an entry
    /// named `REPO:anything` that is DIGEST), as in a store where images are named `REPO:TAG`. The name must
    /// match as well as the digest: another image's digest under this name is an error.
    pub fn resolve_named_digest(&self, repository: &str, tag: Option<&str>, digest: &Digest) -> Result<Descriptor> {
        let wanted = match tag {
            Some(tag) => format!("{repository}:{tag}@{digest}"),
            None => format!("{repository}@{digest}"),
        };
        if let Some(tag) = tag {
            let found = self.resolve(Some(&format!("{repository}:{tag}")))?;
            if Digest::from_oci(found.digest()).ok().as_ref() == Some(digest) {
                return Ok(found);
            }
            return Err(LayoutError::RefNotFound {
                layout: self.root.clone(),
                name: wanted,
                available: format!("{repository}:{tag} is {}", found.digest()),
            });
        }
        let index = self.index()?;
        let prefix = format!("{repository}:");
        let of_repo: Vec<&Descriptor> = index
            .parsed()
            .manifests()
            .iter()
            .filter(|d| ref_name_of(d).is_some_and(|n| n.strip_prefix(&prefix).is_some_and(|t| !t.contains('/'))))
            .collect();
        if let Some(found) = of_repo
            .iter()
            .find(|d| Digest::from_oci(d.digest()).ok().as_ref() == Some(digest))
        {
            return Ok((*found).clone());
        }
        // One platform's manifest of an index stored under the name (copied with --all).
        for entry in of_repo.iter().filter(|d| media_type::is_index(d.media_type().as_ref())) {
            let Ok(index_digest) = Digest::from_oci(entry.digest()) else {
                continue;
            };
            let bytes = self.read_blob_capped(&index_digest, entry.size(), DEFAULT_MAX_DOCUMENT_SIZE)?;
            let source = index_digest.to_string();
            let child =
                document::parse_index(bytes, Expect::from_source(&source).with_descriptor(&index_digest, None))?
                    .parsed()
                    .manifests()
                    .iter()
                    .find(|d| Digest::from_oci(d.digest()).ok().as_ref() == Some(digest))
                    .cloned();
            if let Some(child) = child {
                return Ok(child);
            }
        }
        Err(LayoutError::RefNotFound {
            layout: self.root.clone(),
            name: wanted,
            available: if of_repo.is_empty() {
                format!("no image named {repository}")
            } else {
                of_repo
                    .iter()
                    .map(|d| format!("{} ({})", ref_name_of(d).unwrap_or_default(), d.digest()))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }

    /// Finds a manifest or index by digest: an index.json entry, else a blob that parses as one.
    pub fn resolve_digest(&self, digest: &Digest) -> Result<Descriptor> {
        let index = self.index()?;
        if let Some(d) = index
            .parsed()
            .manifests()
            .iter()
            .find(|d| Digest::from_oci(d.digest()).ok().as_ref() == Some(digest))
        {
            return Ok(d.clone());
        }
        let (found, size) = self.hash_blob(digest)?;
        if &found != digest {
            return Err(LayoutError::Corrupt {
                path: self.blob_path(digest),
                error: crate::digest::VerifyError::DigestMismatch {
                    expected: digest.clone(),
                    found,
                },
            });
        }
        let bytes = self.read_blob_capped(digest, size, DEFAULT_MAX_DOCUMENT_SIZE)?;
        let source = digest.to_string();
        let doc = document::parse_manifest_or_index(bytes, Expect::from_source(&source).with_descriptor(digest, None))?;
        Ok(Descriptor::new(doc.media_type().into(), size, digest.to_oci()))
    }

    /// Reads a manifest or index, verified, refusing documents over the default cap.
    pub fn read_manifest_or_index(&self, desc: &Descriptor) -> Result<ManifestOrIndex> {
        let digest = self.descriptor_digest(desc)?;
        let bytes = self.read_blob_capped(&digest, desc.size(), DEFAULT_MAX_DOCUMENT_SIZE)?;
        let source = format!("{}: {}", self.root.display(), digest);
        let mt = desc.media_type().to_string();
        Ok(document::parse_manifest_or_index(
            bytes,
            Expect::from_source(&source).with_descriptor(&digest, Some(&mt)),
        )?)
    }

    /// Reads an image config, verified.
    pub fn read_config(&self, desc: &Descriptor) -> Result<Document<ImageConfiguration>> {
        let digest = self.descriptor_digest(desc)?;
        let source = format!("{}: config {}", self.root.display(), digest);
        let mt = desc.media_type().to_string();
        if media_type::kind_of(&mt) != Some(Kind::Config) {
            return Err(document::DocumentError::Unsupported {
                source_name: source,
                media_type: mt,
                hint: ": this is not a container image (its config is not an image config)",
            }
            .into());
        }
        let bytes = self.read_blob_capped(&digest, desc.size(), DEFAULT_MAX_DOCUMENT_SIZE)?;
        Ok(document::parse_config(
            bytes,
            Expect::from_source(&source).with_descriptor(&digest, Some(&mt)),
        )?)
    }

    /// Resolves a name (or the only image) to one image for `platform`, following indexes.
    pub fn load_image(&self, name: Option<&str>, platform: &Platform) -> Result<Image> {
        self.load_image_from(self.resolve(name)?, platform)
    }

    /// Loads the image a descriptor points at, choosing `platform` from indexes.
    pub fn load_image_from(&self, mut desc: Descriptor, platform: &Platform) -> Result<Image> {
        let mut top_index = None;
        for _ in 0..=MAX_INDEX_DEPTH {
            match self.read_manifest_or_index(&desc)? {
                ManifestOrIndex::Index(idx) => {
                    let source = format!("{}: {}", self.root.display(), idx.digest());
                    desc = platform::select(idx.parsed(), platform, &source)?.clone();
                    top_index.get_or_insert(idx);
                }
                ManifestOrIndex::Manifest(manifest) => {
                    let config = self.read_config(manifest.parsed().config())?;
                    let source = format!("{}: {}", self.root.display(), manifest.digest());
                    document::check_diff_id_count(manifest.parsed(), config.parsed(), &source)?;
                    return Ok(Image {
                        index: top_index,
                        manifest_descriptor: desc,
                        manifest,
                        config,
                    });
                }
            }
        }
        Err(LayoutError::TooDeep {
            layout: self.root.clone(),
            digest: self.descriptor_digest(&desc)?,
            limit: MAX_INDEX_DEPTH,
        })
    }

    pub(crate) fn descriptor_digest(&self, desc: &Descriptor) -> Result<Digest> {
        Digest::from_oci(desc.digest()).map_err(|error| LayoutError::BadDigest {
            path: self.root.join("index.json"),
            error,
        })
    }

    /// Decompresses every layer of `image` and checks it against the config's diff_ids (and the blob against its
    /// digest). Layers whose media type Berth does not know are refused.
    pub fn verify_diff_ids(&self, image: &Image) -> Result<()> {
        let source = format!("{}: {}", self.root.display(), image.manifest.digest());
        document::check_diff_id_count(image.manifest.parsed(), image.config.parsed(), &source)?;
        let pairs = image
            .manifest
            .parsed()
            .layers()
            .iter()
            .zip(image.config.parsed().rootfs().diff_ids());
        for (layer, diff_id) in pairs {
            let digest = self.descriptor_digest(layer)?;
            let mt = layer.media_type().to_string();
            let Some(compression) = media_type::layer_compression(&mt) else {
                return Err(document::DocumentError::Unsupported {
                    source_name: format!("{source}: layer {digest}"),
                    media_type: mt,
                    hint: ": not a layer media type Berth can unpack",
                }
                .into());
            };
            let expected = Digest::parse(diff_id).map_err(|error| document::DocumentError::BadDigest {
                source_name: source.clone(),
                error,
            })?;
            let path = self.blob_path(&digest);
            let reader = self.open_blob(&digest, layer.size())?;
            crate::diff_id::verify(reader, compression, &digest, &expected).map_err(|e| match e {
                crate::diff_id::DiffIdError::Io { source, .. } => blob::verify_or_io(source, &path),
                other => LayoutError::DiffId(other),
            })?;
        }
        Ok(())
    }

    /// Starts writing: takes the shared ingest lock that keeps gc away until the writer is dropped.
    pub fn writer(&self) -> Result<LayoutWriter> {
        lock::ensure_private_dirs(&self.root)?;
        let guard = lock::lock(&self.root.join(".berth/gc.lock"), false)?;
        // What an interrupted writer left behind goes now rather than at the next gc (best effort).
        if let Err(e) = lock::clean_old_temp(&self.root, STALE_TEMP_AGE) {
            tracing::debug!(error = %e, "could not sweep stale temp files");
        }
        Ok(LayoutWriter {
            layout: self.clone(),
            _ingest: guard,
        })
    }

    /// Removes every index.json entry named `name`; returns how many were removed (blobs stay until `gc`).
    pub fn delete_ref(&self, name: &str) -> Result<usize> {
        lock::ensure_private_dirs(&self.root)?;
        let mut removed = 0;
        index_file::update(&self.root, |entries| {
            let before = entries.len();
            entries.retain(|e| index_file::value_ref_name(e) != Some(name));
            removed = before - entries.len();
            Ok(())
        })?;
        if removed == 0 {
            return Err(LayoutError::RefNotFound {
                layout: self.root.clone(),
                name: name.to_owned(),
                available: self.refs()?.into_iter().map(|(n, _)| n).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(removed)
    }

    /// Removes temp files left by writers that died; returns how many.
    pub fn clean_temp(&self) -> Result<usize> {
        lock::clean_temp(&self.root)
    }
}

/// The ref name annotation of a descriptor.
pub fn ref_name_of(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME_ANNOTATION).map(String::as_str)
}

/// Writes blobs and names into a layout. Holds the shared ingest lock, so gc waits until it is dropped.
#[derive(Debug)]
pub struct LayoutWriter {
    layout: Layout,
    _ingest: LockGuard,
}

impl LayoutWriter {
    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A writer for a blob whose digest is computed as it is written.
    pub fn blob_writer(&self, alg: Algorithm) -> Result<BlobWriter<'_>> {
        BlobWriter::new(self, alg, None)
    }

    /// A writer for a blob that must hash to `digest` and be exactly `size` bytes.
    pub fn blob_writer_expecting(&self, digest: &Digest, size: u64) -> Result<BlobWriter<'_>> {
        BlobWriter::new(self, digest.algorithm(), Some((digest.clone(), size)))
    }

    /// Stores a blob from a stream, verified against `digest` and `size`. A present, intact blob is kept and the
    /// stream left unread.
    pub fn put_blob(&self, reader: &mut impl Read, digest: &Digest, size: u64) -> Result<()> {
        if self.layout.verify_blob(digest, size).is_ok() {
            return Ok(());
        }
        let mut w = self.blob_writer_expecting(digest, size)?;
        blob::copy_into(reader, &mut w).map_err(|e| match crate::digest::VerifyError::from_io(&e) {
            Some(v) => LayoutError::Rejected {
                digest: digest.clone(),
                error: v.clone(),
            },
            None => LayoutError::Io(crate::io_context::PathError::new(
                "write blob",
                self.layout.blob_path(digest),
                e,
            )),
        })?;
        w.commit().map(|_| ())
    }

    /// Stores a blob of another layout by hard link instead of copying its bytes, after verifying it. Meant for
    /// staging layouts (an archive being assembled); returns `Ok(false)` when the two layouts are on different file
    /// systems, and the caller copies instead.
    pub fn link_blob_from(&self, from: &Layout, digest: &Digest, size: u64) -> Result<bool> {
        if self.layout.verify_blob(digest, size).is_ok() {
            return Ok(true);
        }
        from.verify_blob(digest, size)?;
        self.link_blob(from, digest)
    }

    /// [`Self::link_blob_from`] for a blob this process has just written into `from` (hashed on its way in):
    /// neither copy is read again. A blob already in this layout is kept.
    pub fn link_fresh_blob_from(&self, from: &Layout, digest: &Digest) -> Result<bool> {
        if self.layout.has_blob(digest) {
            return Ok(true);
        }
        self.link_blob(from, digest)
    }

    fn link_blob(&self, from: &Layout, digest: &Digest) -> Result<bool> {
        let src = from.blob_path(digest);
        let tmp = lock::TempFile::new(&self.layout.root, "link")?;
        let staged = tmp.path.with_extension("link");
        match fs::hard_link(&src, &staged) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => return Ok(false),
            Err(e) => return Err(e).at("hard-link blob", &src).map_err(Into::into),
        }
        drop(tmp);
        let dest = self.layout.blob_path(digest);
        let dir = dest.parent().expect("blob path has a parent").to_owned();
        fs::create_dir_all(&dir).at("create blob directory", &dir)?;
        if let Err(e) = fs::rename(&staged, &dest) {
            let _ = fs::remove_file(&staged);
            return Err(e).at("rename into place", &dest).map_err(Into::into);
        }
        lock::fsync_dir(&dir)?;
        Ok(true)
    }

    /// Stores bytes as a blob; returns their digest.
    pub fn put_bytes(&self, bytes: &[u8], alg: Algorithm) -> Result<Digest> {
        let digest = Digest::of_bytes(alg, bytes);
        self.put_blob(&mut &bytes[..], &digest, bytes.len() as u64)?;
        Ok(digest)
    }

    /// Stores a document's exact bytes; returns its descriptor.
    pub fn put_document<T>(&self, doc: &Document<T>) -> Result<Descriptor> {
        self.put_blob(&mut doc.bytes(), doc.digest(), doc.size())?;
        Ok(doc.descriptor())
    }

    /// Names `desc` `name` in index.json, replacing any entry of that name. The blobs it references must already
    /// be stored. The name must follow image-spec's ref grammar.
    pub fn set_ref(&self, name: &str, desc: &Descriptor) -> Result<()> {
        if !index_file::valid_ref_name(name) {
            return Err(LayoutError::InvalidRefName { name: name.to_owned() });
        }
        self.layout.descriptor_digest(desc)?;
        let entry = index_file::entry_with_name(desc, Some(name));
        index_file::update(&self.layout.root, |entries| {
            entries.retain(|e| index_file::value_ref_name(e) != Some(name));
            entries.push(entry);
            Ok(())
        })
    }

    /// Adds an unnamed entry to index.json (unless an identical one is there).
    pub fn add_entry(&self, desc: &Descriptor) -> Result<()> {
        self.layout.descriptor_digest(desc)?;
        let entry = index_file::entry_with_name(desc, None);
        index_file::update(&self.layout.root, |entries| {
            if !entries.contains(&entry) {
                entries.push(entry);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
