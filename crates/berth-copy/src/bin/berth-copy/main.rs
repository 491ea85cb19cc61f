//! `berth-copy`: the command line. Parses, dispatches, renders output and errors; each verb is a module of
//! `commands`, and the work is in the library.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-copy",
    version,
    about = "Copy, inspect, list, delete and sync container images"
)]
pub(crate) struct Cli {
    /// The default store for bare image names (default: $BERTH_STORE; for root /var/lib/berth/store; else
    /// $XDG_DATA_HOME/berth/store, …).
    #[arg(long, global = true, env = "BERTH_STORE")]
    pub(crate) store: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Copy an image (or index) from SRC to DEST.
    #[command(
        after_help = "Examples:\n  berth-copy copy oci:./layout:app:1 docker://localhost:5000/app:1\n  berth-copy copy --all docker://localhost:5000/app:1 oci-archive:app.tar\n  berth-copy copy --dest-compress-format zstd app:1 docker://localhost:5000/app:1-zstd\n  berth-copy copy --tls-verify=false docker://localhost:5000/app:1 app:1"
    )]
    Copy(commands::copy::CopyArgs),
    /// Show an image's manifest summary, raw manifest or config.
    #[command(
        after_help = "Examples:\n  berth-copy inspect docker://localhost:5000/app:1\n  berth-copy inspect --raw oci:./layout:app:1\n  berth-copy inspect --config app:1"
    )]
    Inspect(commands::inspect::InspectArgs),
    /// List the tags of a repository (or the names in a layout).
    #[command(
        after_help = "Examples:\n  berth-copy list-tags docker://localhost:5000/app\n  berth-copy list-tags oci:./layout"
    )]
    ListTags(commands::list_tags::ListTagsArgs),
    /// Delete an image from a registry or a layout.
    #[command(
        after_help = "Examples:\n  berth-copy delete docker://localhost:5000/app:old\n  berth-copy delete oci:./layout:app:1"
    )]
    Delete(commands::delete::DeleteArgs),
    /// Copy all tags of a repository, all images of a layout, or a YAML list.
    #[command(
        after_help = "Examples:\n  berth-copy sync docker://localhost:5000/app oci:./mirror\n  berth-copy sync --src-type yaml images.yaml docker://localhost:5001/mirror"
    )]
    Sync(commands::sync::SyncArgs),
    /// Re-hash every blob of a layout and report missing, corrupt and dangling content.
    #[command(after_help = "Examples:\n  berth-copy fsck\n  berth-copy fsck --format json oci:./layout")]
    Fsck(commands::LayoutArgs),
    /// Delete blobs of a layout no image refers to.
    #[command(after_help = "Examples:\n  berth-copy gc\n  berth-copy gc oci:./layout")]
    Gc(commands::LayoutArgs),
    /// List the images a layout holds (by default the store): names, digests, creation times and sizes.
    #[command(after_help = "Examples:\n  berth-copy images\n  berth-copy images --format json oci:./layout")]
    Images(commands::images::ImagesArgs),
    /// Log in to a registry: check the credentials and store them in the auth file every tool reads.
    #[command(
        after_help = "Examples:\n  echo \"$PASSWORD\" | berth-copy login -u me --password-stdin registry.example.com\n  berth-copy login --authfile ./auth.json -u ci --password-stdin localhost:5000 < token.txt"
    )]
    Login(commands::login::LoginArgs),
    /// Remove stored credentials of a registry (or all of them).
    #[command(after_help = "Examples:\n  berth-copy logout registry.example.com\n  berth-copy logout --all")]
    Logout(commands::login::LogoutArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = berth_cli::docs::completions_examples("berth-copy"))]
    Completions(berth_cli::docs::CompletionsArgs),
    /// Write man pages or the Markdown reference (for packagers and the docs).
    #[command(hide = true)]
    GenerateDocs(berth_cli::docs::GenerateDocsArgs),
}

async fn run(cli: Cli) -> Result<()> {
    let store = &cli.store;
    match cli.command {
        Command::Copy(a) => commands::copy::copy(store, a).await,
        Command::Inspect(a) => commands::inspect::inspect(store, a).await,
        Command::ListTags(a) => commands::list_tags::list_tags(store, a).await,
        Command::Delete(a) => commands::delete::delete(store, a).await,
        Command::Sync(a) => commands::sync::sync(store, a).await,
        Command::Fsck(a) => commands::fsck::fsck(store, a),
        Command::Gc(a) => commands::gc::gc(store, a),
        Command::Images(a) => commands::images::images(store, a),
        Command::Login(a) => commands::login::login(a).await,
        Command::Logout(a) => commands::login::logout(a),
        Command::Completions(a) => berth_cli::docs::completions(Cli::command(), &a),
        Command::GenerateDocs(a) => berth_cli::docs::generate(Cli::command(), &a),
    }
}

fn main() -> ExitCode {
    berth_cli::memory::reuse_large_buffers();
    let cli = Cli::parse();
    // --quiet silences the warnings about retries too; errors still show.
    let quiet =
        matches!(&cli.command, Command::Copy(a) if a.quiet) || matches!(&cli.command, Command::Sync(a) if a.quiet);
    berth_cli::logging::init(berth_cli::logging::Level {
        verbose: cli.verbose,
        quiet,
        quiet_targets: "",
    });
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-copy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-copy: {}", berth_cli::errors::render(&e));
            if let Some(hint) = advice(&e) {
                eprintln!("berth-copy: hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What to do about a registry failure, with this tool's flags.
fn advice(e: &anyhow::Error) -> Option<&'static str> {
    let r = berth_cli::errors::registry_error(e)?;
    if r.is_manifest_refusal() {
        Some("if the registry does not take OCI manifests, copy with --format v2s2")
    } else if r.status() == Some(429) {
        Some("wait, or raise --retry-times")
    } else {
        None
    }
}
