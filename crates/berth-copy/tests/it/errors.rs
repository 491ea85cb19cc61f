//! Errors name what caused them: a missing image in a layout, an unknown tag in a registry, invalid references;
//! the exit code is non-zero, stdout stays empty, and stderr is plain text.

use berth_testkit::faultproxy::{Fault, FaultProxy};
use berth_testkit::registry::TestRegistry;

use crate::{Env, busybox_layout};

#[test]
fn missing_image_in_a_layout_is_named_with_what_is_there() {
    let env = Env::new();
    busybox_layout(&env, "a", "bb:1");
    let out = env.run(&["copy", &env.oci("a", Some("nope:2")), &env.oci("b", None)]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "errors go to stderr");
    let err = crate::text(&out.stderr);
    assert!(
        err.contains("nope:2") && err.contains(&env.path("a").display().to_string()),
        "{err}"
    );
    assert!(err.contains("bb:1"), "the available names are listed: {err}");

    let missing = env.path("no-such-dir");
    let err = env.fails(&["inspect", &format!("oci:{}:x", missing.display())]);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("does not exist"),
        "{err}"
    );

    let err = env.fails(&[
        "--store",
        env.path("store").to_str().unwrap(),
        "inspect",
        "busybox:absent",
    ]);
    assert!(err.contains("store"), "{err}");
}

#[test]
fn unknown_tag_in_a_registry_is_a_404_naming_the_reference() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    busybox_layout(&env, "a", "bb:1");
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        &format!("docker://{}/errors/busybox:1", reg.host()),
    ]);
    let out = env.run(&[
        "copy",
        &format!("docker://{}/errors/busybox:missing", reg.host()),
        &env.oci("b", None),
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = crate::text(&out.stderr);
    assert!(
        err.contains(&format!("{}/errors/busybox", reg.host())) && err.contains("missing"),
        "{err}"
    );
    assert!(err.contains("404") && err.contains("manifest unknown"), "{err}");
    // Not retried: 404 is an answer, not a failure.
    let log = reg.log();
    assert_eq!(crate::logged(&log, "GET", "/manifests/missing"), 1, "{log}");

    let err = env.fails(&["inspect", &format!("docker://{}/errors/never-pushed:1", reg.host())]);
    assert!(err.contains("errors/never-pushed") && err.contains("404"), "{err}");
    let err = env.fails(&["list-tags", &format!("docker://{}/errors/never-pushed", reg.host())]);
    assert!(err.contains("errors/never-pushed"), "{err}");
}

#[test]
fn invalid_references_are_quoted_back() {
    let env = Env::new();
    for bad in [
        "docker://127.0.0.1:5000/Upper/Case:tag",
        "docker://127.0.0.1:5000/a:b:c",
        "docker://127.0.0.1:5000/app@sha256:1234",
        "docker://127.0.0.1:5000/app:bad tag",
        "docker://",
        "Bad Name",
    ] {
        let out = env.run(&["copy", bad, &env.oci("dst", None)]);
        assert!(!out.status.success(), "{bad} was accepted");
        let err = crate::text(&out.stderr);
        assert!(err.contains(bad), "the error does not quote {bad:?}: {err}");
        assert!(
            !env.path("dst").exists(),
            "{bad}: the destination was created for an invalid source"
        );
        let out = env.run(&["copy", &env.oci("src", None), bad]);
        assert!(!out.status.success(), "{bad} was accepted as a destination");
        assert!(crate::text(&out.stderr).contains(bad));
    }
    let err = env.fails(&["copy", "--platform", "linux", "oci:/x", "oci:/y"]);
    assert!(
        err.contains("invalid platform \"linux\"") && err.contains("OS/ARCH"),
        "{err}"
    );
}

/// Regression: warnings (retries) were rendered with ANSI colour codes even when stderr is a pipe or a CI log.
#[test]
fn warnings_on_a_pipe_carry_no_colour_codes() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    busybox_layout(&env, "a", "bb:1");
    env.ok(&[
        "copy",
        "-q",
        &env.oci("a", Some("bb:1")),
        &format!("docker://{}/errors/busybox:1", reg.host()),
    ]);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    proxy.add("GET", "/manifests/", 1, Fault::Status(503, None));
    let out = env.run(&[
        "copy",
        &format!("docker://{}/errors/busybox:1", proxy.addr),
        &env.oci("b", None),
    ]);
    assert!(out.status.success(), "{}", crate::text(&out.stderr));
    let err = crate::text(&out.stderr);
    assert!(err.contains("retrying"), "the retry is reported: {err}");
    assert!(!err.contains('\u{1b}'), "escape codes on a pipe: {err:?}");
}

/// Options that contradict each other, or mean nothing alone, are refused before anything is copied, instead of
/// being dropped without a word.
#[test]
fn contradictory_or_incomplete_options_are_refused() {
    let env = Env::new();
    busybox_layout(&env, "a", "bb:1");
    let src = env.oci("a", Some("bb:1"));
    let dest = env.oci("b", Some("x"));
    let refused = |args: &[&str], code: i32, says: &str| {
        let mut all = vec!["copy"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[src.as_str(), dest.as_str()]);
        let out = env.run(&all);
        let err = crate::text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!env.path("b").exists(), "{args:?}: nothing was written");
    };
    refused(&["--all", "--platform", "linux/amd64"], 2, "cannot be used with");
    refused(&["--dest-compress-level", "3"], 2, "--dest-compress-format");
    refused(
        &["--dest-compress-format", "gzip", "--dest-compress-level", "99"],
        1,
        "gzip levels are 0..=9",
    );
    refused(
        &["--dest-compress-format", "zstd", "--dest-compress-level", "1000"],
        1,
        "zstd levels are",
    );
}

/// A destination that names a digest gets that image or nothing: another manifest is not tagged, and the copy
/// fails saying so (skopeo: "Digest of source image's manifest would not match destination reference").
#[test]
fn a_destination_digest_must_match_the_copied_manifest() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let src = env.oci("a", Some("bb:1"));
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = env.fails(&["copy", "-q", &src, &format!("docker://{}/d/app@{wrong}", reg.host())]);
    assert!(err.contains("not the digest the destination names"), "{err}");
    let err = env.fails(&["copy", "-q", &src, &format!("docker://{}/d/app:1@{wrong}", reg.host())]);
    assert!(err.contains(&img.manifest_digest.to_string()), "{err}");
    let tag = crate::http("GET", &reg.host(), "/v2/d/app/manifests/1", &[("Accept", "*/*")]);
    assert_eq!(tag.status, 404, "the tag was not set");
    let right = format!("docker://{}/d/app:2@{}", reg.host(), img.manifest_digest);
    env.ok(&["copy", "-q", &src, &right]);
    assert_eq!(
        crate::registry_digest(&reg.host(), "d/app", "2"),
        img.manifest_digest.to_string()
    );
}

/// A destination that fills up in the middle of a large blob (written around the page cache, on a helper thread):
/// the error is the disk's, naming the layout, not the download's "writer stopped", and no blob is left
/// half-written under its name.
#[test]
fn a_full_destination_disk_is_reported_as_such() {
    use berth_spec::layout::Layout;
    use berth_spec::platform::Platform;
    use berth_testkit::image::write_image;

    /// A tmpfs mounted for the test, unmounted when dropped.
    struct Tmpfs(std::path::PathBuf);
    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let layout = Layout::create(env.path("src")).unwrap();
    let image = crate::random_image(91, 1, 24 << 20, &Platform::host().architecture);
    write_image(&layout, Some("big:1"), &image).unwrap();
    let remote = format!("docker://{}/full/big:1", reg.host());
    env.ok(&["copy", "-q", &env.oci("src", Some("big:1")), &remote]);

    let small = env.path("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "berth-test-full"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs (the tests run as root)");
    let _unmount = Tmpfs(small.clone());
    let dest = small.join("layout");
    let err = env.fails(&["copy", "-q", &remote, &format!("oci:{}:x", dest.display())]);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(&dest.display().to_string()), "the layout is named: {err}");
    assert!(!err.contains("writer stopped"), "{err}");
    // Recompressing: the full disk is the destination's, not a problem "decompressing" the source.
    let recompressed = small.join("recompressed");
    let err = env.fails(&[
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        &env.oci("src", Some("big:1")),
        &format!("oci:{}:x", recompressed.display()),
    ]);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(&recompressed.display().to_string()),
        "the destination is named: {err}"
    );
    assert!(!err.contains("decompressing"), "{err}");
    let blobs = dest.join("blobs/sha256");
    for entry in std::fs::read_dir(&blobs).into_iter().flatten() {
        let entry = entry.unwrap();
        let len = entry.metadata().unwrap().len();
        assert!(
            len < 1 << 20,
            "a partial blob under a blob name: {:?} ({len} bytes)",
            entry.path()
        );
    }
}
