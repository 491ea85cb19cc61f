//! Interop of berth-spec's layout store with real peers: skopeo, umoci and buildah.

use std::path::Path;

use berth_spec::Digest;
use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_testkit::busybox;
use berth_testkit::tools::{self, Buildah};

/// Opens a layout and verifies every digest of the named image: manifest, config, layers and diffIDs, plus fsck.
fn verify_all(path: &Path, name: &str) -> berth_spec::layout::Image {
    let layout = Layout::open(path).unwrap_or_else(|e| panic!("{e}"));
    let image = layout
        .load_image(Some(name), &Platform::host())
        .unwrap_or_else(|e| panic!("{e}"));
    for l in image.manifest.parsed().layers() {
        layout
            .verify_blob(&Digest::from_oci(l.digest()).unwrap(), l.size())
            .unwrap();
    }
    layout.verify_diff_ids(&image).unwrap_or_else(|e| panic!("{e}"));
    let report = layout.fsck().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    image
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn skopeo_inspects_and_copies_a_berth_layout() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let layout = Layout::create(&src).unwrap();
    let written = busybox::write_image(&layout, "busybox:1").unwrap();

    let out = tools::stdout(
        tools::skopeo()
            .unwrap()
            .args(["inspect", &format!("oci:{}:busybox:1", s(&src))]),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], written.manifest_digest.to_string());
    assert_eq!(v["Layers"][0], written.layers[0].to_string());
    assert_eq!(v["Os"], "linux");

    // skopeo's raw view is byte-identical to what berth-spec stored.
    let raw = tools::run(
        tools::skopeo()
            .unwrap()
            .args(["inspect", "--raw", &format!("oci:{}:busybox:1", s(&src))]),
    )
    .unwrap()
    .stdout;
    assert_eq!(raw, written.manifest_bytes);

    let dst = dir.path().join("dst");
    tools::run(tools::skopeo().unwrap().args([
        "copy",
        &format!("oci:{}:busybox:1", s(&src)),
        &format!("oci:{}:copied", s(&dst)),
    ]))
    .unwrap();
    let copied = verify_all(&dst, "copied");
    assert_eq!(
        copied.manifest.digest(),
        &written.manifest_digest,
        "skopeo preserved the manifest digest"
    );
}

#[test]
fn umoci_unpacks_a_berth_layout() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let layout = Layout::create(&src).unwrap();
    busybox::write_image(&layout, "busybox").unwrap();
    let bundle = dir.path().join("bundle");
    tools::run(
        tools::umoci()
            .unwrap()
            .args(["unpack", "--image", &format!("{}:busybox", s(&src))])
            .arg(&bundle),
    )
    .unwrap();
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read(rootfs.join("bin/busybox")).unwrap(),
        busybox::busybox_bytes().unwrap()
    );
    assert_eq!(std::fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("busybox"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"], serde_json::json!(["/bin/sh"]));
    // umoci's view of the image runs: the unpacked busybox works.
    let out = tools::stdout(std::process::Command::new(rootfs.join("bin/busybox")).args(["echo", "hi"])).unwrap();
    assert_eq!(out, "hi\n");
}

#[test]
fn the_default_store_is_a_plain_layout_peers_read() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = berth_spec::store::store_path_from(
        |k| (k == "BERTH_STORE").then(|| store_dir.clone().into_os_string()),
        true,
    );
    let layout = Layout::create(&store).unwrap();
    let written = busybox::write_image(&layout, "localhost/app:1").unwrap();
    let out = tools::stdout(
        tools::skopeo()
            .unwrap()
            .args(["inspect", &format!("oci:{}:localhost/app:1", s(&store))]),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], written.manifest_digest.to_string());
    let bundle = dir.path().join("b");
    tools::run(
        tools::umoci()
            .unwrap()
            .args(["unpack", "--image", &format!("{}:localhost/app:1", s(&store))])
            .arg(&bundle),
    )
    .unwrap();
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    // buildah reads it too: a working container from the store's image sees its files. (buildah derives an
    // image name from the path, which must be lowercase: reach the store through a lowercase symlink.)
    let buildah = Buildah::new(&dir.path().join("buildah"));
    let lower = std::env::temp_dir().join(format!("berth-store-{}", std::process::id()));
    let _ = std::fs::remove_file(&lower);
    std::os::unix::fs::symlink(&store, &lower).unwrap();
    let ctr = tools::stdout(buildah.cmd().unwrap().args([
        "from",
        "--name",
        "from-store",
        &format!("oci:{}:localhost/app:1", s(&lower)),
    ]))
    .unwrap()
    .trim()
    .to_owned();
    let mnt = tools::stdout(buildah.cmd().unwrap().args(["mount", &ctr]))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        std::fs::read(Path::new(&mnt).join("bin/busybox")).unwrap(),
        busybox::busybox_bytes().unwrap()
    );
    tools::run(buildah.cmd().unwrap().args(["umount", &ctr])).unwrap();
    std::fs::remove_file(&lower).unwrap();
}

#[test]
fn berth_reads_what_buildah_commits_and_skopeo_recompresses() {
    let dir = tempfile::tempdir().unwrap();
    let buildah = Buildah::new(&dir.path().join("buildah"));
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("bin")).unwrap();
    std::fs::copy(busybox::BUSYBOX, ctx.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", ctx.join("bin/sh")).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello from buildah\n").unwrap();

    let ctr = tools::stdout(buildah.cmd().unwrap().args(["from", "scratch"]))
        .unwrap()
        .trim()
        .to_owned();
    tools::run(
        buildah
            .cmd()
            .unwrap()
            .args(["copy", &ctr])
            .arg(ctx.join("bin"))
            .arg("/bin"),
    )
    .unwrap();
    tools::run(
        buildah
            .cmd()
            .unwrap()
            .args(["copy", &ctr])
            .arg(ctx.join("hello.txt"))
            .arg("/etc/hello.txt"),
    )
    .unwrap();
    tools::run(buildah.cmd().unwrap().args([
        "config",
        "--cmd",
        "/bin/sh",
        "--env",
        "A=b",
        "--workingdir",
        "/etc",
        &ctr,
    ]))
    .unwrap();
    let out = dir.path().join("bb");
    tools::run(
        buildah
            .cmd()
            .unwrap()
            .args(["commit", "--format", "oci", &ctr, &format!("oci:{}:built", s(&out))]),
    )
    .unwrap();
    let image = verify_all(&out, "built");
    let cfg = image.config.parsed().config().clone().unwrap();
    assert_eq!(cfg.cmd().clone().unwrap(), vec!["/bin/sh".to_owned()]);
    assert!(cfg.env().clone().unwrap().contains(&"A=b".to_owned()));
    assert_eq!(cfg.working_dir().clone().unwrap(), "/etc");

    // skopeo copies it, recompressing to zstd: berth-spec verifies the new digests and diffIDs.
    let z = dir.path().join("zstd");
    tools::run(tools::skopeo().unwrap().args([
        "copy",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{}:built", s(&out)),
        &format!("oci:{}:z", s(&z)),
    ]))
    .unwrap();
    let zimg = verify_all(&z, "z");
    assert_eq!(
        zimg.manifest.parsed().layers()[0].media_type().to_string(),
        berth_spec::media_type::OCI_LAYER_ZSTD
    );
    assert_eq!(
        zimg.config.parsed().rootfs().diff_ids(),
        image.config.parsed().rootfs().diff_ids()
    );
}
