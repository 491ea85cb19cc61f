//! The `document` target: manifests, indexes and configs through berth-spec's document parsers, and what the
//! tools then do with a parsed document (platform selection, image-config to runtime-config conversion).
//!
//! # Input
//!
//! The first byte chooses the parser and what the caller claims; the rest is the document:
//!
//! | bits | meaning |
//! |------|---------|
//! | 0-1  | `parse_manifest_or_index`, `parse_manifest`, `parse_index`, `parse_config` |
//! | 2-4  | the descriptor's media type: none, OCI or Docker manifest, index or list, config, or an unknown type |
//! | 5    | the descriptor's digest is given (the document's own, so the check passes) |
//! | 6    | the descriptor's digest is given but is another document's |
//!
//! # Oracle
//!
//! No panic, and a document that parses is what berth-spec promises: its bytes are the input, its digest is
//! theirs, every descriptor digest is canonical, it is not both an index and a manifest (CVE-2021-41190), its
//! media type agrees with the descriptor's, and it is no larger than the cap. A config converts to a runtime
//! config or is refused, and a converted config keeps the conversion's documented invariants (arguments
//! non-empty, environment entries `KEY=VALUE` without NUL and with unique keys including `PATH`, an absolute
//! normalized working directory, volumes absolute, normalized, sorted, unique and never `/`).

use berth_spec::Digest;
use berth_spec::document::{self, DEFAULT_MAX_DOCUMENT_SIZE, Document, Expect, ManifestOrIndex};
use berth_spec::media_type;
use berth_spec::platform::{self, Platform};
use berth_spec::runtime_config::{self, Overrides};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

const MEDIA_TYPES: [Option<&str>; 8] = [
    None,
    Some(media_type::OCI_MANIFEST),
    Some(media_type::OCI_INDEX),
    Some(media_type::DOCKER_MANIFEST),
    Some(media_type::DOCKER_MANIFEST_LIST),
    Some(media_type::OCI_CONFIG),
    Some(media_type::DOCKER_CONFIG),
    Some("application/vnd.example.unknown+json"),
];

/// Which parser the first byte selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    /// `parse_manifest_or_index`.
    ManifestOrIndex,
    /// `parse_manifest`.
    Manifest,
    /// `parse_index`.
    Index,
    /// `parse_config`.
    Config,
}

/// Builds an input of the `document` target: `media_type` indexes the table above (0 for none).
pub fn encode(parser: Parser, media_type: u8, own_digest: bool, other_digest: bool, doc: &[u8]) -> Vec<u8> {
    let mut mode = match parser {
        Parser::ManifestOrIndex => 0,
        Parser::Manifest => 1,
        Parser::Index => 2,
        Parser::Config => 3,
    };
    mode |= (media_type & 7) << 2;
    if own_digest {
        mode |= 1 << 5;
    }
    if other_digest {
        mode |= 1 << 6;
    }
    let mut out = vec![mode];
    out.extend_from_slice(doc);
    out
}

/// The target.
pub fn run(data: &[u8]) {
    let Some((&mode, doc)) = data.split_first() else { return };
    let media_type = MEDIA_TYPES[usize::from((mode >> 2) & 7)];
    let own = Digest::sha256(doc);
    let other = Digest::sha256(b"another document");
    let mut ex = Expect::from_source("fuzz-input");
    if mode & (1 << 6) != 0 {
        ex = ex.with_descriptor(&other, media_type);
    } else if mode & (1 << 5) != 0 {
        ex = ex.with_descriptor(&own, media_type);
    } else {
        ex.media_type = media_type;
    }
    let bytes = doc.to_vec();
    match mode & 3 {
        0 => match document::parse_manifest_or_index(bytes, ex) {
            Ok(ManifestOrIndex::Manifest(m)) => check_manifest(doc, &ex, &m),
            Ok(ManifestOrIndex::Index(i)) => check_index(doc, &ex, &i),
            Err(e) => rendered(&e),
        },
        1 => match document::parse_manifest(bytes, ex) {
            Ok(m) => check_manifest(doc, &ex, &m),
            Err(e) => rendered(&e),
        },
        2 => match document::parse_index(bytes, ex) {
            Ok(i) => check_index(doc, &ex, &i),
            Err(e) => rendered(&e),
        },
        _ => match document::parse_config(bytes, ex) {
            Ok(c) => check_config(doc, &ex, &c),
            Err(e) => rendered(&e),
        },
    }
}

fn rendered(e: &document::DocumentError) {
    let message = e.to_string();
    assert!(
        message.contains("fuzz-input"),
        "the error does not name its source: {message}"
    );
}

/// What every parsed document must satisfy.
fn check_common<T>(doc: &[u8], ex: &Expect<'_>, d: &Document<T>) -> serde_json::Value {
    assert_eq!(d.bytes(), doc, "the document's bytes are not the bytes received");
    assert_eq!(d.digest(), &Digest::sha256(doc), "the digest is not the bytes' digest");
    if let Some(expected) = ex.digest {
        assert_eq!(d.digest(), expected);
    }
    assert!(d.size() <= DEFAULT_MAX_DOCUMENT_SIZE);
    assert_eq!(d.descriptor().size(), d.size());
    // serde skips unknown fields without checking their strings are UTF-8 or their numbers fit a float (as Go's
    // encoding/json does), so a parsed document may hold such values there; the structure is all that is
    // compared, where a JSON value can be built.
    let value = serde_json::from_str(&String::from_utf8_lossy(doc)).unwrap_or(serde_json::Value::Null);
    assert!(
        value.is_object() || value.is_null(),
        "accepted a document that is not a JSON object (other tools refuse it): {value}"
    );
    value
}

/// What a parsed manifest or index must satisfy beyond [`check_common`].
fn check_manifest_or_index<T>(doc: &[u8], ex: &Expect<'_>, d: &Document<T>) {
    let value = check_common(doc, ex, d);
    let has = |k: &str| value.get(k).is_some_and(|v| !v.is_null());
    assert!(
        !(has("manifests") && (has("layers") || has("config"))),
        "an ambiguous document (manifests and layers/config) was accepted (CVE-2021-41190)"
    );
    assert_eq!(value.get("schemaVersion").and_then(|v| v.as_u64()), Some(2));
    if let Some(inner) = value.get("mediaType").and_then(|v| v.as_str()) {
        assert_eq!(d.media_type(), inner, "the parsed media type is not the document's");
        if let Some(outer) = ex.media_type {
            assert_eq!(
                inner, outer,
                "the document's media type disagrees with the descriptor's"
            );
        }
    }
}

fn canonical(descriptors: &[Descriptor]) {
    for d in descriptors {
        let parsed = Digest::from_oci(d.digest()).expect("every descriptor digest in a parsed document is canonical");
        assert_eq!(parsed.to_string(), d.digest().to_string());
    }
}

fn check_manifest(doc: &[u8], ex: &Expect<'_>, m: &Document<ImageManifest>) {
    check_manifest_or_index(doc, ex, m);
    assert!(
        media_type::is_manifest(m.media_type()),
        "{} is not a manifest type",
        m.media_type()
    );
    let manifest = m.parsed();
    canonical(std::slice::from_ref(manifest.config()));
    canonical(manifest.layers());
    for layer in manifest.layers() {
        let _ = media_type::layer_compression(layer.media_type().as_ref());
    }
}

fn check_index(doc: &[u8], ex: &Expect<'_>, i: &Document<ImageIndex>) {
    check_manifest_or_index(doc, ex, i);
    assert!(
        media_type::is_index(i.media_type()),
        "{} is not an index type",
        i.media_type()
    );
    let index = i.parsed();
    canonical(index.manifests());
    for wanted in [Platform::host(), Platform::new("linux", "arm", Some("v7"))] {
        if let Ok(d) = platform::select(index, &wanted, "fuzz-input") {
            let chosen = Platform::of_descriptor(d).expect("a selected manifest has a platform");
            assert!(wanted.matches(&chosen), "selected {chosen} for {wanted}");
        }
    }
}

fn check_config(doc: &[u8], ex: &Expect<'_>, c: &Document<ImageConfiguration>) {
    check_common(doc, ex, c);
    let config = c.parsed();
    for d in config.rootfs().diff_ids() {
        Digest::parse(d).expect("every diff_id of a parsed config is canonical");
    }
    let overrides = [
        Overrides::default(),
        Overrides {
            entrypoint: Some(vec![]),
            cmd: Some(vec!["sh".to_owned()]),
            env: vec!["A=1".to_owned()],
            workdir: Some("/w".to_owned()),
            user: Some("1:1".to_owned()),
        },
    ];
    for o in &overrides {
        let Ok(rc) = runtime_config::convert(config, o) else {
            continue;
        };
        assert!(!rc.args.is_empty(), "converted with no arguments");
        let mut keys = Vec::new();
        for e in &rc.env {
            let (k, _) = e.split_once('=').expect("every env entry is KEY=VALUE");
            assert!(!k.is_empty() && !e.contains('\0'), "bad env entry {e:?}");
            keys.push(k);
        }
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate env keys in {:?}", rc.env);
        assert!(keys.contains(&"PATH"), "no PATH in {:?}", rc.env);
        assert!(normalized_absolute(&rc.cwd), "cwd {:?}", rc.cwd);
        for v in &rc.volumes {
            assert!(normalized_absolute(v) && v != "/", "volume {v:?}");
        }
        assert!(
            rc.volumes.windows(2).all(|w| w[0] < w[1]),
            "volumes not sorted and unique: {:?}",
            rc.volumes
        );
        assert!(rc.exposed_ports.windows(2).all(|w| w[0] <= w[1]));
    }
}

/// Starts with `/`, has no empty, `.` or `..` component, and no trailing `/` (except `/` itself).
fn normalized_absolute(p: &str) -> bool {
    p == "/" || (p.starts_with('/') && p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// Seed inputs: real documents of every kind, and the hostile ones of HOSTILE-INPUTS.md items 2 and 5-10.
pub fn seeds() -> Vec<Vec<u8>> {
    let d = |s: &str| Digest::sha256(s.as_bytes()).to_string();
    let (c, l1, l2, m1, m2) = (d("config"), d("layer1"), d("layer2"), d("m1"), d("m2"));
    let oci_manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":1234}},"layers":[{{"mediaType":"{}","digest":"{l1}","size":100}},{{"mediaType":"{}","digest":"{l2}","size":200,"urls":["https://foreign.example/l"],"annotations":{{"a":"b"}}}}],"annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}},"subject":{{"mediaType":"{}","digest":"{m1}","size":5}},"artifactType":"application/x"}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        media_type::OCI_LAYER_GZIP,
        media_type::OCI_LAYER_ND_ZSTD,
        media_type::OCI_MANIFEST,
    );
    let docker_manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":7023}},"layers":[{{"mediaType":"{}","digest":"{l1}","size":32654}}]}}"#,
        media_type::DOCKER_MANIFEST,
        media_type::DOCKER_CONFIG,
        media_type::DOCKER_LAYER_GZIP,
    );
    let oci_index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{m1}","size":500,"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{}","digest":"{m2}","size":501,"platform":{{"architecture":"arm","os":"linux","variant":"v7","os.features":["x"]}},"annotations":{{"org.opencontainers.image.ref.name":"app:1"}}}}]}}"#,
        media_type::OCI_INDEX,
        media_type::OCI_MANIFEST,
        media_type::OCI_MANIFEST,
    );
    let docker_list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{m1}","size":500,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#,
        media_type::DOCKER_MANIFEST_LIST,
        media_type::DOCKER_MANIFEST,
    );
    let config = format!(
        r#"{{"created":"2024-01-01T00:00:00Z","author":"me","architecture":"amd64","os":"linux","config":{{"User":"1000:1000","ExposedPorts":{{"80/tcp":{{}},"53/udp":{{}}}},"Env":["PATH=/usr/bin:/bin","A=b=c"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"Volumes":{{"/data":{{}},"/a/../b":{{}}}},"WorkingDir":"/srv/../app","Labels":{{"org.opencontainers.image.os":"label"}},"StopSignal":"SIGTERM"}},"rootfs":{{"type":"layers","diff_ids":["{l1}","{l2}"]}},"history":[{{"created_by":"x"}},{{"empty_layer":true}}]}}"#
    );
    let hostile_config = r#"{"architecture":"amd64","os":"linux","config":{"User":"4294967296","Env":["NOEQUALS","A=1","A=2","B=\u0000"],"WorkingDir":"/proc/self/fd/3","Volumes":{"/":{},"../..":{},"relative":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:ABC"]}}"#;
    let ambiguous = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{m1}","size":1}}],"config":{{"mediaType":"{}","digest":"{c}","size":1}},"layers":[]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
    );
    let bad_digest = oci_manifest.replace(&l1, "sha256:../../etc/passwd");
    let huge_size = oci_manifest.replace("\"size\":100", "\"size\":18446744073709551615");
    let negative_size = oci_manifest.replace("\"size\":100", "\"size\":-1");
    let schema1 = format!(
        r#"{{"schemaVersion":1,"mediaType":"{}"}}"#,
        media_type::DOCKER_MANIFEST_V1_SIGNED
    );
    let no_media_type = oci_index.replacen(&format!(r#""mediaType":"{}","#, media_type::OCI_INDEX), "", 1);
    let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let mut out = Vec::new();
    for (doc, parser, mt) in [
        (oci_manifest.as_str(), Parser::ManifestOrIndex, 1),
        (oci_manifest.as_str(), Parser::Manifest, 0),
        (docker_manifest.as_str(), Parser::ManifestOrIndex, 3),
        (oci_index.as_str(), Parser::ManifestOrIndex, 2),
        (oci_index.as_str(), Parser::Index, 0),
        (docker_list.as_str(), Parser::ManifestOrIndex, 4),
        (no_media_type.as_str(), Parser::ManifestOrIndex, 0),
        (config.as_str(), Parser::Config, 5),
        (config.as_str(), Parser::Config, 6),
        (hostile_config, Parser::Config, 0),
        (ambiguous.as_str(), Parser::ManifestOrIndex, 0),
        (bad_digest.as_str(), Parser::ManifestOrIndex, 1),
        (huge_size.as_str(), Parser::Manifest, 1),
        (negative_size.as_str(), Parser::Manifest, 1),
        (schema1.as_str(), Parser::ManifestOrIndex, 0),
        (oci_manifest.as_str(), Parser::ManifestOrIndex, 2),
        (nested.as_str(), Parser::Config, 0),
        ("", Parser::ManifestOrIndex, 0),
    ] {
        out.push(encode(parser, mt, false, false, doc.as_bytes()));
    }
    out.push(encode(Parser::ManifestOrIndex, 1, true, false, oci_manifest.as_bytes()));
    out.push(encode(Parser::Index, 2, false, true, oci_index.as_bytes()));
    out
}
