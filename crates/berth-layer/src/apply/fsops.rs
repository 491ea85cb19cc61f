//! File-system operations confined to a root directory.
//!
//! Every parent directory is opened with `openat2(RESOLVE_IN_ROOT)`, so a symlink — absolute, relative or chained
//! — is resolved as if the process were chrooted into the root and can never lead out of it. The final component
//! of a path is never followed: entries are created, replaced, chowned and timestamped relative to the parent's
//! descriptor with `*at` calls and `AT_SYMLINK_NOFOLLOW`, and permissions are changed only through a descriptor of
//! the object itself.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, openat, openat2, statat, unlinkat};
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

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens a directory inside the root (following symlinks, in-root) as an `O_PATH` descriptor.
pub(crate) fn open_dir(root: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<OwnedFd> {
    openat2(
        root,
        dir.rel(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
}

/// Opens a directory inside the root for reading its entries / changing its metadata.
pub(crate) fn open_dir_rw(root: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<OwnedFd> {
    openat2(
        root,
        dir.rel(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
}

/// Opens (creating as needed, mode 0755, like other extractors do for implied parents) a directory in the root.
/// Fails with `ENOTDIR` when something that is not a directory is in the way.
pub(crate) fn ensure_dir(root: BorrowedFd<'_>, dir: &InRoot) -> rustix::io::Result<OwnedFd> {
    match open_dir(root, dir) {
        Err(Errno::NOENT) => walk_create(root, dir, 0).map(|(fd, _)| fd),
        other => other,
    }
}

/// Resolves `dir` component by component inside the root — following symlinks the way the kernel would, with
/// the root as `/` — creating missing directories, including ones a symlink points at. Returns the directory
/// and its resolved, symlink-free path.
fn walk_create(root: BorrowedFd<'_>, dir: &InRoot, hops: u32) -> rustix::io::Result<(OwnedFd, InRoot)> {
    let Some((parent, name)) = dir.split() else {
        return Ok((
            openat(
                root,
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
            InRoot(PathBuf::new()),
        ));
    };
    let (pfd, presolved) = walk_create(root, &parent, hops)?;
    let open_child = |pfd: &OwnedFd| {
        openat(
            pfd,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    match lstat_at(pfd.as_fd(), name)? {
        None => {
            match rustix::fs::mkdirat(&pfd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            Ok((open_child(&pfd)?, presolved.join(name)))
        }
        Some(st) if file_type(&st) == FileType::Directory => Ok((open_child(&pfd)?, presolved.join(name))),
        Some(st) if file_type(&st) == FileType::Symlink => {
            if hops >= 40 {
                return Err(Errno::LOOP);
            }
            let target = rustix::fs::readlinkat(&pfd, name, Vec::new())?;
            let target = target.as_bytes();
            // `presolved` has no symlinks in it, so `..` in a relative target can be resolved lexically.
            let resolved = if target.starts_with(b"/") {
                InRoot::clean(target)
            } else {
                let mut joined = presolved.0.as_os_str().as_bytes().to_vec();
                joined.push(b'/');
                joined.extend_from_slice(target);
                InRoot::clean(&joined)
            };
            walk_create(root, &resolved, hops + 1)
        }
        Some(_) => Err(Errno::NOTDIR),
    }
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
    match unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    clear_dir(sub.as_fd(), |_| false)?;
    match unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes every entry of the directory `dir` for which `keep` is false.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>, keep: impl Fn(&OsStr) -> bool) -> rustix::io::Result<()> {
    let mut names: Vec<OsString> = Vec::new();
    let mut d = Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(n).to_owned());
    }
    for n in names {
        if !keep(&n) {
            remove_entry(dir, &n)?;
        }
    }
    Ok(())
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
