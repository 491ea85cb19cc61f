//! `cargo xtask bench layer`: the layer codec against umoci, with the codecs alone as the floor.
//!
//! Input: a `debootstrap --variant=minbase bookworm` root filesystem (~200 MB), made on first use and cached in
//! `target/bench/bookworm-minbase`. Measured in one run, best of three each (the tools and floors of a workload take
//! turns in every round):
//! - creation of a gzip layer from the tree: Berth (parallel gzip, igzip level 3 by default) vs `umoci repack` of
//!   the same tree, with `pigz -6` on the tree's tar as the floor, and `igzip -3` (Berth's deflater, alone, on the
//!   same cores) as a second one;
//! - extraction of that gzip layer: Berth vs `umoci unpack`, with `gzip -d` on the layer as the floor;
//! - zstd creation and extraction by Berth next to `zstd -3 -T0` / `zstd -d`.
//!
//! Berth runs as a release build of `berth-layer-tool` (built here first), so both sides are whole processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use crate::measure::{Measured, best, best_each, report, settle, sh, sh_to, which};
use crate::workspace_root;

pub fn run(json: bool) -> Result<()> {
    let root = workspace_root();
    let bench = root.join("target/bench");
    std::fs::create_dir_all(&bench)?;
    let rootfs = ensure_rootfs(&bench)?;
    let tool = build_tool(&root)?;
    for t in ["umoci", "pigz", "igzip", "gzip", "zstd", "tar"] {
        ensure!(
            which(t),
            "{t} is not installed: run `cargo xtask ci` (it installs the peers and codecs)"
        );
    }
    let work = tempfile::Builder::new().prefix("layer-").tempdir_in(&bench)?;
    let w = work.path();
    let tree_bytes = du(&rootfs)?;
    eprintln!("input: {} ({:.0} MB)", rootfs.display(), tree_bytes as f64 / 1e6);

    // Floors: the codecs alone on the tree's tar stream.
    let tarball = w.join("tree.tar");
    sh(Command::new("tar")
        .args(["--sort=name", "--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."))?;
    let floor_gz = w.join("floor.tar.gz");
    let berth_gz = w.join("berth.tar.gz");
    let berth_zst = w.join("berth.tar.zst");
    let floor_zst = w.join("floor.tar.zst");

    // umoci repack of the same tree: a fresh bundle of an empty image each run, the tree copied in (not timed).
    let layout = w.join("umoci-layout");
    sh(Command::new("umoci").args(["init", "--layout"]).arg(&layout))?;
    sh(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:base", layout.display())))?;
    let bundle = w.join("bundle");

    // Creation, each tool and floor in turn in every round.
    let mut pigz_c = || sh_to(Command::new("pigz").args(["-6", "-c"]).arg(&tarball), &floor_gz);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let floor_igzip = w.join("floor-igzip.tar.gz");
    let mut igzip_c = || {
        sh_to(
            Command::new("igzip").args(["-3", "-c", "-T", &threads]).arg(&tarball),
            &floor_igzip,
        )
    };
    let mut create_gz = || {
        settle()?;
        sh(Command::new(&tool)
            .arg("create")
            .arg(&rootfs)
            .arg(&berth_gz)
            .arg("gzip"))
    };
    let mut umoci_repack = || {
        let _ = std::fs::remove_dir_all(&bundle);
        sh(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:base", layout.display()))
            .arg(&bundle))?;
        sh(Command::new("cp")
            .args(["-a"])
            .arg(format!("{}/.", rootfs.display()))
            .arg(bundle.join("rootfs")))?;
        settle()?;
        let start = Instant::now();
        sh(Command::new("umoci")
            .args(["repack", "--image"])
            .arg(format!("{}:full", layout.display()))
            .arg(&bundle))?;
        Ok(start.elapsed())
    };
    let [create_gz, umoci_repack, pigz_c, igzip_c] =
        best_each(&mut [&mut create_gz, &mut umoci_repack, &mut pigz_c, &mut igzip_c])?[..]
    else {
        unreachable!("four workloads give four times")
    };
    let mut zstd_c = || {
        sh_to(
            Command::new("zstd").args(["-3", "-T0", "-q", "-c"]).arg(&tarball),
            &floor_zst,
        )
    };
    let mut create_zst = || {
        settle()?;
        sh(Command::new(&tool)
            .arg("create")
            .arg(&rootfs)
            .arg(&berth_zst)
            .arg("zstd"))
    };
    let [create_zst, zstd_c] = best_each(&mut [&mut create_zst, &mut zstd_c])?[..] else {
        unreachable!("two workloads give two times")
    };
    let zstd_d = best(|| {
        sh_to(
            Command::new("zstd").args(["-d", "-q", "-c"]).arg(&floor_zst),
            Path::new("/dev/null"),
        )
    })?;

    // Extraction. Every run writes a fresh directory (deleting a large tree right before a timed run makes the
    // file system's inode creation slow and noisy), after a `sync` so earlier writes do not bill this run.
    let mut n = 0;
    let fresh = || {
        n += 1;
        w.join(format!("dest-{n}"))
    };
    let fresh = std::cell::RefCell::new(fresh);
    let apply = |layer: &Path| {
        let dest = fresh.borrow_mut()();
        settle()?;
        let start = Instant::now();
        sh(Command::new(&tool).arg("apply").arg(layer).arg(&dest))?;
        Ok(start.elapsed())
    };
    let mut apply_gz = || apply(&berth_gz);
    let mut umoci_unpack = || {
        let dest = fresh.borrow_mut()();
        settle()?;
        let start = Instant::now();
        sh(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:full", layout.display()))
            .arg(&dest))?;
        Ok(start.elapsed())
    };
    let mut gzip_d = || {
        settle()?;
        sh_to(Command::new("gzip").arg("-dc").arg(&floor_gz), Path::new("/dev/null"))
    };
    let [apply_gz, umoci_unpack, gzip_d] = best_each(&mut [&mut apply_gz, &mut umoci_unpack, &mut gzip_d])?[..] else {
        unreachable!("three workloads give three times")
    };
    let apply_zst = best(|| apply(&berth_zst))?;
    let umoci_layer_size = largest_blob(&layout.join("blobs/sha256"))?;
    eprintln!(
        "gzip layer sizes: berth {:.1} MB, umoci {:.1} MB, pigz -6 {:.1} MB, igzip -3 {:.1} MB",
        file_len(&berth_gz) as f64 / 1e6,
        umoci_layer_size as f64 / 1e6,
        file_len(&floor_gz) as f64 / 1e6,
        file_len(&floor_igzip) as f64 / 1e6
    );

    let rows = [
        Measured {
            what: "create gzip layer",
            berth: create_gz,
            peer: Some(("umoci repack", umoci_repack)),
            floor: Some(("pigz -6", pigz_c)),
            target: "<= 0.5x umoci, <= 1.5x floor",
        },
        Measured {
            what: "create gzip layer",
            berth: create_gz,
            peer: None,
            floor: Some(("igzip -3 alone", igzip_c)),
            target: "",
        },
        Measured {
            what: "extract gzip layer",
            berth: apply_gz,
            peer: Some(("umoci unpack", umoci_unpack)),
            floor: Some(("gzip -d", gzip_d)),
            target: "<= 0.5x umoci, <= 1.5x floor",
        },
        Measured {
            what: "create zstd layer",
            berth: create_zst,
            peer: None,
            floor: Some(("zstd -3 -T0", zstd_c)),
            target: "",
        },
        Measured {
            what: "extract zstd layer",
            berth: apply_zst,
            peer: None,
            floor: Some(("zstd -d", zstd_d)),
            target: "",
        },
    ];
    let note = format!("tree {:.0} MB", tree_bytes as f64 / 1e6);
    report("layer", &rows, tree_bytes, &note, json);
    Ok(())
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn largest_blob(dir: &Path) -> Result<u64> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0))
}

pub(crate) fn du(dir: &Path) -> Result<u64> {
    let out = Command::new("du").args(["-sb"]).arg(dir).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du output")
}

/// The cached debootstrap tree, made when absent (needs root, debootstrap and the Debian mirror).
pub(crate) fn ensure_rootfs(bench: &Path) -> Result<PathBuf> {
    let rootfs = bench.join("bookworm-minbase");
    if rootfs.join("etc/debian_version").is_file() {
        return Ok(rootfs);
    }
    if !which("debootstrap") {
        crate::packages::ensure_installed(&["debootstrap"])?;
    }
    let tmp = bench.join("bookworm-minbase.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "making the benchmark tree with debootstrap (once; cached in {})",
        rootfs.display()
    );
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .status()?;
    if !status.success() {
        bail!("debootstrap failed ({status}); the layer benchmark needs the Debian mirror");
    }
    std::fs::rename(&tmp, &rootfs)?;
    Ok(rootfs)
}

fn build_tool(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "berth-testkit",
            "--features",
            "berth-testkit/isal",
            "--bin",
            "berth-layer-tool",
        ])
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "building berth-layer-tool failed");
    Ok(crate::fuzz::target_dir(root)?.join("release/berth-layer-tool"))
}
