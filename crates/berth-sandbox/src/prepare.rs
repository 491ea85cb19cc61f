//! From an image config and its unpacked root filesystem to a container's runtime spec.

use std::path::{Path, PathBuf};

use berth_spec::runtime_config::{ImageRuntimeConfig, convert_with_host_env, resolve_user};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Mount, Spec};

use crate::mount_dest::{Origin, resolve_destination};
use crate::options::{NetMode, SpecOptions, VolumeBacking};
use crate::rootfs::RootFs;
use crate::spec::{SpecParts, default_spec};
use crate::{SandboxError, etc_files, exec_check, mounts, tree_copy};
use berth_spec::io_context::IoContext;

/// Annotation set when `HOME` was not given and Berth set it from the user's passwd entry (or `/`).
pub const HOME_COMPUTED_ANNOTATION: &str = "dev.berth.home-computed";

/// Annotation namespaces that runtimes and their shims act on: crun reads `run.oci.*` (hooks, handlers, cgroup
/// delegation), runc turns `org.systemd.property.*` into systemd unit properties, and Kata, CRI-O, containerd,
/// gVisor and NVIDIA's hook read theirs; `dev.berth.*` is Berth's own. An image's labels become annotations (the
/// image spec's conversion says so), but an image must not steer the runtime through them: labels in these
/// namespaces are dropped, and only the user's `--annotation` may set them.
pub const RUNTIME_ANNOTATION_PREFIXES: &[&str] = &[
    "run.oci.",
    "org.systemd.property.",
    "org.opencontainers.runc.",
    "io.katacontainers.",
    "io.kubernetes.cri-o.",
    "io.containerd.",
    "dev.gvisor.",
    "io.kubernetes.cri.",
    "com.nvidia.",
    "nvidia.com/",
    "dev.berth.",
];

/// Whether an annotation key is in a namespace a runtime acts on ([`RUNTIME_ANNOTATION_PREFIXES`]).
pub fn is_runtime_annotation(key: &str) -> bool {
    RUNTIME_ANNOTATION_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// One container to prepare.
#[derive(Debug, Clone, Copy)]
pub struct ContainerSetup<'a> {
    /// The image as the user named it, for messages.
    pub image_name: &'a str,
    /// The image's config.
    pub image: &'a ImageConfiguration,
    /// The container's root filesystem, already unpacked (a writable copy or an overlay mount).
    pub rootfs: &'a Path,
    /// `root.path` to write into the spec: `rootfs` for a bundle, or an absolute path.
    pub root_path: &'a Path,
    /// A directory owned by this container: `/etc/hosts`, `resolv.conf`, `hostname` and volume directories go here.
    pub container_dir: &'a Path,
    /// The container's id; its first 12 characters are the default hostname.
    pub container_id: &'a str,
    /// What the user asked for.
    pub options: &'a SpecOptions,
}

/// Prepares a container: converts the image config with the user's overrides, checks the root filesystem
/// (HOSTILE-INPUTS 28–32), resolves the user in-root, creates a missing working directory, writes `/etc/hosts`,
/// `/etc/resolv.conf` and `/etc/hostname`, sets up the image's volumes, and builds the runtime spec.
pub fn prepare_container(setup: &ContainerSetup<'_>) -> Result<Spec, SandboxError> {
    let image_err = |source| SandboxError::Image {
        image: setup.image_name.to_owned(),
        source,
    };
    let converted =
        convert_with_host_env(setup.image, &setup.options.overrides, |k| std::env::var(k).ok()).map_err(image_err)?;
    let rootfs = RootFs::open(setup.rootfs, setup.image_name)?;
    rootfs.check_special_dirs()?;
    // The user's mounts, each at its destination resolved inside the image (HOSTILE-INPUTS 41).
    let mut resolved_opts = setup.options.clone();
    for m in &mut resolved_opts.mounts {
        let to = resolve_destination(&rootfs, m.destination(), Origin::User(&m.describe()))?;
        m.set_destination(to);
    }
    let opts = &resolved_opts;
    let (passwd, group) = rootfs.account_files()?;
    let user = resolve_user(&converted.user, &passwd, &group).map_err(image_err)?;
    // HOME as runc and Docker set it when neither the image nor the user did: the passwd entry's, else `/`.
    // Marked, so that `exec -u` can recompute it for its user.
    let mut converted = converted;
    let dropped: Vec<String> = converted
        .annotations
        .keys()
        .filter(|k| is_runtime_annotation(k))
        .cloned()
        .collect();
    for key in &dropped {
        tracing::warn!(image = setup.image_name, label = %key, "image label not passed to the runtime: its namespace steers runtimes");
        converted.annotations.remove(key);
    }
    if !converted.env.iter().any(|e| e.starts_with("HOME=")) {
        converted.env.push(format!(
            "HOME={}",
            berth_spec::runtime_config::home_of(&passwd, &converted.user.user)
        ));
        converted
            .annotations
            .insert(HOME_COMPUTED_ANNOTATION.to_owned(), "true".to_owned());
    }

    let hostname = match (&opts.hostname, opts.net) {
        (Some(name), _) => name.clone(),
        (None, NetMode::Host) => etc_files::host_hostname(),
        (None, _) => setup.container_id.chars().take(12).collect(),
    };
    etc_files::validate_hostname(&hostname)?;

    let user_dests: Vec<&str> = opts.mounts.iter().map(|m| m.destination()).collect();
    exec_check::check_command(&rootfs, &converted, &user_dests)?;
    // A working directory that leads through the image's symlinks into /proc would start the process in one of
    // the runtime's descriptors (runc CVE-2024-21626), and creating it would follow the link into the image tree.
    if rootfs
        .resolve(&converted.cwd)
        .is_ok_and(|real| crate::mount_dest::runtime_dir_of(&real) == Some("/proc"))
    {
        return Err(SandboxError::option(
            format!("working directory {}", converted.cwd),
            "it leads into /proc through the image's symlinks; choose another with -w (the image is malformed or \
             hostile)",
        ));
    }
    rootfs.ensure_dir(&converted.cwd)?;

    std::fs::create_dir_all(setup.container_dir).at("create", setup.container_dir)?;
    let mut extra = etc_files::write(setup.container_dir, &hostname, opts.net)?;
    for m in &mut extra {
        let written = m.destination().display().to_string();
        let origin = format!("Berth's {written} for the container");
        let to = resolve_destination(&rootfs, &written, Origin::Image(&origin))?;
        m.set_destination(PathBuf::from(to));
    }
    extra.extend(volume_mounts(&rootfs, &converted, setup.container_dir, opts)?);
    ensure_mount_targets(&rootfs, opts, &extra)?;

    default_spec(
        opts,
        SpecParts {
            process: converted.process(&user, opts.terminal),
            hostname,
            annotations: converted
                .annotations
                .iter()
                .chain(&opts.annotations)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            extra_mounts: extra,
            root_path: setup.root_path.to_owned(),
        },
    )
}

/// Creates the mount points of the user's mounts and of `extra` in the root filesystem, through dangling symlinks
/// too ([`RootFs::ensure_mount_target`]). The runtime's own mounts under `/proc`, `/dev` and `/sys` are its
/// business.
fn ensure_mount_targets(rootfs: &RootFs, opts: &SpecOptions, extra: &[Mount]) -> Result<(), SandboxError> {
    // A bind whose host path is missing is left for the spec builder to report (naming the host path).
    let user = opts.mounts.iter().filter_map(|m| match m {
        crate::options::MountRequest::Bind {
            source, destination, ..
        } => std::fs::metadata(source)
            .ok()
            .map(|meta| (destination.clone(), meta.is_dir())),
        crate::options::MountRequest::Tmpfs { destination, .. } => Some((destination.clone(), true)),
    });
    let extra = extra.iter().map(|m| {
        let dir = m.typ().as_deref() != Some("bind") || m.source().as_ref().is_some_and(|s| s.is_dir());
        (m.destination().display().to_string(), dir)
    });
    for (destination, dir) in user.chain(extra) {
        let first = destination
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        if matches!(first, "proc" | "dev" | "sys" | "") {
            continue;
        }
        rootfs.ensure_mount_target(&destination, dir)?;
    }
    Ok(())
}

/// A directory name for a volume: its index and its path with `/` turned into `_`.
fn volume_dir_name(index: usize, volume: &str) -> String {
    let flat: String = volume
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{index}-{flat}")
}

/// The image's volumes, except where the user mounts something: a directory under `container_dir/volumes`
/// seeded with the image's content at that path (read in-root), or a tmpfs.
fn volume_mounts(
    rootfs: &RootFs,
    converted: &ImageRuntimeConfig,
    container_dir: &Path,
    opts: &SpecOptions,
) -> Result<Vec<Mount>, SandboxError> {
    let mut out = Vec::new();
    for (index, written) in converted.volumes.iter().enumerate() {
        let written = berth_spec::runtime_config::clean_absolute(written);
        let volume = &resolve_destination(rootfs, &written, Origin::Image("a VOLUME of the image"))?;
        if opts.mounts.iter().any(|m| m.destination() == volume) {
            continue;
        }
        if opts.volumes == VolumeBacking::Tmpfs {
            out.push(mounts::mount(volume, "tmpfs", "tmpfs", &["rw", "nosuid", "nodev"]));
            continue;
        }
        let dir: PathBuf = container_dir.join("volumes").join(volume_dir_name(index, volume));
        std::fs::create_dir_all(&dir).at("create volume directory", &dir)?;
        if let Some(content) = rootfs.open_dir(volume)? {
            let dst = std::fs::File::open(&dir).at("open volume directory", &dir)?;
            let label = rootfs.path().join(volume.trim_start_matches('/'));
            tree_copy::copy_tree_fd(
                std::os::fd::AsFd::as_fd(&content),
                std::os::fd::AsFd::as_fd(&dst),
                &label,
            )?;
        }
        out.push(mounts::mount(volume, "bind", &dir, &["rbind", "rprivate"]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::volume_dir_name;

    #[test]
    fn volume_names_are_flat() {
        assert_eq!(volume_dir_name(0, "/var/lib/data"), "0-var_lib_data");
        assert_eq!(volume_dir_name(3, "/a b/ü"), "3-a_b__");
    }
}
