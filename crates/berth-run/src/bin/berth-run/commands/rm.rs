//! `berth-run rm`: containers removed, with nothing left behind.

use berth_run::lifecycle;
use clap::Args;

use super::{Outcome, each};
use crate::Cli;

#[derive(Args)]
pub(crate) struct RmArgs {
    /// Kill and remove running containers too.
    #[arg(short = 'f', long = "force")]
    pub(crate) force: bool,
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

pub(crate) fn rm(cli: &Cli, args: &RmArgs) -> Outcome {
    each(cli, &args.containers, |s, r| lifecycle::remove(s, r, args.force))
}
