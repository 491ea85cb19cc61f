//! The layout store against HOSTILE-INPUTS 1–10.

use super::*;

// ---- HOSTILE-INPUTS 1: oci-layout and index.json ----

fn expect_open_err(root: &Path) -> String {
    Layout::open(root).unwrap_err().to_string()
}

#[test]
fn hostile_01_oci_layout_missing_malformed_unknown_version() {
    let (_d, layout) = new_layout();
    let root = layout.root().to_owned();
    let marker = root.join("oci-layout");
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(
        expect_open_err(&root),
        format!(
            "{}: not an OCI image layout: the oci-layout file is missing",
            root.display()
        )
    );
    std::fs::write(&marker, b"{not json").unwrap();
    assert!(expect_open_err(&root).contains("oci-layout is malformed"));
    std::fs::write(&marker, br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    assert!(
        matches!(Layout::open(&root), Err(LayoutError::UnsupportedVersion { ref version, .. }) if version == "2.0.0")
    );
    assert!(matches!(
        Layout::open(root.join("nope")),
        Err(LayoutError::NotALayout { .. })
    ));
}

#[test]
fn hostile_01_index_json_empty_truncated_trailing_garbage() {
    let (_d, layout) = new_layout();
    let root = layout.root().to_owned();
    let index = root.join("index.json");
    let good = std::fs::read(&index).unwrap();
    for (bad, needle) in [
        (b"".to_vec(), "EOF while parsing"),
        (good[..good.len() - 5].to_vec(), "EOF while parsing"),
        ([good.clone(), b"garbage".to_vec()].concat(), "trailing characters"),
    ] {
        std::fs::write(&index, &bad).unwrap();
        let e = Layout::open(&root).unwrap_err();
        assert!(matches!(e, LayoutError::BadIndex { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("index.json") && msg.contains(needle) && msg.contains("restore index.json"),
            "{msg}"
        );
    }
    std::fs::remove_file(&index).unwrap();
    assert!(expect_open_err(&root).ends_with("index.json is missing"));
}

// ---- HOSTILE-INPUTS 2: digest strings ----

#[test]
fn hostile_02_traversal_digest_in_index_json_is_refused_by_name() {
    let (_d, layout) = new_layout();
    let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../x","size":1}]}"#;
    std::fs::write(layout.root().join("index.json"), index).unwrap();
    let e = Layout::open(layout.root()).unwrap_err();
    assert!(
        e.to_string()
            .contains(r#"invalid digest "sha256:../../x": sha256 needs 64 hex digits, found 7"#),
        "{e}"
    );
    for bad in [
        "SHA256:abc",
        "sha256:ABCDEF",
        "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ] {
        let idx = index.replace("sha256:../../x", bad);
        std::fs::write(layout.root().join("index.json"), idx).unwrap();
        let e = Layout::open(layout.root()).unwrap_err();
        assert!(e.to_string().contains(&format!("invalid digest {bad:?}")), "{e}");
    }
}

// ---- HOSTILE-INPUTS 3: blob missing, a directory, a FIFO, a symlink out ----

#[test]
fn hostile_03_blob_missing_directory_fifo_symlink() {
    let (dir, layout) = new_layout();
    let d = Digest::sha256(b"blob");
    assert!(matches!(layout.open_blob(&d, 4), Err(LayoutError::BlobMissing { .. })));
    let path = layout.blob_path(&d);
    std::fs::create_dir(&path).unwrap();
    let e = layout.open_blob(&d, 4).unwrap_err();
    assert!(
        matches!(e, LayoutError::BlobNotRegular { kind: "directory", .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&path.display().to_string()));
    std::fs::remove_dir(&path).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from(0o644),
        0,
    )
    .unwrap();
    let l2 = layout.clone();
    let d2 = d.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(l2.open_blob(&d2, 4).map(|_| ())));
    // A blocked open never answers; one that does not block answers at once (the timeout only bounds a failure).
    let opened = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("opening a FIFO blob must not block");
    assert!(matches!(opened, Err(LayoutError::BlobNotRegular { kind: "FIFO", .. })));
    std::fs::remove_file(&path).unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, b"blob").unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    assert!(matches!(
        layout.open_blob(&d, 4),
        Err(LayoutError::BlobNotRegular { kind: "symlink", .. })
    ));
    // Writing through the symlink must not touch the outside file.
    layout.writer().unwrap().put_bytes(b"blob", Algorithm::Sha256).unwrap();
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    // A symlinked blobs/sha256 directory is refused too.
    std::fs::remove_file(&path).unwrap();
    let sha = layout.root().join("blobs/sha256");
    std::fs::rename(&sha, dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &sha).unwrap();
    std::fs::write(dir.path().join("elsewhere").join(d.hex()), b"blob").unwrap();
    assert!(matches!(
        layout.open_blob(&d, 4),
        Err(LayoutError::BlobNotRegular { kind: "symlink", .. })
    ));
}

// ---- HOSTILE-INPUTS 4: content not matching; one byte longer or shorter ----

#[test]
fn hostile_04_blob_content_and_size_mismatch() {
    let (_d, layout) = new_layout();
    let d = Digest::sha256(b"12345");
    std::fs::write(layout.blob_path(&d), b"12346").unwrap();
    let e = layout.verify_blob(&d, 5).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Corrupt {
                error: VerifyError::DigestMismatch { .. },
                ..
            }
        ),
        "{e}"
    );
    std::fs::write(layout.blob_path(&d), b"123456").unwrap();
    assert!(matches!(
        layout.verify_blob(&d, 5),
        Err(LayoutError::Corrupt {
            error: VerifyError::TooLong { .. },
            ..
        })
    ));
    std::fs::write(layout.blob_path(&d), b"1234").unwrap();
    assert!(matches!(
        layout.verify_blob(&d, 5),
        Err(LayoutError::Corrupt {
            error: VerifyError::TooShort { found: 4, .. },
            ..
        })
    ));
    // fsck reports it.
    let img = TestImage::new("x");
    img.write(&layout, "x");
    std::fs::write(layout.blob_path(&Digest::sha256(&img.layer)), b"tampered").unwrap();
    let report = layout.fsck().unwrap();
    assert!(
        report.problems.iter().any(|p| matches!(p, Problem::Corrupt { .. })),
        "{report:?}"
    );
    assert!(layout.gc().is_ok() || !report.is_ok());
}

// ---- HOSTILE-INPUTS 5: negative and 2^63 sizes ----

#[test]
fn hostile_05_descriptor_sizes() {
    let (_d, layout) = new_layout();
    let img = TestImage::new("s");
    img.write(&layout, "s");
    let idx = std::fs::read_to_string(layout.root().join("index.json")).unwrap();
    let size = format!(r#""size":{}"#, img.manifest.len());
    std::fs::write(layout.root().join("index.json"), idx.replace(&size, r#""size":-1"#)).unwrap();
    let e = Layout::open(layout.root()).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::BadIndex {
                error: DocumentError::Json { .. },
                ..
            }
        ),
        "{e}"
    );
    std::fs::write(
        layout.root().join("index.json"),
        idx.replace(&size, r#""size":9223372036854775808"#),
    )
    .unwrap();
    let e = layout.load_image(Some("s"), &host()).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Document(DocumentError::TooLarge {
                size: 9223372036854775808,
                ..
            })
        ),
        "{e}"
    );
}

// ---- HOSTILE-INPUTS 6: ambiguous documents, mediaType disagreeing with the descriptor ----

#[test]
fn hostile_06_ambiguous_and_mismatching_documents() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let evil = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"layers":[],"config":{{"mediaType":"{}","digest":"{}","size":2}}}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG,
        Digest::sha256(b"{}")
    );
    let d = w.put_bytes(evil.as_bytes(), Algorithm::Sha256).unwrap();
    w.set_ref(
        "evil",
        &Descriptor::new(mt::OCI_MANIFEST.into(), evil.len() as u64, d.to_oci()),
    )
    .unwrap();
    let e = layout.load_image(Some("evil"), &host()).unwrap_err();
    assert!(
        matches!(e, LayoutError::Document(DocumentError::Ambiguous { .. })),
        "{e}"
    );

    let img = TestImage::new("m");
    img.write(&layout, "m");
    let mut desc = img.descriptor();
    desc.set_media_type(mt::DOCKER_MANIFEST.into());
    w.set_ref("m", &desc).unwrap();
    let e = layout.load_image(Some("m"), &host()).unwrap_err();
    assert!(
        matches!(e, LayoutError::Document(DocumentError::MediaTypeMismatch { ref descriptor, ref document, .. })
            if descriptor == mt::DOCKER_MANIFEST && document == mt::OCI_MANIFEST),
        "{e}"
    );
}

// ---- HOSTILE-INPUTS 7: unknown media types; non-distributable layers with urls ----

#[test]
fn hostile_07_unknown_media_types_and_foreign_layers() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let doc = br#"{"schemaVersion":2,"mediaType":"application/x-unknown","layers":[]}"#;
    let d = w.put_bytes(doc, Algorithm::Sha256).unwrap();
    w.set_ref(
        "odd",
        &Descriptor::new("application/x-unknown".into(), doc.len() as u64, d.to_oci()),
    )
    .unwrap();
    let e = layout.load_image(Some("odd"), &host()).unwrap_err();
    assert!(
        e.to_string()
            .contains(r#"unsupported media type "application/x-unknown""#),
        "{e}"
    );
    // An artifact whose config is not an image config is not an image.
    let art = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.example+json","digest":"{}","size":2}},"layers":[]}}"#,
        mt::OCI_MANIFEST,
        Digest::sha256(b"{}")
    );
    w.put_bytes(b"{}", Algorithm::Sha256).unwrap();
    let d = w.put_bytes(art.as_bytes(), Algorithm::Sha256).unwrap();
    w.set_ref(
        "art",
        &Descriptor::new(mt::OCI_MANIFEST.into(), art.len() as u64, d.to_oci()),
    )
    .unwrap();
    let e = layout.load_image(Some("art"), &host()).unwrap_err();
    assert!(e.to_string().contains("not a container image"), "{e}");
    // A foreign layer with urls may be absent from the layout without fsck calling it missing.
    let layer = Digest::sha256(b"foreign");
    let cfg = format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#);
    let c = w.put_bytes(cfg.as_bytes(), Algorithm::Sha256).unwrap();
    let m = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{layer}","size":7,"urls":["https://example.invalid/l"]}}]}}"#,
        mt::OCI_CONFIG,
        cfg.len(),
        mt::OCI_LAYER_ND_GZIP
    );
    let md = w.put_bytes(m.as_bytes(), Algorithm::Sha256).unwrap();
    w.set_ref(
        "foreign",
        &Descriptor::new(mt::OCI_MANIFEST.into(), m.len() as u64, md.to_oci()),
    )
    .unwrap();
    let report = layout.fsck().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

// ---- HOSTILE-INPUTS 8: huge documents, deep nesting, a child listed many times ----

#[test]
fn hostile_08_oversized_deep_and_repeated() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let big = vec![b' '; 5 * 1024 * 1024];
    let d = w.put_bytes(&big, Algorithm::Sha256).unwrap();
    w.set_ref(
        "big",
        &Descriptor::new(mt::OCI_MANIFEST.into(), big.len() as u64, d.to_oci()),
    )
    .unwrap();
    let e = layout.load_image(Some("big"), &host()).unwrap_err();
    assert!(
        matches!(e, LayoutError::Document(DocumentError::TooLarge { limit: 4194304, .. })),
        "{e}"
    );

    // Indexes nested 1,000 deep.
    let img = TestImage::new("deep");
    img.write(&layout, "leaf");
    let mut child = img.descriptor();
    let mut p = serde_json::Map::new();
    p.insert("os".into(), "linux".into());
    p.insert("architecture".into(), "amd64".into());
    for _ in 0..1000 {
        let mut c = serde_json::to_value(&child).unwrap();
        c["platform"] = serde_json::Value::Object(p.clone());
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": [c]});
        let bytes = serde_json::to_vec(&idx).unwrap();
        let d = w.put_bytes(&bytes, Algorithm::Sha256).unwrap();
        child = Descriptor::new(mt::OCI_INDEX.into(), bytes.len() as u64, d.to_oci());
    }
    w.set_ref("deep", &child).unwrap();
    let e = layout.load_image(Some("deep"), &host()).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::TooDeep {
                limit: MAX_INDEX_DEPTH,
                ..
            }
        ),
        "{e}"
    );
    let report = layout.fsck().unwrap();
    assert!(
        report.problems.iter().any(|p| p.to_string().contains("nest deeper")),
        "{:?}",
        report.problems
    );
    layout.delete_ref("deep").unwrap();
    layout.delete_ref("big").unwrap();

    // One child listed 20,000 times: checked once, quickly.
    let mut c = serde_json::to_value(img.descriptor()).unwrap();
    c["platform"] = serde_json::Value::Object(p);
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": vec![c; 20_000]});
    let bytes = serde_json::to_vec(&idx).unwrap();
    let d = w.put_bytes(&bytes, Algorithm::Sha256).unwrap();
    w.set_ref(
        "many",
        &Descriptor::new(mt::OCI_INDEX.into(), bytes.len() as u64, d.to_oci()),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let report = layout.fsck().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.reachable, 4, "the repeated child is visited once");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    layout.load_image(Some("many"), &host()).unwrap();
}

// ---- HOSTILE-INPUTS 9: diff_ids count; a layer whose uncompressed digest differs ----

#[test]
fn hostile_09_diff_ids() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let img = TestImage::new("d");
    let raw = String::from_utf8(img.config.clone()).unwrap();
    let diff = Digest::sha256("layer content d".repeat(50).as_bytes());
    let two = raw.replace(&format!(r#"["{diff}"]"#), &format!(r#"["{diff}","{diff}"]"#));
    assert_ne!(two, raw);
    let man = String::from_utf8(img.manifest.clone()).unwrap();
    let put_image = |config: &str, name: &str| {
        let cd = w.put_bytes(config.as_bytes(), Algorithm::Sha256).unwrap();
        let m = man
            .replace(&Digest::sha256(&img.config).to_string(), &cd.to_string())
            .replace(
                &format!(r#""size":{}"#, img.config.len()),
                &format!(r#""size":{}"#, config.len()),
            );
        w.put_bytes(&img.layer, Algorithm::Sha256).unwrap();
        let md = w.put_bytes(m.as_bytes(), Algorithm::Sha256).unwrap();
        w.set_ref(
            name,
            &Descriptor::new(mt::OCI_MANIFEST.into(), m.len() as u64, md.to_oci()),
        )
        .unwrap();
    };
    put_image(&two, "count");
    let e = layout.load_image(Some("count"), &host()).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Document(DocumentError::DiffIdCount {
                layers: 1,
                diff_ids: 2,
                ..
            })
        ),
        "{e}"
    );

    let wrong = raw.replace(&diff.to_string(), &Digest::sha256(b"something else").to_string());
    put_image(&wrong, "wrong");
    let image = layout.load_image(Some("wrong"), &host()).unwrap();
    let e = layout.verify_diff_ids(&image).unwrap_err();
    assert!(
        matches!(e, LayoutError::DiffId(crate::diff_id::DiffIdError::Mismatch { ref found, .. }) if *found == diff),
        "{e}"
    );
}

// ---- HOSTILE-INPUTS 10: duplicate ref names; no manifest for the platform ----

#[test]
fn hostile_10_duplicate_ref_names_and_missing_platform() {
    let (_d, layout) = new_layout();
    let a = TestImage::new("a");
    let b = TestImage::new("b");
    a.write(&layout, "dup");
    b.write(&layout, "other");
    let idx = std::fs::read_to_string(layout.root().join("index.json")).unwrap();
    std::fs::write(layout.root().join("index.json"), idx.replace("\"other\"", "\"dup\"")).unwrap();
    let e = layout.load_image(Some("dup"), &host()).unwrap_err();
    assert!(matches!(e, LayoutError::AmbiguousRef { count: 2, .. }), "{e}");
    assert!(e.to_string().contains(r#"2 entries of index.json are named "dup""#));
    assert!(matches!(
        layout.resolve(None),
        Err(LayoutError::RefRequired { count: 2, .. })
    ));

    let w = layout.writer().unwrap();
    let mut c = serde_json::to_value(a.descriptor()).unwrap();
    c["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
    let bytes = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [c]})).unwrap();
    let d = w.put_bytes(&bytes, Algorithm::Sha256).unwrap();
    w.set_ref(
        "arm",
        &Descriptor::new(mt::OCI_INDEX.into(), bytes.len() as u64, d.to_oci()),
    )
    .unwrap();
    let e = layout.load_image(Some("arm"), &host()).unwrap_err();
    assert!(
        e.to_string()
            .contains("no manifest for platform linux/amd64; the index offers: linux/arm64"),
        "{e}"
    );
    layout
        .load_image(Some("arm"), &Platform::parse("linux/arm64").unwrap())
        .unwrap();
}

#[test]
fn invalid_ref_names_are_refused() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let d = TestImage::new("r").descriptor();
    for bad in ["", "a//b", "-a", "a b", "a:", "../x"] {
        assert!(
            matches!(w.set_ref(bad, &d), Err(LayoutError::InvalidRefName { .. })),
            "{bad}"
        );
    }
}

/// `index.json` or `oci-layout` that is a FIFO, a directory or a symlink: refused at once, never followed and
/// never blocked on.
#[test]
fn hostile_01_layout_files_that_are_not_regular_files() {
    for name in ["index.json", "oci-layout"] {
        for kind in ["FIFO", "directory", "symbolic link"] {
            let (dir, layout) = new_layout();
            let path = layout.root().join(name);
            std::fs::remove_file(&path).unwrap();
            match kind {
                "FIFO" => rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from(0o644),
                    0,
                )
                .unwrap(),
                "directory" => std::fs::create_dir(&path).unwrap(),
                _ => {
                    let outside = dir.path().join("elsewhere");
                    std::fs::write(&outside, br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
                    std::os::unix::fs::symlink(&outside, &path).unwrap();
                }
            }
            let root = layout.root().to_owned();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(expect_open_err(&root)));
            let e = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("opening a layout whose {name} is a {kind} blocked"));
            assert!(
                e.contains(name) && e.contains(&format!("is a {kind}")) && e.contains("regular file"),
                "{name} as a {kind}: {e}"
            );
        }
    }
}
