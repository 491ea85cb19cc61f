//! The layer codec against umoci and buildah: the same layers give the same trees.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_spec::layout::Layout;
use berth_testkit::tools::{self, Buildah};
use berth_testkit::tree::{self, Compare};
use berth_testkit::{busybox, image};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A context with the kinds of entries layers carry.
fn make_context(ctx: &Path) {
    let w = |p: &str, data: &[u8], mode: u32| {
        let path = ctx.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    std::fs::create_dir_all(ctx.join("bin")).unwrap();
    std::fs::copy(busybox::BUSYBOX, ctx.join("bin/busybox")).unwrap();
    for a in ["sh", "rm", "mkdir", "ln", "chmod"] {
        std::os::unix::fs::symlink("busybox", ctx.join("bin").join(a)).unwrap();
    }
    w("etc/config", b"key=value\n", 0o644);
    w("etc/secret", b"s3cret\n", 0o600);
    w("usr/bin/suid-tool", b"#!/bin/sh\n", 0o4755);
    w(
        "usr/share/doc/caf\u{e9}/r\u{e9}sum\u{e9}.txt",
        "non-ASCII name\n".as_bytes(),
        0o644,
    );
    w(
        &format!("deep/{}/{}", "d".repeat(120), "f".repeat(140)),
        b"long path\n",
        0o644,
    );
    w("var/lib/app/state/data.bin", &vec![7u8; 300_000], 0o640);
    w("var/doomed/a", b"a", 0o644);
    w("var/doomed/b", b"b", 0o644);
    w("opq/old", b"old", 0o644);
    std::fs::create_dir_all(ctx.join("empty-dir")).unwrap();
    std::fs::set_permissions(ctx.join("empty-dir"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("../etc/config", ctx.join("usr/config-link")).unwrap();
    std::os::unix::fs::symlink("/etc/secret", ctx.join("abs-link")).unwrap();
    std::fs::hard_link(ctx.join("etc/config"), ctx.join("etc/config-hardlink")).unwrap();
}

#[test]
fn berth_applies_buildah_layers_to_the_same_tree_as_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let buildah = Buildah::new(&dir.path().join("buildah"));
    let ctx = dir.path().join("ctx");
    make_context(&ctx);
    let ctr = tools::stdout(buildah.cmd().unwrap().args(["from", "scratch"]))
        .unwrap()
        .trim()
        .to_owned();
    tools::run(
        buildah
            .cmd()
            .unwrap()
            .args(["copy", &ctr])
            .arg(format!("{}/", s(&ctx)))
            .arg("/"),
    )
    .unwrap();
    let layout_dir = dir.path().join("layout");
    tools::run(buildah.cmd().unwrap().args([
        "commit",
        "--format",
        "oci",
        &ctr,
        &format!("oci:{}:one", s(&layout_dir)),
    ]))
    .unwrap();
    // A second layer with deletions (whiteouts), a replaced directory and new content, made by running busybox.
    let script = "rm -rf /var/doomed /etc/secret && rm -rf /opq && mkdir /opq && echo new > /opq/new \
                  && echo more >> /etc/config && chmod 0700 /usr/bin/suid-tool && ln -s /nowhere /dangling";
    tools::run(
        buildah
            .cmd()
            .unwrap()
            .args(["run", "--isolation", "chroot", &ctr, "--", "/bin/sh", "-c", script]),
    )
    .unwrap();
    tools::run(buildah.cmd().unwrap().args([
        "commit",
        "--format",
        "oci",
        &ctr,
        &format!("oci:{}:two", s(&layout_dir)),
    ]))
    .unwrap();

    let layout = Layout::open(&layout_dir).unwrap();
    for name in ["one", "two"] {
        let bundle = dir.path().join(format!("umoci-{name}"));
        tools::run(
            tools::umoci()
                .unwrap()
                .args(["unpack", "--image", &format!("{}:{name}", s(&layout_dir))])
                .arg(&bundle),
        )
        .unwrap();
        let ours = dir.path().join(format!("berth-{name}"));
        image::apply_image(&layout, name, &ours).unwrap();
        let cmp = Compare {
            file_mtimes: true,
            dir_mtimes: true,
        };
        let theirs = tree::summarize(&bundle.join("rootfs"), cmp).unwrap();
        let mine = tree::summarize(&ours, cmp).unwrap();
        let d = tree::diff(&theirs, &mine);
        assert!(d.is_empty(), "image {name}: umoci vs berth:\n{}", d.join("\n"));
        assert!(mine.len() > 20, "image {name} has content");
    }
    let two = tree::summarize(&dir.path().join("berth-two"), Compare::default()).unwrap();
    assert!(!two.contains_key(Path::new("var/doomed")) && !two.contains_key(Path::new("etc/secret")));
    assert!(!two.contains_key(Path::new("opq/old")) && two.contains_key(Path::new("opq/new")));
}
