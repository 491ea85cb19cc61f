//! `berth-run kill`: a signal to running containers.

use anyhow::Context;
use berth_run::lifecycle;
use berth_run::signals::parse_signal;
use clap::Args;

use super::{Outcome, each};
use crate::Cli;

#[derive(Args)]
pub(crate) struct KillArgs {
    /// The signal: a name (TERM, SIGHUP) or number.
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    pub(crate) signal: String,
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

pub(crate) fn kill(cli: &Cli, args: &KillArgs) -> Outcome {
    let signal = parse_signal(&args.signal).with_context(|| {
        format!(
            "--signal {}: not a signal name or number (use TERM, SIGHUP, 9, …)",
            args.signal
        )
    })?;
    each(cli, &args.containers, |s, r| lifecycle::kill(s, r, signal))
}
