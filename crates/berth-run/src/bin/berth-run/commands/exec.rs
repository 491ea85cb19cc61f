//! `berth-run exec`: a command in a running container.

use anyhow::bail;
use berth_run::lifecycle::{self, ExecRequest};
use berth_run::state::Status;
use berth_run::supervise::{Attach, exec_foreground};
use clap::Args;

use super::Outcome;
use crate::Cli;

#[derive(Args)]
pub(crate) struct ExecArgs {
    /// Keep standard input connected.
    #[arg(short = 'i', long = "interactive")]
    pub(crate) interactive: bool,
    /// Give the process a terminal.
    #[arg(short = 't', long = "tty")]
    pub(crate) tty: bool,
    /// Set an environment variable: KEY=VALUE, or KEY to take the value from this environment.
    #[arg(short = 'e', long = "env")]
    pub(crate) env: Vec<String>,
    /// Run as USER or USER:GROUP.
    #[arg(short = 'u', long = "user")]
    pub(crate) user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub(crate) workdir: Option<String>,
    /// Every capability.
    #[arg(long)]
    pub(crate) privileged: bool,
    pub(crate) container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub(crate) command: Vec<String>,
}

pub(crate) fn exec(cli: &Cli, args: &ExecArgs) -> Outcome {
    let state = cli.state()?;
    let record = state.find(&args.container)?;
    if record.live_status() != Status::Running {
        bail!(
            "container {}: it is not running; exec needs a running container",
            args.container
        );
    }
    let process = lifecycle::exec_process(
        &record,
        &ExecRequest {
            command: args.command.clone(),
            env: args.env.clone(),
            user: args.user.clone(),
            workdir: args.workdir.clone(),
            tty: args.tty,
            privileged: args.privileged,
        },
    )?;
    let attach = Attach {
        interactive: args.interactive,
        tty: args.tty,
    };
    let code = exec_foreground(&state, &record, &process, attach)?;
    Ok(u8::try_from(code).unwrap_or(255))
}
