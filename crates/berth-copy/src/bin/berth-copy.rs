//! `berth-copy`: the command line. Parses, dispatches, renders output and errors; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_copy::CopyOptions;
use berth_copy::copy::copy_between;
use berth_copy::endpoint::{Endpoints, RegistryAccess};
use berth_copy::inspect::{self, InspectWhat};
use berth_copy::plan::Selection;
use berth_copy::progress::{Progress, Silent, Stderr};
use berth_copy::sync::{SyncDest, SyncSource};
use berth_registry::Credentials;
use berth_spec::media_type::{Compression, Format};
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "berth-copy",
    version,
    about = "Copy, inspect, list, delete and sync container images"
)]
struct Cli {
    /// The default store for bare image names (default: $BERTH_STORE; for root /var/lib/berth/store; else
    /// $XDG_DATA_HOME/berth/store, …).
    #[arg(long, global = true, env = "BERTH_STORE")]
    store: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Copy an image (or index) from SRC to DEST.
    Copy(CopyArgs),
    /// Show an image's manifest summary, raw manifest or config.
    Inspect(InspectArgs),
    /// List the tags of a repository (or the names in a layout).
    ListTags(ListTagsArgs),
    /// Delete an image from a registry or a layout.
    Delete(DeleteArgs),
    /// Copy all tags of a repository, all images of a layout, or a YAML list.
    Sync(SyncArgs),
    /// Re-hash every blob of a layout and report missing, corrupt and dangling content.
    Fsck(LayoutArgs),
    /// Delete blobs of a layout no image refers to.
    Gc(LayoutArgs),
}

#[derive(Args, Clone)]
struct Auth {
    /// Credentials USER:PASS for the registry of inspect, list-tags and delete (skopeo's flag). Copy and sync take
    /// --src-creds and --dest-creds, so that no password reaches the other side's registry.
    #[arg(long)]
    creds: Option<String>,
    /// Require HTTPS and verify certificates (both sides unless --src-tls-verify/--dest-tls-verify say otherwise).
    #[arg(long)]
    tls_verify: Option<bool>,
    /// Credentials USER:PASS for the source registry.
    #[arg(long)]
    src_creds: Option<String>,
    /// Credentials USER:PASS for the destination registry.
    #[arg(long)]
    dest_creds: Option<String>,
    /// Auth file (containers auth.json / docker config.json format) for both sides.
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    authfile: Option<PathBuf>,
    /// Require HTTPS and verify certificates for the source (default: automatic; plain HTTP only for localhost).
    #[arg(long)]
    src_tls_verify: Option<bool>,
    /// Require HTTPS and verify certificates for the destination.
    #[arg(long)]
    dest_tls_verify: Option<bool>,
    /// Retries of a failed request.
    #[arg(long, default_value_t = 3)]
    retry_times: u32,
}

#[derive(Args)]
struct CopyArgs {
    src: String,
    dest: String,
    /// Copy the whole index (every platform).
    #[arg(short = 'a', long, visible_alias = "multi-arch", conflicts_with = "platforms")]
    all: bool,
    /// Copy only these platforms of an index (OS/ARCH[/VARIANT]; repeatable): a new index naming only them.
    #[arg(long = "platform")]
    platforms: Vec<String>,
    /// Fail rather than change any digest.
    #[arg(long)]
    preserve_digests: bool,
    /// Recompress layers.
    #[arg(long, value_enum)]
    dest_compress_format: Option<CompressArg>,
    /// Compression level for --dest-compress-format.
    #[arg(long, requires = "dest_compress_format")]
    dest_compress_level: Option<i32>,
    /// Manifest format of the destination.
    #[arg(short = 'f', long, value_enum)]
    format: Option<FormatArg>,
    /// Write the digest of the copied manifest to this file.
    #[arg(long)]
    digestfile: Option<PathBuf>,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// No progress output and no warnings (errors still show).
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    auth: Auth,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressArg {
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Oci,
    V2s2,
}

#[derive(Args)]
struct InspectArgs {
    image: String,
    /// Print the manifest (or index) exactly as stored.
    #[arg(long)]
    raw: bool,
    /// Print the image config, as stored (with or without --raw).
    #[arg(long)]
    config: bool,
    /// Output format; JSON is the only one (as skopeo's default).
    #[arg(long, default_value = "json")]
    format: String,
    /// Platform to pick from an index (default: this host's).
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    auth: Auth,
}

#[derive(Args)]
struct ListTagsArgs {
    image: String,
    #[command(flatten)]
    auth: Auth,
}

#[derive(Args)]
struct DeleteArgs {
    image: String,
    #[command(flatten)]
    auth: Auth,
}

#[derive(Args)]
struct SyncArgs {
    /// docker://HOST/REPO[:TAG], oci:PATH, or a YAML file with --src yaml.
    src: String,
    /// docker://HOST/PREFIX or oci:PATH.
    dest: String,
    /// How to read SRC.
    #[arg(long, value_enum, default_value = "auto")]
    src_type: SrcType,
    /// Copy every platform of indexes.
    #[arg(short = 'a', long)]
    all: bool,
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    auth: Auth,
}

#[derive(Clone, Copy, ValueEnum)]
enum SrcType {
    Auto,
    Yaml,
}

#[derive(Args)]
struct LayoutArgs {
    /// oci:PATH, or nothing for the default store.
    layout: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Json,
}

fn access(creds: &Option<String>, auth: &Auth, tls: Option<bool>) -> Result<RegistryAccess> {
    Ok(RegistryAccess {
        // The parse error already says to write USER:PASSWORD; no prompting (it would hang scripts and CI).
        creds: creds.as_deref().map(Credentials::parse).transpose()?,
        authfile: auth.authfile.clone(),
        tls_verify: tls,
        retry_times: Some(auth.retry_times),
    })
}

fn endpoints(cli_store: &Option<PathBuf>, auth: &Auth) -> Result<Endpoints> {
    let cache = blob_location_cache();
    anyhow::ensure!(
        auth.creds.is_none(),
        "--creds: copy and sync have two registries; give --src-creds and/or --dest-creds, so that each password \
         goes only to its own registry"
    );
    Ok(Endpoints {
        store: cli_store.clone(),
        src: access(&auth.src_creds, auth, auth.src_tls_verify.or(auth.tls_verify))?,
        dest: access(&auth.dest_creds, auth, auth.dest_tls_verify.or(auth.tls_verify))?,
        blob_cache: cache,
    })
}

/// Where the registry blob locations seen are kept (for cross-repository mounts): in Berth's cache directory, the
/// same for root whatever `$HOME` and `$XDG_CACHE_HOME` say. It is only an optimisation: a directory that cannot be
/// made private, or that another user controls, turns it off with a warning.
fn blob_location_cache() -> Option<PathBuf> {
    let dir = berth_spec::dirs::default_path(berth_spec::dirs::Place::Cache);
    match berth_spec::private_dir::ensure_private_dir(&dir) {
        Ok(()) => Some(dir.join("blob-locations.json")),
        Err(e) => {
            tracing::warn!("not remembering blob locations: {e}");
            None
        }
    }
}

/// Endpoints for a command on one reference (inspect, list-tags, delete): whichever of the credential and TLS flags
/// was given applies to it.
fn one_endpoint(cli_store: &Option<PathBuf>, auth: &Auth) -> Result<Endpoints> {
    let mut auth = auth.clone();
    auth.src_creds = auth.creds.take().or(auth.src_creds.take()).or(auth.dest_creds.take());
    auth.src_tls_verify = auth.tls_verify.or(auth.src_tls_verify).or(auth.dest_tls_verify);
    endpoints(cli_store, &auth)
}

/// Whether a copy failed because the destination registry refused a manifest as such: a 400 or 415 about a
/// manifest of the destination's repository whose code says the manifest is invalid or unsupported (or none).
fn oci_refused(e: &berth_copy::CopyError, dest: &ImageRef) -> bool {
    let ImageRef::Docker(d) = dest else {
        return false;
    };
    matches!(e, berth_copy::CopyError::Registry(r)
        if r.is_manifest_refusal()
            && matches!(r, berth_registry::RegistryError::Status { target, .. } if target.repo == d.repository() && target.host == d.registry_host()))
}

fn image(s: &str) -> Result<ImageRef> {
    s.parse::<ImageRef>().map_err(anyhow::Error::from)
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Copy(a) => {
            let ep = endpoints(&cli.store, &a.auth)?;
            let selection = if a.all {
                Selection::All
            } else if !a.platforms.is_empty() {
                Selection::Platforms(
                    a.platforms
                        .iter()
                        .map(|p| Platform::parse(p))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Selection::Host
            };
            let compression = a.dest_compress_format.map(|c| match c {
                CompressArg::Gzip => Compression::Gzip,
                CompressArg::Zstd => Compression::Zstd,
            });
            // Checked before anything is copied, whether or not a layer will need recompressing.
            if let (Some(c), Some(level)) = (compression, a.dest_compress_level)
                && let Some(range) = berth_layer::compress::level_range(c)
                && !range.contains(&level)
            {
                return Err(berth_copy::CopyError::Usage(format!(
                    "--dest-compress-level {level}: {c} levels are {}..={}",
                    range.start(),
                    range.end()
                ))
                .into());
            }
            let opts = CopyOptions {
                selection,
                preserve_digests: a.preserve_digests,
                compression,
                compression_level: a.dest_compress_level,
                format: a.format.map(|f| match f {
                    FormatArg::Oci => Format::Oci,
                    FormatArg::V2s2 => Format::DockerV2S2,
                }),
                parallel: a.parallel,
            };
            let progress: Arc<dyn Progress> = if a.quiet {
                Arc::new(Silent)
            } else {
                Arc::new(Stderr::new(false))
            };
            let (src, dst) = (image(&a.src)?, image(&a.dest)?);
            let report = match copy_between(ep.open_source(&src)?, ep.open_dest(&dst)?, &opts, progress.clone()).await {
                // A registry that refuses the (OCI) manifest gets Docker schema 2, as skopeo does; the blobs are
                // already there. If that fails too, the first refusal is what the user needs to see.
                Err(first) if oci_refused(&first, &dst) && opts.format.is_none() && !opts.preserve_digests => {
                    progress.message("The registry refused the manifest; trying again as Docker schema 2");
                    let v2 = CopyOptions {
                        format: Some(Format::DockerV2S2),
                        ..opts.clone()
                    };
                    match copy_between(ep.open_source(&src)?, ep.open_dest(&dst)?, &v2, progress.clone()).await {
                        Ok(report) => report,
                        Err(second) => {
                            tracing::debug!("as Docker schema 2: {second}");
                            return Err(first.into());
                        }
                    }
                }
                other => other?,
            };
            if let Some(f) = a.digestfile {
                std::fs::write(&f, report.digest.to_string()).with_context(|| format!("writing {}", f.display()))?;
            }
            progress.message(&format!(
                "Copied {} ({} blobs copied, {} already there)",
                report.digest, report.copied, report.skipped
            ));
        }
        Command::Inspect(a) => {
            anyhow::ensure!(a.format == "json", "--format: only json is supported");
            let ep = one_endpoint(&cli.store, &a.auth)?;
            // --config prints the config as stored, so skopeo's `--config --raw` means the same.
            let what = match (a.raw, a.config) {
                (_, true) => InspectWhat::Config,
                (true, false) => InspectWhat::Raw,
                _ => InspectWhat::Summary,
            };
            let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
            let out = inspect::inspect(&ep, &image(&a.image)?, what, platform.as_ref()).await?;
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
        }
        Command::ListTags(a) => {
            let ep = one_endpoint(&cli.store, &a.auth)?;
            let reference = image(&a.image)?;
            // As written (a parsed reference without a tag reads as :latest).
            let named = a.image.rsplit('/').next().is_some_and(|last| last.contains([':', '@']));
            if let ImageRef::Docker(r) = &reference
                && named
            {
                anyhow::bail!(
                    "{}: list-tags takes a repository, without a tag or digest (docker://{}/{})",
                    a.image,
                    r.registry_host(),
                    r.repository()
                );
            }
            let (repo, tags) = inspect::list_tags(&ep, &reference).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"Repository": repo, "Tags": tags}))?
            );
        }
        Command::Delete(a) => {
            let ep = one_endpoint(&cli.store, &a.auth)?;
            let d = inspect::delete(&ep, &image(&a.image)?).await?;
            eprintln!("Deleted {d}");
        }
        Command::Sync(a) => {
            let ep = endpoints(&cli.store, &a.auth)?;
            let src = match a.src_type {
                SrcType::Yaml => SyncSource::Yaml(PathBuf::from(&a.src)),
                SrcType::Auto => match image(&a.src)? {
                    ImageRef::Docker(r) => {
                        let last = a.src.rsplit('/').next().unwrap_or_default();
                        SyncSource::Registry(r, !last.contains(':') && !last.contains('@'))
                    }
                    ImageRef::Oci { path, .. } => SyncSource::Layout(path),
                    other => anyhow::bail!(
                        "sync reads docker:// repositories, oci: layouts or --src-type yaml files, not {other}"
                    ),
                },
            };
            let dst = match image(&a.dest)? {
                ImageRef::Oci { path, .. } => SyncDest::Layout(path),
                ImageRef::Docker(_) => SyncDest::Registry(a.dest.trim_start_matches("docker://").to_owned()),
                other => anyhow::bail!("sync writes to docker://HOST/PREFIX or oci:PATH, not {other}"),
            };
            let opts = CopyOptions {
                selection: if a.all { Selection::All } else { Selection::Host },
                ..Default::default()
            };
            let progress: Arc<dyn Progress> = if a.quiet {
                Arc::new(Silent)
            } else {
                Arc::new(Stderr::new(false))
            };
            for (from, to, digest) in berth_copy::sync::sync(&ep, &src, &dst, &opts, progress).await? {
                println!("{from} -> {to} {digest}");
            }
        }
        Command::Fsck(a) => {
            let layout = open_layout(&cli.store, a.layout.as_deref())?;
            let r = layout.fsck()?;
            if a.format == Some(OutputFormat::Json) {
                let problems: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
                let dangling: Vec<String> = r.dangling.iter().map(|d| d.to_string()).collect();
                println!(
                    "{}",
                    serde_json::json!({"ok": r.is_ok(), "blobs_checked": r.blobs_checked, "bytes_checked": r.bytes_checked,
                        "problems": problems, "dangling": dangling, "stale_temp_files": r.stale_temp_files})
                );
            } else {
                for p in &r.problems {
                    println!("{p}");
                }
                eprintln!(
                    "{}: {} blobs ({} bytes) checked, {} problem(s), {} dangling blob(s), {} stale temp file(s)",
                    layout.root().display(),
                    r.blobs_checked,
                    r.bytes_checked,
                    r.problems.len(),
                    r.dangling.len(),
                    r.stale_temp_files
                );
            }
            anyhow::ensure!(r.is_ok(), "the layout has problems");
        }
        Command::Gc(a) => {
            let layout = open_layout(&cli.store, a.layout.as_deref())?;
            let r = layout.gc()?;
            if a.format == Some(OutputFormat::Json) {
                let removed: Vec<String> = r.removed.iter().map(ToString::to_string).collect();
                println!(
                    "{}",
                    serde_json::json!({"removed": removed, "bytes_freed": r.bytes_freed,
                        "temp_files_removed": r.temp_files_removed})
                );
            } else {
                eprintln!(
                    "removed {} blob(s), {} bytes, {} stale temp file(s)",
                    r.removed.len(),
                    r.bytes_freed,
                    r.temp_files_removed
                );
            }
        }
    }
    Ok(())
}

fn open_layout(store: &Option<PathBuf>, arg: Option<&str>) -> Result<berth_spec::layout::Layout> {
    let path = match arg.map(image).transpose()? {
        Some(ImageRef::Oci { path, .. }) => path,
        None => match store {
            Some(path) => path.clone(),
            None => berth_spec::store::trusted_default_store_path()?,
        },
        Some(other) => anyhow::bail!("fsck and gc work on oci:PATH layouts or the store, not {other}"),
    };
    Ok(berth_spec::layout::Layout::open(&path)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // --quiet silences the warnings about retries too; errors still show.
    let quiet =
        matches!(&cli.command, Command::Copy(a) if a.quiet) || matches!(&cli.command, Command::Sync(a) if a.quiet);
    let level = match cli.verbose {
        0 if quiet => "error",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: CI logs and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // Without -v or RUST_LOG only warnings show: plain lines for people, not timestamped log records.
    if cli.verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        logs.without_time().with_target(false).init();
    } else {
        logs.init();
    }
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
            eprintln!("berth-copy: {}", render(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: many messages already quote their cause, and `{:#}` would repeat it.
fn render(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
