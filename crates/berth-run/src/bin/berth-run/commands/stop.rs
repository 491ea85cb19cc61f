//! `berth-run stop`: the stop signal, then SIGKILL.

use std::time::Duration;

use berth_run::lifecycle;
use clap::Args;

use super::{Outcome, each};
use crate::Cli;

#[derive(Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub(crate) time: u64,
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

pub(crate) fn stop(cli: &Cli, args: &StopArgs) -> Outcome {
    let timeout = Duration::from_secs(args.time);
    each(cli, &args.containers, |s, r| lifecycle::stop(s, r, timeout))
}
