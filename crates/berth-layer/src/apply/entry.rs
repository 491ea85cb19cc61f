//! One tar entry: metadata from the header and PAX records, then creation inside the root.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use tar::EntryType;

use super::fsops::{self, InRoot};
use super::{ApplyError, Ctx, IdRange, WhiteoutMode, io_err, refused};
use crate::whiteout::{self, Whiteout};

const DEFAULT_MAX_SPARSE: u64 = 64 << 30;
const BUF: usize = 1 << 20;

/// Header data resolved from the ustar/GNU fields and PAX overrides.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    dev: (u32, u32),
}

fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    let tv_nsec = if tv_sec < 0 && tv_nsec > 0 { -tv_nsec } else { tv_nsec };
    // Normalize a negative fraction into [0, 1e9).
    if tv_nsec < 0 {
        Some(Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: tv_nsec + 1_000_000_000,
        })
    } else {
        Some(Timespec { tv_sec, tv_nsec })
    }
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

fn read_meta<R: Read>(ctx: &Ctx<'_>, e: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, ApplyError> {
    let h = e.header();
    // As Go's archive/tar (and so containerd and umoci) does, an all-NUL/blank numeric field reads as 0.
    let num = |what: &'static str, v: io::Result<u64>, field: &[u8]| match v {
        Ok(v) => Ok(v),
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(err) => Err(refused(name, format!("bad {what} field: {err}"))),
    };
    let old = h.as_old();
    let mut uid = num("uid", h.uid(), &old.uid)?;
    let mut gid = num("gid", h.gid(), &old.gid)?;
    let mode = num("mode", h.mode().map(u64::from), &old.mode)? as u32 & 0o7777;
    let mut mtime = Timespec {
        tv_sec: num("mtime", h.mtime(), &old.mtime)? as i64,
        tv_nsec: 0,
    };
    let dev = (
        h.device_major().ok().flatten().unwrap_or(0),
        h.device_minor().ok().flatten().unwrap_or(0),
    );
    let mut xattrs = Vec::new();
    let bad_pax = |err: io::Error| refused(name, format!("malformed PAX header: {err}"));
    if let Some(pax) = e.pax_extensions().map_err(bad_pax)? {
        for rec in pax {
            let rec = rec.map_err(bad_pax)?;
            let key = rec.key_bytes();
            let val = rec.value_bytes();
            let text = || std::str::from_utf8(val).ok();
            match key {
                b"uid" => {
                    uid = text()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| refused(name, "bad PAX uid"))?
                }
                b"gid" => {
                    gid = text()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| refused(name, "bad PAX gid"))?
                }
                b"mtime" => {
                    mtime = text()
                        .and_then(parse_pax_time)
                        .ok_or_else(|| refused(name, "bad PAX mtime"))?
                }
                _ => {
                    if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((x.to_vec(), val.to_vec()));
                    } else if let Some(x) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                        xattrs.push((x.to_vec(), val.to_vec()));
                    }
                }
            }
        }
    }
    for (k, _) in &xattrs {
        if k.starts_with(b"trusted.overlay.") || k.starts_with(b"user.overlay.") {
            return Err(refused(
                name,
                format!(
                    "carries the overlayfs xattr {:?}; layers must not forge overlay metadata",
                    String::from_utf8_lossy(k)
                ),
            ));
        }
    }
    let uid = map_id(uid, &ctx.opts.uid_map, "uid", name)?;
    let gid = map_id(gid, &ctx.opts.gid_map, "gid", name)?;
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
        dev,
    })
}

/// Applies one entry.
pub(crate) fn apply_entry<R: Read>(ctx: &mut Ctx<'_>, e: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
    let raw = e.path_bytes().into_owned();
    let name = String::from_utf8_lossy(&raw).into_owned();
    let kind = e.header().entry_type();
    if raw.contains(&0) {
        return Err(refused(&name, "entry name contains a NUL byte"));
    }
    let path = InRoot::clean(&raw);
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
    if matches!(
        kind,
        EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
    ) {
        return Ok(());
    }
    let meta = read_meta(ctx, e, &name)?;
    let pfd = fsops::ensure_dir(ctx.root_fd(), &parent).map_err(|err| match err {
        Errno::NOTDIR => refused(&name, "a parent path component is not a directory"),
        other => ApplyError::Io {
            entry: name.clone(),
            action: "open the parent directory",
            source: other.into(),
        },
    })?;
    let existing = fsops::lstat_at(pfd.as_fd(), &base).map_err(|err| io_err(&name, "stat")(err.into()))?;
    let is_dir = kind.is_dir();
    if let Some(st) = &existing {
        let keep_dir = is_dir && fsops::file_type(st) == FileType::Directory;
        if !keep_dir {
            if kind.is_hard_link() && same_entry(&raw, e) {
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
            let max = ctx.opts.max_sparse_size.unwrap_or(DEFAULT_MAX_SPARSE);
            let sparse = kind.is_gnu_sparse();
            if sparse && e.size() > max {
                return Err(refused(
                    &name,
                    format!("sparse file claims {} bytes, more than the {max}-byte limit", e.size()),
                ));
            }
            make_file(ctx, &pfd, &base, &meta, e, sparse, &name)
        }
        EntryType::Symlink => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| refused(&name, "symlink without a target"))?
                .into_owned();
            rustix::fs::symlinkat(OsStr::from_bytes(&target), &pfd, &base)
                .map_err(|err| io_err(&name, "create symlink")(err.into()))?;
            chown_at(ctx, pfd.as_fd(), &base, &meta, &name)?;
            set_times_at(pfd.as_fd(), &base, meta.mtime);
            Ok(())
        }
        EntryType::Link => {
            let target = e
                .link_name_bytes()
                .ok_or_else(|| refused(&name, "hardlink without a target"))?
                .into_owned();
            hardlink(ctx, &pfd, &base, &target, &name)
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
            set_xattrs(obj.as_fd(), &meta, &name, true)?;
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

fn same_entry<R: Read>(raw: &[u8], e: &tar::Entry<'_, R>) -> bool {
    e.link_name_bytes()
        .is_some_and(|t| InRoot::clean(&t) == InRoot::clean(raw))
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
    set_xattrs(dfd.as_fd(), meta, name, false)?;
    ctx.dir_times.push((
        path.clone(),
        Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        },
    ));
    Ok(())
}

fn make_file<R: Read>(
    ctx: &mut Ctx<'_>,
    pfd: &OwnedFd,
    base: &OsStr,
    meta: &Meta,
    e: &mut tar::Entry<'_, R>,
    sparse: bool,
    name: &str,
) -> Result<(), ApplyError> {
    let fd = rustix::fs::openat(
        pfd,
        base,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|err| io_err(name, "create file")(err.into()))?;
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; BUF];
    let mut len = 0u64;
    loop {
        let n = e
            .read(&mut buf)
            .map_err(io_err(name, "read the entry's data (truncated or corrupt layer)"))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if sparse && chunk.iter().all(|&b| b == 0) {
            // Leave a hole rather than allocating zeros a sparse entry describes.
            io::Seek::seek(&mut file, io::SeekFrom::Current(n as i64)).map_err(io_err(name, "seek"))?;
        } else {
            file.write_all(chunk).map_err(io_err(name, "write"))?;
        }
        len += n as u64;
    }
    if sparse {
        file.set_len(len).map_err(io_err(name, "set the length of"))?;
    }
    chown_fd(ctx, file.as_fd(), meta, name)?;
    // After chown, which clears setuid/setgid.
    rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode)).map_err(|err| io_err(name, "chmod")(err.into()))?;
    set_xattrs(file.as_fd(), meta, name, false)?;
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

fn set_xattrs(fd: BorrowedFd<'_>, meta: &Meta, name: &str, via_proc: bool) -> Result<(), ApplyError> {
    for (k, v) in &meta.xattrs {
        let key = OsStr::from_bytes(k);
        let r = if via_proc {
            rustix::fs::lsetxattr(fsops::proc_fd_path(fd), key, v, rustix::fs::XattrFlags::empty())
        } else {
            rustix::fs::fsetxattr(fd, key, v, rustix::fs::XattrFlags::empty())
        };
        match r {
            Ok(()) => {}
            Err(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS) => {
                tracing::warn!(entry = %name, xattr = %key.to_string_lossy(), "xattr not supported or not permitted here; skipped");
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
            let pfd = fsops::ensure_dir(ctx.root_fd(), parent)
                .map_err(|err| io_err(name, "open the whiteout's directory")(err.into()))?;
            if fsops::lstat_at(pfd.as_fd(), target)
                .map_err(|err| io_err(name, "stat")(err.into()))?
                .is_some()
            {
                fsops::remove_entry(pfd.as_fd(), target).map_err(|err| io_err(name, "replace")(err.into()))?;
            }
            rustix::fs::mknodat(&pfd, target, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(|err| io_err(name, "create overlay whiteout (needs CAP_MKNOD)")(err.into()))?;
            ctx.created.insert(victim);
            Ok(())
        }
    }
}

fn opaque(ctx: &mut Ctx<'_>, dir: &InRoot, name: &str) -> Result<(), ApplyError> {
    ctx.opaque.push((dir.clone(), name.to_owned()));
    Ok(())
}

/// Clears lower content of opaque directories and sets directory times; runs after every entry is in place.
pub(crate) fn finish(ctx: &mut Ctx<'_>) -> Result<(), ApplyError> {
    let opaque = std::mem::take(&mut ctx.opaque);
    for (dir, name) in opaque {
        fsops::ensure_dir(ctx.root_fd(), &dir).map_err(|err| io_err(&name, "open opaque directory")(err.into()))?;
        let rw = fsops::open_dir_rw(ctx.root_fd(), &dir)
            .map_err(|err| io_err(&name, "open opaque directory")(err.into()))?;
        match ctx.opts.whiteouts {
            WhiteoutMode::Oci => {
                clear_lower(ctx, rw.as_fd(), &dir).map_err(|err| io_err(&name, "apply opaque whiteout")(err.into()))?
            }
            WhiteoutMode::Overlay { user_xattr } => {
                let key = if user_xattr {
                    whiteout::USER_OVERLAY_OPAQUE_XATTR
                } else {
                    whiteout::OVERLAY_OPAQUE_XATTR
                };
                rustix::fs::fsetxattr(&rw, key, b"y", rustix::fs::XattrFlags::empty())
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

/// Removes from `dir` everything this layer did not create, descending into directories it did create.
fn clear_lower(ctx: &Ctx<'_>, dfd: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<()> {
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dfd)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_owned());
        }
    }
    for n in names {
        let child = dir.join(&n);
        if !ctx.created.contains(&child) {
            fsops::remove_entry(dfd, &n)?;
        } else if let Ok(sub) = rustix::fs::openat(
            dfd,
            &n,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            clear_lower(ctx, sub.as_fd(), &child)?;
        }
    }
    Ok(())
}
