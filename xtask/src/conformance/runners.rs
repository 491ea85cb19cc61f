//! Running a pulled image with a runner and comparing the outcome with the case.
//!
//! - `ctr`: the pulled layout is packed as an oci-archive and imported into the harness's own containerd
//!   (`ctr images import --base-name`), then `ctr run --rm IMAGE ID`;
//! - `berth-run`: `berth-run run --rm oci:PULLED:latest`, with a store, layer cache and state directory of the
//!   harness's own (the layer cache is shared by every cell, as a user's would be);
//! - `runc` (and `crun`, on hosts whose cgroups it accepts): `runc run` of the bundle `umoci unpack` made from the
//!   pulled layout, with a private `--root`, and `runc delete -f` afterwards whatever happened.
//!
//! Each run has a timeout; a container that outlives it is killed and removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_testkit::containerd::Containerd;
use berth_testkit::tools::require;

use super::cases::{self, Case};
use super::cells::{Cell, Env, Runner, Stage};
use super::{Ran, checked, exec};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the stage's image with the cell's runner; `Err` carries every mismatch (the run's and the image's).
pub fn run_and_compare(env: &Env<'_>, cell: &Cell, case: &Case, stage: &Stage) -> Result<(), String> {
    let mut problems = stage.image_problems.clone();
    if case.expected.contains_key("run") {
        let ran = match cell.runner {
            Runner::Ctr => run_ctr(env, stage),
            Runner::Runc => run_runc(env, stage, "runc"),
            Runner::Crun => run_runc(env, stage, "crun"),
            Runner::BerthRun => run_berth(env, stage),
        };
        match ran {
            Ok(ran) if ran.timed_out => problems.push(format!("run timed out after {}s", RUN_TIMEOUT.as_secs())),
            Ok(ran) => {
                if let Err(e) = cases::check_run(case, &ran.stdout, ran.code) {
                    let stderr = ran.stderr.trim();
                    let stderr = if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(" (stderr: {})", ran.tail())
                    };
                    problems.push(format!("run: {e}{stderr}"));
                }
            }
            Err(e) => problems.push(format!("{}: {e:#}", cell.runner.name())),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn run_ctr(env: &Env<'_>, stage: &Stage) -> Result<Ran> {
    let containerd = env.containerd.context("containerd was not started")?;
    let archive = env.work.join("archives").join(format!("{}.tar", stage.id));
    std::fs::create_dir_all(archive.parent().expect("has a parent"))?;
    checked(
        Command::new(require("tar")?)
            .arg("-C")
            .arg(&stage.pulled)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
        STEP_TIMEOUT,
        env.scratch,
    )?;
    let base = format!("localhost/conformance/{}", stage.id);
    checked(
        containerd
            .ctr()?
            .args(["images", "import", "--base-name", &base])
            .arg(&archive),
        STEP_TIMEOUT,
        env.scratch,
    )
    .context("ctr images import")?;
    let _ = std::fs::remove_file(&archive);
    let id = format!("conformance-{}", stage.id);
    let guard = CtrContainer {
        containerd,
        id: id.clone(),
        scratch: env.scratch,
    };
    let image = format!("{base}:latest");
    let ran = exec(
        containerd.ctr()?.args(["run", "--rm", &image, &id]),
        RUN_TIMEOUT,
        env.scratch,
    );
    drop(guard);
    let ran = ran?;
    if ran.code.is_none() && !ran.timed_out {
        anyhow::bail!("ctr run was killed by a signal: {}", ran.tail());
    }
    Ok(ran)
}

fn run_berth(env: &Env<'_>, stage: &Stage) -> Result<Ran> {
    let tool = env.berth_run.context("berth-run was not built")?;
    let guard = BerthContainer {
        tool,
        dir: env.work.join("berth-run"),
        name: format!("conformance-{}", stage.id),
        scratch: env.scratch,
    };
    let image = format!("oci:{}:latest", stage.pulled.display());
    let mut cmd = guard.cmd();
    cmd.args(["run", "--rm", "--name", &guard.name, &image]);
    let ran = exec(&mut cmd, RUN_TIMEOUT, env.scratch)?;
    if ran.code.is_none() && !ran.timed_out {
        anyhow::bail!("berth-run was killed by a signal: {}", ran.tail());
    }
    Ok(ran)
}

/// A berth-run container, removed (killed first) when dropped; errors are ignored (`--rm` usually did it).
struct BerthContainer<'a> {
    tool: &'a Path,
    dir: PathBuf,
    name: String,
    scratch: &'a Path,
}

impl BerthContainer<'_> {
    fn cmd(&self) -> Command {
        let mut c = Command::new(self.tool);
        for (flag, sub) in [("--store", "store"), ("--cache", "cache"), ("--state", "state")] {
            c.arg(flag).arg(self.dir.join(sub));
        }
        c
    }
}

impl Drop for BerthContainer<'_> {
    fn drop(&mut self) {
        let mut c = self.cmd();
        let _ = exec(c.args(["rm", "-f", &self.name]), STEP_TIMEOUT, self.scratch);
    }
}

/// Kills and removes a ctr container (and its task) when dropped; errors are ignored (`--rm` usually did it).
struct CtrContainer<'a> {
    containerd: &'a Containerd,
    id: String,
    scratch: &'a Path,
}

impl Drop for CtrContainer<'_> {
    fn drop(&mut self) {
        let steps: [&[&str]; 3] = [
            &["tasks", "kill", "--signal", "SIGKILL", &self.id],
            &["tasks", "delete", "--force", &self.id],
            &["containers", "delete", &self.id],
        ];
        for args in steps {
            if let Ok(mut c) = self.containerd.ctr() {
                let _ = exec(c.args(args), STEP_TIMEOUT, self.scratch);
            }
        }
    }
}

/// `runc run` (or `crun run`, which takes the same arguments) of the umoci bundle.
fn run_runc(env: &Env<'_>, stage: &Stage, runtime: &'static str) -> Result<Ran> {
    let bundle = stage.bundle.as_ref().map_err(|e| anyhow::anyhow!("no bundle: {e}"))?;
    let guard = RuncContainer {
        runtime,
        root: env.work.join(format!("{runtime}-state")),
        id: format!("conformance-{}", stage.id),
        scratch: env.scratch,
    };
    let mut cmd = guard.cmd()?;
    cmd.args(["run", "--bundle"]).arg(bundle).arg(&guard.id);
    let ran = exec(&mut cmd, RUN_TIMEOUT, env.scratch)?;
    if ran.code.is_none() && !ran.timed_out {
        anyhow::bail!("{runtime} run was killed by a signal: {}", ran.tail());
    }
    Ok(ran)
}

/// A runc (or crun) container with a private state root, force-deleted when dropped.
struct RuncContainer<'a> {
    runtime: &'static str,
    root: std::path::PathBuf,
    id: String,
    scratch: &'a Path,
}

impl RuncContainer<'_> {
    fn cmd(&self) -> Result<Command> {
        let mut c = Command::new(require(self.runtime)?);
        c.arg("--root").arg(&self.root);
        Ok(c)
    }
}

impl Drop for RuncContainer<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.cmd() {
            let _ = exec(c.args(["delete", "-f", &self.id]), STEP_TIMEOUT, self.scratch);
        }
    }
}

/// `umoci unpack` of the layout's `latest` into a bundle; `terminal` is turned off so runc can run it unattended.
/// umoci 0.4.7 can neither read zstd layers nor choose a platform from an index, so such an image is first
/// copied by skopeo to a single-manifest gzip layout (for umoci only; the checks of the pulled layout itself and
/// ctr still see the zstd image or the index).
pub fn unpack(env: &Env<'_>, layout: &Path, id: &str) -> Result<PathBuf> {
    let bundle = env.work.join("bundles").join(id);
    fs::create_dir_all(bundle.parent().expect("has a parent"))?;
    let mut layout = layout.to_owned();
    if needs_plain_copy(&layout)? {
        let gzip = env.work.join("for-umoci").join(id);
        fs::create_dir_all(&gzip)?;
        checked(
            Command::new(require("skopeo")?)
                .args(["--insecure-policy", "copy", "--quiet", "--dest-compress-format", "gzip"])
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("oci:{}:latest", gzip.display())),
            STEP_TIMEOUT,
            env.scratch,
        )?;
        layout = gzip;
    }
    let image = format!("{}:latest", layout.display());
    checked(
        Command::new(require("umoci")?)
            .args(["unpack", "--image", &image])
            .arg(&bundle),
        STEP_TIMEOUT,
        env.scratch,
    )?;
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
    config["process"]["terminal"] = false.into();
    fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(bundle)
}

/// Whether `latest` is an index or has zstd layers.
fn needs_plain_copy(layout: &Path) -> Result<bool> {
    let docs = cases::layout_documents(layout)?;
    if docs.index.is_some() {
        return Ok(true);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(&docs.manifest)?)?;
    Ok(manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["mediaType"].as_str())
        .any(|t| t.contains("zstd")))
}
