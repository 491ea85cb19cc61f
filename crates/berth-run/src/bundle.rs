//! `berth-run bundle IMAGE DIR`: an OCI runtime bundle (`config.json` + `rootfs/`) that runc and crun run as is.

use std::io::Read;
use std::path::{Path, PathBuf};

use berth_sandbox::tree_copy::CopyStats;
use berth_sandbox::{ContainerSetup, SpecOptions, prepare_container};
use berth_spec::Digest;
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;

use crate::RunError;
use crate::source::open_image;
use berth_sandbox::overlay::build_rootfs_copy;
use berth_spec::io_context::IoContext;

/// What to make a bundle of, and how.
#[derive(Debug, Clone)]
pub struct BundleRequest<'a> {
    /// The image.
    pub image: &'a ImageRef,
    /// The default store, for bare image names.
    pub store: &'a Path,
    /// The runner's cache directory (extracted layers, scratch space).
    pub cache: &'a Path,
    /// The platform to pick from a multi-platform image.
    pub platform: &'a Platform,
    /// The container's options.
    pub options: &'a SpecOptions,
    /// Told about each layer extracted into the cache (`&()` for nothing).
    pub progress: &'a dyn berth_layer::apply::ExtractProgress,
}

/// What [`create_bundle`] made.
#[derive(Debug, Clone)]
pub struct BundleReport {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The image's manifest digest.
    pub manifest_digest: Digest,
    /// The container id generated for it (its first 12 characters are the default hostname).
    pub container_id: String,
    /// Layers stacked.
    pub layers: usize,
    /// What copying the layers into `rootfs/` did.
    pub copy: CopyStats,
}

/// Writes the bundle of `request` into `dir`, which must not exist or be empty.
///
/// Every layer is extracted once into the layer cache (blob digests and diffIDs verified), then merged into
/// `dir/rootfs` by copy, so the bundle shares nothing with the cache and can be run, modified or deleted freely.
/// `dir/config.json` is Docker-like (see [`berth_sandbox::default_spec`]); `dir` also holds the container's
/// `hosts`, `resolv.conf`, `hostname` and volume directories, bind-mounted by absolute path. On failure nothing
/// is left in `dir`.
pub fn create_bundle(request: &BundleRequest<'_>, dir: &Path) -> Result<BundleReport, RunError> {
    let created = claim_dir(dir)?;
    let result = fill_bundle(request, dir);
    if result.is_err() {
        let cleanup = if created {
            berth_layer::apply::remove_dir_all_forcing(dir)
        } else {
            empty_dir(dir)
        };
        if let Err(e) = cleanup {
            tracing::warn!(dir = %dir.display(), "could not clean up the failed bundle: {e}");
        }
    }
    result
}

fn fill_bundle(request: &BundleRequest<'_>, dir: &Path) -> Result<BundleReport, RunError> {
    let dir = std::fs::canonicalize(dir).at("resolve", dir)?;
    // First: it makes the cache private, or refuses it, before any scratch file goes there.
    let store = crate::layers::open_cache(request.cache)?;
    let opened = open_image(
        request.image,
        request.store,
        &request.cache.join("tmp"),
        request.platform,
    )?;
    // Held until the layers are copied: no record names them, so only this keeps `berth-run gc` from emptying a
    // layer in the middle of the copy.
    let hold = store.hold()?;
    let layers = crate::layers::ensure_image(&store, &opened, request.progress)?;

    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).at("create", &rootfs)?;
    let copy = build_rootfs_copy(&layers, &rootfs)?;
    drop(hold);
    if copy.skipped_owners > 0 || copy.skipped_xattrs > 0 {
        tracing::warn!(
            owners = copy.skipped_owners,
            xattrs = copy.skipped_xattrs,
            "some file owners or extended attributes could not be set in the bundle (not running as root?)"
        );
    }

    let container_id = new_container_id()?;
    let spec = prepare_container(&ContainerSetup {
        image_name: &opened.label,
        image: opened.image.config.parsed(),
        rootfs: &rootfs,
        root_path: Path::new("rootfs"),
        container_dir: &dir,
        container_id: &container_id,
        options: request.options,
    })?;
    let json = serde_json::to_vec_pretty(&spec).expect("a runtime spec serializes");
    berth_sandbox::etc_files::write_atomically(&dir.join("config.json"), &json)?;
    Ok(BundleReport {
        manifest_digest: opened.manifest_digest().clone(),
        dir,
        container_id,
        layers: layers.len(),
        copy,
    })
}

/// Creates `dir`, or accepts it when it is an empty directory. Returns whether it was created.
fn claim_dir(dir: &Path) -> Result<bool, RunError> {
    let refuse = |reason: &str| RunError::BundleDir {
        dir: dir.to_owned(),
        reason: reason.to_owned(),
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Private: rootfs/ below holds the image's setuid programs and device nodes (HOSTILE-INPUTS 37).
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).at("create", parent)?;
            }
            std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
                .create(dir)
                .at("create", dir)?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .at("make private", dir)?;
            Ok(true)
        }
        Err(e) => Err(e).at("inspect", dir).map_err(Into::into),
        Ok(m) if !m.is_dir() => Err(refuse("it exists and is not a directory; choose a new path")),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).at("read", dir)?;
            if entries.next().is_some() {
                return Err(refuse("it is not empty; choose a new or empty directory"));
            }
            // Private, as a new one: rootfs/ will hold setuid programs and device nodes (HOSTILE-INPUTS 37).
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .at("make private", dir)?;
            Ok(false)
        }
    }
}

fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            berth_layer::apply::remove_dir_all_forcing(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// 32 random bytes in hex, as Docker's container ids.
pub fn new_container_id() -> Result<String, RunError> {
    let mut bytes = [0u8; 32];
    let path = Path::new("/dev/urandom");
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .at("read", path)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
