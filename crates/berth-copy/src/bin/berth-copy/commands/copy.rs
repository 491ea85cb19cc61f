//! `berth-copy copy`: one image (or index) from SRC to DEST.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_cli::progress::Bars;
use berth_copy::CopyOptions;
use berth_copy::Selection;
use berth_copy::{Progress, Silent};
use berth_spec::media_type::{Compression, Format};
use berth_spec::platform::Platform;
use clap::{Args, ValueEnum};

use super::{Auth, endpoints, image};

#[derive(Args)]
pub(crate) struct CopyArgs {
    /// The image to copy: docker://HOST/REPO:TAG, oci:PATH[:REF], oci-archive:PATH[:REF], docker-archive:PATH[:REF], dir:PATH or a store name.
    pub(crate) src: String,
    /// Where to copy it, in the same spellings.
    pub(crate) dest: String,
    /// Copy the whole index (every platform).
    #[arg(short = 'a', long, visible_alias = "multi-arch", conflicts_with = "platforms")]
    pub(crate) all: bool,
    /// Copy only these platforms of an index (OS/ARCH[/VARIANT]; repeatable): a new index naming only them.
    #[arg(long = "platform")]
    pub(crate) platforms: Vec<String>,
    /// Fail rather than change any digest.
    #[arg(long)]
    pub(crate) preserve_digests: bool,
    /// Recompress layers.
    #[arg(long, value_enum)]
    pub(crate) dest_compress_format: Option<CompressArg>,
    /// Compression level for --dest-compress-format.
    #[arg(long, requires = "dest_compress_format")]
    pub(crate) dest_compress_level: Option<i32>,
    /// Manifest format of the destination.
    #[arg(short = 'f', long, value_enum)]
    pub(crate) format: Option<FormatArg>,
    /// Write the digest of the copied manifest to this file.
    #[arg(long)]
    pub(crate) digestfile: Option<PathBuf>,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) parallel: usize,
    /// No progress output and no warnings (errors still show).
    #[arg(short, long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) auth: Auth,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum CompressArg {
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Oci,
    V2s2,
}

pub(crate) async fn copy(store: &Option<PathBuf>, a: CopyArgs) -> Result<()> {
    let ep = endpoints(store, &a.auth)?;
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
        ..CopyOptions::default()
    };
    let progress: Arc<dyn Progress> = if a.quiet {
        Arc::new(Silent)
    } else {
        Arc::new(Bars::new(false))
    };
    let (src, dst) = (image(&a.src)?, image(&a.dest)?);
    let report = berth_copy::copy(&ep, &src, &dst, &opts, progress.clone()).await?;
    if let Some(f) = a.digestfile {
        std::fs::write(&f, report.digest.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    progress.message(&format!(
        "Copied {} ({} blobs copied, {} already there)",
        report.digest, report.copied, report.skipped
    ));
    Ok(())
}
