//! Interop with skopeo: it reads the archives Berth writes, and Berth reads the archives it writes.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use berth_archive::{
    DockerArchiveReader, DockerArchiveWriter, extract_oci_archive, import_docker_archive, write_oci_archive,
};
use berth_spec::layout::Layout;
use berth_spec::media_type::Compression;
use berth_spec::platform::Platform;
use berth_spec::{DockerArchiveRef, DockerReference};
use berth_testkit::tools::{run, stdout};
use serde_json::Value;

use crate::craft;

/// skopeo with its temp files under `tmp`.
fn skopeo(tmp: &Path) -> Result<Command> {
    let mut c = berth_testkit::tools::skopeo()?;
    c.env("TMPDIR", tmp);
    Ok(c)
}

fn diff_ids(layout: &Layout, name: &str) -> Result<Vec<String>> {
    let image = layout.load_image(Some(name), &Platform::host())?;
    layout.verify_diff_ids(&image)?;
    Ok(image.config.parsed().rootfs().diff_ids().clone())
}

#[test]
fn skopeo_reads_berth_oci_archives() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, two) = craft::two_images(&dir.path().join("src"))?;
    let archive = dir.path().join("images.tar");
    write_oci_archive(src.root(), &archive)?;
    for (name, written) in [("busybox:latest", &one), ("two:v1", &two)] {
        let reference = format!("oci-archive:{}:{name}", archive.display());
        let raw = run(skopeo(dir.path())?.args(["inspect", "--raw", &reference]))?.stdout;
        assert!(raw == written.manifest_bytes, "skopeo saw another manifest for {name}");
        let info: Value = serde_json::from_str(&stdout(skopeo(dir.path())?.args(["inspect", &reference]))?)?;
        assert_eq!(info["Digest"], written.manifest_digest.to_string());
        assert_eq!(info["Layers"].as_array().map(Vec::len), Some(written.layers.len()));
    }
    Ok(())
}

#[test]
fn skopeo_reads_berth_docker_archives() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, two) = craft::two_images(&dir.path().join("src"))?;
    let archive = dir.path().join("saved.tar");
    let mut w = DockerArchiveWriter::create(&archive)?;
    w.add_image(&src, &one.manifest, &["busybox:latest".into()])?;
    w.add_image(&src, &two.manifest, &["two:v1".into()])?;
    w.finish()?;

    let oci = dir.path().join("oci");
    for (i, (tag, name)) in [("busybox:latest", "busybox:latest"), ("two:v1", "two:v1")]
        .iter()
        .enumerate()
    {
        for reference in [
            format!("docker-archive:{}:{tag}", archive.display()),
            format!("docker-archive:{}:@{i}", archive.display()),
        ] {
            let info: Value = serde_json::from_str(&stdout(skopeo(dir.path())?.args(["inspect", &reference]))?)?;
            let want = src.load_image(Some(name), &Platform::host())?;
            assert_eq!(
                info["Layers"].as_array().map(Vec::len),
                Some(want.manifest.parsed().layers().len()),
                "{reference}"
            );
        }
        let from = format!("docker-archive:{}:{tag}", archive.display());
        let to = format!("oci:{}:{name}", oci.display());
        run(skopeo(dir.path())?.args(["copy", &from, &to]))?;
        let copied = Layout::open(&oci)?;
        assert_eq!(diff_ids(&copied, name)?, diff_ids(&src, name)?);
        let got = copied.load_image(Some(name), &Platform::host())?;
        let want = src.load_image(Some(name), &Platform::host())?;
        assert!(
            got.config.bytes() == want.config.bytes(),
            "skopeo changed the config of {name}"
        );
    }
    Ok(())
}

#[test]
fn berth_reads_skopeo_archives() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, _) = craft::two_images(&dir.path().join("src"))?;
    let from = format!("oci:{}:busybox:latest", src.root().display());

    // docker-archive.
    let saved = dir.path().join("saved.tar");
    run(skopeo(dir.path())?.args([
        "copy",
        &from,
        &format!("docker-archive:{}:example.com/bb:v2", saved.display()),
    ]))?;
    let reader = DockerArchiveReader::open(&saved)?;
    assert_eq!(reader.images().len(), 1);
    let wanted = DockerArchiveRef::Named(DockerReference::parse_normalized("example.com/bb:v2")?);
    let image = reader.select(&wanted)?;
    let want = src.load_image(Some("busybox:latest"), &Platform::host())?;
    assert!(
        reader.config_bytes(image)? == want.config.bytes(),
        "config bytes differ"
    );
    let dest = Layout::create(dir.path().join("dest"))?;
    import_docker_archive(&reader, image, &dest, Some("bb"), Compression::Gzip)?;
    assert_eq!(diff_ids(&dest, "bb")?, diff_ids(&src, "busybox:latest")?);
    assert!(craft::layer_contents(&dest, "bb")? == craft::layer_contents(&src, "busybox:latest")?);

    // oci-archive.
    let archive = dir.path().join("oci.tar");
    run(skopeo(dir.path())?.args(["copy", &from, &format!("oci-archive:{}:x", archive.display())]))?;
    let layout = extract_oci_archive(&archive, &dir.path().join("extracted"))?;
    let desc = layout.resolve(Some("x"))?;
    assert_eq!(
        desc.digest(),
        &one.manifest_digest.to_oci(),
        "skopeo kept the manifest, so must we"
    );
    assert_eq!(diff_ids(&layout, "x")?, diff_ids(&src, "busybox:latest")?);
    assert!(layout.fsck()?.is_ok());
    Ok(())
}
