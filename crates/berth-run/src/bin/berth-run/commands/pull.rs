//! `berth-run pull`: fetch an image from a registry into the store (podman's verb), without running it.

use anyhow::{Context, bail};
use berth_run::pull::PullPolicy;
use berth_spec::reference::{DockerReference, ImageRef};
use clap::Args;

use super::{Outcome, RegistryArgs, parse_platform};
use crate::Cli;

#[derive(Args)]
pub(crate) struct PullCmdArgs {
    /// The image: docker://REFERENCE, or a registry reference without the prefix (localhost:5000/app:1).
    pub(crate) image: String,
    /// The platform to pick from a multi-platform image (default: this host's).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

pub(crate) fn pull(cli: &Cli, args: &PullCmdArgs) -> Outcome {
    let reference = match ImageRef::parse(&args.image) {
        Ok(ImageRef::Docker(r)) => r,
        Ok(ImageRef::Store(_)) | Err(_) => DockerReference::parse_normalized(&args.image)
            .with_context(|| format!("{}: not an image reference", args.image))?,
        Ok(other) => bail!("{other}: pull fetches from a registry; give docker://REFERENCE or HOST/NAME:TAG"),
    };
    let platform = parse_platform(args.platform.as_deref())?;
    let store = cli.store()?;
    let name = berth_run::pull::pull(
        &args
            .registry
            .request(&reference, &store, &platform, PullPolicy::Always)?,
    )?;
    // As podman: the image's name on stdout, progress on stderr.
    println!("{name}");
    Ok(0)
}
