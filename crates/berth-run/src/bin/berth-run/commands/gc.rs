//! `berth-run gc`: cached layers nothing uses, removed.

use berth_run::lifecycle;
use clap::Args;

use super::Outcome;
use crate::Cli;

#[derive(Args)]
pub(crate) struct GcArgs {
    /// Also remove layers of images still in the store (keep only those containers use).
    #[arg(long)]
    pub(crate) all: bool,
}

pub(crate) fn gc(cli: &Cli, args: &GcArgs) -> Outcome {
    let state = cli.state()?;
    let report = lifecycle::collect_garbage(&state, &cli.cache(), &cli.store()?, args.all)?;
    for d in &report.removed {
        println!("{d}");
    }
    eprintln!("Removed {} cached layers, kept {}", report.removed.len(), report.kept);
    Ok(0)
}
