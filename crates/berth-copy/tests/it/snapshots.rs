//! What berth-copy prints, pinned: the JSON of every read-only command (inspect, its --raw and --config, list-tags,
//! images, fsck) and the key errors, as snapshots (insta; `cargo insta review` after a deliberate change). Digests,
//! times, sizes and temporary paths are masked in the snapshots; the digests are checked independently here.

use crate::{Env, busybox_layout, layout_digest};

fn masked(f: impl FnOnce()) {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[digest]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[short-digest]");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]");
    s.add_filter(r"/tmp/[^\s:\x22]+", "[tmp]");
    // Sizes follow the host's busybox and the CPU's compressor; the layouts' own checks cover them.
    s.add_filter(r#"("(?:size|Size|bytes_checked)":\s?)\d+"#, "${1}[n]");
    s.bind(f);
}

#[test]
fn json_outputs_and_key_errors_are_pinned() {
    let env = Env::new();
    let img = busybox_layout(&env, "a", "bb:1");
    let digest = img.manifest_digest.to_string();
    let reference = env.oci("a", Some("bb:1"));
    // Independent checks of what the snapshots mask.
    assert_eq!(layout_digest(&env.path("a"), Some("bb:1")), digest);
    let inspect = env.ok(&["inspect", &reference]);
    assert!(inspect.contains(&digest), "{inspect}");
    let raw = env.ok(&["inspect", "--raw", &reference]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        digest,
        "--raw prints the manifest's exact bytes"
    );
    let config = env.ok(&["inspect", "--config", &reference]);
    let tags = env.ok(&["list-tags", &env.oci("a", None)]);
    let images = env.ok(&["images", "--format", "json", &env.oci("a", None)]);
    let fsck = env.ok(&["fsck", "--format", "json", &env.oci("a", None)]);
    let missing = env.fails(&["inspect", &env.oci("a", Some("nope:1"))]);
    let transport = env.fails(&["inspect", "ftp://example/x"]);
    let bad_name = env.fails(&["copy", &reference, "docker://localhost:5000/UPPER:1"]);
    let creds = env.fails(&["inspect", "--creds", "user-without-password", &reference]);
    masked(|| {
        insta::assert_snapshot!("inspect", inspect);
        insta::assert_snapshot!("inspect-raw", raw);
        insta::assert_snapshot!("inspect-config", config);
        insta::assert_snapshot!("list-tags", tags);
        insta::assert_snapshot!("images", images);
        insta::assert_snapshot!("fsck", fsck);
        insta::assert_snapshot!("error-missing-name", missing);
        insta::assert_snapshot!("error-transport", transport);
        insta::assert_snapshot!("error-bad-name", bad_name);
        insta::assert_snapshot!("error-creds", creds);
    });
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = berth_spec::Hasher::new(berth_spec::Algorithm::Sha256);
    h.update(bytes);
    h.finish().to_string().trim_start_matches("sha256:").to_owned()
}
