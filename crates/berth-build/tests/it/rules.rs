//! The Containerfile rules builders most often get wrong, each built for real and checked in the image.

use serde_json::json;

use crate::{Env, meta};

fn read(env: &Env, name: &str, dir: &str, path: &str) -> String {
    let rootfs = env.unpack(name, dir);
    std::fs::read_to_string(rootfs.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn arg_scoping_env_precedence_and_build_args() {
    let env = Env::new();
    env.build_ok(
        r#"ARG V=global
ARG ONLY_GLOBAL=g
FROM --platform=$BUILDPLATFORM busybox:1
RUN echo "[$V][$ONLY_GLOBAL]" > /before
ARG V
RUN echo "[$V]" > /redeclared
ARG LOCAL=default
RUN echo "[$LOCAL]" > /local
ENV LOCAL=from-env
RUN echo "[$LOCAL]" > /env-wins
ENV a=hi
ENV a=bye b=$a
RUN echo "[$b]" > /old-value
"#,
        &["-t", "args:1", "--build-arg", "LOCAL=given"],
    );
    let rootfs = env.unpack("args:1", "b");
    let r = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(
        r("before"),
        "[][]\n",
        "a global ARG is visible only to FROM until declared again"
    );
    assert_eq!(r("redeclared"), "[global]\n", "ARG NAME takes the global value");
    assert_eq!(r("local"), "[given]\n", "--build-arg overrides the default");
    assert_eq!(r("env-wins"), "[from-env]\n", "ENV beats ARG");
    assert_eq!(r("old-value"), "[hi]\n", "ENV a=bye b=$a takes the old a");
    let (_, config) = env.image("args:1");
    let list = config["config"]["Env"].to_string();
    assert!(
        !list.contains("LOCAL=given") && list.contains("LOCAL=from-env"),
        "{list}"
    );
    assert!(!list.contains("V=global"), "ARGs are not kept in the image: {list}");
}

#[test]
fn unused_failing_stage_is_not_built_and_target_selects() {
    let env = Env::new();
    let file = r#"FROM busybox:1 AS base
RUN echo one > /one
FROM busybox:1 AS broken
RUN false
FROM scratch AS final
COPY --from=base /one /copied
COPY --from=0 /bin/busybox /bin/busybox
"#;
    env.build_ok(file, &["-t", "final:1"]);
    let rootfs = env.unpack("final:1", "f");
    assert_eq!(std::fs::read_to_string(rootfs.join("copied")).unwrap(), "one\n");
    assert!(rootfs.join("bin/busybox").exists() && !rootfs.join("one").exists());
    env.file("Containerfile", file);
    let r = env.berth_build(&["build", "--target", "broken", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("Containerfile:4:1: RUN false"), "{r:?}");
    let r = env.berth_build(&["build", "--target", "nope", env.path("ctx").to_str().unwrap()]);
    assert!(r.stderr.contains("named stages: base, broken, final"), "{r:?}");
    env.build_ok(file, &["--target", "base", "-t", "base:1"]);
    let (_, config) = env.image("base:1");
    assert_eq!(
        config["config"]["Cmd"],
        json!(["/bin/sh"]),
        "the base stage keeps busybox's Cmd"
    );
}

#[test]
fn entrypoint_resets_an_inherited_cmd_shell_and_healthcheck() {
    let env = Env::new();
    env.build_ok(
        r#"FROM busybox:1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT echo from-entrypoint
HEALTHCHECK --interval=30s --retries=2 CMD cat /ok || exit 1
STOPSIGNAL SIGUSR1
"#,
        &["-t", "ep:1"],
    );
    let (_, config) = env.image("ep:1");
    let c = &config["config"];
    assert_eq!(
        c["Entrypoint"],
        json!(["/bin/sh", "-ec", "echo from-entrypoint"]),
        "SHELL applies to shell forms"
    );
    assert!(
        c.get("Cmd").is_none_or(|v| v.is_null()),
        "busybox's Cmd is reset by ENTRYPOINT: {c}"
    );
    assert_eq!(c["Shell"], json!(["/bin/sh", "-ec"]), "SHELL is kept in the config");
    assert_eq!(c["Healthcheck"]["Test"], json!(["CMD-SHELL", "cat /ok || exit 1"]));
    assert_eq!(c["Healthcheck"]["Interval"], json!(30_000_000_000u64));
    assert_eq!(c["Healthcheck"]["Retries"], json!(2));
    assert_eq!(c["StopSignal"], "SIGUSR1");
    // A CMD in the same stage survives a later ENTRYPOINT; HEALTHCHECK NONE turns it off.
    env.build_ok(
        "FROM ep:1\nCMD [\"x\"]\nENTRYPOINT [\"echo\"]\nHEALTHCHECK NONE\n",
        &["-t", "ep:2"],
    );
    let (_, config) = env.image("ep:2");
    assert_eq!(config["config"]["Cmd"], json!(["x"]));
    assert_eq!(config["config"]["Healthcheck"]["Test"], json!(["NONE"]));
}

#[test]
fn onbuild_triggers_run_after_the_child_from() {
    let env = Env::new();
    env.build_ok(
        "FROM busybox:1\nONBUILD RUN echo triggered > /onbuild\nONBUILD COPY hello /hello\n",
        &["-t", "parent:1"],
    );
    let (_, config) = env.image("parent:1");
    assert_eq!(
        config["config"]["OnBuild"],
        json!(["RUN echo triggered > /onbuild", "COPY hello /hello"])
    );
    env.file("hello", "hi\n");
    env.build_ok("FROM parent:1\nRUN cat /onbuild > /seen\n", &["-t", "child:1"]);
    assert_eq!(read(&env, "child:1", "c", "seen"), "triggered\n");
    let (_, config) = env.image("child:1");
    assert!(
        config["config"].get("OnBuild").is_none_or(|v| v.is_null()),
        "triggers run once"
    );
}

#[test]
fn heredocs_run_and_copy() {
    let env = Env::new();
    env.build_ok(
        "FROM busybox:1\nARG WHO=you\nRUN <<EOF\necho \"hi $WHO\" > /run-heredoc\necho second >> /run-heredoc\nEOF\n\
COPY <<CONF /etc/app.conf\nwho=$WHO\nCONF\nCOPY <<'RAW' /etc/raw\nwho=$WHO\nRAW\n\
RUN <<-SCRIPT\n\t#!/bin/sh\n\techo script > /script-ran\n\tSCRIPT\n",
        &["-t", "here:1"],
    );
    let rootfs = env.unpack("here:1", "h");
    let r = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(r("run-heredoc"), "hi you\nsecond\n");
    assert_eq!(r("etc/app.conf"), "who=you\n", "an unquoted delimiter expands");
    assert_eq!(r("etc/raw"), "who=$WHO\n", "a quoted delimiter does not");
    assert_eq!(r("script-ran"), "script\n", "<<- strips tabs; #! runs as a script");
    assert_eq!(meta(&rootfs.join("etc/app.conf")), (0o644, 0, 0));
}

#[test]
fn copy_rules_dockerignore_globs_and_owners() {
    let env = Env::new();
    env.file("docs/README.md", "readme\n")
        .file("docs/other.md", "other\n")
        .file("src/a.txt", "a\n")
        .file("src/b.txt", "b\n")
        .file("src/c.bin", "c\n")
        .file(".dockerignore", "docs\n!docs/README.md\n*.tmp\n");
    env.file("x.tmp", "tmp\n");
    env.build_ok(
        r#"FROM busybox:1
COPY docs /docs/
COPY src/*.txt /globbed/
COPY --chown=nobody:nogroup src/c.bin /owned
COPY --exclude=*.bin src /excluded/
COPY --parents src/*.txt docs/README.md /kept/
"#,
        &["-t", "copy:1"],
    );
    let rootfs = env.unpack("copy:1", "c");
    assert!(rootfs.join("docs/README.md").exists(), "a ! exception re-includes");
    assert!(
        !rootfs.join("docs/other.md").exists(),
        "an excluded directory takes its children"
    );
    assert!(rootfs.join("globbed/a.txt").exists() && rootfs.join("globbed/b.txt").exists());
    assert!(!rootfs.join("globbed/c.bin").exists());
    assert_eq!(
        meta(&rootfs.join("owned")),
        (0o644, 65534, 65534),
        "--chown names from the stage's passwd"
    );
    assert!(rootfs.join("excluded/a.txt").exists() && !rootfs.join("excluded/c.bin").exists());
    assert!(
        rootfs.join("kept/src/a.txt").exists() && rootfs.join("kept/docs/README.md").exists(),
        "--parents"
    );

    // Several sources need a directory; an unknown user fails; a source outside the context is refused.
    for (file, says) in [
        ("FROM busybox:1\nCOPY src/a.txt src/b.txt /nodir\n", "ending with '/'"),
        ("FROM busybox:1\nCOPY --chown=nosuchuser src/a.txt /x\n", "nosuchuser"),
        ("FROM busybox:1\nCOPY ../outside /x\n", "outside the build context"),
        ("FROM busybox:1\nCOPY x.tmp /x\n", "excluded by .dockerignore"),
    ] {
        env.file("Containerfile", file);
        let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
        assert_eq!(r.code, 125, "{file}: {r:?}");
        assert!(r.stderr.contains(says), "{file}: {r:?}");
    }
}

#[test]
fn hostile_context_symlinks_never_lead_out() {
    let env = Env::new();
    std::os::unix::fs::symlink("/etc/shadow", env.path("ctx/inner-link")).unwrap();
    std::fs::create_dir_all(env.path("ctx/dir")).ok();
    std::os::unix::fs::symlink("/etc", env.path("ctx/dir/etc-link")).unwrap();
    env.build_ok("FROM busybox:1\nCOPY dir /dir/\n", &["-t", "links:1"]);
    let rootfs = env.unpack("links:1", "l");
    let link = std::fs::read_link(rootfs.join("dir/etc-link")).unwrap();
    assert_eq!(
        link,
        std::path::Path::new("/etc"),
        "a symlink inside a copied directory is copied as a symlink"
    );
    // A source that is itself a symlink resolves inside the context: /etc/shadow there does not exist.
    env.file("Containerfile", "FROM busybox:1\nCOPY inner-link /x\n");
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("inner-link"), "{r:?}");
}

#[test]
fn add_extracts_local_archives_by_content() {
    let env = Env::new();
    let tar = berth_testkit::image::TarBuilder::new()
        .dir("pkg", 0o755)
        .file("pkg/inside", 0o600, b"from the archive\n")
        .finish();
    std::fs::write(env.path("ctx/plain.tar"), &tar).unwrap();
    // The same tree gzipped by the system's tar, under a name that says nothing.
    let status = std::process::Command::new("tar")
        .args(["czf"])
        .arg(env.path("ctx/renamed.bin"))
        .args(["-C"])
        .arg(env.path("ctx"))
        .arg("plain.tar")
        .status()
        .unwrap();
    assert!(status.success());
    for (tool, name) in [("bzip2", "p.tar.bz2"), ("xz", "p.tar.xz")] {
        let out = std::process::Command::new(tool)
            .arg("-c")
            .arg(env.path("ctx/plain.tar"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool}");
        std::fs::write(env.path("ctx").join(name), out.stdout).unwrap();
    }
    env.file("not-an-archive.tar", "just text\n");
    env.build_ok(
        "FROM busybox:1\nADD plain.tar /x/\nADD renamed.bin /y/\nADD not-an-archive.tar /z/\nCOPY plain.tar /copied/\n\
ADD p.tar.bz2 /bz/\nADD p.tar.xz /xz/\n",
        &["-t", "add:1"],
    );
    let rootfs = env.unpack("add:1", "a");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("x/pkg/inside")).unwrap(),
        "from the archive\n"
    );
    assert_eq!(meta(&rootfs.join("x/pkg/inside")).0, 0o600, "modes from the archive");
    assert!(
        rootfs.join("y/plain.tar").is_file(),
        "a gzipped tar is extracted whatever its name"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("z/not-an-archive.tar")).unwrap(),
        "just text\n"
    );
    assert!(rootfs.join("copied/plain.tar").is_file(), "COPY never extracts");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("bz/pkg/inside")).unwrap(),
        "from the archive\n",
        "bzip2"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("xz/pkg/inside")).unwrap(),
        "from the archive\n",
        "xz"
    );
}

#[test]
fn run_mounts_cache_bind_secret_tmpfs_leave_nothing_in_the_layer() {
    let env = Env::new();
    env.file("input/data", "bound\n");
    std::fs::write(env.path("token"), "s3cret\n").unwrap();
    let file = "FROM busybox:1\n\
RUN --mount=type=cache,target=/cache,id=counter echo x >> /cache/n && cat /cache/n > /uses\n\
RUN --mount=type=bind,source=input,target=/in cat /in/data > /bound\n\
RUN --mount=type=secret,id=token busybox wc -c < /run/secrets/token > /secret-len && echo ok > /secret-ok\n\
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && cat /scratch/t > /tmpfs-ok\n";
    let secret = format!("id=token,src={}", env.path("token").display());
    env.build_ok(file, &["-t", "m:1", "--secret", &secret]);
    // Again without the step cache, so that the RUN steps run and see what the first build left in the cache mount.
    env.build_ok(file, &["-t", "m:2", "--no-cache", "--secret", &secret]);
    let rootfs = env.unpack("m:2", "m");
    let r = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(r("uses"), "x\nx\n", "the cache mount persists between builds");
    assert_eq!(r("bound"), "bound\n");
    assert_eq!(r("secret-ok"), "ok\n");
    assert_eq!(r("secret-len").trim(), "7", "the secret was readable in the step");
    assert_eq!(r("tmpfs-ok"), "t\n");
    for stub in ["cache", "in", "run/secrets/token", "run/secrets", "run", "scratch"] {
        assert!(
            !rootfs.join(stub).exists(),
            "the mount point /{stub} is not left in the image"
        );
    }
    // The secret never reaches a layer.
    let layers = env.path("layers-grep");
    std::fs::create_dir_all(&layers).unwrap();
    let (manifest, _) = env.image("m:2");
    for l in manifest["layers"].as_array().unwrap() {
        let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "zcat {}/blobs/sha256/{hex} | grep -c s3cret || true",
                env.store.root().display()
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "layer {hex} holds the secret"
        );
    }
    // A required secret that was not given fails the step.
    env.file(
        "Containerfile",
        "FROM busybox:1\nRUN --mount=type=secret,id=missing,required cat /run/secrets/missing\n",
    );
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("id=missing"), "{r:?}");
}

/// `ln` of a file that already has other names in a lower layer keeps all names one file in the image (overlayfs
/// breaks such links on copy-up; the layer must not).
#[test]
fn hardlinks_survive_copy_up() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.build_ok(
        "FROM busybox:1\nRUN mkdir -p /l/sub && echo target > /l/t && busybox ln /l/t /l/sub/hard1\n\
RUN busybox ln /l/t /l/hard2\n",
        &["-t", "links:1"],
    );
    let rootfs = env.unpack("links:1", "l");
    let ino = |p: &str| std::fs::metadata(rootfs.join(p)).unwrap().ino();
    assert_eq!(ino("l/t"), ino("l/sub/hard1"), "the lower name stays linked");
    assert_eq!(ino("l/t"), ino("l/hard2"));
    assert_eq!(std::fs::metadata(rootfs.join("l/t")).unwrap().nlink(), 3);
}

#[test]
fn workdir_owner_relative_workdirs_and_more_copy_sources() {
    let env = Env::new();
    env.file("build.txt", "from the context\n");
    // FILE.dockerignore beside the Containerfile wins over the context's .dockerignore.
    env.file(".dockerignore", "build.txt\n");
    std::fs::write(env.path("ctx/Containerfile.dockerignore"), "nothing-matches\n").unwrap();
    env.build_ok(
        "FROM busybox:1\nUSER nobody\nWORKDIR /srv\nWORKDIR app\nUSER root\nRUN pwd > /where\n\
COPY --from=busybox:1 /etc/group /from-image-group\nCOPY build.txt /copied\n\
RUN <<ONE cat > /first && <<TWO cat > /second\nI am first\nONE\nI am second\nTWO\n",
        &["-t", "wd:1"],
    );
    let rootfs = env.unpack("wd:1", "w");
    let r = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(r("where"), "/srv/app\n", "a relative WORKDIR joins the previous one");
    assert_eq!(
        meta(&rootfs.join("srv")).1,
        65534,
        "WORKDIR is created by the USER of its time"
    );
    assert_eq!(meta(&rootfs.join("srv/app")).1, 65534);
    assert!(r("from-image-group").contains("nogroup"), "COPY --from an image");
    assert_eq!(
        r("copied"),
        "from the context\n",
        "the Containerfile's own ignore file replaced .dockerignore"
    );
    assert_eq!(r("first"), "I am first\n", "several heredocs on one line");
    assert_eq!(r("second"), "I am second\n");
}
