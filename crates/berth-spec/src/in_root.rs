//! Opening paths inside a directory tree that is hostile input (an image's root filesystem, a layer being
//! extracted, a build context): `openat2` with `RESOLVE_IN_ROOT`, so symlinks and `..` resolve as if the tree were
//! `/` and never lead out of it, and `RESOLVE_NO_MAGICLINKS`, so `/proc/self/...`-style links are refused. The layer
//! codec and the sandbox both open through here.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
use rustix::io::Errno;

/// How often a transient failure (`EAGAIN`: the tree changed during resolution; `EINTR`) is retried.
const RETRIES: u32 = 16;

/// Opens `path` (absolute or relative; `/` or empty is the root itself) below the directory `root` with `flags`
/// (`O_CLOEXEC` added), resolved inside it.
pub fn open(root: impl AsFd, path: impl AsRef<Path>, flags: OFlags) -> Result<OwnedFd, Errno> {
    let path = path.as_ref();
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match openat2(root.as_fd(), rel, flags | OFlags::CLOEXEC, Mode::empty(), how) {
            Err(Errno::AGAIN | Errno::INTR) if tries < RETRIES => tries += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_dotdot_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", root.join("up")).unwrap();
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for p in ["abs", "/up", "../etc/passwd", "etc/passwd"] {
            let f = open(&fd, p, OFlags::RDONLY).unwrap();
            let text = std::io::read_to_string(std::fs::File::from(f)).unwrap();
            assert_eq!(text, "inside\n", "{p}");
        }
        assert!(open(&fd, "/", OFlags::PATH | OFlags::DIRECTORY).is_ok());
        assert_eq!(open(&fd, "missing", OFlags::RDONLY).unwrap_err(), Errno::NOENT);
    }
}
