//! Format and compression conversions: OCI -> Docker v2s2 -> OCI, recompression to zstd (diffIDs kept, skopeo
//! reads the result), and the combination that has no Docker equivalent refused.

use berth_spec::Digest;
use berth_spec::media_type::{self as mt, Compression};
use berth_testkit::registry::TestRegistry;
use berth_testkit::tools::{run, skopeo};
use serde_json::Value;

use crate::{Env, busybox_layout, diff_ids, http, layout_digest, layout_json, manifest_parts, text};

/// The manifest a registry holds for `repo:tag`, as JSON, with the media type it declares.
fn remote_manifest(host: &str, repo: &str, tag: &str) -> (String, Value) {
    let accept = [mt::OCI_MANIFEST, mt::DOCKER_MANIFEST].join(", ");
    let r = http(
        "GET",
        host,
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Accept", &accept)],
    );
    assert_eq!(r.status, 200, "{}", text(&r.body));
    (
        r.header("content-type").unwrap_or_default().to_owned(),
        serde_json::from_slice(&r.body).unwrap(),
    )
}

fn media_types(layers: &Value) -> Vec<&str> {
    layers
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect()
}

#[test]
fn v2s2_and_back_to_oci_keeps_config_and_layers() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let remote = format!("docker://{}/conv/busybox:v2s2", reg.host());
    env.ok(&["copy", "-q", "--format", "v2s2", &env.oci("a", Some("bb:1")), &remote]);

    let (content_type, m) = remote_manifest(&reg.host(), "conv/busybox", "v2s2");
    assert_eq!(content_type, mt::DOCKER_MANIFEST);
    assert_eq!(m["mediaType"], mt::DOCKER_MANIFEST);
    assert_eq!(m["config"]["mediaType"], mt::DOCKER_CONFIG);
    assert_eq!(
        m["config"]["digest"],
        img.config_digest.to_string(),
        "the config bytes are not rewritten"
    );
    assert!(
        media_types(&m["layers"]).iter().all(|t| *t == mt::DOCKER_LAYER_GZIP),
        "{m}"
    );
    let layers: Vec<&str> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let want: Vec<String> = img.layers.iter().map(ToString::to_string).collect();
    assert_eq!(layers, want, "the layer blobs are not rewritten");

    // --preserve-digests refuses the conversion before anything is named.
    let err = env.fails(&[
        "copy",
        "-q",
        "--preserve-digests",
        &remote,
        &env.oci("refused", Some("x")),
        "--format",
        "oci",
    ]);
    assert!(err.contains("--preserve-digests"), "{err}");

    env.ok(&["copy", "-q", "--format", "oci", &remote, &env.oci("b", Some("bb"))]);
    let back = layout_digest(&env.path("b"), Some("bb"));
    let doc = layout_json(&env.path("b"), &back);
    assert_eq!(doc["mediaType"], mt::OCI_MANIFEST);
    assert_eq!(doc["config"]["mediaType"], mt::OCI_CONFIG);
    assert!(
        media_types(&doc["layers"]).iter().all(|t| *t == mt::OCI_LAYER_GZIP),
        "{doc}"
    );
    let (config, layers) = manifest_parts(&env.path("b"), &back);
    assert_eq!(config, img.config_digest.to_string());
    assert_eq!(layers, want);
    env.ok(&["fsck", &env.oci("b", None)]);
}

#[test]
fn zstd_recompression_keeps_diff_ids_and_skopeo_reads_it() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let remote = format!("docker://{}/conv/busybox:zstd", reg.host());
    env.ok(&[
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        "--dest-compress-level",
        "3",
        &env.oci("a", Some("bb:1")),
        &remote,
    ]);

    let (_, m) = remote_manifest(&reg.host(), "conv/busybox", "zstd");
    assert_eq!(m["mediaType"], mt::OCI_MANIFEST);
    assert!(
        media_types(&m["layers"]).iter().all(|t| *t == mt::OCI_LAYER_ZSTD),
        "{m}"
    );
    assert_eq!(
        m["config"]["digest"],
        img.config_digest.to_string(),
        "diffIDs (the config) unchanged"
    );
    // Each zstd blob really decompresses to its diffID.
    for (layer, diff_id) in m["layers"].as_array().unwrap().iter().zip(&img.diff_ids) {
        let digest = layer["digest"].as_str().unwrap();
        let r = http("GET", &reg.host(), &format!("/v2/conv/busybox/blobs/{digest}"), &[]);
        assert_eq!(r.status, 200);
        assert_eq!(Digest::sha256(&r.body).to_string(), digest);
        assert_eq!(r.body.len() as u64, layer["size"].as_u64().unwrap());
        let mut tar = Vec::new();
        let mut dec = berth_spec::diff_id::decoder(&r.body[..], Compression::Zstd).unwrap();
        std::io::Read::read_to_end(&mut dec, &mut tar).unwrap();
        assert_eq!(&Digest::sha256(&tar), diff_id);
    }

    // skopeo pulls it (and checks digests on the way).
    let out = env.path("skopeo");
    run(skopeo()
        .unwrap()
        .env("HOME", env.home())
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/conv/busybox:zstd", reg.host()),
        ])
        .arg(format!("oci:{}:bb", out.display())))
    .unwrap();
    let (config, _) = manifest_parts(&out, &layout_digest(&out, Some("bb")));
    let ids: Vec<String> = img.diff_ids.iter().map(ToString::to_string).collect();
    assert_eq!(diff_ids(&out, &config), ids);

    // Berth pulls it back and recompresses to gzip: the original diffIDs again.
    env.ok(&[
        "copy",
        "-q",
        "--dest-compress-format",
        "gzip",
        &remote,
        &env.oci("gz", Some("bb")),
    ]);
    let back = layout_digest(&env.path("gz"), Some("bb"));
    let doc = layout_json(&env.path("gz"), &back);
    assert!(
        media_types(&doc["layers"]).iter().all(|t| *t == mt::OCI_LAYER_GZIP),
        "{doc}"
    );
    assert_eq!(manifest_parts(&env.path("gz"), &back).0, img.config_digest.to_string());
    env.ok(&["fsck", &env.oci("gz", None)]);
}

#[test]
fn v2s2_with_zstd_is_refused_before_anything_is_pushed() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    busybox_layout(&env, "a", "bb:1");
    let remote = format!("docker://{}/conv/refused:1", reg.host());
    let err = env.fails(&[
        "copy",
        "-q",
        "--format",
        "v2s2",
        "--dest-compress-format",
        "zstd",
        &env.oci("a", Some("bb:1")),
        &remote,
    ]);
    assert!(err.to_lowercase().contains("zstd"), "{err}");
    assert!(
        err.contains("v2s2") || err.contains("Docker") || err.contains("docker"),
        "{err}"
    );
    let r = http(
        "GET",
        &reg.host(),
        "/v2/conv/refused/manifests/1",
        &[("Accept", mt::DOCKER_MANIFEST)],
    );
    assert_eq!(r.status, 404, "nothing is tagged after a refusal");
}

#[test]
fn index_converts_to_a_docker_manifest_list_and_back() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let m = crate::multiarch::multiarch_layout(&env, "src");
    let remote = format!("docker://{}/conv/multi:list", reg.host());
    env.ok(&[
        "copy",
        "-q",
        "--all",
        "--format",
        "v2s2",
        &env.oci("src", Some("multi:1")),
        &remote,
    ]);
    let accept = [mt::DOCKER_MANIFEST_LIST, mt::OCI_INDEX].join(", ");
    let r = http(
        "GET",
        &reg.host(),
        "/v2/conv/multi/manifests/list",
        &[("Accept", &accept)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(mt::DOCKER_MANIFEST_LIST));
    let list: Value = serde_json::from_slice(&r.body).unwrap();
    let entries = list["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
        assert_eq!(entry["mediaType"], mt::DOCKER_MANIFEST, "{list}");
        assert_eq!(entry["platform"]["architecture"], arch, "platforms are kept");
        let digest = entry["digest"].as_str().unwrap();
        let (content_type, child) = remote_manifest(&reg.host(), "conv/multi", digest);
        assert_eq!(content_type, mt::DOCKER_MANIFEST);
        assert_eq!(child["config"]["mediaType"], mt::DOCKER_CONFIG);
    }
    // skopeo reads the list, and Berth converts it back to an OCI index of OCI manifests.
    let skopeo_out = berth_testkit::tools::stdout(skopeo().unwrap().env("HOME", env.home()).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &remote,
    ]))
    .unwrap();
    assert_eq!(skopeo_out.trim_end().as_bytes(), &r.body[..]);
    env.ok(&[
        "copy",
        "-q",
        "--all",
        "--format",
        "oci",
        &remote,
        &env.oci("back", Some("multi")),
    ]);
    let back = layout_digest(&env.path("back"), Some("multi"));
    let index = layout_json(&env.path("back"), &back);
    assert_eq!(index["mediaType"], mt::OCI_INDEX);
    for (entry, img) in index["manifests"].as_array().unwrap().iter().zip([&m.amd64, &m.arm64]) {
        let child = entry["digest"].as_str().unwrap();
        let (config, layers) = manifest_parts(&env.path("back"), child);
        assert_eq!(config, img.config_digest.to_string());
        assert_eq!(layers, img.layers.iter().map(ToString::to_string).collect::<Vec<_>>());
        assert_eq!(layout_json(&env.path("back"), child)["mediaType"], mt::OCI_MANIFEST);
    }
    env.ok(&["fsck", &env.oci("back", None)]);
}

/// Docker schema 2 has no annotations: converting drops them from the manifest and its descriptors (as skopeo
/// does), so Docker-only readers get the format they know.
#[test]
fn v2s2_conversion_drops_oci_only_fields() {
    use berth_spec::layout::Layout;
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let layout = Layout::open(env.path("a")).unwrap();
    let mut m: Value = serde_json::from_slice(&img.manifest_bytes).unwrap();
    m["annotations"] = serde_json::json!({"org.example.note": "hi"});
    m["layers"][0]["annotations"] = serde_json::json!({"org.example.layer": "one"});
    m["config"]["annotations"] = serde_json::json!({"org.example.config": "c"});
    let bytes = serde_json::to_vec(&m).unwrap();
    let w = layout.writer().unwrap();
    let digest = w.put_bytes(&bytes, berth_spec::Algorithm::Sha256).unwrap();
    let desc = oci_spec::image::Descriptor::new(mt::OCI_MANIFEST.into(), bytes.len() as u64, digest.to_oci());
    w.set_ref("annotated", &desc).unwrap();
    let remote = format!("docker://{}/conv/annotated:v2s2", reg.host());
    env.ok(&[
        "copy",
        "-q",
        "--format",
        "v2s2",
        &env.oci("a", Some("annotated")),
        &remote,
    ]);
    let (_, pushed) = remote_manifest(&reg.host(), "conv/annotated", "v2s2");
    let text = pushed.to_string();
    assert!(!text.contains("annotations") && !text.contains("org.example"), "{text}");
    // Kept as they are in OCI.
    let oci = format!("docker://{}/conv/annotated:oci", reg.host());
    env.ok(&["copy", "-q", &env.oci("a", Some("annotated")), &oci]);
    let (_, kept) = remote_manifest(&reg.host(), "conv/annotated", "oci");
    assert_eq!(kept["layers"][0]["annotations"]["org.example.layer"], "one");
}

/// A registry that refuses the OCI manifest gets the image as Docker schema 2 (skopeo does the same), with the
/// blobs it already has not sent again.
#[test]
fn a_refused_oci_manifest_is_pushed_again_as_docker_schema_2() {
    use berth_testkit::faultproxy::{Fault, FaultProxy};
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    busybox_layout(&env, "a", "bb:1");
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    proxy.add("PUT", "/manifests/", 1, Fault::Status(400, None));
    let remote = format!("docker://{}/conv/fallback:1", proxy.addr);
    let out = env.run(&["copy", &env.oci("a", Some("bb:1")), &remote]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("trying again as Docker schema 2"), "{err}");
    let (content_type, _) = remote_manifest(&reg.host(), "conv/fallback", "1");
    assert_eq!(content_type, mt::DOCKER_MANIFEST, "pushed as Docker schema 2");
    let blob_puts = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.target.contains("/blobs/uploads/"))
        .count();
    assert_eq!(
        blob_puts, 2,
        "the layer and the config once each, not again for the second manifest"
    );
    // --preserve-digests forbids the conversion: the refusal stands.
    proxy.add("PUT", "/manifests/", 1, Fault::Status(400, None));
    let err = env.fails(&[
        "copy",
        "--preserve-digests",
        &env.oci("a", Some("bb:1")),
        &format!("docker://{}/conv/kept:1", proxy.addr),
    ]);
    assert!(err.contains("400") && err.contains("--format v2s2"), "{err}");
}
