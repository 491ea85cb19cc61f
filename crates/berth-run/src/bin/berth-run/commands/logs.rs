//! `berth-run logs`: a detached container's output.

use berth_run::lifecycle;
use clap::Args;

use super::Outcome;
use crate::Cli;

#[derive(Args)]
pub(crate) struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short = 'f', long = "follow")]
    pub(crate) follow: bool,
    /// Prefix each line with its time.
    #[arg(short = 't', long = "timestamps")]
    pub(crate) timestamps: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long = "tail")]
    pub(crate) tail: Option<usize>,
    pub(crate) container: String,
}

pub(crate) fn logs(cli: &Cli, args: &LogsArgs) -> Outcome {
    let state = cli.state()?;
    let record = state.find(&args.container)?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    lifecycle::logs(
        &state,
        &record,
        args.follow,
        args.timestamps,
        args.tail,
        &mut out,
        &mut err,
    )?;
    Ok(0)
}
