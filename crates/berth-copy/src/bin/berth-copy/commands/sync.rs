//! `berth-copy sync`: every tag of a repository, every image of a layout, or a YAML list.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use berth_cli::progress::Bars;
use berth_copy::CopyOptions;
use berth_copy::Selection;
use berth_copy::sync::{SyncDest, SyncSource};
use berth_copy::{Progress, Silent};
use berth_spec::reference::ImageRef;
use clap::{Args, ValueEnum};

use super::{Auth, endpoints, image};

#[derive(Args)]
pub(crate) struct SyncArgs {
    /// docker://HOST/REPO[:TAG], oci:PATH, or a YAML file with --src yaml.
    pub(crate) src: String,
    /// docker://HOST/PREFIX or oci:PATH.
    pub(crate) dest: String,
    /// How to read SRC.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) src_type: SrcType,
    /// Copy every platform of indexes.
    #[arg(short = 'a', long)]
    pub(crate) all: bool,
    #[arg(short, long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) auth: Auth,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum SrcType {
    Auto,
    Yaml,
}

pub(crate) async fn sync(store: &Option<PathBuf>, a: SyncArgs) -> Result<()> {
    let ep = endpoints(store, &a.auth)?;
    let src = match a.src_type {
        SrcType::Yaml => SyncSource::Yaml(PathBuf::from(&a.src)),
        SrcType::Auto => match image(&a.src)? {
            ImageRef::Docker(r) => {
                let whole_repository = r.names_repository_only();
                SyncSource::Registry(r, whole_repository)
            }
            ImageRef::Oci { path, .. } => SyncSource::Layout(path),
            other => {
                anyhow::bail!("sync reads docker:// repositories, oci: layouts or --src-type yaml files, not {other}")
            }
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
        Arc::new(Bars::new(false))
    };
    for (from, to, digest) in berth_copy::sync::sync(&ep, &src, &dst, &opts, progress).await? {
        println!("{from} -> {to} {digest}");
    }
    Ok(())
}
