//! Running a pulled image with a runner's adapter (`run STATE oci:LAYOUT:latest`, its stdout and exit code being
//! the container's) and comparing the outcome with the case; and `umoci unpack`, with which the harness itself
//! checks the files of every pulled image once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use berth_testkit::tools::require;

use super::cases::{self, Case};
use super::cells::{Env, NOT_RUN, Stage, Tool, Verdict, call};
use super::checked;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a runner cell came to.
pub enum RunVerdict {
    Pass,
    Fail(Vec<String>),
    NotRun(String),
}

/// Runs the stage's image with the cell's runner; `Fail` carries every mismatch (the run's and the image's).
pub fn run_and_compare(env: &Env<'_>, runner: &Tool, case: &Case, stage: &Stage) -> RunVerdict {
    let mut problems = stage.image_problems.clone();
    if case.expected.contains_key("run") {
        let mut cmd = runner.cmd(env, "run");
        cmd.env("CONFORMANCE_ID", format!("{}-{}", stage.id, runner.name))
            .arg(format!("oci:{}:latest", stage.pulled.display()));
        match call(&mut cmd, RUN_TIMEOUT, env.scratch, true) {
            Verdict::Done(ran) if ran.code.is_none() => {
                problems.push(format!(
                    "{}: the run was killed by a signal: {}",
                    runner.name,
                    ran.tail()
                ));
            }
            Verdict::Done(ran) => {
                if let Err(e) = cases::check_run(case, &ran.stdout, ran.code) {
                    let stderr = if ran.stderr.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" (stderr: {})", ran.tail())
                    };
                    problems.push(format!("run: {e}{stderr}"));
                }
            }
            Verdict::NotRun(why) => return RunVerdict::NotRun(why),
            Verdict::Failed(why) => problems.push(format!("{}: {why}", runner.name)),
        }
    }
    if problems.is_empty() {
        RunVerdict::Pass
    } else {
        RunVerdict::Fail(problems)
    }
}

/// Whether a stage failure is an adapter's "not run" (and its reason).
pub fn not_run_reason(failure: &str) -> Option<&str> {
    failure.strip_prefix(NOT_RUN).map(str::trim)
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
