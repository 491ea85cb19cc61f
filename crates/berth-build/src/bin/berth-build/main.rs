//! `berth-build`: the command line. Parses, dispatches, renders output and errors; each verb is a module of
//! `commands`, and the work is in the library.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-build",
    version,
    about = "Build OCI images from a Containerfile into an OCI image layout"
)]
pub(crate) struct Cli {
    /// The default store, where bases are found and images are written (default: $BERTH_STORE; for root
    /// /var/lib/berth/store; else $XDG_DATA_HOME/berth/store, …).
    #[arg(long, global = true, env = "BERTH_STORE")]
    pub(crate) store: Option<PathBuf>,
    /// The builder's working directory: layer cache and build steps (default: $BERTH_CACHE/build; for root
    /// /var/cache/berth/build, …).
    #[arg(long, global = true, env = "BERTH_BUILD_CACHE")]
    pub(crate) cache: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Build an image from a Containerfile (or Dockerfile) and a context directory.
    #[command(visible_alias = "bud")]
    #[command(
        after_help = "Examples:\n  berth-build build -t app:1 .\n  berth-build build -f Containerfile.prod --build-arg VERSION=2 -t app:2 .\n  berth-build build --timestamp 0 -t oci:./out:app:1 .   (reproducible: same digest in any clone)\n  berth-build build --target test --secret id=token,src=$HOME/.token .\n  berth-build build -t docker://localhost:5000/app:1 --tls-verify=false ."
    )]
    Build(Box<commands::build::BuildArgs>),
    /// Empty the builder's caches (step cache and extracted layers; --all: RUN cache mounts too).
    #[command(after_help = "Examples:\n  berth-build prune --dry-run\n  berth-build prune --all")]
    Prune(commands::prune::PruneArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = berth_cli::docs::completions_examples("berth-build"))]
    Completions(berth_cli::docs::CompletionsArgs),
    /// Write man pages or the Markdown reference (for packagers and the docs).
    #[command(hide = true)]
    GenerateDocs(berth_cli::docs::GenerateDocsArgs),
}

fn main() -> ExitCode {
    berth_cli::memory::reuse_large_buffers();
    let cli = Cli::parse();
    // RUN steps run untrusted code in containers cloned from this process: run from a sealed copy of the binary
    // (CVE-2019-5736), as berth-run does.
    if matches!(cli.command, Command::Build(_))
        && let Err(e) = berth_sandbox::sealed_exe::ensure_sealed("berth-build")
    {
        eprintln!("berth-build: cannot re-execute from a sealed copy of itself: {e}");
        return ExitCode::from(125);
    }
    let quiet = matches!(&cli.command, Command::Build(a) if a.quiet);
    berth_cli::logging::init(berth_cli::logging::Level {
        verbose: cli.verbose,
        quiet,
        quiet_targets: "libcontainer=off,libcgroups=off",
    });
    let result = match &cli.command {
        Command::Build(args) => commands::build::build(&cli, args),
        Command::Prune(args) => commands::prune::prune(&cli, args),
        Command::Completions(a) => berth_cli::docs::completions(Cli::command(), a),
        Command::GenerateDocs(a) => berth_cli::docs::generate(Cli::command(), a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-build: {}", berth_cli::errors::render(&e));
            ExitCode::from(125)
        }
    }
}
