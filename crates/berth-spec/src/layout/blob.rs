//! Blob reads and writes: verified on the way in and on the way out.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
use rustix::io::Errno;

use super::direct_io::{DIRECT_MIN, DirectWriter, WRITEBACK_CHUNK, start_writeback};
use super::error::{LayoutError, Result};
use super::lock::{TempFile, fsync_dir};
use super::{Layout, LayoutWriter};
use crate::digest::{self, Algorithm, Digest, Hasher, VerifyError, VerifyingReader};
use crate::io_context::IoContext;

/// Size of the copy buffer for blob streams.
const COPY_BUF: usize = 1 << 20;

pub(crate) fn kind_name(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "regular file"
    }
}

impl Layout {
    /// The path a blob has (or would have) in this layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Opens a blob as a regular file, never following a symlink (anywhere on the path below the layout root)
    /// and never blocking on a FIFO.
    pub(crate) fn open_blob_file(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        let rel = format!("blobs/{}/{}", digest.algorithm(), digest.hex());
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let file = match openat2(&*self.dir, &rel, flags, Mode::empty(), resolve) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOSYS) => {
                // Kernels before 5.6: check the directories, then refuse a symlinked final component.
                for dir in [
                    self.root.join("blobs"),
                    self.root.join("blobs").join(digest.algorithm().as_str()),
                ] {
                    if let Ok(m) = fs::symlink_metadata(&dir)
                        && !m.is_dir()
                    {
                        return Err(LayoutError::BlobNotRegular {
                            path: dir,
                            digest: digest.clone(),
                            kind: kind_name(m.file_type()),
                        });
                    }
                }
                use std::os::unix::fs::OpenOptionsExt;
                fs::OpenOptions::new()
                    .read(true)
                    .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
                    .open(&path)
                    .map_err(|e| classify_open_error(Errno::from_io_error(&e).unwrap_or(Errno::IO), &path, digest))?
            }
            Err(e) => return Err(classify_open_error(e, &path, digest)),
        };
        let meta = file.metadata().at("stat blob", &path)?;
        if !meta.is_file() {
            return Err(LayoutError::BlobNotRegular {
                path,
                digest: digest.clone(),
                kind: kind_name(meta.file_type()),
            });
        }
        Ok(file)
    }

    /// Opens a blob for reading; the reader fails unless the content matches `digest` and `size` exactly.
    pub fn open_blob(&self, digest: &Digest, size: u64) -> Result<VerifyingReader<File>> {
        let file = self.open_blob_file(digest)?;
        Ok(VerifyingReader::new(file, digest.clone(), size))
    }

    /// Opens a blob WITHOUT verifying what is read. Only for streams that are verified on the way in anyway — such
    /// as another layout's [`LayoutWriter::put_blob`](super::LayoutWriter::put_blob), which checks the digest and
    /// size before committing — so the bytes are hashed once, not twice.
    pub fn open_blob_unverified(&self, digest: &Digest) -> Result<File> {
        self.open_blob_file(digest)
    }

    /// True when the blob is present as a regular file (content not checked).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.open_blob_file(digest).is_ok()
    }

    /// Reads a whole blob of at most `max` bytes into memory, verified. The descriptor's size is checked against
    /// `max` before anything is read, and never used to allocate.
    pub fn read_blob_capped(&self, digest: &Digest, size: u64, max: u64) -> Result<Vec<u8>> {
        if size > max {
            return Err(crate::document::DocumentError::TooLarge {
                source_name: format!("{}", self.blob_path(digest).display()),
                size,
                limit: max,
            }
            .into());
        }
        let path = self.blob_path(digest);
        let mut reader = self.open_blob(digest, size)?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| verify_or_io(e, &path))?;
        Ok(out)
    }

    /// Re-hashes a blob; returns its actual size on success.
    pub fn verify_blob(&self, digest: &Digest, size: u64) -> Result<()> {
        let path = self.blob_path(digest);
        self.open_blob(digest, size)?
            .drain()
            .map_err(|e| verify_or_io(e, &path))
    }

    /// Hashes a blob without an expected size (for fsck of unreferenced blobs).
    pub(crate) fn hash_blob(&self, digest: &Digest) -> Result<(Digest, u64)> {
        let path = self.blob_path(digest);
        let mut file = self.open_blob_file(digest)?;
        hash_stream(&mut file, digest.algorithm())
            .at("read blob", &path)
            .map_err(Into::into)
    }
}

pub(crate) fn hash_stream(r: &mut impl Read, alg: Algorithm) -> io::Result<(Digest, u64)> {
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; COPY_BUF];
    let mut n_total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((h.finish(), n_total));
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
}

fn classify_open_error(e: Errno, path: &std::path::Path, digest: &Digest) -> LayoutError {
    match e {
        Errno::NOENT => LayoutError::BlobMissing {
            path: path.to_owned(),
            digest: digest.clone(),
        },
        Errno::LOOP | Errno::XDEV => LayoutError::BlobNotRegular {
            path: path.to_owned(),
            digest: digest.clone(),
            kind: "symlink",
        },
        other => LayoutError::Io(crate::io_context::PathError::new("open blob", path.to_owned(), other)),
    }
}

pub(crate) fn verify_or_io(e: io::Error, path: &std::path::Path) -> LayoutError {
    match VerifyError::from_io(&e) {
        Some(v) => LayoutError::Corrupt {
            path: path.to_owned(),
            error: v.clone(),
        },
        None => LayoutError::Io(crate::io_context::PathError::new("read blob", path.to_owned(), e)),
    }
}

/// A blob being written: hashed while written to a locked temp file inside the layout, then verified, fsynced
/// and renamed into `blobs/ALG/HEX` by [`BlobWriter::commit`]. Dropped without commit, it leaves nothing.
#[derive(Debug)]
pub struct BlobWriter<'w> {
    writer: &'w LayoutWriter,
    temp: TempFile,
    hasher: Hasher,
    written: u64,
    /// How far writeback to the disk has been started (see [`start_writeback`]).
    writeback_from: u64,
    expected: Option<(Digest, u64)>,
    /// For a large blob: writes around the page cache, on a helper thread.
    direct: Option<DirectWriter>,
}

impl<'w> BlobWriter<'w> {
    pub(crate) fn new(writer: &'w LayoutWriter, alg: Algorithm, expected: Option<(Digest, u64)>) -> Result<Self> {
        let temp = TempFile::new(&writer.layout.root, "blob")?;
        let direct = match &expected {
            Some((_, size)) if *size >= DIRECT_MIN => DirectWriter::new(&temp.file),
            _ => None,
        };
        Ok(BlobWriter {
            writer,
            temp,
            hasher: Hasher::new(alg),
            written: 0,
            writeback_from: 0,
            expected,
            direct,
        })
    }

    /// Verifies, fsyncs and renames the blob into place. An existing blob at the destination is re-verified and
    /// kept if good, replaced if corrupt. Returns the digest and size.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        let layout = &self.writer.layout;
        let found = self.hasher.clone().finish();
        if let Some((d, size)) = &self.expected {
            digest::check(d, *size, found.clone(), self.written).map_err(|error| LayoutError::Rejected {
                digest: d.clone(),
                error,
            })?;
        }
        if let Some(direct) = self.direct.take() {
            direct.finish(&self.temp.file).at("write blob", &self.temp.path)?;
        }
        self.temp.file.flush().at("write blob", &self.temp.path)?;
        self.temp.file.sync_all().at("fsync blob", &self.temp.path)?;
        let dest = layout.blob_path(&found);
        let dir = dest.parent().expect("blob path has a parent").to_owned();
        match layout.verify_blob(&found, self.written) {
            Ok(()) => return Ok((found, self.written)),
            Err(LayoutError::BlobMissing { .. } | LayoutError::Corrupt { .. }) => {}
            Err(e @ LayoutError::BlobNotRegular { kind: "directory", .. }) => return Err(e),
            Err(LayoutError::BlobNotRegular { .. }) => {
                fs::remove_file(&dest).at("remove non-regular blob", &dest)?;
            }
            Err(e) => return Err(e),
        }
        fs::create_dir_all(&dir).at("create blob directory", &dir)?;
        let written = self.written;
        self.temp.rename_to(&dest)?;
        fsync_dir(&dir)?;
        tracing::debug!(blob = %found, size = written, "blob committed");
        Ok((found, written))
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((d, size)) = &self.expected
            && self.written + buf.len() as u64 > *size
        {
            return Err(VerifyError::TooLong {
                expected_digest: d.clone(),
                expected_size: *size,
            }
            .into());
        }
        if let Some(direct) = &mut self.direct {
            direct.write_all(buf)?;
            self.hasher.update(buf);
            self.written += buf.len() as u64;
            return Ok(buf.len());
        }
        let n = self.temp.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if self.written - self.writeback_from >= WRITEBACK_CHUNK {
            start_writeback(&self.temp.file, self.writeback_from, self.written - self.writeback_from);
            self.writeback_from = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.file.flush()
    }
}

/// Copies `reader` into `w` with a large buffer.
pub(crate) fn copy_into(reader: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}
