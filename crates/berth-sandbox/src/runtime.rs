//! Running a prepared bundle through youki's libcontainer: create and start a container, run more processes in
//! it, signal it, delete it.
//!
//! The container's first process is a child of the calling process (libcontainer clones it as a sibling of its
//! intermediate process), so the caller waits for it with [`wait_exit`]. libcontainer forks and changes the working
//! directory while creating a container: call these functions before starting other threads that care.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::get_executor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Process;

use crate::SandboxError;
use berth_spec::io_context::IoContext;

/// Where a process's standard streams go. `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Standard input.
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: Option<OwnedFd>,
    /// Standard error.
    pub stderr: Option<OwnedFd>,
    /// A listening Unix socket path that receives the terminal's master side (when `process.terminal` is true).
    pub console_socket: Option<PathBuf>,
}

/// libcontainer's state directory, holding one directory per container.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    /// Where compiled seccomp filters are kept ([`crate::seccomp::precompiled`]); none: libcontainer compiles each.
    seccomp_cache: Option<PathBuf>,
}

/// libcontainer's default executor, after giving every signal its default action and unblocking them all.
///
/// The container's first process is cloned from the caller, and ignored signals stay ignored across `exec`: a
/// berth-run started from a script (SIGINT and SIGQUIT ignored) or by Rust (SIGPIPE ignored) would hand that on
/// to the container. Docker's and containerd's containers start with every signal at its default.
#[derive(Clone, Default)]
struct CleanSignalsExecutor {
    /// For `exec`: the container's seccomp filter, which libcontainer does not give processes it adds to a running
    /// container; loaded here, last thing before the program runs.
    seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

impl Executor for CleanSignalsExecutor {
    fn exec(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorError> {
        reset_signals();
        if let Some(seccomp) = &self.seccomp {
            libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|e| ExecutorError::Other(format!("cannot load the container's seccomp filter: {e}")))?;
        }
        get_executor().exec(spec)
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorValidationError> {
        get_executor().validate(spec)
    }
}

/// The bundle's spec, if it can be read (libcontainer reads it again, and reports what is wrong with it).
fn bundle_spec(bundle: &Path) -> Option<oci_spec::runtime::Spec> {
    oci_spec::runtime::Spec::load(bundle.join("config.json")).ok()
}

/// Whether the spec gives the container a new network namespace (not the host's, not a path).
fn own_network_namespace(spec: Option<&oci_spec::runtime::Spec>) -> bool {
    spec.and_then(|s| s.linux().as_ref())
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|list| {
            list.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none())
        })
}

/// Sets `lo` up in the network namespace of process `pid`, from a thread that enters it (and then ends).
fn loopback_up(pid: i32) -> std::io::Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> std::io::Result<()> {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                let socket =
                    rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::DGRAM, None)?;
                set_interface_up(std::os::fd::AsRawFd::as_raw_fd(&socket), b"lo")
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the thread setting up lo panicked")))
    })
}

#[allow(unsafe_code)]
fn set_interface_up(socket: i32, name: &[u8]) -> std::io::Result<()> {
    // SAFETY: `ifreq` is plain old data, valid when zeroed; the name fits with its NUL (at most 15 bytes here), and
    // both ioctls only read and write that one struct, which outlives them.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name) {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn reset_signals() {
    // The kernel's `struct sigaction` with SIG_DFL (0), no flags, no restorer and an empty mask: all zeros, and
    // four words cover every architecture's layout. The raw system call, because glibc's signal() refuses its two
    // internal real-time signals (32, 33), which a parent may have left ignored too.
    let default_action = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: the process is single-threaded and about to exec; the action points to a live, fully initialized
        // buffer of the kernel's size; no old action is requested.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    // SAFETY: an empty set, initialized by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn runtime_error(container: &str, action: &'static str, e: impl std::error::Error) -> SandboxError {
    // libcontainer's errors are carried as text: their types are libcontainer's, not part of Berth's API.
    SandboxError::Runtime {
        container: container.to_owned(),
        action,
        reason: berth_spec::error_chain(&e),
    }
}

impl Runtime {
    /// Uses (creating) `root` as libcontainer's state directory.
    pub fn new(root: &Path) -> Result<Runtime, SandboxError> {
        std::fs::create_dir_all(root).at("create", root)?;
        let root = std::fs::canonicalize(root).at("resolve", root)?;
        Ok(Runtime {
            root,
            seccomp_cache: None,
        })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keeps compiled seccomp filters in `dir` (created when first needed), so that containers load them instead
    /// of compiling their profile ([`crate::seccomp::precompiled`]). Not inside the state directory, which holds
    /// containers only.
    pub fn with_seccomp_cache(mut self, dir: PathBuf) -> Runtime {
        self.seccomp_cache = Some(dir);
        self
    }

    /// Readies the compiled program of `spec`'s seccomp profile (from the seccomp cache, or compiled now), so that
    /// the container's process loads it instead of compiling the profile ([`crate::seccomp::precompiled`]).
    fn prepare_seccomp(&self, spec: Option<&oci_spec::runtime::Spec>) {
        if let Some(seccomp) = spec.and_then(|s| s.linux().as_ref()).and_then(|l| l.seccomp().as_ref())
            && let Some(dir) = &self.seccomp_cache
        {
            let how = crate::seccomp::precompiled::prepare(seccomp, dir);
            tracing::debug!(?how, "seccomp filter readied");
        }
    }

    fn builder(
        &self,
        id: &str,
        stdio: Stdio,
        executor: CleanSignalsExecutor,
    ) -> Result<ContainerBuilder, SandboxError> {
        let mut builder = ContainerBuilder::new(id.to_owned(), SyscallType::default())
            .with_root_path(self.root.clone())
            .map_err(|e| runtime_error(id, "use the state directory", e))?
            .with_console_socket(stdio.console_socket)
            .with_executor(executor);
        if let Some(fd) = stdio.stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = stdio.stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = stdio.stderr {
            builder = builder.with_stderr(fd);
        }
        Ok(builder)
    }

    /// Creates container `id` from the bundle in `bundle` (its `config.json` and root filesystem), calls
    /// `before_start` (the container exists, its terminal has been sent to the console socket, its program has not
    /// started), and starts its process. Returns the process id. On failure, whatever was created is deleted.
    pub fn start(
        &self,
        id: &str,
        bundle: &Path,
        stdio: Stdio,
        before_start: &mut dyn FnMut() -> Result<(), String>,
    ) -> Result<i32, SandboxError> {
        let spec = bundle_spec(bundle);
        self.prepare_seccomp(spec.as_ref());
        let built = self
            .builder(id, stdio, CleanSignalsExecutor::default())?
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build();
        let mut container = match built {
            Ok(c) => c,
            Err(e) => {
                let err = runtime_error(id, "create", e);
                self.delete_quietly(id);
                return Err(err);
            }
        };
        // A network namespace of its own starts with `lo` down; runc and Docker bring it up, and programs that talk
        // to themselves on 127.0.0.1 need it.
        if own_network_namespace(spec.as_ref())
            && let Some(pid) = container.pid()
            && let Err(e) = loopback_up(pid.as_raw())
        {
            // Rootless, the container's namespaces cannot be entered from here yet: lo stays down, as it was.
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                tracing::debug!(container = id, "loopback left down: {e}");
            } else {
                tracing::warn!(container = id, "could not bring the loopback interface up: {e}");
            }
        }
        let started = match before_start() {
            Ok(()) => container.start().map_err(|e| runtime_error(id, "start", e)),
            Err(reason) => Err(SandboxError::Runtime {
                container: id.to_owned(),
                action: "prepare to start",
                reason,
            }),
        };
        if let Err(err) = started {
            let _ = container.kill(libcontainer::signal::Signal::try_from(9).expect("SIGKILL"), true);
            // Without a cgroup (rootless) the kill above reaches nothing: kill and reap the process itself.
            if let Some(pid) = container.pid().and_then(|p| rustix::process::Pid::from_raw(p.as_raw())) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            }
            self.delete_quietly(id);
            return Err(err);
        }
        container.pid().map(|p| p.as_raw()).ok_or_else(|| {
            runtime_error(
                id,
                "start",
                std::io::Error::other("libcontainer reported no process id"),
            )
        })
    }

    /// Runs another process in the running container `id` (`exec`). Returns its process id, a child of the
    /// caller.
    ///
    /// The process gets the container's seccomp filter, as under runc. Without CAP_SYS_ADMIN a process can load a
    /// filter only with no_new_privs set, so such a process runs with it.
    pub fn exec(&self, id: &str, process: &Process, scratch: &Path, stdio: Stdio) -> Result<i32, SandboxError> {
        let bundle = self.load(id)?.bundle().clone();
        let config = bundle.join("config.json");
        let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| runtime_error(id, "read the spec of", e))?;
        self.prepare_seccomp(Some(&spec));
        let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
        let mut process = process.clone();
        let admin = process
            .capabilities()
            .as_ref()
            .and_then(|c| c.effective().as_ref())
            .is_some_and(|e| e.contains(&oci_spec::runtime::Capability::SysAdmin));
        if seccomp.is_some() && !admin {
            process.set_no_new_privileges(Some(true));
        }
        let path = scratch.join(format!("exec-{}.json", std::process::id()));
        let json = serde_json::to_vec(&process).expect("a process spec serializes");
        std::fs::write(&path, json).at("write", &path)?;
        let result = self
            .builder(id, stdio, CleanSignalsExecutor { seccomp })?
            .as_tenant()
            .with_process(Some(&path))
            .with_detach(true)
            .build();
        let _ = std::fs::remove_file(&path);
        result.map(|p| p.as_raw()).map_err(|e| runtime_error(id, "exec", e))
    }

    fn load(&self, id: &str) -> Result<Container, SandboxError> {
        let mut c = Container::load(self.root.join(id)).map_err(|e| runtime_error(id, "load the state of", e))?;
        c.refresh_status()
            .map_err(|e| runtime_error(id, "read the state of", e))?;
        Ok(c)
    }

    /// Whether libcontainer knows container `id`.
    pub fn exists(&self, id: &str) -> bool {
        self.root.join(id).join("state.json").exists()
    }

    /// Sends `signal` to the container's first process (`all`: to every process in it).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), SandboxError> {
        let signal = libcontainer::signal::Signal::try_from(signal).map_err(|e| runtime_error(id, "signal", e))?;
        self.load(id)?
            .kill(signal, all)
            .map_err(|e| runtime_error(id, "signal", e))
    }

    /// Deletes container `id`: its cgroup and libcontainer's state (`force`: kills it first if it still runs).
    /// A container libcontainer does not know is already deleted.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), SandboxError> {
        if !self.root.join(id).exists() {
            return Ok(());
        }
        match self.load(id) {
            Ok(mut c) => {
                let stopped = c.status() == libcontainer::container::ContainerStatus::Stopped;
                if force
                    && !stopped
                    && let Ok(config) = c.spec()
                {
                    kill_cgroup(id, config.cgroup_path, c.systemd(), false);
                }
                // For a stopped container, libcontainer kills whatever is left in its cgroup and removes the cgroup,
                // retrying for a tenth of a second. Processes slower to go than that (the cgroup stays busy) are
                // killed and waited for here, and the deletion tried again.
                match c.delete(force) {
                    Err(e) if force && stopped => {
                        let Ok(config) = c.spec() else {
                            return Err(runtime_error(id, "delete", e));
                        };
                        // Only when the cgroup is what failed: something still runs in it.
                        let busy = kill_cgroup_if_busy(id, config.cgroup_path, c.systemd());
                        match self.load(id) {
                            Ok(mut again) if busy => again.delete(force).map_err(|e| runtime_error(id, "delete", e)),
                            _ => Err(runtime_error(id, "delete", e)),
                        }
                    }
                    done => done.map_err(|e| runtime_error(id, "delete", e)),
                }
            }
            Err(e) => {
                // Half-written state (no or a truncated state.json, its writer killed): its processes may still run
                // in the cgroup its configuration names.
                tracing::debug!("{e}; removing the state directory");
                let dir = self.root.join(id);
                if let Ok(config) = libcontainer::config::YoukiConfig::load(&dir) {
                    kill_cgroup(id, config.cgroup_path, false, true);
                }
                std::fs::remove_dir_all(&dir).at("remove", dir).map_err(Into::into)
            }
        }
    }

    /// Creates container `id` from `bundle` without starting its program (runc's `create`): the process waits for
    /// [`Self::start_created`]. Returns its process id; it is a child of the caller until the caller exits, and
    /// then of the nearest subreaper (containerd's shim). On failure, whatever was created is deleted.
    pub fn create(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<i32, SandboxError> {
        let spec = bundle_spec(bundle);
        self.prepare_seccomp(spec.as_ref());
        let built = self
            .builder(
                id,
                Stdio {
                    console_socket: opts.console_socket,
                    ..Stdio::default()
                },
                CleanSignalsExecutor::default(),
            )?
            .with_preserved_fds(opts.preserve_fds)
            .validate_id()
            .map_err(|e| runtime_error(id, "create", e))?
            .as_init(bundle)
            .with_systemd(opts.systemd)
            .with_detach(true)
            .with_no_pivot(opts.no_pivot)
            .build();
        let container = match built {
            Ok(c) => c,
            Err(e) => {
                let err = runtime_error(id, "create", e);
                self.delete_quietly(id);
                return Err(err);
            }
        };
        let pid = container.pid().map(|p| p.as_raw()).ok_or_else(|| {
            runtime_error(
                id,
                "create",
                std::io::Error::other("libcontainer reported no process id"),
            )
        })?;
        if own_network_namespace(spec.as_ref())
            && let Err(e) = loopback_up(pid)
        {
            tracing::warn!(container = id, "could not bring the loopback interface up: {e}");
        }
        Ok(pid)
    }

    /// Starts the program of a container made by [`Self::create`].
    pub fn start_created(&self, id: &str) -> Result<(), SandboxError> {
        let mut c = self.load(id)?;
        if !c.can_start() {
            return Err(not_in_state(id, "start", &c));
        }
        c.start().map_err(|e| runtime_error(id, "start", e))
    }

    /// The container's state as the runtime spec's `state` operation gives it: `ociVersion`, `id`, `status`
    /// (`creating`, `created`, `running`, `stopped`, `paused`), `pid` (while it has a process), `bundle`,
    /// `annotations`, and `created` (RFC 3339).
    pub fn state(&self, id: &str) -> Result<serde_json::Value, SandboxError> {
        let c = self.load(id)?;
        Ok(state_json(&c))
    }

    /// The states of every container under the state directory (see [`Self::state`]); unreadable ones are left out.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return out;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            if let Ok(c) = self.load(&name) {
                out.push(state_json(&c));
            }
        }
        out
    }

    /// The container's status (`created`, `running`, …), or `None` when it does not exist.
    pub fn status(&self, id: &str) -> Option<String> {
        if !self.exists(id) {
            return None;
        }
        self.load(id).ok().map(|c| status_word(&c).to_owned())
    }

    /// Freezes every process of the container (its cgroup's freezer).
    pub fn pause(&self, id: &str) -> Result<(), SandboxError> {
        let mut c = self.load(id)?;
        if !c.can_pause() {
            return Err(not_in_state(id, "pause", &c));
        }
        c.pause().map_err(|e| runtime_error(id, "pause", e))
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), SandboxError> {
        let mut c = self.load(id)?;
        if !c.can_resume() {
            return Err(not_in_state(id, "resume", &c));
        }
        c.resume().map_err(|e| runtime_error(id, "resume", e))
    }

    /// Applies new resource limits (the runtime spec's `linux.resources`) to a container's cgroup, as `runc update
    /// --resources FILE` does: only what `resources` sets changes.
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<(), SandboxError> {
        use libcgroups::common::{CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager};
        let c = self.load(id)?;
        if !matches!(status_word(&c), "created" | "running" | "paused") {
            return Err(not_in_state(id, "update", &c));
        }
        let config = c
            .spec()
            .map_err(|e| runtime_error(id, "read the configuration of", e))?;
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: config.cgroup_path,
            systemd_cgroup: c.systemd(),
            container_name: id.to_owned(),
        })
        .map_err(|e| runtime_error(id, "open the cgroup of", e))?;
        manager
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| runtime_error(id, "update the resources of", e))
    }

    fn delete_quietly(&self, id: &str) {
        if let Err(e) = self.delete(id, true) {
            tracing::warn!("{e}");
        }
    }
}

/// SIGKILLs every process in container `id`'s cgroup and waits (up to 2 s) for it to empty. libcontainer kills only
/// a container it believes to be running, and a container whose creator was killed can look stopped while its
/// processes run on; and removing a cgroup right after the kill fails while they are still exiting.
/// With `remove`, the emptied cgroup is removed too (for a container libcontainer cannot delete).
fn kill_cgroup(id: &str, cgroup_path: PathBuf, systemd: bool, remove: bool) {
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
fn kill_cgroup_if_busy(id: &str, cgroup_path: PathBuf, systemd: bool) -> bool {
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

/// runc's `create` flags.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// A listening Unix socket that receives the terminal's master side (when `process.terminal` is true).
    pub console_socket: Option<PathBuf>,
    /// Do not pivot_root into the root filesystem (for a root on a ramdisk).
    pub no_pivot: bool,
    /// Extra file descriptors (3 onwards) the container's process inherits.
    pub preserve_fds: i32,
    /// Let systemd manage the cgroup (`--systemd-cgroup`).
    pub systemd: bool,
}

fn status_word(c: &Container) -> &'static str {
    use libcontainer::container::ContainerStatus as S;
    match c.status() {
        S::Creating => "creating",
        S::Created => "created",
        S::Running => "running",
        S::Stopped => "stopped",
        S::Paused => "paused",
    }
}

fn state_json(c: &Container) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": c.id(),
        "status": status_word(c),
        "bundle": c.bundle(),
    });
    if status_word(c) != "stopped"
        && let Some(pid) = c.pid()
    {
        v["pid"] = pid.as_raw().into();
    }
    if let Some(a) = &c.state.annotations {
        v["annotations"] = serde_json::to_value(a).unwrap_or_default();
    }
    if let Some(t) = c.created() {
        v["created"] = t.to_rfc3339().into();
    }
    v
}

fn not_in_state(id: &str, action: &'static str, c: &Container) -> SandboxError {
    SandboxError::Runtime {
        container: id.to_owned(),
        action,
        reason: format!("the container is {}", status_word(c)),
    }
}

/// How a process ended, as a shell reports it: its exit code, or 128 + the signal that killed it.
pub fn wait_exit(pid: i32) -> Result<i32, SandboxError> {
    let pid_t = rustix::process::Pid::from_raw(pid).ok_or_else(|| {
        SandboxError::Io(berth_spec::io_context::PathError::new(
            "wait for",
            PathBuf::from(format!("process {pid}")),
            std::io::Error::other("not a process id"),
        ))
    })?;
    loop {
        match rustix::process::waitpid(Some(pid_t), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(SandboxError::Io(berth_spec::io_context::PathError::new(
                    "wait for",
                    PathBuf::from(format!("process {pid}")),
                    e,
                )));
            }
        }
    }
}

/// What this runtime supports, in the runtime spec's features document (`runc features`, which containerd 2 reads):
/// spec versions, hooks, mount options, namespaces, capabilities, cgroup versions and seccomp.
pub fn features() -> serde_json::Value {
    let mut mount_options = libcontainer::syscall::linux::MountOption::known_options();
    mount_options.extend(
        [
            "rro",
            "rrw",
            "rnosuid",
            "rsuid",
            "rnodev",
            "rdev",
            "rnoexec",
            "rexec",
            "rnodiratime",
            "rdiratime",
            "rrelatime",
            "rnorelatime",
            "rnoatime",
            "ratime",
            "rstrictatime",
            "rnostrictatime",
            "rnosymfollow",
            "rsymfollow",
        ]
        .map(String::from),
    );
    mount_options.sort();
    mount_options.dedup();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": CAPABILITIES.as_slice(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
                    "SCMP_CMP_NE",
                ],
                "archs": [
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS",
                    "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
                    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_PPC",
                    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
                    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64",
                ],
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
        },
        "annotations": {
            "io.berth.runtime.version": env!("CARGO_PKG_VERSION"),
            "io.berth.runtime.libcontainer": "0.7",
        },
    })
}

/// The capabilities Linux defines (up to CAP_CHECKPOINT_RESTORE, Linux 5.9).
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

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
