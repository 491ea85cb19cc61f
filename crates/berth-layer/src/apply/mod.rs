//! Applying a layer to a root filesystem.
//!
//! The stream (plain tar, gzip or zstd — sniffed, and checked against what the media type says) is decompressed, hashed
//! as it is read so its diffID can be checked, and unpacked entry by entry with every path resolved inside the root
//! (see the private `fsops` module). Entries are read with [`crate::tar_walk`], which holds at most 1 MiB of any
//! extension header: time is linear in the layer's size, and memory bounded but for the list of paths the layer creates
//! (kept so whiteouts spare them). OCI whiteouts are applied (the default) or written in overlayfs form
//! ([`WhiteoutMode::Overlay`]) so layers extracted side by side can be stacked with overlayfs.
//!
//! ```no_run
//! use berth_layer::apply::{apply_layer, ApplyOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = std::fs::File::open("layer.tar.gz")?;
//! let report = apply_layer(layer, std::path::Path::new("rootfs"), &ApplyOptions::default())?;
//! println!("{} entries, diffID {}", report.entries, report.diff_id);
//! # Ok(()) }
//! ```

mod cache;
mod entry;
pub(crate) mod fsops;
pub mod overlay_cache;

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_spec::media_type::Compression;
use berth_spec::{Algorithm, Digest, Hasher};
use rustix::fs::{Mode, OFlags};

pub use cache::{LayerCache, sync_tree};
use fsops::InRoot;
pub use fsops::remove_dir_all_forcing;
pub use overlay_cache::{CacheError, CacheHold, ExtractProgress, LayerRef, OverlayCache};

use crate::tar_walk::{TarWalker, WalkError};

/// How whiteouts are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Apply them: delete what they name from the root (the root holds the layers below).
    #[default]
    Oci,
    /// Write them as overlayfs expects (0:0 character devices; opaque directories get `trusted.overlay.opaque=y`,
    /// or `user.overlay.opaque=y` when `user_xattr` is set), into an otherwise empty directory.
    Overlay {
        /// Use the `user.overlay.*` namespace (unprivileged overlay mounts with `userxattr`).
        user_xattr: bool,
    },
}

/// A uid/gid range mapping from container ids to host ids (as in `/etc/subuid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id in the container.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// Number of ids.
    pub size: u32,
}

/// Options for [`apply_layer`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Whiteout handling.
    pub whiteouts: WhiteoutMode,
    /// What the media type says the compression is (checked against the bytes); `None` accepts any.
    pub compression: Option<Compression>,
    /// The diffID the uncompressed stream must have.
    pub diff_id: Option<Digest>,
    /// uid mappings for rootless extraction; empty means ids are kept as they are.
    pub uid_map: Vec<IdRange>,
    /// gid mappings for rootless extraction.
    pub gid_map: Vec<IdRange>,
    /// The largest real size a GNU sparse entry may claim (default 64 GiB).
    pub max_sparse_size: Option<u64>,
}

/// What [`apply_layer`] did.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Tar entries processed.
    pub entries: u64,
    /// sha256 of the whole uncompressed stream, trailing data included.
    pub diff_id: Digest,
    /// Size of the uncompressed stream.
    pub uncompressed_size: u64,
    /// Device nodes and FIFOs skipped because creating them was not permitted.
    pub skipped_devices: u64,
    /// Ownership changes skipped because they were not permitted.
    pub skipped_chown: u64,
    /// Extended attributes not set because the file system or the kernel refused them (not supported there, or
    /// not permitted: `trusted.*` and `security.*` need privileges, `user.*` is refused on device nodes, FIFOs and
    /// symlinks). They are skipped rather than failing the layer, so rootless extraction works; this count (and a
    /// warning) says that the tree lacks them.
    pub skipped_xattrs: u64,
}

/// Why a layer could not be applied. Every variant names the tar entry involved where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An I/O error on an entry.
    #[error("{entry}: {action}")]
    Io {
        /// The entry name (or the root path).
        entry: String,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The file system holding the root is full (`ENOSPC`) or the user's quota is exhausted (`EDQUOT`).
    #[error("{entry}: {action}: the disk is full; free space where the layer is extracted and retry")]
    NoSpace {
        /// The entry being written.
        entry: String,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The tar stream is malformed or truncated.
    #[error("malformed or truncated layer after {entries} entries")]
    Tar {
        /// Entries read before the failure.
        entries: u64,
        /// The reader's error.
        source: io::Error,
    },
    /// The bytes are compressed differently from what the media type says.
    #[error("the layer's media type says {declared} but its content is {found}")]
    CompressionMismatch {
        /// From the media type.
        declared: Compression,
        /// From the bytes.
        found: Compression,
    },
    /// The uncompressed stream does not hash to the expected diffID.
    #[error("layer content hashes to {found}, but its diffID is {expected}: the layer is corrupt or was tampered with")]
    DiffIdMismatch {
        /// Expected.
        expected: Digest,
        /// Computed.
        found: Digest,
    },
    /// An entry refused by policy (forged overlay xattrs, invalid whiteouts, replacing the root, …).
    #[error("{entry}: {reason}")]
    Refused {
        /// The entry name.
        entry: String,
        /// Why.
        reason: String,
    },
}

impl From<WalkError> for ApplyError {
    fn from(e: WalkError) -> Self {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
        match e {
            WalkError::Read { entries, source } => ApplyError::Tar { entries, source },
            WalkError::Checksum { entries, offset } => ApplyError::Tar {
                entries,
                source: invalid(format!("the tar header at byte {offset} fails its checksum")),
            },
            WalkError::DanglingExtension { entries, what } => ApplyError::Tar {
                entries,
                source: invalid(format!("it ends after a {what} with no entry for it to describe")),
            },
            WalkError::TooLarge {
                header,
                what,
                size,
                limit,
            } => ApplyError::Refused {
                entry: header,
                reason: format!(
                    "its {what} is {size} bytes, over the {limit}-byte limit; the layer is malformed or hostile"
                ),
            },
            WalkError::Malformed { entry, reason } => ApplyError::Refused { entry, reason },
        }
    }
}

pub(crate) fn io_err<'a>(entry: &'a str, action: &'static str) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| {
        let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT].map(|e| Some(e.raw_os_error()));
        if full.contains(&source.raw_os_error()) {
            ApplyError::NoSpace {
                entry: entry.to_owned(),
                action,
                source,
            }
        } else {
            ApplyError::Io {
                entry: entry.to_owned(),
                action,
                source,
            }
        }
    }
}

pub(crate) fn refused(entry: &str, reason: impl Into<String>) -> ApplyError {
    ApplyError::Refused {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

/// Size of the chunks the decompressing thread hands to the unpacking thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
const IN_FLIGHT: usize = 8;

/// Decompresses and hashes on its own thread, so the file-system work of unpacking overlaps the codec.
fn read_ahead(mut decoder: impl Read + Send, tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>) -> (Digest, u64) {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut n = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        let result = loop {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(k) => {
                    filled += k;
                    if filled == buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        hasher.update(&buf);
        n += filled as u64;
        let done = filled == 0;
        let msg = match result {
            Err(e) => Err(e),
            Ok(()) => Ok(buf),
        };
        let failed = msg.is_err();
        if tx.send(msg).is_err() || done || failed {
            return (hasher.finish(), n);
        }
    }
}

/// The unpacking side of [`read_ahead`].
struct Chunks {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.eof = true,
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => self.eof = true,
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// State shared by the entries of one layer.
pub(crate) struct Ctx<'o> {
    pub(crate) root: OwnedFd,
    pub(crate) opts: &'o ApplyOptions,
    /// Paths created by this layer: whiteouts never remove them (they apply to lower layers only).
    pub(crate) created: HashSet<InRoot>,
    /// Opaque directories seen in this layer (each once, with the first marker's name), cleared of lower content
    /// at the end. Sorted, so a directory comes right before everything under it.
    pub(crate) opaque: BTreeMap<InRoot, String>,
    /// Directories whose mtime is set once all entries are in place.
    pub(crate) dir_times: Vec<(InRoot, rustix::fs::Timestamps)>,
    pub(crate) skipped_devices: u64,
    pub(crate) skipped_chown: u64,
    pub(crate) skipped_xattrs: u64,
}

/// Applies one layer stream to `rootfs` (which must exist).
pub fn apply_layer(reader: impl Read + Send, rootfs: &Path, opts: &ApplyOptions) -> Result<ApplyReport, ApplyError> {
    let root_name = rootfs.display().to_string();
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(&root_name, "open the root")(e.into()))?;
    let mut buffered = BufReader::with_capacity(1 << 20, reader);
    let head = buffered.fill_buf().map_err(io_err(&root_name, "read the layer"))?;
    let found = Compression::sniff(head);
    if let Some(declared) = opts.compression
        && declared != found
        && !head.is_empty()
    {
        return Err(ApplyError::CompressionMismatch { declared, found });
    }
    let decoder = berth_spec::diff_id::decoder(buffered, found).map_err(io_err(&root_name, "start decompressing"))?;
    let mut ctx = Ctx {
        root,
        opts,
        created: HashSet::new(),
        opaque: BTreeMap::new(),
        dir_times: Vec::new(),
        skipped_devices: 0,
        skipped_chown: 0,
        skipped_xattrs: 0,
    };
    let mut entries = 0u64;
    let (tx, rx) = std::sync::mpsc::sync_channel(IN_FLIGHT);
    let (unpacked, (diff_id, uncompressed_size)) = std::thread::scope(|s| {
        let producer = s.spawn(move || read_ahead(decoder, tx));
        let mut chunks = Chunks {
            rx,
            cur: Vec::new(),
            pos: 0,
            eof: false,
        };
        let unpacked = (|| {
            let mut walker = TarWalker::new(&mut chunks);
            while let Some(e) = walker.next_entry()? {
                entry::apply_entry(&mut ctx, &e, &mut walker.data())?;
            }
            entries = walker.entries();
            // Whatever follows the end-of-archive marker is part of the layer and of its diffID.
            io::copy(&mut chunks, &mut io::sink()).map_err(|source| ApplyError::Tar { entries, source })?;
            Ok::<(), ApplyError>(())
        })();
        // Dropping the receiver stops the producer early when unpacking failed.
        drop(chunks);
        (
            unpacked,
            producer.join().expect("the decompressing thread does not panic"),
        )
    });
    unpacked?;
    if let Some(expected) = &opts.diff_id
        && expected != &diff_id
    {
        return Err(ApplyError::DiffIdMismatch {
            expected: expected.clone(),
            found: diff_id,
        });
    }
    entry::finish(&mut ctx)?;
    if ctx.skipped_devices > 0 {
        tracing::warn!(
            count = ctx.skipped_devices,
            "device nodes and FIFOs skipped: creating them is not permitted"
        );
    }
    if ctx.skipped_chown > 0 {
        tracing::warn!(
            count = ctx.skipped_chown,
            "ownership not applied: changing it is not permitted"
        );
    }
    if ctx.skipped_xattrs > 0 {
        tracing::warn!(
            count = ctx.skipped_xattrs,
            "extended attributes not set: the file system or the kernel refused them"
        );
    }
    Ok(ApplyReport {
        entries,
        diff_id,
        uncompressed_size,
        skipped_devices: ctx.skipped_devices,
        skipped_chown: ctx.skipped_chown,
        skipped_xattrs: ctx.skipped_xattrs,
    })
}

impl Ctx<'_> {
    pub(crate) fn root_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.root.as_fd()
    }
}
