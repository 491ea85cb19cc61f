//! `berth-run`: the command line. Parses, dispatches, renders output and errors; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_run::options::ContainerFlags;
use berth_run::{BundleRequest, create_bundle};
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-run", version, about = "Run OCI images as containers")]
struct Cli {
    /// The default store for bare image names (default: $BERTH_STORE, $XDG_DATA_HOME/berth/store, …).
    #[arg(long, global = true, env = "BERTH_STORE")]
    store: Option<PathBuf>,
    /// Where extracted layers are cached (default: $BERTH_CACHE, $XDG_CACHE_HOME/berth, /var/cache/berth, …).
    #[arg(long, global = true, env = "BERTH_CACHE")]
    cache: Option<PathBuf>,
    /// More logging on stderr (once: info, twice: debug); RUST_LOG also works. (`-v` is `--volume`.)
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write an OCI runtime bundle (DIR/config.json and DIR/rootfs) for runc or crun.
    Bundle(BundleArgs),
}

#[derive(Args)]
struct BundleArgs {
    #[command(flatten)]
    flags: ContainerFlags,
    /// The platform to pick from a multi-platform image (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    /// A store name, oci:PATH[:REF], oci-archive:PATH[:REF] or docker-archive:PATH[:REF].
    image: String,
    /// The bundle directory to create (must not exist, or be empty).
    dir: PathBuf,
    /// The command and its arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn bundle(cli: &Cli, args: &BundleArgs) -> Result<()> {
    let image = ImageRef::parse(&args.image)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).with_context(|| format!("--platform {p}"))?,
        None => Platform::host(),
    };
    let options = args.flags.to_spec_options(&args.command)?;
    let store = cli.store.clone().unwrap_or_else(berth_spec::store::default_store_path);
    let cache = cli.cache.clone().unwrap_or_else(berth_run::layers::default_cache_path);
    let report = create_bundle(
        &BundleRequest {
            image: &image,
            store: &store,
            cache: &cache,
            platform: &platform,
            options: &options,
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
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let result = match &cli.command {
        Command::Bundle(args) => bundle(&cli, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-run: {}", render(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: many messages already quote their cause, and `{:#}` would repeat it.
fn render(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    let mut previous = out.clone();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["berth-run", "bundle", "-v", "/a:/b", "img", "dir", "sh", "-c", "exit 7"]).unwrap();
        let Command::Bundle(args) = cli.command;
        assert_eq!(args.flags.volume, ["/a:/b"]);
        assert_eq!((args.image.as_str(), args.command.len()), ("img", 3));
    }
}
