//! Reading and preparing an image's root filesystem without ever leaving it.
//!
//! The root filesystem is hostile input: `/etc/passwd` may be a symlink to a host file, a FIFO that blocks forever,
//! or a gigabyte of text; `/proc` may be a symlink to `/`. Every lookup here goes through `openat2` with
//! `RESOLVE_IN_ROOT`, so symlinks and `..` are resolved as if the root filesystem were `/`, and magic links are
//! refused.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::SandboxError;
use berth_spec::io_context::IoContext;

/// Largest `/etc/passwd` or `/etc/group` read.
pub const MAX_ACCOUNT_FILE: u64 = 1 << 20;

/// An open root filesystem, labeled with the image it came from for error messages.
#[derive(Debug)]
pub struct RootFs {
    path: PathBuf,
    fd: OwnedFd,
    image: String,
}

impl RootFs {
    /// Opens the directory `path` as the root of image `image`.
    pub fn open(path: &Path, image: &str) -> Result<RootFs, SandboxError> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .at("open the root filesystem", path)?;
        Ok(RootFs {
            path: path.to_owned(),
            fd,
            image: image.to_owned(),
        })
    }

    /// The root filesystem's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image label given to [`RootFs::open`].
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Opens `path` (absolute or relative, resolved inside the root) with `flags`, retrying the transient failures
    /// `openat2` reports when the tree changes under it.
    pub fn open_in_root(&self, path: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        berth_spec::in_root::open(&self.fd, path.trim_start_matches('/'), flags)
    }

    /// Refuses a root filesystem whose `/dev`, `/proc` or `/sys` is a symlink or not a directory: the runtime
    /// mounts over those paths, and a link would point its mounts elsewhere (HOSTILE-INPUTS 32). Absent is fine.
    pub fn check_special_dirs(&self) -> Result<(), SandboxError> {
        for name in ["dev", "proc", "sys"] {
            let stat = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => s,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e).at("inspect", self.path.join(name)).map_err(Into::into),
            };
            let what = match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => continue,
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!("a symbolic link to {target:?}")
                }
                _ => "not a directory".to_owned(),
            };
            return Err(SandboxError::SpecialDir {
                image: self.image.clone(),
                name,
                what,
            });
        }
        Ok(())
    }

    /// Reads a regular file inside the root, at most `limit` bytes. `Ok(None)` when it does not exist.
    pub fn read_file(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, SandboxError> {
        let fd = match self.open_in_root(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e).at("open", self.host_path(path)).map_err(Into::into),
        };
        let stat = rustix::fs::fstat(&fd).at("inspect", self.host_path(path))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(SandboxError::NotRegular {
                image: self.image.clone(),
                path: path.to_owned(),
            });
        }
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .at("read", self.host_path(path))?;
        if bytes.len() as u64 > limit {
            return Err(SandboxError::FileTooLarge {
                image: self.image.clone(),
                path: path.to_owned(),
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(Some(bytes))
    }

    /// The image's `/etc/passwd` and `/etc/group` as text (empty when absent), read in-root.
    pub fn account_files(&self) -> Result<(String, String), SandboxError> {
        let text = |path| -> Result<String, SandboxError> {
            let bytes = self.read_file(path, MAX_ACCOUNT_FILE)?.unwrap_or_default();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        Ok((text("/etc/passwd")?, text("/etc/group")?))
    }

    /// Opens a directory inside the root for reading; `Ok(None)` when the path does not exist or is not a
    /// directory.
    pub fn open_dir(&self, path: &str) -> Result<Option<OwnedFd>, SandboxError> {
        match self.open_in_root(path, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
            Err(e) => Err(e).at("open", self.host_path(path)).map_err(Into::into),
        }
    }

    /// Makes sure the absolute container path `path` is a directory, creating missing components (root-owned, mode
    /// 0755, as Docker creates a missing working directory). Symlinks on the way resolve inside the root; one that
    /// dangles is followed and its target created, as runc's in-root `MkdirAll` does.
    pub fn ensure_dir(&self, path: &str) -> Result<(), SandboxError> {
        let not_dir = || SandboxError::WorkdirNotDir {
            image: self.image.clone(),
            path: path.to_owned(),
        };
        let mut current = path.to_owned();
        let mut links = 0;
        'walk: loop {
            let components: Vec<&str> = current.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
            let mut parent = self
                .open_in_root("/", OFlags::PATH | OFlags::DIRECTORY)
                .at("open", &self.path)?;
            for i in 0..components.len() {
                let prefix = components[..=i].join("/");
                match self.open_in_root(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                    Ok(fd) => parent = fd,
                    Err(Errno::NOTDIR) => return Err(not_dir()),
                    Err(Errno::NOENT) => {
                        match rustix::fs::mkdirat(parent.as_fd(), components[i], Mode::from_raw_mode(0o755)) {
                            Ok(()) => {
                                parent = self
                                    .open_in_root(&prefix, OFlags::PATH | OFlags::DIRECTORY)
                                    .at("open", self.host_path(&prefix))?;
                            }
                            Err(Errno::EXIST) if links < 40 => {
                                // A dangling symlink: continue along its target (still resolved in-root).
                                let target = rustix::fs::readlinkat(parent.as_fd(), components[i], Vec::new())
                                    .at("read symlink", self.host_path(&prefix))?;
                                let target = target.to_string_lossy();
                                let rest = components[i + 1..].join("/");
                                let base = if target.starts_with('/') {
                                    target.into_owned()
                                } else {
                                    format!("{}/{target}", components[..i].join("/"))
                                };
                                current = format!("{base}/{rest}");
                                links += 1;
                                continue 'walk;
                            }
                            Err(e) => {
                                return Err(e)
                                    .at("create directory", self.host_path(&prefix))
                                    .map_err(Into::into);
                            }
                        }
                    }
                    Err(e) => {
                        return Err(e)
                            .at("create directory", self.host_path(&prefix))
                            .map_err(Into::into);
                    }
                }
            }
            return Ok(());
        }
    }

    /// Makes sure a mount destination exists before the runtime mounts there, as runc does: missing parents become
    /// directories, and a missing last component (or the missing target of a dangling symlink, followed inside the
    /// root, such as `/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf`) becomes an empty directory
    /// (`dir`) or file. Whatever exists is left as it is, for the runtime to judge.
    pub fn ensure_mount_target(&self, path: &str, dir: bool) -> Result<(), SandboxError> {
        let not_dir = |e: SandboxError| match e {
            SandboxError::WorkdirNotDir { path: p, .. } => SandboxError::option(
                format!("mount at {path}"),
                format!("{p} in the image is not a directory, so nothing can be mounted below it"),
            ),
            other => other,
        };
        let mut current = berth_spec::runtime_config::clean_absolute(path);
        for _ in 0..40 {
            let Some((parent, name)) = current.rsplit_once('/') else {
                return Ok(());
            };
            let parent = if parent.is_empty() { "/" } else { parent };
            if name.is_empty() {
                return Ok(());
            }
            self.ensure_dir(parent).map_err(not_dir)?;
            let parent_fd = self
                .open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY)
                .at("open", self.host_path(parent))?;
            match rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => {
                    let made = if dir {
                        rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755))
                    } else {
                        rustix::fs::openat(
                            &parent_fd,
                            name,
                            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o644),
                        )
                        .map(drop)
                    };
                    return match made {
                        Ok(()) | Err(Errno::EXIST) => Ok(()),
                        Err(e) => Err(e)
                            .at("create a mount point at", self.host_path(&current))
                            .map_err(Into::into),
                    };
                }
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    if self.open_in_root(&current, OFlags::PATH).is_ok() {
                        return Ok(());
                    }
                    let target = rustix::fs::readlinkat(&parent_fd, name, Vec::new())
                        .at("read symlink", self.host_path(&current))?;
                    let target = target.to_string_lossy();
                    current = if target.starts_with('/') {
                        berth_spec::runtime_config::clean_absolute(&target)
                    } else {
                        // Relative to where the parent really is (it may itself be reached through a symlink).
                        let real = self.in_root_path(&parent_fd).unwrap_or_else(|| parent.to_owned());
                        berth_spec::runtime_config::clean_absolute(&format!("{real}/{target}"))
                    };
                }
                Ok(st) => {
                    // A directory cannot be bound over a file, nor a file over a directory.
                    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                    if is_dir != dir {
                        let (what, there) = if dir {
                            ("a directory", "is not a directory")
                        } else {
                            ("a file", "is a directory")
                        };
                        return Err(SandboxError::option(
                            format!("mount at {path}"),
                            format!("{current} in the image {there}, so {what} cannot be mounted there"),
                        ));
                    }
                    return Ok(());
                }
                Err(e) => return Err(e).at("inspect", self.host_path(&current)).map_err(Into::into),
            }
        }
        Err(SandboxError::option(
            format!("mount at {path}"),
            "the path goes through too many symlinks in the image",
        ))
    }

    /// Resolves the absolute container path `path` as the kernel would inside the root, without creating anything:
    /// symlinks are followed (at most 40, absolute ones from the root), `..` goes to the real parent of where the
    /// walk is, and from the first component that does not exist on, the rest is appended as written (cleaned).
    /// The result is absolute, normalized and free of symlinks that exist now.
    pub fn resolve(&self, path: &str) -> Result<String, SandboxError> {
        let mut queue: std::collections::VecDeque<String> = split_components(path).collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(name) = queue.pop_front() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            let parent = format!("/{}", resolved.join("/"));
            let st = match self.open_in_root(&parent, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => match rustix::fs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => Some((fd, st)),
                    Err(Errno::NOENT) => None,
                    Err(e) => {
                        return Err(e)
                            .at("inspect", self.host_path(&format!("{parent}/{name}")))
                            .map_err(Into::into);
                    }
                },
                Err(Errno::NOENT | Errno::NOTDIR) => None,
                Err(e) => return Err(e).at("open", self.host_path(&parent)).map_err(Into::into),
            };
            let Some((fd, st)) = st else {
                // Missing from here on: nothing below can be a symlink yet.
                resolved.push(name);
                for rest in queue.drain(..) {
                    if rest == ".." {
                        resolved.pop();
                    } else {
                        resolved.push(rest);
                    }
                }
                break;
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                resolved.push(name);
                continue;
            }
            links += 1;
            if links > 40 {
                return Err(SandboxError::option(
                    format!("mount at {path}"),
                    "the path goes through too many symlinks in the image",
                ));
            }
            let target = rustix::fs::readlinkat(&fd, name.as_str(), Vec::new())
                .at("read symlink", self.host_path(&format!("{parent}/{name}")))?;
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                resolved.clear();
            }
            for (i, c) in split_components(&target).enumerate() {
                queue.insert(i, c);
            }
        }
        Ok(format!("/{}", resolved.join("/")))
    }

    /// The path inside the root of an open directory, from the kernel's name for it (`/proc/self/fd`); `None`
    /// when that name is not below the root's.
    fn in_root_path(&self, dir: &OwnedFd) -> Option<String> {
        let name = |fd: std::os::fd::BorrowedFd<'_>| {
            std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).ok()
        };
        let root = name(self.fd.as_fd())?;
        let here = name(dir.as_fd())?;
        let rest = here.strip_prefix(&root).ok()?;
        Some(format!("/{}", rest.to_string_lossy()))
    }

    /// Where an in-root path would be on the host, lexically, for messages only.
    fn host_path(&self, path: &str) -> PathBuf {
        self.path.join(path.trim_start_matches('/'))
    }
}

/// The components of a path, without empty ones and `.`.
fn split_components(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn root() -> (tempfile::TempDir, RootFs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("r/etc")).unwrap();
        let fs = RootFs::open(&dir.path().join("r"), "test:1").unwrap();
        (dir, fs)
    }

    #[test]
    fn account_files_never_leave_the_root() {
        let (dir, fs) = root();
        std::fs::write(dir.path().join("outside"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        let escape = format!("../../../../../../../..{}", dir.path().join("outside").display());
        symlink(&escape, dir.path().join("r/etc/passwd")).unwrap();
        symlink(dir.path().join("outside"), dir.path().join("r/etc/group")).unwrap();
        assert_eq!(fs.account_files().unwrap(), (String::new(), String::new()));
        std::fs::create_dir_all(dir.path().join("r").join(dir.path().strip_prefix("/").unwrap())).unwrap();
        std::fs::write(
            dir.path()
                .join("r")
                .join(dir.path().strip_prefix("/").unwrap())
                .join("outside"),
            "in\n",
        )
        .unwrap();
        assert_eq!(fs.account_files().unwrap(), ("in\n".into(), "in\n".into()));
    }

    #[test]
    fn fifos_and_huge_files_are_refused() {
        let (dir, fs) = root();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("r/etc/passwd"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(matches!(fs.account_files(), Err(SandboxError::NotRegular { .. })));
        std::fs::remove_file(dir.path().join("r/etc/passwd")).unwrap();
        std::fs::write(
            dir.path().join("r/etc/passwd"),
            vec![b'a'; MAX_ACCOUNT_FILE as usize + 1],
        )
        .unwrap();
        let err = fs.account_files().unwrap_err().to_string();
        assert!(err.contains("test:1") && err.contains("/etc/passwd"), "{err}");
    }

    #[test]
    fn special_dirs_must_be_directories() {
        let (dir, fs) = root();
        fs.check_special_dirs().unwrap();
        symlink("/", dir.path().join("r/proc")).unwrap();
        let err = fs.check_special_dirs().unwrap_err().to_string();
        assert!(err.contains("/proc") && err.contains("symbolic link"), "{err}");
        std::fs::remove_file(dir.path().join("r/proc")).unwrap();
        std::fs::write(dir.path().join("r/sys"), "").unwrap();
        assert!(
            fs.check_special_dirs()
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }

    #[test]
    fn ensure_dir_creates_inside_the_root() {
        let (dir, fs) = root();
        symlink("/../../..", dir.path().join("r/up")).unwrap();
        fs.ensure_dir("/up/w/x").unwrap();
        assert!(dir.path().join("r/w/x").is_dir());
        fs.ensure_dir("/w/x").unwrap();
        symlink("../../../../missing/target", dir.path().join("r/dangling")).unwrap();
        fs.ensure_dir("/dangling/sub").unwrap();
        assert!(dir.path().join("r/missing/target/sub").is_dir());
        std::fs::write(dir.path().join("r/f"), "").unwrap();
        assert!(matches!(fs.ensure_dir("/f/x"), Err(SandboxError::WorkdirNotDir { .. })));
        assert!(matches!(fs.ensure_dir("/f"), Err(SandboxError::WorkdirNotDir { .. })));
    }

    #[test]
    fn mount_targets_are_created_through_dangling_symlinks_inside_the_root() {
        let (dir, fs) = root();
        let r = dir.path().join("r");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("run")).unwrap();
        symlink("../run/systemd/resolve/stub-resolv.conf", r.join("etc/resolv.conf")).unwrap();
        fs.ensure_mount_target("/etc/resolv.conf", false).unwrap();
        assert!(r.join("run/systemd/resolve/stub-resolv.conf").is_file());
        // Absolute, and escaping: followed inside the root.
        symlink("/../../../srv/data", r.join("data")).unwrap();
        fs.ensure_mount_target("/data", true).unwrap();
        assert!(r.join("srv/data").is_dir());
        assert!(!dir.path().join("srv").exists(), "nothing outside the root");
        // Plain missing paths, and existing ones left alone.
        fs.ensure_mount_target("/new/dir", true).unwrap();
        fs.ensure_mount_target("/new/file", false).unwrap();
        assert!(r.join("new/dir").is_dir() && r.join("new/file").is_file());
        std::fs::write(r.join("etc/hosts"), "keep").unwrap();
        fs.ensure_mount_target("/etc/hosts", false).unwrap();
        assert_eq!(std::fs::read_to_string(r.join("etc/hosts")).unwrap(), "keep");
        std::fs::create_dir(r.join("etc/hostname")).unwrap();
        let err = fs.ensure_mount_target("/etc/hostname", false).unwrap_err().to_string();
        assert!(err.contains("/etc/hostname in the image is a directory"), "{err}");
        let err = fs.ensure_mount_target("/etc/hosts", true).unwrap_err().to_string();
        assert!(err.contains("is not a directory"), "{err}");
        // Below a file: a clear refusal.
        std::fs::write(r.join("f"), "").unwrap();
        let err = fs.ensure_mount_target("/f/x", true).unwrap_err().to_string();
        assert!(
            err.contains("mount at /f/x") && err.contains("not a directory"),
            "{err}"
        );
        // A relative target is followed from where its parent really is: /lnk/x is /usr/etc/x here.
        std::fs::create_dir_all(r.join("usr/etc")).unwrap();
        symlink("/usr/etc", r.join("lnk")).unwrap();
        symlink("../run/y", r.join("usr/etc/x")).unwrap();
        fs.ensure_mount_target("/lnk/x", false).unwrap();
        assert!(r.join("usr/run/y").is_file(), "created where the kernel will look");
        assert!(!r.join("run/y").exists());
        // A symlink loop ends.
        symlink("/loop2", r.join("loop1")).unwrap();
        symlink("/loop1", r.join("loop2")).unwrap();
        assert!(fs.ensure_mount_target("/loop1", false).is_err());
    }
}
