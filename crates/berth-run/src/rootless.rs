//! Rootless containers: a non-root user runs berth-run inside a user namespace of its own, where it is root.
//!
//! berth-run re-executes itself (same arguments) in a new user and mount namespace. The original process maps
//! the user's id to root there — with the user's subordinate ids from `/etc/subuid` and `/etc/subgid` after it
//! (through the setuid `newuidmap`/`newgidmap`), or the user's id alone when there are none — then waits for the
//! re-executed process and passes its exit code on. Commands on a running container (`exec`, `kill`, `stop`,
//! `rm`) join the namespaces of the container's monitor instead, so they see its mounts.
//!
//! Rootless containers get no cgroup of their own. A user cannot create cgroups on a cgroup v1 host (nothing is
//! delegated), and libcontainer joins every v1 hierarchy it finds in mountinfo: inside its own mount namespace
//! berth-run covers `/sys/fs/cgroup` with a tmpfs holding stand-in files for the container's cgroup. On cgroup v2,
//! libcontainer leaves the process in its parent's cgroup when it cannot create one (delegation is not used yet).
//! Berth says so once per state directory, and refuses `--memory`, `--cpus` and `--pids-limit` rather than ignore
//! them.

use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::RunError;
use berth_spec::io_context::IoContext;

/// The environment variable that tells the re-executed berth-run what to do: `new:R,W` (unshare, then
/// synchronize over the inherited pipe ends R and W) or `join:U,M` (enter the user and mount namespaces whose
/// descriptors it inherited).
pub const STAGE_VAR: &str = "_BERTH_ROOTLESS_STAGE";

/// The working directory to return to after joining a mount namespace.
const CWD_VAR: &str = "_BERTH_ROOTLESS_CWD";

/// Whether this process must run containers rootless: not root, or root only inside a user namespace.
pub fn is_rootless() -> bool {
    !rustix::process::geteuid().is_root() || in_user_namespace()
}

/// Whether this process is in a user namespace other than the initial one.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// Whether `/sys/fs/cgroup` is a cgroup v1 (or hybrid) hierarchy: a tmpfs holding one mount per controller.
pub fn cgroup_v1_host() -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    // `f_type`'s integer type differs between architectures.
    #[allow(clippy::useless_conversion)]
    rustix::fs::statfs("/sys/fs/cgroup").is_ok_and(|s| i64::from(s.f_type) == TMPFS_MAGIC)
}

/// How the re-executed berth-run gets its namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enter {
    /// New user and mount namespaces.
    New,
    /// Those of this process (a running container's monitor).
    Join(i32),
}

/// How a rootless command on container `name` enters namespaces: those of its monitor while it runs (only there
/// does this user have capabilities over it: to signal a process running as another id, to enter its mounts), new
/// ones otherwise.
pub fn enter_for(state: &crate::state::StateDir, name: &str) -> Result<Enter, RunError> {
    let record = state.find(name)?;
    Ok(match record.monitor_pid.filter(|_| record.monitor_alive()) {
        Some(pid) if record.live_status() == crate::state::Status::Running => Enter::Join(pid),
        _ => Enter::New,
    })
}

/// A range of subordinate ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIds {
    /// The first host id.
    pub start: u64,
    /// How many.
    pub count: u64,
}

/// The first range `/etc/subuid`-style `text` gives the user `name` (or `id`).
pub fn parse_subids(text: &str, name: &str, id: u32) -> Option<SubIds> {
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let owner = parts.next()?;
        if owner != name && owner.parse::<u32>().ok() != Some(id) {
            return None;
        }
        let start = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        (count > 0).then_some(SubIds { start, count })
    })
}

/// The user's name, from `/etc/passwd`.
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_owned())
        })
        .unwrap_or_default()
}

/// A pipe whose `inherited` end (0: read, 1: write) stays open across exec; the other end does not.
fn pipe_inherited(inherited: usize) -> Result<(OwnedFd, OwnedFd), RunError> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).at("create", "a pipe")?;
    let end = if inherited == 0 { &read } else { &write };
    rustix::io::fcntl_setfd(end, rustix::io::FdFlags::empty()).at("set up", "a pipe")?;
    Ok((read, write))
}

/// Writes the id maps of process `pid`: root is the user, then the user's subordinate ids when it has some.
fn write_maps(pid: u32) -> Result<(), RunError> {
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    let name = user_name(uid);
    let subuid = std::fs::read_to_string("/etc/subuid")
        .ok()
        .and_then(|t| parse_subids(&t, &name, uid));
    let subgid = std::fs::read_to_string("/etc/subgid")
        .ok()
        .and_then(|t| parse_subids(&t, &name, uid));
    if let (Some(u), Some(g)) = (subuid, subgid) {
        for (tool, id, sub) in [("newuidmap", uid, u), ("newgidmap", gid, g)] {
            let status = Command::new(tool)
                .arg(pid.to_string())
                .args([
                    "0",
                    &id.to_string(),
                    "1",
                    "1",
                    &sub.start.to_string(),
                    &sub.count.to_string(),
                ])
                .status()
                .map_err(|e| {
                    RunError::option(
                        "rootless",
                        format!("cannot run {tool} ({e}); install Debian's uidmap package"),
                    )
                })?;
            if !status.success() {
                return Err(RunError::option(
                    "rootless",
                    format!("{tool} failed ({status}); check the ranges of {name} in /etc/subuid and /etc/subgid"),
                ));
            }
        }
        return Ok(());
    }
    tracing::info!("no subordinate ids for {name} in /etc/subuid and /etc/subgid: mapping the user's id alone");
    let proc = PathBuf::from(format!("/proc/{pid}"));
    std::fs::write(proc.join("uid_map"), format!("0 {uid} 1\n")).at("write", proc.join("uid_map"))?;
    std::fs::write(proc.join("setgroups"), "deny").at("write", proc.join("setgroups"))?;
    std::fs::write(proc.join("gid_map"), format!("0 {gid} 1\n")).at("write", proc.join("gid_map"))?;
    Ok(())
}

/// Re-executes this program with the same arguments in the namespaces `how` says, with `env` added; waits for
/// it and returns its exit code. SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to this process are passed on (the
/// terminal's own signals reach both processes, as they share the process group).
pub fn reexec(how: Enter, env: &[(&str, PathBuf)]) -> Result<i32, RunError> {
    reexec_with_args(how, env, std::env::args_os().skip(1))
}

/// [`reexec`] with other arguments (without the program name), for a command re-executed once per container.
pub fn reexec_with_args(
    how: Enter,
    env: &[(&str, PathBuf)],
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<i32, RunError> {
    // The sealed copy this process runs from (berth_sandbox::sealed_exe), which has no path of its own.
    let exe = std::path::PathBuf::from(berth_sandbox::sealed_exe::SELF_EXE);
    let mut cmd = Command::new(&exe);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Kept open until the child has started (it inherits them).
    let mut joined: Vec<OwnedFd> = Vec::new();
    let sync = match how {
        Enter::Join(pid) => {
            // Opened here and inherited, so the namespaces stay alive even if the monitor exits meanwhile.
            let mut fds = Vec::new();
            for ns in ["user", "mnt"] {
                let path = PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
                let fd: OwnedFd = std::fs::File::open(&path).at("open", &path)?.into();
                rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).at("set up", &path)?;
                fds.push(fd);
            }
            let numbers: Vec<String> = fds
                .iter()
                .map(|f| std::os::fd::AsRawFd::as_raw_fd(f).to_string())
                .collect();
            cmd.env(STAGE_VAR, format!("join:{}", numbers.join(",")));
            if let Ok(cwd) = std::env::current_dir() {
                cmd.env(CWD_VAR, cwd);
            }
            joined = fds;
            None
        }
        Enter::New => {
            let (child_read, parent_write) = pipe_inherited(0)?;
            let (parent_read, child_write) = pipe_inherited(1)?;
            cmd.env(
                STAGE_VAR,
                format!(
                    "new:{},{}",
                    std::os::fd::AsRawFd::as_raw_fd(&child_read),
                    std::os::fd::AsRawFd::as_raw_fd(&child_write)
                ),
            );
            Some((child_read, child_write, parent_read, parent_write))
        }
    };
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGQUIT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGUSR1,
        signal_hook::consts::SIGUSR2,
    ])
    .at("handle signals of", "berth-run")?;
    let mut child = cmd.spawn().at("start", &exe)?;
    drop(joined);
    if let Some((child_read, child_write, parent_read, parent_write)) = sync {
        drop((child_read, child_write));
        let mut unshared = [0u8; 1];
        let ready = std::fs::File::from(parent_read).read(&mut unshared).unwrap_or(0) == 1;
        if ready {
            if let Err(e) = write_maps(child.id()) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            if let Err(e) = std::fs::File::from(parent_write).write_all(b"m") {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e).at("write", "a pipe").map_err(Into::into);
            }
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child has a positive id");
    let handle = signals.handle();
    let forwarder = std::thread::spawn(move || {
        for sig in signals.forever() {
            let forward = [
                signal_hook::consts::SIGTERM,
                signal_hook::consts::SIGHUP,
                signal_hook::consts::SIGUSR1,
                signal_hook::consts::SIGUSR2,
            ];
            if forward.contains(&sig)
                && let Some(signal) = rustix::process::Signal::from_named_raw(sig)
            {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    });
    let status = child.wait().at("wait for", &exe)?;
    handle.close();
    let _ = forwarder.join();
    Ok(
        match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            _ => 1,
        },
    )
}

/// In the re-executed process, first thing: enters the namespaces the parent prepared (see [`reexec`]). Returns
/// whether this process is such a re-executed one.
///
/// # Safety
///
/// The caller must make sure that:
/// - this process is single-threaded: the kernel lets no process with several threads create or join a user
///   namespace (`unshare`/`setns` with `CLONE_NEWUSER`), and other threads would keep the old namespaces;
/// - the file descriptors named in [`STAGE_VAR`] were passed to this process by [`reexec`] and nothing else in it
///   owns, uses or closes them: they are taken over as [`OwnedFd`]s and closed here.
///
/// Call it first thing in `main`, before anything starts a thread or opens files; when [`STAGE_VAR`] is unset it
/// does nothing and returns `Ok(false)`.
#[allow(unsafe_code)]
pub unsafe fn enter_from_env() -> Result<bool, RunError> {
    let Ok(stage) = std::env::var(STAGE_VAR) else {
        return Ok(false);
    };
    // SAFETY-free: environment changes are not needed; the variable stays, harmlessly, for children (the monitor
    // inherits the namespaces anyway).
    if let Some(numbers) = stage.strip_prefix("join:") {
        let fds: Vec<i32> = numbers.split(',').filter_map(|n| n.parse().ok()).collect();
        let [user, mnt] = fds[..] else {
            return Err(RunError::option(STAGE_VAR, format!("malformed value {stage:?}")));
        };
        for (fd, kind, what) in [
            (user, LinkNameSpaceType::User, "the user namespace"),
            (mnt, LinkNameSpaceType::Mount, "the mount namespace"),
        ] {
            // SAFETY: the parent passed these descriptors to this process alone, and the caller promises nothing
            // else here owns them.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(kind))
                .at("enter", format!("{what} of the container's monitor"))?;
        }
        // Entering a mount namespace moves to its root: come back, so relative paths mean what they meant.
        if let Some(cwd) = std::env::var_os(CWD_VAR) {
            let _ = std::env::set_current_dir(cwd);
        }
        return Ok(true);
    }
    let fds = stage
        .strip_prefix("new:")
        .and_then(|f| f.split_once(','))
        .and_then(|(r, w)| Some((r.parse::<i32>().ok()?, w.parse::<i32>().ok()?)));
    let Some((read_fd, write_fd)) = fds else {
        return Err(RunError::option(STAGE_VAR, format!("malformed value {stage:?}")));
    };
    // SAFETY: the parent passed these two pipe ends to this process and, as the caller promises, nothing else here
    // owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(read_fd), OwnedFd::from_raw_fd(write_fd)) };
    // SAFETY: the caller promises this process is single-threaded; a new user and mount namespace affect only this
    // process's view of ids and mounts.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }
        .at("create a user namespace for", "berth-run")?;
    std::fs::File::from(write).write_all(b"u").at("write", "a pipe")?;
    let mut mapped = [0u8; 1];
    if std::fs::File::from(read).read(&mut mapped).unwrap_or(0) != 1 {
        return Err(RunError::option(
            "rootless",
            "the parent process could not map the user's ids",
        ));
    }
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .at("make private the mounts of", "/")?;
    if cgroup_v1_host() {
        rustix::mount::mount(
            "tmpfs",
            "/sys/fs/cgroup",
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            c"mode=0755",
        )
        .at("cover with a tmpfs", "/sys/fs/cgroup")?;
    }
    Ok(true)
}

/// Whether containers here run without cgroups: rootless (on cgroup v1 libcontainer gets stand-ins, see the
/// module docs; on cgroup v2 it leaves the process in its parent's cgroup when it cannot create one).
pub fn without_cgroups() -> bool {
    is_rootless()
}

/// Why rootless containers here have no cgroup, for messages.
pub fn no_cgroup_reason() -> &'static str {
    if cgroup_v1_host() {
        "this host has cgroup v1, which cannot be delegated to a non-root user"
    } else {
        "Berth does not use cgroup v2 delegation for rootless containers yet"
    }
}

/// Mount points of the cgroup v1 hierarchies, from `/proc/self/mountinfo` (octal escapes decoded).
fn v1_mount_points() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup").then_some(())?;
            let raw = left.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape_mountinfo(raw)))
        })
        .collect()
}

fn unescape_mountinfo(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&raw[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Under the tmpfs covering `/sys/fs/cgroup` (see the module docs), the directories and `cgroup.procs` files
/// libcontainer writes the container's process into, one per v1 hierarchy it reads from mountinfo; they are
/// plain files in this mount namespace only.
pub fn prepare_cgroup_stand_ins(cgroups_path: &Path) -> Result<(), RunError> {
    let relative = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    for mount in v1_mount_points() {
        let dir = mount.join(relative);
        std::fs::create_dir_all(&dir).at("create", &dir)?;
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, "").at("write", &procs)?;
        // The cpuset controller checks that every level down from the mount point has CPUs and memory nodes.
        let mut level = mount.clone();
        for part in std::iter::once(None).chain(relative.components().map(Some)) {
            if let Some(p) = part {
                level.push(p);
            }
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let path = level.join(file);
                std::fs::write(&path, "0\n").at("write", &path)?;
            }
        }
    }
    Ok(())
}

/// Removes what [`prepare_cgroup_stand_ins`] made (if this mount namespace has it).
pub fn remove_cgroup_stand_ins(cgroups_path: &Path) {
    let relative = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    for mount in v1_mount_points() {
        let _ = std::fs::remove_dir_all(mount.join(relative));
    }
}

/// Whether `id` is mapped in this user namespace's `uid_map` or `gid_map` text.
fn id_mapped(map: &str, id: u64) -> bool {
    map.lines().any(|l| {
        let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        matches!(f.as_slice(), [inside, _, count] if id >= *inside && id < inside + count)
    })
}

/// Changes a runtime spec for a rootless container: mount options naming a group this namespace does not map
/// (devpts's `gid=5` with only the user's own id mapped) are dropped, as podman does.
pub fn adjust_spec(spec: &mut oci_spec::runtime::Spec) {
    let gid_map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    let Some(mounts) = spec.mounts().clone() else { return };
    let adjusted = mounts
        .into_iter()
        .map(|mut m| {
            if let Some(options) = m.options().clone() {
                let kept: Vec<String> = options
                    .into_iter()
                    .filter(|o| match o.strip_prefix("gid=").and_then(|g| g.parse().ok()) {
                        Some(gid) => id_mapped(&gid_map, gid),
                        None => true,
                    })
                    .collect();
                m.set_options(Some(kept));
            }
            m
        })
        .collect();
    spec.set_mounts(Some(adjusted));
}

/// Says once per state directory that rootless containers here have no cgroup.
pub fn note_no_cgroups(state: &Path) {
    let marker = state.join("rootless-cgroup-noted");
    if !marker.exists() {
        eprintln!(
            "berth-run: note: {}: rootless containers run without a cgroup of their own and without resource limits",
            no_cgroup_reason()
        );
        let _ = std::fs::write(marker, "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ids() {
        assert!(id_mapped("         0       1000          1\n", 0));
        assert!(!id_mapped("         0       1000          1\n", 5));
        assert!(id_mapped("0 1000 1\n1 100000 65536\n", 5));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(
            unescape_mountinfo("/sys/fs/cgroup/cpu,cpuacct"),
            "/sys/fs/cgroup/cpu,cpuacct"
        );
    }

    #[test]
    fn subordinate_ids() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(
            parse_subids(text, "alice", 1000),
            Some(SubIds {
                start: 100_000,
                count: 65_536
            })
        );
        assert_eq!(
            parse_subids(text, "carol", 1001),
            Some(SubIds {
                start: 200_000,
                count: 1000
            })
        );
        assert_eq!(parse_subids(text, "bob", 1002), None);
        assert_eq!(parse_subids(text, "dave", 1003), None);
    }
}
