//! `berth-copy list-tags`: a repository's tags (or a layout's names).

use std::path::PathBuf;

use anyhow::Result;
use berth_copy::inspect;
use berth_spec::reference::ImageRef;
use clap::Args;

use super::{Auth, image, one_endpoint};

#[derive(Args)]
pub(crate) struct ListTagsArgs {
    /// The repository: docker://HOST/REPO, or oci:PATH for the names in a layout.
    pub(crate) image: String,
    #[command(flatten)]
    pub(crate) auth: Auth,
}

pub(crate) async fn list_tags(store: &Option<PathBuf>, a: ListTagsArgs) -> Result<()> {
    let ep = one_endpoint(store, &a.auth)?;
    let reference = image(&a.image)?;
    if let ImageRef::Docker(r) = &reference
        && !r.names_repository_only()
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
    Ok(())
}
