//! The step cache: a rebuild with nothing changed runs nothing; a changed file invalidates from the first step
//! that reads it; a changed build argument from the first RUN that sees it; a moved context (same bytes, new
//! times) still hits; --no-cache runs everything.

use crate::Env;

const FILE: &str = "FROM busybox:1\nARG V=1\nRUN echo first > /first\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy-of-a\n\
COPY b.txt /b.txt\nRUN echo \"v=$V\" > /v\n";

fn build(env: &Env, extra: &[&str]) -> (String, usize) {
    env.file("Containerfile", FILE);
    let mut args = vec!["build", "--timestamp", "1700000000"];
    args.extend(extra);
    let ctx = env.path("ctx");
    args.push(ctx.to_str().unwrap());
    let r = env.berth_build(&args);
    assert_eq!(r.code, 0, "{r:?}");
    (r.stdout.trim().to_owned(), r.stderr.matches("--> Using cache").count())
}

#[test]
fn rebuilds_reuse_unchanged_steps() {
    let env = Env::new();
    env.file("a.txt", "a\n").file("b.txt", "b\n");
    let (first, hits) = build(&env, &[]);
    assert_eq!(hits, 0, "a cold build runs every step");
    let (again, hits) = build(&env, &[]);
    assert_eq!(hits, 5, "nothing changed: every file-system step comes from the cache");
    assert_eq!(again, first, "the same image (same --timestamp)");

    // New times, same bytes (a copied context): still hits.
    for f in ["a.txt", "b.txt"] {
        let p = env.path("ctx").join(f);
        let data = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    let (_, hits) = build(&env, &[]);
    assert_eq!(hits, 5, "file times are not part of the key");

    // b.txt changes: the steps before its COPY still hit.
    env.file("b.txt", "b changed\n");
    let (changed, hits) = build(&env, &[]);
    assert_eq!(hits, 3, "RUN, COPY a.txt and RUN hit; COPY b.txt and the last RUN run");
    assert_ne!(changed, first);

    // A build argument: from the first RUN that sees it.
    let (_, hits) = build(&env, &["--build-arg", "V=2"]);
    assert_eq!(hits, 0, "every RUN sees V (build arguments are in a RUN's environment)");
    let (_, hits) = build(&env, &["--no-cache"]);
    assert_eq!(hits, 0, "--no-cache runs everything");

    // The cached image is complete: its files are right.
    env.file("b.txt", "b\n");
    build(&env, &["-t", "cached:1"]);
    let rootfs = env.unpack("cached:1", "c");
    assert_eq!(std::fs::read_to_string(rootfs.join("copy-of-a")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(rootfs.join("v")).unwrap(), "v=1\n");
    let fsck = env.store.fsck().unwrap();
    assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
}

#[test]
fn prune_empties_the_caches_and_dry_run_says_what_they_hold() {
    let env = Env::new();
    env.file("a.txt", "a\n").file("b.txt", "b\n");
    build(&env, &[]);
    let r = env.berth_build(&["prune", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("holds 5 cached step(s)"), "{r:?}");
    let (_, hits) = build(&env, &[]);
    assert_eq!(hits, 5, "--dry-run removed nothing");
    let r = env.berth_build(&["prune"]);
    assert!(r.stdout.contains("removed 5 cached step(s)"), "{r:?}");
    assert_eq!(
        std::fs::read_dir(env.path("cache/overlay/layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    let (_, hits) = build(&env, &[]);
    assert_eq!(hits, 0, "after prune every step runs again");
}

#[test]
fn a_build_warns_when_the_cache_outgrows_its_warning_size() {
    let env = Env::new();
    env.file("a.txt", "a\n").file("b.txt", "b\n");
    env.file("Containerfile", FILE);
    let ctx = env.path("ctx");
    let ctx = ctx.to_str().unwrap();
    let r = env.berth_build(&["build", "--cache-warn-size", "1b", ctx]);
    assert_eq!(r.code, 0, "{r:?}");
    let warning = r
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: the build cache"))
        .unwrap_or_default();
    assert!(
        warning.contains("berth-build prune") && warning.contains("cached step(s)"),
        "{r:?}"
    );
    // Under the default size (at least 5 GiB) nothing is said.
    let r = env.berth_build(&["build", ctx]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning: the build cache"), "{r:?}");
    let r = env.berth_build(&["build", "--cache-warn-size", "lots", ctx]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--cache-warn-size lots"), "{r:?}");
}

#[test]
fn an_unchanged_context_is_not_read_again() {
    let env = Env::new();
    env.file("a.txt", "a\n").file("b.txt", "b\n");
    // Past the stat cache's racy window (100 ms): a file changed within it of being recorded is always re-read.
    // This waits for the clock, not for another thread.
    std::thread::sleep(std::time::Duration::from_millis(200));
    env.file("Containerfile", FILE);
    let ctx = env.path("ctx");
    let run = || {
        let r = env.berth_build(&["-v", "build", ctx.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stderr
    };
    let first = run();
    assert!(
        first.contains("context files: 2 read and hashed, 0 known unchanged"),
        "{first}"
    );
    let second = run();
    assert!(
        second.contains("context files: 0 read and hashed, 2 known unchanged"),
        "{second}"
    );
    // A changed file (same size) is read again; the other is not.
    env.file("b.txt", "B\n");
    let third = run();
    assert!(
        third.contains("context files: 1 read and hashed, 1 known unchanged"),
        "{third}"
    );
}

/// With --timestamp (or SOURCE_DATE_EPOCH), the same context built in two places, at two times, with cold caches,
/// gives the same image digest; touching only file times changes nothing.
#[test]
fn reproducible_images_across_directories_and_times() {
    let build_in = |env: &Env| -> String {
        env.file("a.txt", "a\n").file("dir/b.txt", "b\n");
        env.file(
            "Containerfile",
            "FROM busybox:1\nCOPY . /ctx/\nRUN mkdir /made && echo made > /made/file\nENV X=1\n",
        );
        let ctx = env.path("ctx");
        let r = env.berth_build(&[
            "build",
            "-t",
            "repro:1",
            "--timestamp",
            "1700000000",
            ctx.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        env.store.resolve(Some("repro:1")).unwrap().digest().to_string()
    };
    let (one, two) = (Env::new(), Env::new());
    let first = build_in(&one);
    // Different directory, cold caches, later file times.
    let second = build_in(&two);
    assert_eq!(first, second, "the same manifest digest from two clones");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in ["a.txt", "dir/b.txt"] {
        let p = two.path("ctx").join(f);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let ctx = two.path("ctx");
    let r = two.berth_build(&[
        "build",
        "-t",
        "repro:2",
        "--no-cache",
        "--timestamp",
        "1700000000",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let third = two.store.resolve(Some("repro:2")).unwrap().digest().to_string();
    assert_eq!(first, third, "only the file times changed: the same image");
}

/// A stage's last COPY writes its layer straight from the context (its files are never written into the step's
/// root): the layer must be byte for byte the one the ordinary path writes, later stages and later builds that
/// mount it must see its files, and a context file changed under it must fail the build, not go in half-read.
#[test]
fn a_last_copy_writes_the_same_layer_straight_from_the_context() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let big: String = (0..200_000).map(|i| format!("{i}\n")).collect();
    env.file("tree/big.txt", &big).file("tree/sub/small", "small\n");
    std::fs::hard_link(env.path("ctx/tree/big.txt"), env.path("ctx/tree/sub/big-link")).unwrap();
    std::os::unix::fs::symlink("../big.txt", env.path("ctx/tree/sub/sym")).unwrap();
    let layers = |name: &str| -> Vec<String> {
        let (m, _) = env.image(name);
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let ts = ["--timestamp", "1700000000"];

    // The COPY is the last step: written from the context (the debug log says so).
    env.file("Containerfile", "FROM busybox:1\nCOPY tree /tree\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth-build"))
        .args(["build", "--timestamp", "1700000000", "-t", "last:1"])
        .arg(env.path("ctx"))
        .env("BERTH_STORE", env.store.root())
        .env("BERTH_BUILD_CACHE", env.path("cache"))
        .env("RUST_LOG", "berth_build=debug")
        .output()
        .unwrap();
    let r = crate::ran(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("layer blob written from the copy's sources"),
        "{}",
        r.stderr
    );
    // The same COPY followed by a RUN (so written through the step's root, as every other step): same layer bytes.
    env.build_ok(
        "FROM busybox:1\nCOPY tree /tree\nRUN cat /tree/sub/sym > /via-run\n",
        &[&ts[..], &["--no-cache", "-t", "through:1"]].concat(),
    );
    let (last, through) = (layers("last:1"), layers("through:1"));
    assert_eq!(last.len() + 1, through.len());
    assert_eq!(last[..], through[..last.len()], "the COPY layer is the same either way");
    let rootfs = env.unpack("last:1", "last");
    assert_eq!(std::fs::read_to_string(rootfs.join("tree/big.txt")).unwrap(), big);
    assert_eq!(std::fs::read_to_string(rootfs.join("tree/sub/sym")).unwrap(), big);
    let (a, b) = (
        std::fs::metadata(rootfs.join("tree/big.txt")).unwrap(),
        std::fs::metadata(rootfs.join("tree/sub/big-link")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "the hardlink stays one file");

    // A later build that hits the cached COPY and runs a step on it mounts the layer (extracted from its blob).
    env.build_ok(
        "FROM busybox:1\nCOPY tree /tree\nRUN wc -c < /tree/sub/big-link > /size\n",
        &[&ts[..], &["-t", "later:1"]].concat(),
    );
    let rootfs = env.unpack("later:1", "later");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("size")).unwrap().trim(),
        big.len().to_string()
    );

    // Another stage copies from a stage whose last step was such a COPY.
    env.build_ok(
        "FROM busybox:1 AS a\nCOPY tree /tree\nFROM busybox:1\nCOPY --from=a /tree/sub /from-a\n",
        &["--no-cache", "-t", "stages:1"],
    );
    let rootfs = env.unpack("stages:1", "stages");
    assert_eq!(std::fs::read_to_string(rootfs.join("from-a/big-link")).unwrap(), big);
    assert_eq!(std::fs::read_to_string(rootfs.join("from-a/small")).unwrap(), "small\n");
}

/// A stage's last COPY that cannot be in the cache hashes its sources for the step's key as the layer reads them
/// (each file read once): that key is the one a later build computes from scratch, and changes are still seen.
#[test]
fn a_key_hashed_while_the_layer_reads_the_sources_is_the_key_a_rebuild_computes() {
    let env = Env::new();
    let big: String = (0..100_000).map(|i| format!("{i}\n")).collect();
    env.file("tree/big.txt", &big)
        .file("tree/sub/small", "small\n")
        .file("tree/sub/other", "other\n");
    // Past the stat cache's racy window, so that the entries the first build records are trusted.
    std::thread::sleep(std::time::Duration::from_millis(200));
    env.file("Containerfile", "FROM busybox:1\nCOPY tree /tree\n");
    let ctx = env.path("ctx");
    let run = |extra: &[&str]| {
        let mut args = vec!["-v", "build", "--timestamp", "1700000000"];
        args.extend(extra);
        args.push(ctx.to_str().unwrap());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth-build"))
            .args(&args)
            .env("BERTH_STORE", env.store.root())
            .env("BERTH_BUILD_CACHE", env.path("cache"))
            .env("RUST_LOG", "berth_build=debug")
            .output()
            .unwrap();
        let r = crate::ran(out);
        assert_eq!(r.code, 0, "{r:?}");
        r
    };
    let first = run(&[]);
    assert!(
        first.stderr.contains("layer blob written from the copy's sources"),
        "{}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .contains("key from the sources the layer read read_by_the_layer=3"),
        "{}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .contains("context files: 3 read and hashed, 0 known unchanged"),
        "each file is read once: {}",
        first.stderr
    );
    // From scratch (no stat cache): every file hashed again by the ordinary walk gives the same key.
    std::fs::remove_file(env.path("cache/context-stat.json")).unwrap();
    let again = run(&[]);
    assert!(again.stderr.contains("--> Using cache"), "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("context files: 3 read and hashed, 0 known unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(first.stdout.trim(), again.stdout.trim(), "the same image");
    // With the entries the first build recorded, nothing is read.
    let third = run(&[]);
    assert!(third.stderr.contains("--> Using cache"), "{}", third.stderr);
    assert!(
        third
            .stderr
            .contains("context files: 0 read and hashed, 3 known unchanged"),
        "{}",
        third.stderr
    );
    // A changed file (same size) misses, and the image holds the new bytes.
    env.file("tree/sub/small", "SMALL\n");
    let changed = run(&["-t", "changed:1"]);
    assert!(!changed.stderr.contains("--> Using cache"), "{}", changed.stderr);
    let rootfs = env.unpack("changed:1", "changed");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("tree/sub/small")).unwrap(),
        "SMALL\n"
    );
    assert_eq!(std::fs::read_to_string(rootfs.join("tree/big.txt")).unwrap(), big);
}
