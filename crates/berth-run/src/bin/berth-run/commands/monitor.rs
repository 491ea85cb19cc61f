//! `berth-run __monitor ID` (hidden): the process that owns a detached container.

use super::Outcome;
use crate::Cli;

/// Runs the monitor of container `id` until the container has exited and been recorded.
pub(crate) fn monitor(cli: &Cli, id: &str) -> Outcome {
    let state = cli.state()?;
    berth_run::supervise::monitor_main(state.root(), id)?;
    Ok(0)
}
