//! Finding the image a reference names: in the default store, an OCI layout, or an archive.

use std::path::Path;

use berth_spec::layout::{Image, Layout, LayoutError};
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;
use berth_spec::{Digest, media_type};
use tempfile::TempDir;

use crate::RunError;
use berth_spec::io_context::IoContext;

/// An image opened for running: its layout, its manifest and config, and the temporary directory holding an
/// unpacked archive (removed when this is dropped).
#[derive(Debug)]
pub struct OpenedImage {
    /// The reference as the user wrote it, for messages.
    pub label: String,
    /// The layout holding the image's blobs.
    pub layout: Layout,
    /// Manifest and config.
    pub image: Image,
    _temp: Option<TempDir>,
}

impl OpenedImage {
    /// The manifest's digest.
    pub fn manifest_digest(&self) -> &Digest {
        self.image.manifest.digest()
    }
}

/// Opens the image `reference` names for `platform`. Bare names are looked up in the store at `store`; archives
/// are unpacked under `scratch` first. A `docker://` reference is not fetched here: pull it into the store with
/// [`crate::pull::pull`] (as `berth-run run` and `create` do) and open the store name that returns.
pub fn open_image(
    reference: &ImageRef,
    store: &Path,
    scratch: &Path,
    platform: &Platform,
) -> Result<OpenedImage, RunError> {
    let label = reference.to_string();
    let layout_err = |source| RunError::Layout {
        image: label.clone(),
        source: Box::new(source),
    };
    let archive_err = |source| RunError::Archive {
        image: label.clone(),
        source: Box::new(source),
    };
    let scratch_dir = || -> Result<TempDir, RunError> {
        std::fs::create_dir_all(scratch).at("create", scratch)?;
        tempfile::Builder::new()
            .prefix("image-")
            .tempdir_in(scratch)
            .at("create a temporary directory in", scratch)
            .map_err(Into::into)
    };
    let (layout, image, temp) = match reference {
        ImageRef::Store(name) => {
            let layout = match Layout::open(store) {
                Err(LayoutError::NotALayout { .. }) if !store.exists() => {
                    return Err(RunError::Unsupported {
                        image: label.clone(),
                        reason: format!(
                            "not found: the image store {} does not exist yet; copy the image into it first",
                            store.display()
                        ),
                    });
                }
                other => other.map_err(layout_err)?,
            };
            let image = match (name.digest(), name.ref_name()) {
                (Some(digest), _) => layout
                    .resolve_named_digest(name.repository(), name.tag(), digest)
                    .and_then(|d| layout.load_image_from(d, platform)),
                (None, name) => layout.load_image(name.as_deref(), platform),
            }
            .map_err(layout_err)?;
            (layout, image, None)
        }
        ImageRef::Oci { path, reference } => {
            let layout = Layout::open(path).map_err(layout_err)?;
            let image = layout.load_image(reference.as_deref(), platform).map_err(layout_err)?;
            (layout, image, None)
        }
        ImageRef::OciArchive { path, reference } => {
            let temp = scratch_dir()?;
            let layout = berth_archive::extract_oci_archive(path, &temp.path().join("layout")).map_err(archive_err)?;
            let image = layout.load_image(reference.as_deref(), platform).map_err(layout_err)?;
            (layout, image, Some(temp))
        }
        ImageRef::DockerArchive { path, reference } => {
            let temp = scratch_dir()?;
            let layout = Layout::create(temp.path().join("layout")).map_err(layout_err)?;
            let reader = berth_archive::DockerArchiveReader::open(path).map_err(archive_err)?;
            // Without NAME:TAG or @N the archive must hold a single image, as for skopeo and berth-copy.
            let selected = match reference {
                Some(which) => reader.select(which),
                None => reader.only(),
            }
            .map_err(archive_err)?;
            berth_archive::import_docker_archive(
                &reader,
                selected,
                &layout,
                Some("imported"),
                media_type::Compression::None,
            )
            .map_err(archive_err)?;
            let image = layout.load_image(Some("imported"), platform).map_err(layout_err)?;
            (layout, image, Some(temp))
        }
        ImageRef::Docker(name) => {
            return Err(RunError::Unsupported {
                image: label,
                reason: format!(
                    "a registry image is not opened directly; pull it into the store first (berth_run::pull::pull, \
                     or `skopeo copy docker://{name} oci:{}:{}`) and open it by name",
                    store.display(),
                    name.familiar()
                ),
            });
        }
    };
    Ok(OpenedImage {
        label,
        layout,
        image,
        _temp: temp,
    })
}
