//! `berth-runtime`: Berth's sandbox behind runc's command line, so that containerd's `io.containerd.runc.v2` shim
//! (and `ctr run --runc-binary`) drives it exactly as it drives runc.
//!
//! The shim passes `--root DIR --log FILE --log-format json` and calls `create`, `start`, `state`, `kill`,
//! `delete`, `exec --detach`, `ps --format json`, `pause` and `resume`; `run`, `list` and `spec` complete the
//! runtime-spec command line, `update` changes a container's resource limits and `features` says what the runtime
//! supports (containerd 2 asks). What containerd relies on:
//!
//! - the pid file holds the process id's digits only, written to a temporary file and renamed into place;
//! - `create` and `exec --detach` return with the process alive and re-parented to the shim (the caller is its
//!   subreaper), its standard streams the ones the shim passed (fds 0–2) unless a console socket gets a terminal;
//! - errors go to the log file as logrus JSON lines (`level`, `msg`, `time`): containerd shows the last error's
//!   `msg`; they also go to stderr;
//! - `kill` of a stopped container says "container not running", of a missing one "does not exist"; `kill --all`
//!   of a stopped container succeeds; `delete` of a created container kills and deletes it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use berth_sandbox::runtime::{CreateOptions, Runtime, Stdio, wait_exit};
use clap::{CommandFactory, Parser, Subcommand};
use liboci_cli::{
    Create, Delete, Exec, Features, GlobalOpts, Kill, List, Pause, Ps, Resume, Run, Spec, Start, State, Update,
};

/// The OCI runtime command line (runc's), over Berth's sandbox.
#[derive(Parser, Debug)]
#[command(name = "berth-runtime", version, about)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(
        after_help = "Examples:\n  berth-runtime create --bundle /run/bundles/app --pid-file /run/app.pid app\n  berth-runtime create --bundle ./bundle --console-socket /tmp/console.sock app"
    )]
    Create(Create),
    #[command(after_help = "Examples:\n  berth-runtime start app")]
    Start(Start),
    #[command(after_help = "Examples:\n  berth-runtime state app")]
    State(State),
    #[command(after_help = "Examples:\n  berth-runtime kill app TERM\n  berth-runtime kill --all app KILL")]
    Kill(Kill),
    #[command(after_help = "Examples:\n  berth-runtime delete app\n  berth-runtime delete --force app")]
    Delete(Delete),
    #[command(
        after_help = "Examples:\n  berth-runtime run --bundle ./bundle app\n  ctr run --runc-binary $(command -v berth-runtime) --rm docker.io/library/alpine:latest demo true"
    )]
    Run(Run),
    #[command(
        after_help = "Examples:\n  berth-runtime exec app cat /etc/hostname\n  berth-runtime exec --process process.json --detach --pid-file exec.pid app"
    )]
    Exec(Exec),
    #[command(after_help = "Examples:\n  berth-runtime ps --format json app")]
    Ps(Ps),
    #[command(after_help = "Examples:\n  berth-runtime list\n  berth-runtime list --format json")]
    List(List),
    #[command(after_help = "Examples:\n  berth-runtime pause app")]
    Pause(Pause),
    #[command(after_help = "Examples:\n  berth-runtime resume app")]
    Resume(Resume),
    #[command(after_help = "Examples:\n  berth-runtime spec --bundle ./bundle\n  berth-runtime spec --rootless")]
    Spec(Spec),
    /// Not supported: checkpoints need CRIU, which Berth does not drive (accepted, refused with an error).
    #[command(hide = true)]
    Checkpoint(Unsupported),
    /// Not supported: checkpoints need CRIU, which Berth does not drive (accepted, refused with an error).
    #[command(hide = true)]
    Restore(Unsupported),
    #[command(
        after_help = "Examples:\n  echo '{\"pids\": {\"limit\": 100}}' | berth-runtime update --resources - app\n  berth-runtime update --memory 536870912 app"
    )]
    Update(Update),
    #[command(after_help = "Examples:\n  berth-runtime features")]
    Features(Features),
    /// Not supported yet: container events (accepted, refused with an error).
    #[command(hide = true)]
    Events(Unsupported),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = berth_cli::docs::completions_examples("berth-runtime"))]
    Completions(berth_cli::docs::CompletionsArgs),
    /// Write man pages or the Markdown reference (for packagers and the docs).
    #[command(hide = true)]
    GenerateDocs(berth_cli::docs::GenerateDocsArgs),
}

/// A command berth-runtime refuses (its arguments are accepted and ignored).
#[derive(clap::Args, Debug)]
struct Unsupported {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// runc's default state directory for root; berth-runtime keeps its own beside it.
const DEFAULT_ROOT: &str = "/run/berth-runtime";

fn main() {
    let cli = Cli::parse();
    // First, so that it overlaps everything else (the re-execution below included); once, not again in the
    // sealed copy.
    if matches!(cli.command, Command::Create(_) | Command::Run(_)) && !berth_sandbox::sealed_exe::is_sealed() {
        berth_sandbox::runtime::warm_cgroup_attach();
    }
    // What starts or enters a container runs from a sealed copy of this binary (CVE-2019-5736): a container's
    // processes are this program until they execute theirs.
    if matches!(cli.command, Command::Create(_) | Command::Run(_) | Command::Exec(_))
        && let Err(e) = berth_sandbox::sealed_exe::ensure_sealed("berth-runtime")
    {
        let msg = format!("cannot re-execute from a sealed copy of berth-runtime: {e}");
        Log::new(&cli.global).error(&msg);
        eprintln!("berth-runtime: {msg}");
        std::process::exit(1);
    }
    // Like runc, nothing on stderr but errors; `RUST_LOG` turns on tracing's logs there (for debugging).
    if std::env::var_os("RUST_LOG").is_some() {
        berth_cli::logging::init(berth_cli::logging::Level::default());
    }
    let log = Log::new(&cli.global);
    match run(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            log.error(&msg);
            eprintln!("berth-runtime: {msg}");
            std::process::exit(1);
        }
    }
}

/// The `--log` file, in logrus's JSON (containerd reads the last `"level":"error"` line's `msg`) or text form.
struct Log {
    file: Option<PathBuf>,
    json: bool,
}

impl Log {
    fn new(g: &GlobalOpts) -> Log {
        Log {
            file: g.log.clone(),
            json: g.log_format.as_deref() == Some("json"),
        }
    }

    fn error(&self, msg: &str) {
        let Some(path) = &self.file else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let time = berth_spec::time::rfc3339(now);
        let line = if self.json {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        } else {
            format!("time=\"{time}\" level=error msg={msg:?}")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Where compiled seccomp filters are kept (so that a container loads its filter instead of compiling its
/// profile): `seccomp/` in Berth's cache (`$BERTH_CACHE`, else `/var/cache/berth` for root, …: `berth_spec::dirs`).
/// Not under `--root`, which holds containers only. The cache is used only if the directory is this user's and no
/// one else can write to it.
fn seccomp_cache_dir() -> PathBuf {
    berth_spec::dirs::default_path(berth_spec::dirs::Place::Cache).join("seccomp")
}

fn run(cli: &Cli) -> Result<i32> {
    let root = cli.global.root.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let runtime = || {
        Runtime::new(&root)
            .map(|r| r.with_seccomp_cache(seccomp_cache_dir()))
            .map_err(anyhow::Error::from)
    };
    match &cli.command {
        Command::Create(c) => {
            let rt = runtime()?;
            let opts = (&c.bundle, c.console_socket.clone(), c.no_pivot, c.preserve_fds);
            create(&rt, &c.container_id, opts, c.pid_file.as_deref(), cli)?;
            Ok(0)
        }
        Command::Start(c) => {
            runtime()?.start_created(&c.container_id)?;
            Ok(0)
        }
        Command::State(c) => {
            let rt = runtime()?;
            exists(&rt, &c.container_id)?;
            println!("{}", serde_json::to_string_pretty(&rt.state(&c.container_id)?)?);
            Ok(0)
        }
        Command::Kill(c) => {
            let rt = runtime()?;
            let status = exists(&rt, &c.container_id)?;
            let signal = parse_signal(&c.signal)?;
            if status == "stopped" {
                if c.all {
                    return Ok(0);
                }
                bail!("container not running");
            }
            rt.kill(&c.container_id, signal, c.all)?;
            Ok(0)
        }
        Command::Delete(c) => {
            let rt = runtime()?;
            match rt.status(&c.container_id).as_deref() {
                None if c.force => Ok(0),
                None => bail!("container {} does not exist", c.container_id),
                // A created container is killed and deleted; a running one only with --force.
                Some("running" | "paused") if !c.force => {
                    bail!(
                        "cannot delete container {}: it is running (stop it first, or use --force)",
                        c.container_id
                    )
                }
                Some(_) => {
                    rt.delete(&c.container_id, true)?;
                    Ok(0)
                }
            }
        }
        Command::Run(c) => {
            let rt = runtime()?;
            let opts = (&c.bundle, c.console_socket.clone(), c.no_pivot, c.preserve_fds);
            let pid = create(&rt, &c.container_id, opts, c.pid_file.as_deref(), cli)?;
            if let Err(e) = rt.start_created(&c.container_id) {
                let _ = rt.delete(&c.container_id, true);
                return Err(e.into());
            }
            if c.detach {
                return Ok(0);
            }
            let code = wait_exit(pid)?;
            if !c.keep {
                rt.delete(&c.container_id, true)?;
            }
            Ok(code)
        }
        Command::Exec(c) => exec(&runtime()?, c),
        Command::Ps(c) => {
            let rt = runtime()?;
            exists(&rt, &c.container_id)?;
            let pids = container_pids(&rt, &c.container_id)?;
            if c.format == "json" {
                println!("{}", serde_json::to_string(&pids)?);
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
            Ok(0)
        }
        Command::List(c) => {
            let all = runtime()?.list();
            if c.format == "json" {
                println!("{}", serde_json::to_string(&all)?);
            } else if c.quiet {
                for s in &all {
                    println!("{}", s["id"].as_str().unwrap_or_default());
                }
            } else {
                println!("{:<24} {:<8} {:<10} {:<40}", "ID", "PID", "STATUS", "BUNDLE");
                for s in &all {
                    println!(
                        "{:<24} {:<8} {:<10} {:<40}",
                        s["id"].as_str().unwrap_or_default(),
                        s["pid"].as_i64().unwrap_or(0),
                        s["status"].as_str().unwrap_or_default(),
                        s["bundle"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        Command::Pause(c) => {
            runtime()?.pause(&c.container_id)?;
            Ok(0)
        }
        Command::Resume(c) => {
            runtime()?.resume(&c.container_id)?;
            Ok(0)
        }
        Command::Spec(c) => {
            let dir = c.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
            let path = dir.join("config.json");
            if path.exists() {
                bail!("{} exists already: remove it first", path.display());
            }
            let spec = if c.rootless {
                oci_spec::runtime::Spec::rootless(
                    rustix::process::getuid().as_raw(),
                    rustix::process::getgid().as_raw(),
                )
            } else {
                oci_spec::runtime::Spec::default()
            };
            let text = serde_json::to_string_pretty(&spec)?;
            std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
        Command::Checkpoint(_) | Command::Restore(_) => {
            bail!("checkpoint and restore are not supported by berth-runtime (they need CRIU)")
        }
        Command::Update(c) => {
            let rt = runtime()?;
            exists(&rt, &c.container_id)?;
            rt.update(&c.container_id, &update_resources(c)?)?;
            Ok(0)
        }
        Command::Features(_) => {
            println!("{}", serde_json::to_string_pretty(&berth_sandbox::runtime::features())?);
            Ok(0)
        }
        Command::Events(_) => bail!("events is not supported by berth-runtime yet"),
        Command::Completions(a) => {
            berth_cli::docs::completions(Cli::command(), a)?;
            Ok(0)
        }
        Command::GenerateDocs(a) => {
            berth_cli::docs::generate(Cli::command(), a)?;
            Ok(0)
        }
    }
}

/// The resources `update` sets: the `--resources` document (a file, or `-` for stdin), else the flags.
fn update_resources(c: &Update) -> Result<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
    if let Some(path) = &c.resources {
        let (bytes, from) = if path.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("reading the resources from stdin")?;
            (b, "stdin".to_owned())
        } else {
            let b = std::fs::read(path).with_context(|| format!("reading the resources file {}", path.display()))?;
            (b, path.display().to_string())
        };
        return serde_json::from_slice(&bytes).with_context(|| {
            format!("{from}: not a runtime-spec linux.resources document (JSON with memory, cpu, pids, blockIO, …)")
        });
    }
    if c.l3_cache_schema.is_some() || c.mem_bw_schema.is_some() {
        bail!("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported by berth-runtime");
    }
    let mut r = LinuxResources::default();
    if c.memory.is_some() || c.memory_reservation.is_some() || c.memory_swap.is_some() {
        let mut m = LinuxMemory::default();
        m.set_limit(c.memory.map(|v| v as i64));
        m.set_reservation(c.memory_reservation.map(|v| v as i64));
        m.set_swap(c.memory_swap);
        r.set_memory(Some(m));
    }
    let cpu_given = c.cpu_period.is_some()
        || c.cpu_quota.is_some()
        || c.cpu_rt_period.is_some()
        || c.cpu_rt_runtime.is_some()
        || c.cpu_share.is_some()
        || c.cpuset_cpus.is_some()
        || c.cpuset_mems.is_some();
    if cpu_given {
        let mut cpu = LinuxCpu::default();
        cpu.set_period(c.cpu_period);
        cpu.set_quota(c.cpu_quota.map(|v| v as i64));
        cpu.set_realtime_period(c.cpu_rt_period);
        cpu.set_realtime_runtime(c.cpu_rt_runtime.map(|v| v as i64));
        cpu.set_shares(c.cpu_share);
        cpu.set_cpus(c.cpuset_cpus.clone());
        cpu.set_mems(c.cpuset_mems.clone());
        r.set_cpu(Some(cpu));
    }
    if let Some(limit) = c.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(w) = c.blkio_weight {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(u16::try_from(w).context("--blkio-weight must be 10..1000")?));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// Fails with runc's wording when the container does not exist; returns its status.
fn exists(rt: &Runtime, id: &str) -> Result<String> {
    rt.status(id).ok_or_else(|| anyhow!("container {id} does not exist"))
}

/// `create`, and the first half of `run`: the flags they share are (bundle, console socket, no-pivot, preserved
/// fds). Writes the pid file when one is asked for; returns the pid.
fn create(
    rt: &Runtime,
    id: &str,
    (bundle, console_socket, no_pivot, preserve_fds): (&PathBuf, Option<PathBuf>, bool, i32),
    pid_file: Option<&Path>,
    cli: &Cli,
) -> Result<i32> {
    if rt.status(id).is_some() {
        bail!("container {id} exists already");
    }
    let bundle = std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let pid = rt.create(
        id,
        &bundle,
        CreateOptions {
            console_socket,
            no_pivot,
            preserve_fds,
            systemd: cli.global.systemd_cgroup,
        },
    )?;
    if let Some(f) = pid_file {
        write_pid_file(f, pid)?;
    }
    Ok(pid)
}

/// `exec`: the process from `--process FILE` (the shim's way) or from the command line, in the running container.
fn exec(rt: &Runtime, c: &Exec) -> Result<i32> {
    let status = exists(rt, &c.container_id)?;
    if status != "running" {
        bail!("cannot exec in container {}: it is {status}", c.container_id);
    }
    let mut process: oci_spec::runtime::Process = match &c.process {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading the process file {}", path.display()))?;
            serde_json::from_slice(&bytes).with_context(|| format!("parsing the process file {}", path.display()))?
        }
        None => {
            if c.command.is_empty() {
                bail!("exec needs --process FILE or a command");
            }
            let state = rt.state(&c.container_id)?;
            let bundle = PathBuf::from(state["bundle"].as_str().unwrap_or_default());
            let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
                .with_context(|| format!("reading {}", bundle.join("config.json").display()))?;
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(c.command.clone()));
            p.set_terminal(Some(c.tty));
            if let Some(cwd) = &c.cwd {
                p.set_cwd(cwd.clone());
            }
            if !c.env.is_empty() {
                let mut env = p.env().clone().unwrap_or_default();
                env.extend(c.env.iter().map(|(k, v)| format!("{k}={v}")));
                p.set_env(Some(env));
            }
            p
        }
    };
    if c.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    let scratch = std::env::temp_dir();
    let pid = rt.exec(
        &c.container_id,
        &process,
        &scratch,
        Stdio {
            console_socket: c.console_socket.clone(),
            ..Stdio::default()
        },
    )?;
    if let Some(f) = &c.pid_file {
        write_pid_file(f, pid)?;
    }
    if c.detach {
        return Ok(0);
    }
    Ok(wait_exit(pid)?)
}

/// The process ids in the container's cgroup (empty when it has stopped).
fn container_pids(rt: &Runtime, id: &str) -> Result<Vec<i32>> {
    let state = rt.state(id)?;
    let Some(pid) = state["pid"].as_i64() else {
        return Ok(Vec::new());
    };
    let cgroups = match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(text) => text,
        Err(_) => return Ok(Vec::new()),
    };
    // cgroup v2 ("0::/path"), else a v1 hierarchy every container joins (pids, else memory, else cpu).
    let path = cgroups
        .lines()
        .find_map(|l| {
            l.strip_prefix("0::")
                .map(|p| PathBuf::from("/sys/fs/cgroup").join(p.trim_start_matches('/')))
        })
        .filter(|p| p.join("cgroup.procs").exists())
        .or_else(|| {
            ["pids", "memory", "cpu,cpuacct"].iter().find_map(|ctl| {
                cgroups.lines().find_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
                    (names == *ctl).then(|| {
                        PathBuf::from("/sys/fs/cgroup")
                            .join(ctl)
                            .join(path.trim_start_matches('/'))
                    })
                })
            })
        })
        .ok_or_else(|| anyhow!("cannot find the cgroup of container {id}"))?;
    let procs = std::fs::read_to_string(path.join("cgroup.procs"))
        .with_context(|| format!("reading {}", path.join("cgroup.procs").display()))?;
    Ok(procs.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The pid file: the digits only, written to a temporary file beside it and renamed into place.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing the pid file {}", path.display()))
}

/// A signal by number or name (`9`, `KILL`, `SIGKILL`).
fn parse_signal(text: &str) -> Result<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return Ok(n);
    }
    let name = text.trim_start_matches("SIG").to_ascii_uppercase();
    let known = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("WINCH", 28),
    ];
    known
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow!("unknown signal {text:?}: give a number or a name such as SIGTERM"))
}
