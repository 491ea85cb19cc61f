//! Where images go and in what form: -t transports, --format docker, --iidfile, -f -, --build-context, ADD of a
//! URL.

use std::io::{Read, Write};

use serde_json::Value;

use crate::{Env, ran};

#[test]
fn tags_to_layouts_registries_and_iidfile() {
    let env = Env::new();
    let reg = berth_testkit::registry::TestRegistry::anonymous().unwrap();
    let layout = env.path("out-layout");
    let oci = format!("oci:{}:app:1", layout.display());
    let remote = format!("docker://{}/built/app:1", reg.host());
    let iid = env.path("iid");
    let id = env.build_ok(
        "FROM busybox:1\nRUN echo pushed > /f\n",
        &[
            "-t",
            "app:1",
            "-t",
            &oci,
            "-t",
            &remote,
            "--iidfile",
            iid.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), format!("sha256:{id}"));
    // The same manifest in the store, the layout and the registry (read by skopeo, a peer).
    let in_store = env.store.resolve(Some("app:1")).unwrap().digest().to_string();
    let other = berth_spec::layout::Layout::open(&layout).unwrap();
    assert_eq!(other.resolve(Some("app:1")).unwrap().digest().to_string(), in_store);
    let pushed = berth_testkit::tools::stdout(
        berth_testkit::tools::skopeo()
            .unwrap()
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(&remote),
    )
    .unwrap();
    assert_eq!(pushed.trim(), in_store);
    let fsck = other.fsck().unwrap();
    assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
}

#[test]
fn docker_format_and_containerfile_from_stdin() {
    let env = Env::new();
    let reg = berth_testkit::registry::TestRegistry::anonymous().unwrap();
    let remote = format!("docker://{}/docker-format:1", reg.host());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-build"))
        .args(["build", "--format", "docker", "-t", "d:1", "-t", &remote, "-f", "-"])
        .arg(env.path("ctx"))
        .env("BERTH_STORE", env.store.root())
        .env("BERTH_BUILD_CACHE", env.path("cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox:1\nRUN echo docker > /fmt\n")
        .unwrap();
    let r = ran(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{r:?}");
    let (manifest, _) = env.image("d:1");
    assert_eq!(manifest["mediaType"], berth_spec::media_type::DOCKER_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], berth_spec::media_type::DOCKER_CONFIG);
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], berth_spec::media_type::DOCKER_LAYER_GZIP);
    }
    // Pushed as it is, and a peer (skopeo) reads Docker schema 2 back from the registry.
    let raw = berth_testkit::tools::stdout(
        berth_testkit::tools::skopeo()
            .unwrap()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(&remote),
    )
    .unwrap();
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["mediaType"], berth_spec::media_type::DOCKER_MANIFEST);
    env.file("Containerfile", "FROM busybox:1\n");
    let r = env.berth_build(&[
        "build",
        "--format",
        "docker",
        "--compress",
        "zstd",
        env.path("ctx").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no zstd layers"), "{r:?}");
}

#[test]
fn named_build_contexts() {
    let env = Env::new();
    let extra = env.path("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("from-extra"), "second context\n").unwrap();
    let base = format!("base=oci:{}:busybox:1", env.store.root().display());
    let files = format!("files={}", extra.display());
    env.build_ok(
        "FROM base\nCOPY --from=files from-extra /got\n",
        &["--build-context", &base, "--build-context", &files, "-t", "named:1"],
    );
    let rootfs = env.unpack("named:1", "n");
    assert_eq!(std::fs::read_to_string(rootfs.join("got")).unwrap(), "second context\n");
    assert!(rootfs.join("bin/sh").exists(), "FROM base resolved to the named image");
}

/// A one-shot HTTP server on 127.0.0.1 answering every request with `body`; returns its port.
fn serve(body: &'static [u8]) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    port
}

#[test]
fn add_of_a_url_downloads_without_extracting() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let port = serve(b"downloaded content\n");
    let sum = berth_spec::Digest::sha256(b"downloaded content\n");
    env.build_ok(
        &format!(
            "FROM busybox:1\nADD http://127.0.0.1:{port}/dir/file.txt /dl/\nADD --checksum={sum} http://127.0.0.1:{port}/x /named\n"
        ),
        &["-t", "url:1"],
    );
    let rootfs = env.unpack("url:1", "u");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("dl/file.txt")).unwrap(),
        "downloaded content\n"
    );
    let m = std::fs::metadata(rootfs.join("dl/file.txt")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!(m.mtime(), 1_700_000_000, "the time from Last-Modified");
    assert!(rootfs.join("named").is_file());
    let wrong = berth_spec::Digest::sha256(b"other");
    env.file(
        "Containerfile",
        &format!("FROM busybox:1\nADD --checksum={wrong} http://127.0.0.1:{port}/x /y\n"),
    );
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("checksum"), "{r:?}");
}

#[test]
fn squash_makes_one_layer_of_everything() {
    let env = Env::new();
    env.build_ok(
        "FROM busybox:1\nRUN echo one > /one\nRUN rm /one && echo two > /two\n",
        &["--squash", "-t", "sq:1"],
    );
    let (manifest, config) = env.image("sq:1");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    let non_empty = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .count();
    assert_eq!(non_empty, 1, "history matches the one layer");
    let rootfs = env.unpack("sq:1", "s");
    assert!(rootfs.join("two").is_file() && !rootfs.join("one").exists() && rootfs.join("bin/sh").exists());
}

#[test]
fn oci_archive_destination() {
    let env = Env::new();
    let archive = env.path("out.tar");
    let dest = format!("oci-archive:{}:arch:1", archive.display());
    env.build_ok("FROM busybox:1\nRUN echo archived > /a\n", &["-t", &dest]);
    // skopeo, a peer, reads the archive.
    let out = berth_testkit::tools::stdout(
        berth_testkit::tools::skopeo()
            .unwrap()
            .args(["inspect", "--format", "{{.Digest}}"])
            .arg(&dest),
    )
    .unwrap();
    assert!(out.trim().starts_with("sha256:"), "{out}");
}

/// A base image from a registry is pulled into the store (once: --pull missing) by the shared engine.
#[test]
fn base_image_from_a_registry() {
    let env = Env::new();
    let reg = berth_testkit::registry::TestRegistry::anonymous().unwrap();
    let remote = format!("{}/bases/busybox:1", reg.host());
    let mut push = berth_testkit::tools::skopeo().unwrap();
    push.args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:busybox:1", env.store.root().display()))
        .arg(format!("docker://{remote}"));
    berth_testkit::tools::run(&mut push).unwrap();
    env.file("Containerfile", &format!("FROM {remote}\nRUN echo pulled > /p\n"));
    let ctx = env.path("ctx");
    let r = env.berth_build(&["build", "-t", "frombase:1", ctx.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("Pulling docker://"), "{r:?}");
    assert!(
        env.store.resolve(Some(&remote)).is_ok(),
        "the base is kept in the store as {remote}"
    );
    // In the store now: no second pull, even with the registry gone.
    drop(reg);
    let r = env.berth_build(&["build", "-t", "frombase:2", ctx.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("Pulling"), "{r:?}");
}
