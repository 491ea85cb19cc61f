//! `berth-build build` (alias `bud`): buildah's spelling of the options.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use berth_build::{BuildOptions, PullPolicy};
use berth_transfer::{Progress, Silent};
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
    /// Warn after the build when the step cache holds more than this (such as 20g; default: a tenth of its file
    /// system, at least 5 GiB).
    #[arg(long, env = "BERTH_BUILD_CACHE_WARN_SIZE", value_name = "SIZE")]
    pub(crate) cache_warn_size: Option<String>,
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

pub(crate) fn build(cli: &Cli, args: &BuildArgs) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("berth-build needs root for now (it mounts overlays and runs RUN steps in containers); run it with sudo");
    }
    let (file_name, text, file_path) = berth_build::inputs::containerfile(&args.context, args.file.as_deref())?;
    let containerfile = berth_build::containerfile::parse(&file_name, &text)?;
    let ignore = berth_build::inputs::ignore_rules(&args.context, args.ignorefile.as_deref(), file_path.as_deref())?;
    let platform = berth_build::options::platform(args.platform.as_deref())?;
    let network = berth_build::options::network(&args.network)?;
    let (compression, format) = berth_build::options::output(&args.compress, &args.format)?;
    let pull: PullPolicy = args.pull.parse().map_err(|e| anyhow::anyhow!("--pull {e}"))?;
    let timestamp = berth_build::options::timestamp(args.timestamp)?;
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
    let labels = berth_build::options::name_values(&args.labels, "label")?;
    let annotations = berth_build::options::name_values(&args.annotations, "annotation")?;
    let opts = BuildOptions {
        containerfile,
        context: args.context.clone(),
        ignore,
        store: store_path.clone(),
        work_dir,
        build_args: berth_build::inputs::build_args(&args.build_arg_files, &args.build_args)?,
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
            .map(|c| berth_build::inputs::named_context(c).map_err(anyhow::Error::from))
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
    let warn_size = match &args.cache_warn_size {
        Some(text) => berth_sandbox::options::parse_size("--cache-warn-size", text)?,
        None => berth_build::default_warn_size(&opts.work_dir),
    };
    let built = berth_build::build(&opts)?;
    if let Some(w) = berth_build::oversize_warning(&opts.work_dir, warn_size) {
        eprintln!("warning: {w}");
    }
    berth_build::naming::name_image(&store_path, &built, &args.tags, &registry, progress)?;
    let id = built.image_id.to_string();
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id).with_context(|| format!("--iidfile {}", f.display()))?;
    }
    println!("{}", built.image_id.hex());
    Ok(())
}
