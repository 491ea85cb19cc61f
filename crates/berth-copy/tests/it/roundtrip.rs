//! Round trips through every transport keep every digest; re-pushes send no blob bytes; a known image pushed to a
//! new repository is mounted, not uploaded.

use berth_spec::layout::Layout;
use berth_testkit::faultproxy::FaultProxy;
use berth_testkit::image::write_image;
use berth_testkit::registry::TestRegistry;
use berth_testkit::tools::{skopeo, stdout};

use crate::{
    Env, busybox_layout, diff_ids, layout_blob, layout_blobs, layout_digest, logged, manifest_parts, random_image,
    registry_digest,
};

#[test]
fn layout_registry_layout_archives_keep_every_digest() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let want = img.manifest_digest.to_string();
    let src_blobs = layout_blobs(&env.path("a"));

    // layout -> registry, with --digestfile.
    let dest = format!("docker://{}/rt/busybox:1", reg.host());
    let digestfile = env.path("pushed.digest");
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        &dest,
        "--digestfile",
        digestfile.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&digestfile).unwrap().trim(), want);
    assert_eq!(registry_digest(&reg.host(), "rt/busybox", "1"), want);
    assert_eq!(registry_digest(&reg.host(), "rt/busybox", &want), want);

    // registry -> layout: same manifest, same blobs, nothing else.
    env.ok(&["copy", &dest, &env.oci("b", Some("bb"))]);
    assert_eq!(layout_digest(&env.path("b"), Some("bb")), want);
    assert_eq!(layout_blobs(&env.path("b")), src_blobs);

    // layout -> oci-archive -> layout.
    let archive = env.path("image.oci.tar");
    env.ok(&[
        "copy",
        &env.oci("b", Some("bb")),
        &format!("oci-archive:{}:bb", archive.display()),
    ]);
    env.ok(&[
        "copy",
        &format!("oci-archive:{}:bb", archive.display()),
        &env.oci("c", Some("bb")),
    ]);
    assert_eq!(layout_digest(&env.path("c"), Some("bb")), want);
    assert_eq!(layout_blobs(&env.path("c")), src_blobs);
    env.ok(&["fsck", &env.oci("c", None)]);

    // layout -> docker-archive -> layout: a docker archive holds uncompressed layers, so the manifest changes by
    // nature; the config (and so the diffIDs) must not.
    let docker = env.path("image.docker.tar");
    env.ok(&[
        "copy",
        &env.oci("c", Some("bb")),
        &format!("docker-archive:{}:busybox:1", docker.display()),
    ]);
    env.ok(&[
        "copy",
        &format!("docker-archive:{}", docker.display()),
        &env.oci("d", Some("bb")),
    ]);
    let back = layout_digest(&env.path("d"), Some("bb"));
    let (config, layers) = manifest_parts(&env.path("d"), &back);
    assert_eq!(
        config,
        img.config_digest.to_string(),
        "the config survives a docker-archive"
    );
    let ids: Vec<String> = img.diff_ids.iter().map(ToString::to_string).collect();
    assert_eq!(diff_ids(&env.path("d"), &config), ids);
    // Uncompressed layers: each layer's digest is its diffID.
    assert_eq!(layers, ids);
    for l in &layers {
        layout_blob(&env.path("d"), l);
    }
    env.ok(&["fsck", &env.oci("d", None)]);
}

#[test]
fn store_is_a_source_and_a_destination() {
    let env = Env::new();
    let img = busybox_layout(&env, "a", "bb:1");
    let store = env.path("store");
    let store = store.to_str().unwrap();
    env.ok(&[
        "--store",
        store,
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        "example.com/tools/busybox:1.36",
    ]);
    let tags = env.ok(&["--store", store, "list-tags", "example.com/tools/busybox"]);
    assert!(tags.contains("1.36"), "{tags}");
    env.ok(&[
        "--store",
        store,
        "copy",
        "-q",
        "example.com/tools/busybox:1.36",
        &env.oci("b", Some("out")),
    ]);
    assert_eq!(
        layout_digest(&env.path("b"), Some("out")),
        img.manifest_digest.to_string()
    );
    env.ok(&["--store", store, "fsck"]);
    // The environment variable works as well as the flag.
    let out = env
        .cmd(&["inspect", "--raw", "example.com/tools/busybox:1.36"])
        .env("BERTH_STORE", store)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::text(&out.stderr));
    assert_eq!(out.stdout, img.manifest_bytes);
}

/// `NAME@DIGEST` and `NAME:TAG@DIGEST` in the store find that image only under that name: another name, or a tag
/// that is another image, is an error naming what the store has.
#[test]
fn store_names_with_a_digest_must_match_the_name_too() {
    let env = Env::new();
    let one = busybox_layout(&env, "a", "bb:1");
    let two = write_image(
        &Layout::create(env.path("b")).unwrap(),
        Some("other:1"),
        &random_image(7, 1, 1000, "amd64"),
    )
    .unwrap();
    let store = env.path("store");
    let store = store.to_str().unwrap();
    env.ok(&["--store", store, "copy", "-q", &env.oci("a", Some("bb:1")), "app:1"]);
    env.ok(&[
        "--store",
        store,
        "copy",
        "-q",
        &env.oci("b", Some("other:1")),
        "other:1",
    ]);
    let (d1, d2) = (one.manifest_digest.to_string(), two.manifest_digest.to_string());
    let raw = |r: &str| env.ok(&["--store", store, "inspect", "--raw", r]);
    assert_eq!(raw(&format!("app@{d1}")).as_bytes(), one.manifest_bytes.as_slice());
    assert_eq!(raw(&format!("app:1@{d1}")).as_bytes(), one.manifest_bytes.as_slice());
    assert_eq!(raw(&format!("other@{d2}")).as_bytes(), two.manifest_bytes.as_slice());
    let err = env.fails(&["--store", store, "inspect", &format!("nonexistent@{d1}")]);
    assert!(
        err.contains("nonexistent@") && err.contains("no image named nonexistent"),
        "{err}"
    );
    let err = env.fails(&["--store", store, "inspect", &format!("app:1@{d2}")]);
    assert!(err.contains(&format!("app:1 is {d1}")), "{err}");
    let err = env.fails(&["--store", store, "copy", &format!("app@{d2}"), &env.oci("c", Some("x"))]);
    assert!(err.contains(&format!("app:1 ({d1})")), "{err}");
    if let Ok(c) = Layout::open(env.path("c")) {
        assert!(c.refs().unwrap().is_empty(), "nothing is named after a failed lookup");
    }
}

#[test]
fn repush_of_an_unchanged_image_sends_no_blob_bytes() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    busybox_layout(&env, "a", "bb:1");
    let dest = format!("docker://{}/rp/busybox:1", proxy.addr);
    let out = env.run(&["copy", &env.oci("a", Some("bb:1")), &dest]);
    assert!(out.status.success());
    let err = crate::text(&out.stderr);
    assert!(
        err.contains("(2 blobs copied, 0 already there)"),
        "the config counts too: {err}"
    );
    let first = proxy.seen();
    let uploads = |seen: &[berth_testkit::faultproxy::Seen]| {
        seen.iter()
            .filter(|s| s.target.contains("/blobs/uploads/") && s.method != "HEAD")
            .count()
    };
    assert!(
        uploads(&first) >= 2,
        "the first push uploads the layer and the config: {first:#?}"
    );

    let out = env.run(&["copy", &env.oci("a", Some("bb:1")), &dest]);
    assert!(out.status.success());
    let err = crate::text(&out.stderr);
    assert!(err.contains("(0 blobs copied, 2 already there)"), "{err}");
    assert!(out.stdout.is_empty(), "progress never goes to stdout");
    let second = &proxy.seen()[first.len()..];
    assert_eq!(uploads(second), 0, "a re-push must not upload: {second:#?}");
    let bodies: Vec<_> = second
        .iter()
        .filter(|s| s.method == "PUT" || s.method == "PATCH")
        .filter(|s| !s.target.contains("/manifests/"))
        .collect();
    assert!(bodies.is_empty(), "{bodies:#?}");
}

#[test]
fn known_image_pushed_to_a_new_repository_is_mounted() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        &format!("docker://{}/first/busybox:1", reg.host()),
    ]);
    assert!(
        env.home().join(".cache/berth/blob-locations.json").is_file(),
        "the blob-location cache is written"
    );
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        &format!("docker://{}/second/busybox:1", reg.host()),
    ]);
    let log = reg.log();
    assert_eq!(logged(&log, "PATCH", "/second/"), 0, "{log}");
    assert_eq!(logged(&log, "PUT", "/second/busybox/blobs/uploads/"), 0, "{log}");
    assert!(
        logged(&log, "POST", "/second/busybox/blobs/uploads/?mount=") >= 2,
        "layer and config mounted: {log}"
    );
    assert_eq!(
        registry_digest(&reg.host(), "second/busybox", "1"),
        img.manifest_digest.to_string()
    );
}

/// Regression: copying an image into an existing docker-archive replaced the archive, silently dropping the images
/// it held (oci-archive kept them).
#[test]
fn archives_hold_several_images() {
    let env = Env::new();
    let layout = Layout::create(env.path("a")).unwrap();
    let x = write_image(&layout, Some("x:1"), &random_image(11, 2, 3000, "amd64")).unwrap();
    let y = write_image(&layout, Some("y:1"), &random_image(12, 1, 3000, "amd64")).unwrap();

    let oci = env.path("both.oci.tar").display().to_string();
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("x:1")),
        &format!("oci-archive:{oci}:x"),
    ]);
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("y:1")),
        &format!("oci-archive:{oci}:y"),
    ]);
    for (name, img) in [("x", &x), ("y", &y)] {
        let raw = env.ok(&["inspect", "--raw", &format!("oci-archive:{oci}:{name}")]);
        assert_eq!(raw.as_bytes(), img.manifest_bytes, "{name} in the oci-archive");
    }

    let docker = env.path("both.docker.tar").display().to_string();
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("x:1")),
        &format!("docker-archive:{docker}:x:1"),
    ]);
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("y:1")),
        &format!("docker-archive:{docker}:example.com/y:1"),
    ]);
    let config = |img: &berth_testkit::image::WrittenImage| layout_blob(&env.path("a"), &img.config_digest.to_string());
    for (reference, img) in [("x:1", &x), ("example.com/y:1", &y), ("@0", &x), ("@1", &y)] {
        let got = env.ok(&["inspect", "--config", &format!("docker-archive:{docker}:{reference}")]);
        assert_eq!(got.as_bytes(), config(img), "{reference} in the docker-archive");
    }
    // skopeo reads both images of the archive.
    for (reference, img) in [("x:1", &x), ("example.com/y:1", &y)] {
        let got = stdout(skopeo().unwrap().args([
            "inspect",
            "--config",
            "--raw",
            &format!("docker-archive:{docker}:{reference}"),
        ]))
        .unwrap();
        assert_eq!(got.as_bytes(), config(img), "skopeo: {reference}");
    }
    // Without NAME:TAG or @N, an archive of several images is refused (skopeo: "expected 1 item"), and the
    // message lists every image with all its tags.
    let err = env.fails(&["inspect", &format!("docker-archive:{docker}")]);
    assert!(
        err.contains("holds 2 images") && err.contains("x:1") && err.contains("example.com/y:1"),
        "{err}"
    );
    let err = env.fails(&["copy", &format!("docker-archive:{docker}"), &env.oci("any", Some("x"))]);
    assert!(err.contains("name one"), "{err}");
    // Reading an image back keeps its diffIDs.
    env.ok(&[
        "copy",
        "-q",
        &format!("docker-archive:{docker}:x:1"),
        &env.oci("back", Some("x")),
    ]);
    let back = layout_digest(&env.path("back"), Some("x"));
    let (cfg, _) = manifest_parts(&env.path("back"), &back);
    assert_eq!(cfg, x.config_digest.to_string());
}

#[test]
fn a_tag_given_again_in_a_docker_archive_moves_to_the_new_image() {
    let env = Env::new();
    let layout = Layout::create(env.path("a")).unwrap();
    write_image(&layout, Some("x:1"), &random_image(13, 1, 3000, "amd64")).unwrap();
    let y = write_image(&layout, Some("y:1"), &random_image(14, 1, 3000, "amd64")).unwrap();
    let docker = env.path("d.tar").display().to_string();
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("x:1")),
        &format!("docker-archive:{docker}:app:1"),
    ]);
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("y:1")),
        &format!("docker-archive:{docker}:docker.io/library/app:1"),
    ]);
    let config = env.ok(&["inspect", "--config", &format!("docker-archive:{docker}:app:1")]);
    assert_eq!(
        config.as_bytes(),
        layout_blob(&env.path("a"), &y.config_digest.to_string())
    );
    let err = env.fails(&["inspect", &format!("docker-archive:{docker}:@1")]);
    assert!(err.contains("@1"), "x lost its only tag and is gone: {err}");
}

/// Archives get the mode of any new file (0666 less the umask), as skopeo's do, and an archive an image is added
/// to keeps its mode.
#[test]
fn archives_get_the_usual_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    let env = Env::new();
    busybox_layout(&env, "a", "bb:1");
    let with_umask = |umask: &str, args: &[&str]| {
        // Through sh, which sets the umask and execs berth-copy with the test environment.
        let berth = env.cmd(args);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "umask $0 && exec \"$@\"", umask])
            .arg(berth.get_program())
            .args(berth.get_args());
        for (k, v) in berth.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", crate::text(&out.stderr));
    };
    let mode = |p: &str| std::fs::metadata(env.path(p)).unwrap().permissions().mode() & 0o7777;
    let src = env.oci("a", Some("bb:1"));
    let docker = env.path("d.tar").display().to_string();
    let oci = env.path("o.tar").display().to_string();
    with_umask("022", &["copy", "-q", &src, &format!("docker-archive:{docker}:app:1")]);
    with_umask("022", &["copy", "-q", &src, &format!("oci-archive:{oci}:app:1")]);
    assert_eq!((mode("d.tar"), mode("o.tar")), (0o644, 0o644));
    std::fs::set_permissions(env.path("d.tar"), std::fs::Permissions::from_mode(0o640)).unwrap();
    with_umask("022", &["copy", "-q", &src, &format!("docker-archive:{docker}:app:2")]);
    assert_eq!(mode("d.tar"), 0o640, "adding an image keeps the archive's mode");
    with_umask(
        "002",
        &[
            "copy",
            "-q",
            &src,
            &format!("oci-archive:{}:x", env.path("g.tar").display()),
        ],
    );
    assert_eq!(mode("g.tar"), 0o664);
}
