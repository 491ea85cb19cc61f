//! `berth-copy delete`: an image removed from a registry or a layout.

use std::path::PathBuf;

use anyhow::Result;
use berth_copy::delete;
use clap::Args;

use super::{Auth, image, one_endpoint};

#[derive(Args)]
pub(crate) struct DeleteArgs {
    /// The image to delete: docker://HOST/REPO:TAG (or @DIGEST), oci:PATH:REF or a store name.
    pub(crate) image: String,
    #[command(flatten)]
    pub(crate) auth: Auth,
}

pub(crate) async fn delete(store: &Option<PathBuf>, a: DeleteArgs) -> Result<()> {
    let ep = one_endpoint(store, &a.auth)?;
    let d = delete::delete(&ep, &image(&a.image)?).await?;
    eprintln!("Deleted {d}");
    Ok(())
}
