//! Hostile registries (HOSTILE-INPUTS.md items 21–26), through a fault-injecting proxy in front of a real
//! registry: cut and reset bodies, a server ignoring `Range`, lying or missing `Docker-Content-Digest`, corrupt
//! bodies, 429/5xx, a redirect to another host, a slow trickle.

use std::time::{Duration, Instant, SystemTime};

use berth_spec::layout::Layout;
use berth_testkit::faultproxy::{Fault, FaultProxy, Seen};
use berth_testkit::image::{ImageSpec, TarBuilder, WrittenImage, write_image};
use berth_testkit::registry::TestRegistry;
use serde_json::json;

use crate::{Env, layout_blobs, layout_digest, random_bytes, registry_digest};

const REPO: &str = "hostile/app";

/// An image of a 2 MB layer, a 300 KB layer and a config, in layout `src` and pushed to `reg` as `hostile/app:1`.
fn pushed_image(env: &Env, reg: &TestRegistry) -> WrittenImage {
    let layout = Layout::create(env.path("src")).unwrap();
    let layer = |name: &str, seed, len| {
        let mut t = TarBuilder::new();
        t.file(name, 0o644, &random_bytes(seed, len));
        t.finish()
    };
    let spec = ImageSpec {
        layers: vec![layer("big", 61, 2_000_000), layer("small", 62, 300_000)],
        config: json!({"Cmd": ["/bin/true"]}),
        architecture: berth_spec::platform::Platform::host().architecture,
    };
    let img = write_image(&layout, Some("app:1"), &spec).unwrap();
    env.ok(&[
        "copy",
        "-q",
        &env.oci("src", Some("app:1")),
        &format!("docker://{}/{REPO}:1", reg.host()),
    ]);
    img
}

/// The path part that names blob `digest` (its hex).
fn blob(digest: &berth_spec::Digest) -> String {
    digest.to_string().trim_start_matches("sha256:").to_owned()
}

fn pull(env: &Env, host: &str, dest: &str, extra: &[&str]) -> std::process::Output {
    let remote = format!("docker://{host}/{REPO}:1");
    let mut args = vec!["copy", "-q", &remote, dest];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// The pull succeeded, and `rel` holds the image with the source's digest and verifies.
fn assert_pulled(env: &Env, out: &std::process::Output, rel: &str, img: &WrittenImage) {
    assert!(out.status.success(), "pull failed: {}", crate::text(&out.stderr));
    assert_eq!(layout_digest(&env.path(rel), None), img.manifest_digest.to_string());
    env.ok(&["fsck", &env.oci(rel, None)]);
}

/// The pull failed, and `rel` names nothing, holds no copy of `digest`, and verifies.
fn assert_nothing_committed(env: &Env, out: &std::process::Output, rel: &str, digest: &berth_spec::Digest) -> String {
    assert!(!out.status.success(), "the pull should have failed");
    let err = crate::text(&out.stderr);
    eprintln!("failed as expected: {err}");
    let dir = env.path(rel);
    if dir.exists() {
        assert!(
            Layout::open(&dir).unwrap().refs().unwrap().is_empty(),
            "a failed copy named something"
        );
        assert!(
            !layout_blobs(&dir).contains(&digest.to_string()),
            "the bad blob {digest} was committed"
        );
        env.ok(&["fsck", &env.oci(rel, None)]);
    }
    err
}

fn requests<'a>(seen: &'a [Seen], method: &str, part: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.method == method && s.target.contains(part))
        .collect()
}

fn header<'a>(s: &'a Seen, name: &str) -> Option<&'a str> {
    s.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn cut_and_reset_bodies_resume_with_a_checked_range() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let (big, small) = (blob(&img.layers[0]), blob(&img.layers[1]));
    proxy.add("GET", &big, 1, Fault::CutBody(700_000));
    proxy.add("GET", &small, 1, Fault::Reset);
    let out = pull(&env, &proxy.addr, &env.oci("dst", None), &[]);
    assert_pulled(&env, &out, "dst", &img);
    assert_eq!(crate::text(&out.stderr), "", "-q: no warnings about the resumes either");
    let seen = proxy.seen();
    let resumed = requests(&seen, "GET", &big);
    assert_eq!(resumed.len(), 2, "{seen:#?}");
    assert_eq!(header(resumed[1], "range"), Some("bytes=700000-"));
    assert_eq!(resumed[1].status, 206);
    let reset = requests(&seen, "GET", &small);
    assert_eq!(reset.len(), 2, "{seen:#?}");
    assert!(
        header(reset[1], "range").is_some_and(|r| r.starts_with("bytes=")),
        "{seen:#?}"
    );
}

#[test]
fn server_ignoring_range_after_a_cut_commits_nothing_corrupt() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let big = blob(&img.layers[0]);
    proxy.add("GET", &big, 1, Fault::CutBody(500_000));
    proxy.add("GET", &big, 10, Fault::IgnoreRange);
    let out = pull(&env, &proxy.addr, &env.oci("dst", None), &[]);
    if out.status.success() {
        // A clean restart from byte zero is also acceptable; the result must verify.
        assert_pulled(&env, &out, "dst", &img);
    } else {
        let err = assert_nothing_committed(&env, &out, "dst", &img.layers[0]);
        assert!(
            err.contains("Range") && err.contains(&img.layers[0].to_string()),
            "{err}"
        );
        // The next attempt, against a well-behaved server, finishes the job.
        proxy.clear();
        let out = pull(&env, &proxy.addr, &env.oci("dst", None), &[]);
        assert_pulled(&env, &out, "dst", &img);
    }
}

#[test]
fn lying_or_missing_docker_content_digest_is_not_trusted() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let lie = format!("sha256:{}", "0".repeat(64));
    proxy.add("", "/manifests/", 100, Fault::LieDigest(lie.clone()));
    proxy.add("GET", "/blobs/", 100, Fault::LieDigest(lie.clone()));
    let out = pull(&env, &proxy.addr, &env.oci("lied", None), &[]);
    assert_pulled(&env, &out, "lied", &img);

    proxy.clear();
    proxy.add("", "/manifests/", 100, Fault::DropDigest);
    proxy.add("", "/blobs/", 100, Fault::DropDigest);
    let out = pull(&env, &proxy.addr, &env.oci("dropped", None), &[]);
    assert_pulled(&env, &out, "dropped", &img);

    // Pushing through the liar: the digest reported is the one computed here.
    proxy.clear();
    proxy.add("", "", 1000, Fault::LieDigest(lie));
    let digestfile = env.path("digest");
    let dest = format!("docker://{}/hostile/pushed:1", proxy.addr);
    env.ok(&[
        "copy",
        "-q",
        &env.oci("src", Some("app:1")),
        &dest,
        "--digestfile",
        digestfile.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&digestfile).unwrap().trim(),
        img.manifest_digest.to_string()
    );
    assert_eq!(
        registry_digest(&reg.host(), "hostile/pushed", "1"),
        img.manifest_digest.to_string()
    );
}

#[test]
fn corrupt_body_fails_naming_the_blob_and_commits_nothing() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    proxy.add("GET", &blob(&img.layers[0]), 100, Fault::CorruptBody);
    let out = pull(&env, &proxy.addr, &env.oci("dst", None), &["--retry-times", "1"]);
    let err = assert_nothing_committed(&env, &out, "dst", &img.layers[0]);
    assert!(err.contains(&img.layers[0].to_string()), "{err}");
    assert!(err.contains("digest"), "{err}");
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[test]
fn rate_limits_and_unavailability_are_retried_honoring_retry_after() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    assert_eq!(
        http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );

    // 429 with Retry-After in seconds, then in an HTTP date; 503s on blobs.
    proxy.add("GET", "/manifests/", 1, Fault::Status(429, Some("1".into())));
    let date = http_date(SystemTime::now() + Duration::from_secs(3));
    proxy.add("GET", "/manifests/", 1, Fault::Status(429, Some(date)));
    proxy.add("GET", "/blobs/", 2, Fault::Status(503, None));
    let started = Instant::now();
    let out = pull(&env, &proxy.addr, &env.oci("dst", None), &[]);
    let took = started.elapsed();
    assert_pulled(&env, &out, "dst", &img);
    assert!(took >= Duration::from_secs(2), "Retry-After was not honored: {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let seen = proxy.seen();
    assert_eq!(seen.iter().filter(|s| s.status == 429).count(), 2, "{seen:#?}");
    assert_eq!(seen.iter().filter(|s| s.status == 503).count(), 2, "{seen:#?}");

    // Uploads are retried too.
    proxy.clear();
    proxy.add("POST", "/blobs/uploads/", 1, Fault::Status(503, None));
    proxy.add("PUT", "/manifests/", 1, Fault::Status(429, Some("0".into())));
    env.ok(&[
        "copy",
        "-q",
        &env.oci("src", Some("app:1")),
        &format!("docker://{}/hostile/retried:1", proxy.addr),
    ]);
    assert_eq!(
        registry_digest(&reg.host(), "hostile/retried", "1"),
        img.manifest_digest.to_string()
    );
}

#[test]
fn endless_server_errors_give_up_after_the_configured_retries() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    proxy.add("", "/manifests/", 1000, Fault::Status(500, None));
    let started = Instant::now();
    let out = pull(&env, &proxy.addr, &env.oci("dst", None), &["--retry-times", "2"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!out.status.success());
    let err = crate::text(&out.stderr);
    eprintln!("failed as expected: {err}");
    assert!(
        err.contains("500") && err.contains(&proxy.addr) && err.contains("manifest 1"),
        "{err}"
    );
    let tries = requests(&proxy.seen(), "GET", "/manifests/").len();
    assert_eq!(tries, 3, "one try and two retries");
}

#[test]
fn redirect_to_another_host_carries_no_credentials() {
    let env = Env::new();
    let private = TestRegistry::basic("berth", "pw").unwrap();
    let storage = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &storage);
    env.ok(&[
        "copy",
        "-q",
        "--dest-creds",
        "berth:pw",
        &env.oci("src", Some("app:1")),
        &format!("docker://{}/{REPO}:1", private.host()),
    ]);
    // Blob GETs to the private registry are redirected to "object storage": a proxy on another port.
    let object_storage = FaultProxy::start(&storage.host()).unwrap();
    let front = FaultProxy::start(&private.host()).unwrap();
    front.add(
        "GET",
        "/blobs/sha256:",
        100,
        Fault::Redirect(format!("http://{}{{path}}", object_storage.addr)),
    );
    let out = pull(&env, &front.addr, &env.oci("dst", None), &["--src-creds", "berth:pw"]);
    assert_pulled(&env, &out, "dst", &img);

    let front_seen = front.seen();
    assert!(
        front_seen.iter().any(|s| header(s, "authorization").is_some()),
        "{front_seen:#?}"
    );
    let redirected = object_storage.seen();
    assert!(
        requests(&redirected, "GET", "/blobs/").len() >= 3,
        "layers and config fetched there: {redirected:#?}"
    );
    for s in &redirected {
        assert_eq!(
            header(s, "authorization"),
            None,
            "credentials leaked to another host: {s:#?}"
        );
    }
}

#[test]
fn slow_trickle_completes() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    // About 2 s for the small layer.
    proxy.add("GET", &blob(&img.layers[1]), 1, Fault::Trickle(150_000));
    let started = Instant::now();
    let out = pull(&env, &proxy.addr, &env.oci("dst", None), &[]);
    assert_pulled(&env, &out, "dst", &img);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the trickle did not apply"
    );
}

#[test]
fn auth_refusals_are_not_retried_and_redirect_loops_are_cut() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    for (status, words) in [(403, "403 Forbidden"), (401, "401 Unauthorized")] {
        let before = proxy.seen().len();
        proxy.add("GET", "/manifests/", 100, Fault::Status(status, None));
        let out = pull(&env, &proxy.addr, &env.oci("dst", None), &[]);
        assert!(!out.status.success());
        let err = crate::text(&out.stderr);
        assert!(
            err.contains(words) && err.contains(&format!("{}/{REPO}", proxy.addr)),
            "{err}"
        );
        let tries = requests(&proxy.seen()[before..], "GET", "/manifests/").len();
        assert_eq!(tries, 1, "HTTP {status} must not be retried");
        proxy.clear();
    }
    // A blob redirected to itself.
    proxy.add(
        "GET",
        "/blobs/",
        1000,
        Fault::Redirect(format!("http://{}{{path}}", proxy.addr)),
    );
    let out = pull(&env, &proxy.addr, &env.oci("dst", None), &[]);
    let err = assert_nothing_committed(&env, &out, "dst", &img.layers[0]);
    assert!(err.contains("redirect"), "{err}");
    assert!(proxy.seen().len() < 100, "the loop was followed too long");
}

#[test]
fn content_length_differing_from_the_descriptor_is_refused() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = pushed_image(&env, &reg);
    // The same image, but its manifest claims the small layer is one byte longer than it is.
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest_bytes).unwrap();
    let size = manifest["layers"][1]["size"].as_u64().unwrap();
    manifest["layers"][1]["size"] = json!(size + 1);
    let body = serde_json::to_vec(&manifest).unwrap();
    let media_type = berth_spec::media_type::OCI_MANIFEST;
    let r = crate::http_with_body(
        "PUT",
        &reg.host(),
        &format!("/v2/{REPO}/manifests/lying"),
        &[("Content-Type", media_type)],
        &body,
    );
    assert_eq!(r.status, 201, "{}", crate::text(&r.body));
    let out = env.run(&[
        "copy",
        "-q",
        &format!("docker://{}/{REPO}:lying", reg.host()),
        &env.oci("dst", None),
    ]);
    let err = assert_nothing_committed(&env, &out, "dst", &img.layers[1]);
    assert!(err.contains(&img.layers[1].to_string()), "{err}");
    assert!(
        err.contains(&size.to_string()) && err.contains(&(size + 1).to_string()),
        "both sizes are named: {err}"
    );
}

/// 7: a non-distributable layer with `urls` the source does not hold is copied as a reference only: nothing ever
/// connects to its URLs (where credentials could go), and the manifest keeps its digest.
#[test]
fn hostile_07_foreign_layer_urls_are_never_contacted() {
    use std::io::Write as _;
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/foreign-layer.tar.gz", listener.local_addr().unwrap());
    let layout = Layout::create(env.path("src")).unwrap();
    let w = layout.writer().unwrap();
    let absent = berth_spec::Digest::sha256(b"a foreign layer's bytes, never stored here");
    let config = serde_json::to_vec(&json!({
        "architecture": berth_spec::platform::Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [absent.to_string()]},
    }))
    .unwrap();
    let config_digest = w.put_bytes(&config, berth_spec::Algorithm::Sha256).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(),
                   "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                    "digest": absent.to_string(), "size": 4242, "urls": [url]}],
    }))
    .unwrap();
    let manifest_digest = w.put_bytes(&manifest, berth_spec::Algorithm::Sha256).unwrap();
    let desc = oci_spec::image::Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json".into(),
        manifest.len() as u64,
        manifest_digest.to_oci(),
    );
    w.set_ref("foreign:1", &desc).unwrap();
    drop(w);
    let out = env.run(&[
        "copy",
        "-q",
        &env.oci("src", Some("foreign:1")),
        &env.oci("dst", Some("foreign:1")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((mut s, peer)) => {
            let _ = s.write_all(b"HTTP/1.1 500 no\r\n\r\n");
            panic!("berth-copy connected to the foreign layer's URL (from {peer})");
        }
        Err(e) => panic!("{e}"),
    }
    let copied = Layout::open(env.path("dst")).unwrap();
    assert!(
        !copied.has_blob(&absent),
        "the foreign layer is referenced, not fetched"
    );
    let inspect = env.ok(&["inspect", "--raw", &env.oci("dst", Some("foreign:1"))]);
    assert_eq!(
        inspect.as_bytes(),
        &manifest[..],
        "the manifest is copied byte for byte"
    );
}
