//! Signals to a running container: `kill`, `stop` (its stop signal, then SIGKILL), and `wait` for its end.

use std::time::Duration;

use super::{load_if_present, require_running, settle_orphan, wait_stopped};
use crate::RunError;
use crate::state::{ContainerRecord, StateDir, Status};

/// Sends `signal` to the container's first process.
pub fn kill(state: &StateDir, record: &ContainerRecord, signal: i32) -> Result<(), RunError> {
    require_running(record)?;
    state.runtime()?.kill(&record.id, signal, false)?;
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
