//! File-system operations confined to a root directory.
//!
//! Every parent directory is opened with `openat2(RESOLVE_IN_ROOT)`, so a symlink — absolute, relative or chained
//! — is resolved as if the process were chrooted into the root and can never lead out of it. The final component
//! of a path is never followed: entries are created, replaced, chowned and timestamped relative to the parent's
//! descriptor with `*at` calls and `AT_SYMLINK_NOFOLLOW`, and permissions are changed only through a descriptor of
//! the object itself. A parent directory that does not exist yet is created by a walk that resolves the path the
//! same way, one `*at` call at a time (see `walk_create`).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, openat, statat, unlinkat};
use rustix::io::Errno;

/// A path inside the root, cleaned lexically: no `.`, no `..` (a `..` at the top stays at the top), no leading
/// `/`. Empty means the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct InRoot(PathBuf);

impl InRoot {
    /// Cleans a tar entry name (bytes, possibly absolute, possibly with `..`).
    pub(crate) fn clean(raw: &[u8]) -> InRoot {
        let mut out = PathBuf::new();
        for c in Path::new(OsStr::from_bytes(raw)).components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::ParentDir => {
                    out.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        InRoot(out)
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Parent (in-root) and base name; `None` for the root.
    pub(crate) fn split(&self) -> Option<(InRoot, &OsStr)> {
        let name = self.0.file_name()?;
        Some((InRoot(self.0.parent().map(Path::to_owned).unwrap_or_default()), name))
    }

    pub(crate) fn join(&self, name: &OsStr) -> InRoot {
        InRoot(self.0.join(name))
    }

    /// The path relative to the root as given to `openat2` (`.` for the root).
    fn rel(&self) -> &Path {
        if self.is_root() { Path::new(".") } else { &self.0 }
    }
}

/// Opens a directory inside the root (following symlinks, in-root) as an `O_PATH` descriptor.
pub(crate) fn open_dir(root: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<OwnedFd> {
    berth_spec::in_root::open(root, dir.rel(), OFlags::PATH | OFlags::DIRECTORY)
}

/// Opens a directory inside the root for reading its entries / changing its metadata.
pub(crate) fn open_dir_rw(root: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<OwnedFd> {
    berth_spec::in_root::open(root, dir.rel(), OFlags::RDONLY | OFlags::DIRECTORY)
}

/// How many symlinks resolving one path may follow, as in the kernel (`MAXSYMLINKS`); more is `ELOOP`.
pub(crate) const MAX_SYMLINKS: u32 = 40;

/// Opens (creating as needed, mode 0755, like other extractors do for implied parents) a directory in the root.
/// Fails with `ENOTDIR` when something that is not a directory is in the way, and `ELOOP` when resolving it follows
/// more than [`MAX_SYMLINKS`] symlinks.
pub(crate) fn ensure_dir(root: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<OwnedFd> {
    match open_dir(root, dir) {
        Err(Errno::NOENT) => walk_create(root, dir),
        other => other,
    }
}

/// Resolves `dir` inside the root as the kernel resolves a path — with the root as `/` — creating missing
/// directories, including ones a symlink points at.
///
/// Components wait in a queue; a symlink puts its target's components at the front (an absolute target first
/// goes back to the root), `..` goes to the real parent of where the walk is (staying at the root there), and at
/// most [`MAX_SYMLINKS`] symlinks are followed in all. Every step is an `*at` call that never follows a symlink,
/// so the walk cannot leave the root, and its cost is linear in the length of `dir` and of the targets followed.
fn walk_create(root: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<OwnedFd> {
    let open_root = || {
        openat(
            root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let mut cur = DirCursor::new(open_root()?, OFlags::PATH);
    let mut todo: VecDeque<Vec<u8>> = dir.path().iter().map(|c| c.as_bytes().to_vec()).collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        match &name[..] {
            b"" | b"." => continue,
            b".." => {
                cur.leave()?;
                continue;
            }
            _ => {}
        }
        let name = OsStr::from_bytes(&name);
        match lstat_at(cur.fd(), name)? {
            None => {
                match rustix::fs::mkdirat(cur.fd(), name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
                cur.enter(name)?;
            }
            Some(st) if file_type(&st) == FileType::Directory => cur.enter(name)?,
            Some(st) if file_type(&st) == FileType::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP);
                }
                let target = rustix::fs::readlinkat(cur.fd(), name, Vec::new())?;
                let target = target.as_bytes();
                if target.is_empty() {
                    return Err(Errno::NOENT);
                }
                if target.starts_with(b"/") {
                    cur = DirCursor::new(open_root()?, OFlags::PATH);
                }
                for c in target.split(|&b| b == b'/').rev().filter(|c| !c.is_empty()) {
                    todo.push_front(c.to_vec());
                }
            }
            Some(_) => return Err(Errno::NOTDIR),
        }
    }
    Ok(cur.fd)
}

/// A position in a directory tree that moves one level at a time and holds one descriptor, however deep it goes.
/// Going up opens `..` and checks that it is the directory the cursor came down from (same device and inode), so
/// a directory renamed meanwhile cannot lead anywhere else; at the top, going up stays put.
pub(crate) struct DirCursor {
    fd: OwnedFd,
    /// How directories are opened (`O_PATH` or `O_RDONLY`).
    flags: OFlags,
    /// Device and inode of each directory above, the top first.
    above: Vec<(u64, u64)>,
}

impl DirCursor {
    pub(crate) fn new(fd: OwnedFd, flags: OFlags) -> Self {
        DirCursor {
            fd,
            flags,
            above: Vec::new(),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Moves into the subdirectory `name` (never through a symlink).
    pub(crate) fn enter(&mut self, name: &OsStr) -> rustix::io::Result<()> {
        let child = openat(
            &self.fd,
            name,
            self.flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        self.push(child)
    }

    /// Moves into `child`, a subdirectory of the current directory opened by the caller.
    pub(crate) fn push(&mut self, child: OwnedFd) -> rustix::io::Result<()> {
        self.above.push(file_id(self.fd.as_fd())?);
        self.fd = child;
        Ok(())
    }

    /// Moves to the parent directory; stays at the top. On failure the cursor has not moved.
    pub(crate) fn leave(&mut self) -> rustix::io::Result<()> {
        let Some(&want) = self.above.last() else {
            return Ok(());
        };
        let up = openat(
            &self.fd,
            "..",
            self.flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if file_id(up.as_fd())? != want {
            return Err(Errno::STALE);
        }
        self.above.pop();
        self.fd = up;
        Ok(())
    }
}

/// Device and inode of an open file.
pub(crate) fn file_id(fd: BorrowedFd<'_>) -> rustix::io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// lstat of `name` in `dir`; `None` when absent.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<Option<rustix::fs::Stat>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn file_type(st: &rustix::fs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Removes `name` from `dir`, recursively for directories, never following symlinks.
pub(crate) fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    remove_tree(dir, name, false)
}

/// Removes the directory tree at `path` — which the caller owns, like an extraction's temp directory — also when
/// directories in it deny their owner access (mode 0000 or 0500, as layers may carry): a non-root remover makes
/// such directories `u+rwx` as it goes.
pub fn remove_dir_all_forcing(path: impl AsRef<Path>) -> std::io::Result<()> {
    let path = path.as_ref();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a path that can be removed", path.display()),
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let pfd = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    remove_tree(pfd.as_fd(), name, true).map_err(Into::into)
}

/// Depth-first removal that holds one directory descriptor whatever the depth (see [`DirCursor`]) and keeps,
/// for each directory it is in, the names still to remove there — so its time is linear in the tree's size.
/// With `force`, directories that deny access are made `u+rwx` and the operation retried.
fn remove_tree(top: BorrowedFd<'_>, name: &OsStr, force: bool) -> rustix::io::Result<()> {
    if !unlink_or_find_dir(top, name, force)? {
        return Ok(());
    }
    let mut cur = DirCursor::new(open_subdir(top, name, force)?, OFlags::RDONLY);
    // The directories entered, each with its name and the entries left to remove in it.
    let mut stack = vec![(name.to_owned(), list_dir(cur.fd())?)];
    while let Some((_, pending)) = stack.last_mut() {
        if let Some(child) = pending.pop() {
            if unlink_or_find_dir(cur.fd(), &child, force)? {
                let sub = open_subdir(cur.fd(), &child, force)?;
                cur.push(sub)?;
                let names = list_dir(cur.fd())?;
                stack.push((child, names));
            }
            continue;
        }
        let (done, _) = stack.pop().expect("the stack is not empty");
        if stack.is_empty() {
            return remove_empty_dir(top, &done, force);
        }
        match cur.leave() {
            Err(Errno::ACCESS) if force => {
                make_rwx(cur.fd())?;
                cur.leave()?;
            }
            other => other?,
        }
        remove_empty_dir(cur.fd(), &done, force)?;
    }
    Ok(())
}

/// Unlinks `name` unless it is a directory; returns whether it is one (and so still there).
fn unlink_or_find_dir(dir: BorrowedFd<'_>, name: &OsStr, force: bool) -> rustix::io::Result<bool> {
    let mut forced = false;
    loop {
        let err = match unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => return Ok(false),
            Err(Errno::ISDIR) => return Ok(true),
            // POSIX lets unlinking a directory fail with EPERM; otherwise it means a sticky or immutable file.
            Err(Errno::PERM) if lstat_at(dir, name)?.is_some_and(|st| file_type(&st) == FileType::Directory) => {
                return Ok(true);
            }
            Err(e) => e,
        };
        if !(force && !forced && matches!(err, Errno::ACCESS | Errno::PERM)) {
            return Err(err);
        }
        make_rwx(dir)?;
        forced = true;
    }
}

fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr, force: bool) -> rustix::io::Result<OwnedFd> {
    let open = || {
        openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    match open() {
        Err(Errno::ACCESS) if force => {
            let path = openat(
                dir,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            make_rwx(path.as_fd())?;
            open()
        }
        other => other,
    }
}

fn remove_empty_dir(dir: BorrowedFd<'_>, name: &OsStr, force: bool) -> rustix::io::Result<()> {
    match unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ACCESS | Errno::PERM) if force => {
            make_rwx(dir)?;
            match unlinkat(dir, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Gives a directory's owner full access to it (through `/proc/self/fd`, which also works for `O_PATH`
/// descriptors).
fn make_rwx(dir: BorrowedFd<'_>) -> rustix::io::Result<()> {
    rustix::fs::chmod(proc_fd_path(dir), Mode::from_raw_mode(0o700))
}

/// The names in a directory, `.` and `..` left out. Reads through a duplicate of `dir`, so a directory its owner
/// may read but not search can be listed.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    let mut d = Dir::new(rustix::io::dup(dir)?)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(names)
}

/// The `/proc/self/fd/N` path of a descriptor, to change the mode of an object that cannot be opened for
/// writing (device nodes, FIFOs) without following any link.
pub(crate) fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_keeps_everything_inside() {
        for (raw, want) in [
            ("../x", "x"),
            ("/../x", "x"),
            ("/abs/p", "abs/p"),
            ("a/../../b", "b"),
            ("./a/./b/", "a/b"),
            ("", ""),
            (".", ""),
            ("/", ""),
            ("a/b/../../../..", ""),
        ] {
            assert_eq!(InRoot::clean(raw.as_bytes()).path(), Path::new(want), "{raw}");
        }
    }
}
