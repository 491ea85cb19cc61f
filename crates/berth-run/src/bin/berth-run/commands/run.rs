//! `berth-run run`: a container from an image (or a bundle), in the foreground or detached.

use std::path::PathBuf;

use anyhow::bail;
use berth_run::create::{CreateRequest, create_container, create_from_bundle};
use berth_run::options::ContainerFlags;
use berth_run::supervise::{Attach, run_foreground, start_detached};
use berth_spec::reference::ImageRef;
use clap::Args;

use super::{Outcome, PullArgs, parse_platform};
use crate::Cli;

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) flags: ContainerFlags,
    /// Run in the background and print the container's id.
    #[arg(short = 'd', long = "detach")]
    pub(crate) detach: bool,
    /// Keep standard input connected to the container.
    #[arg(short = 'i', long = "interactive")]
    pub(crate) interactive: bool,
    /// Remove the container when it exits.
    #[arg(long = "rm")]
    pub(crate) rm: bool,
    /// The container's name (default: generated).
    #[arg(long = "name")]
    pub(crate) name: Option<String>,
    /// The platform to pick from a multi-platform image (default: this host's).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    #[command(flatten)]
    pub(crate) pull: PullArgs,
    /// Run this OCI runtime bundle (DIR/config.json and its root filesystem) as it is, instead of an image.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub(crate) bundle: Option<PathBuf>,
    /// A store name, docker://REFERENCE, oci:PATH[:REF], oci-archive:PATH[:REF] or docker-archive:PATH[:REF].
    #[arg(required_unless_present = "bundle")]
    pub(crate) image: Option<String>,
    /// The command and its arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

pub(crate) fn run(cli: &Cli, args: &RunArgs) -> Outcome {
    let state = cli.state()?;
    let record = match (&args.bundle, &args.image) {
        (Some(dir), _) => {
            if args.flags != ContainerFlags::default() || args.platform.is_some() {
                bail!(
                    "--bundle {}: the bundle runs as its config.json says; options that shape a container \
                     (-e, -v, -u, --memory, -t, …) cannot apply to it — edit config.json instead",
                    dir.display()
                );
            }
            create_from_bundle(&state, dir, args.name.as_deref(), args.rm)?
        }
        (None, Some(image)) => {
            let platform = parse_platform(args.platform.as_deref())?;
            let options = args.flags.to_spec_options(&args.command)?;
            let (store, cache) = (cli.store()?, cli.cache());
            let image = args.pull.resolve(&store, ImageRef::parse(image)?, &platform)?;
            let progress = args.pull.registry.progress();
            create_container(
                &state,
                &CreateRequest {
                    image: &image,
                    store: &store,
                    cache: &cache,
                    platform: &platform,
                    options: &options,
                    name: args.name.as_deref(),
                    auto_remove: args.rm,
                    progress: &berth_cli::progress::Unpacking(progress),
                },
            )?
        }
        (None, None) => bail!("give an image to run, or --bundle DIR"),
    };
    if args.detach {
        start_detached(&state, &record)?;
        println!("{}", record.id);
        return Ok(0);
    }
    let attach = Attach {
        interactive: args.interactive,
        tty: record.tty,
    };
    let code = run_foreground(&state, &record, attach)?;
    Ok(u8::try_from(code).unwrap_or(255))
}
