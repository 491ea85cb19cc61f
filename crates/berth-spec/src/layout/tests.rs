//! Layout store tests, including items 1–10 of HOSTILE-INPUTS.md.

use std::io::Write;
use std::path::Path;

use super::*;
use crate::digest::VerifyError;
use crate::document::DocumentError;
use crate::media_type as mt;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A small image: one gzip "layer" (its content need not be a tar for the store), a config, a manifest.
struct TestImage {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

impl TestImage {
    fn new(seed: &str) -> Self {
        let raw = format!("layer content {seed}").repeat(50).into_bytes();
        let layer = gzip(&raw);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            Digest::sha256(&raw)
        )
        .into_bytes();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
            mt::OCI_MANIFEST,
            mt::OCI_CONFIG,
            Digest::sha256(&config),
            config.len(),
            mt::OCI_LAYER_GZIP,
            Digest::sha256(&layer),
            layer.len()
        )
        .into_bytes();
        TestImage {
            layer,
            config,
            manifest,
        }
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            mt::OCI_MANIFEST.into(),
            self.manifest.len() as u64,
            Digest::sha256(&self.manifest).to_oci(),
        )
    }

    fn write(&self, layout: &Layout, name: &str) -> Descriptor {
        let w = layout.writer().unwrap();
        for blob in [&self.layer, &self.config, &self.manifest] {
            w.put_bytes(blob, Algorithm::Sha256).unwrap();
        }
        let d = self.descriptor();
        w.set_ref(name, &d).unwrap();
        d
    }
}

fn new_layout() -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path().join("l")).unwrap();
    (dir, layout)
}

fn host() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[test]
fn create_write_and_load_an_image() {
    let (_d, layout) = new_layout();
    let img = TestImage::new("a");
    img.write(&layout, "app:1");
    let loaded = layout.load_image(Some("app:1"), &host()).unwrap();
    assert_eq!(loaded.manifest.bytes(), img.manifest);
    assert_eq!(loaded.config.bytes(), img.config);
    layout.verify_diff_ids(&loaded).unwrap();
    let reopened = Layout::open(layout.root()).unwrap();
    assert_eq!(reopened.refs().unwrap().len(), 1);
    assert!(layout.fsck().unwrap().is_ok());
}

#[test]
fn set_ref_replaces_and_keeps_unknown_fields() {
    let (_d, layout) = new_layout();
    let index_path = layout.root().join("index.json");
    let with_extra = r#"{"schemaVersion":2,"manifests":[],"annotations":{"keep":"me"},"x-extra":[1,2]}"#;
    std::fs::write(&index_path, with_extra).unwrap();
    let a = TestImage::new("a");
    let b = TestImage::new("b");
    a.write(&layout, "app:1");
    b.write(&layout, "app:1");
    let refs = layout.refs().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(
        Digest::from_oci(refs[0].1.digest()).unwrap(),
        Digest::sha256(&b.manifest)
    );
    let text = std::fs::read_to_string(&index_path).unwrap();
    assert!(
        text.contains(r#""keep":"me""#) && text.contains(r#""x-extra":[1,2]"#),
        "{text}"
    );
}

#[test]
fn delete_ref_then_gc_frees_only_unreachable_blobs() {
    let (_d, layout) = new_layout();
    let a = TestImage::new("a");
    let b = TestImage::new("b");
    a.write(&layout, "a:1");
    b.write(&layout, "b:1");
    assert_eq!(layout.delete_ref("a:1").unwrap(), 1);
    assert!(matches!(layout.delete_ref("a:1"), Err(LayoutError::RefNotFound { .. })));
    let report = layout.fsck().unwrap();
    assert!(report.is_ok());
    assert_eq!(report.dangling.len(), 3);
    let gc = layout.gc().unwrap();
    assert_eq!(gc.removed.len(), 3);
    assert_eq!(
        gc.bytes_freed,
        (a.layer.len() + a.config.len() + a.manifest.len()) as u64
    );
    assert!(!layout.has_blob(&Digest::sha256(&a.layer)));
    assert!(layout.has_blob(&Digest::sha256(&b.layer)));
    layout.load_image(Some("b:1"), &host()).unwrap();
}

/// Returns once this process has a thread blocked taking an flock on `path` (a `->` line of `/proc/locks`): an
/// event to wait for, where a fixed sleep could end before the other thread gets there and pass vacuously.
fn wait_for_flock_waiter(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path).unwrap().ino();
    let (pid, suffix) = (std::process::id().to_string(), format!(":{ino}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        let waiting = locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "N: -> FLOCK ADVISORY WRITE <pid> <maj:min:ino> <start> <end>"
            fields.get(1) == Some(&"->")
                && fields.get(2) == Some(&"FLOCK")
                && fields.get(5) == Some(&pid.as_str())
                && fields.get(6).is_some_and(|id| id.ends_with(&suffix))
        });
        if waiting {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no thread of this process came to wait for the lock on {}",
            path.display()
        );
        std::thread::yield_now();
    }
}

#[test]
fn gc_waits_for_writers_so_unreferenced_new_blobs_survive() {
    let (_d, layout) = new_layout();
    let writer = layout.writer().unwrap();
    let digest = writer.put_bytes(b"not yet referenced", Algorithm::Sha256).unwrap();
    let l2 = layout.clone();
    let gc = std::thread::spawn(move || l2.gc().unwrap());
    wait_for_flock_waiter(&layout.root().join(".berth/gc.lock"));
    assert!(!gc.is_finished(), "gc must wait for the writer");
    let d = Descriptor::new(mt::OCI_LAYER_TAR.into(), 18, digest.to_oci());
    writer.add_entry(&d).unwrap();
    drop(writer);
    let report = gc.join().unwrap();
    assert!(report.removed.is_empty());
    assert!(layout.has_blob(&digest));
}

#[test]
fn put_blob_refuses_wrong_content_and_leaves_nothing() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let d = Digest::sha256(b"hello");
    let e = w.put_blob(&mut &b"hellO"[..], &d, 5).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Rejected {
                error: VerifyError::DigestMismatch { .. },
                ..
            }
        ),
        "{e}"
    );
    let e = w.put_blob(&mut &b"hello!"[..], &d, 5).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Rejected {
                error: VerifyError::TooLong { .. },
                ..
            }
        ),
        "{e}"
    );
    // A size of 2^63 is never used to allocate: the short stream is refused.
    let e = w.put_blob(&mut &b"hello"[..], &d, 1 << 63).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Rejected {
                error: VerifyError::TooShort { found: 5, .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(!layout.has_blob(&d));
    assert_eq!(std::fs::read_dir(layout.root().join(".berth/tmp")).unwrap().count(), 0);
}

/// Blobs of 16 MiB and more are written around the page cache by a helper thread: the stored bytes, the checks
/// and the cleanup are the same as for any blob.
#[test]
fn large_blobs_are_stored_verified_and_refused_alike() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let mut x: u64 = 7;
    let data: Vec<u8> = (0..(16 << 20) + 4097)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect();
    let d = Digest::sha256(&data);
    let tmp = layout.root().join(".berth/tmp");

    // One byte changed at the end: refused, nothing kept.
    let mut bad = data.clone();
    *bad.last_mut().unwrap() ^= 1;
    let e = w.put_blob(&mut &bad[..], &d, data.len() as u64).unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::Rejected {
                error: VerifyError::DigestMismatch { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(!layout.has_blob(&d));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);

    // Abandoned half way: nothing kept either.
    let mut half = w.blob_writer_expecting(&d, data.len() as u64).unwrap();
    half.write_all(&data[..9 << 20]).unwrap();
    drop(half);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);

    // Written in odd chunks: stored exactly.
    let mut bw = w.blob_writer_expecting(&d, data.len() as u64).unwrap();
    for chunk in data.chunks(100_003) {
        bw.write_all(chunk).unwrap();
    }
    assert_eq!(bw.commit().unwrap(), (d.clone(), data.len() as u64));
    assert!(std::fs::read(layout.blob_path(&d)).unwrap() == data);
    layout.verify_blob(&d, data.len() as u64).unwrap();
}

#[test]
fn corrupt_existing_blob_is_replaced_not_trusted() {
    let (_d, layout) = new_layout();
    let d = Digest::sha256(b"good");
    std::fs::write(layout.blob_path(&d), b"evil").unwrap();
    layout.writer().unwrap().put_bytes(b"good", Algorithm::Sha256).unwrap();
    assert_eq!(std::fs::read(layout.blob_path(&d)).unwrap(), b"good");
}

#[test]
fn clean_temp_removes_only_dead_writers_files() {
    let (_d, layout) = new_layout();
    let w = layout.writer().unwrap();
    let mut live = w.blob_writer(Algorithm::Sha256).unwrap();
    live.write_all(b"in progress").unwrap();
    // A file left by a dead writer: nobody holds its lock.
    std::fs::write(layout.root().join(".berth/tmp/blob-999999-0-0"), b"junk").unwrap();
    assert_eq!(layout.fsck().unwrap().stale_temp_files, 1);
    assert_eq!(layout.clean_temp().unwrap(), 1);
    assert_eq!(std::fs::read_dir(layout.root().join(".berth/tmp")).unwrap().count(), 1);
    let (digest, size) = live.commit().unwrap();
    assert_eq!((digest, size), (Digest::sha256(b"in progress"), 11));
}

/// Opening a writer sweeps what dead writers left (an interrupted copy), but only files old enough (by change
/// time, which a staged hard link to an old blob renews) that no live writer can be between creating and locking
/// them; a live writer's file stays whatever its age.
#[test]
fn a_new_writer_sweeps_old_files_of_dead_writers() {
    let (_d, layout) = new_layout();
    let tmp = layout.root().join(".berth/tmp");
    let w = layout.writer().unwrap();
    let mut live = w.blob_writer(Algorithm::Sha256).unwrap();
    live.write_all(b"in progress").unwrap();
    let live_file = std::fs::read_dir(&tmp).unwrap().next().unwrap().unwrap().path();
    let dead = tmp.join("blob-999999-0-0");
    std::fs::write(&dead, b"junk").unwrap();
    // Just made: a new writer leaves it (it could be a writer about to lock it).
    let _second = layout.writer().unwrap();
    assert!(dead.exists() && live_file.exists());
    // Old enough (no age asked here): the dead writer's file goes, the live one's stays.
    assert_eq!(
        lock::clean_old_temp(layout.root(), std::time::Duration::ZERO).unwrap(),
        1
    );
    assert!(!dead.exists(), "an old file of a dead writer is removed");
    assert!(live_file.exists(), "a live writer's file stays");
    assert_eq!(live.commit().unwrap().1, 11);
}

#[test]
fn create_refuses_a_non_empty_non_layout_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), b"x").unwrap();
    let e = Layout::create(dir.path()).unwrap_err();
    assert!(e.to_string().contains("not empty and has no oci-layout"), "{e}");
    assert!(dir.path().join("precious.txt").exists());
    let e = Layout::create(dir.path().join("precious.txt")).unwrap_err();
    assert!(e.to_string().contains("it is a regular file, not a directory"), "{e}");
    assert_eq!(std::fs::read(dir.path().join("precious.txt")).unwrap(), b"x");
}

mod hostile;
