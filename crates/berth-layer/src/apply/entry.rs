//! One tar entry: its metadata (header fields with PAX overrides, as the walker resolves them), then its creation
//! inside the root.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::fsops::{self, DirCursor, InRoot};
use super::{ApplyError, Ctx, IdRange, WhiteoutMode, io_err, refused};
use crate::tar_walk::{KeyValue, SparseMap, TarEntry};
use crate::whiteout::{self, Whiteout};

const DEFAULT_MAX_SPARSE: u64 = 64 << 30;
const BUF: usize = 1 << 20;

/// Header data resolved from the ustar/GNU fields and PAX overrides.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<KeyValue>,
    dev: (u32, u32),
}

fn map_id(id: u64, map: &[IdRange], what: &str, entry: &str) -> Result<u32, ApplyError> {
    let id = u32::try_from(id)
        .ok()
        .filter(|&i| i != u32::MAX)
        .ok_or_else(|| refused(entry, format!("{what} {id} is out of range (0..=4294967294)")))?;
    if map.is_empty() {
        return Ok(id);
    }
    map.iter()
        .find(|r| id >= r.container && id - r.container < r.size)
        .map(|r| r.host + (id - r.container))
        .ok_or_else(|| refused(entry, format!("{what} {id} is not mapped by the id mapping in use")))
}

fn read_meta(ctx: &Ctx<'_>, e: &TarEntry, name: &str) -> Result<Meta, ApplyError> {
    let h = e.header();
    let (tv_sec, nanos) = e.mtime()?;
    let mtime = Timespec {
        tv_sec,
        tv_nsec: nanos.into(),
    };
    let dev = (
        h.device_major().ok().flatten().unwrap_or(0),
        h.device_minor().ok().flatten().unwrap_or(0),
    );
    let xattrs = e.xattrs()?;
    for (k, _) in &xattrs {
        if whiteout::is_overlay_xattr(k) {
            return Err(refused(
                name,
                format!(
                    "carries the overlayfs xattr {:?}; layers must not forge overlay metadata",
                    String::from_utf8_lossy(k)
                ),
            ));
        }
    }
    let uid = map_id(e.uid()?, &ctx.opts.uid_map, "uid", name)?;
    let gid = map_id(e.gid()?, &ctx.opts.gid_map, "gid", name)?;
    Ok(Meta {
        mode: e.mode()?,
        uid,
        gid,
        mtime,
        xattrs,
        dev,
    })
}

/// Maps the errors of resolving an entry's directory: ENOTDIR and ELOOP are the layer's fault.
fn dir_err<'a>(name: &'a str, action: &'static str) -> impl FnOnce(Errno) -> ApplyError + 'a {
    move |err| match err {
        Errno::NOTDIR => refused(name, "a parent path component is not a directory"),
        Errno::LOOP => refused(
            name,
            format!(
                "too many levels of symbolic links: resolving its directory follows more than {} symlinks",
                fsops::MAX_SYMLINKS
            ),
        ),
        other => io_err(name, action)(other.into()),
    }
}

/// Applies one entry; `data` reads its data.
pub(crate) fn apply_entry(ctx: &mut Ctx<'_>, e: &TarEntry, data: &mut dyn Read) -> Result<(), ApplyError> {
    let raw = e.path_bytes();
    let name = e.path_lossy().into_owned();
    let kind = e.entry_type();
    if raw.contains(&0) {
        return Err(refused(&name, "entry name contains a NUL byte"));
    }
    let path = InRoot::clean(raw);
    if path.path().parent().is_some_and(|p| {
        p.iter()
            .any(|c| c.as_bytes().starts_with(whiteout::WHITEOUT_PREFIX.as_bytes()))
    }) {
        return Err(refused(
            &name,
            "a directory in its path has a reserved .wh. whiteout name",
        ));
    }
    let Some((parent, base)) = path.split() else {
        if kind.is_dir() {
            return Ok(()); // `.` or `/`: the root itself exists already.
        }
        return Err(refused(&name, "the entry would replace the root directory"));
    };
    let base = base.to_owned();
    match whiteout::classify(&base) {
        Whiteout::None => {}
        Whiteout::Invalid => return Err(refused(&name, "invalid name in the reserved .wh. whiteout namespace")),
        Whiteout::Opaque => return opaque(ctx, &parent, &name),
        Whiteout::Delete(target) => return delete(ctx, &parent, target, &name),
    }
    let meta = read_meta(ctx, e, &name)?;
    if let Some(map) = e.sparse() {
        let max = ctx.opts.max_sparse_size.unwrap_or(DEFAULT_MAX_SPARSE);
        if map.real_size > max {
            return Err(refused(
                &name,
                format!(
                    "sparse file claims {} bytes, more than the {max}-byte limit",
                    map.real_size
                ),
            ));
        }
    }
    let pfd = fsops::ensure_dir(ctx.root_fd(), &parent).map_err(dir_err(&name, "open the parent directory"))?;
    let existing = fsops::lstat_at(pfd.as_fd(), &base).map_err(|err| io_err(&name, "stat")(err.into()))?;
    let is_dir = kind.is_dir();
    if let Some(st) = &existing {
        let keep_dir = is_dir && fsops::file_type(st) == FileType::Directory;
        if !keep_dir {
            if kind.is_hard_link() && same_entry(raw, e) {
                return Ok(());
            }
            fsops::remove_entry(pfd.as_fd(), &base)
                .map_err(|err| io_err(&name, "replace the existing entry")(err.into()))?;
        }
    }
    ctx.created.insert(path.clone());
    match kind {
        EntryType::Directory => make_dir(ctx, &pfd, &base, &path, &meta, &name),
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            make_file(ctx, &pfd, &base, &meta, data, e.sparse(), &name)
        }
        EntryType::Symlink => {
            let target = e
                .link_bytes()
                .ok_or_else(|| refused(&name, "symlink without a target"))?;
            rustix::fs::symlinkat(OsStr::from_bytes(target), &pfd, &base)
                .map_err(|err| io_err(&name, "create symlink")(err.into()))?;
            chown_at(ctx, pfd.as_fd(), &base, &meta, &name)?;
            set_xattrs(ctx, Xattrs::Symlink(pfd.as_fd(), &base), &meta, &name)?;
            set_times_at(pfd.as_fd(), &base, meta.mtime);
            Ok(())
        }
        EntryType::Link => {
            let target = e
                .link_bytes()
                .ok_or_else(|| refused(&name, "hardlink without a target"))?;
            hardlink(ctx, &pfd, &base, target, &name)
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let ft = match kind {
                EntryType::Char => FileType::CharacterDevice,
                EntryType::Block => FileType::BlockDevice,
                _ => FileType::Fifo,
            };
            let dev = rustix::fs::makedev(meta.dev.0, meta.dev.1);
            match rustix::fs::mknodat(
                &pfd,
                &base,
                ft,
                Mode::from_raw_mode(0o600),
                if ft == FileType::Fifo { 0 } else { dev },
            ) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::ACCESS) => {
                    ctx.created.remove(&path);
                    ctx.skipped_devices += 1;
                    return Ok(());
                }
                Err(err) => return Err(io_err(&name, "create device node")(err.into())),
            }
            chown_at(ctx, pfd.as_fd(), &base, &meta, &name)?;
            let obj = rustix::fs::openat(
                &pfd,
                &base,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|err| io_err(&name, "open device node")(err.into()))?;
            std::fs::set_permissions(
                fsops::proc_fd_path(obj.as_fd()),
                std::os::unix::fs::PermissionsExt::from_mode(meta.mode),
            )
            .map_err(io_err(&name, "chmod"))?;
            set_xattrs(ctx, Xattrs::Node(obj.as_fd()), &meta, &name)?;
            set_times_at(pfd.as_fd(), &base, meta.mtime);
            Ok(())
        }
        other => {
            tracing::warn!(entry = %name, kind = ?other, "skipping tar entry of unsupported type");
            ctx.created.remove(&path);
            Ok(())
        }
    }
}

fn same_entry(raw: &[u8], e: &TarEntry) -> bool {
    e.link_bytes().is_some_and(|t| InRoot::clean(t) == InRoot::clean(raw))
}

fn make_dir(
    ctx: &mut Ctx<'_>,
    pfd: &OwnedFd,
    base: &OsStr,
    path: &InRoot,
    meta: &Meta,
    name: &str,
) -> Result<(), ApplyError> {
    match rustix::fs::mkdirat(pfd, base, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(err) => return Err(io_err(name, "create directory")(err.into())),
    }
    let dfd = rustix::fs::openat(
        pfd,
        base,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| io_err(name, "open directory")(err.into()))?;
    chown_fd(ctx, dfd.as_fd(), meta, name)?;
    rustix::fs::fchmod(&dfd, Mode::from_raw_mode(meta.mode)).map_err(|err| io_err(name, "chmod")(err.into()))?;
    set_xattrs(ctx, Xattrs::Fd(dfd.as_fd()), meta, name)?;
    ctx.dir_times.push((
        path.clone(),
        Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        },
    ));
    Ok(())
}

fn make_file(
    ctx: &mut Ctx<'_>,
    pfd: &OwnedFd,
    base: &OsStr,
    meta: &Meta,
    data: &mut dyn Read,
    sparse: Option<&SparseMap>,
    name: &str,
) -> Result<(), ApplyError> {
    let fd = rustix::fs::openat(
        pfd,
        base,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|err| io_err(name, "create file")(err.into()))?;
    let file = File::from(fd);
    let mut buf = vec![0u8; BUF];
    match sparse {
        None => copy_data(data, &file, 0, None, &mut buf, name)?,
        Some(map) => {
            // Each run of data at its offset; what lies between stays a hole.
            for seg in &map.segments {
                copy_data(data, &file, seg.offset, Some(seg.len), &mut buf, name)?;
            }
            file.set_len(map.real_size).map_err(io_err(name, "set the length of"))?;
        }
    }
    chown_fd(ctx, file.as_fd(), meta, name)?;
    // After chown, which clears setuid/setgid.
    rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode)).map_err(|err| io_err(name, "chmod")(err.into()))?;
    set_xattrs(ctx, Xattrs::Fd(file.as_fd()), meta, name)?;
    rustix::fs::futimens(
        &file,
        &Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        },
    )
    .map_err(|err| io_err(name, "set times")(err.into()))?;
    Ok(())
}

/// Copies `len` bytes of the entry's data (all that is left when `None`) into `file` at `offset`.
fn copy_data(
    data: &mut dyn Read,
    file: &File,
    mut offset: u64,
    len: Option<u64>,
    buf: &mut [u8],
    name: &str,
) -> Result<(), ApplyError> {
    let mut left = len.unwrap_or(u64::MAX);
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = data
            .read(&mut buf[..want])
            .map_err(io_err(name, "read the entry's data (truncated or corrupt layer)"))?;
        if n == 0 {
            if len.is_some() {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "the data ends before its sparse map does");
                return Err(io_err(name, "read the entry's data (truncated or corrupt layer)")(eof));
            }
            return Ok(());
        }
        file.write_all_at(&buf[..n], offset).map_err(io_err(name, "write"))?;
        offset += n as u64;
        left -= n as u64;
    }
    Ok(())
}

fn hardlink(ctx: &mut Ctx<'_>, pfd: &OwnedFd, base: &OsStr, target: &[u8], name: &str) -> Result<(), ApplyError> {
    let target_path = InRoot::clean(target);
    let Some((tparent, tbase)) = target_path.split() else {
        return Err(refused(name, "hardlink to the root directory"));
    };
    let tfd = fsops::open_dir(ctx.root_fd(), &tparent).map_err(|_| {
        refused(
            name,
            format!(
                "hardlink target {:?} does not exist (it must come earlier in the layer)",
                target_path.path()
            ),
        )
    })?;
    // linkat without AT_SYMLINK_FOLLOW links the target entry itself, never what a symlink points at.
    rustix::fs::linkat(&tfd, tbase, pfd, base, AtFlags::empty()).map_err(|err| match err {
        Errno::NOENT => refused(
            name,
            format!(
                "hardlink target {:?} does not exist (it must come earlier in the layer)",
                target_path.path()
            ),
        ),
        Errno::PERM => refused(name, format!("hardlink target {:?} is a directory", target_path.path())),
        other => io_err(name, "create hardlink")(other.into()),
    })
}

fn chown_fd(ctx: &mut Ctx<'_>, fd: BorrowedFd<'_>, meta: &Meta, name: &str) -> Result<(), ApplyError> {
    let r = rustix::fs::fchown(fd, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
    chown_result(ctx, r, name)
}

fn chown_at(ctx: &mut Ctx<'_>, dir: BorrowedFd<'_>, base: &OsStr, meta: &Meta, name: &str) -> Result<(), ApplyError> {
    let r = rustix::fs::chownat(
        dir,
        base,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    );
    chown_result(ctx, r, name)
}

fn chown_result(ctx: &mut Ctx<'_>, r: rustix::io::Result<()>, name: &str) -> Result<(), ApplyError> {
    match r {
        Ok(()) => Ok(()),
        Err(Errno::PERM | Errno::INVAL) => {
            ctx.skipped_chown += 1;
            Ok(())
        }
        Err(err) => Err(io_err(name, "chown")(err.into())),
    }
}

/// What to set extended attributes on.
#[derive(Clone, Copy)]
enum Xattrs<'a> {
    /// A descriptor of the object itself (a regular file or directory).
    Fd(BorrowedFd<'a>),
    /// An `O_PATH` descriptor of a device node or FIFO, which cannot be opened for I/O: set through its
    /// `/proc/self/fd` magic link, followed to the node (`lsetxattr` there would act on the link itself).
    Node(BorrowedFd<'a>),
    /// A symlink, by name in its directory: set on the link, not what it points at.
    Symlink(BorrowedFd<'a>, &'a OsStr),
}

/// Sets the entry's xattrs. Those the file system or the kernel refuses (not supported there; not permitted:
/// `trusted.*` and `security.*` without privileges, `user.*` on device nodes, FIFOs and symlinks) are skipped and
/// counted in [`super::ApplyReport::skipped_xattrs`], so rootless extraction works and the report says what the
/// tree lacks; any other failure fails the entry.
fn set_xattrs(ctx: &mut Ctx<'_>, target: Xattrs<'_>, meta: &Meta, name: &str) -> Result<(), ApplyError> {
    for (k, v) in &meta.xattrs {
        let key = OsStr::from_bytes(k);
        let flags = XattrFlags::empty();
        let r = match target {
            Xattrs::Fd(fd) => rustix::fs::fsetxattr(fd, key, v, flags),
            Xattrs::Node(fd) => rustix::fs::setxattr(fsops::proc_fd_path(fd), key, v, flags),
            Xattrs::Symlink(dir, base) => rustix::fs::lsetxattr(fsops::proc_fd_path(dir).join(base), key, v, flags),
        };
        match r {
            Ok(()) => {}
            Err(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS) => {
                ctx.skipped_xattrs += 1;
                tracing::debug!(entry = %name, xattr = %key.to_string_lossy(), "xattr not supported or not permitted here; skipped");
            }
            Err(err) => return Err(io_err(name, "set xattr")(err.into())),
        }
    }
    Ok(())
}

fn set_times_at(dir: BorrowedFd<'_>, base: &OsStr, t: Timespec) {
    // Best effort: some file systems refuse times on symlinks or before the epoch.
    let _ = rustix::fs::utimensat(
        dir,
        base,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    );
}

fn delete(ctx: &mut Ctx<'_>, parent: &InRoot, target: &OsStr, name: &str) -> Result<(), ApplyError> {
    let victim = parent.join(target);
    match ctx.opts.whiteouts {
        WhiteoutMode::Oci => {
            if ctx.created.contains(&victim) {
                return Ok(()); // whiteouts only hide lower layers' entries
            }
            let pfd = match fsops::open_dir(ctx.root_fd(), parent) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR) => return Ok(()), // nothing to delete
                Err(err) => return Err(io_err(name, "open the whiteout's directory")(err.into())),
            };
            fsops::remove_entry(pfd.as_fd(), target).map_err(|err| io_err(name, "apply whiteout")(err.into()))
        }
        WhiteoutMode::Overlay { .. } => {
            if ctx.created.contains(&victim) {
                return Ok(());
            }
            let pfd =
                fsops::ensure_dir(ctx.root_fd(), parent).map_err(dir_err(name, "open the whiteout's directory"))?;
            if fsops::lstat_at(pfd.as_fd(), target)
                .map_err(|err| io_err(name, "stat")(err.into()))?
                .is_some()
            {
                fsops::remove_entry(pfd.as_fd(), target).map_err(|err| io_err(name, "replace")(err.into()))?;
            }
            rustix::fs::mknodat(
                &pfd,
                target,
                FileType::CharacterDevice,
                Mode::empty(),
                whiteout::WHITEOUT_DEVICE,
            )
            .map_err(|err| io_err(name, "create overlay whiteout (needs CAP_MKNOD)")(err.into()))?;
            ctx.created.insert(victim);
            Ok(())
        }
    }
}

fn opaque(ctx: &mut Ctx<'_>, dir: &InRoot, name: &str) -> Result<(), ApplyError> {
    // A marker repeated (a hostile layer may repeat it a million times) clears its directory once.
    ctx.opaque.entry(dir.clone()).or_insert_with(|| name.to_owned());
    Ok(())
}

/// Clears lower content of opaque directories and sets directory times; runs after every entry is in place.
///
/// Each directory is cleared once: a directory already walked while clearing another (one above it, or the same
/// one reached by another name) has had its lower content removed, so the work stays linear in the tree's size
/// however many markers the layer holds.
pub(crate) fn finish(ctx: &mut Ctx<'_>) -> Result<(), ApplyError> {
    let opaque = std::mem::take(&mut ctx.opaque);
    let mut cleared = HashSet::new();
    for (dir, name) in opaque {
        fsops::ensure_dir(ctx.root_fd(), &dir).map_err(dir_err(&name, "open opaque directory"))?;
        let rw = fsops::open_dir_rw(ctx.root_fd(), &dir).map_err(dir_err(&name, "open opaque directory"))?;
        match ctx.opts.whiteouts {
            WhiteoutMode::Oci => {
                let id =
                    fsops::file_id(rw.as_fd()).map_err(|err| io_err(&name, "stat opaque directory")(err.into()))?;
                if !cleared.contains(&id) {
                    clear_lower(ctx, rw, &dir, &mut cleared)
                        .map_err(|err| io_err(&name, "apply opaque whiteout")(err.into()))?;
                }
            }
            WhiteoutMode::Overlay { user_xattr } => {
                let key = if user_xattr {
                    whiteout::USER_OVERLAY_OPAQUE_XATTR
                } else {
                    whiteout::OVERLAY_OPAQUE_XATTR
                };
                rustix::fs::fsetxattr(&rw, key, b"y", XattrFlags::empty())
                    .map_err(|err| io_err(&name, "mark directory opaque")(err.into()))?;
            }
        }
    }
    let times = std::mem::take(&mut ctx.dir_times);
    for (dir, t) in times.iter().rev() {
        if let Ok(fd) = fsops::open_dir_rw(ctx.root_fd(), dir) {
            let _ = rustix::fs::futimens(&fd, t);
        }
    }
    Ok(())
}

/// Removes from `top` (the directory `dir`) everything this layer did not create, descending into the directories
/// it did create; records every directory it walks in `cleared`. Iterative, with one descriptor open at any depth.
fn clear_lower(ctx: &Ctx<'_>, top: OwnedFd, dir: &InRoot, cleared: &mut HashSet<(u64, u64)>) -> rustix::io::Result<()> {
    cleared.insert(fsops::file_id(top.as_fd())?);
    let mut cur = DirCursor::new(top, OFlags::RDONLY);
    let mut path = dir.clone();
    let mut pending = vec![fsops::list_dir(cur.fd())?];
    while let Some(names) = pending.last_mut() {
        let Some(n) = names.pop() else {
            pending.pop();
            if !pending.is_empty() {
                cur.leave()?;
                path = path.split().map(|(parent, _)| parent).unwrap_or(path);
            }
            continue;
        };
        let child = path.join(&n);
        if !ctx.created.contains(&child) {
            fsops::remove_entry(cur.fd(), &n)?;
            continue;
        }
        let Ok(sub) = rustix::fs::openat(
            cur.fd(),
            &n,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue; // created by this layer and not a directory: kept as it is
        };
        if !cleared.insert(fsops::file_id(sub.as_fd())?) {
            continue;
        }
        cur.push(sub)?;
        pending.push(fsops::list_dir(cur.fd())?);
        path = child;
    }
    Ok(())
}
