//! `cargo xtask bench run`: starting containers, berth-run against raw runc and containerd's `ctr run`.
//!
//! Measured in one run:
//! - warm start: `/bin/true` in the busybox image whose layers are cached — `berth-run run --rm` (image opened,
//!   overlay mounted, spec written, container created, run, deleted) against `runc run` of a bundle prepared
//!   beforehand (the floor: the runtime alone), and against `ctr run --rm` of an image containerd has imported
//!   and unpacked (containerd started by the bench, with its own root, state and socket);
//! - first run of a ~200 MB image (the `debootstrap --variant=minbase bookworm` tree, packed by umoci) from an
//!   oci-archive: `berth-run run --rm oci-archive:…` with an empty layer cache, against `ctr images import` +
//!   `ctr run --rm` in a freshly started containerd.
//!
//! Berth runs as a release build of `berth-run`. Warm starts are the best of 10; first runs the best of 3.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_testkit::containerd::Containerd;

use crate::measure::{Measured, best, report, settle, sh, which};
use crate::workspace_root;

const WARM_RUNS: usize = 10;

fn best_of(n: usize, mut f: impl FnMut(usize) -> Result<Duration>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for i in 0..n {
        best = best.min(f(i)?);
    }
    Ok(best)
}

fn build_berth_run(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "berth-run"])
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "building berth-run failed");
    Ok(crate::fuzz::target_dir(root)?.join("release/berth-run"))
}

/// berth-run with a private store, cache and state under `dir`.
fn berth(tool: &Path, dir: &Path) -> Command {
    let mut c = Command::new(tool);
    for (flag, sub) in [("--store", "store"), ("--cache", "cache"), ("--state", "state")] {
        c.arg(flag).arg(dir.join(sub));
    }
    c
}

pub fn run(json: bool) -> Result<()> {
    let root = workspace_root();
    let bench = root.join("target/bench");
    std::fs::create_dir_all(&bench)?;
    for t in ["runc", "containerd", "ctr", "umoci", "tar"] {
        ensure!(
            which(t),
            "{t} is not installed: run `cargo xtask ci` (it installs the peers)"
        );
    }
    let rootfs = crate::bench_layer::ensure_rootfs(&bench)?;
    let tool = build_berth_run(&root)?;
    let work = tempfile::Builder::new().prefix("run-").tempdir_in(&bench)?;
    let w = work.path();

    // The busybox image in berth-run's store, its layers cached by one run.
    let warm = w.join("warm");
    let layout = berth_spec::layout::Layout::create(warm.join("store"))?;
    berth_testkit::busybox::write_image(&layout, "busybox:1")?;
    sh(berth(&tool, &warm).args(["run", "--rm", "busybox:1", "/bin/true"]))?;
    let berth_warm = best_of(WARM_RUNS, |_| {
        sh(berth(&tool, &warm).args(["run", "--rm", "busybox:1", "/bin/true"]))
    })?;

    // runc on a bundle prepared beforehand.
    let bundle = w.join("bundle");
    sh(berth(&tool, &warm)
        .args(["bundle", "busybox:1"])
        .arg(&bundle)
        .arg("/bin/true"))?;
    let runc_root = w.join("runc-state");
    let runc_warm = best_of(WARM_RUNS, |i| {
        sh(Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("bench-{i}")))
    })?;

    // ctr run --rm of the same image, imported once (from a layout naming it `1`: ctr calls it BASE:1).
    let archive = w.join("busybox.tar");
    let for_ctr = berth_spec::layout::Layout::create(w.join("ctr-layout"))?;
    berth_testkit::busybox::write_image(&for_ctr, "1")?;
    sh(Command::new("tar")
        .arg("-C")
        .arg(for_ctr.root())
        .arg("-cf")
        .arg(&archive)
        .arg("."))?;
    let ctr_warm = {
        let containerd = Containerd::start().context("starting containerd")?;
        sh(containerd
            .ctr()?
            .args(["images", "import", "--base-name", "localhost/bench/busybox"])
            .arg(&archive))?;
        let image = "localhost/bench/busybox:1";
        sh(containerd
            .ctr()?
            .args(["run", "--rm", image, "bench-warmup", "/bin/true"]))?;
        best_of(WARM_RUNS, |i| {
            sh(containerd
                .ctr()?
                .args(["run", "--rm", image, &format!("bench-{i}"), "/bin/true"]))
        })?
    };

    // The ~200 MB image, packed by umoci, as an oci-archive.
    let big_layout = w.join("big-layout");
    sh(Command::new("umoci").args(["init", "--layout"]).arg(&big_layout))?;
    sh(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:base", big_layout.display())))?;
    let big_bundle = w.join("big-bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:base", big_layout.display()))
        .arg(&big_bundle))?;
    sh(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs.display()))
        .arg(big_bundle.join("rootfs")))?;
    sh(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(format!("{}:1", big_layout.display()))
        .arg(&big_bundle))?;
    sh(Command::new("umoci")
        .args(["rm", "--image"])
        .arg(format!("{}:base", big_layout.display())))?;
    let big = w.join("big.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&big_layout)
        .arg("-cf")
        .arg(&big)
        .arg("."))?;
    let big_ref = format!("oci-archive:{}:1", big.display());
    let image_bytes = std::fs::metadata(&big)?.len();

    let berth_first = best(|| {
        let dir = tempfile::Builder::new().prefix("first-").tempdir_in(w)?;
        settle()?;
        let start = Instant::now();
        sh(berth(&tool, dir.path()).args(["run", "--rm", &big_ref, "/bin/true"]))?;
        Ok(start.elapsed())
    })?;
    let ctr_first = best(|| {
        let containerd = Containerd::start().context("starting containerd")?;
        settle()?;
        let start = Instant::now();
        sh(containerd
            .ctr()?
            .args(["images", "import", "--base-name", "localhost/bench/big"])
            .arg(&big))?;
        sh(containerd
            .ctr()?
            .args(["run", "--rm", "localhost/bench/big:1", "bench-first", "/bin/true"]))?;
        Ok(start.elapsed())
    })?;

    let rows = [
        Measured {
            what: "warm start",
            berth: berth_warm,
            peer: Some(("ctr run --rm", ctr_warm)),
            floor: Some(("runc run", runc_warm)),
            target: "<= 0.5x ctr, <= 1.2x runc",
        },
        Measured {
            what: "first run 200 MB",
            berth: berth_first,
            peer: Some(("ctr import+run", ctr_first)),
            floor: None,
            target: "<= 0.5x ctr",
        },
    ];
    let note = format!(
        "image {:.0} MB as an oci-archive; warm starts best of {WARM_RUNS}",
        image_bytes as f64 / 1e6
    );
    report("run", &rows, image_bytes, &note, json);
    Ok(())
}
