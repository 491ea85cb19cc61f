//! Root filesystems from the layer cache: the overlay mount for `run`, the merged copy for bundles, and both
//! agreeing on whiteouts; layers extracted once; every image transport.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_run::source::open_image;
use berth_sandbox::overlay::{prepare_rootfs_overlay, unmount_overlay};
use berth_spec::platform::Platform;
use berth_spec::reference::ImageRef;
use berth_testkit::image::TarBuilder;
use serde_json::json;

use crate::support::Env;

/// busybox, then a layer deleting `/bin/rm`, making `/etc` opaque with a new `motd`, and adding `/srv/new`.
fn whiteout_image(env: &Env) -> String {
    let upper = TarBuilder::new()
        .dir("bin", 0o755)
        .file("bin/.wh.rm", 0o644, b"")
        .dir("etc", 0o755)
        .file("etc/.wh..wh..opq", 0o644, b"")
        .file("etc/motd", 0o644, b"upper\n")
        .dir("srv", 0o755)
        .file("srv/new", 0o600, b"new\n")
        .finish();
    env.image("whiteouts:1", json!({"Cmd": ["sh"]}), vec![upper])
}

/// Every path under `root`, relative.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().to_owned());
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = unmount_overlay(&self.0);
    }
}

#[test]
fn overlay_mount_and_bundle_copy_agree() {
    let env = Env::new();
    let image = whiteout_image(&env);
    let reference = ImageRef::parse(&image).unwrap();
    let opened = open_image(&reference, env.layout.root(), &env.path("scratch"), &Platform::host()).unwrap();
    let layers =
        berth_run::layers::ensure_image(&berth_run::layers::open_cache(&env.cache()).unwrap(), &opened, &()).unwrap();
    assert_eq!(layers.len(), 2);

    let (upper, work, target) = (env.path("upper"), env.path("work"), env.path("merged"));
    let mount = prepare_rootfs_overlay(&layers, &upper, &work, &target, false, false).unwrap();
    let guard = Mounted(target.clone());
    assert!(target.join("bin/sh").exists());
    assert!(!target.join("bin/rm").exists(), "the whiteout hides /bin/rm");
    let etc: Vec<_> = std::fs::read_dir(target.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(etc, ["motd"], "the opaque /etc hides the lower passwd and group");
    std::fs::write(target.join("written"), "w").unwrap();
    assert!(upper.join("written").exists(), "writes land in the upper directory");
    assert!(
        layers.iter().all(|l| !l.join("written").exists()),
        "the cache is never written"
    );
    let merged = tree(&target);

    let bundle = env.bundle_ok(&[], &image, &["sh", "-c", "ls /bin/rm; cat /etc/motd /srv/new"]);
    let mut copied = tree(&bundle.join("rootfs"));
    copied.insert("written".into());
    // The mount points of the files Berth mounts into /etc are made in the bundle's root, as runc would make them.
    for point in ["etc/hostname", "etc/hosts", "etc/resolv.conf"] {
        assert!(
            copied.remove(Path::new(point)),
            "{point} is a mount point in the bundle"
        );
    }
    assert_eq!(
        copied, merged,
        "the bundle's copy and the overlay mount show the same tree"
    );

    std::mem::forget(guard);
    mount.unmount().unwrap();
    assert!(tree(&target).is_empty(), "unmounted");

    let ran = env.runc(&bundle);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "upper\nnew\n"), "{ran:?}");
    assert!(ran.stderr.contains("/bin/rm: No such file"), "{ran:?}");
}

#[test]
fn layers_are_extracted_once_and_shared() {
    let env = Env::new();
    let busybox = env.busybox();
    let first = env.bundle_ok(&[], busybox, &["true"]);
    let layer_dir = env.cache().join("overlay/layers/sha256");
    let inodes = |dir: &Path| -> Vec<(String, u64)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::os::unix::fs::MetadataExt::ino(&e.metadata().unwrap()),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = inodes(&layer_dir);
    assert_eq!(before.len(), 1);
    let second = env.bundle_ok(&["--hostname", "again"], busybox, &["true"]);
    assert_eq!(inodes(&layer_dir), before, "a cached layer is not extracted again");
    whiteout_image(&env);
    env.bundle_ok(&[], "whiteouts:1", &["true"]);
    assert_eq!(inodes(&layer_dir).len(), 2, "the busybox layer is shared");

    // Bundles share nothing with the cache or with each other.
    std::fs::write(first.join("rootfs/bin/sh"), "clobbered").unwrap();
    assert_ne!(std::fs::read(second.join("rootfs/bin/sh")).unwrap(), b"clobbered");
    assert_eq!(env.runc(&second).code, 0);

    // Concurrent bundles of one image.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| env.bundle_ok(&[], busybox, &["true"])))
            .collect();
        for h in handles {
            assert_eq!(env.runc(&h.join().unwrap()).code, 0);
        }
    });
}

#[test]
fn every_local_transport() {
    let env = Env::new();
    env.busybox();
    let store = env.layout.root().display().to_string();
    let oci = format!("oci:{store}:busybox:1");
    assert_eq!(env.run_ok(&[], &oci, &["echo", "oci"]), "oci\n");

    let archive = env.path("busybox.tar");
    berth_archive::write_oci_archive(env.layout.root(), &archive).unwrap();
    let oci_archive = format!("oci-archive:{}:busybox:1", archive.display());
    assert_eq!(env.run_ok(&[], &oci_archive, &["echo", "archive"]), "archive\n");

    // Never pulls from the network: an image absent from the store is an error with --pull never.
    let err = env.bundle_err(&["--pull", "never"], "docker://busybox", &[]);
    assert!(err.contains("--pull=never"), "{err}");
    let err = env.bundle_err(&[], &format!("oci:{store}:nope"), &[]);
    assert!(err.contains("nope"), "{err}");
}

/// A `--rm` container's root overlay is `volatile` (its upper directory is deleted after one run, so it is never
/// synced); a container kept after it stops is not.
#[test]
fn only_throwaway_containers_get_a_volatile_overlay() {
    let env = Env::new();
    let root_options = |mountinfo: &str| -> String {
        mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap_or_else(|| panic!("no / in {mountinfo}"))
            .to_owned()
    };
    let once = env.berth_ok(&["run", "--rm", env.busybox(), "cat", "/proc/self/mountinfo"]);
    let line = root_options(&once);
    assert!(line.contains(" overlay ") && line.contains("volatile"), "{line}");

    let kept = env.berth_ok(&["run", "--name", "kept", env.busybox(), "cat", "/proc/self/mountinfo"]);
    let line = root_options(&kept);
    assert!(line.contains(" overlay ") && !line.contains("volatile"), "{line}");
    env.berth_ok(&["rm", "kept"]);
}
