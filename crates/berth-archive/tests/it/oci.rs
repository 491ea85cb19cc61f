//! oci-archive round trips.

use std::io::{Read, Write};

use anyhow::Result;
use berth_archive::{ArchiveError, extract_oci_archive, write_oci_archive};
use berth_spec::layout::Layout;

use crate::craft;

fn member_names(archive: &std::path::Path) -> Result<Vec<(String, u32, u64, u64)>> {
    let mut a = tar::Archive::new(std::fs::File::open(archive)?);
    let mut out = Vec::new();
    for e in a.entries()? {
        let e = e?;
        let h = e.header();
        out.push((
            e.path()?.to_string_lossy().into_owned(),
            h.mode()?,
            h.mtime()?,
            h.uid()? + h.gid()?,
        ));
    }
    Ok(out)
}

#[test]
fn layout_to_oci_archive_and_back_keeps_every_digest() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, two) = craft::two_images(&dir.path().join("src"))?;
    let archive = dir.path().join("images.tar");
    write_oci_archive(src.root(), &archive)?;

    let members = member_names(&archive)?;
    let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "members are sorted");
    assert!(names.iter().all(|n| !n.starts_with(".berth")), "{names:?}");
    assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(names[names.len() - 2..], ["index.json", "oci-layout"]);
    for (name, mode, mtime, owner) in &members {
        let want = if name.ends_with('/') { 0o755 } else { 0o644 };
        assert_eq!((*mode, *mtime, *owner), (want, 0, 0), "{name}");
    }

    let out = extract_oci_archive(&archive, &dir.path().join("out"))?;
    assert_eq!(
        out.index()?.bytes(),
        src.index()?.bytes(),
        "index.json is copied byte for byte"
    );
    assert_eq!(out.refs()?, src.refs()?);
    for (name, written) in [("busybox:latest", &one), ("two:v1", &two)] {
        let d = out.resolve(Some(name))?;
        assert_eq!(d.digest(), &written.manifest_digest.to_oci());
        assert_eq!(craft::layer_contents(&out, name)?, craft::layer_contents(&src, name)?);
    }
    let report = out.fsck()?;
    assert!(report.is_ok() && report.dangling.is_empty(), "{:?}", report.problems);
    Ok(())
}

#[test]
fn oci_archives_are_deterministic_and_replace_the_destination_atomically() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, ..) = craft::two_images(&dir.path().join("src"))?;
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    std::fs::write(&b, b"an older archive")?;
    write_oci_archive(src.root(), &a)?;
    write_oci_archive(src.root(), &b)?;
    assert!(std::fs::read(&a)? == std::fs::read(&b)?, "two writes differ");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    // A layout with a corrupt blob is refused and leaves the old archive in place.
    let victim = src.blob_path(
        &src.load_image(Some("two:v1"), &berth_spec::platform::Platform::host())?
            .config
            .digest()
            .clone(),
    );
    std::fs::write(&victim, b"{}")?;
    let err = write_oci_archive(src.root(), &b).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
    assert!(std::fs::read(&a)? == std::fs::read(&b)?, "the destination was touched");
    Ok(())
}

#[test]
fn gzip_and_zstd_compressed_oci_archives_are_read() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, one, _) = craft::two_images(&dir.path().join("src"))?;
    let plain = dir.path().join("plain.tar");
    write_oci_archive(src.root(), &plain)?;
    let bytes = std::fs::read(&plain)?;
    let gz = dir.path().join("images.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz)?, flate2::Compression::fast());
    enc.write_all(&bytes)?;
    enc.finish()?;
    let zst = dir.path().join("images.tar.zst");
    std::fs::write(&zst, zstd::encode_all(&bytes[..], 3)?)?;
    for (i, archive) in [gz, zst].iter().enumerate() {
        let out = extract_oci_archive(archive, &dir.path().join(format!("out{i}")))?;
        assert_eq!(
            out.resolve(Some("busybox:latest"))?.digest(),
            &one.manifest_digest.to_oci()
        );
        assert!(out.fsck()?.is_ok());
    }
    Ok(())
}

#[test]
fn extraction_needs_an_empty_destination_and_leaves_nothing_on_failure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, ..) = craft::two_images(&dir.path().join("src"))?;
    let archive = dir.path().join("images.tar");
    write_oci_archive(src.root(), &archive)?;

    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy)?;
    std::fs::write(busy.join("keep"), b"mine")?;
    let err = extract_oci_archive(&archive, &busy).unwrap_err();
    assert!(matches!(err, ArchiveError::DestinationExists { .. }), "{err}");
    assert_eq!(std::fs::read(busy.join("keep"))?, b"mine");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty)?;
    extract_oci_archive(&archive, &empty)?;
    Layout::open(&empty)?;

    // Truncate the archive in the middle of a blob: nothing appears at the destination.
    let mut bytes = Vec::new();
    std::fs::File::open(&archive)?.read_to_end(&mut bytes)?;
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2])?;
    let dest = dir.path().join("never");
    let err = extract_oci_archive(&cut, &dest).unwrap_err();
    assert!(matches!(err, ArchiveError::Tar { .. }), "{err}");
    assert!(!dest.exists(), "a half-extracted layout appeared");
    let stray: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "staging directories left: {stray:?}");
    Ok(())
}

#[test]
fn stray_files_are_left_out_and_symlinked_blobs_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, ..) = craft::two_images(&dir.path().join("src"))?;
    let blobs = src.root().join("blobs");
    std::fs::write(blobs.join("sha256/not-a-digest"), b"stray")?;
    std::fs::create_dir(blobs.join("md5"))?;
    std::fs::write(blobs.join("md5/abc"), b"stray")?;
    std::fs::write(src.root().join("README"), b"stray")?;
    let archive = dir.path().join("images.tar");
    write_oci_archive(src.root(), &archive)?;
    let names: Vec<String> = member_names(&archive)?.into_iter().map(|m| m.0).collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("not-a-digest") && !n.contains("md5") && n != "README"),
        "{names:?}"
    );
    extract_oci_archive(&archive, &dir.path().join("out"))?;

    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"outside the layout")?;
    let link = blobs.join(format!(
        "sha256/{}",
        berth_spec::Digest::sha256(b"outside the layout").hex()
    ));
    std::os::unix::fs::symlink(&secret, &link)?;
    let err = write_oci_archive(src.root(), &dir.path().join("leak.tar")).unwrap_err();
    assert!(matches!(err, ArchiveError::BadMember { .. }), "{err}");
    assert!(!dir.path().join("leak.tar").exists());
    Ok(())
}
