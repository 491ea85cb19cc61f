//! `cargo xtask demo`: Berth's main job on the bundled example, as far as Berth goes today.
//!
//! The example in `examples/hello` is built by berth-build from its Containerfile into a fresh OCI image layout
//! (without root or busybox-static, written through berth-spec's store instead), which is checked with `fsck`; berth-copy
//! pushes it to a local registry and pulls it into a private store; berth-run runs it as a container and turns it
//! into an OCI runtime bundle that runc runs; and the peers (skopeo, umoci) read the same layout. Steps whose tools are not installed yet are
//! skipped with a note (`cargo xtask ci` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_testkit::image::{ImageSpec, TarBuilder, write_image};
use serde_json::json;

use crate::measure::which;
use crate::workspace_root;

pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        anyhow::bail!("demo takes no arguments (got {a:?})");
    }
    let root = workspace_root();
    let example = root.join("examples/hello/rootfs");
    let out = root.join("target/demo");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing the previous demo at {}", out.display()))?;
    }
    let layout_dir = out.join("layout");

    let busybox = Path::new(berth_testkit::busybox::BUSYBOX);
    let bins = build_tools(&root)?;
    let manifest_digest = if busybox.is_file() && rustix::process::geteuid().is_root() {
        step("1. berth-build: build examples/hello from its Containerfile into an OCI image layout");
        let context = out.join("context");
        copy_dir(&root.join("examples/hello"), &context)?;
        std::fs::copy(busybox, context.join("busybox"))?;
        let dest = format!("oci:{}:hello:1", layout_dir.display());
        let id = capture(
            Command::new(bins.join("berth-build"))
                .arg("--store")
                .arg(out.join("build-store"))
                .arg("--cache")
                .arg(out.join("build-cache"))
                .args(["build", "-q", "-t", &dest])
                .arg(&context),
        )?;
        println!("   berth-build build -t {dest} {}", context.display());
        println!("   image id: sha256:{}", id.trim());
        let layout = Layout::open(&layout_dir)?;
        berth_spec::Digest::from_oci(layout.resolve(Some("hello:1"))?.digest())?
    } else {
        step("1. Pack examples/hello into a layer and write an OCI image layout with berth-spec");
        println!(
            "   (berth-build needs root and busybox-static: building the image with berth-spec directly; \
             `cargo xtask ci` installs busybox-static)"
        );
        let mut tar = TarBuilder::new();
        add_tree(&mut tar, &example, "")?;
        if busybox.is_file() {
            tar.dir("bin", 0o755)
                .file("bin/busybox", 0o755, &std::fs::read(busybox)?);
            for applet in ["sh", "cat", "echo", "id", "pwd"] {
                tar.symlink(&format!("bin/{applet}"), "busybox");
            }
        }
        let spec = ImageSpec {
            layers: vec![tar.finish()],
            config: json!({
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                "Entrypoint": ["/usr/local/bin/hello"],
                "WorkingDir": "/etc",
                "Labels": {"org.opencontainers.image.title": "berth hello example"},
            }),
            architecture: Platform::host().architecture,
        };
        let layout = Layout::create(&layout_dir)?;
        let written = write_image(&layout, Some("hello:1"), &spec)?;
        written.manifest_digest
    };
    let layout = Layout::open(&layout_dir)?;
    println!("   layout:   {}", layout_dir.display());
    println!("   image:    hello:1 -> {manifest_digest}");

    step("2. Read it back: every digest verified, the layer decompressed and checked against its diffID");
    let image = layout.load_image(Some("hello:1"), &Platform::host())?;
    layout.verify_diff_ids(&image)?;
    let report = layout.fsck()?;
    println!(
        "   fsck: {} blobs, {} bytes re-hashed, {} problem(s), {} dangling",
        report.blobs_checked,
        report.bytes_checked,
        report.problems.len(),
        report.dangling.len()
    );
    anyhow::ensure!(report.is_ok(), "fsck found problems: {:?}", report.problems);

    let layout_ref = format!("{}:hello:1", layout_dir.display());
    step("3. berth-copy: push to a local registry, pull into a private store");
    let store = out.join("store");
    let berth_copy = |args: &[&str]| -> Result<String> {
        capture(
            Command::new(bins.join("berth-copy"))
                .arg("--store")
                .arg(&store)
                .args(args),
        )
    };
    if which("docker-registry") {
        let reg = berth_testkit::registry::TestRegistry::anonymous()?;
        let remote = format!("docker://{}/demo/hello:1", reg.host());
        berth_copy(&["copy", "-q", &format!("oci:{layout_ref}"), &remote])?;
        println!("   berth-copy copy oci:{layout_ref} {remote}");
        berth_copy(&["copy", "-q", &remote, "hello:1"])?;
        println!("   berth-copy copy {remote} hello:1   (the store: {})", store.display());
        let v: serde_json::Value = serde_json::from_str(&berth_copy(&["inspect", &remote])?)?;
        println!(
            "   berth-copy inspect {remote}: Digest {} ({} layer)",
            v["Digest"],
            v["Layers"].as_array().map_or(0, Vec::len)
        );
    } else {
        println!("   docker-registry is not installed: copying the layout straight into the store instead");
        berth_copy(&["copy", "-q", &format!("oci:{layout_ref}"), "hello:1"])?;
    }

    step("4. berth-run: the stored image run as a container (libcontainer), then as a bundle run by runc");
    let berth_run = |args: &[&str]| {
        capture(
            Command::new(bins.join("berth-run"))
                .arg("--store")
                .arg(&store)
                .arg("--cache")
                .arg(out.join("cache"))
                .arg("--state")
                .arg(out.join("state"))
                .args(args),
        )
    };
    if busybox.is_file() {
        println!("   berth-run run --rm hello:1");
        for line in berth_run(&["run", "--rm", "hello:1"])?.lines() {
            println!("     | {line}");
        }
    } else {
        println!("   busybox-static is not installed: not running it (`cargo xtask ci` installs it)");
    }
    let bundle_dir = out.join("bundle");
    capture(
        Command::new(bins.join("berth-run"))
            .arg("--store")
            .arg(&store)
            .arg("--cache")
            .arg(out.join("cache"))
            .args(["bundle", "hello:1"])
            .arg(&bundle_dir),
    )?;
    println!("   berth-run bundle hello:1 {}", bundle_dir.display());
    if which("runc") && busybox.is_file() {
        let id = format!("berth-demo-{}", std::process::id());
        let result = capture(Command::new("runc").args(["run", "--bundle"]).arg(&bundle_dir).arg(&id));
        let _ = Command::new("runc").args(["delete", "-f", &id]).output();
        for line in result?.lines() {
            println!("     | {line}");
        }
    } else {
        println!("   runc or busybox-static is not installed: not running it (`cargo xtask ci` installs them)");
    }

    step("5. The layout is plain OCI: peers read it as they are");
    if which("skopeo") {
        let out = capture(Command::new("skopeo").args(["--insecure-policy", "inspect", &format!("oci:{layout_ref}")]))?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        println!("   skopeo inspect oci:{layout_ref}");
        println!(
            "     Digest: {}  (the same as was built: {})",
            v["Digest"],
            v["Digest"] == manifest_digest.to_string()
        );
    } else {
        println!("   skopeo is not installed (`cargo xtask ci` installs it)");
    }
    if which("umoci") && busybox.is_file() {
        let bundle = out.join("umoci-bundle");
        capture(
            Command::new("umoci")
                .args(["unpack", "--image", &layout_ref])
                .arg(&bundle),
        )?;
        println!("   umoci unpack --image {layout_ref} {}", bundle.display());
    } else {
        println!("   umoci is not installed (`cargo xtask ci` installs it)");
    }
    step("Done.");
    Ok(())
}

/// Builds the tools the demo runs; returns the directory holding them.
fn build_tools(root: &Path) -> Result<PathBuf> {
    let missing = crate::packages::missing(crate::packages::BUILD_PACKAGES)?;
    anyhow::ensure!(
        missing.is_empty(),
        "berth-copy and berth-run link C libraries that are not installed: run `sudo apt-get install {}` \
         (or `cargo xtask ci`, which installs everything the tests use)",
        missing.join(" ")
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "berth-build",
            "-p",
            "berth-copy",
            "-p",
            "berth-run",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(
        status.success(),
        "building berth-build, berth-copy and berth-run failed"
    );
    // Where cargo put them: CARGO_TARGET_DIR when set.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug"))
}

fn step(text: &str) {
    println!("\n== {text}");
}

fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Copies a directory tree (files and directories, modes kept).
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

/// Adds a directory tree to the tar in sorted order, keeping modes.
fn add_tree(tar: &mut TarBuilder, dir: &Path, prefix: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for path in entries {
        let name = format!("{prefix}{}", path.file_name().unwrap().to_string_lossy());
        let meta = std::fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            tar.dir(&name, mode);
            add_tree(tar, &path, &format!("{name}/"))?;
        } else if meta.is_file() {
            tar.file(&name, mode, &std::fs::read(&path)?);
        }
    }
    Ok(())
}
