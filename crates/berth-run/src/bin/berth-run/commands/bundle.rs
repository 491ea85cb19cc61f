//! `berth-run bundle`: an OCI runtime bundle that runc and crun run.

use std::path::PathBuf;

use berth_run::options::ContainerFlags;
use berth_run::{BundleRequest, create_bundle};
use berth_spec::reference::ImageRef;
use clap::Args;

use super::{Outcome, PullArgs, parse_platform};
use crate::Cli;

#[derive(Args)]
pub(crate) struct BundleArgs {
    #[command(flatten)]
    pub(crate) flags: ContainerFlags,
    #[command(flatten)]
    pub(crate) pull: PullArgs,
    /// The platform to pick from a multi-platform image (default: this host's).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// A store name, docker://REFERENCE, oci:PATH[:REF], oci-archive:PATH[:REF] or docker-archive:PATH[:REF].
    pub(crate) image: String,
    /// The bundle directory to create (must not exist, or be empty).
    pub(crate) dir: PathBuf,
    /// The command and its arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

pub(crate) fn bundle(cli: &Cli, args: &BundleArgs) -> Outcome {
    let platform = parse_platform(args.platform.as_deref())?;
    let options = args.flags.to_spec_options(&args.command)?;
    let (store, cache) = (cli.store()?, cli.cache());
    let image = args.pull.resolve(&store, ImageRef::parse(&args.image)?, &platform)?;
    let progress = args.pull.registry.progress();
    progress.message(&format!("Writing bundle {}", args.dir.display()));
    let report = create_bundle(
        &BundleRequest {
            image: &image,
            store: &store,
            cache: &cache,
            platform: &platform,
            options: &options,
            progress: &berth_cli::progress::Unpacking(progress),
        },
        &args.dir,
    )?;
    eprintln!(
        "Wrote bundle {} ({} layers, image {}); run it with: runc run --bundle {} NAME",
        report.dir.display(),
        report.layers,
        report.manifest_digest,
        report.dir.display()
    );
    Ok(0)
}
