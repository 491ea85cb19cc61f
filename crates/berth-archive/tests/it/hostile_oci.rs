//! Hostile oci-archives: every one is refused with an error naming the member, and nothing is written outside
//! (or, on failure, at) the destination.

use std::path::Path;

use anyhow::Result;
use berth_archive::{ArchiveError, extract_oci_archive};
use tar::EntryType;

use crate::craft::{self, RawTar};

/// Extracts `t` into `<dir>/sub/out`; asserts that the error names `member` and that nothing appeared beside or at
/// the destination.
fn refused(t: &RawTar, member: &str) -> Result<ArchiveError> {
    let dir = tempfile::tempdir()?;
    let archive = dir.path().join("hostile.tar");
    t.write(&archive)?;
    let sub = dir.path().join("sub");
    let err = extract_oci_archive(&archive, &sub.join("out")).expect_err("a hostile archive was accepted");
    assert!(
        berth_spec::error_chain(&err).contains(member),
        "error does not name {member:?}: {err}"
    );
    let listing: Vec<String> = std::fs::read_dir(dir.path())?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listing.len(),
        2,
        "something was written beside the archive: {listing:?}"
    );
    assert_eq!(
        std::fs::read_dir(&sub)?.count(),
        0,
        "something was left in {}",
        sub.display()
    );
    assert!(!Path::new("/x").exists() && !Path::new("/abs").exists());
    Ok(err)
}

fn valid_then(f: impl FnOnce(&mut RawTar)) -> RawTar {
    let mut t = RawTar::new();
    craft::oci_members(&mut t, true);
    f(&mut t);
    t
}

#[test]
fn a_crafted_valid_archive_extracts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut t = RawTar::new();
    t.dir("./").file("README", b"not part of a layout, skipped");
    let manifest = craft::oci_members(&mut t, true);
    let archive = dir.path().join("ok.tar");
    t.write(&archive)?;
    let layout = extract_oci_archive(&archive, &dir.path().join("out"))?;
    assert_eq!(layout.resolve(Some("x"))?.digest(), &manifest.to_oci());
    assert!(!dir.path().join("out/README").exists());
    assert!(layout.fsck()?.is_ok());
    Ok(())
}

#[test]
fn names_that_escape_are_refused() -> Result<()> {
    refused(
        &valid_then(|t| {
            t.file("../x", b"escape");
        }),
        "../x",
    )?;
    refused(
        &valid_then(|t| {
            t.file("blobs/../../x", b"escape");
        }),
        "blobs/../../x",
    )?;
    refused(
        &valid_then(|t| {
            t.file("/abs", b"absolute");
        }),
        "/abs",
    )?;
    refused(
        &valid_then(|t| {
            t.file("/../x", b"absolute");
        }),
        "/../x",
    )?;
    refused(
        &valid_then(|t| {
            t.file("", b"empty");
        }),
        "empty",
    )?;
    Ok(())
}

#[test]
fn links_and_devices_are_refused() -> Result<()> {
    let hex = "0".repeat(64);
    let e = refused(
        &valid_then(|t| {
            t.symlink(&format!("blobs/sha256/{hex}"), "/etc/passwd");
        }),
        &hex,
    )?;
    assert!(e.to_string().contains("symlink"), "{e}");
    // A symlinked directory followed by a file written through it.
    let mut t = RawTar::new();
    t.symlink("blobs", "/tmp").file("blobs/sha256/x", b"through the link");
    refused(&t, "blobs")?;
    let e = refused(
        &valid_then(|t| {
            t.hardlink("evil", "/etc/passwd");
        }),
        "evil",
    )?;
    assert!(e.to_string().contains("hardlink"), "{e}");
    let e = refused(
        &valid_then(|t| {
            t.member("dev", EntryType::Char, b"", "", None);
        }),
        "dev",
    )?;
    assert!(e.to_string().contains("special file"), "{e}");
    refused(
        &valid_then(|t| {
            t.member("fifo", EntryType::Fifo, b"", "", None);
        }),
        "fifo",
    )?;
    Ok(())
}

#[test]
fn duplicates_bad_blob_names_and_bad_content_are_refused() -> Result<()> {
    let e = refused(
        &valid_then(|t| {
            t.file("index.json", b"{}");
        }),
        "index.json",
    )?;
    assert!(e.to_string().contains("twice"), "{e}");
    let upper = "A".repeat(64);
    refused(
        &valid_then(|t| {
            t.file(&format!("blobs/sha256/{upper}"), b"");
        }),
        &upper,
    )?;
    refused(
        &valid_then(|t| {
            t.file("blobs/sha256/short", b"");
        }),
        "blobs/sha256/short",
    )?;
    refused(
        &valid_then(|t| {
            t.file("blobs/md5/abc", b"");
        }),
        "blobs/md5/abc",
    )?;
    refused(
        &valid_then(|t| {
            t.dir("blobs/sha256/nested/");
        }),
        "blobs/sha256/nested",
    )?;
    let wrong = format!("blobs/sha256/{}", "1".repeat(64));
    let e = refused(
        &valid_then(|t| {
            t.file(&wrong, b"not what the name says");
        }),
        &wrong,
    )?;
    assert!(matches!(e, ArchiveError::DigestMismatch { .. }), "{e}");
    Ok(())
}

#[test]
fn oversized_claims_and_broken_layouts_are_refused() -> Result<()> {
    // index.json claiming 100 MB: refused from the header, before anything is read or allocated.
    let mut t = RawTar::new();
    t.member("index.json", EntryType::Regular, b"", "", Some(100 << 20));
    let e = refused(&t, "index.json")?;
    assert!(matches!(e, ArchiveError::TooLarge { .. }), "{e}");
    let mut t = RawTar::new();
    t.member("oci-layout", EntryType::Regular, b"", "", Some(1 << 20));
    refused(&t, "oci-layout")?;

    // No oci-layout.
    let mut t = RawTar::new();
    t.file("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    let e = refused(&t, "oci-layout")?;
    assert!(matches!(e, ArchiveError::Layout { .. }), "{e}");

    // index.json naming a manifest that is not in the archive.
    let mut t = RawTar::new();
    let manifest = craft::oci_members(&mut t, false);
    let e = refused(&t, manifest.hex())?;
    assert!(matches!(e, ArchiveError::MissingMember { .. }), "{e}");

    // Garbage in index.json.
    let mut t = RawTar::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", br#"{"schemaVersion":2,"manifests":[]} trailing"#);
    refused(&t, "index.json")?;
    Ok(())
}
