//! `berth-build prune`: empty the builder's caches, or say what they hold.

use anyhow::Result;
use clap::Args;

use crate::Cli;

#[derive(Args)]
pub(crate) struct PruneArgs {
    /// Also remove the RUN --mount=type=cache directories.
    #[arg(long)]
    pub(crate) all: bool,
    /// Say what the caches hold; remove nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

pub(crate) fn prune(cli: &Cli, args: &PruneArgs) -> Result<()> {
    let dir = super::work_dir(cli);
    let r = berth_build::prune(&dir, args.all, args.dry_run)?;
    let verb = if args.dry_run { "holds" } else { "removed" };
    println!(
        "{}: {verb} {} cached step(s) ({}), extracted layers ({}); cache mounts {} ({})",
        dir.display(),
        r.steps,
        mib(r.step_bytes),
        mib(r.layer_bytes),
        if args.all && !args.dry_run { "removed" } else { "kept" },
        mib(r.mount_bytes)
    );
    Ok(())
}
