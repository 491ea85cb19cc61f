//! Directories only the user running Berth may reach: the runner's layer cache and container state, and the rule
//! that decides whether a directory found on disk can be trusted at all.
//!
//! Extracted layers and container trees hold the image's setuid-root programs and device nodes, and whatever a
//! container made with its own `CAP_MKNOD`. If another host user could walk into them, a `chmod 4755` shell or a
//! `chmod 666` block device in an image would be theirs to use (Docker's CVE-2021-41091). So:
//!
//! - [`ensure_private_dir`] creates a directory `0700` whatever the umask, tightens one left `0755` by an older
//!   version, and refuses one it cannot trust (below);
//! - [`check_trusted_dir`] is the trust rule alone, for directories that are not private by nature (the store);
//! - a directory is trusted when it is owned by the effective uid and not writable by group or others, and no
//!   directory above it is writable by group or others unless it is sticky (as `/tmp` is). Otherwise another user
//!   could put content there, or swap the directory for one of theirs, and root would run it (`sudo -E` passing a
//!   user's `XDG_*` was the way in). The owners of the directories above are not checked: root may keep its cache
//!   in a checkout its user owns (`sudo cargo xtask demo`); a directory swapped there by that user is no longer
//!   root's and is refused on its next use.
//!
//! ```no_run
//! let cache = std::path::Path::new("/var/cache/berth");
//! berth_spec::private_dir::ensure_private_dir(cache)?;
//! # Ok::<(), berth_spec::private_dir::UntrustedDir>(())
//! ```

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// It belongs to another user (the owners of the directories above are not checked; see the module docs).
    Owner {
        /// The directory at fault.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// It (or a directory above it) is writable by group or others.
    Writable {
        /// The directory at fault.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Something other than a directory is there.
    NotDir,
    /// It could not be created, inspected or tightened.
    Io(String),
}

/// A directory that cannot be trusted or made private. The message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct UntrustedDir {
    /// The directory as asked for.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: Problem,
    /// The effective uid it was checked for.
    pub euid: u32,
}

impl UntrustedDir {
    fn describe(&self) -> String {
        let path = self.path.display();
        let euid = self.euid;
        match &self.problem {
            Problem::Owner { owner, .. } => format!(
                "{path}: refusing to use this directory: it belongs to uid {owner}, not to uid {euid} running Berth, \
                 so that user could plant content that uid {euid} would then run; use a directory of your own \
                 (or `chown {euid} {path}`)"
            ),
            Problem::Writable { dir, mode } if dir == &self.path => format!(
                "{path}: refusing to use this directory: it is writable by other users (mode {mode:04o}), who \
                 could plant content in it; `chmod go-w {path}` (or use another directory)"
            ),
            Problem::Writable { dir, mode } => format!(
                "{path}: refusing to use this directory: {} above it is writable by other users (mode {mode:04o}, \
                 not sticky), who could replace it; `chmod go-w {}` (or use another directory)",
                dir.display(),
                dir.display()
            ),
            Problem::NotDir => format!("{path}: exists and is not a directory; remove it or choose another path"),
            Problem::Io(e) => format!("{path}: {e}"),
        }
    }
}

/// The effective uid of this process.
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Checks the trust rule (see the module docs) for the existing directory `path`.
pub fn check_trusted_dir(path: &Path) -> Result<(), UntrustedDir> {
    let euid = euid();
    let fail = |problem| UntrustedDir {
        path: path.to_owned(),
        problem,
        euid,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(Problem::Io(format!("cannot inspect it: {e}"))))?;
    if !meta.is_dir() {
        return Err(fail(Problem::NotDir));
    }
    if meta.uid() != euid {
        return Err(fail(Problem::Owner {
            dir: path.to_owned(),
            owner: meta.uid(),
        }));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(fail(Problem::Writable {
            dir: path.to_owned(),
            mode: meta.mode() & 0o7777,
        }));
    }
    let real = std::fs::canonicalize(path).map_err(|e| fail(Problem::Io(format!("cannot resolve it: {e}"))))?;
    for dir in real.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|e| fail(Problem::Io(format!("{}: {e}", dir.display()))))?;
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !sticky {
            return Err(fail(Problem::Writable {
                dir: dir.to_owned(),
                mode: meta.mode() & 0o7777,
            }));
        }
    }
    Ok(())
}

/// Makes `path` a private directory: created (with any missing parents) if absent, mode `0700` whatever the
/// umask, an existing one tightened to `0700` when group or others could read or enter it, and refused when it
/// cannot be trusted ([`check_trusted_dir`]).
pub fn ensure_private_dir(path: &Path) -> Result<(), UntrustedDir> {
    let fail = |problem| UntrustedDir {
        path: path.to_owned(),
        problem,
        euid: euid(),
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Missing parents 0755 at most: with umask 0, create_dir_all would make them writable by all.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| fail(Problem::Io(format!("cannot create {}: {e}", parent.display()))))?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(Problem::Io(format!("cannot create it: {e}")))),
            }
        }
        Err(e) => return Err(fail(Problem::Io(format!("cannot inspect it: {e}")))),
    }
    check_trusted_dir(path)?;
    let meta = std::fs::metadata(path).map_err(|e| fail(Problem::Io(format!("cannot inspect it: {e}"))))?;
    if meta.mode() & 0o077 != 0 {
        let mode = (meta.mode() & 0o7700) | 0o700;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| fail(Problem::Io(format!("cannot make it private (chmod 700): {e}"))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    /// (The umask is process-wide, so "whatever the umask" is tested on the binaries, with `umask 0`.)
    #[test]
    fn created_private_with_parents_not_writable_by_others() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b/cache");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&t.path().join("a/b")) & 0o022, 0);
    }

    #[test]
    fn hostile_37_an_old_0755_directory_is_tightened() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn hostile_38_writable_by_others_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&dir).unwrap_err();
        assert!(matches!(e.problem, Problem::Writable { .. }), "{e}");
        assert!(e.to_string().contains("writable by other users"), "{e}");
        assert_eq!(mode(&dir), 0o777, "a refused directory is left as it was");
    }

    #[test]
    fn hostile_38_a_parent_writable_by_others_is_refused_unless_sticky() {
        let t = tempfile::tempdir().unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&open.join("cache")).unwrap_err();
        assert!(
            matches!(&e.problem, Problem::Writable { dir, .. } if dir == &open),
            "{e}"
        );
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_private_dir(&open.join("cache")).unwrap();
    }

    #[test]
    fn hostile_38_another_users_directory_is_refused() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (to give a directory away)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        rustix::fs::chown(&dir, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        let e = ensure_private_dir(&dir).unwrap_err();
        assert_eq!(
            e.problem,
            Problem::Owner {
                dir: dir.clone(),
                owner: 65534
            }
        );
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        // A directory of ours under a parent of theirs is used (sudo in a user's checkout)...
        let inner = dir.join("mine");
        std::fs::create_dir(&inner).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_trusted_dir(&inner).unwrap();
        // ...until they swap it for one of theirs.
        rustix::fs::chown(&inner, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        assert!(matches!(
            check_trusted_dir(&inner).unwrap_err().problem,
            Problem::Owner { .. }
        ));
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "").unwrap();
        let e = ensure_private_dir(&f).unwrap_err();
        assert_eq!(e.problem, Problem::NotDir);
    }
}
