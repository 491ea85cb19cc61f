//! The same Containerfile built by buildah (the peer) and by berth-build: the two images hold the same files
//! (names, types, modes, owners, content, link targets) and the same config fields.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::Env;

/// Every entry below `root`: path -> (kind, mode, uid, gid, content or link target).
fn tree(root: &Path) -> BTreeMap<String, (char, u32, u32, u32, String)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let (kind, content) = if m.file_type().is_symlink() {
                ('l', std::fs::read_link(&p).unwrap().display().to_string())
            } else if m.is_dir() {
                todo.push(p.clone());
                ('d', String::new())
            } else {
                let bytes = std::fs::read(&p).unwrap();
                (
                    'f',
                    format!("{} bytes, sha256 {}", bytes.len(), berth_spec::Digest::sha256(&bytes)),
                )
            };
            out.insert(rel, (kind, m.mode() & 0o7777, m.uid(), m.gid(), content));
        }
    }
    out
}

#[test]
fn berth_build_and_buildah_make_the_same_image() {
    let env = Env::new();
    berth_testkit::busybox::write_image(&env.store, "localhost/busybox:1").unwrap();
    env.file("app/main.sh", "#!/bin/sh\necho app\n")
        .file("app/conf/settings", "a=1\n")
        .file("notes.txt", "notes\n")
        .file(".dockerignore", "*.tmp\n")
        .file("scratch.tmp", "ignored\n");
    let containerfile = r#"FROM localhost/busybox:1
ARG VERSION=1.0
ENV APP_HOME=/opt/app VERSION=$VERSION
LABEL org.example.version=$VERSION
WORKDIR $APP_HOME
COPY app/ ./
COPY --chown=nobody:nogroup notes.txt /srv/notes.txt
COPY --chmod=0755 app/main.sh /usr/local/bin/app
RUN mkdir -p /var/data && echo "$VERSION" > /var/data/version && rm -f /bin/false && \
    busybox ln -s /var/data/version /version-link && chmod 0700 /var/data
USER nobody
EXPOSE 8080/tcp
VOLUME /var/data
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["--help"]
"#;
    env.build_ok(containerfile, &["-t", "cmp:1", "--build-arg", "VERSION=2.5"]);
    let berth_root = env.unpack("cmp:1", "berth");

    // buildah, with its own storage: the base image from the same store, the same context and arguments.
    let buildah = berth_testkit::tools::Buildah::new(&env.path("buildah"));
    let run = |args: &[&str]| {
        let mut cmd = buildah.cmd().unwrap();
        cmd.args(args);
        berth_testkit::tools::run(&mut cmd).unwrap()
    };
    // buildah names a pulled layout image after its path, which must be lowercase: a copy of the store goes there.
    let lower = std::path::PathBuf::from(format!("/tmp/berth-peer-base-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&lower);
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(env.store.root())
        .arg(&lower)
        .status()
        .unwrap();
    assert!(status.success());
    run(&[
        "pull",
        "--quiet",
        &format!("oci:{}:localhost/busybox:1", lower.display()),
    ]);
    std::fs::remove_dir_all(&lower).unwrap();
    let images = berth_testkit::tools::stdout(buildah.cmd().unwrap().args(["images", "--quiet"])).unwrap();
    run(&["tag", images.lines().next().unwrap().trim(), "localhost/busybox:1"]);
    let ctx = env.path("ctx");
    run(&[
        "bud",
        "--isolation",
        "chroot",
        "--layers",
        "--format",
        "oci",
        "--build-arg",
        "VERSION=2.5",
        "-t",
        "localhost/cmp:1",
        ctx.to_str().unwrap(),
    ]);
    let peer_layout = env.path("peer");
    run(&[
        "push",
        "--quiet",
        "localhost/cmp:1",
        &format!("oci:{}:cmp:1", peer_layout.display()),
    ]);
    let bundle = env.path("peer-bundle");
    let mut cmd = berth_testkit::tools::umoci().unwrap();
    cmd.args(["unpack", "--image"])
        .arg(format!("{}:cmp:1", peer_layout.display()))
        .arg(&bundle);
    berth_testkit::tools::run(&mut cmd).unwrap();
    let peer_root = bundle.join("rootfs");

    let (ours, mut theirs) = (tree(&berth_root), tree(&peer_root));
    // buildah 1.28 leaves the mount points of its RUN containers in the image (empty); BuildKit and berth-build
    // remove them. Only those, and only empty, are set aside.
    for stub in [
        "dev",
        "proc",
        "sys",
        "run",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    ] {
        if !ours.contains_key(stub)
            && theirs
                .get(stub)
                .is_some_and(|(k, ..)| *k == 'd' || theirs[stub].4.starts_with("0 bytes"))
            && !theirs.keys().any(|k| k.starts_with(&format!("{stub}/")))
        {
            theirs.remove(stub);
        }
    }
    let mut diffs = Vec::new();
    for k in ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if ours.get(k) != theirs.get(k) {
            diffs.push(format!(
                "{k}: berth-build {:?}, buildah {:?}",
                ours.get(k),
                theirs.get(k)
            ));
        }
    }
    assert!(diffs.is_empty(), "the images differ:\n{}", diffs.join("\n"));

    let config = |layout: &Path, name: &str| -> Value {
        let l = berth_spec::layout::Layout::open(layout).unwrap();
        let img = l
            .load_image(Some(name), &berth_spec::platform::Platform::host())
            .unwrap();
        serde_json::from_slice::<Value>(img.config.bytes()).unwrap()["config"].clone()
    };
    let (a, b) = (config(env.store.root(), "cmp:1"), config(&peer_layout, "cmp:1"));
    for field in [
        "Env",
        "Entrypoint",
        "Cmd",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
    ] {
        let (x, y) = (&a[field], &b[field]);
        let differs = if field == "Labels" {
            // buildah adds its own io.buildah.version label.
            x.as_object().unwrap().iter().any(|(k, v)| &y[k] != v)
        } else {
            x != y
        };
        assert!(!differs, "config {field}: berth-build {x}, buildah {y}");
    }
}
