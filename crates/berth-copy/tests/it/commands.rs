//! list-tags, delete, sync, fsck and gc, on registries and layouts.

use berth_spec::layout::Layout;
use berth_testkit::registry::TestRegistry;
use serde_json::Value;

use crate::{Env, busybox_layout, layout_blobs, layout_digest, random_image, registry_digest};

#[test]
fn list_tags_of_a_registry_repository_a_layout_and_the_store() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    busybox_layout(&env, "a", "bb:1");
    for tag in ["1", "2", "latest"] {
        env.ok(&[
            "copy",
            "-q",
            &env.oci("a", Some("bb:1")),
            &format!("docker://{}/lt/bb:{tag}", reg.host()),
        ]);
    }
    let out: Value = serde_json::from_str(&env.ok(&["list-tags", &format!("docker://{}/lt/bb", reg.host())])).unwrap();
    assert_eq!(out["Repository"], format!("{}/lt/bb", reg.host()));
    let mut tags: Vec<String> = serde_json::from_value(out["Tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["1", "2", "latest"]);

    let err = env.fails(&["list-tags", &format!("docker://{}/lt/bb:1", reg.host())]);
    assert!(err.contains("without a tag or digest"), "{err}");
    let out: Value = serde_json::from_str(&env.ok(&["list-tags", &env.oci("a", None)])).unwrap();
    assert_eq!(out["Tags"], serde_json::json!(["bb:1"]));

    let store = env.path("store");
    let store_arg = store.to_str().unwrap();
    env.ok(&["--store", store_arg, "copy", "-q", &env.oci("a", Some("bb:1")), "app:1"]);
    env.ok(&["--store", store_arg, "copy", "-q", &env.oci("a", Some("bb:1")), "app:2"]);
    env.ok(&[
        "--store",
        store_arg,
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        "other:1",
    ]);
    let out: Value = serde_json::from_str(&env.ok(&["--store", store_arg, "list-tags", "app"])).unwrap();
    assert_eq!(out["Tags"], serde_json::json!(["1", "2"]));
}

#[test]
fn delete_from_a_registry_and_from_a_layout_then_gc() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let dest = format!("docker://{}/del/bb:1", reg.host());
    env.ok(&["copy", "-q", &env.oci("a", Some("bb:1")), &dest]);
    assert_eq!(
        registry_digest(&reg.host(), "del/bb", "1"),
        img.manifest_digest.to_string()
    );
    env.ok(&["delete", &dest]);
    let err = env.fails(&["inspect", &dest]);
    assert!(err.contains("404") || err.contains("unknown"), "{err}");

    // Layout: delete the name, blobs stay until gc; fsck reports them dangling; gc removes exactly them.
    busybox_layout(&env, "b", "keep");
    env.ok(&["copy", "-q", &env.oci("a", Some("bb:1")), &env.oci("b", Some("doomed"))]);
    let other = berth_spec::layout::Layout::open(env.path("b")).unwrap();
    berth_testkit::image::write_image(&other, Some("other"), &random_image(7, 2, 4096, "amd64")).unwrap();
    let before = layout_blobs(&env.path("b"));
    env.ok(&["delete", &env.oci("b", Some("other"))]);
    let err = env.fails(&["delete", &env.oci("b", Some("other"))]);
    assert!(err.contains("no image named \"other\""), "{err}");
    let out = env.run(&["fsck", &env.oci("b", None), "--format", "json"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let dangling = report["dangling"].as_array().unwrap().len();
    assert!(dangling >= 3, "{report}");
    let gc: Value = serde_json::from_str(&env.ok(&["gc", "--format", "json", &env.oci("b", None)])).unwrap();
    assert!(gc["removed"].is_array() && gc["bytes_freed"].is_u64(), "{gc}");
    let out = env.run(&["fsck", "--format", "xml", &env.oci("b", None)]);
    assert_eq!(out.status.code(), Some(2), "an unknown --format is a usage error");
    let after = layout_blobs(&env.path("b"));
    assert_eq!(before.len() - after.len(), dangling);
    assert_eq!(
        layout_digest(&env.path("b"), Some("keep")),
        img.manifest_digest.to_string()
    );
    assert_eq!(
        layout_digest(&env.path("b"), Some("doomed")),
        img.manifest_digest.to_string()
    );
}

#[test]
fn fsck_fails_on_a_corrupt_blob_and_names_it() {
    let env = Env::new();
    let img = busybox_layout(&env, "a", "bb:1");
    let layer = img.layers[0].hex().to_owned();
    std::fs::write(env.path("a").join("blobs/sha256").join(&layer), b"tampered").unwrap();
    let out = env.run(&["fsck", &env.oci("a", None)]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("corrupt: sha256:{layer}")), "{stdout}");
    // A copy from the damaged layout fails naming the blob, and writes no name at the destination.
    let err = env.fails(&["copy", "-q", &env.oci("a", Some("bb:1")), &env.oci("b", Some("x"))]);
    assert!(err.contains(&layer), "{err}");
    assert!(std::fs::read_to_string(env.path("b/index.json")).map_or(true, |t| !t.contains("\"x\"")));
}

#[test]
fn sync_a_repository_a_layout_and_a_yaml_list() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let want = img.manifest_digest.to_string();
    for tag in ["1", "2"] {
        env.ok(&[
            "copy",
            "-q",
            &env.oci("a", Some("bb:1")),
            &format!("docker://{}/src/bb:{tag}", reg.host()),
        ]);
    }
    // Every tag of a repository into a layout, named REPO:TAG.
    let out = env.ok(&[
        "sync",
        "-q",
        &format!("docker://{}/src/bb", reg.host()),
        &env.oci("mirror", None),
    ]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(layout_digest(&env.path("mirror"), Some("src/bb:1")), want);
    assert_eq!(layout_digest(&env.path("mirror"), Some("src/bb:2")), want);
    // One tag only when a tag is given.
    let out = env.ok(&[
        "sync",
        "-q",
        &format!("docker://{}/src/bb:2", reg.host()),
        &env.oci("one", None),
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    // A digest is refused, not widened to every tag.
    let err = env.fails(&[
        "sync",
        "-q",
        &format!("docker://{}/src/bb@{want}", reg.host()),
        &env.oci("bydigest", None),
    ]);
    assert!(err.contains("not a digest") && err.contains("berth-copy copy"), "{err}");
    if let Ok(l) = Layout::open(env.path("bydigest")) {
        assert!(l.refs().unwrap().is_empty(), "nothing synced");
    }
    // A layout into a registry namespace.
    env.ok(&[
        "sync",
        "-q",
        &env.oci("mirror", None),
        &format!("docker://{}/copied", reg.host()),
    ]);
    assert_eq!(registry_digest(&reg.host(), "copied/bb", "1"), want);
    assert_eq!(registry_digest(&reg.host(), "copied/bb", "2"), want);
    // A skopeo-style YAML list.
    let yaml = env.path("sync.yaml");
    std::fs::write(
        &yaml,
        format!("{}:\n  images:\n    src/bb: [\"1\"]\n  tls-verify: false\n", reg.host()),
    )
    .unwrap();
    let out = env.ok(&[
        "sync",
        "-q",
        "--src-type",
        "yaml",
        yaml.to_str().unwrap(),
        &env.oci("fromyaml", None),
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(layout_digest(&env.path("fromyaml"), Some("src/bb:1")), want);
    // A broken YAML file is named.
    std::fs::write(&yaml, "not: [valid").unwrap();
    let err = env.fails(&[
        "sync",
        "--src-type",
        "yaml",
        yaml.to_str().unwrap(),
        &env.oci("x", None),
    ]);
    assert!(err.contains("sync.yaml"), "{err}");
}

/// `images` lists what a layout (or the store) holds: each name with its manifest digest (as the layout records
/// it), its config's creation time and its size, sorted by name; as a table, or as JSON.
#[test]
fn images_lists_the_store_and_layouts() {
    let env = Env::new();
    let img = busybox_layout(&env, "a", "bb:1");
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        &env.oci("a", Some("again:2")),
    ]);
    env.ok(&["copy", "-q", &env.oci("a", Some("bb:1")), "stored:1"]);
    let rows: Value = serde_json::from_str(&env.ok(&["images", "--format", "json", &env.oci("a", None)])).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["again:2", "bb:1"], "{rows}");
    for r in rows.as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        assert_eq!(r["digest"], layout_digest(&env.path("a"), Some(name)));
        assert_eq!(r["digest"], img.manifest_digest.to_string());
        assert!(r["size"].as_u64().unwrap() > 1000, "{r}");
        assert!(r["created"].is_string(), "{r}");
    }
    // The store, as a table.
    let table = env.ok(&["images"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("stored:1"), "{table}");
    assert!(
        table.contains(&img.manifest_digest.to_string()["sha256:".len()..][..12]),
        "{table}"
    );
}
