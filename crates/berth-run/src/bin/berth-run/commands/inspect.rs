//! `berth-run inspect`: containers' state and configuration as JSON.

use std::io::Write;

use berth_run::lifecycle;

use super::{ContainersArgs, Outcome};
use crate::Cli;

pub(crate) fn inspect(cli: &Cli, args: &ContainersArgs) -> Outcome {
    let state = cli.state()?;
    let mut all = Vec::new();
    for name in &args.containers {
        all.push(lifecycle::inspect(&state, &state.find(name)?)?);
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &all)?;
    writeln!(out)?;
    Ok(0)
}
