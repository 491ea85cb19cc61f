//! `cargo xtask conformance`: the interop matrix.
//!
//! Every case under `conformance/cases/` is built by each builder, copied to a local registry and back by each
//! copier, then run by each runner, and what comes out is compared with the case's `expected.json`. Tools are
//! programs behind a small adapter contract (`conformance/adapters/README.md`): the built-in ones (buildah,
//! berth-build and podman; skopeo and berth-copy; ctr, runc, crun where the host allows it, berth-run and podman)
//! are adapters in that directory, and `--tool ROLE=NAME:PROGRAM` adds any other.
//!
//! Work is shared so the matrix stays fast: each case is built once per builder, pushed and pulled once per
//! (builder, case, copier), and the pulled layout is checked (config, files, validator) once and run by every
//! runner. The registry, the base image and every tool's state are private to the run and torn down even on
//! failure; a tool whose adapter fails fails its own cells, never the run.
//!
//! - [`cases`]   — loading cases, comparing observations with their expectations, `oci-image-tool validate`;
//! - [`cells`]   — tools and adapters, the base image, building and copying;
//! - [`runners`] — running an image through a runner's adapter; `umoci unpack` for the file checks;
//! - [`report`]  — the terminal table, the JSON report, `docs/conformance.md` and `docs/conformance-cases.md`.

mod cases;
mod cells;
mod report;
mod runners;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use self::cases::Case;
use self::cells::{Cell, Role, Tool, Verdict};
use self::report::{CellResult, Outcome, Report};

const HELP: &str = "\
usage: cargo xtask conformance [--only KEY=VALUE[,KEY=VALUE…]] [--tool ROLE=NAME:PROGRAM]… [--format json]
                               [--keep] [--no-publish] [--self-test]

  --only        run only the cells matching every key; repeat a key to allow several values
                (keys: builder, copier, runner, case), e.g. --only builder=buildah,copier=berth-copy,case=links
  --tool        add a tool through its adapter (ROLE: builder, copier or runner; a relative PROGRAM is taken from
                the workspace root), e.g. --tool runner=mine:path/to/adapter; see conformance/adapters/README.md
  --format json print the report as JSON on stdout (the table goes to stderr)
  --keep        keep the work directory (layouts, tools' state) and print its path
  --no-publish  write neither target/conformance/report.json nor docs/conformance.md
  --self-test   check the harness itself: a deliberately broken adapter fails only its own cells
";

/// What to run and how to report it.
#[derive(Debug)]
struct Options {
    filter: Filter,
    tools: Vec<Tool>,
    json: bool,
    keep: bool,
    publish: bool,
}

pub fn run(args: &[String]) -> Result<()> {
    let root = crate::workspace_root();
    let mut tools = cells::default_tools(&root);
    let (mut only, mut json, mut keep, mut publish, mut self_test) = (Vec::new(), false, false, true, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value\n{HELP}"))
        };
        match arg.as_str() {
            "--only" => only.push(value("--only")?),
            s if s.starts_with("--only=") => only.push(s["--only=".len()..].to_owned()),
            "--tool" => cells::add_tool(&mut tools, &value("--tool")?, &root)?,
            s if s.starts_with("--tool=") => cells::add_tool(&mut tools, &s["--tool=".len()..], &root)?,
            "--format" => {
                let f = value("--format")?;
                ensure!(f == "json" || f == "table", "--format {f}: use json or table");
                json = f == "json";
            }
            "--format=json" => json = true,
            "--keep" => keep = true,
            "--no-publish" => publish = false,
            "--self-test" => self_test = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            other => bail!("conformance: unknown argument `{other}`\n{HELP}"),
        }
    }
    if !cells::crun_accepts_host() {
        eprintln!("crun: no cells — it refuses this host's hybrid cgroup v1/v2 setup");
    }
    if self_test {
        return self_test_run(&root);
    }
    let mut filter = Filter::default();
    for spec in &only {
        filter.add(spec, &tools)?;
    }
    let report = run_matrix(
        &root,
        &Options {
            filter,
            tools,
            json,
            keep,
            publish,
        },
    )?;
    let failed: Vec<String> = report
        .cells
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| r.cell.label())
        .collect();
    if !failed.is_empty() {
        bail!("{} cell(s) failed:\n  {}", failed.len(), failed.join("\n  "));
    }
    Ok(())
}

/// Runs the selected cells and reports them (table, JSON, published files); returns the report.
fn run_matrix(root: &Path, opts: &Options) -> Result<Report> {
    let cases = cases::load_all(&root.join("conformance/cases"))?;
    opts.filter.check_cases(&cases)?;
    let cells = cells::matrix(&opts.tools, &cases, &opts.filter);
    if cells.is_empty() {
        bail!("--only matched no cell");
    }
    let started = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("berth-conformance-")
        .tempdir_in("/tmp")?;
    let results = run_cells(root, work.path(), &opts.tools, &cases, &cells);
    if opts.keep {
        let kept = work.keep();
        eprintln!("work directory kept: {}", kept.display());
    }
    let (results, versions) = results?;

    let report_path = root.join("target/conformance/report.json");
    let previous = if opts.publish {
        Some(report_path.as_path())
    } else {
        None
    };
    let report = report::Report::new(previous, results, versions, &opts.filter, &opts.tools, &cases);
    let table = report.table(&cases);
    if opts.json {
        eprintln!("{table}");
        println!("{}", report.json_text());
    } else {
        println!("{table}");
    }
    if opts.publish {
        report.write_json(&report_path)?;
        fs::write(root.join("docs/conformance.md"), report.markdown(&cases))?;
        fs::write(root.join("docs/conformance-cases.md"), report::cases_page(&cases))?;
        eprintln!(
            "matrix: {:.0}s; wrote {}, docs/conformance.md and docs/conformance-cases.md",
            started.elapsed().as_secs_f64(),
            report_path.strip_prefix(root).unwrap_or(&report_path).display()
        );
    }
    Ok(report)
}

/// Each tool used with the version its adapter reported.
type Versions = Vec<(Tool, String)>;

/// The tools of `role` that some cell uses, in the tools' order.
fn used<'t>(tools: &'t [Tool], cells: &[Cell], role: Role) -> Vec<&'t Tool> {
    tools
        .iter()
        .filter(|t| t.role == role && cells.iter().any(|c| c.tool(role) == t.name))
        .collect()
}

/// Runs every selected cell; infrastructure that cannot start (a tool the harness needs, the registry) is an error,
/// while a failing adapter (setup, build, copy, run) only fails the cells that depend on it. Returns the results
/// and the versions of the tools used.
fn run_cells(
    root: &Path,
    work: &Path,
    tools: &[Tool],
    cases: &[Case],
    cells: &[Cell],
) -> Result<(Vec<CellResult>, Versions)> {
    let mut results: Vec<CellResult> = Vec::new();
    let case_of = |name: &str| cases.iter().find(|k| k.name == name).expect("cells name known cases");
    // A case may say that a tool lacks a feature it needs: `NAME` (a builder) or `ROLE:NAME`.
    let unsupported = |c: &Cell| {
        Role::ALL.iter().find_map(|&role| {
            let name = c.tool(role);
            let qualified = cases::unsupported(case_of(&c.case), &format!("{}:{name}", role.name()));
            let plain = || {
                (role == Role::Builder)
                    .then(|| cases::unsupported(case_of(&c.case), name))
                    .flatten()
            };
            qualified.or_else(plain).map(|why| (name.to_owned(), why))
        })
    };
    let mut live: Vec<&Cell> = Vec::new();
    for cell in cells {
        match unsupported(cell) {
            Some((tool, why)) => {
                let reason = format!("unsupported by {tool}: {why}");
                results.push(CellResult::new(cell.clone(), Outcome::Unsupported, 0.0, vec![reason]));
            }
            None => live.push(cell),
        }
    }
    let involved: Vec<&Tool> = Role::ALL.iter().flat_map(|&r| used(tools, cells, r)).collect();
    cells::require_tools()?;
    for t in &involved {
        ensure!(
            t.program.is_file(),
            "the {} adapter of {} is missing: {}",
            t.role.name(),
            t.name,
            t.program.display()
        );
    }
    let berth_bin = if involved.iter().any(|t| t.name.contains("berth-")) {
        Some(cells::build_release(root)?)
    } else {
        None
    };
    let scratch = work.join("scratch");
    fs::create_dir_all(&scratch)?;
    let base = work.join("base-layout");
    {
        let buildah = berth_testkit::tools::Buildah::new(&work.join("base-buildah"));
        eprintln!("==> base image localhost/busybox:latest");
        cells::make_base_image(&buildah, &work.join("base"), &base, &scratch)?;
    }
    let registry = berth_testkit::registry::TestRegistry::anonymous().context("cannot start docker-registry")?;
    let host = registry.host();
    let env = cells::Env {
        work,
        scratch: &scratch,
        registry: &host,
        berth_bin: berth_bin.as_deref(),
        base: &base,
    };
    let versions: Vec<(Tool, String)> = involved
        .iter()
        .map(|t| ((*t).clone(), cells::version(&env, t)))
        .collect();

    // Each tool's setup; a tool that cannot be set up has all its cells fail (or "not run", if it says so).
    let mut down: HashMap<(Role, String), (Outcome, String)> = HashMap::new();
    let mut ready: Vec<&Tool> = Vec::new();
    for t in &involved {
        eprintln!("==> setup {} {}", t.role.name(), t.name);
        match cells::setup(&env, t) {
            None => ready.push(t),
            Some(Verdict::NotRun(why)) => {
                down.insert(
                    (t.role, t.name.clone()),
                    (Outcome::NotRun, format!("{}: {why}", t.name)),
                );
            }
            Some(Verdict::Failed(why)) => {
                let why = format!("{} {} setup: {why}", t.role.name(), t.name);
                down.insert((t.role, t.name.clone()), (Outcome::Fail, why));
            }
            Some(Verdict::Done(_)) => ready.push(t),
        }
    }
    let result = run_live(&env, tools, cases, &live, &down, &mut results);
    for t in ready {
        cells::teardown(&env, t);
    }
    result?;
    Ok((results, versions))
}

fn run_live(
    env: &cells::Env<'_>,
    tools: &[Tool],
    cases: &[Case],
    live: &[&Cell],
    down: &HashMap<(Role, String), (Outcome, String)>,
    results: &mut Vec<CellResult>,
) -> Result<()> {
    let tool = |role, name: &str| {
        tools
            .iter()
            .find(|t| t.role == role && t.name == name)
            .expect("cells name known tools")
    };
    let is_down = |c: &Cell| Role::ALL.iter().find_map(|&r| down.get(&(r, c.tool(r).to_owned())));
    let push = |results: &mut Vec<CellResult>, r: CellResult| {
        eprintln!("    {:<48} {}", r.cell.label(), r.outcome.word());
        results.push(r);
    };
    for builder in used(
        tools,
        &live.iter().map(|c| (*c).clone()).collect::<Vec<_>>(),
        Role::Builder,
    ) {
        for case in cases {
            let group: Vec<&Cell> = live
                .iter()
                .copied()
                .filter(|c| c.builder == builder.name && c.case == case.name)
                .collect();
            if group.is_empty() {
                continue;
            }
            let (blocked, group): (Vec<&Cell>, Vec<&Cell>) = group.into_iter().partition(|c| is_down(c).is_some());
            for c in blocked {
                let (outcome, why) = is_down(c).expect("partitioned").clone();
                push(results, CellResult::new(c.clone(), outcome, 0.0, vec![why]));
            }
            if group.is_empty() {
                continue;
            }
            eprintln!("==> {} / {}", builder.name, case.name);
            let t = Instant::now();
            let built = cells::build(env, builder, case)?;
            let build_secs = t.elapsed().as_secs_f64();
            let mut copiers: Vec<&str> = group.iter().map(|c| c.copier.as_str()).collect();
            copiers.dedup();
            for copier_name in copiers {
                let copier = tool(Role::Copier, copier_name);
                let sub: Vec<&Cell> = group.iter().copied().filter(|c| c.copier == copier.name).collect();
                let stage = match &built {
                    Ok(layout) => cells::copy_and_check(env, builder, copier, case, layout),
                    Err(e) => cells::Stage::failed(match runners::not_run_reason(e) {
                        Some(_) => e.clone(),
                        None => format!("build with {}: {e}", builder.name),
                    }),
                };
                for cell in sub {
                    let t = Instant::now();
                    let verdict = match stage.failure() {
                        Some(reason) => match runners::not_run_reason(&reason) {
                            Some(why) => runners::RunVerdict::NotRun(why.to_owned()),
                            None => runners::RunVerdict::Fail(vec![reason]),
                        },
                        None => runners::run_and_compare(env, tool(Role::Runner, &cell.runner), case, &stage),
                    };
                    let secs = build_secs + stage.seconds + t.elapsed().as_secs_f64();
                    let result = match verdict {
                        runners::RunVerdict::Pass => CellResult::new(cell.clone(), Outcome::Pass, secs, Vec::new()),
                        runners::RunVerdict::Fail(problems) => {
                            CellResult::new(cell.clone(), Outcome::Fail, secs, problems)
                        }
                        runners::RunVerdict::NotRun(why) => {
                            CellResult::new(cell.clone(), Outcome::NotRun, secs, vec![why])
                        }
                    };
                    push(results, result);
                }
            }
        }
    }
    Ok(())
}

/// `--self-test`: one simple case through buildah, skopeo and runc, with a broken adapter as a second builder and
/// a second runner; the broken tool's cells must fail (with its stderr in the reason) and the others pass.
fn self_test_run(root: &Path) -> Result<()> {
    let all = cells::default_tools(root);
    let pick = |role, name: &str| all.iter().find(|t| t.role == role && t.name == name).cloned();
    let broken = root.join("conformance/adapters/testing/broken");
    let mut tools: Vec<Tool> = [
        pick(Role::Builder, "buildah"),
        pick(Role::Copier, "skopeo"),
        pick(Role::Runner, "runc"),
    ]
    .into_iter()
    .flatten()
    .collect();
    for role in [Role::Builder, Role::Runner] {
        tools.push(Tool {
            role,
            name: "broken".into(),
            program: broken.clone(),
        });
    }
    let mut filter = Filter::default();
    filter.add("case=busybox-shell", &tools)?;
    let report = run_matrix(
        root,
        &Options {
            filter,
            tools,
            json: false,
            keep: false,
            publish: false,
        },
    )?;
    let mut seen = Vec::new();
    for r in &report.cells {
        let involves_broken = r.cell.builder == "broken" || r.cell.runner == "broken";
        let want = if involves_broken { Outcome::Fail } else { Outcome::Pass };
        ensure!(
            r.outcome == want,
            "self-test: {} is {:?}, expected {want:?}: {:?}",
            r.cell.label(),
            r.outcome,
            r.problems
        );
        if involves_broken {
            ensure!(
                r.problems.iter().any(|p| p.contains("fails on purpose")),
                "self-test: {}'s reason does not quote the adapter's stderr: {:?}",
                r.cell.label(),
                r.problems
            );
        }
        seen.push(r.cell.column());
    }
    ensure!(seen.len() == 4, "self-test: expected 4 cells, got {seen:?}");
    eprintln!("self-test: the broken adapter failed its 3 cells only; buildah/skopeo/runc passed");
    Ok(())
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
pub(crate) fn describe(cmd: &Command) -> String {
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
    /// Adds `KEY=VALUE,…`; a tool name must name one of `tools` of that role.
    pub fn add(&mut self, spec: &str, tools: &[Tool]) -> Result<()> {
        for pair in spec.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--only: `{pair}` is not KEY=VALUE"))?;
            if key != "case" {
                let role = Role::parse(key)
                    .with_context(|| format!("--only: unknown key `{key}` (use builder, copier, runner or case)"))?;
                let known: Vec<&str> = tools
                    .iter()
                    .filter(|t| t.role == role)
                    .map(|t| t.name.as_str())
                    .collect();
                if !known.contains(&value) {
                    bail!("--only: unknown {key} `{value}` (one of: {})", known.join(", "));
                }
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
        let value_of = |key: &str| match Role::parse(key) {
            Some(role) => cell.tool(role),
            None => cell.case.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_filters_by_every_key_given() {
        let tools = cells::default_tools(Path::new("/nonexistent"));
        let mut f = Filter::default();
        f.add("builder=buildah,case=links,case=whiteouts", &tools).unwrap();
        let cell = |case: &str, runner: &str| Cell {
            builder: "buildah".into(),
            copier: "skopeo".into(),
            runner: runner.into(),
            case: case.into(),
        };
        assert!(f.matches(&cell("links", "ctr")));
        assert!(f.matches(&cell("whiteouts", "runc")));
        assert!(!f.matches(&cell("many-layers", "ctr")));
        assert!(Filter::default().add("runner=nosuch", &tools).is_err());
        assert!(Filter::default().add("runner=podman", &tools).is_ok());
        assert!(Filter::default().add("tool=x", &tools).is_err());
    }

    #[test]
    fn tool_flags_add_or_replace_a_column() {
        let root = crate::workspace_root();
        let mut tools = cells::default_tools(&root);
        let n = tools.len();
        cells::add_tool(&mut tools, "runner=broken:conformance/adapters/testing/broken", &root).unwrap();
        assert_eq!(tools.len(), n + 1);
        cells::add_tool(&mut tools, "runner=broken:conformance/adapters/testing/broken", &root).unwrap();
        assert_eq!(tools.len(), n + 1, "the same role and name replaces");
        assert!(cells::add_tool(&mut tools, "runner=x:no/such/program", &root).is_err());
        assert!(cells::add_tool(&mut tools, "tester=x:conformance/adapters/skopeo", &root).is_err());
        assert!(cells::add_tool(&mut tools, "runner=x", &root).is_err());
    }

    #[test]
    fn line_diff_marks_what_differs() {
        assert_eq!(cases::line_diff("a\nb\nc\n", "a\nB\nc\n"), "  a\n- b\n+ B\n  c");
        assert_eq!(cases::line_diff("x\n", "x"), "- x\n+ x\\ (no newline at end)");
    }
}
