//! Creating layers: from a whole directory, from the difference between a lower and an upper rootfs, or from an
//! overlayfs upperdir.
//!
//! The tar stream is deterministic: entries in depth-first order with each directory's names sorted by bytes (a
//! directory before its children), uid/gid kept and user/group names empty, mtimes in whole seconds clamped to
//! `SOURCE_DATE_EPOCH` when one is given, no atime/ctime, and nothing of the host (no absolute paths, inode or
//! device numbers of the source filesystem). Creating the same tree twice gives the same bytes.
//!
//! ```no_run
//! use berth_layer::create::{create_from_dir, CreateOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let blob = std::fs::File::create("layer.tar.gz")?;
//! let layer = create_from_dir("rootfs".as_ref(), blob, &CreateOptions::default())?;
//! println!("{} ({} bytes), diffID {}", layer.digest, layer.size, layer.diff_id);
//! # Ok(()) }
//! ```

mod diff;
mod tar_writer;
#[cfg(test)]
mod tests;
mod walk;

use std::ffi::OsStr;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_spec::media_type::Compression;

use crate::compress::{LayerDigests, LayerWriter, level_range};
use crate::whiteout::{OPAQUE_MARKER, whiteout_name};
use diff::{Children, Item};
use tar_writer::TarWriter;
use walk::{Node, join_rel, read_node};

/// How to create a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// The blob's compression.
    pub compression: Compression,
    /// The compression level (gzip 0..=9, zstd its own range); `None` for the codec's default (gzip 3, or 6 with
    /// `source_date_epoch`; zstd 3).
    pub level: Option<i32>,
    /// Clamp mtimes to this time (seconds since the epoch): newer entries get it, older keep theirs. A reproducible
    /// build: gzip then uses zlib at every level ([`LayerWriter::new_portable`]), so the same tree gives the same
    /// bytes on any machine running this version of Berth.
    pub source_date_epoch: Option<i64>,
    /// Compression threads; 0 = one per core. The output does not depend on it.
    pub threads: usize,
    /// Hash the compressed stream (the layer's digest). `false` when the output hashes what it is given itself (a
    /// layout's blob writer does): the returned [`LayerDigests::digest`] is then the digest of nothing and must not
    /// be used — the blob writer's is the layer's.
    pub hash_output: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            compression: Compression::Gzip,
            level: None,
            source_date_epoch: None,
            threads: 0,
            hash_output: true,
        }
    }
}

/// Why a layer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A tree root is not a directory.
    #[error("{}: not a directory; a layer is created from a directory tree", path.display())]
    NotADirectory {
        /// The root given.
        path: PathBuf,
    },
    /// The source tree could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The entry being read.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file changed while its content was copied into the layer.
    #[error("{}: changed while being read ({detail}); create the layer from a tree nothing else is modifying", path.display())]
    ChangedWhileReading {
        /// The file.
        path: PathBuf,
        /// What changed.
        detail: String,
    },
    /// A name in the reserved whiteout namespace: in a layer it would mean a deletion.
    #[error("{}: names starting with `.wh.` are reserved for whiteouts and cannot be stored in a layer; rename it", path.display())]
    ReservedName {
        /// The entry.
        path: PathBuf,
    },
    /// An overlayfs upperdir entry whose content lives in a lower layer (redirect_dir or metacopy).
    #[error(
        "{}: has overlayfs xattr {xattr}, so part of it lives in a lower layer; mount the overlay with \
         redirect_dir=off,metacopy=off, or create the layer with create_diff from the lower and merged trees",
        path.display()
    )]
    OverlayNeedsLower {
        /// The entry.
        path: PathBuf,
        /// The xattr found.
        xattr: String,
    },
    /// The compression level is outside the codec's range.
    #[error("{compression} compression level {level} is invalid: use {}..={}", range.start(), range.end())]
    InvalidLevel {
        /// The codec.
        compression: Compression,
        /// The level given.
        level: i32,
        /// The levels accepted.
        range: std::ops::RangeInclusive<i32>,
    },
    /// The output could not be written.
    #[error("writing layer entry {}", entry.display())]
    Write {
        /// The tar path being written.
        entry: PathBuf,
        /// What the output said.
        source: io::Error,
    },
    /// The compressed stream could not be completed.
    #[error("finishing the {compression} layer stream")]
    Finish {
        /// The codec.
        compression: Compression,
        /// What went wrong.
        source: io::Error,
    },
}

/// Where entries come from.
enum Source<'a> {
    Whole {
        root: &'a Path,
    },
    Diff {
        lower: &'a Path,
        upper: &'a Path,
    },
    Overlay {
        upper: &'a Path,
        elsewhere: Option<&'a ContentElsewhere>,
    },
}

/// Creates a layer holding every entry below `root` (not `root` itself).
pub fn create_from_dir(root: &Path, out: impl Write, opts: &CreateOptions) -> Result<LayerDigests, CreateError> {
    create(Source::Whole { root }, out, opts)
}

/// Creates a layer that turns `lower` into `upper`: entries added or changed (by type, mode, owner, size, mtime,
/// symlink target, xattrs or device number), `.wh.NAME` for deletions, `.wh..wh..opq` for a directory none of
/// whose lower children remain. The parent directories of every changed entry are included.
pub fn create_diff(
    lower: &Path,
    upper: &Path,
    out: impl Write,
    opts: &CreateOptions,
) -> Result<LayerDigests, CreateError> {
    create(Source::Diff { lower, upper }, out, opts)
}

/// Creates a layer from an overlayfs upperdir: a 0:0 character device becomes `.wh.NAME`, a directory with
/// `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) gets `.wh..wh..opq`, overlay xattrs are dropped.
/// Entries with redirect or metacopy xattrs are refused ([`CreateError::OverlayNeedsLower`]).
pub fn create_from_overlay_upper(
    upper: &Path,
    out: impl Write,
    opts: &CreateOptions,
) -> Result<LayerDigests, CreateError> {
    create(Source::Overlay { upper, elsewhere: None }, out, opts)
}

/// [`create_from_overlay_upper`] for an upper directory whose regular files listed in `elsewhere` are empty
/// placeholders: their content is read from the files they were copied from (which must not have changed since:
/// same inode, size and mtime, else [`CreateError::ChangedWhileReading`]). A copy into an overlay can so become a
/// layer without its data being written twice.
pub fn create_from_overlay_upper_elsewhere(
    upper: &Path,
    elsewhere: &ContentElsewhere,
    out: impl Write,
    opts: &CreateOptions,
) -> Result<LayerDigests, CreateError> {
    create(
        Source::Overlay {
            upper,
            elsewhere: Some(elsewhere),
        },
        out,
        opts,
    )
}

/// Placeholder files of an overlay upper directory (by device and inode, as the upper directory shows them) and
/// the files holding their content.
#[derive(Debug, Default)]
pub struct ContentElsewhere {
    files: std::collections::HashMap<(u64, u64), Elsewhere>,
    /// Whether each source's content is hashed (BLAKE3) as it is read: see [`ContentElsewhere::hash_sources`].
    hash: bool,
    digests: std::sync::Mutex<Vec<SourceDigest>>,
}

/// A source file read for a placeholder, with the BLAKE3 digest of the bytes that went into the layer.
#[derive(Debug, Clone)]
pub struct SourceDigest {
    /// The source's path (as given in [`Elsewhere::path`]).
    pub path: PathBuf,
    /// Its metadata when it was opened for reading.
    pub meta: std::fs::Metadata,
    /// BLAKE3 of its content.
    pub blake3: [u8; 32],
}

/// Where a placeholder's content is: a file, and what it was when it was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elsewhere {
    /// The file's path.
    pub path: PathBuf,
    /// Its device when it was copied.
    pub dev: u64,
    /// Its inode when it was copied.
    pub ino: u64,
    /// Its size when it was copied.
    pub size: u64,
    /// Its mtime (seconds) when it was copied.
    pub mtime: i64,
    /// Its mtime's nanoseconds when it was copied.
    pub mtime_nsec: i64,
}

impl ContentElsewhere {
    /// Records that the empty file at `placeholder` stands for `source`.
    pub fn insert(&mut self, placeholder: &Path, source: Elsewhere) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(placeholder)?;
        if !meta.is_file() || meta.len() != 0 {
            return Err(io::Error::other(format!(
                "{} is not an empty placeholder file",
                placeholder.display()
            )));
        }
        self.files.insert((meta.dev(), meta.ino()), source);
        Ok(())
    }

    /// How many placeholders there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Also hash every source's content with BLAKE3 while it is read into the layer ([`Self::source_digests`]
    /// then has them): a caller that needs both the layer and digests of its sources reads each file once.
    pub fn hash_sources(&mut self) {
        self.hash = true;
    }

    /// The sources read and hashed so far (with [`Self::hash_sources`]), in the order they were read.
    pub fn source_digests(&self) -> Vec<SourceDigest> {
        self.digests.lock().map(|d| d.clone()).unwrap_or_default()
    }

    fn record(&self, digest: SourceDigest) {
        if let Ok(mut d) = self.digests.lock() {
            d.push(digest);
        }
    }
}

/// Writes the uncompressed tar stream of every entry below `root` (what [`create_from_dir`] compresses).
pub fn write_tar_from_dir(root: &Path, out: impl Write, opts: &CreateOptions) -> Result<(), CreateError> {
    write_tar(&Source::Whole { root }, out, opts).map(drop)
}

fn create<W: Write>(source: Source<'_>, out: W, opts: &CreateOptions) -> Result<LayerDigests, CreateError> {
    let compression = opts.compression;
    if let (Some(level), Some(range)) = (opts.level, level_range(compression))
        && !range.contains(&level)
    {
        return Err(CreateError::InvalidLevel {
            compression,
            level,
            range,
        });
    }
    let finish_err = |source| CreateError::Finish { compression, source };
    let layer = if opts.source_date_epoch.is_some() {
        LayerWriter::new_portable(out, compression, opts.level, opts.threads)
    } else {
        LayerWriter::new(out, compression, opts.level, opts.threads)
    }
    .map_err(finish_err)?;
    let layer = if opts.hash_output {
        layer
    } else {
        layer.without_output_digest()
    };
    write_tar(&source, layer, opts)?.finish().map_err(finish_err)
}

/// A directory being walked.
struct Frame {
    /// Its tar path, without a trailing slash ("" for the root).
    rel: Vec<u8>,
    items: std::vec::IntoIter<Item>,
    /// Its header when not written yet: an unchanged directory is written only before something below it.
    pending: Option<Node>,
    /// Its mtime, given to the whiteouts inside it.
    mtime: i64,
}

fn write_tar<W: Write>(source: &Source<'_>, out: W, opts: &CreateOptions) -> Result<W, CreateError> {
    let (lower, upper, children) = match *source {
        Source::Whole { root } => (root, root, Children::Whole),
        Source::Diff { lower, upper } => (lower, upper, Children::Diff),
        Source::Overlay { upper, .. } => (upper, upper, Children::Overlay),
    };
    // The roots are the caller's choice and may go through symlinks; nothing below them is followed.
    let (lower, upper) = (&canonical(lower)?, &canonical(upper)?);
    let root = read_dir_node(upper)?;
    if children == Children::Diff {
        read_dir_node(lower)?;
    }
    let elsewhere = match *source {
        Source::Overlay { elsewhere, .. } => elsewhere,
        _ => None,
    };
    let mut tar = TarWriter::new(
        BufWriter::with_capacity(256 * 1024, out),
        opts.source_date_epoch,
        elsewhere,
    );
    let mut stack = vec![Frame {
        rel: Vec::new(),
        items: diff::items(children, lower, upper, &root)?.into_iter(),
        pending: None,
        mtime: root.mtime,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(item) = frame.items.next() else {
            stack.pop();
            continue;
        };
        match item {
            Item::Opaque => {
                let rel = join_rel(&frame.rel, OPAQUE_MARKER.as_bytes());
                let mtime = frame.mtime;
                write_pending(&mut stack, &mut tar)?;
                tar.whiteout(&rel, mtime)?;
            }
            Item::Whiteout(name) => {
                let rel = join_rel(&frame.rel, whiteout_name(&name).as_bytes());
                let mtime = frame.mtime;
                write_pending(&mut stack, &mut tar)?;
                tar.whiteout(&rel, mtime)?;
            }
            Item::Entry {
                name,
                node,
                emit,
                children,
            } => {
                let rel = join_rel(&frame.rel, name.as_bytes());
                let rel_path = Path::new(OsStr::from_bytes(&rel));
                let abs = upper.join(rel_path);
                if node.is_dir() {
                    let items = diff::items(children, &lower.join(rel_path), &abs, &node)?;
                    if emit {
                        write_pending(&mut stack, &mut tar)?;
                        tar.directory(&rel, &node)?;
                    }
                    let mtime = node.mtime;
                    stack.push(Frame {
                        rel,
                        items: items.into_iter(),
                        pending: (!emit).then_some(node),
                        mtime,
                    });
                } else if emit {
                    write_pending(&mut stack, &mut tar)?;
                    tar.non_directory(&rel, &node, &abs)?;
                }
            }
        }
    }
    tar.finish()?.into_inner().map_err(|e| CreateError::Write {
        entry: PathBuf::from("end of archive"),
        source: e.into_error(),
    })
}

/// Writes the headers of the unchanged directories above the entry about to be written.
fn write_pending<W: Write>(stack: &mut [Frame], tar: &mut TarWriter<'_, W>) -> Result<(), CreateError> {
    for frame in stack.iter_mut() {
        if let Some(node) = frame.pending.take() {
            tar.directory(&frame.rel, &node)?;
        }
    }
    Ok(())
}

fn canonical(path: &Path) -> Result<PathBuf, CreateError> {
    std::fs::canonicalize(path).map_err(|source| CreateError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_dir_node(path: &Path) -> Result<Node, CreateError> {
    let node = read_node(path)?;
    if !node.is_dir() {
        return Err(CreateError::NotADirectory { path: path.to_owned() });
    }
    Ok(node)
}
