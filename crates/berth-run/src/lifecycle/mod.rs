//! What happens to containers after `run`: listing, logs, signals, stopping, removing, `exec`, and garbage
//! collection of the layer cache — one module per verb, with the waiting and settling they share here.

mod exec;
mod gc;
mod inspect;
mod logs;
mod remove;
mod stop;

pub use exec::{ExecRequest, exec_process};
pub use gc::{GcReport, collect_garbage};
pub use inspect::inspect;
pub use logs::logs;
pub use remove::remove;
pub use stop::{kill, stop, wait};

use std::time::{Duration, Instant};

use crate::RunError;
use crate::state::{ContainerRecord, StateDir, Status};
use crate::supervise::finish;

/// Fails unless the container runs.
pub(crate) fn require_running(record: &ContainerRecord) -> Result<i32, RunError> {
    match (record.live_status(), record.pid) {
        (Status::Running, Some(pid)) => Ok(pid),
        (status, _) => Err(RunError::container(
            &record.name,
            format!("it is not running (it is {status:?}); start a new one with `berth-run run`").to_lowercase(),
        )),
    }
}

/// The record, or `None` when the container is gone (a `--rm` container removes itself when it exits).
pub(crate) fn load_if_present(state: &StateDir, id: &str) -> Result<Option<ContainerRecord>, RunError> {
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
pub(crate) fn wait_stopped(state: &StateDir, id: &str, timeout: Duration) -> Result<bool, RunError> {
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
pub(crate) fn settle_orphan(state: &StateDir, record: &ContainerRecord) -> Result<(), RunError> {
    let Some(r) = load_if_present(state, &record.id)? else {
        return Ok(());
    };
    if r.status == Status::Running && r.live_status() == Status::Exited && !r.monitor_alive() {
        finish(state, &state.runtime()?, &r.id, None)?;
    }
    Ok(())
}
