//! Making a container: the image's layers from the cache stacked with overlayfs (or copied), the runtime spec, and
//! the record in the state directory.

use std::path::{Path, PathBuf};

use berth_sandbox::{ContainerSetup, SpecOptions, prepare_container};
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;

use crate::signals::parse_signal;
use crate::source::open_image;
use crate::state::{ContainerRecord, RootfsKind, StateDir, validate_name};
use crate::{RunError, new_container_id};
use berth_sandbox::overlay::{build_rootfs_copy, prepare_rootfs_overlay, unmount_overlay};
use berth_spec::io_context::IoContext;

/// What to make a container of.
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    /// The image.
    pub image: &'a ImageRef,
    /// The default store, for bare image names.
    pub store: &'a Path,
    /// The runner's cache directory.
    pub cache: &'a Path,
    /// The platform to pick from a multi-platform image.
    pub platform: &'a Platform,
    /// The container's options.
    pub options: &'a SpecOptions,
    /// `--name`.
    pub name: Option<&'a str>,
    /// `--rm`.
    pub auto_remove: bool,
    /// Told about each layer extracted into the cache (`&()` for nothing).
    pub progress: &'a dyn berth_layer::apply::ExtractProgress,
}

/// Creates a container: its directory, root filesystem (mounted), runtime spec and record (status `created`).
/// On failure nothing of it is left.
pub fn create_container(state: &StateDir, request: &CreateRequest<'_>) -> Result<ContainerRecord, RunError> {
    if let Some(name) = request.name {
        validate_name(name)?;
    }
    check_rootless_limits(state, request.options)?;
    // First: it makes the cache private, or refuses it, before any scratch file goes there.
    let store = crate::layers::open_cache(request.cache)?;
    let opened = open_image(
        request.image,
        request.store,
        &request.cache.join("tmp"),
        request.platform,
    )?;
    // Keeps `berth-run gc` from removing the layers between extraction and the record naming them.
    let hold = store.hold()?;
    let layers = crate::layers::ensure_image(&store, &opened, request.progress)?;
    let config = opened.image.config.parsed();
    let diff_ids: Vec<String> = config.rootfs().diff_ids().iter().take(layers.len()).cloned().collect();
    let image_stop_signal = config.config().as_ref().and_then(|c| c.stop_signal().clone());
    let stop_signal = match image_stop_signal.as_deref().filter(|s| !s.is_empty()) {
        None => 15,
        Some(name) => parse_signal(name).unwrap_or_else(|| {
            eprintln!(
                "berth-run: warning: image {} has StopSignal {name:?}, which is no signal; `stop` will send SIGTERM",
                opened.label
            );
            15
        }),
    };

    let id = new_container_id()?;
    let dir = state.container_dir(&id);
    let record = state.claim(&id, request.name, |base| ContainerRecord {
        image: opened.label.clone(),
        image_digest: opened.manifest_digest().to_string(),
        layers: diff_ids,
        auto_remove: request.auto_remove,
        stop_signal,
        tty: request.options.terminal,
        ..base
    })?;
    drop(hold);

    let result = fill(state, &record, &opened, &layers, request.options);
    match result {
        Ok(record) => Ok(record),
        Err(e) => {
            let _ = unmount_overlay(&dir.join("rootfs"));
            if let Err(cleanup) = berth_layer::apply::remove_dir_all_forcing(&dir) {
                tracing::warn!(dir = %dir.display(), "could not remove the failed container: {cleanup}");
            }
            Err(e)
        }
    }
}

/// Rootless: no cgroup, so a limit the user asked for is refused rather than ignored.
fn check_rootless_limits(state: &StateDir, options: &SpecOptions) -> Result<(), RunError> {
    if !crate::rootless::without_cgroups() {
        return Ok(());
    }
    let asked: Vec<&str> = [
        ("--memory", options.memory.is_some()),
        ("--cpus", options.cpus.is_some()),
        ("--pids-limit", options.pids_limit.is_some_and(|p| p > 0)),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if let Some(flag) = asked.first() {
        return Err(RunError::option(
            *flag,
            format!(
                "resource limits need a cgroup, and rootless containers have none here ({}); run as root",
                crate::rootless::no_cgroup_reason()
            ),
        ));
    }
    crate::rootless::note_no_cgroups(state.root());
    Ok(())
}

fn fill(
    state: &StateDir,
    record: &ContainerRecord,
    opened: &crate::source::OpenedImage,
    layers: &[PathBuf],
    options: &SpecOptions,
) -> Result<ContainerRecord, RunError> {
    let dir = &record.bundle;
    let rootfs = dir.join("rootfs");
    let kind = mount_rootfs(layers, dir, record.auto_remove)?;
    let spec = prepare_container(&ContainerSetup {
        image_name: &opened.label,
        image: opened.image.config.parsed(),
        rootfs: &rootfs,
        root_path: Path::new("rootfs"),
        container_dir: dir,
        container_id: &record.id,
        options,
    })?;
    let mut spec = spec;
    if let Some(linux) = spec.linux_mut() {
        // libcontainer's default (":youki:ID") is a systemd slice name; Berth manages cgroups itself.
        linux.set_cgroups_path(Some(cgroups_path(&record.id)));
        if crate::rootless::without_cgroups() {
            // No cgroup to apply device rules or limits to (limits were refused before).
            linux.set_resources(None);
        }
    }
    if crate::rootless::is_rootless() {
        clamp_rlimits(&mut spec);
        crate::rootless::adjust_spec(&mut spec);
    }
    let json = serde_json::to_vec_pretty(&spec).expect("a runtime spec serializes");
    berth_sandbox::etc_files::write_atomically(&dir.join("config.json"), &json)?;
    let command = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    state.update(&record.id, |r| {
        r.rootfs = kind;
        r.command = command;
    })
}

/// A user cannot raise a hard limit: rootless, each rlimit is lowered to what this process has.
fn clamp_rlimits(spec: &mut oci_spec::runtime::Spec) {
    let Some(process) = spec.process_mut() else { return };
    let Some(limits) = process.rlimits().clone() else {
        return;
    };
    let clamped = limits
        .into_iter()
        .map(|l| {
            let own = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            match own.maximum {
                Some(max) if l.typ() == oci_spec::runtime::PosixRlimitType::RlimitNofile && l.hard() > max => {
                    oci_spec::runtime::PosixRlimitBuilder::default()
                        .typ(l.typ())
                        .hard(max)
                        .soft(l.soft().min(max))
                        .build()
                        .unwrap_or(l)
                }
                _ => l,
            }
        })
        .collect();
    process.set_rlimits(Some(clamped));
}

/// The cgroup of container `id` (under each v1 hierarchy, or in the v2 tree).
pub fn cgroups_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/berth/{id}"))
}

/// Mounts the overlay of `layers` at `dir/rootfs` (upper and work directories beside it; `throwaway`: a `--rm`
/// container's, deleted after one run); where overlayfs is not available, copies the layers there instead.
pub fn mount_rootfs(layers: &[PathBuf], dir: &Path, throwaway: bool) -> Result<RootfsKind, RunError> {
    let rootfs = dir.join("rootfs");
    if layers.is_empty() {
        std::fs::create_dir_all(&rootfs).at("create", &rootfs)?;
        return Ok(RootfsKind::Copy);
    }
    match prepare_rootfs_overlay(
        layers,
        &dir.join("upper"),
        &dir.join("work"),
        &rootfs,
        crate::rootless::is_rootless(),
        throwaway,
    ) {
        // The mount stays until the container is cleaned up; the record says how to undo it.
        Ok(_mounted) => Ok(RootfsKind::Overlay),
        Err(berth_sandbox::SandboxError::Overlay { reason, .. }) => {
            tracing::warn!("overlayfs is not available ({reason}); copying the image's layers instead");
            for d in ["upper", "work"] {
                let _ = berth_layer::apply::remove_dir_all_forcing(dir.join(d));
            }
            std::fs::create_dir_all(&rootfs).at("create", &rootfs)?;
            build_rootfs_copy(layers, &rootfs)?;
            Ok(RootfsKind::Copy)
        }
        Err(e) => Err(e.into()),
    }
}

/// Records a container for an existing OCI runtime bundle (`run --bundle DIR`), used in place: its
/// `config.json` says what to run and its root filesystem is not copied. On failure nothing is recorded.
pub fn create_from_bundle(
    state: &StateDir,
    bundle: &Path,
    name: Option<&str>,
    auto_remove: bool,
) -> Result<ContainerRecord, RunError> {
    if let Some(name) = name {
        validate_name(name)?;
    }
    let bundle_err = |reason: String| RunError::BundleDir {
        dir: bundle.to_owned(),
        reason,
    };
    let bundle = std::fs::canonicalize(bundle).map_err(|e| bundle_err(format!("cannot open it: {e}")))?;
    let config = bundle.join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config)
        .map_err(|e| bundle_err(format!("config.json cannot be read as an OCI runtime spec: {e}")))?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| bundle_err("config.json has no root; it must name the root filesystem".into()))?;
    let rootfs = if root.is_absolute() { root } else { bundle.join(root) };
    if !rootfs.is_dir() {
        return Err(bundle_err(format!(
            "its root filesystem {} is not a directory",
            rootfs.display()
        )));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bundle_err("config.json has no process; it must say what to run".into()))?;
    let id = new_container_id()?;
    state.claim(&id, name, |base| ContainerRecord {
        image: bundle.display().to_string(),
        command: process.args().clone().unwrap_or_default(),
        rootfs: RootfsKind::Bundle,
        bundle: bundle.clone(),
        auto_remove,
        tty: process.terminal().unwrap_or(false),
        ..base
    })
}
