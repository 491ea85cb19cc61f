//! Root filesystems from cached layers (extracted in overlayfs form, see `berth_layer::apply::LayerCache`): an
//! overlay mount whose writes go to an upper directory (a container's root, or a build step whose upper directory
//! becomes its layer), or a self-contained copy.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::tree_copy::{CopyStats, merge_overlay_layer};
use berth_spec::io_context::IoContext;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
};

/// Builds a root filesystem in the existing empty directory `dest` by merging the layer directories (bottom
/// first, in overlayfs form) one over the other, whiteouts applied. The result shares nothing with the cache.
pub fn build_rootfs_copy(layers: &[PathBuf], dest: &Path) -> Result<CopyStats, SandboxError> {
    let mut total = CopyStats::default();
    for layer in layers {
        let s = merge_overlay_layer(layer, dest)?;
        total.files += s.files;
        total.dirs += s.dirs;
        total.symlinks += s.symlinks;
        total.hardlinks += s.hardlinks;
        total.specials += s.specials;
        total.bytes += s.bytes;
        total.whiteouts += s.whiteouts;
        total.skipped_sockets += s.skipped_sockets;
        total.skipped_xattrs += s.skipped_xattrs;
        total.skipped_owners += s.skipped_owners;
    }
    Ok(total)
}

/// An overlay mount made by [`prepare_rootfs_overlay`]. It stays mounted until [`OverlayMount::unmount`] (dropping
/// this does not unmount: the container may outlive the process that mounted it).
#[derive(Debug)]
#[must_use = "the overlay stays mounted until unmount() is called"]
pub struct OverlayMount {
    target: PathBuf,
}

impl OverlayMount {
    /// The mount point.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts the overlay.
    pub fn unmount(self) -> Result<(), SandboxError> {
        unmount_overlay(&self.target)
    }
}

/// Unmounts an overlay mounted at `target` (for instance by an earlier process).
pub fn unmount_overlay(target: &Path) -> Result<(), SandboxError> {
    rustix::mount::unmount(target, UnmountFlags::empty()).map_err(|e| SandboxError::Overlay {
        target: target.to_owned(),
        reason: format!("cannot unmount: {e}"),
    })
}

/// Mounts an overlay of the layer directories `layers` (bottom first, extracted in overlayfs form) at `target`,
/// with writes going to `upper` (and `work`, overlayfs's scratch directory on the same file system). Missing
/// directories are created. The layers carry `trusted.overlay.*` xattrs (root, in the initial user namespace) or
/// `user.overlay.*` ones (in a user namespace: `user_xattr`, and the mount then uses `userxattr`).
///
/// Uses the new mount API with one `lowerdir+` per layer (no length limit, no escaping of `:` or `,`), and falls
/// back to `mount(2)` with a `lowerdir=` option string on kernels older than 6.8.
///
/// `throwaway`: the upper directory is deleted after one use (`run --rm`), so the mount is `volatile` where the
/// kernel has it (5.10): overlayfs then skips syncing the upper file system, at every `sync` in the container and at
/// unmount (about half a millisecond). After a crash such an upper directory cannot be mounted again; it is never
/// meant to be.
pub fn prepare_rootfs_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    user_xattr: bool,
    throwaway: bool,
) -> Result<OverlayMount, SandboxError> {
    let volatile: &[(&str, &str)] = if throwaway { &[VOLATILE] } else { &[] };
    mount_overlay(layers, upper, work, target, user_xattr, volatile)
}

/// The `volatile` flag, among the key-value options (it takes no value).
const VOLATILE: (&str, &str) = ("volatile", "");

/// [`prepare_rootfs_overlay`] for a build step, whose upper directory becomes a layer: with `redirect_dir=off`
/// and `metacopy=off`, so that everything the step changed is whole in the upper directory (a renamed directory is
/// copied, a file whose metadata changed carries its data) and the layer can be made from it alone.
pub fn prepare_layer_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    user_xattr: bool,
) -> Result<OverlayMount, SandboxError> {
    mount_overlay(
        layers,
        upper,
        work,
        target,
        user_xattr,
        &[("redirect_dir", "off"), ("metacopy", "off")],
    )
}

fn mount_overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    user_xattr: bool,
    options: &[(&str, &str)],
) -> Result<OverlayMount, SandboxError> {
    let fail = |reason: String| SandboxError::Overlay {
        target: target.to_owned(),
        reason,
    };
    if layers.is_empty() {
        return Err(fail(
            "the image has no layers; overlayfs needs at least one lower directory".into(),
        ));
    }
    for dir in [upper, work, target] {
        std::fs::create_dir_all(dir).at("create", dir)?;
    }
    match mount_new_api(layers, upper, work, target, user_xattr, options) {
        Ok(()) => {}
        Err((Errno::NOSYS, _)) | Err((Errno::INVAL, None)) => {
            mount_legacy(layers, upper, work, target, user_xattr, options)?
        }
        Err((e, message)) => {
            return Err(fail(format!(
                "{e}{}",
                message.map(|m| format!(" ({m})")).unwrap_or_default()
            )));
        }
    }
    Ok(OverlayMount {
        target: target.to_owned(),
    })
}

/// The kernel's own explanation of a failed `fsconfig`, read from the file-system context.
fn kernel_message(fs: &OwnedFd) -> Option<String> {
    let mut buf = [0u8; 1024];
    let n = rustix::io::read(fs, &mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Some(text.trim().trim_start_matches("e ").to_owned()).filter(|s| !s.is_empty())
}

/// `fsopen`/`fsconfig`/`fsmount`/`move_mount`. An `EINVAL` for `lowerdir+` itself (an older kernel) comes back
/// without a message so the caller falls back.
fn mount_new_api(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    user_xattr: bool,
    options: &[(&str, &str)],
) -> Result<(), (Errno, Option<String>)> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| (e, None))?;
    let with_message = |e: Errno| (e, kernel_message(&fs));
    for (i, layer) in layers.iter().rev().enumerate() {
        if let Err(e) = fsconfig_set_string(fs.as_fd(), "lowerdir+", layer.as_path()) {
            return Err(if i == 0 && e == Errno::INVAL {
                (e, None)
            } else {
                with_message(e)
            });
        }
    }
    fsconfig_set_string(fs.as_fd(), "upperdir", upper).map_err(with_message)?;
    fsconfig_set_string(fs.as_fd(), "workdir", work).map_err(with_message)?;
    if user_xattr {
        fsconfig_set_flag(fs.as_fd(), "userxattr").map_err(with_message)?;
    }
    for &(key, value) in options {
        if (key, value) == VOLATILE {
            // An optimisation only: a kernel without it mounts the overlay without it.
            if let Err(e) = fsconfig_set_flag(fs.as_fd(), key) {
                tracing::debug!("overlayfs has no volatile option here: {e}");
            }
        } else {
            fsconfig_set_string(fs.as_fd(), key, value).map_err(with_message)?;
        }
    }
    fsconfig_create(fs.as_fd()).map_err(with_message)?;
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).map_err(with_message)?;
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| (e, None))
}

/// `mount(2)` with `lowerdir=TOP:…:BOTTOM,upperdir=…,workdir=…`, which cannot hold paths with `:`, `,` or `\`
/// and is limited to one page.
fn mount_legacy(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    user_xattr: bool,
    options: &[(&str, &str)],
) -> Result<(), SandboxError> {
    let fail = |reason: String| SandboxError::Overlay {
        target: target.to_owned(),
        reason,
    };
    let all = layers.iter().map(PathBuf::as_path).chain([upper, work]);
    for p in all {
        if p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b':' | b',' | b'\\'))
        {
            return Err(fail(format!(
                "{} contains ':', ',' or '\\', which this kernel's overlay options cannot express",
                p.display()
            )));
        }
    }
    let lower: Vec<String> = layers.iter().rev().map(|p| p.display().to_string()).collect();
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if user_xattr {
        data.push_str(",userxattr");
    }
    // `volatile` is left out here: kernels old enough to need this path may not have it.
    for (key, value) in options.iter().filter(|o| **o != VOLATILE) {
        data.push_str(&format!(",{key}={value}"));
    }
    if data.len() >= 4096 {
        return Err(fail(format!(
            "{} layers make a {}-byte option string, above the one-page limit of this kernel's mount(2); \
             a kernel with overlayfs lowerdir+ (6.8 or later) has no such limit",
            layers.len(),
            data.len()
        )));
    }
    let data = CString::new(data).map_err(|_| fail("a path contains a NUL byte".into()))?;
    rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), data.as_c_str())
        .map_err(|e| fail(format!("mount(2) failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both mount paths (the new API and the `mount(2)` fallback) stack layers top first.
    #[test]
    fn both_mount_paths_stack_top_first() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: overlay mounts need root here");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (lower, upper_layer) = (t.path().join("l0"), t.path().join("l1"));
        for (dir, text) in [(&lower, "bottom"), (&upper_layer, "top")] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("f"), text).unwrap();
            std::fs::write(dir.join(text), "").unwrap();
        }
        let layers = [lower, upper_layer];
        for legacy in [false, true] {
            let base = t.path().join(if legacy { "legacy" } else { "new" });
            let (upper, work, target) = (base.join("upper"), base.join("work"), base.join("merged"));
            let mount = if legacy {
                for d in [&upper, &work, &target] {
                    std::fs::create_dir_all(d).unwrap();
                }
                mount_legacy(&layers, &upper, &work, &target, false, &[]).unwrap();
                OverlayMount { target: target.clone() }
            } else {
                prepare_rootfs_overlay(&layers, &upper, &work, &target, false, true).unwrap()
            };
            let content = std::fs::read_to_string(target.join("f"));
            let both = target.join("top").exists() && target.join("bottom").exists();
            mount.unmount().unwrap();
            assert_eq!(content.unwrap(), "top", "legacy: {legacy}");
            assert!(both, "legacy: {legacy}");
        }
        let err = prepare_rootfs_overlay(
            &[],
            &t.path().join("u"),
            &t.path().join("w"),
            &t.path().join("m"),
            false,
            false,
        );
        assert!(err.unwrap_err().to_string().contains("no layers"));
    }
}
