//! `berth-build build` (alias `bud`): buildah's spelling of the options.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use berth_build::pattern::IgnoreRules;
use berth_build::{BuildOptions, PullPolicy};
use berth_sandbox::NetMode;
use berth_spec::layout::Layout;
use berth_spec::media_type::Compression;
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;
use berth_transfer::{CopyOptions, Endpoints, Progress, RegistryAccess, Silent};
use clap::Args;

use crate::Cli;

#[derive(Args)]
pub(crate) struct BuildArgs {
    /// The build context directory.
    #[arg(default_value = ".")]
    pub(crate) context: PathBuf,
    /// The Containerfile (default: CONTEXT/Containerfile, else CONTEXT/Dockerfile); `-` reads standard input.
    #[arg(short = 'f', long = "file")]
    pub(crate) file: Option<String>,
    /// Name the image: a store name (app:1), oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME] or
    /// docker://REGISTRY/NAME:TAG (pushed). Repeatable.
    #[arg(short = 't', long = "tag")]
    pub(crate) tags: Vec<String>,
    /// A build argument, NAME=VALUE (NAME alone takes the value from the environment). Repeatable.
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub(crate) build_args: Vec<String>,
    /// A file of NAME=VALUE lines (comments with #).
    #[arg(long = "build-arg-file", value_name = "FILE")]
    pub(crate) build_arg_files: Vec<PathBuf>,
    /// Build this stage (and what it needs) instead of the last.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// A label to add, NAME=VALUE. Repeatable.
    #[arg(long = "label", value_name = "NAME=VALUE")]
    pub(crate) labels: Vec<String>,
    /// An annotation for the image's manifest, NAME=VALUE. Repeatable.
    #[arg(long = "annotation", value_name = "NAME=VALUE")]
    pub(crate) annotations: Vec<String>,
    /// Squash all layers of the image, the base's included, into one.
    #[arg(long)]
    pub(crate) squash: bool,
    /// With --compress: recompress the base image's layers too (its layer digests change).
    #[arg(long)]
    pub(crate) force_compression: bool,
    /// The network of RUN steps: host (the default; Berth sets up no bridge) or none.
    #[arg(long, default_value = "host")]
    pub(crate) network: String,
    /// The platform to build for: only this host's is supported.
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// When to pull base images: missing, always or never.
    #[arg(long, default_value = "missing", num_args = 0..=1, default_missing_value = "always")]
    pub(crate) pull: String,
    /// The image format: oci, or docker (Docker schema 2; no zstd layers, no annotations).
    #[arg(long, default_value = "oci")]
    pub(crate) format: String,
    /// Layer compression: gzip or zstd.
    #[arg(long = "compress", default_value = "gzip")]
    pub(crate) compress: String,
    /// Write the image id (sha256:...) to this file.
    #[arg(long)]
    pub(crate) iidfile: Option<PathBuf>,
    /// The image's created time and a clamp for file times in new layers, in seconds since the epoch (default:
    /// $SOURCE_DATE_EPOCH).
    #[arg(long)]
    pub(crate) timestamp: Option<i64>,
    /// The ignore file (default: FILE.dockerignore beside the Containerfile, else CONTEXT/.containerignore, else
    /// CONTEXT/.dockerignore).
    #[arg(long)]
    pub(crate) ignorefile: Option<PathBuf>,
    /// Run every step, whatever the step cache holds (the results are still recorded for later builds).
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Keep intermediate layers (the default; accepted for buildah compatibility).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) layers: Option<bool>,
    /// A named context for FROM and COPY --from: NAME=DIR, NAME=docker-image://REF, NAME=oci-layout://DIR[:REF],
    /// or NAME=TRANSPORT:REF (docker://, oci:). Repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR. Never stored in the image.
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    pub(crate) secrets: Vec<String>,
    /// Only the image id on stdout; no step lines.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) registry: berth_cli::args::RegistryFlags,
}

/// Largest Containerfile read (a bigger one is refused, not read into memory).
const MAX_CONTAINERFILE: u64 = 16 << 20;
/// Largest ignore file read.
const MAX_IGNORE_FILE: u64 = 4 << 20;

/// Reads `rel` inside the context: symlinks and `..` resolve in the context, so a Containerfile or ignore file that
/// is a symlink cannot make the build read a file outside it (buildah CVE-2022-4122). `None` when absent.
fn read_in_context(context: &Path, rel: &str, limit: u64) -> Result<Option<String>> {
    let root = berth_sandbox::rootfs::RootFs::open(context, "the build context")
        .with_context(|| format!("{}: cannot open the build context", context.display()))?;
    let Some(bytes) = root
        .read_file(rel, limit)
        .with_context(|| format!("{}: cannot read {rel} in the build context", context.display()))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).with_context(|| format!("{}/{rel}: not UTF-8 text", context.display()))?;
    Ok(Some(text))
}

fn read_capped(path: &Path, limit: u64) -> Result<String> {
    let mut text = String::new();
    let n = std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_string(&mut text))
        .with_context(|| format!("{}: cannot read it", path.display()))?;
    if n as u64 > limit {
        bail!("{}: larger than {limit} bytes; refusing to read it", path.display());
    }
    Ok(text)
}

fn containerfile(args: &BuildArgs) -> Result<(String, String, Option<PathBuf>)> {
    match args.file.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_CONTAINERFILE + 1)
                .read_to_string(&mut text)
                .context("reading the Containerfile from stdin")?;
            if text.len() as u64 > MAX_CONTAINERFILE {
                bail!("the Containerfile on stdin is larger than {MAX_CONTAINERFILE} bytes");
            }
            Ok(("<stdin>".into(), text, None))
        }
        Some(path) => {
            let text = read_capped(Path::new(path), MAX_CONTAINERFILE)?;
            Ok((path.to_owned(), text, Some(PathBuf::from(path))))
        }
        None => {
            for name in ["Containerfile", "Dockerfile"] {
                if let Some(text) = read_in_context(&args.context, name, MAX_CONTAINERFILE)? {
                    let p = args.context.join(name);
                    return Ok((p.display().to_string(), text, Some(p)));
                }
            }
            bail!(
                "{}: no Containerfile or Dockerfile in the context; give one with -f FILE",
                args.context.display()
            )
        }
    }
}

fn ignore_rules(args: &BuildArgs, file: Option<&Path>) -> Result<IgnoreRules> {
    let parse = |text: &str, name: &dyn std::fmt::Display| IgnoreRules::parse(text).with_context(|| format!("{name}"));
    if let Some(p) = &args.ignorefile {
        return parse(&read_capped(p, MAX_IGNORE_FILE)?, &p.display());
    }
    if let Some(f) = file {
        let beside = PathBuf::from(format!("{}.dockerignore", f.display()));
        if beside.exists() {
            return parse(&read_capped(&beside, MAX_IGNORE_FILE)?, &beside.display());
        }
    }
    for name in [".containerignore", ".dockerignore"] {
        if let Some(text) = read_in_context(&args.context, name, MAX_IGNORE_FILE)? {
            return parse(&text, &args.context.join(name).display());
        }
    }
    Ok(IgnoreRules::default())
}

fn build_args(args: &BuildArgs) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut add = |entry: &str, origin: &str| -> Result<()> {
        match entry.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None => {
                // NAME alone: the value from this environment, when it has one.
                if let Ok(v) = std::env::var(entry) {
                    out.insert(entry.to_owned(), v);
                }
            }
        }
        if entry.is_empty() || entry.starts_with('=') {
            bail!("{origin}: {entry:?} is not NAME[=VALUE]");
        }
        Ok(())
    };
    for f in &args.build_arg_files {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}: cannot read it", f.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            add(line, &format!("--build-arg-file {}", f.display()))?;
        }
    }
    for a in &args.build_args {
        add(a, "--build-arg")?;
    }
    Ok(out)
}

pub(crate) fn build(cli: &Cli, args: &BuildArgs) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("berth-build needs root for now (it mounts overlays and runs RUN steps in containers); run it with sudo");
    }
    let (file_name, text, file_path) = containerfile(args)?;
    let containerfile = berth_build::containerfile::parse(&file_name, &text)?;
    let ignore = ignore_rules(args, file_path.as_deref())?;
    let platform = match &args.platform {
        None => Platform::host(),
        Some(p) => {
            let wanted = Platform::parse(p).with_context(|| format!("--platform {p}"))?;
            if !wanted.matches(&Platform::host()) {
                bail!(
                    "--platform {p}: berth-build builds for this host's platform ({}) only",
                    Platform::host()
                );
            }
            Platform::host()
        }
    };
    let network = match args.network.as_str() {
        "host" | "default" => NetMode::Host,
        "none" => NetMode::None,
        other => bail!("--network {other}: use host or none"),
    };
    let compression = match args.compress.as_str() {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        other => bail!("--compress {other}: use gzip or zstd"),
    };
    let format = match args.format.as_str() {
        "oci" => berth_spec::media_type::Format::Oci,
        "docker" => {
            if compression == Compression::Zstd {
                bail!("--format docker --compress zstd: Docker schema 2 has no zstd layers; use gzip or --format oci");
            }
            berth_spec::media_type::Format::DockerV2S2
        }
        other => bail!("--format {other}: use oci or docker"),
    };
    let pull: PullPolicy = args.pull.parse().map_err(|e| anyhow::anyhow!("--pull {e}"))?;
    let timestamp = match args.timestamp {
        Some(t) => Some(t),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(
                v.parse()
                    .with_context(|| format!("SOURCE_DATE_EPOCH={v}: not a number"))?,
            ),
            _ => None,
        },
    };
    let store_path = match &cli.store {
        Some(p) => p.clone(),
        None => berth_spec::store::trusted_default_store_path()?,
    };
    let work_dir = super::work_dir(cli);
    let registry = args.registry.access()?;
    let progress: Arc<dyn Progress> = if args.quiet {
        Arc::new(Silent)
    } else {
        Arc::new(berth_cli::progress::Bars::new(false))
    };
    let quiet = args.quiet;
    let report: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    });
    let pairs = |list: &[String], flag: &str| -> Result<Vec<(String, String)>> {
        list.iter()
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| anyhow::anyhow!("--{flag} {l}: write NAME=VALUE"))
            })
            .collect()
    };
    let labels = pairs(&args.labels, "label")?;
    let annotations = pairs(&args.annotations, "annotation")?;
    let opts = BuildOptions {
        containerfile,
        context: args.context.clone(),
        ignore,
        store: store_path.clone(),
        work_dir,
        build_args: build_args(args)?,
        target: args.target.clone(),
        labels,
        annotations,
        force_compression: args.force_compression,
        squash: args.squash,
        no_cache: args.no_cache,
        network,
        platform,
        compression,
        format,
        timestamp,
        pull,
        build_contexts: args
            .build_contexts
            .iter()
            .map(|c| named_context(c))
            .collect::<Result<_>>()?,
        secrets: args
            .secrets
            .iter()
            .map(|s| berth_build::steps::mounts::parse_secret(s).map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?,
        registry: registry.clone(),
        progress: progress.clone(),
        report,
    };
    let built = berth_build::build(&opts)?;
    name_image(&store_path, &built, &args.tags, &registry, progress)?;
    let id = built.image_id.to_string();
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id).with_context(|| format!("--iidfile {}", f.display()))?;
    }
    println!("{}", built.image_id.hex());
    Ok(())
}

/// Names the built image: store names in the store; other destinations through the transfer engine.
fn name_image(
    store_path: &Path,
    built: &berth_build::BuildReport,
    tags: &[String],
    registry: &RegistryAccess,
    progress: Arc<dyn Progress>,
) -> Result<()> {
    let store = Layout::open(store_path)?;
    let writer = store.writer()?;
    let mut named = false;
    let mut others = Vec::new();
    for t in tags {
        match ImageRef::parse(t).with_context(|| format!("-t {t}"))? {
            ImageRef::Store(s) => {
                let Some(name) = s.ref_name() else {
                    bail!("-t {t}: name the image NAME[:TAG], not by digest");
                };
                writer.set_ref(&name, &built.manifest)?;
                named = true;
            }
            other => others.push(other),
        }
    }
    if !named {
        writer.add_entry(&built.manifest)?;
    }
    drop(writer);
    if others.is_empty() {
        return Ok(());
    }
    let endpoints = Endpoints {
        store: Some(store_path.to_owned()),
        dest: registry.clone(),
        user_agent: Some(format!("berth-build/{}", env!("CARGO_PKG_VERSION"))),
        ..Endpoints::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for dest in others {
        let source = berth_transfer::endpoint::Source::Layout {
            layout: store.clone(),
            selector: berth_transfer::endpoint::Selector::Digest(berth_spec::Digest::from_oci(
                built.manifest.digest(),
            )?),
            label: format!("the built image {}", built.image_id),
            staging: None,
        };
        let d = endpoints.open_dest(&dest)?;
        runtime
            .block_on(berth_transfer::copy_between(
                source,
                d,
                &CopyOptions::default(),
                progress.clone(),
            ))
            .with_context(|| format!("-t {dest}"))?;
    }
    Ok(())
}

/// `NAME=VALUE` of `--build-context`.
fn named_context(text: &str) -> Result<(String, berth_build::NamedContext)> {
    let Some((name, value)) = text.split_once('=') else {
        bail!("--build-context {text}: write NAME=DIR or NAME=docker-image://REF");
    };
    let context = if let Some(r) = value.strip_prefix("docker-image://") {
        berth_build::NamedContext::Image(format!("docker://{r}"))
    } else if let Some(p) = value.strip_prefix("oci-layout://") {
        berth_build::NamedContext::Image(format!("oci:{p}"))
    } else if value.starts_with("docker://") || value.starts_with("oci:") {
        berth_build::NamedContext::Image(value.to_owned())
    } else {
        let dir = PathBuf::from(value);
        if !dir.is_dir() {
            bail!("--build-context {text}: {value} is not a directory (images are written docker-image://REF)");
        }
        berth_build::NamedContext::Dir(dir)
    };
    Ok((name.to_owned(), context))
}
