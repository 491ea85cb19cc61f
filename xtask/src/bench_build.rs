//! `cargo xtask bench build`: berth-build against `buildah bud --layers` (with `--runtime runc` and chroot
//! isolation, as buildah works here), in one run, on the same inputs:
//!
//! - (a) COPY-heavy: a ~300 MB context of mixed sizes (many small files, a few large), one COPY, cold caches;
//! - (b) RUN-heavy multi-stage on a `debootstrap --variant=minbase` base: several RUN steps that create and
//!   delete files, and a COPY --from between stages, cold caches;
//! - (c) the COPY build again with nothing changed (warm caches);
//! - (d) the COPY build again with one small file of the 300 MB context changed.
//!
//! Both tools get their own private storage; berth-build runs as a release build. Each row is one run (the cold
//! rows start from emptied caches).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_testkit::rng::Rng;
use berth_testkit::tools::Buildah;

use crate::measure::{Measured, report, settle, sh, which};
use crate::workspace_root;

/// Writes the ~300 MB context: 6000 small files (1–16 KiB) in 60 directories, and 8 large ones of ~30 MB.
fn make_context(dir: &Path) -> Result<u64> {
    let data = dir.join("data");
    if data.is_dir() {
        return Ok(dir_bytes(&data));
    }
    let tmp = dir.join("data.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let mut rng = Rng::new(0x0062_7569_6c64);
    for d in 0..60 {
        let sub = tmp.join(format!("small/d{d:02}"));
        std::fs::create_dir_all(&sub)?;
        for f in 0..100 {
            let mut buf = vec![0u8; rng.range(1024, 16 * 1024) as usize];
            rng.fill(&mut buf);
            std::fs::write(sub.join(format!("f{f:03}")), &buf)?;
        }
    }
    std::fs::create_dir_all(tmp.join("large"))?;
    for f in 0..8 {
        let mut buf = vec![0u8; 30 << 20];
        rng.fill(&mut buf);
        std::fs::write(tmp.join(format!("large/blob{f}")), &buf)?;
    }
    std::fs::rename(&tmp, &data)?;
    Ok(dir_bytes(&data))
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(_) => total += e.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

fn build_berth_build(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "berth-build"])
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "building berth-build failed");
    Ok(crate::fuzz::target_dir(root)?.join("release/berth-build"))
}

pub fn run(json: bool) -> Result<()> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "bench build needs root (berth-build and buildah mount overlays and run containers)"
    );
    for t in ["buildah", "runc", "umoci"] {
        ensure!(
            which(t),
            "{t} is not installed: run `cargo xtask ci` (it installs the peers)"
        );
    }
    let root = workspace_root();
    let bench = root.join("target/bench");
    std::fs::create_dir_all(&bench)?;
    let minbase = crate::bench_layer::ensure_rootfs(&bench)?;
    let tool = build_berth_build(&root)?;
    // Lowercase paths: buildah names images pulled from a layout after the layout's path.
    let work = PathBuf::from(format!("/tmp/berth-bench-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run_in(json, &tool, &minbase, &bench, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_in(json: bool, tool: &Path, minbase: &Path, bench: &Path, work: &Path) -> Result<()> {
    let store = work.join("store");
    let berth = |cache: &str| {
        let mut c = Command::new(tool);
        c.arg("--store").arg(&store).arg("--cache").arg(work.join(cache));
        c
    };
    // The base image: the minbase tree, built once by berth-build into its store, then pulled by buildah.
    let base_ctx = work.join("base");
    std::fs::create_dir_all(&base_ctx)?;
    std::fs::write(
        base_ctx.join("Containerfile"),
        "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/bash\"]\n",
    )?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(minbase)
        .arg(base_ctx.join("rootfs"))
        .status()?;
    ensure!(status.success(), "copying the minbase tree");
    sh(berth("base-cache")
        .args(["build", "-q", "-t", "localhost/minbase:1"])
        .arg(&base_ctx))
    .context("building the base image with berth-build")?;
    let buildah = Buildah::new(&work.join("buildah"));
    let b = |args: &[&str]| -> Result<Duration> {
        let mut c = buildah.cmd()?;
        c.args(args);
        sh(&mut c)
    };
    b(&[
        "pull",
        "--quiet",
        &format!("oci:{}:localhost/minbase:1", store.display()),
    ])?;
    let images = berth_testkit::tools::stdout(buildah.cmd()?.args(["images", "--quiet"]))?;
    b(&[
        "tag",
        images.lines().next().context("buildah has no image")?.trim(),
        "localhost/minbase:1",
    ])?;

    // (a), (c), (d): the COPY-heavy context.
    let copy_ctx = bench.join("build-copy-context");
    std::fs::create_dir_all(&copy_ctx)?;
    let bytes = make_context(&copy_ctx)?;
    std::fs::write(
        copy_ctx.join("Containerfile"),
        "FROM localhost/minbase:1\nCOPY data /data\n",
    )?;
    let ctx = copy_ctx.to_str().context("path")?;
    let bud = |extra: &[&str]| -> Result<Duration> {
        let mut args = vec![
            "bud",
            "--isolation",
            "chroot",
            "--runtime",
            "runc",
            "--layers",
            "--format",
            "oci",
        ];
        args.extend(extra);
        args.push(ctx);
        b(&args)
    };
    settle()?;
    let berth_a = sh(berth("copy-cache")
        .args(["build", "-q", "--no-cache", "-t", "copy:1"])
        .arg(ctx))?;
    settle()?;
    let buildah_a = bud(&["--no-cache", "-t", "copy:1"])?;
    settle()?;
    let berth_c = sh(berth("copy-cache").args(["build", "-q", "-t", "copy:2"]).arg(ctx))?;
    settle()?;
    let buildah_c = bud(&["-t", "copy:2"])?;
    let changed = copy_ctx.join("data/small/d00/f000");
    let original = std::fs::read(&changed)?;
    std::fs::write(&changed, b"one small file changed\n")?;
    settle()?;
    let berth_d = sh(berth("copy-cache").args(["build", "-q", "-t", "copy:3"]).arg(ctx));
    settle()?;
    let buildah_d = bud(&["-t", "copy:3"]);
    std::fs::write(&changed, original)?;
    let (berth_d, buildah_d) = (berth_d?, buildah_d?);

    // (b): RUN-heavy, multi-stage.
    let run_ctx = work.join("run");
    std::fs::create_dir_all(&run_ctx)?;
    std::fs::write(
        run_ctx.join("Containerfile"),
        "FROM localhost/minbase:1 AS build\n\
         RUN mkdir -p /work && cp -a /usr/share /work/share && dd if=/dev/urandom of=/work/blob bs=1M count=64 status=none\n\
         RUN rm -rf /work/share/doc /work/share/locale && find /work -type f | wc -l > /work/count\n\
         RUN tar -C /work -czf /work/share.tgz share && rm -rf /work/share\n\
         FROM localhost/minbase:1\n\
         COPY --from=build /work /opt/work\n\
         RUN rm /opt/work/blob && echo done > /opt/work/done\n",
    )?;
    let rctx = run_ctx.to_str().context("path")?;
    settle()?;
    let berth_b = sh(berth("run-cache")
        .args(["build", "-q", "--no-cache", "-t", "run:1"])
        .arg(rctx))?;
    settle()?;
    let buildah_b = b(&[
        "bud",
        "--isolation",
        "chroot",
        "--runtime",
        "runc",
        "--layers",
        "--no-cache",
        "--format",
        "oci",
        "-t",
        "run:1",
        rctx,
    ])?;
    buildah.cleanup();

    let row = |what, berth: Duration, peer: Duration, target| Measured {
        what,
        berth,
        peer: Some(("buildah bud", peer)),
        floor: None,
        target,
    };
    report(
        "build",
        &[
            row("(a) COPY ~300 MB", berth_a, buildah_a, "<= 0.5x buildah"),
            row("(b) RUN multi-stage", berth_b, buildah_b, "<= 0.5x buildah"),
            row("(c) rebuild, no change", berth_c, buildah_c, "<= 0.5x buildah"),
            row("(d) rebuild, 1 file", berth_d, buildah_d, "<= 0.5x buildah"),
        ],
        bytes,
        "each row one run; cold rows start from empty caches",
        json,
    );
    Ok(())
}
