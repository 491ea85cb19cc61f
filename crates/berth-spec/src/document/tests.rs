use super::*;

const H1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const H2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn manifest_json(media_type: Option<&str>) -> String {
    let mt = media_type.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{H1}","size":7}},
        "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{H2}","size":32}}],"x-unknown":{{"b":1,"a":2}}}}"#
    )
}

fn ex(source: &str) -> Expect<'_> {
    Expect::from_source(source)
}

#[test]
fn manifest_keeps_its_exact_bytes_and_digest() {
    let json = manifest_json(Some(media_type::OCI_MANIFEST));
    let m = parse_manifest(json.clone().into_bytes(), ex("m")).unwrap();
    assert_eq!(m.bytes(), json.as_bytes());
    assert_eq!(m.digest(), &Digest::sha256(json.as_bytes()));
    assert_eq!(m.parsed().layers().len(), 1);
    // Re-serializing would lose the unknown field: the kept bytes are what the digest covers.
    let reser = serde_json::to_vec(m.parsed()).unwrap();
    assert_ne!(Digest::sha256(&reser), *m.digest());
    assert_eq!(m.descriptor().size(), json.len() as u64);
}

#[test]
fn ambiguous_document_is_refused() {
    let json = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"config":{{"mediaType":"x","digest":"{H1}","size":1}}}}"#,
        media_type::OCI_INDEX
    );
    let e = parse_manifest_or_index(json.into_bytes(), ex("img")).unwrap_err();
    assert!(
        matches!(e, DocumentError::Ambiguous { ref source_name } if source_name == "img"),
        "{e}"
    );
    assert!(e.to_string().contains("CVE-2021-41190"));
    let json = r#"{"schemaVersion":2,"manifests":[],"layers":[]}"#.to_string();
    assert!(matches!(
        parse_manifest_or_index(json.into_bytes(), ex("x")),
        Err(DocumentError::Ambiguous { .. })
    ));
}

#[test]
fn media_type_mismatch_with_descriptor_is_refused() {
    let json = manifest_json(Some(media_type::OCI_MANIFEST));
    let d = Digest::sha256(json.as_bytes());
    let e = parse_manifest_or_index(
        json.into_bytes(),
        ex("ref").with_descriptor(&d, Some(media_type::DOCKER_MANIFEST)),
    )
    .unwrap_err();
    assert!(
        matches!(e, DocumentError::MediaTypeMismatch { ref descriptor, ref document, .. }
            if descriptor == media_type::DOCKER_MANIFEST && document == media_type::OCI_MANIFEST),
        "{e}"
    );
}

#[test]
fn descriptor_says_index_but_document_is_a_manifest() {
    let json = manifest_json(None);
    let e = parse_manifest_or_index(
        json.into_bytes(),
        Expect {
            media_type: Some(media_type::OCI_INDEX),
            ..ex("r")
        },
    )
    .unwrap_err();
    assert!(matches!(e, DocumentError::MediaTypeMismatch { .. }), "{e}");
}

#[test]
fn manifest_without_media_type_takes_descriptor_or_structure() {
    let m = parse_manifest(manifest_json(None).into_bytes(), ex("m")).unwrap();
    assert_eq!(m.media_type(), media_type::OCI_MANIFEST);
    let m = parse_manifest(
        manifest_json(None).into_bytes(),
        Expect {
            media_type: Some(media_type::DOCKER_MANIFEST),
            ..ex("m")
        },
    )
    .unwrap();
    assert_eq!(m.media_type(), media_type::DOCKER_MANIFEST);
}

#[test]
fn oversized_document_is_refused_before_parsing() {
    let big = vec![b' '; (DEFAULT_MAX_DOCUMENT_SIZE + 1) as usize];
    let e = parse_manifest_or_index(big, ex("huge")).unwrap_err();
    assert!(
        matches!(
            e,
            DocumentError::TooLarge {
                limit: DEFAULT_MAX_DOCUMENT_SIZE,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn non_canonical_descriptor_digest_is_refused() {
    let json = manifest_json(None).replace(H2, &H2.replace("22", "2A"));
    let e = parse_manifest(json.into_bytes(), ex("m")).unwrap_err();
    assert!(
        matches!(
            e,
            DocumentError::BadDigest {
                error: DigestError::BadHex { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("sha256:2A2A"), "the error names the string: {e}");
    let json = manifest_json(None).replace(H2, "sha256:../../x");
    let e = parse_manifest(json.into_bytes(), ex("m")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "m: invalid digest \"sha256:../../x\": sha256 needs 64 hex digits, found 7"
    );
    // An algorithm oci-spec accepts but Berth does not compute is refused by Berth's check.
    let json = manifest_json(None).replace(H2, "md5:d41d8cd98f00b204e9800998ecf8427e");
    let e = parse_manifest(json.into_bytes(), ex("m")).unwrap_err();
    assert!(
        matches!(
            e,
            DocumentError::BadDigest {
                error: DigestError::UnsupportedAlgorithm { .. },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn negative_size_is_a_parse_error() {
    let json = manifest_json(None).replace(r#""size":32"#, r#""size":-1"#);
    let e = parse_manifest(json.into_bytes(), ex("m")).unwrap_err();
    assert!(matches!(e, DocumentError::Json { .. }), "{e}");
}

#[test]
fn schema1_and_unknown_types_are_refused() {
    let json =
        r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws","fsLayers":[]}"#;
    let e = parse_manifest_or_index(json.as_bytes().to_vec(), ex("old")).unwrap_err();
    assert!(e.to_string().contains("schema 1 is obsolete"), "{e}");
    let json = r#"{"schemaVersion":2,"mediaType":"application/x-foo","layers":[]}"#;
    assert!(matches!(
        parse_manifest_or_index(json.as_bytes().to_vec(), ex("x")),
        Err(DocumentError::Unsupported { .. })
    ));
    let json = manifest_json(None).replace(r#""schemaVersion":2"#, r#""schemaVersion":3"#);
    assert!(matches!(
        parse_manifest(json.into_bytes(), ex("x")),
        Err(DocumentError::SchemaVersion { found: Some(3), .. })
    ));
}

#[test]
fn digest_mismatch_is_detected() {
    let json = manifest_json(None);
    let wrong = Digest::sha256(b"other");
    let e = parse_manifest(json.into_bytes(), ex("m").with_descriptor(&wrong, None)).unwrap_err();
    assert!(matches!(e, DocumentError::DigestMismatch { .. }), "{e}");
}

#[test]
fn diff_id_count_mismatch() {
    let m = parse_manifest(manifest_json(None).into_bytes(), ex("m")).unwrap();
    let cfg =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{H1}","{H2}"]}}}}"#);
    let c = parse_config(cfg.into_bytes(), ex("c")).unwrap();
    let e = check_diff_id_count(m.parsed(), c.parsed(), "img").unwrap_err();
    assert!(
        matches!(
            e,
            DocumentError::DiffIdCount {
                layers: 1,
                diff_ids: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn config_with_bad_diff_id_is_refused() {
    let cfg = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:../../x"]}}"#;
    assert!(matches!(
        parse_config(cfg.as_bytes().to_vec(), ex("c")),
        Err(DocumentError::BadDigest { .. })
    ));
}

/// serde reads a struct from a JSON array, field by position, so this config parsed; Go's encoding/json (and so
/// every other tool) refuses it. Found while checking the class of berth-fuzz's `auth` finding (a token response
/// given as an array); the `document` target's oracle now refuses non-objects.
#[test]
fn config_that_is_a_json_array_is_refused() {
    let cfg = r#" [null,null,"amd64","linux",null,null,null,null,["layers",[]],null]"#;
    let e = parse_config(cfg.as_bytes().to_vec(), ex("c")).unwrap_err();
    assert!(matches!(e, DocumentError::Json { .. }), "{e:?}");
    assert!(e.to_string().contains("expected a JSON object"), "{e}");
    let manifest = format!(r#"[2,null,null,{{"mediaType":"x","digest":"{H1}","size":1}},[],null,null]"#);
    assert!(parse_manifest_or_index(manifest.into_bytes(), ex("m")).is_err());
}

#[test]
fn docker_manifest_list_parses_as_index() {
    let json = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{H1}","size":10,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        media_type::DOCKER_MANIFEST_LIST,
        media_type::DOCKER_MANIFEST
    );
    let i = parse_index(json.into_bytes(), ex("list")).unwrap();
    assert_eq!(i.media_type(), media_type::DOCKER_MANIFEST_LIST);
    assert_eq!(i.parsed().manifests().len(), 1);
}
