//! `rm`: a container's state, bundle and root file system removed.

use std::time::Duration;

use super::{load_if_present, stop};
use crate::RunError;
use crate::state::{ContainerRecord, StateDir, Status};
use crate::supervise::remove_container;

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
