//! `cargo xtask bench runtime`: berth-runtime against runc, in one run, on the same inputs.
//!
//! - the runtime alone: `create` + `start` + wait + `delete` of `/bin/true` on one busybox bundle, each runtime
//!   with its own state directory (the container's exit is awaited by polling `state` until it says `stopped`,
//!   the same for both);
//! - under containerd: `ctr run --rm` of the busybox image with runc, and with `--runc-binary berth-runtime`
//!   (one private containerd, the image imported once);
//! - berth-run's warm start: `berth-run run --rm` of the busybox image (layers cached, as after a first run) running
//!   `/bin/true`, against `runc run` of the bundle `berth-run bundle` writes for the same image and command (runc
//!   must be given it ready-made; it has the same mounts, capabilities and seccomp profile);
//! - the floor: `unshare` of the same namespaces (mount, UTS, IPC, network, PID) + `chroot` into the bundle's root +
//!   exec of `/bin/true`.
//!
//! berth-runtime runs as a release build; each figure is the best of 10.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_testkit::containerd::Containerd;

use crate::measure::{Measured, report, sh, which};
use crate::workspace_root;

const RUNS: usize = 10;

fn best_of(mut f: impl FnMut(usize) -> Result<Duration>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for i in 0..RUNS {
        best = best.min(f(i)?);
    }
    Ok(best)
}

/// One container's create, start, wait (polling `state`) and delete with `runtime` (runc's command line).
fn lifecycle(runtime: &Path, root: &Path, bundle: &Path, id: &str) -> Result<Duration> {
    let rt = || {
        let mut c = Command::new(runtime);
        c.arg("--root").arg(root);
        c
    };
    let start = Instant::now();
    // No pipes: the container inherits the runtime's streams and keeps them open after `create` returns.
    let created = rt()
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    ensure!(created.success(), "{} create {id} failed", runtime.display());
    sh(rt().args(["start", id]))?;
    loop {
        let out = rt().args(["state", id]).output()?;
        ensure!(
            out.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        if state["status"] == "stopped" {
            break;
        }
        ensure!(start.elapsed() < Duration::from_secs(30), "{id} did not stop");
    }
    sh(rt().args(["delete", id]))?;
    Ok(start.elapsed())
}

pub fn run(json: bool) -> Result<()> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "bench runtime needs root (it creates containers)"
    );
    for t in ["runc", "containerd", "ctr", "tar", "unshare", "chroot"] {
        ensure!(
            which(t),
            "{t} is not installed: run `cargo xtask ci` (it installs the peers)"
        );
    }
    let root = workspace_root();
    let bins = crate::cargo_build(&root, true, &["berth-runtime", "berth-run"])?;
    let berth = bins.join("berth-runtime");
    let berth_run = bins.join("berth-run");
    let runc = PathBuf::from("runc");
    let work = tempfile::Builder::new()
        .prefix("berth-bench-runtime-")
        .tempdir_in("/tmp")?;
    let w = work.path();

    // The bundle: busybox's root filesystem, `berth-runtime spec`'s config running /bin/true.
    let bundle = w.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs"))?;
    let tar = w.join("rootfs.tar");
    std::fs::write(&tar, berth_testkit::busybox::rootfs_tar()?)?;
    sh(Command::new("tar")
        .arg("-C")
        .arg(bundle.join("rootfs"))
        .arg("-xf")
        .arg(&tar))?;
    sh(Command::new(&berth).args(["spec", "--bundle"]).arg(&bundle))?;
    let config = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&config)?)?;
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["process"]["terminal"] = false.into();
    std::fs::write(&config, serde_json::to_vec_pretty(&spec)?)?;

    let (berth_root, runc_root) = (w.join("berth-state"), w.join("runc-state"));
    lifecycle(&berth, &berth_root, &bundle, "warmup").context("berth-runtime")?;
    lifecycle(&runc, &runc_root, &bundle, "warmup").context("runc")?;
    let mut berth_life = Duration::MAX;
    let mut runc_life = Duration::MAX;
    for i in 0..RUNS {
        // Taking turns, so a slow spell falls on both.
        berth_life = berth_life.min(lifecycle(&berth, &berth_root, &bundle, &format!("b{i}"))?);
        runc_life = runc_life.min(lifecycle(&runc, &runc_root, &bundle, &format!("r{i}"))?);
    }
    // berth-run: the image in a store of its own, its layers cached by a first run.
    let store = berth_spec::layout::Layout::create(w.join("store"))?;
    berth_testkit::busybox::write_image(&store, "busybox:1")?;
    // berth-run with its own store, layer cache and state.
    let berth_run_cmd = || {
        let mut c = Command::new(&berth_run);
        c.arg("--store")
            .arg(store.root())
            .arg("--cache")
            .arg(w.join("run-cache"));
        c.arg("--state").arg(w.join("run-state"));
        c
    };
    let run_cmd = |name: &str| {
        let mut c = berth_run_cmd();
        c.args(["run", "--rm", "--name", name, "busybox:1", "/bin/true"]);
        c
    };
    sh(&mut run_cmd("warm"))?;
    // runc runs the bundle berth-run would run (same mounts, capabilities and seccomp profile), written by
    // `berth-run bundle`, so both start the same container.
    let run_bundle = w.join("run-bundle");
    sh(berth_run_cmd()
        .args(["bundle", "busybox:1"])
        .arg(&run_bundle)
        .arg("/bin/true"))?;
    let runc_run = |id: &str| {
        let mut c = Command::new(&runc);
        c.arg("--root")
            .arg(&runc_root)
            .args(["run", "--bundle"])
            .arg(&run_bundle)
            .arg(id);
        c
    };
    sh(&mut runc_run("warm-run"))?;
    let (mut run_berth, mut run_runc) = (Duration::MAX, Duration::MAX);
    for i in 0..RUNS {
        run_berth = run_berth.min(sh(&mut run_cmd(&format!("w{i}")))?);
        run_runc = run_runc.min(sh(&mut runc_run(&format!("rr{i}")))?);
    }
    let floor = best_of(|_| {
        sh(Command::new("unshare")
            .args(["--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "chroot"])
            .arg(bundle.join("rootfs"))
            .arg("/bin/true"))
    })?;

    // ctr run --rm, with runc and with berth-runtime, on one containerd.
    let layout = berth_spec::layout::Layout::create(w.join("layout"))?;
    berth_testkit::busybox::write_image(&layout, "1")?;
    let archive = w.join("busybox.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(layout.root())
        .arg("-cf")
        .arg(&archive)
        .arg("."))?;
    let containerd = Containerd::start().context("starting containerd")?;
    sh(containerd
        .ctr()?
        .args(["images", "import", "--base-name", "localhost/bench/busybox"])
        .arg(&archive))?;
    let image = "localhost/bench/busybox:1";
    let ctr_run = |id: &str, with_berth: bool| -> Result<Duration> {
        let mut c = containerd.ctr()?;
        c.args(["run", "--rm"]);
        if with_berth {
            c.arg("--runc-binary").arg(&berth);
        }
        sh(c.args([image, id, "/bin/true"]))
    };
    ctr_run("warm-runc", false)?;
    ctr_run("warm-berth", true)?;
    let mut ctr_berth = Duration::MAX;
    let mut ctr_runc = Duration::MAX;
    for i in 0..RUNS {
        ctr_berth = ctr_berth.min(ctr_run(&format!("cb{i}"), true)?);
        ctr_runc = ctr_runc.min(ctr_run(&format!("cr{i}"), false)?);
    }
    drop(containerd);

    let rows = [
        Measured {
            what: "create+start+delete",
            berth: berth_life,
            peer: Some(("runc", runc_life)),
            floor: Some(("unshare+chroot", floor)),
            target: "<= 0.7x runc",
        },
        Measured {
            what: "berth-run run --rm",
            berth: run_berth,
            peer: Some(("runc run", run_runc)),
            floor: Some(("unshare+chroot", floor)),
            target: "<= 0.7x runc (warm)",
        },
        Measured {
            what: "ctr run --rm",
            berth: ctr_berth,
            peer: Some(("ctr + runc", ctr_runc)),
            floor: None,
            target: "<= 1.0x runc",
        },
    ];
    report(
        "runtime",
        &rows,
        0,
        &format!("best of {RUNS}, the two runtimes taking turns; /bin/true in busybox"),
        json,
    );
    Ok(())
}
