//! `delete`: an image's manifest from a registry, or its name from a layout or the store.

use berth_spec::Digest;
use berth_spec::reference::ImageRef;
use berth_transfer::endpoint::Source;
use berth_transfer::{CopyError, Endpoints};

/// Deletes an image: a registry manifest (by the digest its tag names), or a layout/store name.
pub async fn delete(endpoints: &Endpoints, image: &ImageRef) -> Result<Digest, CopyError> {
    match image {
        ImageRef::Docker(_) => {
            let src = endpoints.open_source(image)?;
            let (_, _, digest) = src.top().await?;
            let Source::Registry { registry, repo, .. } = &src else {
                unreachable!("docker:// opens a registry")
            };
            registry.delete_manifest(repo, &digest).await?;
            Ok(digest)
        }
        ImageRef::Oci {
            path,
            reference: Some(name),
        } => delete_from_layout(&berth_spec::layout::Layout::open(path)?, name),
        ImageRef::Store(s) => {
            let name = s
                .ref_name()
                .ok_or_else(|| CopyError::usage(format!("{image}: name the image to delete by NAME:TAG")))?;
            delete_from_layout(&berth_spec::layout::Layout::open(endpoints.store_path()?)?, &name)
        }
        other => Err(CopyError::usage(format!(
            "delete works on docker://, oci:PATH:REF and store references, not {other}"
        ))),
    }
}

fn delete_from_layout(layout: &berth_spec::layout::Layout, name: &str) -> Result<Digest, CopyError> {
    let desc = layout.resolve(Some(name))?;
    layout.delete_ref(name)?;
    berth_transfer::plan::digest_of(&desc)
}
