//! `berth-copy inspect`: an image's summary, raw manifest or config, as JSON on stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use berth_copy::inspect::{self, InspectWhat};
use berth_spec::platform::Platform;
use clap::Args;

use super::{Auth, image, one_endpoint};

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// The image: docker://HOST/REPO:TAG, oci:PATH[:REF], oci-archive:PATH[:REF], docker-archive:PATH[:REF], dir:PATH or a store name.
    pub(crate) image: String,
    /// Print the manifest (or index) exactly as stored.
    #[arg(long)]
    pub(crate) raw: bool,
    /// Print the image config, as stored (with or without --raw).
    #[arg(long)]
    pub(crate) config: bool,
    /// Output format; JSON is the only one (as skopeo's default).
    #[arg(long, default_value = "json")]
    pub(crate) format: String,
    /// Platform to pick from an index (default: this host's).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    #[command(flatten)]
    pub(crate) auth: Auth,
}

pub(crate) async fn inspect(store: &Option<PathBuf>, a: InspectArgs) -> Result<()> {
    anyhow::ensure!(a.format == "json", "--format: only json is supported");
    let ep = one_endpoint(store, &a.auth)?;
    // --config prints the config as stored, so skopeo's `--config --raw` means the same.
    let what = match (a.raw, a.config) {
        (_, true) => InspectWhat::Config,
        (true, false) => InspectWhat::Raw,
        _ => InspectWhat::Summary,
    };
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let out = inspect::inspect(&ep, &image(&a.image)?, what, platform.as_ref()).await?;
    std::io::stdout().write_all(&out)?;
    Ok(())
}
