//! Interop with skopeo both ways, and `inspect` agreeing with `skopeo inspect`.

use std::process::Command;

use berth_testkit::registry::TestRegistry;
use berth_testkit::tools::{run, skopeo, stdout};
use serde_json::Value;

use crate::{Env, busybox_layout, layout_blobs, layout_digest, random_image, registry_digest};

fn skopeo_in(env: &Env) -> Command {
    let mut c = skopeo().unwrap();
    c.env("HOME", env.home());
    c
}

#[test]
fn berth_pushes_and_skopeo_pulls_the_same_digests() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let remote = format!("docker://{}/interop/busybox:1", reg.host());
    env.ok(&["copy", "-q", &env.oci("a", Some("bb:1")), &remote]);
    let out = env.path("by-skopeo");
    run(skopeo_in(&env)
        .args(["copy", "--src-tls-verify=false", &remote])
        .arg(format!("oci:{}:bb", out.display())))
    .unwrap();
    assert_eq!(layout_digest(&out, Some("bb")), img.manifest_digest.to_string());
    assert_eq!(layout_blobs(&out), layout_blobs(&env.path("a")));
}

#[test]
fn skopeo_pushes_and_berth_pulls_the_same_digests() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let layout = berth_spec::layout::Layout::create(env.path("a")).unwrap();
    let img = berth_testkit::image::write_image(&layout, Some("app:1"), &random_image(41, 3, 50_000, "amd64")).unwrap();
    let remote = format!("docker://{}/interop/app:1", reg.host());
    run(skopeo_in(&env)
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:app:1", env.path("a").display()))
        .arg(&remote))
    .unwrap();
    let pushed = registry_digest(&reg.host(), "interop/app", "1");
    assert_eq!(
        pushed,
        img.manifest_digest.to_string(),
        "skopeo keeps an OCI manifest as it is"
    );
    env.ok(&["copy", "-q", &remote, &env.oci("b", Some("app"))]);
    assert_eq!(layout_digest(&env.path("b"), Some("app")), pushed);
    assert_eq!(layout_blobs(&env.path("b")), layout_blobs(&env.path("a")));
    env.ok(&["fsck", &env.oci("b", None)]);
}

#[test]
fn inspect_agrees_with_skopeo_inspect() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    busybox_layout(&env, "a", "bb:1");
    let remote = format!("docker://{}/interop/busybox:1", reg.host());
    env.ok(&["copy", "-q", &env.oci("a", Some("bb:1")), &remote]);
    let local = env.oci("a", Some("bb:1"));
    for (image, tls) in [(remote.as_str(), Some("--tls-verify=false")), (local.as_str(), None)] {
        let ours: Value = serde_json::from_str(&env.ok(&["inspect", image])).unwrap();
        let mut c = skopeo_in(&env);
        c.arg("inspect");
        if let Some(t) = tls {
            c.arg(t);
        }
        let theirs: Value = serde_json::from_str(&stdout(c.arg(image)).unwrap()).unwrap();
        for field in ["Digest", "Layers", "Os", "Architecture"] {
            assert_eq!(
                ours[field], theirs[field],
                "{image}: {field} differs\nours: {ours:#}\nskopeo: {theirs:#}"
            );
        }
        assert!(ours["Layers"].as_array().is_some_and(|l| !l.is_empty()), "{ours:#}");
    }
    // --raw prints the manifest exactly as skopeo does.
    let raw = env.ok(&["inspect", "--raw", &remote]);
    let skopeo_raw = stdout(skopeo_in(&env).args(["inspect", "--raw", "--tls-verify=false", &remote])).unwrap();
    assert_eq!(raw.trim_end(), skopeo_raw.trim_end());
}
