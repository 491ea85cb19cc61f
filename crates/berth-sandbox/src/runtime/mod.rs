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
use oci_spec::runtime::Process;

use crate::SandboxError;
use berth_spec::io_context::IoContext;

mod cgroups;
mod features;
mod process;

pub use cgroups::warm_cgroup_attach;
use cgroups::{kill_cgroup, kill_cgroup_if_busy};
pub use features::features;
use process::{CleanSignalsExecutor, bundle_spec, loopback_up, own_network_namespace};

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
