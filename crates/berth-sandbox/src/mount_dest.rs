//! Where a mount really lands: every destination resolved inside the image before the runtime sees it
//! (HOSTILE-INPUTS 41).
//!
//! A runtime follows the image's symlinks when it mounts, so an image `VOLUME /v` with `/v -> /proc` would put a
//! host directory over the container's procfs, and masked and read-only paths would then protect nothing (the
//! precondition of runc's CVE-2019-16884); `/data -> /` would seed a volume with a copy of the whole root. So each
//! destination is resolved in-root first ([`RootFs::resolve`]), refused when it lands on the root or on or under
//! `/proc`, `/sys` or `/dev` where that is not what was written, and written into the spec resolved, so that the
//! runtime has no symlink left to follow.

use crate::SandboxError;
use crate::rootfs::RootFs;

/// Files under `/proc` a user may bind over, as runc allows (lxcfs serves these).
const PROC_FILES_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// The runtime's own file systems: what the image has at these paths is hidden under them.
const RUNTIME_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// Who asked for a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// The image (a `VOLUME`), or Berth on the image's behalf (`/etc/hosts` and friends): hostile input.
    Image(&'a str),
    /// The user (`-v`, `--mount`, `--tmpfs`), spelled as on the command line.
    User(&'a str),
}

fn under(path: &str, base: &str) -> bool {
    path == base || path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'))
}

/// The runtime's own directory (`/proc`, `/sys` or `/dev`) that the absolute, normalized `path` is on or under.
pub(crate) fn runtime_dir_of(path: &str) -> Option<&'static str> {
    RUNTIME_DIRS.iter().copied().find(|b| under(path, b))
}

/// Resolves the destination `written` (absolute, normalized) inside `rootfs` and applies the rules above. Returns
/// the path to put in the spec.
pub fn resolve_destination(rootfs: &RootFs, written: &str, origin: Origin<'_>) -> Result<String, SandboxError> {
    let refuse = |reason: String| SandboxError::MountDestination {
        image: rootfs.image().to_owned(),
        destination: written.to_owned(),
        origin: match origin {
            Origin::Image(what) => what.to_owned(),
            Origin::User(option) => option.to_owned(),
        },
        reason,
    };
    // Below the runtime's own mounts the image's tree is hidden, so there is nothing of the image's to resolve.
    if let Some(base) = runtime_dir_of(written) {
        return match origin {
            Origin::Image(_) => Err(refuse(format!(
                "the runtime mounts {base} itself; an image may not put a volume there"
            ))),
            Origin::User(_) if base == "/proc" && !PROC_FILES_ALLOWED.contains(&written) => Err(refuse(
                "nothing may be mounted over the container's /proc (masked and read-only paths would protect \
                 nothing); only the files lxcfs serves, such as /proc/meminfo, may be bound there"
                    .to_owned(),
            )),
            Origin::User(_) => Ok(written.to_owned()),
        };
    }
    let resolved = rootfs.resolve(written)?;
    if resolved == "/" {
        return Err(refuse(
            "through the image's symlinks it is the container's root directory, which cannot be a mount point"
                .to_owned(),
        ));
    }
    if let Some(base) = runtime_dir_of(&resolved) {
        return Err(refuse(format!(
            "through the image's symlinks it is {resolved}, on the runtime's own {base}; a mount there would \
             defeat the container's protections (the image is malformed or hostile)"
        )));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn root() -> (tempfile::TempDir, RootFs) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("r");
        for d in ["proc", "sys", "dev", "etc", "srv/data"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let fs = RootFs::open(&r, "test:1").unwrap();
        (dir, fs)
    }

    #[test]
    fn hostile_41_volumes_through_symlinks_onto_proc_sys_dev_or_root_are_refused() {
        let (dir, fs) = root();
        let r = dir.path().join("r");
        for (link, target) in [
            ("v", "/proc"),
            ("s", "sys/fs"),
            ("d", "../../dev"),
            ("data", "/"),
            ("dot", "."),
            ("chain", "v/self"),
        ] {
            symlink(target, r.join(link)).unwrap();
            for origin in [Origin::Image("a VOLUME of the image"), Origin::User("-v /x:/y")] {
                let e = resolve_destination(&fs, &format!("/{link}"), origin).unwrap_err();
                assert!(matches!(e, SandboxError::MountDestination { .. }), "{link}: {e}");
                assert!(e.to_string().contains(&format!("/{link}")), "{e}");
            }
        }
    }

    #[test]
    fn destinations_are_written_resolved() {
        let (dir, fs) = root();
        let r = dir.path().join("r");
        symlink("/srv/data", r.join("data")).unwrap();
        symlink("../srv/../srv/data/new", r.join("etc/link")).unwrap();
        let user = Origin::User("-v");
        assert_eq!(resolve_destination(&fs, "/data", user).unwrap(), "/srv/data");
        assert_eq!(resolve_destination(&fs, "/data/sub", user).unwrap(), "/srv/data/sub");
        assert_eq!(resolve_destination(&fs, "/etc/link", user).unwrap(), "/srv/data/new");
        assert_eq!(resolve_destination(&fs, "/missing/x", user).unwrap(), "/missing/x");
        // `..` after a symlink goes to the real parent of its target.
        symlink("srv/data", r.join("deep")).unwrap();
        assert_eq!(resolve_destination(&fs, "/deep/../x", user).unwrap(), "/srv/x");
    }

    #[test]
    fn the_user_may_mount_under_dev_and_sys_and_only_lxcfs_files_under_proc() {
        let (_dir, fs) = root();
        let user = Origin::User("-v");
        assert_eq!(resolve_destination(&fs, "/dev/log", user).unwrap(), "/dev/log");
        assert_eq!(
            resolve_destination(&fs, "/sys/fs/cgroup", user).unwrap(),
            "/sys/fs/cgroup"
        );
        assert_eq!(
            resolve_destination(&fs, "/proc/meminfo", user).unwrap(),
            "/proc/meminfo"
        );
        assert!(resolve_destination(&fs, "/proc", user).is_err());
        assert!(resolve_destination(&fs, "/proc/sys", user).is_err());
        assert!(resolve_destination(&fs, "/dev/shm", Origin::Image("a VOLUME")).is_err());
    }

    #[test]
    fn symlink_loops_end() {
        let (dir, fs) = root();
        let r = dir.path().join("r");
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        let e = resolve_destination(&fs, "/a", Origin::User("-v")).unwrap_err();
        assert!(e.to_string().contains("too many symlinks"), "{e}");
    }
}
