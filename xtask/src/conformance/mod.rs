//! `cargo xtask conformance`: the interop matrix of issue 5.
//!
//! Every case under `conformance/cases/` is built by each builder (buildah, berth-build), copied to a local
//! registry and back by each copier (skopeo, berth-copy), then run by each runner (ctr, runc on a bundle from
//! `umoci unpack`, crun where the host's cgroups allow it, berth-run), and what comes out is compared with the case's `expected.json`.
//!
//! Work is shared so the matrix stays fast: each case is built once per builder, pushed and pulled once per
//! (builder, case, copier), and the pulled layout is checked (config, files, validator) once and run by every
//! runner. The registry, containerd and buildah storage are private to the run and torn down even on failure.
//!
//! - [`cases`]   — loading cases, comparing observations with their expectations, `oci-image-tool validate`;
//! - [`cells`]   — the tools of the matrix, the base image, building and copying;
//! - [`runners`] — `umoci unpack`, running an image with ctr or runc and collecting stdout and exit code;
//! - [`report`]  — the terminal table, `target/conformance/report.json` and `docs/conformance.md`.

mod cases;
mod cells;
mod report;
mod runners;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use self::cases::Case;
use self::cells::{Builder, Cell, Copier, Runner};
use self::report::{CellResult, Outcome};

const HELP: &str = "\
usage: cargo xtask conformance [--only KEY=VALUE[,KEY=VALUE…]] [--keep]

  --only   run only the cells matching every key; repeat a key to allow several values
           (keys: builder, copier, runner, case), e.g. --only builder=buildah,copier=berth-copy,case=links
  --keep   keep the work directory (buildah storage, layouts, bundles) and print its path
";

pub fn run(args: &[String]) -> Result<()> {
    let mut filter = Filter::default();
    let mut keep = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--only" => {
                let spec = it.next().context("--only needs KEY=VALUE[,KEY=VALUE…]")?;
                filter.add(spec)?;
            }
            s if s.starts_with("--only=") => filter.add(&s["--only=".len()..])?,
            "--keep" => keep = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            other => bail!("conformance: unknown argument `{other}`\n{HELP}"),
        }
    }

    let root = crate::workspace_root();
    let cases = cases::load_all(&root.join("conformance/cases"))?;
    filter.check_cases(&cases)?;
    let cells = cells::matrix(&cases, &filter);
    if cells.is_empty() {
        bail!("--only matched no cell");
    }
    let started = Instant::now();
    let work = tempfile::Builder::new().prefix("berth-conformance-").tempdir()?;
    let results = run_cells(&root, work.path(), &cases, &cells);
    if keep {
        let kept = work.keep();
        println!("work directory kept: {}", kept.display());
    }
    let results = results?;

    let report_path = root.join("target/conformance/report.json");
    let merged = report::merge(&report_path, results, &filter, &cases)?;
    report::write_json(&report_path, &merged)?;
    fs::write(root.join("docs/conformance.md"), report::markdown(&merged, &cases))?;
    println!("{}", report::table(&merged, &cases));
    println!(
        "matrix: {:.0}s; wrote {} and docs/conformance.md",
        started.elapsed().as_secs_f64(),
        report_path.strip_prefix(&root).unwrap_or(&report_path).display()
    );
    let failed: Vec<String> = merged
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| r.cell.label())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} implemented cell(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// Runs every selected cell; infrastructure that cannot start (a missing tool, the registry) is an error, while
/// a failing build, copy, check or run only fails the cells that depend on it.
fn run_cells(root: &Path, work: &Path, cases: &[Case], cells: &[Cell]) -> Result<Vec<CellResult>> {
    let mut results: Vec<CellResult> = Vec::new();
    let unsupported = |c: &Cell| {
        cases
            .iter()
            .find(|k| k.name == c.case)
            .and_then(|k| cases::unsupported(k, c.builder.name()))
    };
    let live: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.not_implemented().is_none() && unsupported(c).is_none())
        .collect();
    for cell in cells {
        if let Some(why) = cell.not_implemented() {
            results.push(CellResult::new(cell.clone(), Outcome::NotImplemented, 0.0, why));
        } else if let Some(why) = unsupported(cell) {
            let reason = format!(
                "unsupported by {} {}: {why}",
                cell.builder.name(),
                tool_version(cell.builder.name())
            );
            results.push(CellResult::new(cell.clone(), Outcome::Unsupported, 0.0, reason));
        }
    }
    if live.is_empty() {
        return Ok(results);
    }
    cells::require_tools(&live)?;
    let berth_copy = if live.iter().any(|c| c.copier == Copier::BerthCopy) {
        Some(cells::build_release(root, "berth-copy")?)
    } else {
        None
    };
    let berth_run = if live.iter().any(|c| c.runner == Runner::BerthRun) {
        Some(cells::build_release(root, "berth-run")?)
    } else {
        None
    };
    let berth_build = if live.iter().any(|c| c.builder == Builder::BerthBuild) {
        Some(cells::build_release(root, "berth-build")?)
    } else {
        None
    };
    let scratch = work.join("scratch");
    fs::create_dir_all(&scratch)?;
    let buildah = berth_testkit::tools::Buildah::new(&work.join("buildah"));
    println!("==> base image localhost/busybox:latest");
    cells::make_base_image(&buildah, &work.join("base"), &scratch)?;
    let registry = berth_testkit::registry::TestRegistry::anonymous().context("cannot start docker-registry")?;
    let containerd = if live.iter().any(|c| c.runner == Runner::Ctr) {
        Some(berth_testkit::containerd::Containerd::start().context("cannot start containerd")?)
    } else {
        None
    };
    let env = cells::Env {
        work,
        scratch: &scratch,
        buildah: &buildah,
        registry: &registry.host(),
        berth_copy: berth_copy.as_deref(),
        berth_run: berth_run.as_deref(),
        berth_build: berth_build.as_deref(),
        containerd: containerd.as_ref(),
    };
    if berth_build.is_some() {
        cells::seed_berth_store(&env)?;
    }

    for &builder in Builder::ALL {
        for case in cases {
            let group: Vec<&Cell> = live
                .iter()
                .copied()
                .filter(|c| c.builder == builder && c.case == case.name)
                .collect();
            if group.is_empty() {
                continue;
            }
            println!("==> {} / {}", builder.name(), case.name);
            let t = Instant::now();
            let built = cells::build(&env, builder, case);
            let build_secs = t.elapsed().as_secs_f64();
            for &copier in Copier::ALL {
                let sub: Vec<&Cell> = group.iter().copied().filter(|c| c.copier == copier).collect();
                if sub.is_empty() {
                    continue;
                }
                let stage = match &built {
                    Ok(layout) => cells::copy_and_check(&env, builder, copier, case, layout),
                    Err(e) => cells::Stage::failed(format!("build with {}: {e:#}", builder.name())),
                };
                for cell in sub {
                    let t = Instant::now();
                    let verdict = match stage.failure() {
                        Some(reason) => Err(reason),
                        None => runners::run_and_compare(&env, cell, case, &stage),
                    };
                    let secs = build_secs + stage.seconds + t.elapsed().as_secs_f64();
                    let result = match verdict {
                        Ok(()) => CellResult::new(cell.clone(), Outcome::Pass, secs, String::new()),
                        Err(reason) => CellResult::new(cell.clone(), Outcome::Fail, secs, reason),
                    };
                    println!("    {:<40} {}", cell.label(), result.outcome.word());
                    results.push(result);
                }
            }
        }
    }
    Ok(results)
}

/// What a command did: its exit code (None when killed by a signal or the timeout), stdout and stderr.
#[derive(Debug)]
pub(crate) struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Ran {
    /// The last lines of stderr (and stdout when stderr is empty), for a failure reason.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs `cmd` with stdin closed and stdout/stderr captured in files under `scratch` (no pipe can fill up), and
/// kills it after `timeout`.
pub(crate) fn exec(cmd: &mut Command, timeout: Duration, scratch: &Path) -> Result<Ran> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let (out_path, err_path) = (scratch.join(format!("{n}.out")), scratch.join(format!("{n}.err")));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (Some(status), false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &PathBuf| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    let ran = Ran {
        code: status.and_then(|s| s.code()),
        stdout: read(&out_path),
        stderr: read(&err_path),
        timed_out,
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    Ok(ran)
}

/// Like [`exec`], and fails (naming the command and quoting its output) unless it exits with 0.
pub(crate) fn checked(cmd: &mut Command, timeout: Duration, scratch: &Path) -> Result<Ran> {
    let what = describe(cmd);
    let ran = exec(cmd, timeout, scratch)?;
    if ran.timed_out {
        bail!("`{what}` timed out after {}s", timeout.as_secs());
    }
    if ran.code != Some(0) {
        bail!("`{what}` failed (exit {:?}): {}", ran.code, ran.tail());
    }
    Ok(ran)
}

/// A command line for messages: the program's file name and its arguments.
fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{program} {}", args.join(" "))
}

/// `--only KEY=VALUE,…`: a cell matches when, for every key given, its value is one of the values given.
#[derive(Debug, Default)]
pub struct Filter {
    pairs: Vec<(String, String)>,
}

impl Filter {
    pub fn add(&mut self, spec: &str) -> Result<()> {
        for pair in spec.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--only: `{pair}` is not KEY=VALUE"))?;
            let known: Vec<&str> = match key {
                "builder" => Builder::ALL.iter().map(|t| t.name()).collect(),
                "copier" => Copier::ALL.iter().map(|t| t.name()).collect(),
                "runner" => Runner::ALL.iter().map(|t| t.name()).collect(),
                "case" => Vec::new(),
                _ => bail!("--only: unknown key `{key}` (use builder, copier, runner or case)"),
            };
            if !known.is_empty() && !known.contains(&value) {
                bail!("--only: unknown {key} `{value}` (one of: {})", known.join(", "));
            }
            self.pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(())
    }

    /// Fails on a `case=` naming no case.
    pub fn check_cases(&self, cases: &[Case]) -> Result<()> {
        for (key, value) in &self.pairs {
            if key == "case" && !cases.iter().any(|c| &c.name == value) {
                let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
                bail!("--only: no case `{value}` (cases: {})", names.join(", "));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn matches(&self, cell: &Cell) -> bool {
        let value_of = |key: &str| match key {
            "builder" => cell.builder.name(),
            "copier" => cell.copier.name(),
            "runner" => cell.runner.name(),
            _ => cell.case.as_str(),
        };
        ["builder", "copier", "runner", "case"].iter().all(|key| {
            let wanted: Vec<&str> = self
                .pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            wanted.is_empty() || wanted.contains(&value_of(key))
        })
    }
}

/// A tool's version as its `--version` says (the last word of the first line), for reports.
fn tool_version(tool: &str) -> String {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_filters_by_every_key_given() {
        let mut f = Filter::default();
        f.add("builder=buildah,case=links,case=whiteouts").unwrap();
        let cell = |case: &str, runner| Cell {
            builder: Builder::Buildah,
            copier: Copier::Skopeo,
            runner,
            case: case.into(),
        };
        assert!(f.matches(&cell("links", Runner::Ctr)));
        assert!(f.matches(&cell("whiteouts", Runner::Runc)));
        assert!(!f.matches(&cell("many-layers", Runner::Ctr)));
        assert!(Filter::default().add("runner=podman").is_err());
        assert!(Filter::default().add("tool=x").is_err());
    }
}
