//! `cargo xtask demo`: Berth's main job on the bundled example, end to end, then the same pipeline with each
//! Berth tool swapped for its peer.
//!
//! It needs nothing before it: it installs the Debian packages it uses (the same package step as `cargo xtask ci`,
//! limited to the demo's; `--no-install` skips it) and builds the tools. Then, with one private store under
//! `target/demo` (as `BERTH_STORE`), berth-build builds `examples/hello` from its Containerfile, berth-copy pushes it
//! to a local registry the demo starts (and stops), and berth-run runs it from there; buildah, skopeo and ctr do
//! the same; then the two mix (buildah's image run by berth-run, Berth's image run by ctr), and the store is shown
//! to be a plain OCI layout that skopeo and umoci read. Every step prints the command it ran.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// What the demo uses: what building the tools needs (see `packages::BUILD_PACKAGES`), the base of the example, the registry, and the peers.
pub const DEMO_PACKAGES: &[&str] = &[
    "libseccomp-dev",
    "nasm",
    "make",
    "busybox-static",
    "docker-registry",
    "buildah",
    "skopeo",
    "containerd",
    "runc",
    "umoci",
];

pub fn run(args: &[String]) -> Result<()> {
    let mut install = true;
    for a in args {
        match a.as_str() {
            "--no-install" => install = false,
            other => bail!("demo: unknown argument {other:?} (usage: cargo xtask demo [--no-install])"),
        }
    }
    if !rustix::process::geteuid().is_root() {
        bail!(
            "the demo builds and runs containers, which needs root here: run `sudo -E cargo xtask demo` \
             (Berth's rootless mode is for berth-copy; see docs/user-guide.md)"
        );
    }
    let root = workspace_root();
    if install {
        step("0. Install what the demo uses (apt-get)");
        crate::packages::ensure_installed(DEMO_PACKAGES)?;
    }
    let bins = build_tools(&root)?;
    let out = root.join("target/demo");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing the previous demo at {}", out.display()))?;
    }
    let context = out.join("context");
    copy_dir(&root.join("examples/hello"), &context)?;
    std::fs::copy(berth_testkit::busybox::BUSYBOX, context.join("busybox"))?;
    let ctx = context.display().to_string();
    let store = out.join("store");
    let berth = |tool: &str| {
        let mut c = Command::new(bins.join(tool));
        c.env("BERTH_STORE", &store)
            .env("BERTH_BUILD_CACHE", out.join("build-cache"))
            .env("BERTH_CACHE", out.join("cache"))
            .env("BERTH_STATE", out.join("state"));
        c
    };
    println!(
        "\nThe Berth tools share one store, an OCI image layout: here `export BERTH_STORE={}`",
        store.display()
    );
    let registry = berth_testkit::registry::TestRegistry::anonymous().context("starting docker-registry")?;
    let host = registry.host();
    println!("A registry on {host} (docker-registry, started for the demo).");

    step("1. berth-build: build examples/hello from its Containerfile into the store");
    shown(berth("berth-build").args(["build", "-q", "-t", "hello:1", &ctx]), "")?;

    step("2. berth-copy: push it to the registry");
    let berth_remote = format!("docker://{host}/demo/hello:1");
    shown(berth("berth-copy").args(["copy", "-q", "hello:1", &berth_remote]), "")?;

    step("3. berth-run: run it from the registry (pulled into the store first)");
    shown(berth("berth-run").args(["run", "--rm", &berth_remote]), "")?;

    step("4. The same with the peers: buildah bud, skopeo copy, ctr run");
    let buildah = berth_testkit::tools::Buildah::new(&out.join("buildah"));
    shown(
        buildah.cmd()?.args([
            "bud",
            "--quiet",
            "--isolation",
            "chroot",
            "--layers",
            "--format",
            "oci",
            "-t",
            "localhost/hello:1",
            &ctx,
        ]),
        &format!("buildah bud --isolation chroot --format oci -t localhost/hello:1 {ctx}   (private storage)"),
    )?;
    let storage = format!(
        "containers-storage:[vfs@{}+{}]localhost/hello:1",
        out.join("buildah/root").display(),
        out.join("buildah/runroot").display()
    );
    let peer_remote = format!("docker://{host}/peers/hello:1");
    shown(
        Command::new("skopeo").args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &storage,
            &peer_remote,
        ]),
        "",
    )?;
    let containerd = berth_testkit::containerd::Containerd::start().context("starting a private containerd")?;
    // Pulled over plain HTTP from the demo's registry, then run (the containerd is the demo's own).
    let ctr_run = |reference: &str, id: &str| -> Result<()> {
        shown(
            containerd.ctr()?.args(["images", "pull", "--plain-http", reference]),
            &format!("ctr images pull --plain-http {reference}   (its progress not shown)"),
        )?;
        shown(
            containerd.ctr()?.args(["run", "--rm", reference, id]),
            &format!("ctr run --rm {reference} {id}"),
        )
    };
    ctr_run(&format!("{host}/peers/hello:1"), "berth-demo-peers")?;

    step("5. Mixed: buildah's image run by berth-run, Berth's image run by ctr");
    shown(berth("berth-run").args(["run", "--rm", &peer_remote]), "")?;
    ctr_run(&format!("{host}/demo/hello:1"), "berth-demo-mixed")?;
    drop(containerd);
    buildah.cleanup();

    step("6. The store is a plain OCI image layout: the peers read it as it is");
    let layout_ref = format!("{}:hello:1", store.display());
    shown(
        Command::new("skopeo").args([
            "--insecure-policy",
            "inspect",
            "--format",
            "{{.Digest}}",
            &format!("oci:{layout_ref}"),
        ]),
        "",
    )?;
    let bundle = out.join("umoci-bundle");
    shown(
        Command::new("umoci")
            .args(["unpack", "--image", &layout_ref])
            .arg(&bundle),
        "",
    )?;
    step("Done.");
    Ok(())
}

/// Runs `cmd`, printing it (or `shown`, a readable spelling, when not empty) and its output; fails with its stderr.
fn shown(cmd: &mut Command, spelling: &str) -> Result<()> {
    let line = if spelling.is_empty() {
        crate::conformance::describe(cmd)
    } else {
        spelling.to_owned()
    };
    println!("   $ {line}");
    let out = cmd.output().with_context(|| format!("starting {line}"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !line.contains("(its progress not shown)") {
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            println!("     | {l}");
        }
    }
    Ok(())
}

/// Builds the tools the demo runs; returns the directory holding them.
fn build_tools(root: &Path) -> Result<PathBuf> {
    let missing = crate::packages::missing(crate::packages::BUILD_PACKAGES)?;
    anyhow::ensure!(
        missing.is_empty(),
        "the Berth tools link C libraries that are not installed: run `cargo xtask demo` without --no-install, \
         or `sudo apt-get install {}`",
        missing.join(" ")
    );
    crate::cargo_build(root, false, &["berth-build", "berth-copy", "berth-run"])
}

fn step(text: &str) {
    println!("\n== {text}");
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
