//! `berth-run`: the command line. Parses, dispatches, renders output and errors; each verb is a module of
//! `commands`, and the work is in the library.

mod commands;
mod report;
mod rootless;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-run", version, about = "Run OCI images as containers")]
pub(crate) struct Cli {
    /// The default store for bare image names (default: $BERTH_STORE; for root /var/lib/berth/store; else
    /// $XDG_DATA_HOME/berth/store, …).
    #[arg(long, global = true, env = "BERTH_STORE")]
    pub(crate) store: Option<PathBuf>,
    /// Where extracted layers are cached (default: $BERTH_CACHE; for root /var/cache/berth; else
    /// $XDG_CACHE_HOME/berth, …).
    #[arg(long, global = true, env = "BERTH_CACHE")]
    pub(crate) cache: Option<PathBuf>,
    /// Where containers live (default: $BERTH_STATE; for root /var/lib/berth/state; else
    /// $XDG_DATA_HOME/berth/state, …).
    #[arg(long, global = true, env = "BERTH_STATE")]
    pub(crate) state: Option<PathBuf>,
    /// More logging on stderr (once: info, twice: debug); RUST_LOG also works. (`-v` is `--volume`.)
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run a command in a new container.
    #[command(
        after_help = "Examples:\n  berth-run run --rm app:1\n  berth-run run --rm -it docker://localhost:5000/app:1 sh\n  berth-run run -d --name web -v /srv/www:/www:ro app:1\n  berth-run run --rm --net none --read-only -m 256m app:1 ./batch-job\n  berth-run run --rm --bundle ./bundle   (a bundle from `berth-run bundle` or any OCI bundle)"
    )]
    Run(commands::run::RunArgs),
    /// Pull an image from a registry into the store.
    #[command(
        after_help = "Examples:\n  berth-run pull docker://localhost:5000/app:1\n  berth-run pull --tls-verify=false localhost:5000/app:1"
    )]
    Pull(commands::pull::PullCmdArgs),
    /// List containers.
    #[command(after_help = "Examples:\n  berth-run ps\n  berth-run ps -a --format json")]
    Ps(commands::ps::PsArgs),
    /// Show the output of a detached container.
    #[command(after_help = "Examples:\n  berth-run logs web\n  berth-run logs -f --tail 20 web")]
    Logs(commands::logs::LogsArgs),
    /// Send a signal to running containers.
    #[command(after_help = "Examples:\n  berth-run kill web\n  berth-run kill -s HUP web")]
    Kill(commands::kill::KillArgs),
    /// Stop running containers (their stop signal, then SIGKILL).
    #[command(after_help = "Examples:\n  berth-run stop web\n  berth-run stop -t 2 web db")]
    Stop(commands::stop::StopArgs),
    /// Remove containers.
    #[command(after_help = "Examples:\n  berth-run rm web\n  berth-run rm -f web")]
    Rm(commands::rm::RmArgs),
    /// Run a command in a running container.
    #[command(after_help = "Examples:\n  berth-run exec web cat /etc/os-release\n  berth-run exec -it web sh")]
    Exec(commands::exec::ExecArgs),
    /// Wait for containers to exit and print their exit codes.
    #[command(after_help = "Examples:\n  berth-run wait web")]
    Wait(commands::ContainersArgs),
    /// Show a container's state and configuration as JSON.
    #[command(after_help = "Examples:\n  berth-run inspect web")]
    Inspect(commands::ContainersArgs),
    /// Remove cached layers no container and no image in the store uses.
    #[command(after_help = "Examples:\n  berth-run gc")]
    Gc(commands::gc::GcArgs),
    /// Write an OCI runtime bundle (DIR/config.json and DIR/rootfs) for runc or crun.
    #[command(
        after_help = "Examples:\n  berth-run bundle app:1 ./bundle && runc run --bundle ./bundle app\n  berth-run bundle --user 1000 docker://localhost:5000/app:1 ./bundle sh -c 'id'"
    )]
    Bundle(commands::bundle::BundleArgs),
    #[command(name = "__monitor", hide = true)]
    Monitor { id: String },
    /// Deletes removed containers' directories from the state's trash (started in the background by `rm`).
    #[command(name = "__sweep", hide = true)]
    Sweep,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = berth_cli::docs::completions_examples("berth-run"))]
    Completions(berth_cli::docs::CompletionsArgs),
    /// Write man pages or the Markdown reference (for packagers and the docs).
    #[command(hide = true)]
    GenerateDocs(berth_cli::docs::GenerateDocsArgs),
}

fn main() -> ExitCode {
    report::default_sigpipe();
    // Usage errors exit 125, as podman's (and as berth-run's other own failures); help and version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage { 125 } else { 0 });
        }
    };
    // First, so that it overlaps everything else (the re-execution below included); once, not again in the
    // sealed copy.
    if matches!(cli.command, Command::Run(_)) && !berth_sandbox::sealed_exe::is_sealed() {
        berth_sandbox::runtime::warm_cgroup_attach();
    }
    // Whatever starts or enters a container runs from a sealed copy of this binary (CVE-2019-5736).
    if matches!(
        cli.command,
        Command::Run(_)
            | Command::Exec(_)
            | Command::Kill(_)
            | Command::Stop(_)
            | Command::Rm(_)
            | Command::Monitor { .. }
    ) && let Err(e) = berth_sandbox::sealed_exe::ensure_sealed("berth-run")
    {
        eprintln!(
            "berth-run: cannot re-execute from a sealed copy of itself (needed to keep containers from reaching it): {e}"
        );
        return ExitCode::from(125);
    }
    // What only prints about the tool needs no privileges, containers or state.
    let docs = match &cli.command {
        Command::Completions(a) => Some(berth_cli::docs::completions(Cli::command(), a)),
        Command::GenerateDocs(a) => Some(berth_cli::docs::generate(Cli::command(), a)),
        _ => None,
    };
    if let Some(done) = docs {
        return report::finish(done.map(|()| 0), true);
    }
    report::init_logging(cli.verbose);
    match rootless::rootless_entry(&cli) {
        Ok(None) => {}
        Ok(Some(code)) => return ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("berth-run: {}", berth_cli::errors::render(&e));
            return ExitCode::from(125);
        }
    }
    let result = match &cli.command {
        Command::Run(args) => commands::run::run(&cli, args),
        Command::Pull(args) => commands::pull::pull(&cli, args),
        Command::Ps(args) => commands::ps::ps(&cli, args),
        Command::Logs(args) => commands::logs::logs(&cli, args),
        Command::Kill(args) => commands::kill::kill(&cli, args),
        Command::Stop(args) => commands::stop::stop(&cli, args),
        Command::Rm(args) => commands::rm::rm(&cli, args),
        Command::Exec(args) => commands::exec::exec(&cli, args),
        Command::Wait(args) => commands::wait::wait(&cli, args),
        Command::Inspect(args) => commands::inspect::inspect(&cli, args),
        Command::Gc(args) => commands::gc::gc(&cli, args),
        Command::Bundle(args) => commands::bundle::bundle(&cli, args),
        Command::Monitor { id } => commands::monitor::monitor(&cli, id),
        Command::Sweep => cli.state().map(|state| {
            state.sweep_trash();
            0
        }),
        Command::Completions(_) | Command::GenerateDocs(_) => unreachable!("handled above"),
    };
    report::finish(
        result,
        matches!(cli.command, Command::Run(_) | Command::Exec(_) | Command::Pull(_)),
    )
}

#[cfg(test)]
mod cli_tests;
