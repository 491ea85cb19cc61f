//! Starting a container and staying with it until it exits: in the foreground (standard streams passed through,
//! signals forwarded, a terminal with `-t`), or in a detached monitor process that writes the container's output
//! to its log and records how it ended.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_sandbox::runtime::{Runtime, Stdio, wait_exit};
use oci_spec::runtime::Process;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
use signal_hook::iterator::Signals;

use crate::RunError;
use crate::logfile::{Stream, copy_to_log};
use crate::state::{ContainerRecord, RootfsKind, StateDir, Status, now};
use crate::tty::{ConsoleSocket, RawMode, copy_window_size, spawn_input_copy, spawn_output_copy};
use berth_sandbox::overlay::unmount_overlay;
use berth_spec::io_context::IoContext;

/// The hidden subcommand the detached monitor runs as.
pub const MONITOR_COMMAND: &str = "__monitor";

fn dev_null() -> Result<OwnedFd, RunError> {
    Ok(File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .at("open", "/dev/null")?
        .into())
}

/// Starts the created container and records it as running; with a console socket, its terminal is received (and
/// given the user's window size) before the container's program starts. If it cannot start, it is removed.
fn start(
    state: &StateDir,
    runtime: &Runtime,
    record: &ContainerRecord,
    stdio: Stdio,
    console: Option<&ConsoleSocket>,
) -> Result<(i32, Option<OwnedFd>), RunError> {
    if crate::rootless::without_cgroups() {
        crate::rootless::prepare_cgroup_stand_ins(&crate::create::cgroups_path(&record.id))?;
    }
    let mut terminal = None;
    let mut receive = || -> Result<(), String> {
        if let Some(c) = console {
            let master = c.receive().map_err(|e| berth_spec::error_chain(&e))?;
            copy_window_size(master.as_fd());
            terminal = Some(master);
        }
        Ok(())
    };
    match runtime.start(&record.id, &record.bundle, stdio, &mut receive) {
        Ok(pid) => {
            state.update(&record.id, |r| {
                r.status = Status::Running;
                let me = std::process::id() as i32;
                r.pid = Some(pid);
                r.pid_start = crate::state::process_start_time(pid);
                r.boot_id = crate::state::current_boot_id();
                r.monitor_pid = Some(me);
                r.monitor_start = crate::state::process_start_time(me);
                r.started = Some(now());
            })?;
            Ok((pid, terminal))
        }
        Err(e) => {
            if let Err(cleanup) = remove_container(state, runtime, record) {
                tracing::warn!("{cleanup}");
            }
            Err(e.into())
        }
    }
}

/// After the container's process has ended: deletes the runtime's state and cgroup, unmounts the root
/// filesystem, and then records the exit code (`None`: unknown) — last, so whoever sees the container exited
/// finds it cleaned up. A container started with `--rm` is removed instead.
pub fn finish(state: &StateDir, runtime: &Runtime, id: &str, code: Option<i32>) -> Result<(), RunError> {
    let record = state.load(id)?;
    if record.auto_remove {
        let _names = state.lock_names()?;
        if let Err(e) = state.record_exit(id, code) {
            tracing::warn!("{e}");
        }
        return remove_container(state, runtime, &record);
    }
    crate::rootless::remove_cgroup_stand_ins(&crate::create::cgroups_path(id));
    if let Err(e) = runtime.delete(id, true) {
        tracing::warn!("{e}");
    }
    release_rootfs(&record);
    state.update(id, |r| {
        r.status = Status::Exited;
        r.exit_code = code;
        r.finished = Some(now());
    })?;
    Ok(())
}

/// Unmounts an overlay root filesystem (not mounted is fine).
pub fn release_rootfs(record: &ContainerRecord) {
    if record.rootfs == RootfsKind::Overlay {
        let target = record.bundle.join("rootfs");
        if let Err(e) = unmount_overlay(&target) {
            tracing::debug!("{e}");
            // Busy (a shell's working directory in it, say): detach it, so that removing the container's
            // directory cannot reach through the mount into its files.
            let _ = rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Removes everything of a container that is not running: runtime state, mounts, directory, record.
pub fn remove_container(state: &StateDir, runtime: &Runtime, record: &ContainerRecord) -> Result<(), RunError> {
    crate::rootless::remove_cgroup_stand_ins(&crate::create::cgroups_path(&record.id));
    if let Err(e) = runtime.delete(&record.id, true) {
        // A broken runtime state must not make the container impossible to remove.
        tracing::warn!("{e}; removing its runtime state directory");
        let dir = runtime.root().join(&record.id);
        if let Err(e) = berth_layer::apply::remove_dir_all_forcing(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).at("remove", dir).map_err(Into::into);
        }
    }
    release_rootfs(record);
    let dir = state.container_dir(&record.id);
    // The record goes first, so a crash midway leaves no half-removed container listed.
    let json = dir.join("container.json");
    match std::fs::remove_file(&json) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).at("remove", json).map_err(Into::into),
        _ => {}
    }
    // The directory (the container's writable layer, of any size) is deleted after this returns, by a process of its
    // own, when it can be moved to the trash; it is no longer part of the state either way.
    // As root only: a rootless berth-run's files need its user namespace to be deleted.
    if !crate::rootless::is_rootless() && state.discard(&dir) {
        sweep_in_background(state);
        return Ok(());
    }
    match berth_layer::apply::remove_dir_all_forcing(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", dir).map_err(Into::into),
        _ => Ok(()),
    }
}

/// Starts `berth-run __sweep`, which deletes what the state's trash holds, without waiting for it (it outlives
/// this process; anything it leaves is swept by the next one, or by `berth-run gc`). If it cannot start, the trash
/// is emptied here.
fn sweep_in_background(state: &StateDir) {
    use std::os::unix::process::CommandExt;
    let spawned = std::process::Command::new(berth_sandbox::sealed_exe::SELF_EXE)
        .arg0("berth-run")
        .arg("--state")
        .arg(state.root())
        .arg("__sweep")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Out of the terminal's process group: a Ctrl-C meant for the next command does not stop it midway.
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        tracing::debug!("could not start the trash sweeper ({e}); sweeping here");
        state.sweep_trash();
    }
}

/// Forwards the signals a user sends to berth-run (Ctrl-C, `kill`) to process `pid`, and window size changes to
/// the terminal, from a background thread.
fn forward_signals(pid: i32, terminal: Option<OwnedFd>, mut signals: Signals) -> Result<(), RunError> {
    let target = rustix::process::Pid::from_raw(pid).expect("a started process has a positive id");
    let pidfd =
        rustix::process::pidfd_open(target, rustix::process::PidfdFlags::empty()).at("open", format!("/proc/{pid}"))?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGWINCH {
                if let Some(t) = &terminal {
                    copy_window_size(t.as_fd());
                }
                continue;
            }
            if let Some(signal) = rustix::process::Signal::from_named_raw(sig) {
                tracing::debug!(sig, pid, "forwarding signal");
                let _ = rustix::process::pidfd_send_signal(&pidfd, signal);
            }
        }
    });
    Ok(())
}

/// The signals a foreground berth-run forwards, caught from before the container starts (so one sent while it
/// starts is delivered to it, not fatal to berth-run).
fn catch_signals() -> Result<Signals, RunError> {
    Signals::new([SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH])
        .at("handle signals of", "berth-run")
        .map_err(Into::into)
}

/// How a foreground process's standard streams are connected.
#[derive(Debug, Clone, Copy)]
pub struct Attach {
    /// `-i`: standard input goes to the process (otherwise it reads /dev/null).
    pub interactive: bool,
    /// `-t`: the process gets a terminal.
    pub tty: bool,
}

/// The standard streams for a foreground process, and the console socket when it gets a terminal.
fn foreground_stdio(attach: Attach) -> Result<(Stdio, Option<ConsoleSocket>), RunError> {
    let mut stdio = Stdio::default();
    if !attach.interactive && !attach.tty {
        stdio.stdin = Some(dev_null()?);
    }
    let console = if attach.tty { Some(ConsoleSocket::new()?) } else { None };
    stdio.console_socket = console.as_ref().map(|c| c.path().to_owned());
    Ok((stdio, console))
}

/// Waits for a foreground process: terminal plumbing, signal forwarding, then its exit code.
fn attend(pid: i32, master: Option<OwnedFd>, attach: Attach, signals: Signals) -> Result<i32, RunError> {
    let mut output = None;
    let mut raw = None;
    let mut terminal = None;
    if let Some(master) = master {
        if attach.interactive {
            raw = RawMode::enable();
            spawn_input_copy(&master)?;
        }
        output = Some(spawn_output_copy(&master)?);
        terminal = Some(master);
    }
    forward_signals(pid, terminal, signals)?;
    let code = wait_exit(pid)?;
    if let Some(o) = output {
        let _ = o.join();
    }
    drop(raw);
    Ok(code)
}

/// Starts the created container in the foreground and waits for it; returns its exit code (128 + N when signal N
/// killed it). The container is then cleaned up (and removed with `--rm`).
pub fn run_foreground(state: &StateDir, record: &ContainerRecord, attach: Attach) -> Result<i32, RunError> {
    let runtime = state.runtime()?;
    let (stdio, console) = foreground_stdio(attach)?;
    let signals = catch_signals()?;
    let (pid, master) = start(state, &runtime, record, stdio, console.as_ref())?;
    let code = attend(pid, master, attach, signals);
    let code = match code {
        Ok(c) => c,
        Err(e) => {
            // The terminal could not be set up: do not leave the process behind.
            let _ = runtime.kill(&record.id, 9, !crate::rootless::without_cgroups());
            let c = wait_exit(pid).ok();
            finish(state, &runtime, &record.id, c)?;
            return Err(e);
        }
    };
    finish(state, &runtime, &record.id, Some(code))?;
    Ok(code)
}

/// Runs `process` in the running container `record` (`exec`) in the foreground; returns its exit code.
pub fn exec_foreground(
    state: &StateDir,
    record: &ContainerRecord,
    process: &Process,
    attach: Attach,
) -> Result<i32, RunError> {
    let runtime = state.runtime()?;
    let (stdio, console) = foreground_stdio(attach)?;
    let signals = catch_signals()?;
    let pid = runtime.exec(&record.id, process, &state.container_dir(&record.id), stdio)?;
    // libcontainer starts an exec'd process as it creates it: its terminal gets the window size a moment later.
    let master = console.as_ref().map(ConsoleSocket::receive).transpose()?;
    if let Some(m) = &master {
        copy_window_size(m.as_fd());
    }
    attend(pid, master, attach, signals)
}

/// Starts a detached container: spawns the monitor (this program, re-executed) and waits until it reports the
/// container started. Returns the container's process id.
pub fn start_detached(state: &StateDir, record: &ContainerRecord) -> Result<i32, RunError> {
    // The sealed copy this process runs from (berth_sandbox::sealed_exe), which has no path of its own.
    let exe = std::path::PathBuf::from(berth_sandbox::sealed_exe::SELF_EXE);
    let dir = state.container_dir(&record.id);
    let log_path = dir.join("monitor.log");
    let log = File::create(&log_path).at("create", &log_path)?;
    let mut child = std::process::Command::new(&exe)
        .arg("--state")
        .arg(state.root())
        .arg(MONITOR_COMMAND)
        .arg(&record.id)
        .env_remove(crate::rootless::STAGE_VAR)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .at("start", &exe)?;
    let mut report = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut report);
    }
    if let Some(pid) = report.trim().strip_prefix("started ").and_then(|p| p.parse().ok()) {
        return Ok(pid);
    }
    let _ = child.wait();
    let reason = match report.trim().strip_prefix("error: ") {
        Some(e) => e.to_owned(),
        None => {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            format!("the monitor process failed: {}", log.trim())
        }
    };
    Err(RunError::container(&record.name, reason))
}

/// Closes every descriptor above the standard three that the monitor inherited (a shell's `7>&1`, a make
/// jobserver's pipe): held for the container's whole life, they would keep whoever reads them waiting. Nothing of the
/// monitor's own is open yet.
fn close_inherited_fds() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: called first thing in the monitor, before it opens anything; what is closed here is only what
        // the parent leaked (the read_dir handle above is closed already, and closing a stale number is harmless).
        #[allow(unsafe_code)]
        unsafe {
            libc::close(fd);
        }
    }
}

/// What the monitor opens before starting the container: the record, the runtime, the log, and the container's
/// standard streams (pipes into the log, or a console socket for a terminal).
type MonitorSetup = (
    ContainerRecord,
    Runtime,
    Arc<Mutex<File>>,
    Stdio,
    Vec<(OwnedFd, Stream)>,
    Option<ConsoleSocket>,
);

fn monitor_setup(state: &StateDir, id: &str) -> Result<MonitorSetup, RunError> {
    let record = state.load(id)?;
    let runtime = state.runtime()?;
    let log_path = state.container_dir(id).join("ctr.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .at("open", &log_path)?;
    let log = Arc::new(Mutex::new(log));
    let mut stdio = Stdio {
        stdin: Some(dev_null()?),
        ..Stdio::default()
    };
    let mut readers: Vec<(OwnedFd, Stream)> = Vec::new();
    let console = if record.tty {
        let c = ConsoleSocket::new()?;
        stdio.console_socket = Some(c.path().to_owned());
        Some(c)
    } else {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).at("create", "a pipe")?;
            match stream {
                Stream::Stdout => stdio.stdout = Some(write),
                Stream::Stderr => stdio.stderr = Some(write),
            }
            readers.push((read, stream));
        }
        None
    };
    Ok((record, runtime, log, stdio, readers, console))
}

/// The monitor of a detached container (`berth-run __monitor ID`): starts the container with its output going
/// to `ctr.log`, reports `started PID` (or `error: …`) on standard output, then waits for the container and
/// records its exit.
pub fn monitor_main(state_root: &Path, id: &str) -> Result<(), RunError> {
    close_inherited_fds();
    let _ = rustix::process::setsid();
    // Keep no directory of the user's busy, and survive a `run -d` that is gone before the report is written.
    let _ = std::env::set_current_dir("/");
    let _ = signal_hook::flag::register(SIGPIPE, Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let state = StateDir::open(state_root)?;
    let setup = monitor_setup(&state, id);
    let (record, runtime, log, stdio, mut readers, console) = match setup {
        Ok(s) => s,
        Err(e) => {
            if let (Ok(record), Ok(runtime)) = (state.load(id), state.runtime()) {
                let _names = state.lock_names();
                if let Err(cleanup) = remove_container(&state, &runtime, &record) {
                    tracing::warn!("{cleanup}");
                }
            }
            // The parent may be gone: a failed write must not stop the monitor.
            let _ = writeln!(std::io::stdout(), "error: {e}");
            return Ok(());
        }
    };
    let pid = match start(&state, &runtime, &record, stdio, console.as_ref()) {
        Ok((pid, master)) => {
            readers.extend(master.map(|m| (m, Stream::Stdout)));
            pid
        }
        Err(e) => {
            let _ = writeln!(std::io::stdout(), "error: {e}");
            return Ok(());
        }
    };
    let threads: Vec<_> = readers
        .into_iter()
        .map(|(fd, stream)| {
            let log = log.clone();
            std::thread::spawn(move || copy_to_log(File::from(fd), stream, log))
        })
        .collect();
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "started {pid}");
        let _ = out.flush();
    }
    let null = dev_null()?;
    let _ = rustix::stdio::dup2_stdout(&null);
    let code = wait_exit(pid)?;
    for t in threads {
        let _ = t.join();
    }
    finish(&state, &runtime, id, Some(code))
}
