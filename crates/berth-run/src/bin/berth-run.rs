//! `berth-run`: the command line. Parses, dispatches, renders output and errors; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_registry::{ClientOptions, Credentials};
use berth_run::create::{CreateRequest, create_container, create_from_bundle};
use berth_run::lifecycle::{self, ExecRequest};
use berth_run::options::ContainerFlags;
use berth_run::rootless::Enter;
use berth_run::signals::parse_signal;
use berth_run::state::{ContainerRecord, StateDir, Status};
use berth_run::supervise::{Attach, exec_foreground, run_foreground, start_detached};
use berth_run::{BundleRequest, RunError, create_bundle};
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-run", version, about = "Run OCI images as containers")]
struct Cli {
    /// The default store for bare image names (default: $BERTH_STORE; for root /var/lib/berth/store; else
    /// $XDG_DATA_HOME/berth/store, …).
    #[arg(long, global = true, env = "BERTH_STORE")]
    store: Option<PathBuf>,
    /// Where extracted layers are cached (default: $BERTH_CACHE; for root /var/cache/berth; else
    /// $XDG_CACHE_HOME/berth, …).
    #[arg(long, global = true, env = "BERTH_CACHE")]
    cache: Option<PathBuf>,
    /// Where containers live (default: $BERTH_STATE; for root /var/lib/berth/state; else
    /// $XDG_DATA_HOME/berth/state, …).
    #[arg(long, global = true, env = "BERTH_STATE")]
    state: Option<PathBuf>,
    /// More logging on stderr (once: info, twice: debug); RUST_LOG also works. (`-v` is `--volume`.)
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a new container.
    Run(RunArgs),
    /// List containers.
    Ps(PsArgs),
    /// Show the output of a detached container.
    Logs(LogsArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Stop running containers (their stop signal, then SIGKILL).
    Stop(StopArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(ContainersArgs),
    /// Show a container's state and configuration as JSON.
    Inspect(ContainersArgs),
    /// Remove cached layers no container and no image in the store uses.
    Gc(GcArgs),
    /// Write an OCI runtime bundle (DIR/config.json and DIR/rootfs) for runc or crun.
    Bundle(BundleArgs),
    #[command(name = "__monitor", hide = true)]
    Monitor { id: String },
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    flags: ContainerFlags,
    /// Run in the background and print the container's id.
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    /// Keep standard input connected to the container.
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Remove the container when it exits.
    #[arg(long = "rm")]
    rm: bool,
    /// The container's name (default: generated).
    #[arg(long = "name")]
    name: Option<String>,
    /// The platform to pick from a multi-platform image (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    pull: PullArgs,
    /// Run this OCI runtime bundle (DIR/config.json and its root filesystem) as it is, instead of an image.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    bundle: Option<PathBuf>,
    /// A store name, docker://REFERENCE, oci:PATH[:REF], oci-archive:PATH[:REF] or docker-archive:PATH[:REF].
    #[arg(required_unless_present = "bundle")]
    image: Option<String>,
    /// The command and its arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// How `docker://` images are pulled into the store.
#[derive(Args, Clone)]
struct PullArgs {
    /// Pull a docker:// image: missing (when not in the store), always, or never.
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pull: String,
    /// Require HTTPS with verified certificates (default: plain HTTP only for localhost and 127.0.0.0/8).
    #[arg(long, value_name = "BOOL")]
    tls_verify: Option<bool>,
    /// Registry credentials, USER[:PASSWORD].
    #[arg(long, value_name = "USER[:PASSWORD]")]
    creds: Option<String>,
    /// A containers-auth.json or docker config.json with registry credentials.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    authfile: Option<PathBuf>,
}

impl PullArgs {
    /// The image to open: a `docker://` image is pulled into the store first and then named from there.
    fn resolve(&self, store: &std::path::Path, image: ImageRef, platform: &Platform) -> Result<ImageRef> {
        let ImageRef::Docker(reference) = image else {
            return Ok(image);
        };
        let options = ClientOptions {
            tls_verify: self.tls_verify,
            credentials: self.creds.as_deref().map(Credentials::parse).transpose()?,
            authfile: self.authfile.clone(),
            ..ClientOptions::default()
        };
        let name = berth_run::pull::pull(&reference, store, platform, self.pull.parse()?, &options)?;
        Ok(ImageRef::Store(name))
    }
}

#[derive(Args)]
struct PsArgs {
    /// Show every container, not only running ones.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Print only ids.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Full ids and commands.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// table or json.
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(Args)]
struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short = 'f', long = "follow")]
    follow: bool,
    /// Prefix each line with its time.
    #[arg(short = 't', long = "timestamps")]
    timestamps: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long = "tail")]
    tail: Option<usize>,
    container: String,
}

#[derive(Args)]
struct KillArgs {
    /// The signal: a name (TERM, SIGHUP) or number.
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
struct StopArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
struct RmArgs {
    /// Kill and remove running containers too.
    #[arg(short = 'f', long = "force")]
    force: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
struct ExecArgs {
    /// Keep standard input connected.
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Give the process a terminal.
    #[arg(short = 't', long = "tty")]
    tty: bool,
    /// Set an environment variable: KEY=VALUE, or KEY to take the value from this environment.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Run as USER or USER:GROUP.
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Every capability.
    #[arg(long)]
    privileged: bool,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct ContainersArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args)]
struct GcArgs {
    /// Also remove layers of images still in the store (keep only those containers use).
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct BundleArgs {
    #[command(flatten)]
    flags: ContainerFlags,
    #[command(flatten)]
    pull: PullArgs,
    /// The platform to pick from a multi-platform image (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    /// A store name, docker://REFERENCE, oci:PATH[:REF], oci-archive:PATH[:REF] or docker-archive:PATH[:REF].
    image: String,
    /// The bundle directory to create (must not exist, or be empty).
    dir: PathBuf,
    /// The command and its arguments (replace the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl Cli {
    fn store(&self) -> Result<PathBuf> {
        match &self.store {
            Some(path) => Ok(path.clone()),
            None => Ok(berth_spec::store::trusted_default_store_path()?),
        }
    }

    fn cache(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(berth_run::layers::default_cache_path)
    }

    fn state(&self) -> Result<StateDir> {
        let root = self.state.clone().unwrap_or_else(berth_run::state::default_state_path);
        Ok(StateDir::open(&root)?)
    }
}

fn parse_platform(text: Option<&str>) -> Result<Platform> {
    Ok(match text {
        Some(p) => Platform::parse(p).with_context(|| format!("--platform {p}"))?,
        None => Platform::host(),
    })
}

/// What `main` exits with: a container's exit code, or Berth's own failure.
type Outcome = Result<u8>;

fn run(cli: &Cli, args: &RunArgs) -> Outcome {
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

fn ps(cli: &Cli, args: &PsArgs) -> Outcome {
    let state = cli.state()?;
    let records: Vec<_> = state
        .list()?
        .into_iter()
        .filter(|r| args.all || r.live_status() == Status::Running)
        .collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in &records {
            writeln!(out, "{}", if args.no_trunc { &r.id } else { r.short_id() })?;
        }
        return Ok(0);
    }
    match args.format.as_str() {
        "json" => {
            let list: Vec<serde_json::Value> = records.iter().map(ps_json).collect();
            serde_json::to_writer_pretty(&mut out, &list)?;
            writeln!(out)?;
        }
        "table" => {
            let now = berth_run::state::now();
            let rows: Vec<[String; 6]> = records
                .iter()
                .map(|r| {
                    let command = r.command.join(" ");
                    [
                        if args.no_trunc {
                            r.id.clone()
                        } else {
                            r.short_id().to_owned()
                        },
                        r.image.clone(),
                        if args.no_trunc { command } else { truncate(&command, 24) },
                        format!("{} ago", ago(now.saturating_sub(r.created))),
                        status_text(r, now),
                        r.name.clone(),
                    ]
                })
                .collect();
            let header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let mut s = String::new();
                for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                    if i + 1 == cells.len() {
                        s.push_str(cell);
                    } else {
                        s.push_str(&format!("{cell:<w$}  "));
                    }
                }
                s
            };
            writeln!(out, "{}", line(header.to_vec()))?;
            for row in &rows {
                writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
            }
        }
        other => bail!("--format {other}: use table or json"),
    }
    Ok(0)
}

fn ps_json(r: &ContainerRecord) -> serde_json::Value {
    let status = r.live_status();
    serde_json::json!({
        "Id": r.id,
        "Names": [r.name],
        "Image": r.image,
        "ImageDigest": r.image_digest,
        "Command": r.command,
        "Created": r.created,
        "StartedAt": r.started,
        "ExitedAt": r.finished,
        "State": format!("{status:?}").to_lowercase(),
        "Exited": status == Status::Exited,
        // As podman: 0 until the container has exited; null only when its exit code is unknown.
        "ExitCode": if status == Status::Exited { r.exit_code } else { Some(0) },
        "Pid": if status == Status::Running { r.pid } else { None },
        "AutoRemove": r.auto_remove,
    })
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

fn ago(secs: u64) -> String {
    match secs {
        0..=1 => "1 second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "1 minute".into(),
        120..=3599 => format!("{} minutes", secs / 60),
        3600..=7199 => "1 hour".into(),
        7200..=172_799 => format!("{} hours", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

fn status_text(r: &ContainerRecord, now: u64) -> String {
    match r.live_status() {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(now.saturating_sub(r.started.unwrap_or(r.created)))),
        Status::Exited => match (r.exit_code, r.finished) {
            (Some(code), Some(t)) => format!("Exited ({code}) {} ago", ago(now.saturating_sub(t))),
            _ => "Exited (unknown)".into(),
        },
    }
}

fn logs(cli: &Cli, args: &LogsArgs) -> Outcome {
    let state = cli.state()?;
    let record = state.find(&args.container)?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    lifecycle::logs(
        &state,
        &record,
        args.follow,
        args.timestamps,
        args.tail,
        &mut out,
        &mut err,
    )?;
    Ok(0)
}

/// Applies `action` to each named container, printing each name that succeeded (as Docker does); the first
/// failure is reported after the others were tried.
fn each(cli: &Cli, names: &[String], action: impl Fn(&StateDir, &ContainerRecord) -> Result<(), RunError>) -> Outcome {
    let state = cli.state()?;
    let mut failures = Vec::new();
    for name in names {
        match state.find(name).and_then(|r| action(&state, &r)) {
            Ok(()) => println!("{name}"),
            Err(e) => failures.push(e),
        }
    }
    let count = failures.len();
    match failures.into_iter().next() {
        None => Ok(0),
        Some(first) if count == 1 => Err(first.into()),
        Some(first) => Err(anyhow::Error::from(first).context(format!("{count} containers failed; the first"))),
    }
}

fn kill(cli: &Cli, args: &KillArgs) -> Outcome {
    let signal = parse_signal(&args.signal).with_context(|| {
        format!(
            "--signal {}: not a signal name or number (use TERM, SIGHUP, 9, …)",
            args.signal
        )
    })?;
    each(cli, &args.containers, |s, r| lifecycle::kill(s, r, signal))
}

fn stop(cli: &Cli, args: &StopArgs) -> Outcome {
    let timeout = Duration::from_secs(args.time);
    each(cli, &args.containers, |s, r| lifecycle::stop(s, r, timeout))
}

fn rm(cli: &Cli, args: &RmArgs) -> Outcome {
    each(cli, &args.containers, |s, r| lifecycle::remove(s, r, args.force))
}

fn exec(cli: &Cli, args: &ExecArgs) -> Outcome {
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

fn wait(cli: &Cli, args: &ContainersArgs) -> Outcome {
    let state = cli.state()?;
    for name in &args.containers {
        let record = state.find(name)?;
        match lifecycle::wait(&state, &record)? {
            Some(code) => println!("{code}"),
            None => println!("-1"),
        }
    }
    Ok(0)
}

fn inspect(cli: &Cli, args: &ContainersArgs) -> Outcome {
    let state = cli.state()?;
    let mut all = Vec::new();
    for name in &args.containers {
        all.push(lifecycle::inspect(&state, &state.find(name)?)?);
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &all)?;
    writeln!(out)?;
    Ok(0)
}

fn gc(cli: &Cli, args: &GcArgs) -> Outcome {
    let state = cli.state()?;
    let report = lifecycle::collect_garbage(&state, &cli.cache(), &cli.store()?, args.all)?;
    for d in &report.removed {
        println!("{d}");
    }
    eprintln!("Removed {} cached layers, kept {}", report.removed.len(), report.kept);
    Ok(0)
}

fn bundle(cli: &Cli, args: &BundleArgs) -> Outcome {
    let platform = parse_platform(args.platform.as_deref())?;
    let options = args.flags.to_spec_options(&args.command)?;
    let (store, cache) = (cli.store()?, cli.cache());
    let image = args.pull.resolve(&store, ImageRef::parse(&args.image)?, &platform)?;
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
    Ok(0)
}

/// Restores SIGPIPE's default action. Rust programs start with SIGPIPE ignored, and an ignored signal stays
/// ignored across `exec`: containers would inherit it (`yes | head` would then never end by SIGPIPE).
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL needs no handler to stay valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    // Usage errors exit 125, as podman's (and as berth-run's other own failures); help and version exit 0.
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage { 125 } else { 0 });
        }
    };
    only_one_container(&mut cli);
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
    // libcontainer logs what it cannot do on this host (absent cgroup controllers, syscalls unknown to the kernel)
    // as warnings, and its failures again as errors that Berth reports itself: shown only with --verbose.
    let level = match cli.verbose {
        0 => "warn,libcontainer=off,libcgroups=off",
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
    match rootless_entry(&cli) {
        Ok(None) => {}
        Ok(Some(code)) => return ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("berth-run: {}", render(&e));
            return ExitCode::from(125);
        }
    }
    let result = match &cli.command {
        Command::Run(args) => run(&cli, args),
        Command::Ps(args) => ps(&cli, args),
        Command::Logs(args) => logs(&cli, args),
        Command::Kill(args) => kill(&cli, args),
        Command::Stop(args) => stop(&cli, args),
        Command::Rm(args) => rm(&cli, args),
        Command::Exec(args) => exec(&cli, args),
        Command::Wait(args) => wait(&cli, args),
        Command::Inspect(args) => inspect(&cli, args),
        Command::Gc(args) => gc(&cli, args),
        Command::Bundle(args) => bundle(&cli, args),
        Command::Monitor { id } => cli
            .state()
            .and_then(|s| Ok(berth_run::supervise::monitor_main(s.root(), id)?))
            .map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("berth-run: {}", render(&e));
            // As podman: 125 for Berth's own failures, 127 when the command is not there, 126 when it is there
            // but cannot be run.
            let command_error = e.chain().find_map(|c| {
                let sandbox = match c.downcast_ref::<RunError>() {
                    Some(RunError::Sandbox(s)) => Some(s),
                    _ => c.downcast_ref::<berth_sandbox::SandboxError>(),
                };
                match sandbox {
                    Some(berth_sandbox::SandboxError::Command { not_found, .. }) => Some(*not_found),
                    _ => None,
                }
            });
            let run_like = matches!(cli.command, Command::Run(_) | Command::Exec(_));
            ExitCode::from(match (run_like, command_error) {
                (true, Some(true)) => 127,
                (true, Some(false)) => 126,
                (true, None) => 125,
                _ => 1,
            })
        }
    }
}

/// For a non-root user, runs this command again inside a user namespace (see `berth_run::rootless`) and returns
/// its exit code; `None` when this process goes on itself.
fn rootless_entry(cli: &Cli) -> Result<Option<i32>> {
    if berth_run::rootless::enter_from_env()? || rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    // Commands on a running container enter its namespaces, through its monitor: only there does this user have
    // the capabilities over it (to signal a process running as another id, to enter its mounts).
    let join = |name: &str| -> Result<Enter> {
        let record = cli.state()?.find(name)?;
        Ok(match record.monitor_pid.filter(|_| record.monitor_alive()) {
            Some(pid) if record.live_status() == Status::Running => Enter::Join(pid),
            _ => Enter::New,
        })
    };
    let state = cli.state.clone().unwrap_or_else(berth_run::state::default_state_path);
    // Absolute: entering a mount namespace moves the working directory to its root.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let env = vec![
        ("BERTH_STORE", absolute(cli.store()?)),
        ("BERTH_CACHE", absolute(cli.cache())),
        ("BERTH_STATE", absolute(state)),
    ];
    let how = match &cli.command {
        Command::Ps(_) | Command::Logs(_) | Command::Wait(_) | Command::Inspect(_) | Command::Monitor { .. } => {
            return Ok(None);
        }
        Command::Exec(args) => join(&args.container)?,
        Command::Kill(KillArgs { containers, .. })
        | Command::Stop(StopArgs { containers, .. })
        | Command::Rm(RmArgs { containers, .. }) => {
            // Each container has namespaces of its own: one re-executed process per container, each told to act
            // on that one only. The exit code is the last failure's, as when one process acts on all.
            let mut code = 0;
            for name in containers {
                let mut env = env.clone();
                env.push((ONLY_CONTAINER_VAR, PathBuf::from(name)));
                let c = berth_run::rootless::reexec(join(name).unwrap_or(Enter::New), &env)?;
                if c != 0 {
                    code = c;
                }
            }
            return Ok(Some(code));
        }
        _ => Enter::New,
    };
    Ok(Some(berth_run::rootless::reexec(how, &env)?))
}

/// Set for a rootless `kill`/`stop`/`rm` re-executed for one of the containers it was given.
const ONLY_CONTAINER_VAR: &str = "BERTH_ROOTLESS_ONLY";

/// In a process re-executed for one container of several (see [`rootless_entry`]), keeps only that one.
fn only_one_container(cli: &mut Cli) {
    let Some(only) = std::env::var_os(ONLY_CONTAINER_VAR) else {
        return;
    };
    let only = only.to_string_lossy().into_owned();
    if let Command::Kill(KillArgs { containers, .. })
    | Command::Stop(StopArgs { containers, .. })
    | Command::Rm(RmArgs { containers, .. }) = &mut cli.command
    {
        containers.retain(|c| *c == only);
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
        let Command::Bundle(args) = cli.command else {
            panic!("not bundle")
        };
        assert_eq!(args.flags.volume, ["/a:/b"]);
        assert_eq!((args.image.as_str(), args.command.len()), ("img", 3));
        let cli =
            Cli::try_parse_from(["berth-run", "run", "--rm", "-it", "-e", "A=1", "img", "sh", "-c", "x"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.rm && args.interactive && args.flags.tty);
        assert_eq!((args.image.as_deref(), args.command.len()), (Some("img"), 3));
        let cli = Cli::try_parse_from(["berth-run", "run", "--bundle", "/b"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.bundle.as_deref(), Some(std::path::Path::new("/b")));
        assert!(Cli::try_parse_from(["berth-run", "run"]).is_err());
    }
}
