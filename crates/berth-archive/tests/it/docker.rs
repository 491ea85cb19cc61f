//! docker-archive round trips: layout -> docker-archive (several images, shared layers) -> layout.

use std::collections::BTreeSet;

use anyhow::Result;
use berth_archive::{ArchiveError, DockerArchiveReader, DockerArchiveWriter, import_docker_archive};
use berth_spec::layout::Layout;
use berth_spec::media_type::{self, Compression};
use berth_spec::platform::Platform;
use berth_spec::{DockerArchiveRef, DockerReference};

use serde_json::json;

use crate::craft;

fn named(name: &str) -> DockerArchiveRef {
    DockerArchiveRef::Named(DockerReference::parse_normalized(name).unwrap())
}

#[test]
fn two_images_sharing_a_layer_round_trip() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, two) = craft::two_images(&dir.path().join("src"))?;
    let archive = dir.path().join("saved.tar");
    let mut w = DockerArchiveWriter::create(&archive)?;
    w.add_image(&src, &one.manifest, &["busybox:latest".into()])?;
    w.add_image(&src, &two.manifest, &["example.com/two:v1".into(), "two:latest".into()])?;
    // The same image again under another tag joins the first entry.
    w.add_image(&src, &one.manifest, &["docker.io/library/busybox:1".into()])?;
    w.finish()?;

    let mut names = Vec::new();
    for e in tar::Archive::new(std::fs::File::open(&archive)?).entries()? {
        names.push(e?.path()?.to_string_lossy().into_owned());
    }
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "duplicate members: {names:?}");
    assert_eq!(
        names.iter().filter(|n| n.ends_with("layer.tar")).count(),
        2,
        "{names:?}"
    );
    assert!(names.contains(&"repositories".to_string()));

    let reader = DockerArchiveReader::open(&archive)?;
    assert_eq!(reader.images().len(), 2);
    assert_eq!(reader.images()[0].repo_tags, ["busybox:latest", "busybox:1"]);
    assert_eq!(reader.images()[1].repo_tags, ["example.com/two:v1", "two:latest"]);
    assert_eq!(reader.images()[0].layers[0], reader.images()[1].layers[0]);
    assert_eq!(reader.select(&named("busybox:1"))?, &reader.images()[0]);
    assert_eq!(reader.select(&named("example.com/two:v1"))?, &reader.images()[1]);
    assert_eq!(reader.select(&DockerArchiveRef::Index(1))?, &reader.images()[1]);
    let e = reader.only().unwrap_err();
    assert!(matches!(e, ArchiveError::Ambiguous { .. }), "{e}");
    let e = reader.select(&named("nope")).unwrap_err();
    assert!(e.to_string().contains("busybox:latest"), "{e}");
    assert!(reader.select(&DockerArchiveRef::Index(2)).is_err());

    for (compression, want_mt) in [
        (Compression::Gzip, media_type::OCI_LAYER_GZIP),
        (Compression::None, media_type::OCI_LAYER_TAR),
        (Compression::Zstd, media_type::OCI_LAYER_ZSTD),
    ] {
        let dest = Layout::create(dir.path().join(format!("dest-{compression}")))?;
        for (saved_as, tag, written) in [("busybox", "busybox:latest", &one), ("two:latest", "two:v1", &two)] {
            let image = reader.select(&named(saved_as))?;
            let desc = import_docker_archive(&reader, image, &dest, Some(tag), compression)?;
            let got = dest.load_image(Some(tag), &Platform::host())?;
            assert_eq!(got.manifest_descriptor.digest(), desc.digest());
            let want = src.load_image(Some(tag), &Platform::host())?;
            assert!(got.config.bytes() == want.config.bytes(), "config bytes differ");
            assert_eq!(got.config.digest(), &written.config_digest);
            assert_eq!(
                got.config.parsed().rootfs().diff_ids(),
                want.config.parsed().rootfs().diff_ids()
            );
            for l in got.manifest.parsed().layers() {
                assert_eq!(l.media_type().to_string(), want_mt);
            }
            assert!(craft::layer_contents(&dest, tag)? == craft::layer_contents(&src, tag)?);
        }
        let report = dest.fsck()?;
        assert!(report.is_ok() && report.dangling.is_empty(), "{:?}", report.problems);
    }
    Ok(())
}

#[test]
fn docker_archives_are_deterministic_and_atomic() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, two) = craft::two_images(&dir.path().join("src"))?;
    let write = |name: &str| -> Result<Vec<u8>> {
        let out = dir.path().join(name);
        let mut w = DockerArchiveWriter::create(&out)?;
        w.add_image(&src, &one.manifest, &["busybox:latest".into()])?;
        w.add_image(&src, &two.manifest, &[])?;
        w.finish()?;
        Ok(std::fs::read(out)?)
    };
    assert!(write("a.tar")? == write("b.tar")?, "two writes differ");

    // Dropped unfinished: nothing at the destination, no temp file.
    let out = dir.path().join("dropped.tar");
    let mut w = DockerArchiveWriter::create(&out)?;
    w.add_image(&src, &one.manifest, &[])?;
    drop(w);
    assert!(!out.exists());
    let tmp =
        std::fs::read_dir(dir.path())?.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"));
    assert_eq!(tmp.count(), 0);

    // An untagged image is found by position.
    let reader = DockerArchiveReader::open(&dir.path().join("a.tar"))?;
    assert!(reader.images()[1].repo_tags.is_empty());
    let image = reader.select(&DockerArchiveRef::Index(1))?;
    let dest = Layout::create(dir.path().join("dest"))?;
    import_docker_archive(&reader, image, &dest, None, Compression::Gzip)?;
    assert_eq!(dest.index()?.parsed().manifests().len(), 1);
    Ok(())
}

#[test]
fn a_corrupt_layer_aborts_the_whole_archive() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, two) = craft::two_images(&dir.path().join("src"))?;
    let out = dir.path().join("out.tar");

    // A layer whose blob matches its digest but not the config's diff_id.
    let plain = craft::extra_layer();
    let mut lw = berth_layer::compress::LayerWriter::new(Vec::new(), Compression::Gzip, None, 1)?;
    std::io::Write::write_all(&mut lw, &plain)?;
    let (mut digests, blob) = lw.finish_into_inner()?;
    digests.diff_id = berth_spec::Digest::sha256(b"a different layer");
    let lying = berth_testkit::image::write_layers_image(&src, "lying:v1", &[(blob, digests)], &json!({}))?;
    let mut w = DockerArchiveWriter::create(&out)?;
    w.add_image(&src, &one.manifest, &["busybox:latest".into()])?;
    let e = w.add_image(&src, &lying.manifest, &["lying:v1".into()]).unwrap_err();
    assert!(matches!(e, ArchiveError::DiffIdMismatch { .. }), "{e}");
    let e = w.add_image(&src, &one.manifest, &[]).unwrap_err();
    assert!(matches!(e, ArchiveError::Aborted { .. }), "{e}");
    assert!(matches!(w.finish().unwrap_err(), ArchiveError::Aborted { .. }));
    assert!(!out.exists());

    // A blob that does not match its digest.
    std::fs::write(
        src.blob_path(&two.layers[1]),
        berth_testkit::image::gzip(b"something else"),
    )?;
    let mut w = DockerArchiveWriter::create(&out)?;
    let e = w.add_image(&src, &two.manifest, &["two:v1".into()]).unwrap_err();
    assert!(e.to_string().contains(&two.layers[1].to_string()), "{e}");
    assert!(w.finish().is_err());
    assert!(!out.exists());

    // Refused before anything is written: a digest in a tag, an index.
    let mut w = DockerArchiveWriter::create(&out)?;
    let e = w
        .add_image(&src, &one.manifest, &[format!("bad@{}", one.manifest_digest)])
        .unwrap_err();
    assert!(matches!(e, ArchiveError::Unsupported { .. }), "{e}");
    let e = w.add_image(&src, &one.manifest, &["Bad Tag".into()]).unwrap_err();
    assert!(matches!(e, ArchiveError::BadTag { .. }), "{e}");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [serde_json::to_value(&one.manifest)?],
    }))?;
    let digest = src.writer()?.put_bytes(&index, berth_spec::Algorithm::Sha256)?;
    let index_desc =
        oci_spec::image::Descriptor::new(media_type::OCI_INDEX.into(), index.len() as u64, digest.to_oci());
    let e = w.add_image(&src, &index_desc, &[]).unwrap_err();
    assert!(e.to_string().contains("index"), "{e}");
    w.add_image(&src, &one.manifest, &["busybox:latest".into()])?;
    w.finish()?;
    assert_eq!(DockerArchiveReader::open(&out)?.images().len(), 1);
    Ok(())
}

#[test]
fn compressed_docker_archives_are_read() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, _) = craft::two_images(&dir.path().join("src"))?;
    let plain = dir.path().join("saved.tar");
    let mut w = DockerArchiveWriter::create(&plain)?;
    w.add_image(&src, &one.manifest, &["busybox:latest".into()])?;
    w.finish()?;
    let gz = dir.path().join("saved.tar.gz");
    std::fs::write(&gz, berth_testkit::image::gzip(&std::fs::read(&plain)?))?;
    let reader = DockerArchiveReader::open(&gz)?;
    let dest = Layout::create(dir.path().join("dest"))?;
    import_docker_archive(&reader, reader.only()?, &dest, Some("bb"), Compression::Gzip)?;
    assert!(craft::layer_contents(&dest, "bb")? == craft::layer_contents(&src, "busybox:latest")?);
    Ok(())
}
