//! Two (or more) processes extracting the same layer into one cache at once leave one correct result.

use std::process::{Command, Stdio};

use berth_layer::apply::{ApplyOptions, LayerCache, apply_layer};
use berth_spec::Digest;
use berth_testkit::tree::{self, Compare};
use berth_testkit::{busybox, image};

#[test]
fn concurrent_extractions_of_one_layer_share_the_cache_safely() {
    let dir = tempfile::tempdir().unwrap();
    let tar = busybox::rootfs_tar().unwrap();
    let diff_id = Digest::sha256(&tar);
    let layer = dir.path().join("layer.tar.gz");
    std::fs::write(&layer, image::gzip(&tar)).unwrap();
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    apply_layer(&tar[..], &reference, &ApplyOptions::default()).unwrap();
    let want = tree::summarize(
        &reference,
        Compare {
            file_mtimes: true,
            dir_mtimes: true,
        },
    )
    .unwrap();

    let cache_dir = dir.path().join("cache");
    let cache = LayerCache::new(&cache_dir).unwrap();
    for round in 0..5 {
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_berth-layer-cache"))
                    .arg(&cache_dir)
                    .arg(&layer)
                    .arg(diff_id.to_string())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut paths = Vec::new();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            paths.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
        }
        paths.dedup();
        assert_eq!(paths.len(), 1, "every process got the same cached path");
        let got = tree::summarize(
            std::path::Path::new(&paths[0]),
            Compare {
                file_mtimes: true,
                dir_mtimes: true,
            },
        )
        .unwrap();
        let d = tree::diff(&want, &got);
        assert!(d.is_empty(), "round {round}:\n{}", d.join("\n"));
        assert_eq!(
            std::fs::read_dir(cache_dir.join("tmp")).unwrap().count(),
            0,
            "no leftovers"
        );
        assert_eq!(cache.list().unwrap(), vec![diff_id.clone()]);
        cache.remove(&diff_id).unwrap();
    }
}

#[test]
fn a_corrupt_layer_never_appears_complete_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let tar = busybox::rootfs_tar().unwrap();
    let wrong = Digest::sha256(b"not this layer");
    let cache = LayerCache::new(dir.path().join("cache")).unwrap();
    let e = cache
        .ensure(&wrong, || Ok(&tar[..]), &ApplyOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("diffID"), "{e}");
    assert!(cache.get(&wrong).is_none());
    assert!(cache.list().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(dir.path().join("cache/tmp")).unwrap().count(), 0);
    // Truncated stream: same.
    let gz = image::gzip(&tar);
    let right = Digest::sha256(&tar);
    let e = cache
        .ensure(&right, || Ok(&gz[..gz.len() / 2]), &ApplyOptions::default())
        .unwrap_err();
    assert!(cache.get(&right).is_none(), "{e}");
}

#[test]
fn unprivileged_extraction_skips_devices_and_ownership_but_extracts_the_rest() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let mut t = berth_testkit::image::TarBuilder::new();
    t.dir("dev", 0o755)
        .file("owned-by-1000", 0o644, b"x")
        .file("setuid", 0o4755, b"s");
    let mut tar = t.finish();
    // Append a character device by hand (TarBuilder makes only files, dirs and links), then re-terminate.
    tar.truncate(tar.len() - 1024);
    let mut h = tar::Header::new_ustar();
    h.set_path("dev/null").unwrap();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o666);
    h.set_size(0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.resize(tar.len() + 1024, 0);
    let layer = dir.path().join("layer.tar");
    std::fs::write(&layer, &tar).unwrap();
    let cache_dir = dir.path().join("cache");
    std::fs::create_dir(&cache_dir).unwrap();
    rustix::fs::chown(
        &cache_dir,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(berth_testkit::tools::require("setpriv").unwrap())
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_berth-layer-cache"))
        .arg(&cache_dir)
        .arg(&layer)
        .arg(Digest::sha256(&tar).to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(!root.join("dev/null").exists(), "the device was skipped");
    let m = std::fs::metadata(root.join("setuid")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (65534, 0o4755));
    assert!(root.join("owned-by-1000").is_file());
}
