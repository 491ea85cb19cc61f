//! What berth-build prints, pinned: a build's progress (first run and a cached rebuild), `prune --dry-run`, and
//! the key errors (each naming the Containerfile line and what to do), as snapshots (insta; `cargo insta review`
//! after a deliberate change). Digests, ids, sizes and temporary paths are masked; the image id is checked
//! independently here.

use crate::Env;

fn masked(f: impl FnOnce()) {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[digest]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[id]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[short-id]");
    s.add_filter(r"/tmp/[^\s:\x22]+", "[tmp]");
    s.add_filter(r"\d+(\.\d+)? ?(B|KB|KiB|MB|MiB|kB)\b", "[size]");
    s.add_filter(r"\d+(\.\d+)?m?s\b", "[elapsed]");
    s.bind(f);
}

#[test]
fn progress_prune_and_key_errors_are_pinned() {
    let env = Env::new();
    env.file("a.txt", "a\n");
    let file = "FROM busybox:1\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\nCMD [\"cat\", \"/b.txt\"]\n";
    env.file("Containerfile", file);
    let ctx = env.path("ctx");
    let ctx = ctx.to_str().unwrap();
    let first = env.berth_build(&["build", "--timestamp", "1700000000", "-t", "pinned:1", ctx]);
    assert_eq!(first.code, 0, "{first:?}");
    let again = env.berth_build(&["build", "--timestamp", "1700000000", "-t", "pinned:1", ctx]);
    assert_eq!(again.code, 0, "{again:?}");
    // Independent checks of what the snapshots mask: stdout is the image id, the config's digest.
    let (manifest, _) = env.image("pinned:1");
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(format!("sha256:{}", first.stdout.trim()), config_digest);
    assert_eq!(first.stdout, again.stdout, "a cached rebuild gives the same image");
    assert_eq!(again.stderr.matches("--> Using cache").count(), 2, "{}", again.stderr);
    let prune = env.berth_build(&["prune", "--dry-run"]);
    assert_eq!(prune.code, 0, "{prune:?}");

    let failing = |name: &'static str, containerfile: &str, extra: &[&str]| {
        let dir = env.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Containerfile"), containerfile).unwrap();
        let mut args = vec!["build"];
        args.extend(extra);
        let dir = dir.to_str().unwrap().to_owned();
        args.push(&dir);
        let r = env.berth_build(&args);
        assert_ne!(r.code, 0, "{name}: {r:?}");
        assert!(r.stdout.is_empty(), "{name}: errors go to stderr: {r:?}");
        (name, r)
    };
    let errors = [
        failing("error-unknown-instruction", "FROM busybox:1\nFORM busybox:1\n", &[]),
        // --pull never: the test must not reach for docker.io (a name not in the store would be pulled from it).
        failing("error-unknown-base", "FROM nope:1\nRUN true\n", &["--pull", "never"]),
        failing("error-missing-source", "FROM busybox:1\nCOPY missing.txt /x\n", &[]),
        failing("error-run-fails", "FROM busybox:1\nRUN echo failing >&2; exit 7\n", &[]),
        failing("error-unknown-flag", "FROM busybox:1\nCOPY --frm=x a /b\n", &[]),
        failing(
            "error-unknown-stage",
            "FROM busybox:1 AS build\nFROM busybox:1\nCOPY --from=biuld /a /b\n",
            &["--pull", "never"],
        ),
        failing(
            "error-run-flag",
            "FROM busybox:1\nRUN --mout=type=cache,target=/c true\n",
            &[],
        ),
        failing("error-bad-build-arg", "FROM busybox:1\n", &["--build-arg", "=x"]),
        failing("error-bad-platform", "FROM busybox:1\n", &["--platform", "linux//"]),
    ];
    let no_file = env.berth_build(&["build", env.path("empty-dir").to_str().unwrap()]);
    assert_ne!(no_file.code, 0, "{no_file:?}");
    masked(|| {
        insta::assert_snapshot!("build-first", first.stderr);
        insta::assert_snapshot!("build-cached", again.stderr);
        insta::assert_snapshot!("prune-dry-run", format!("{}{}", prune.stdout, prune.stderr));
        for (name, r) in &errors {
            insta::assert_snapshot!(*name, format!("exit {}\n{}", r.code, r.stderr));
        }
        insta::assert_snapshot!("error-no-context", format!("exit {}\n{}", no_file.code, no_file.stderr));
    });
}
