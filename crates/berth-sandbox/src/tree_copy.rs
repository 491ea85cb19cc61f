//! Copying directory trees as a root filesystem needs them: owners, modes, times, extended attributes (file
//! capabilities included), hardlinks, devices, FIFOs and symlinks kept; file data reflinked where the file system can
//! share extents, copied in the kernel otherwise.
//!
//! [`merge_overlay_layer`] copies a layer extracted in overlayfs form on top of a tree and applies its whiteouts on
//! the way, giving the same view an overlay mount of the layers would: a 0:0 character device deletes what is
//! below, a directory marked `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) hides the lower directory's
//! content, and for everything else the upper layer wins.
//!
//! Every step works on directory file descriptors with `O_NOFOLLOW`, so a symlink in a layer is copied as a symlink
//! and never followed, whatever it points at.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use berth_spec::whiteout::{is_overlay_xattr, is_whiteout_device};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::SandboxError;
use berth_spec::io_context::IoContext;

mod fsops;

use fsops::{Existing, list_xattrs, remove_entry};

/// Deepest directory nesting copied (each level holds two descriptors open).
pub const MAX_DEPTH: usize = 1024;

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Regular files whose data was copied or reflinked.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Extra names of already copied files, recreated as hardlinks.
    pub hardlinks: u64,
    /// Device nodes and FIFOs.
    pub specials: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Whiteouts applied (lower entries deleted).
    pub whiteouts: u64,
    /// Sockets, which cannot be copied and are left out.
    pub skipped_sockets: u64,
    /// Extended attributes the destination refused (`EPERM`, `ENOTSUP`).
    pub skipped_xattrs: u64,
    /// Ownership changes refused (not root).
    pub skipped_owners: u64,
}

/// Copies the content and metadata of directory `src` into the existing directory `dst` (whose own metadata is set
/// from `src`'s). Entries already in `dst` are replaced.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<CopyStats, SandboxError> {
    let s = open_dir_path(src)?;
    let d = open_dir_path(dst)?;
    copy_tree_fd(s.as_fd(), d.as_fd(), src)
}

/// [`copy_tree`] between open directories; `label` names the source in errors.
pub fn copy_tree_fd(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, label: &Path) -> Result<CopyStats, SandboxError> {
    Copier::new(false, label, &AsTheyAre).run(src, dst)
}

/// What a copy takes and the owners and modes it gives: a builder's COPY rules (ignore files, `--chown`,
/// `--chmod`) over the walk of [`copy_entry`] and [`copy_dir_contents`]. The defaults copy everything as it is.
pub trait CopyRules {
    /// Whether the entry at `rel` (the caller's base path joined with the names walked) is copied. A directory
    /// that is not admitted is neither created nor walked.
    fn admit(&self, _rel: &Path, _is_dir: bool) -> bool {
        true
    }
    /// The owner the copy of an entry gets.
    fn owner(&self, st: &Stat) -> (u32, u32) {
        (st.st_uid, st.st_gid)
    }
    /// The permission bits the copy of a file or directory gets.
    fn mode(&self, st: &Stat) -> u32 {
        st.st_mode & 0o7777
    }
    /// Whether devices and FIFOs are copied (else skipped with a warning).
    fn specials(&self) -> bool {
        true
    }
    /// Whether a regular file's data is left out of the copy, which then is an empty file (with the owner, mode and
    /// times it would have had) whose content the caller takes from `src` later. Given the open source, the new
    /// copy and the source's stat.
    fn defer_data(&self, _src: BorrowedFd<'_>, _copy: BorrowedFd<'_>, _st: &Stat) -> bool {
        false
    }
}

/// The default [`CopyRules`]: everything, as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsTheyAre;

impl CopyRules for AsTheyAre {}

/// Copies the entry `name` of directory `src_dir` (recursively if a directory) to `dst_name` in `dst_dir`,
/// replacing what is there (a directory is merged into an existing one). `label` and `rel` name the source in
/// errors (`label/rel`); `rel` is also what [`CopyRules::admit`] sees, joined with the names below it.
pub fn copy_entry(
    src_dir: BorrowedFd<'_>,
    name: &CStr,
    dst_dir: BorrowedFd<'_>,
    dst_name: &CStr,
    label: &Path,
    rel: &Path,
    rules: &dyn CopyRules,
) -> Result<CopyStats, SandboxError> {
    let src = rustix::io::fcntl_dupfd_cloexec(src_dir, 0).at("duplicate descriptor of", label)?;
    let dst = Rc::new(rustix::io::fcntl_dupfd_cloexec(dst_dir, 0).at("duplicate descriptor of", label)?);
    let mut c = Copier::new(false, label, rules);
    c.entry(&src, &dst, name, dst_name, rel, false, 0)?;
    Ok(c.stats)
}

/// Copies the entries of directory `src` into directory `dst`, whose own metadata stays as it is; otherwise as
/// [`copy_entry`] (`rel` is the source directory's path for [`CopyRules::admit`]).
pub fn copy_dir_contents(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    label: &Path,
    rel: &Path,
    rules: &dyn CopyRules,
) -> Result<CopyStats, SandboxError> {
    let src = rustix::io::fcntl_dupfd_cloexec(src, 0).at("duplicate descriptor of", label)?;
    let dst = Rc::new(rustix::io::fcntl_dupfd_cloexec(dst, 0).at("duplicate descriptor of", label)?);
    let mut c = Copier::new(false, label, rules);
    c.dir(&src, &dst, rel, false, 0)?;
    Ok(c.stats)
}

/// Copies the extended attributes of `src` to `dst` (neither followed if a symlink), file capabilities included,
/// overlay's own left out. Returns how many the destination refused (`EPERM`, `ENOTSUP`). Set them after any
/// `chown`, which clears file capabilities.
pub fn copy_xattrs(src: &Path, dst: &Path) -> Result<u64, SandboxError> {
    let names = fsops::list_xattrs(|buf| rustix::fs::llistxattr(src, buf)).at("list the xattrs of", src)?;
    let mut refused = 0;
    for xname in names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty() && !is_overlay_xattr(n))
    {
        let xname = CString::new(xname).expect("split at NUL");
        let value = fsops::list_xattrs(|buf| rustix::fs::lgetxattr(src, &xname, buf)).at("read the xattrs of", src)?;
        match rustix::fs::lsetxattr(dst, &xname, &value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::NOTSUP) => refused += 1,
            Err(e) => return Err(e).at("set the xattrs of", dst).map_err(Into::into),
        }
    }
    Ok(refused)
}

/// Copies a layer extracted in overlayfs form onto `dst`, applying its whiteouts and opaque directories.
pub fn merge_overlay_layer(layer: &Path, dst: &Path) -> Result<CopyStats, SandboxError> {
    let s = open_dir_path(layer)?;
    let d = open_dir_path(dst)?;
    Copier::new(true, layer, &AsTheyAre).run(s.as_fd(), d.as_fd())
}

fn open_dir_path(path: &Path) -> Result<OwnedFd, SandboxError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open directory", path)
    .map_err(Into::into)
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `last access` and `last modification` of a stat.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as i64,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as i64,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// `(device, inode)` of a stat, and whether the file has other names.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn identity(st: &Stat) -> Option<(u64, u64)> {
    (st.st_nlink as u64 > 1).then_some((st.st_dev as u64, st.st_ino as u64))
}

struct Copier<'r> {
    whiteouts: bool,
    rules: &'r dyn CopyRules,
    reflink: bool,
    copy_range: bool,
    /// First copy of each multiply-linked source file: its destination directory and name.
    links: HashMap<(u64, u64), (Rc<OwnedFd>, CString)>,
    stats: CopyStats,
    label: PathBuf,
}

impl<'r> Copier<'r> {
    fn new(whiteouts: bool, label: &Path, rules: &'r dyn CopyRules) -> Self {
        Copier {
            whiteouts,
            rules,
            reflink: true,
            copy_range: true,
            links: HashMap::new(),
            stats: CopyStats::default(),
            label: label.to_owned(),
        }
    }

    fn run(mut self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<CopyStats, SandboxError> {
        let src = rustix::io::fcntl_dupfd_cloexec(src, 0).at("duplicate descriptor of", &self.label)?;
        let dst = Rc::new(rustix::io::fcntl_dupfd_cloexec(dst, 0).at("duplicate descriptor of", &self.label)?);
        let st = rustix::fs::fstat(&src).at("inspect", &self.label)?;
        if self.whiteouts && fsops::is_opaque(src.as_fd()) {
            fsops::clear_dir(dst.as_fd(), 0).at("apply the opaque whiteout of", &self.label)?;
        }
        self.dir(&src, &dst, Path::new(""), false, 0)?;
        self.metadata_fd(src.as_fd(), dst.as_fd(), &st, Path::new(""))?;
        Ok(self.stats)
    }

    fn err(&self, rel: &Path) -> PathBuf {
        self.label.join(rel)
    }

    /// Copies the entries of `src` into `dst`; `fresh` says `dst` was just created (so nothing needs replacing).
    fn dir(
        &mut self,
        src: &OwnedFd,
        dst: &Rc<OwnedFd>,
        rel: &Path,
        fresh: bool,
        depth: usize,
    ) -> Result<(), SandboxError> {
        if depth > MAX_DEPTH {
            return Err(SandboxError::Io(berth_spec::io_context::PathError::new(
                "copy (directories nested too deeply)",
                self.err(rel),
                Errno::LOOP,
            )));
        }
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(src).at("read directory", self.err(rel))? {
            let entry = entry.at("read directory", self.err(rel))?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        for name in names {
            let child = rel.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            self.entry(src, dst, &name, &name, &child, fresh, depth)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        src: &OwnedFd,
        dst: &Rc<OwnedFd>,
        name: &CStr,
        dst_name: &CStr,
        rel: &Path,
        fresh: bool,
        depth: usize,
    ) -> Result<(), SandboxError> {
        let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).at("inspect", self.err(rel))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if !self.rules.admit(rel, kind == FileType::Directory) {
            return Ok(());
        }
        let special = matches!(kind, FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo);
        if special && !self.whiteouts && !self.rules.specials() {
            tracing::warn!(path = %self.err(rel).display(), "not a file, directory or symlink: not copied");
            return Ok(());
        }
        let existing = if fresh {
            Existing::None
        } else {
            Existing::of(dst.as_fd(), dst_name).at("inspect destination", self.err(rel))?
        };
        if self.whiteouts && is_whiteout_device(kind, st.st_rdev) {
            if existing != Existing::None {
                remove_entry(dst.as_fd(), dst_name, 0).at("apply whiteout", self.err(rel))?;
                self.stats.whiteouts += 1;
            }
            return Ok(());
        }
        if kind == FileType::Directory {
            return self.directory(src, dst, (name, dst_name), rel, existing, &st, depth);
        }
        if existing != Existing::None {
            remove_entry(dst.as_fd(), dst_name, 0).at("replace", self.err(rel))?;
        }
        match kind {
            FileType::RegularFile => self.file(src, dst, (name, dst_name), rel, &st),
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name, Vec::new()).at("read symlink", self.err(rel))?;
                rustix::fs::symlinkat(target.as_c_str(), dst, dst_name).at("create symlink", self.err(rel))?;
                self.stats.symlinks += 1;
                self.metadata_at(src.as_fd(), dst.as_fd(), (name, dst_name), &st, rel, true)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let perm = Mode::from_raw_mode(self.rules.mode(&st));
                rustix::fs::mknodat(dst, dst_name, kind, perm, st.st_rdev).at("create device node", self.err(rel))?;
                self.stats.specials += 1;
                self.metadata_at(src.as_fd(), dst.as_fd(), (name, dst_name), &st, rel, false)
            }
            _ => {
                self.stats.skipped_sockets += 1;
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn directory(
        &mut self,
        src: &OwnedFd,
        dst: &Rc<OwnedFd>,
        (name, dst_name): (&CStr, &CStr),
        rel: &Path,
        existing: Existing,
        st: &Stat,
        depth: usize,
    ) -> Result<(), SandboxError> {
        let sub_src = open_dir_at(src.as_fd(), name).at("open directory", self.err(rel))?;
        let fresh = match existing {
            Existing::Dir => {
                if self.whiteouts && fsops::is_opaque(sub_src.as_fd()) {
                    let d = open_dir_at(dst.as_fd(), dst_name).at("open destination", self.err(rel))?;
                    fsops::clear_dir(d.as_fd(), 0).at("apply opaque whiteout", self.err(rel))?;
                }
                false
            }
            other => {
                if other != Existing::None {
                    remove_entry(dst.as_fd(), dst_name, 0).at("replace", self.err(rel))?;
                }
                rustix::fs::mkdirat(dst, dst_name, Mode::from_raw_mode(0o700)).at("create directory", self.err(rel))?;
                true
            }
        };
        let sub_dst = Rc::new(open_dir_at(dst.as_fd(), dst_name).at("open destination", self.err(rel))?);
        self.stats.dirs += 1;
        self.dir(&sub_src, &sub_dst, rel, fresh, depth + 1)?;
        self.metadata_fd(sub_src.as_fd(), sub_dst.as_fd(), st, rel)
    }

    fn file(
        &mut self,
        src: &OwnedFd,
        dst: &Rc<OwnedFd>,
        (name, dst_name): (&CStr, &CStr),
        rel: &Path,
        st: &Stat,
    ) -> Result<(), SandboxError> {
        let id = identity(st);
        if let Some((dir, first)) = id.and_then(|id| self.links.get(&id)) {
            rustix::fs::linkat(dir.as_fd(), first.as_c_str(), dst, dst_name, AtFlags::empty())
                .at("create hardlink", self.err(rel))?;
            self.stats.hardlinks += 1;
            return Ok(());
        }
        let from = rustix::fs::openat(
            src,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .at("open", self.err(rel))?;
        let to = rustix::fs::openat(
            dst,
            dst_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .at("create", self.err(rel))?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if !self.rules.defer_data(from.as_fd(), to.as_fd(), st) {
            let (reflink, copy_range) = (&mut self.reflink, &mut self.copy_range);
            self.stats.bytes +=
                fsops::copy_data(&from, &to, size, reflink, copy_range).at("copy data to", self.err(rel))?;
        }
        self.stats.files += 1;
        self.metadata_fd(from.as_fd(), to.as_fd(), st, rel)?;
        if let Some(id) = id {
            self.links.insert(id, (Rc::clone(dst), dst_name.to_owned()));
        }
        Ok(())
    }

    /// Owner, xattrs, mode and times, in that order (chown clears set-id bits and file capabilities).
    fn metadata_fd(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        st: &Stat,
        rel: &Path,
    ) -> Result<(), SandboxError> {
        let (uid, gid) = self.rules.owner(st);
        match rustix::fs::fchown(dst, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))) {
            Ok(()) => {}
            Err(Errno::PERM) => self.stats.skipped_owners += 1,
            Err(e) => return Err(e).at("set owner of", self.err(rel)).map_err(Into::into),
        }
        let names = list_xattrs(|buf| rustix::fs::flistxattr(src, buf)).at("list xattrs of", self.err(rel))?;
        for xname in names
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty() && !is_overlay_xattr(n))
        {
            let xname = CString::new(xname).expect("split at NUL");
            let value =
                list_xattrs(|buf| rustix::fs::fgetxattr(src, &xname, buf)).at("read xattr of", self.err(rel))?;
            match rustix::fs::fsetxattr(dst, &xname, &value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP) => self.stats.skipped_xattrs += 1,
                Err(e) => return Err(e).at("set xattr of", self.err(rel)).map_err(Into::into),
            }
        }
        rustix::fs::fchmod(dst, Mode::from_raw_mode(self.rules.mode(st))).at("set mode of", self.err(rel))?;
        rustix::fs::futimens(dst, &times(st))
            .at("set times of", self.err(rel))
            .map_err(Into::into)
    }

    /// [`Self::metadata_fd`] for entries that cannot be opened (symlinks, devices, FIFOs).
    fn metadata_at(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        (name, dst_name): (&CStr, &CStr),
        st: &Stat,
        rel: &Path,
        symlink: bool,
    ) -> Result<(), SandboxError> {
        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        let (uid, gid) = self.rules.owner(st);
        match rustix::fs::chownat(
            dst,
            dst_name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nofollow,
        ) {
            Ok(()) => {}
            Err(Errno::PERM) => self.stats.skipped_owners += 1,
            Err(e) => return Err(e).at("set owner of", self.err(rel)).map_err(Into::into),
        }
        self.stats.skipped_xattrs +=
            fsops::copy_xattrs_at((src, name), (dst, dst_name)).at("copy xattrs of", self.err(rel))?;
        if !symlink {
            rustix::fs::chmodat(
                dst,
                dst_name,
                Mode::from_raw_mode(self.rules.mode(st)),
                AtFlags::empty(),
            )
            .at("set mode of", self.err(rel))?;
        }
        rustix::fs::utimensat(dst, dst_name, &times(st), nofollow)
            .at("set times of", self.err(rel))
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests;
