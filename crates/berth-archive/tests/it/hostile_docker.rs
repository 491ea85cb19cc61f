//! Hostile docker-archives: refused with an error naming the member or image; imports leave no ref behind.

use std::fs::OpenOptions;
use std::io::Write;

use anyhow::Result;
use berth_archive::{ArchiveError, DockerArchiveReader, import_docker_archive};
use berth_spec::layout::Layout;
use berth_spec::media_type::Compression;
use berth_testkit::image::gzip;
use serde_json::json;
use tar::EntryType;

use crate::craft::{self, DockerParts, RawTar};

fn open(t: &RawTar) -> Result<(tempfile::TempDir, Result<DockerArchiveReader, ArchiveError>)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("saved.tar");
    t.write(&path)?;
    let r = DockerArchiveReader::open(&path);
    Ok((dir, r))
}

fn refused(t: &RawTar, needle: &str) -> Result<ArchiveError> {
    let (_dir, r) = open(t)?;
    let e = r.expect_err("a hostile archive was accepted");
    assert!(e.to_string().contains(needle), "error does not mention {needle:?}: {e}");
    Ok(e)
}

fn parts() -> DockerParts {
    DockerParts::new(vec![craft::extra_layer()], None)
}

#[test]
fn a_crafted_archive_with_compressed_and_linked_layers_imports() -> Result<()> {
    let plain = craft::extra_layer();
    let p = DockerParts::new(vec![plain.clone(), plain.clone(), plain.clone()], None);
    let mut t = RawTar::new();
    t.dir("./")
        .file(&p.config_name, &p.config)
        .file("L0/layer.tar", &gzip(&plain));
    t.file("L1/layer.tar", &zstd::encode_all(&plain[..], 3)?);
    // Old `docker save` links a repeated layer to its first copy.
    t.symlink("L2/layer.tar", "../L0/layer.tar");
    let manifest = json!([{"Config": p.config_name, "RepoTags": null,
        "Layers": ["L0/layer.tar", "./L1//layer.tar", "L2/layer.tar"]}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest)?);
    let (dir, r) = open(&t)?;
    let reader = r?;
    let image = reader.only()?;
    assert_eq!(reader.config_bytes(image)?, p.config);
    let layout = Layout::create(dir.path().join("dest"))?;
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        import_docker_archive(&reader, image, &layout, Some("x"), c)?;
        assert_eq!(craft::layer_contents(&layout, "x")?, vec![plain.clone(); 3]);
    }
    Ok(())
}

#[test]
fn unsafe_members_are_refused() -> Result<()> {
    let with = |f: &dyn Fn(&mut RawTar)| {
        let mut t = RawTar::new();
        parts().add_to(&mut t, "x:1");
        f(&mut t);
        t
    };
    refused(
        &with(&|t| {
            t.file("../x", b"");
        }),
        "../x",
    )?;
    refused(
        &with(&|t| {
            t.file("/abs", b"");
        }),
        "/abs",
    )?;
    refused(
        &with(&|t| {
            t.symlink("out/layer.tar", "../../etc/passwd");
        }),
        "out/layer.tar",
    )?;
    refused(
        &with(&|t| {
            t.symlink("abs/layer.tar", "/etc/passwd");
        }),
        "abs/layer.tar",
    )?;
    refused(
        &with(&|t| {
            t.hardlink("hard", "../x");
        }),
        "hard",
    )?;
    refused(
        &with(&|t| {
            t.member("dev", EntryType::Block, b"", "", None);
        }),
        "dev",
    )?;
    let e = refused(
        &with(&|t| {
            t.file("./manifest.json", b"[]");
        }),
        "manifest.json",
    )?;
    assert!(e.to_string().contains("twice"), "{e}");
    Ok(())
}

#[test]
fn manifests_pointing_at_missing_or_escaping_paths_are_refused() -> Result<()> {
    let p = parts();
    for (layers, needle) in [
        (json!(["missing/layer.tar"]), "missing/layer.tar"),
        (json!(["../L0/layer.tar"]), "../L0/layer.tar"),
        (json!(["/L0/layer.tar"]), "/L0/layer.tar"),
        (json!(["L0"]), "directory"),
    ] {
        let mut t = RawTar::new();
        t.file(&p.config_name, &p.config)
            .dir("L0")
            .file("L0/layer.tar", &p.layers[0]);
        let manifest = json!([{"Config": p.config_name, "RepoTags": ["x:1"], "Layers": layers}]);
        t.file("manifest.json", &serde_json::to_vec(&manifest)?);
        refused(&t, needle)?;
    }
    // A link loop.
    let mut t = RawTar::new();
    t.file(&p.config_name, &p.config).symlink("a", "b").symlink("b", "a");
    let manifest = json!([{"Config": p.config_name, "RepoTags": [], "Layers": ["a"]}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest)?);
    refused(&t, "links in a row")?;
    for (body, needle) in [
        (&b"{}"[..], "malformed"),
        (b"[]", "no images"),
        (b"[{\"Config\": 1}]", "malformed"),
    ] {
        let mut t = RawTar::new();
        t.file("manifest.json", body);
        refused(&t, needle)?;
    }
    refused(RawTar::new().file("other", b""), "no manifest.json")?;
    Ok(())
}

#[test]
fn configs_that_lie_are_refused() -> Result<()> {
    // Two layers, one diff_id.
    let plain = craft::extra_layer();
    let p = DockerParts::new(
        vec![plain.clone(), plain.clone()],
        Some(vec![berth_spec::Digest::sha256(&plain).to_string()]),
    );
    let mut t = RawTar::new();
    p.add_to(&mut t, "x:1");
    let (_dir, r) = open(&t)?;
    let reader = r?;
    let e = reader.config_bytes(&reader.images()[0]).unwrap_err();
    assert!(
        matches!(
            e,
            ArchiveError::LayerCount {
                layers: 2,
                diff_ids: 1,
                ..
            }
        ),
        "{e}"
    );

    // A config whose content does not match its `<hex>.json` name.
    let mut p = parts();
    p.config_name = format!("{}.json", "a".repeat(64));
    let mut t = RawTar::new();
    p.add_to(&mut t, "x:1");
    let (_dir, r) = open(&t)?;
    let reader = r?;
    let e = reader.config_bytes(&reader.images()[0]).unwrap_err();
    assert!(matches!(e, ArchiveError::DigestMismatch { .. }), "{e}");
    Ok(())
}

#[test]
fn a_layer_that_differs_from_its_diff_id_is_not_imported() -> Result<()> {
    let p = DockerParts::new(
        vec![craft::extra_layer()],
        Some(vec![berth_spec::Digest::sha256(b"other").to_string()]),
    );
    let mut t = RawTar::new();
    p.add_to(&mut t, "x:1");
    let (dir, r) = open(&t)?;
    let reader = r?;
    let layout = Layout::create(dir.path().join("dest"))?;
    for c in [Compression::Gzip, Compression::None] {
        let e = import_docker_archive(&reader, &reader.images()[0], &layout, Some("x"), c).unwrap_err();
        assert!(matches!(e, ArchiveError::DiffIdMismatch { .. }), "{e}");
        assert!(e.to_string().contains("L0/layer.tar"), "{e}");
    }
    assert!(layout.refs()?.is_empty());
    assert!(
        layout.fsck()?.dangling.is_empty(),
        "a blob of the refused layer was stored"
    );
    Ok(())
}

#[test]
fn a_100_mb_config_claim_is_refused_without_reading_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.tar");
    let p = parts();
    let mut t = RawTar::new();
    let manifest = json!([{"Config": "big.json", "RepoTags": ["x:1"], "Layers": ["L0/layer.tar"]}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest)?)
        .file("L0/layer.tar", &p.layers[0]);
    t.member("big.json", EntryType::Regular, b"", "", Some(100 << 20));
    std::fs::write(&path, &t.bytes)?;
    // The claimed data exists (as a hole), then the end blocks.
    let f = OpenOptions::new().append(true).open(&path)?;
    f.set_len(t.bytes.len() as u64 + (100 << 20))?;
    (&f).write_all(&[0u8; 1024])?;
    let reader = DockerArchiveReader::open(&path)?;
    let e = reader.config_bytes(&reader.images()[0]).unwrap_err();
    assert!(
        matches!(e, ArchiveError::TooLarge { size, .. } if size == 100 << 20),
        "{e}"
    );
    assert!(e.to_string().contains("big.json"), "{e}");

    // The same claim in a file that ends early is a truncated archive.
    let mut t = RawTar::new();
    t.file("manifest.json", b"[]")
        .member("big.json", EntryType::Regular, b"", "", Some(100 << 20));
    let (_d, r) = open(&t)?;
    let e = r.unwrap_err();
    assert!(
        matches!(e, ArchiveError::Tar { .. }) && berth_spec::error_chain(&e).contains("big.json"),
        "{e}"
    );
    Ok(())
}

#[test]
fn a_newer_docker_save_with_an_oci_layout_beside_is_read() -> Result<()> {
    let plain = craft::extra_layer();
    let p = DockerParts::new(vec![plain.clone()], None);
    let config_path = format!("blobs/sha256/{}", berth_spec::Digest::sha256(&p.config).hex());
    let layer_path = format!("blobs/sha256/{}", berth_spec::Digest::sha256(&plain).hex());
    let mut t = RawTar::new();
    t.dir("blobs")
        .dir("blobs/sha256")
        .file(&config_path, &p.config)
        .file(&layer_path, &plain);
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    let manifest = json!([{"Config": config_path, "RepoTags": ["new:1"], "Layers": [layer_path], "LayerSources": {}}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest)?);
    let (dir, r) = open(&t)?;
    let reader = r?;
    let layout = Layout::create(dir.path().join("dest"))?;
    import_docker_archive(&reader, reader.only()?, &layout, Some("new"), Compression::None)?;
    assert_eq!(craft::layer_contents(&layout, "new")?, vec![plain]);

    // The same layout, with the config's content swapped: its blobs/sha256 name no longer matches.
    let other = DockerParts::new(vec![craft::extra_layer()], Some(vec![]));
    let mut t = RawTar::new();
    t.file(&config_path, &other.config)
        .file(&layer_path, &craft::extra_layer());
    t.file("manifest.json", &serde_json::to_vec(&manifest)?);
    let (_dir, r) = open(&t)?;
    let reader = r?;
    let e = reader.config_bytes(&reader.images()[0]).unwrap_err();
    assert!(
        matches!(e, ArchiveError::DigestMismatch { .. }) && e.to_string().contains(&config_path),
        "{e}"
    );
    Ok(())
}
