//! The container's cgroups from outside libcontainer: killing what is left in them, and starting the wait that
//! joining them costs before it is needed.

use std::path::{Path, PathBuf};

/// SIGKILLs every process in container `id`'s cgroup and waits (up to 2 s) for it to empty. libcontainer kills only
/// a container it believes to be running, and a container whose creator was killed can look stopped while its
/// processes run on; and removing a cgroup right after the kill fails while they are still exiting.
/// With `remove`, the emptied cgroup is removed too (for a container libcontainer cannot delete).
pub(super) fn kill_cgroup(id: &str, cgroup_path: PathBuf, systemd: bool, remove: bool) {
    use libcgroups::common::{CgroupConfig, CgroupManager, create_cgroup_manager};
    let Ok(manager) = create_cgroup_manager(CgroupConfig {
        cgroup_path,
        systemd_cgroup: systemd,
        container_name: id.to_owned(),
    }) else {
        return;
    };
    kill_all_in(id, &manager);
    if remove && let Err(e) = manager.remove() {
        tracing::warn!(container = id, "could not remove the container's cgroup: {e}");
    }
}

/// [`kill_cgroup`] when the container's cgroup still has processes; says whether it had.
pub(super) fn kill_cgroup_if_busy(id: &str, cgroup_path: PathBuf, systemd: bool) -> bool {
    use libcgroups::common::{CgroupConfig, CgroupManager, create_cgroup_manager};
    let Ok(manager) = create_cgroup_manager(CgroupConfig {
        cgroup_path,
        systemd_cgroup: systemd,
        container_name: id.to_owned(),
    }) else {
        return false;
    };
    if !manager.get_all_pids().is_ok_and(|p| !p.is_empty()) {
        return false;
    }
    tracing::debug!(container = id, "killing what is left in its cgroup");
    kill_all_in(id, &manager);
    true
}

fn kill_all_in(id: &str, manager: &libcgroups::common::AnyCgroupManager) {
    use libcgroups::common::CgroupManager;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    // No cgroup (already removed, or never made): nothing runs in it.
    while let Ok(pids) = manager.get_all_pids() {
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid.as_raw()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        if std::time::Instant::now() > deadline {
            tracing::warn!(container = id, "processes of the container are still exiting");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Starts, in the background, the wait that the container's first cgroup join would otherwise pay.
///
/// Joining a container's cgroups waits, on its first write to a `cgroup.procs`, for an RCU grace period (the
/// kernel's cgroup attach lock; 5–15 ms on a small VM), after which further writes are cheap for a while. This
/// starts that wait at once, in a detached process that moves itself into the cgroup it is already in (writing
/// `0` to its `cgroup.procs`), so that by the time the container joins its cgroups the wait is over. A process,
/// not a thread, so that it survives the re-execution from a sealed copy that follows at start-up
/// ([`crate::sealed_exe`]): call it first thing. The process is a grandchild that this one does not wait for (its
/// parent exits at once and is reaped here). Without root, or without a cgroup file to write, it does nothing.
pub fn warm_cgroup_attach() {
    use std::os::unix::ffi::OsStrExt;
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let Some(procs) = own_cgroup_procs() else { return };
    let Ok(path) = std::ffi::CString::new(procs.as_os_str().as_bytes()) else {
        return;
    };
    detached_write_zero(&path);
}

#[allow(unsafe_code)]
fn detached_write_zero(path: &std::ffi::CStr) {
    // SAFETY: both children make only async-signal-safe calls (fork, close_range, open, write, close, _exit) on
    // memory prepared before the fork, so forking a process that may have other threads is sound; the parent reaps the first child,
    // which exits at once.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            if libc::fork() == 0 {
                // Nothing inherited stays open while it waits (a caller reading this process's output until the
                // end, or holding a lock through a descriptor, must not wait for it).
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
            libc::_exit(0);
        }
        if child > 0 {
            let mut status = 0;
            while libc::waitpid(child, &mut status, 0) < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {}
        } else {
            tracing::debug!("cgroup warm-up: {}", std::io::Error::last_os_error());
        }
    }
}

/// The `cgroup.procs` file of the cgroup this process is in: in a v1 hierarchy with a controller, else the
/// unified hierarchy.
fn own_cgroup_procs() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            candidates.push(Path::new("/sys/fs/cgroup/unified").join(rel));
            candidates.push(Path::new("/sys/fs/cgroup").join(rel));
        } else if !controllers.starts_with("name=") {
            candidates.insert(0, Path::new("/sys/fs/cgroup").join(controllers).join(rel));
        }
    }
    candidates
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warm-up writes this process's pid into the `cgroup.procs` of a cgroup it is in, which leaves every
    /// membership as it was.
    #[test]
    fn the_cgroup_warm_up_moves_nothing() {
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let procs = own_cgroup_procs().expect("a cgroup.procs file for this process");
        let listed = std::fs::read_to_string(&procs).unwrap();
        assert!(
            listed.lines().any(|l| l == std::process::id().to_string()),
            "{} lists this process",
            procs.display()
        );
        std::fs::write(&procs, std::process::id().to_string()).unwrap();
        warm_cgroup_attach();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(std::fs::read_to_string("/proc/self/cgroup").unwrap(), before);
    }
}
