//! Containers over the layer cache: overlay writes stay private, cached images start without extraction,
//! concurrent runs share the cache, `gc` removes only unused layers, and `run --bundle` runs any bundle.

use std::path::Path;

use berth_testkit::image::TarBuilder;
use serde_json::{Value, json};

use crate::support::Env;

/// Names and inode numbers of the cached layer directories.
fn cached(env: &Env) -> Vec<(String, u64)> {
    let dir = env.cache().join("overlay/layers/sha256");
    let mut v: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| {
                let e = e.unwrap();
                let ino = std::os::unix::fs::MetadataExt::ino(&e.metadata().unwrap());
                (e.file_name().into_string().unwrap(), ino)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn extra_image(env: &Env) -> String {
    let layer = TarBuilder::new()
        .dir("srv", 0o755)
        .file("srv/extra", 0o644, b"extra\n")
        .finish();
    env.image("extra:1", json!({"Cmd": ["cat", "/srv/extra"]}), vec![layer])
}

#[test]
fn overlay_writes_stay_private_and_cached_images_are_not_extracted_again() {
    let env = Env::new();
    let image = env.busybox();
    env.berth_ok(&[
        "run",
        "-d",
        "--name",
        "a",
        image,
        "sh",
        "-c",
        "echo mine > /bin/sh-copy; rm /bin/ls; sleep 1000",
    ]);
    env.berth_ok(&["run", "-d", "--name", "b", image, "sleep", "1000"]);
    let layers = cached(&env);
    assert_eq!(layers.len(), 1);
    // Wait for a's writes, then look from b.
    let start = std::time::Instant::now();
    while env.berth_out(&["exec", "a", "cat", "/bin/sh-copy"]).stdout != "mine\n" {
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(env.berth_out(&["exec", "a", "sh", "-c", "test -e /bin/ls"]).code, 1);
    assert_eq!(
        env.berth_ok(&[
            "exec",
            "b",
            "sh",
            "-c",
            "test -e /bin/ls && ! test -e /bin/sh-copy && echo clean"
        ]),
        "clean\n"
    );
    let cache_layer = env.cache().join("overlay/layers/sha256").join(&layers[0].0);
    assert!(
        cache_layer.join("bin/ls").exists(),
        "the cache is never written through a container"
    );
    env.berth_ok(&["rm", "-f", "a", "b"]);
    // A second run finds every layer cached: same directories, nothing extracted.
    assert_eq!(env.berth_ok(&["run", "--rm", image, "echo", "warm"]), "warm\n");
    assert_eq!(cached(&env), layers);
}

#[test]
fn concurrent_runs_share_the_cache() {
    let env = Env::new();
    let image = env.busybox();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let env = &env;
                s.spawn(move || env.run_berth(&[], image, &["sh", "-c", &format!("echo {i}")]))
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let ran = h.join().unwrap();
            assert_eq!((ran.code, ran.stdout.clone()), (0, format!("{i}\n")), "{ran:?}");
        }
    });
    assert_eq!(cached(&env).len(), 1);
    assert_eq!(std::fs::read_dir(env.cache().join("overlay/tmp")).unwrap().count(), 0);
}

#[test]
fn gc_removes_only_layers_nothing_uses() {
    let env = Env::new();
    let image = env.busybox();
    let extra = extra_image(&env);
    assert_eq!(env.berth_ok(&["run", "--rm", image, "true"]), "");
    env.berth_ok(&["run", "-d", "--name", "user", &extra, "sleep", "1000"]);
    assert_eq!(cached(&env).len(), 2);
    // Both images are in the store: nothing to collect.
    assert_eq!(env.berth_ok(&["gc"]), "");
    assert_eq!(cached(&env).len(), 2);
    // The extra image leaves the store, but a container still uses its layers.
    env.layout.delete_ref(&extra).unwrap();
    assert_eq!(env.berth_ok(&["gc"]), "");
    assert_eq!(cached(&env).len(), 2);
    assert_eq!(env.berth_ok(&["exec", "user", "cat", "/srv/extra"]), "extra\n");
    env.berth_ok(&["rm", "-f", "user"]);
    let removed = env.berth_ok(&["gc"]);
    assert_eq!(removed.lines().count(), 1, "{removed}");
    assert!(removed.starts_with("sha256:"), "{removed}");
    assert_eq!(cached(&env).len(), 1, "busybox:1 is still in the store");
    assert_eq!(env.berth_ok(&["gc", "--all"]).lines().count(), 1);
    assert!(cached(&env).is_empty());
    assert_eq!(env.berth_ok(&["run", "--rm", image, "echo", "again"]), "again\n");
}

fn set_process(bundle: &Path, args: &[&str]) {
    let path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["args"] = json!(args);
    config["process"]["terminal"] = json!(false);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn run_bundle_runs_berth_and_umoci_bundles_in_place() {
    let env = Env::new();
    let image = env.busybox();
    // A bundle berth-run wrote.
    let bundle = env.bundle_ok(&["-e", "FROM=berth"], image, &["sh", "-c", "echo $FROM; exit 5"]);
    let before = listing(&bundle);
    let ran = env.berth_out(&["run", "--rm", "--bundle", bundle.to_str().unwrap()]);
    assert_eq!((ran.code, ran.stdout.as_str()), (5, "berth\n"), "{ran:?}");
    assert_eq!(listing(&bundle), before, "the bundle is used in place and not changed");

    // A bundle umoci unpacked (its config is umoci's own, not Berth's).
    let umoci_bundle = env.path("umoci-bundle");
    let layout = env.path("umoci-layout");
    berth_testkit::tools::run(
        berth_testkit::tools::skopeo()
            .unwrap()
            .arg("copy")
            .arg(format!("oci:{}:{image}", env.layout.root().display()))
            .arg(format!("oci:{}:bb", layout.display())),
    )
    .unwrap();
    berth_testkit::tools::run(
        berth_testkit::tools::umoci()
            .unwrap()
            .args(["unpack", "--image", &format!("{}:bb", layout.display())])
            .arg(&umoci_bundle),
    )
    .unwrap();
    set_process(&umoci_bundle, &["sh", "-c", "echo from-umoci; id -u"]);
    let ran = env.berth_out(&["run", "--name", "u", "--bundle", umoci_bundle.to_str().unwrap()]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "from-umoci\n0\n"), "{ran:?}");
    let ps = env.berth_ok(&["ps", "-a"]);
    assert!(ps.contains("umoci-bundle") && ps.contains("Exited (0)"), "{ps}");
    env.berth_ok(&["rm", "u"]);
    assert!(
        umoci_bundle.join("rootfs/bin/sh").exists(),
        "rm leaves a --bundle's files alone"
    );

    // Detached, with a log.
    env.berth_ok(&["run", "-d", "--name", "ud", "--bundle", umoci_bundle.to_str().unwrap()]);
    let ran = env.berth_out(&["logs", "-f", "ud"]);
    assert_eq!(ran.stdout, "from-umoci\n0\n", "{ran:?}");

    let ran = env.berth_out(&["run", "--bundle", env.path("nothing").to_str().unwrap()]);
    assert!(ran.code == 125 && ran.stderr.contains("nothing"), "{ran:?}");
    let ran = env.berth_out(&["run", "--bundle", bundle.to_str().unwrap(), "echo"]);
    assert!(ran.code != 0 && ran.stderr.contains("--bundle"), "{ran:?}");
}

/// crun runs berth-run's bundles too — on hosts whose cgroup setup it accepts. It refuses hybrid cgroup v1/v2
/// hosts (such as the one this suite was written on), which the test reports instead of failing.
#[test]
fn bundles_run_under_crun_where_it_accepts_the_cgroup_setup() {
    let env = Env::new();
    let image = env.busybox();
    let bundle = env.bundle_ok(&["-e", "WHO=crun"], image, &["sh", "-c", "echo $WHO; exit 9"]);
    let root = env.path("crun-state");
    let id = format!("berth-crun-{}", std::process::id());
    let out = std::process::Command::new("crun")
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("crun is installed");
    let _ = std::process::Command::new("crun")
        .arg("--root")
        .arg(&root)
        .args(["delete", "-f", &id])
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("hybrid mode not supported") {
        eprintln!("crun refuses this host's hybrid cgroups; the crun half of the cross-run is not possible here");
        return;
    }
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()),
        (Some(9), "crun\n"),
        "{stderr}"
    );
}

/// Where overlayfs cannot be mounted (here: the state directory is itself on an overlay, which overlayfs refuses
/// as an upper directory), the container gets a copy of the layers instead, and behaves the same.
#[test]
fn rootfs_falls_back_to_a_copy_without_overlayfs() {
    let env = Env::new();
    let image = env.busybox();
    let base = env.path("outer");
    let (lower, upper, work, merged) = (base.join("l"), base.join("u"), base.join("w"), base.join("m"));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let options = std::ffi::CString::new(options).unwrap();
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        options.as_c_str(),
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
    let _unmount = Unmount(merged.clone());
    let state = merged.join("state");
    let state = state.to_str().unwrap();
    let ran = env.berth_out(&[
        "--state",
        state,
        "run",
        "--name",
        "c",
        image,
        "sh",
        "-c",
        "echo x > /new; cat /new; ls /bin/sh",
    ]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "x\n/bin/sh\n"), "{ran:?}");
    assert!(ran.stderr.contains("copying"), "the fallback is reported: {ran:?}");
    let list = env.berth_out(&["--state", state, "ps", "-a", "--format", "json"]);
    let id = serde_json::from_str::<Value>(&list.stdout).unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rootfs = merged.join("state/containers").join(&id).join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("new")).unwrap(),
        "x\n",
        "a plain directory, not a mount"
    );
    assert_eq!(env.berth_out(&["--state", state, "rm", "c"]).code, 0);
    assert!(!rootfs.exists());
}
