//! Multi-arch images: the whole index with `--all`, the host's image by default, a subset with `--platform`.

use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_testkit::image::{WrittenImage, write_image};
use berth_testkit::registry::TestRegistry;
use berth_testkit::tools::{skopeo, stdout};
use serde_json::Value;

use crate::{Env, layout_blobs, layout_digest, layout_json, random_image, registry_digest, write_index};

pub struct MultiArch {
    pub amd64: WrittenImage,
    pub arm64: WrittenImage,
    pub index: String,
}

/// Layout `rel` of `env` with an amd64 and an arm64 image and an index over both named `multi:1`.
pub fn multiarch_layout(env: &Env, rel: &str) -> MultiArch {
    let layout = Layout::create(env.path(rel)).unwrap();
    let amd64 = write_image(&layout, Some("amd64"), &random_image(21, 2, 20_000, "amd64")).unwrap();
    let arm64 = write_image(&layout, Some("arm64"), &random_image(22, 2, 20_000, "arm64")).unwrap();
    let (index, _) = write_index(&layout, "multi:1", &[(&amd64, "amd64"), (&arm64, "arm64")]);
    MultiArch {
        amd64,
        arm64,
        index: index.to_string(),
    }
}

fn blobs_of(img: &WrittenImage) -> Vec<String> {
    let mut all: Vec<String> = img.layers.iter().map(ToString::to_string).collect();
    all.push(img.config_digest.to_string());
    all.push(img.manifest_digest.to_string());
    all
}

#[test]
fn all_keeps_the_index_digest_through_a_registry() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let m = multiarch_layout(&env, "src");
    let remote = format!("docker://{}/multi/app:1", reg.host());
    env.ok(&["copy", "-q", "--all", &env.oci("src", Some("multi:1")), &remote]);
    assert_eq!(registry_digest(&reg.host(), "multi/app", "1"), m.index);
    env.ok(&["copy", "-q", "--all", &remote, &env.oci("back", Some("multi"))]);
    assert_eq!(layout_digest(&env.path("back"), Some("multi")), m.index);
    let blobs = layout_blobs(&env.path("back"));
    for b in blobs_of(&m.amd64).iter().chain(&blobs_of(&m.arm64)) {
        assert!(blobs.contains(b), "{b} missing after --all");
    }
    env.ok(&["fsck", &env.oci("back", None)]);

    // Registry to another registry, staged through verified temporary files.
    let other = TestRegistry::anonymous().unwrap();
    let mirror = format!("docker://{}/mirror/app:1", other.host());
    env.ok(&["copy", "-q", "--all", &remote, &mirror]);
    assert_eq!(registry_digest(&other.host(), "mirror/app", "1"), m.index);

    // inspect of an index agrees with skopeo's (the index's digest, the host's image).
    let ours: Value = serde_json::from_str(&env.ok(&["inspect", &mirror])).unwrap();
    let theirs = stdout(
        skopeo()
            .unwrap()
            .env("HOME", env.home())
            .args(["inspect", "--tls-verify=false", &mirror]),
    )
    .unwrap();
    let theirs: Value = serde_json::from_str(&theirs).unwrap();
    for field in ["Digest", "Layers", "Os", "Architecture"] {
        assert_eq!(
            ours[field], theirs[field],
            "{field}\nours: {ours:#}\nskopeo: {theirs:#}"
        );
    }
    assert_eq!(ours["Digest"], m.index.as_str());
}

#[test]
fn default_copy_picks_the_host_platform() {
    let env = Env::new();
    let m = multiarch_layout(&env, "src");
    let host = Platform::host().architecture;
    let out = env.run(&[
        "copy",
        "-q",
        &env.oci("src", Some("multi:1")),
        &env.oci("dst", Some("x")),
    ]);
    let want = match host.as_str() {
        "amd64" => &m.amd64,
        "arm64" => &m.arm64,
        other => {
            assert!(
                !out.status.success(),
                "no {other} image in the index, yet the copy succeeded"
            );
            return;
        }
    };
    assert!(out.status.success(), "{}", crate::text(&out.stderr));
    assert_eq!(
        layout_digest(&env.path("dst"), Some("x")),
        want.manifest_digest.to_string()
    );
    let other = if host == "amd64" { &m.arm64 } else { &m.amd64 };
    let blobs = layout_blobs(&env.path("dst"));
    assert!(
        other.layers.iter().all(|l| !blobs.contains(&l.to_string())),
        "the other platform's layers were copied"
    );
}

#[test]
fn platform_subset_makes_a_new_index_of_only_that_entry() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let m = multiarch_layout(&env, "src");
    let remote = format!("docker://{}/multi/app:1", reg.host());
    env.ok(&["copy", "-q", "--all", &env.oci("src", Some("multi:1")), &remote]);

    env.ok(&[
        "copy",
        "-q",
        "--platform",
        "linux/arm64",
        &remote,
        &env.oci("arm", Some("only")),
    ]);
    let dir = env.path("arm");
    let index = layout_digest(&dir, Some("only"));
    assert_ne!(index, m.index, "a subset is a new index");
    let doc = layout_json(&dir, &index);
    let entries = doc["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{doc}");
    assert_eq!(entries[0]["digest"], m.arm64.manifest_digest.to_string());
    assert_eq!(entries[0]["platform"]["architecture"], "arm64");
    let blobs = layout_blobs(&dir);
    assert!(blobs_of(&m.arm64).iter().all(|b| blobs.contains(b)));
    assert!(
        blobs_of(&m.amd64).iter().all(|b| !blobs.contains(b)),
        "amd64 content copied: {blobs:?}"
    );
    env.ok(&["fsck", &env.oci("arm", None)]);

    // Both platforms named: the original index, digest and all.
    env.ok(&[
        "copy",
        "-q",
        "--platform",
        "linux/arm64",
        "--platform",
        "linux/amd64",
        &remote,
        &env.oci("both", Some("b")),
    ]);
    assert_eq!(layout_digest(&env.path("both"), Some("b")), m.index);
}

#[test]
fn preserve_digests_refuses_a_platform_subset() {
    let env = Env::new();
    multiarch_layout(&env, "src");
    let err = env.fails(&[
        "copy",
        "-q",
        "--preserve-digests",
        "--platform",
        "linux/arm64",
        &env.oci("src", Some("multi:1")),
        &env.oci("dst", Some("x")),
    ]);
    assert!(err.contains("--preserve-digests"), "{err}");
    assert!(err.contains("platform"), "{err}");
    let dst = env.path("dst");
    if dst.exists() {
        assert!(
            Layout::open(&dst).unwrap().refs().unwrap().is_empty(),
            "nothing may be named after a refusal"
        );
    }
}

#[test]
fn missing_platform_error_names_the_wanted_and_present_platforms() {
    let env = Env::new();
    multiarch_layout(&env, "src");
    let err = env.fails(&[
        "copy",
        "-q",
        "--platform",
        "linux/s390x",
        &env.oci("src", Some("multi:1")),
        &env.oci("d", None),
    ]);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

/// An index listing one child many times (HOSTILE-INPUTS 8) is copied with that child fetched and copied once,
/// and the index itself kept as it is.
#[test]
fn a_child_listed_many_times_is_copied_once() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let layout = Layout::create(env.path("src")).unwrap();
    let img = write_image(&layout, Some("one"), &random_image(31, 1, 5_000, "amd64")).unwrap();
    let repeated: Vec<(&WrittenImage, &str)> = (0..500).map(|_| (&img, "amd64")).collect();
    let (index, _) = write_index(&layout, "dup:1", &repeated);
    let proxy = berth_testkit::faultproxy::FaultProxy::start(&reg.host()).unwrap();
    let remote = format!("docker://{}/dup/app:1", proxy.addr);
    env.ok(&["copy", "-q", "--all", &env.oci("src", Some("dup:1")), &remote]);
    env.ok(&["copy", "-q", "--all", &remote, &env.oci("back", Some("dup"))]);
    assert_eq!(layout_digest(&env.path("back"), Some("dup")), index.to_string());
    let child = format!("/manifests/{}", img.manifest_digest);
    let seen = proxy.seen();
    let count = |method: &str| {
        seen.iter()
            .filter(|s| s.method == method && s.target.contains(&child))
            .count()
    };
    assert_eq!(count("PUT"), 1, "the child is pushed once");
    assert_eq!(count("GET"), 1, "the child is fetched once");
    env.ok(&["fsck", &env.oci("back", None)]);
}

/// In the store, `NAME@DIGEST` finds a platform's manifest inside an index stored under NAME (copied with --all).
#[test]
fn a_stored_index_answers_for_its_platform_manifests() {
    let env = Env::new();
    let m = multiarch_layout(&env, "src");
    let store = env.path("store");
    let store = store.to_str().unwrap();
    env.ok(&[
        "--store",
        store,
        "copy",
        "-q",
        "--all",
        &env.oci("src", Some("multi:1")),
        "multi:1",
    ]);
    let raw = env.ok(&[
        "--store",
        store,
        "inspect",
        "--raw",
        &format!("multi@{}", m.arm64.manifest_digest),
    ]);
    assert_eq!(raw.as_bytes(), m.arm64.manifest_bytes.as_slice());
    let err = env.fails(&[
        "--store",
        store,
        "inspect",
        "--raw",
        &format!("other@{}", m.arm64.manifest_digest),
    ]);
    assert!(err.contains("no image named other"), "{err}");
}
