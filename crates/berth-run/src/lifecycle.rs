//! What happens to containers after `run`: listing, logs, signals, stopping, removing, `exec`, and garbage
//! collection of the layer cache.

use std::collections::HashSet;
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_sandbox::rootfs::RootFs;
use berth_spec::Digest;
use berth_spec::document::ManifestOrIndex;
use berth_spec::layout::Layout;
use berth_spec::runtime_config::{UserSpec, resolve_user};
use oci_spec::runtime::{Process, Spec, UserBuilder};

use crate::RunError;
use crate::error::IoContext;
use crate::layers::LayerStore;
use crate::logfile::{Stream, read_entries};
use crate::state::{ContainerRecord, StateDir, Status};
use crate::supervise::{finish, remove_container};

/// Fails unless the container runs.
fn require_running(record: &ContainerRecord) -> Result<i32, RunError> {
    match (record.live_status(), record.pid) {
        (Status::Running, Some(pid)) => Ok(pid),
        (status, _) => Err(RunError::container(
            &record.name,
            format!("it is not running (it is {status:?}); start a new one with `berth-run run`").to_lowercase(),
        )),
    }
}

/// Sends `signal` to the container's first process.
pub fn kill(state: &StateDir, record: &ContainerRecord, signal: i32) -> Result<(), RunError> {
    require_running(record)?;
    state.runtime()?.kill(&record.id, signal, false)?;
    Ok(())
}

/// The record, or `None` when the container is gone (a `--rm` container removes itself when it exits).
fn load_if_present(state: &StateDir, id: &str) -> Result<Option<ContainerRecord>, RunError> {
    if !state.container_dir(id).join("container.json").exists() {
        return Ok(None);
    }
    match state.load(id) {
        Ok(r) => Ok(Some(r)),
        Err(_) if !state.container_dir(id).join("container.json").exists() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits until the container has stopped and its monitor has cleaned up and recorded the exit (or is gone
/// itself), up to `timeout`.
fn wait_stopped(state: &StateDir, id: &str, timeout: Duration) -> Result<bool, RunError> {
    // A timeout too long to represent means no deadline.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let Some(r) = load_if_present(state, id)? else {
            return Ok(true);
        };
        let orphan = r.live_status() != Status::Running && !r.monitor_alive();
        if r.status != Status::Running || orphan {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records the end of a container whose monitor is gone (killed, or the machine rebooted) and cleans it up; its
/// exit code is unknown.
fn settle_orphan(state: &StateDir, record: &ContainerRecord) -> Result<(), RunError> {
    let Some(r) = load_if_present(state, &record.id)? else {
        return Ok(());
    };
    if r.status == Status::Running && r.live_status() == Status::Exited && !r.monitor_alive() {
        finish(state, &state.runtime()?, &r.id, None)?;
    }
    Ok(())
}

/// Stops a container: its stop signal, then SIGKILL after `timeout`. Stopping a stopped container does nothing.
pub fn stop(state: &StateDir, record: &ContainerRecord, timeout: Duration) -> Result<(), RunError> {
    if record.live_status() != Status::Running {
        // Exited, but its monitor may still be cleaning up: let it finish first.
        if record.status == Status::Running && record.monitor_alive() {
            wait_stopped(state, &record.id, Duration::from_secs(10))?;
        }
        return settle_orphan(state, record);
    }
    let runtime = state.runtime()?;
    if let Err(e) = runtime.kill(&record.id, record.stop_signal, false) {
        tracing::debug!("{e}");
    }
    if !wait_stopped(state, &record.id, timeout)? {
        tracing::info!(container = %record.name, "did not stop in time; sending SIGKILL");
        if let Err(e) = runtime.kill(&record.id, 9, !crate::rootless::without_cgroups()) {
            tracing::debug!("{e}");
        }
        if !wait_stopped(state, &record.id, Duration::from_secs(10))? {
            return Err(RunError::container(
                &record.name,
                "it did not exit after SIGKILL; see `berth-run ps -a`",
            ));
        }
    }
    settle_orphan(state, record)
}

/// Waits for a container to exit and returns its exit code (`None`: unknown, or removed by `--rm` on exit).
pub fn wait(state: &StateDir, record: &ContainerRecord) -> Result<Option<i32>, RunError> {
    if record.status == Status::Created {
        return Err(RunError::container(&record.name, "it was never started"));
    }
    wait_stopped(state, &record.id, Duration::MAX)?;
    settle_orphan(state, record)?;
    Ok(match load_if_present(state, &record.id)? {
        Some(r) => r.exit_code,
        // Removed as it ended (--rm): its exit code was kept for a while.
        None => state.recorded_exit(&record.id).flatten(),
    })
}

/// What `inspect` shows of a container: its record, and the process and mounts of its runtime spec.
pub fn inspect(state: &StateDir, record: &ContainerRecord) -> Result<serde_json::Value, RunError> {
    let status = record.live_status();
    let config_path = record.bundle.join("config.json");
    let spec = Spec::load(&config_path).ok();
    let process = spec.as_ref().and_then(|s| s.process().clone());
    let mounts: Vec<serde_json::Value> = spec
        .as_ref()
        .and_then(|s| s.mounts().clone())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            serde_json::json!({
                "Type": m.typ(),
                "Source": m.source(),
                "Destination": m.destination(),
                "Options": m.options(),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "Id": record.id,
        "Name": record.name,
        "Image": record.image,
        "ImageDigest": record.image_digest,
        "Created": crate::logfile::format_time(record.created, 0),
        "State": {
            "Status": format!("{status:?}").to_lowercase(),
            "Running": status == Status::Running,
            "Pid": if status == Status::Running { record.pid } else { None },
            "ExitCode": record.exit_code,
            "StartedAt": record.started.map(|t| crate::logfile::format_time(t, 0)),
            "FinishedAt": record.finished.map(|t| crate::logfile::format_time(t, 0)),
        },
        "Config": {
            "Cmd": process.as_ref().and_then(|p| p.args().clone()),
            "Env": process.as_ref().and_then(|p| p.env().clone()),
            "WorkingDir": process.as_ref().map(|p| p.cwd().clone()),
            "User": process.as_ref().map(|p| serde_json::json!({"uid": p.user().uid(), "gid": p.user().gid()})),
            "Tty": record.tty,
            "StopSignal": crate::signals::signal_name(record.stop_signal),
        },
        "HostConfig": { "AutoRemove": record.auto_remove },
        "Mounts": mounts,
        "Rootfs": format!("{:?}", record.rootfs).to_lowercase(),
        "Bundle": record.bundle,
        "Layers": record.layers,
        "Log": state.container_dir(&record.id).join("ctr.log"),
    }))
}

/// Removes a container; a running one only with `force` (killed first).
pub fn remove(state: &StateDir, record: &ContainerRecord, force: bool) -> Result<(), RunError> {
    if record.live_status() == Status::Running && !force {
        return Err(RunError::container(
            &record.name,
            "it is running; stop it first (`berth-run stop`) or remove it with -f",
        ));
    }
    if record.status == Status::Running {
        // Still running (-f kills it), or exited with its monitor perhaps still cleaning up: settle it first.
        stop(state, record, Duration::ZERO)?;
    }
    let _names = state.lock_names()?;
    // Removed meanwhile (a --rm container removes itself)?
    let Some(current) = load_if_present(state, &record.id)? else {
        return Ok(());
    };
    remove_container(state, &state.runtime()?, &current)
}

/// Writes the container's log to `stdout`/`stderr` (each entry to its own stream); with `follow`, keeps going
/// until the container has exited. `timestamps` prefixes each line with its time; `tail` keeps the last lines.
pub fn logs(
    state: &StateDir,
    record: &ContainerRecord,
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), RunError> {
    let path = state.container_dir(&record.id).join("ctr.log");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunError::container(
                &record.name,
                "it has no log: only detached containers (run -d) keep one",
            ));
        }
        Err(e) => return Err(e).at("open", &path),
    };
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    let mut first = true;
    loop {
        // Read the status before the log, so output written just before the exit is not missed.
        // Until the monitor has recorded the exit, which it does after copying the last output into the log.
        let running = follow
            && state
                .load(&record.id)
                .map(|r| r.status == Status::Running && (r.live_status() == Status::Running || r.monitor_alive()))
                .unwrap_or(false);
        reader.seek(SeekFrom::Start(offset)).at("read", &path)?;
        let (mut entries, consumed) = read_entries(&mut reader).at("read", &path)?;
        offset += consumed as u64;
        if first && let Some(n) = tail {
            // Lines, not entries: a long line is several partial entries.
            let mut lines = 0;
            let mut start = entries.len();
            while start > 0 {
                let ends_line = entries[start - 1].content.ends_with(b"\n");
                if ends_line {
                    if lines == n {
                        break;
                    }
                    lines += 1;
                }
                start -= 1;
            }
            entries.drain(..start);
        }
        first = false;
        for e in entries {
            let out: &mut dyn Write = match e.stream {
                Stream::Stdout => &mut *stdout,
                Stream::Stderr => &mut *stderr,
            };
            if timestamps {
                let _ = write!(out, "{} ", e.time);
            }
            out.write_all(&e.content).at("write", "the output")?;
        }
        stdout.flush().at("write", "the output")?;
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `exec` runs, on top of the container's own process settings.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and arguments.
    pub command: Vec<String>,
    /// `-e KEY=VALUE` (or `KEY`, from this environment).
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `--privileged`: every capability.
    pub privileged: bool,
}

/// The process spec for `exec`: the container's process with the command, env, user, working directory and
/// terminal replaced as asked.
pub fn exec_process(record: &ContainerRecord, request: &ExecRequest) -> Result<Process, RunError> {
    if request.command.is_empty() {
        return Err(RunError::option(
            "exec",
            "give the command to run after the container's name",
        ));
    }
    let config_path = record.bundle.join("config.json");
    let spec = Spec::load(&config_path)
        .map_err(|e| RunError::container(&record.name, format!("{}: {e}", config_path.display())))?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| "rootfs".into());
    let rootfs = RootFs::open(&record.bundle.join(root), &record.image)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(request.command.clone()));
    process.set_terminal(Some(request.tty));
    process.set_console_size(None);
    let mut env = process.env().clone().unwrap_or_default();
    for item in &request.env {
        let entry = match item.split_once('=') {
            Some(_) => item.clone(),
            None => match std::env::var(item) {
                Ok(v) => format!("{item}={v}"),
                Err(_) => continue,
            },
        };
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(entry);
    }
    if request.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(dir) = &request.workdir {
        if !dir.starts_with('/') {
            return Err(RunError::option(
                format!("-w {dir}"),
                "the working directory must be absolute",
            ));
        }
        process.set_cwd(dir.into());
    }
    if let Some(user) = &request.user {
        let spec_user =
            UserSpec::parse(user).map_err(|e| RunError::option(format!("-u {user}"), berth_spec::error_chain(&e)))?;
        let (passwd, group) = rootfs.account_files()?;
        let resolved = resolve_user(&spec_user, &passwd, &group)
            .map_err(|e| RunError::option(format!("-u {user}"), berth_spec::error_chain(&e)))?;
        // The container's umask (0022) stays: a new user must not reset it to berth-run's own.
        let umask = process.user().umask();
        let mut builder = UserBuilder::default().uid(resolved.uid).gid(resolved.gid);
        if let Some(umask) = umask {
            builder = builder.umask(umask);
        }
        if !resolved.additional_gids.is_empty() {
            builder = builder.additional_gids(resolved.additional_gids);
        }
        process.set_user(builder.build().expect("a user with ids builds"));
        // HOME that Berth set for the container's user (not the image's nor the user's): this user's instead.
        let computed = spec
            .annotations()
            .as_ref()
            .is_some_and(|a| a.contains_key(berth_sandbox::HOME_COMPUTED_ANNOTATION));
        let given = request.env.iter().any(|e| e == "HOME" || e.starts_with("HOME="));
        if computed && !given {
            let mut env = process.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("HOME="));
            env.push(format!(
                "HOME={}",
                berth_spec::runtime_config::home_of(&passwd, &spec_user.user)
            ));
            process.set_env(Some(env));
        }
    }
    // A command that cannot run is refused here, naming it (exit 127), rather than by the runtime.
    // Content under any mount (binds, tmpfs) is not the image's: commands there are not checked.
    let binds: Vec<String> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect();
    let binds: Vec<&str> = binds.iter().map(String::as_str).collect();
    let cwd = process.cwd().to_string_lossy().into_owned();
    let under_mount = binds
        .iter()
        .any(|m| cwd == *m || cwd.strip_prefix(m).is_some_and(|rest| rest.starts_with('/')));
    if request.workdir.is_some() && !under_mount && rootfs.open_dir(&cwd)?.is_none() {
        return Err(RunError::option(
            format!("-w {cwd}"),
            "no such directory in the container",
        ));
    }
    berth_sandbox::check_args(
        &rootfs,
        &request.command[0],
        &cwd,
        process.env().as_deref().unwrap_or_default(),
        &binds,
    )?;
    if request.privileged {
        let all = berth_sandbox::caps::host_bounding_set();
        process.set_capabilities(Some(berth_sandbox::caps::linux_capabilities(&all)));
    }
    Ok(process)
}

/// What [`collect_garbage`] did.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Removed layer directories.
    pub removed: Vec<Digest>,
    /// Layers kept.
    pub kept: usize,
}

/// Removes cached layers no container uses and (unless `all`) no image in the store at `store` references.
pub fn collect_garbage(state: &StateDir, cache: &Path, store: &Path, all: bool) -> Result<GcReport, RunError> {
    let layers = LayerStore::open(cache)?;
    let (removed, kept) = layers.collect_garbage(|| {
        let mut keep: HashSet<String> = HashSet::new();
        if !all && let Ok(layout) = Layout::open(store) {
            keep.extend(store_diff_ids(&layout));
        }
        for record in state.list()? {
            keep.extend(record.layers);
        }
        Ok(keep)
    })?;
    Ok(GcReport { removed, kept })
}

/// diffIDs of every image (every platform) in a layout; unreadable entries are skipped.
fn store_diff_ids(layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(index) = layout.index() else {
        return out;
    };
    let mut pending: Vec<oci_spec::image::Descriptor> = index.parsed().manifests().clone();
    let mut seen = HashSet::new();
    while let Some(desc) = pending.pop() {
        if !seen.insert(desc.digest().to_string()) {
            continue;
        }
        match layout.read_manifest_or_index(&desc) {
            Ok(ManifestOrIndex::Index(i)) => pending.extend(i.parsed().manifests().iter().cloned()),
            Ok(ManifestOrIndex::Manifest(m)) => {
                if let Ok(config) = layout.read_config(m.parsed().config()) {
                    out.extend(config.parsed().rootfs().diff_ids().iter().cloned());
                }
            }
            Err(e) => tracing::debug!("gc: skipping {}: {e}", desc.digest()),
        }
    }
    out
}
