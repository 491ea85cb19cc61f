//! `cargo xtask bench build`: berth-build against `buildah bud --layers` (overlay storage, its default; `--runtime
//! runc` and chroot isolation, as buildah works here), in one run, on the same inputs:
//!
//! - (a) COPY-heavy: a ~300 MB context of mixed sizes (many small files, a few large), one COPY, cold caches;
//! - (b) RUN-heavy multi-stage on a `debootstrap --variant=minbase` base: several RUN steps that create and
//!   delete files, and a COPY --from between stages, cold caches;
//! - (c) the COPY build again with nothing changed (warm caches);
//! - (d) the COPY build again with one small file of the 300 MB context changed.
//!
//! Floors: for (a) `tar c` of the tree piped to `igzip -3` (berth-build's compressor) into a new file each run,
//! kept until the bench ends as a store keeps its blobs (overwriting one file would reuse the page-cache pages the
//! last run freed, which a build writing a new blob cannot), for (c) `find` stat-ing every file of the context. The peak resident memory of berth-build during (a) is reported too.
//!
//! Both tools get their own private storage, each with the base image unpacked before the timed runs (buildah
//! pulled it; berth-build ran a step on it); berth-build runs as a release build. (a), (c) and (d) are the median of
//! three runs with the tools taking turns ((a) with no step cache and, for berth-build, no context stat cache:
//! every file is read), (b) too, each run with --no-cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_testkit::rng::Rng;
use berth_testkit::tools::Buildah;

use crate::measure::{Measured, median_each, report, settle, sh, sh_peak, which};
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
    let tool = crate::cargo_build(&root, true, &["berth-build"])?.join("berth-build");
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
    let buildah = Buildah::overlay(&work.join("buildah"));
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
    // Like buildah, which unpacked the base when it pulled it, berth-build starts with the base image's layers in
    // its cache (a step on the base extracts them); the context is new to it.
    let warm_ctx = work.join("warm");
    std::fs::create_dir_all(&warm_ctx)?;
    std::fs::write(
        warm_ctx.join("Containerfile"),
        "FROM localhost/minbase:1\nCOPY Containerfile /warm\n",
    )?;
    sh(berth("copy-cache").args(["build", "-q", "-t", "warm:1"]).arg(&warm_ctx))?;
    let stat_cache = work.join("copy-cache/context-stat.json");
    let mut peak = 0u64;
    let mut n = 0;
    let floor_dir = work.join("floor");
    std::fs::create_dir_all(&floor_dir)?;
    let mut floor_n = 0;
    let (mut berth_a, mut buildah_a, mut floor_a) = (
        || -> Result<Duration> {
            settle()?;
            // A context never seen: its files are all read and hashed.
            let _ = std::fs::remove_file(&stat_cache);
            n += 1;
            let (t, p) = sh_peak(
                berth("copy-cache")
                    .args(["build", "-q", "--no-cache", "-t"])
                    .arg(format!("copy:a{n}"))
                    .arg(ctx),
            )?;
            peak = peak.max(p);
            Ok(t)
        },
        || -> Result<Duration> {
            settle()?;
            bud(&["--no-cache", "-t", "copy:1"])
        },
        || -> Result<Duration> {
            settle()?;
            floor_n += 1;
            sh(Command::new("sh").arg("-c").arg(format!(
                "tar -C '{ctx}' -c data | igzip -3 -c > '{}/{floor_n}.tar.gz'",
                floor_dir.display()
            )))
        },
    );
    let a = median_each(&mut [&mut berth_a, &mut buildah_a, &mut floor_a], 3)?;
    let _ = std::fs::remove_dir_all(&floor_dir);
    let (mut berth_c, mut buildah_c, mut floor_c) = (
        || -> Result<Duration> {
            settle()?;
            sh(berth("copy-cache").args(["build", "-q", "-t", "copy:2"]).arg(ctx))
        },
        || -> Result<Duration> {
            settle()?;
            bud(&["-t", "copy:2"])
        },
        || -> Result<Duration> {
            settle()?;
            // What any rebuild must do at least: stat every file of the context.
            sh(Command::new("find").arg(ctx).args(["-printf", "%s %T@ %C@ %i\n"]))
        },
    );
    let c = median_each(&mut [&mut berth_c, &mut buildah_c, &mut floor_c], 3)?;
    let changed = copy_ctx.join("data/small/d00/f000");
    let original = std::fs::read(&changed)?;
    // Each run changes the file again (new bytes), so every run of each tool misses its cache at that step.
    let version = std::cell::Cell::new(0);
    let change = || -> Result<()> {
        version.set(version.get() + 1);
        std::fs::write(&changed, format!("one small file changed, version {}\n", version.get()))?;
        settle()
    };
    let (mut berth_d, mut buildah_d) = (
        || -> Result<Duration> {
            change()?;
            sh(berth("copy-cache").args(["build", "-q", "-t", "copy:3"]).arg(ctx))
        },
        || -> Result<Duration> {
            change()?;
            bud(&["-t", "copy:3"])
        },
    );
    let d = median_each(&mut [&mut berth_d, &mut buildah_d], 3);
    std::fs::write(&changed, original)?;
    let d = d?;

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
    let mut nb = 0;
    let (mut berth_b, mut buildah_b) = (
        || -> Result<Duration> {
            settle()?;
            nb += 1;
            sh(berth("copy-cache")
                .args(["build", "-q", "--no-cache", "-t"])
                .arg(format!("run:b{nb}"))
                .arg(rctx))
        },
        || -> Result<Duration> {
            settle()?;
            b(&[
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
            ])
        },
    );
    let run_b = median_each(&mut [&mut berth_b, &mut buildah_b], 3)?;
    let (berth_b, buildah_b) = (run_b[0], run_b[1]);
    buildah.cleanup();

    let row = |what, berth: Duration, peer: Duration, floor, target| Measured {
        what,
        berth,
        peer: Some(("buildah bud", peer)),
        floor,
        target,
    };
    report(
        "build",
        &[
            row(
                "(a) COPY ~300 MB",
                a[0],
                a[1],
                Some(("tar | igzip -3", a[2])),
                "<= 0.5x buildah, <= 1.3x floor",
            ),
            row("(b) RUN multi-stage", berth_b, buildah_b, None, "<= 0.5x buildah"),
            row(
                "(c) rebuild, no change",
                c[0],
                c[1],
                Some(("find: stat all", c[2])),
                "<= 0.5x buildah",
            ),
            row("(d) rebuild, 1 file", d[0], d[1], None, "<= 0.5x buildah"),
        ],
        bytes,
        &format!(
            "each row the median of 3, tools taking turns; peak memory of berth-build in (a): {} MB \
             (target < 200 MB)",
            peak >> 20
        ),
        json,
    );
    Ok(())
}
