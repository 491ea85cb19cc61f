//! `cargo xtask bench copy`: berth-copy against `skopeo copy`, in one run, on one image of several layers
//! (~500 MB by default, `--mib` to change), each workload next to its floor measured in the same run:
//! - layout -> fresh registry (a new registry per run, so nothing is cached), floor: bare `curl` POST + PUT;
//! - cold push of one ~91 MB layer into an empty registry (median of five, new registry each time), the case a
//!   streamed upload is for, with the same floor (`--only cold-push` runs this one alone);
//! - push of a known image to a new repository (cross-repository mount), and re-push of an unchanged image;
//! - registry -> layout, floor: `curl` GET of the same blobs;
//! - layout -> layout and layout -> oci-archive, floor: `cp` of the blobs + `sha256sum`.
//!
//! Both tools are release builds / installed binaries, run as whole processes, best of three; the tools and the
//! floor of a workload take turns in every round.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_testkit::registry::TestRegistry;

use crate::measure::{Measured, best, best_each, median_each, report, settle, sh, which};
use crate::workspace_root;

/// Workloads `--only` can pick.
const ONLY: &[&str] = &["cold-push"];
/// MiB of incompressible data in the cold-push layer: ~91 MB once gzipped.
const COLD_MIB: u64 = 87;
/// Runs of the cold push per tool; the median counts.
const COLD_RUNS: usize = 5;

pub fn run(json: bool, mib: u64, only: Option<&str>) -> Result<()> {
    if let Some(name) = only {
        ensure!(
            ONLY.contains(&name),
            "bench copy: no workload `{name}` for --only; known: {}",
            ONLY.join(", ")
        );
    }
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "berth-copy",
            "-p",
            "berth-testkit",
            "--bin",
            "berth-copy",
            "--bin",
            "berth-bench-image",
        ])
        .current_dir(&root)
        .status()?;
    ensure!(status.success(), "building berth-copy failed");
    for t in ["skopeo", "curl", "docker-registry", "sha256sum"] {
        ensure!(which(t), "{t} is not installed: run `cargo xtask ci`");
    }
    // Where the build went (`CARGO_TARGET_DIR` moves it).
    let release = crate::fuzz::target_dir(&root)?.join("release");
    let berth = release.join("berth-copy");
    let bench = root.join("target/bench");
    std::fs::create_dir_all(&bench)?;
    let work = tempfile::Builder::new().prefix("copy-").tempdir_in(&bench)?;
    let w = work.path();
    let home = w.join("home");
    std::fs::create_dir_all(&home)?;
    let b = |args: &[&str]| {
        let mut c = Command::new(&berth);
        c.env("HOME", &home)
            .env("BERTH_CACHE", home.join(".cache/berth"))
            .arg("copy")
            .arg("-q")
            .args(args);
        c
    };
    let s = |args: &[&str]| {
        let mut c = Command::new("skopeo");
        c.args([
            "--insecure-policy",
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .args(args);
        c
    };

    let (cold, cold_bytes) = cold_push(&release, w, &b, &s)?;
    if only.is_some() {
        let note = format!("one layer of {:.0} MB; median of {COLD_RUNS}", cold_bytes as f64 / 1e6);
        report("copy", &[cold], cold_bytes, &note, json);
        return Ok(());
    }
    let src = w.join("src");
    let layers = 5u64;
    let made = Command::new(release.join("berth-bench-image"))
        .arg(&src)
        .arg("img")
        .arg(layers.to_string())
        .arg((mib / layers).max(1).to_string())
        .output()?;
    ensure!(
        made.status.success(),
        "making the benchmark image failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let manifest = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    // The manifest is not a blob in a registry; the floors move the layers and the config.
    let blobs: Vec<_> = blob_files(&src)?
        .into_iter()
        .filter(|(d, _, _)| *d != manifest)
        .collect();
    let total: u64 = blobs.iter().map(|(_, _, s)| s).sum();
    eprintln!("input: {} blobs, {:.0} MB", blobs.len(), total as f64 / 1e6);
    let src_ref = format!("oci:{}:img", src.display());
    // 1. layout -> fresh registry.
    let fresh = |f: &dyn Fn(&str) -> Command| -> Result<Duration> {
        let reg = TestRegistry::anonymous()?;
        settle()?;
        sh(&mut f(&format!("docker://{}/bench/img:1", reg.host())))
    };
    let mut push_berth = || fresh(&|d| b(&[&src_ref, d]));
    let mut push_skopeo = || fresh(&|d| s(&[&src_ref, d]));
    let mut push_floor = || {
        let reg = TestRegistry::anonymous()?;
        settle()?;
        let start = Instant::now();
        for (digest, path, _) in &blobs {
            curl_put(&reg.host(), "bench/img", digest, path)?;
        }
        Ok(start.elapsed())
    };
    let [push_berth, push_skopeo, push_floor] =
        best_each(&mut [&mut push_berth, &mut push_skopeo, &mut push_floor])?[..]
    else {
        unreachable!("three workloads give three times")
    };

    // 2./3. mounts and re-pushes on one registry.
    let reg = TestRegistry::anonymous()?;
    let host = reg.host();
    sh(&mut b(&[&src_ref, &format!("docker://{host}/bench/base:1")]))?;
    sh(&mut s(&[&src_ref, &format!("docker://{host}/bench/sbase:1")]))?;
    let counter = std::cell::Cell::new(0);
    let next = || {
        counter.set(counter.get() + 1);
        counter.get()
    };
    let mount_berth = best(|| sh(&mut b(&[&src_ref, &format!("docker://{host}/bench/mb{}:1", next())])))?;
    let mount_skopeo = best(|| sh(&mut s(&[&src_ref, &format!("docker://{host}/bench/ms{}:1", next())])))?;
    let repush_berth = best(|| sh(&mut b(&[&src_ref, &format!("docker://{host}/bench/base:1")])))?;
    let repush_skopeo = best(|| sh(&mut s(&[&src_ref, &format!("docker://{host}/bench/sbase:1")])))?;

    // 4. registry -> layout.
    let pull_src = format!("docker://{host}/bench/base:1");
    let mut pull_berth = || {
        let d = w.join(format!("pull-b-{}", next()));
        settle()?;
        sh(&mut b(&[&pull_src, &format!("oci:{}:x", d.display())]))
    };
    let mut pull_skopeo = || {
        let d = w.join(format!("pull-s-{}", next()));
        settle()?;
        sh(&mut s(&[&pull_src, &format!("oci:{}:x", d.display())]))
    };
    let mut pull_floor = || {
        let d = w.join(format!("pull-f-{}", next()));
        std::fs::create_dir_all(&d)?;
        settle()?;
        let start = Instant::now();
        for (digest, _, _) in &blobs {
            sh(Command::new("curl")
                .args(["-sf", "-o"])
                .arg(d.join(digest.replace(':', "-")))
                .arg(format!("http://{host}/v2/bench/base/blobs/{digest}")))?;
        }
        Ok(start.elapsed())
    };
    let [pull_berth, pull_skopeo, pull_floor] =
        best_each(&mut [&mut pull_berth, &mut pull_skopeo, &mut pull_floor])?[..]
    else {
        unreachable!("three workloads give three times")
    };
    drop(reg);

    // 5./6. layout -> layout, layout -> oci-archive.
    let local = |f: &dyn Fn(PathBuf) -> Command| -> Result<Duration> {
        let d = w.join(format!("local-{}", next()));
        settle()?;
        sh(&mut f(d))
    };
    let mut ll_berth = || local(&|d| b(&[&src_ref, &format!("oci:{}:x", d.display())]));
    let mut ll_skopeo = || local(&|d| s(&[&src_ref, &format!("oci:{}:x", d.display())]));
    let mut cp_floor = || {
        let d = w.join(format!("cp-{}", next()));
        std::fs::create_dir_all(&d)?;
        settle()?;
        let start = Instant::now();
        sh(Command::new("cp").arg("-r").arg(src.join("blobs")).arg(&d))?;
        sh(Command::new("sha256sum").args(blobs.iter().map(|(_, p, _)| p)))?;
        Ok(start.elapsed())
    };
    let mut la_berth = || local(&|d| b(&[&src_ref, &format!("oci-archive:{}.tar:x", d.display())]));
    let mut la_skopeo = || local(&|d| s(&[&src_ref, &format!("oci-archive:{}.tar:x", d.display())]));
    let [ll_berth, ll_skopeo, cp_floor, la_berth, la_skopeo] = best_each(&mut [
        &mut ll_berth,
        &mut ll_skopeo,
        &mut cp_floor,
        &mut la_berth,
        &mut la_skopeo,
    ])?[..] else {
        unreachable!("five workloads give five times")
    };

    let rows = [
        Measured {
            what: "layout->registry",
            berth: push_berth,
            peer: Some(("skopeo", push_skopeo)),
            floor: Some(("curl PUT", push_floor)),
            target: "<= 1.0x skopeo, <= 1.2x PUT",
        },
        cold,
        Measured {
            what: "push to new repo",
            berth: mount_berth,
            peer: Some(("skopeo", mount_skopeo)),
            floor: None,
            target: "<= 1.0x skopeo",
        },
        Measured {
            what: "re-push unchanged",
            berth: repush_berth,
            peer: Some(("skopeo", repush_skopeo)),
            floor: None,
            target: "<= 1.0x skopeo",
        },
        Measured {
            what: "registry->layout",
            berth: pull_berth,
            peer: Some(("skopeo", pull_skopeo)),
            floor: Some(("curl GET", pull_floor)),
            target: "<= 0.5x skopeo",
        },
        Measured {
            what: "layout->layout",
            berth: ll_berth,
            peer: Some(("skopeo", ll_skopeo)),
            floor: Some(("cp+sha256sum", cp_floor)),
            target: "<= 0.5x skopeo",
        },
        Measured {
            what: "layout->oci-archive",
            berth: la_berth,
            peer: Some(("skopeo", la_skopeo)),
            floor: Some(("cp+sha256sum", cp_floor)),
            target: "<= 0.5x skopeo",
        },
    ];
    let note = format!(
        "{:.0} MB of blobs; cold push: one {:.0} MB layer, median of {COLD_RUNS}",
        total as f64 / 1e6,
        cold_bytes as f64 / 1e6
    );
    report("copy", &rows, total, &note, json);
    Ok(())
}

/// Cold push of one large layer into an empty registry (a new one per run): berth-copy, skopeo and the bare
/// `curl` floor, median of [`COLD_RUNS`] each. Returns the row and the size of the layer.
fn cold_push(
    release: &Path,
    work: &Path,
    berth: &dyn Fn(&[&str]) -> Command,
    skopeo: &dyn Fn(&[&str]) -> Command,
) -> Result<(Measured, u64)> {
    let src = work.join("cold");
    let made = Command::new(release.join("berth-bench-image"))
        .arg(&src)
        .arg("cold")
        .arg("1")
        .arg(COLD_MIB.to_string())
        .output()?;
    ensure!(
        made.status.success(),
        "making the cold-push image failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let manifest = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let blobs: Vec<_> = blob_files(&src)?
        .into_iter()
        .filter(|(d, _, _)| *d != manifest)
        .collect();
    let layer = blobs.iter().map(|(_, _, size)| *size).max().unwrap_or(0);
    eprintln!("cold push: one layer of {:.0} MB", layer as f64 / 1e6);
    let src_ref = format!("oci:{}:cold", src.display());
    let fresh = |f: &dyn Fn(&str) -> Command| -> Result<Duration> {
        let reg = TestRegistry::anonymous()?;
        settle()?;
        sh(&mut f(&format!("docker://{}/cold/img:1", reg.host())))
    };
    let mut with_berth = || fresh(&|d| berth(&[&src_ref, d]));
    let mut with_skopeo = || fresh(&|d| skopeo(&[&src_ref, d]));
    let mut floor = || {
        let reg = TestRegistry::anonymous()?;
        settle()?;
        let start = Instant::now();
        for (digest, path, _) in &blobs {
            curl_put(&reg.host(), "cold/img", digest, path)?;
        }
        Ok(start.elapsed())
    };
    let [with_berth, with_skopeo, floor] =
        median_each(&mut [&mut with_berth, &mut with_skopeo, &mut floor], COLD_RUNS)?[..]
    else {
        unreachable!("three workloads give three times")
    };
    let row = Measured {
        what: "cold push 1 layer",
        berth: with_berth,
        peer: Some(("skopeo", with_skopeo)),
        floor: Some(("curl PUT", floor)),
        target: "<= 1.0x skopeo (median of 5)",
    };
    Ok((row, layer))
}

/// (digest, path, size) of every blob of a layout.
fn blob_files(layout: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let dir = layout.join("blobs/sha256");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir)? {
        let e = e?;
        out.push((
            format!("sha256:{}", e.file_name().to_string_lossy()),
            e.path(),
            e.metadata()?.len(),
        ));
    }
    Ok(out)
}

/// A bare monolithic upload: POST for a session, then PUT the whole blob.
fn curl_put(host: &str, repo: &str, digest: &str, path: &Path) -> Result<()> {
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{host}/v2/{repo}/blobs/uploads/"))
        .output()?;
    ensure!(out.status.success(), "curl POST failed");
    let headers = String::from_utf8_lossy(&out.stdout);
    let location = headers
        .lines()
        .find_map(|l| l.strip_prefix("Location: ").or_else(|| l.strip_prefix("location: ")))
        .context("no Location in the upload response")?
        .trim();
    let url = if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("http://{host}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    sh(Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", path.display()))
        .arg(format!("{url}{sep}digest={digest}")))?;
    Ok(())
}
