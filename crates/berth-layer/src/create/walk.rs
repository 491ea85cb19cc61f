//! Reading the source tree: one `lstat` per entry, symlink targets, and the xattrs a layer keeps. Nothing here
//! follows a symlink.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::io::Errno;

use super::CreateError;
use crate::whiteout::{self, OVERLAY_OPAQUE_XATTR, USER_OVERLAY_OPAQUE_XATTR, is_overlay_xattr};

/// The file types a tree can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

/// An extended attribute: (name, value).
pub(crate) type Xattr = (Vec<u8>, Vec<u8>);

/// What the overlayfs xattrs of an entry say (read in every mode, acted on only for an overlay upperdir).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OverlayAttrs {
    /// `trusted.overlay.opaque=y` or `user.overlay.opaque=y`.
    pub opaque: bool,
    /// A redirect or metacopy xattr: the entry's content lives in a lower layer.
    pub needs_lower: Option<String>,
}

/// One entry of a source tree, as `lstat` saw it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// The symlink target (empty for other kinds).
    pub link_target: Vec<u8>,
    /// The xattrs a layer keeps, sorted by name.
    pub xattrs: Vec<Xattr>,
    pub overlay: OverlayAttrs,
}

impl Node {
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// Whether `self` and `other` would be written as the same layer entry (containerd's double-walk rule:
    /// equal metadata means unchanged; contents are not compared).
    pub(crate) fn same_as(&self, other: &Node) -> bool {
        let sized = matches!(self.kind, Kind::File | Kind::Symlink);
        let device = matches!(self.kind, Kind::Char | Kind::Block);
        self.kind == other.kind
            && self.mode == other.mode
            && self.uid == other.uid
            && self.gid == other.gid
            && self.mtime == other.mtime
            && self.mtime_nsec == other.mtime_nsec
            && (!sized || self.size == other.size)
            // A name added to (or removed from) a file changes its link count on every name: writing them all
            // again lets the layer carry the whole link group, so the new name stays a hardlink.
            && (self.kind != Kind::File || self.nlink == other.nlink)
            && (!device || self.rdev == other.rdev)
            && self.link_target == other.link_target
            && self.xattrs == other.xattrs
    }
}

/// Whether a layer keeps the xattr `name`: file capabilities and user xattrs, never the overlayfs ones, and
/// nothing a PAX record key cannot hold.
pub(crate) fn keep_xattr(name: &[u8]) -> bool {
    let wanted = name == b"security.capability" || (name.starts_with(b"user.") && !is_overlay_xattr(name));
    wanted && !name.contains(&b'=')
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> CreateError + '_ {
    move |source| CreateError::Read {
        path: path.to_owned(),
        source,
    }
}

/// `lstat`s `path` and reads its symlink target and xattrs.
pub(crate) fn read_node(path: &Path) -> Result<Node, CreateError> {
    let meta = fs::symlink_metadata(path).map_err(read_err(path))?;
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_char_device() {
        Kind::Char
    } else if ft.is_block_device() {
        Kind::Block
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let link_target = if kind == Kind::Symlink {
        fs::read_link(path).map_err(read_err(path))?.into_os_string().into_vec()
    } else {
        Vec::new()
    };
    let (xattrs, overlay) = read_xattrs(path).map_err(read_err(path))?;
    Ok(Node {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        rdev: meta.rdev(),
        dev: meta.dev(),
        ino: meta.ino(),
        nlink: meta.nlink(),
        link_target,
        xattrs,
        overlay,
    })
}

/// The names in directory `path`, sorted by bytes. A name in the reserved whiteout namespace is an error: a layer
/// cannot carry it without it meaning a deletion.
pub(crate) fn list_dir(path: &Path) -> Result<Vec<OsString>, CreateError> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| read_err(path)(e.into()))?;
    let dir = rustix::fs::Dir::new(fd).map_err(|e| read_err(path)(e.into()))?;
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| read_err(path)(e.into()))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsString::from_vec(name.to_vec());
        if whiteout::classify(&name) != whiteout::Whiteout::None {
            return Err(CreateError::ReservedName { path: path.join(name) });
        }
        names.push(name);
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// The kept xattrs of `path` (sorted by name) and what its overlayfs xattrs say.
fn read_xattrs(path: &Path) -> io::Result<(Vec<Xattr>, OverlayAttrs)> {
    let mut overlay = OverlayAttrs::default();
    let mut list = vec![0u8; 256];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path)?;
                list.resize(need.max(list.len() * 2), 0);
            }
            Err(Errno::NOTSUP) => return Ok((Vec::new(), overlay)),
            Err(e) => return Err(e.into()),
        }
    };
    let mut kept = Vec::new();
    for name in list[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let is_overlay = is_overlay_xattr(name);
        if !is_overlay && !keep_xattr(name) {
            continue;
        }
        // Removed since it was listed: as if it never was.
        let Some(value) = get_xattr(path, name)? else { continue };
        if !is_overlay {
            kept.push((name.to_vec(), value));
        } else if name == OVERLAY_OPAQUE_XATTR.as_bytes() || name == USER_OVERLAY_OPAQUE_XATTR.as_bytes() {
            overlay.opaque |= value == b"y";
        } else if name.ends_with(b".overlay.redirect") || name.ends_with(b".overlay.metacopy") {
            overlay.needs_lower = Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    kept.sort();
    Ok((kept, overlay))
}

fn get_xattr(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            Err(Errno::RANGE) => {
                let need = rustix::fs::lgetxattr_query(path, name)?;
                value.resize(need.max(value.len() * 2), 0);
            }
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Joins a relative tar path and a name.
pub(crate) fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut rel = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        rel.extend_from_slice(parent);
        rel.push(b'/');
    }
    rel.extend_from_slice(name);
    rel
}
