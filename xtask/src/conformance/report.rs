//! The matrix's results: the terminal table, the JSON report (`target/conformance/report.json`, or stdout with
//! `--format json`), `docs/conformance.md` and `docs/conformance-cases.md`.
//!
//! A run with `--only` merges its cells into the previous report (for the tools still configured), so the
//! published grid stays whole. The JSON schema is documented in `conformance/README.md`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Filter;
use super::cases::Case;
use super::cells::{Cell, Role, Tool};

/// The `schema` of the JSON report; a change that is not backwards compatible bumps it.
pub const SCHEMA: &str = "berth-conformance/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// The tool's version lacks a feature the case needs (the case says which): neither pass nor fail.
    Unsupported,
    /// The tool's adapter says the tool cannot take part on this host (with its reason): neither pass nor fail.
    NotRun,
}

impl Outcome {
    const ALL: [Outcome; 4] = [Outcome::Pass, Outcome::Fail, Outcome::Unsupported, Outcome::NotRun];

    /// The word in the JSON report.
    fn json(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Unsupported => "unsupported",
            Outcome::NotRun => "not-run",
        }
    }

    /// The word in the terminal table.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Unsupported => "unsup",
            Outcome::NotRun => "n-r",
        }
    }
}

/// One cell's result. `seconds` counts the cell's share of the work as if it ran alone: the build, the copies and
/// checks of its (builder, case, copier), and its own run. `problems` are what differed from the case (or why the
/// cell could not run).
#[derive(Debug, Clone)]
pub struct CellResult {
    pub cell: Cell,
    pub outcome: Outcome,
    pub seconds: f64,
    pub problems: Vec<String>,
}

impl CellResult {
    pub fn new(cell: Cell, outcome: Outcome, seconds: f64, problems: Vec<String>) -> Self {
        CellResult {
            cell,
            outcome,
            seconds,
            problems,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "builder": self.cell.builder,
            "copier": self.cell.copier,
            "runner": self.cell.runner,
            "case": self.cell.case,
            "result": self.outcome.json(),
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "problems": self.problems,
        })
    }

    fn from_json(v: &Value) -> Option<CellResult> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let outcome = Outcome::ALL
            .into_iter()
            .find(|o| Some(o.json()) == v.get("result").and_then(Value::as_str))?;
        Some(CellResult {
            cell: Cell {
                builder: s("builder")?,
                copier: s("copier")?,
                runner: s("runner")?,
                case: s("case")?,
            },
            outcome,
            seconds: v.get("seconds").and_then(Value::as_f64).unwrap_or(0.0),
            problems: v
                .get("problems")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    }
}

/// A tool as the report lists it.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    pub role: Role,
    pub name: String,
    pub version: String,
    pub adapter: String,
}

/// The whole report.
#[derive(Debug)]
pub struct Report {
    pub date: String,
    pub kernel: String,
    pub cgroup: String,
    pub tools: Vec<ToolInfo>,
    pub cells: Vec<CellResult>,
}

impl Report {
    /// This run's results, plus (when `--only` narrowed it and `previous` is given) the previous report's cells of
    /// cases and tools that still exist.
    pub fn new(
        previous: Option<&Path>,
        fresh: Vec<CellResult>,
        versions: Vec<(Tool, String)>,
        filter: &Filter,
        tools: &[Tool],
        cases: &[Case],
    ) -> Report {
        let root = crate::workspace_root();
        let info = |t: &Tool, version: String| ToolInfo {
            role: t.role,
            name: t.name.clone(),
            version,
            adapter: t
                .program
                .strip_prefix(&root)
                .unwrap_or(&t.program)
                .display()
                .to_string(),
        };
        let mut infos: Vec<ToolInfo> = versions.iter().map(|(t, v)| info(t, v.clone())).collect();
        let mut all = fresh;
        let old = previous
            .filter(|_| !filter.is_empty())
            .and_then(|p| fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        if let Some(old) = old {
            let known = |role: Role, name: &str| tools.iter().any(|t| t.role == role && t.name == name);
            let kept: Vec<CellResult> = old["cells"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(CellResult::from_json)
                .filter(|o| cases.iter().any(|c| c.name == o.cell.case))
                .filter(|o| Role::ALL.iter().all(|&r| known(r, o.cell.tool(r))))
                .filter(|o| !all.iter().any(|n| n.cell == o.cell))
                .collect();
            for t in old["tools"].as_array().into_iter().flatten() {
                let (Some(role), Some(name)) = (t["role"].as_str().and_then(Role::parse), t["name"].as_str()) else {
                    continue;
                };
                let used = kept.iter().any(|k| k.cell.tool(role) == name);
                if used && !infos.iter().any(|i| i.role == role && i.name == name) {
                    infos.push(ToolInfo {
                        role,
                        name: name.to_owned(),
                        version: t["version"].as_str().unwrap_or_default().to_owned(),
                        adapter: t["adapter"].as_str().unwrap_or_default().to_owned(),
                    });
                }
            }
            all.extend(kept);
        }
        let order = |role: Role, name: &str| {
            tools
                .iter()
                .filter(|t| t.role == role)
                .position(|t| t.name == name)
                .unwrap_or(usize::MAX)
        };
        all.sort_by_key(|r| {
            (
                order(Role::Builder, &r.cell.builder),
                order(Role::Copier, &r.cell.copier),
                order(Role::Runner, &r.cell.runner),
                r.cell.case.clone(),
            )
        });
        infos.sort_by_key(|i| (Role::ALL.iter().position(|r| *r == i.role), order(i.role, &i.name)));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Report {
            date: berth_spec::time::rfc3339(now),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            cgroup: super::cells::cgroup_mode().to_owned(),
            tools: infos,
            cells: all,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "schema": SCHEMA,
            "date": self.date,
            "host": {"kernel": self.kernel, "cgroup": self.cgroup},
            "tools": self.tools.iter().map(|t| json!({
                "role": t.role.name(), "name": t.name, "version": t.version, "adapter": t.adapter,
            })).collect::<Vec<_>>(),
            "summary": Outcome::ALL.iter().map(|o| (o.json().to_owned(), json!(self.count(*o))))
                .collect::<serde_json::Map<_, _>>(),
            "cells": self.cells.iter().map(CellResult::to_json).collect::<Vec<_>>(),
        })
    }

    pub fn json_text(&self) -> String {
        serde_json::to_string_pretty(&self.json()).expect("JSON") + "\n"
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path.parent().expect("has a parent"))?;
        fs::write(path, self.json_text()).with_context(|| format!("cannot write {}", path.display()))
    }

    fn count(&self, o: Outcome) -> usize {
        self.cells.iter().filter(|r| r.outcome == o).count()
    }

    fn summary(&self) -> String {
        format!(
            "{} cells: {} pass, {} fail, {} unsupported by the tool, {} not run",
            self.cells.len(),
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Unsupported),
            self.count(Outcome::NotRun)
        )
    }

    /// The names of the tools of `role` in the cells, in report order.
    fn names(&self, role: Role) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.cells {
            let n = r.cell.tool(role);
            if !out.iter().any(|o| o == n) {
                out.push(n.to_owned());
            }
        }
        out
    }

    fn find(&self, builder: &str, copier: &str, runner: &str, case: &str) -> Option<&CellResult> {
        self.cells.iter().find(|r| {
            r.cell.builder == builder && r.cell.copier == copier && r.cell.runner == runner && r.cell.case == case
        })
    }

    fn case_names(&self, cases: &[Case]) -> Vec<String> {
        cases
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| self.cells.iter().any(|r| &r.cell.case == n))
            .collect()
    }

    /// The terminal table: rows are cases, columns builder/copier/runner (short names).
    pub fn table(&self, cases: &[Case]) -> String {
        let mut columns: Vec<(String, String, String)> = Vec::new();
        for r in &self.cells {
            let c = (r.cell.builder.clone(), r.cell.copier.clone(), r.cell.runner.clone());
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        let short = |n: &str| match n {
            "buildah" => "bah".to_owned(),
            "berth-build" => "bb".to_owned(),
            "skopeo" => "sko".to_owned(),
            "berth-copy" => "bc".to_owned(),
            "berth-run" => "br".to_owned(),
            "podman" => "pod".to_owned(),
            "ctr-berth-runtime" => "ctr+brt".to_owned(),
            other => other.chars().take(6).collect(),
        };
        let rows = self.case_names(cases);
        let width = rows.iter().map(String::len).max().unwrap_or(4).max(4);
        let mut out = format!("\n{:width$}", "case");
        for (b, c, r) in &columns {
            out += &format!(" {:>14}", format!("{}/{}/{}", short(b), short(c), short(r)));
        }
        out.push('\n');
        for case in &rows {
            out += &format!("{case:width$}");
            for (b, c, r) in &columns {
                let word = self.find(b, c, r, case).map_or("-", |x| x.outcome.word());
                out += &format!(" {word:>14}");
            }
            out.push('\n');
        }
        out += "\ncolumns are builder/copier/runner: bah=buildah bb=berth-build pod=podman sko=skopeo bc=berth-copy \
                br=berth-run ctr+brt=ctr with berth-runtime; n-r = not run, unsup = unsupported by the tool\n";
        out += &self.summary();
        out.push('\n');
        for r in self.cells.iter().filter(|r| r.outcome == Outcome::Fail) {
            out += &format!(
                "FAIL {}: {}\n",
                r.cell.label(),
                r.problems.join("; ").replace('\n', " | ")
            );
        }
        out
    }

    /// `docs/conformance.md`: the tools and host, then per case a grid (rows builder × copier, columns runner);
    /// every failure links to its details.
    pub fn markdown(&self, cases: &[Case]) -> String {
        let mut md = String::from(
            "# Conformance matrix\n\n\
             <!-- Generated by `cargo xtask conformance`; do not edit. -->\n\n\
             Each case in `conformance/cases/` (see [what each case proves](conformance-cases.md)) is built by a \
             builder, copied to a local registry and back by a copier, and run by a runner; every tool is driven \
             through its adapter in `conformance/adapters/`. A cell passes when the run's stdout and exit code, the \
             image config, the manifest annotations and the unpacked files all match the case's `expected.json`; \
             for cells whose copier is a Berth tool, what it wrote must also pass `oci-image-tool validate`. \
             *unsupported* marks a tool version that lacks a feature the case needs (the case says which); *not \
             run* a tool that cannot work on this host (its adapter says why). Neither passes nor fails.\n\n",
        );
        md += &format!(
            "Run {} on Linux {} ({}).\n\n| role | tool | version | adapter |\n|---|---|---|---|\n",
            self.date, self.kernel, self.cgroup
        );
        for t in &self.tools {
            md += &format!("| {} | {} | {} | `{}` |\n", t.role.name(), t.name, t.version, t.adapter);
        }
        md += &format!("\n{}.\n", self.summary());
        let (builders, copiers, runners) = (
            self.names(Role::Builder),
            self.names(Role::Copier),
            self.names(Role::Runner),
        );
        let failures: Vec<&CellResult> = self.cells.iter().filter(|r| r.outcome == Outcome::Fail).collect();
        let anchor = |r: &CellResult| {
            failures
                .iter()
                .position(|f| f.cell == r.cell)
                .map(|i| format!("failure-{}", i + 1))
        };
        md += "\n## Cases\n\nRows are builder × copier, columns are runners.\n";
        for case in self.case_names(cases) {
            md += &format!("\n### `{case}`\n\n| builder × copier |");
            for r in &runners {
                md += &format!(" {r} |");
            }
            md += "\n|---|";
            md += &"---|".repeat(runners.len());
            md.push('\n');
            for b in &builders {
                for c in &copiers {
                    if !runners.iter().any(|r| self.find(b, c, r, &case).is_some()) {
                        continue;
                    }
                    md += &format!("| {b} × {c} |");
                    for r in &runners {
                        let word = match self.find(b, c, r, &case) {
                            Some(x) if x.outcome == Outcome::Fail => {
                                format!("[**FAIL**](#{})", anchor(x).unwrap_or_default())
                            }
                            Some(x) if x.outcome == Outcome::Pass => "pass".into(),
                            Some(x) if x.outcome == Outcome::Unsupported => "unsupported".into(),
                            Some(_) => "not run".into(),
                            None => "—".into(),
                        };
                        md += &format!(" {word} |");
                    }
                    md.push('\n');
                }
            }
        }
        md += "\n## Failures\n";
        if failures.is_empty() {
            md += "\nNone.\n";
        }
        for (i, r) in failures.iter().enumerate() {
            md += &format!(
                "\n<a id=\"failure-{}\"></a>\n### {} / {} / {} on `{}`\n\n",
                i + 1,
                r.cell.builder,
                r.cell.copier,
                r.cell.runner,
                r.cell.case
            );
            for p in &r.problems {
                match p.split_once('\n') {
                    Some((head, rest)) => md += &format!("- {head}\n\n  ```diff\n{}\n  ```\n", indent(rest)),
                    None => md += &format!("- {p}\n"),
                }
            }
        }
        for (outcome, title) in [
            (Outcome::Unsupported, "Unsupported by the tool"),
            (Outcome::NotRun, "Not run"),
        ] {
            let mut reasons: Vec<String> = self
                .cells
                .iter()
                .filter(|r| r.outcome == outcome)
                .map(|r| {
                    let who = if outcome == Outcome::Unsupported {
                        format!("`{}`: ", r.cell.case)
                    } else {
                        String::new()
                    };
                    format!("{who}{}", r.problems.join("; "))
                })
                .collect();
            reasons.sort_unstable();
            reasons.dedup();
            if !reasons.is_empty() {
                md += &format!("\n## {title}\n\n");
                for reason in reasons {
                    md += &format!("- {}\n", reason.replace('\n', " "));
                }
            }
        }
        md
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// `docs/conformance-cases.md`: what each case proves and what its cells check, from `expected.json`.
pub fn cases_page(cases: &[Case]) -> String {
    let mut md = String::from(
        "# Conformance cases\n\n\
         <!-- Generated by `cargo xtask conformance` from conformance/cases/*/expected.json; do not edit. -->\n\n\
         Every case is a Containerfile with its context and an `expected.json`; every builder × copier × runner \
         cell of the [matrix](conformance.md) must observe what it expects. How to write one: \
         `conformance/README.md`.\n\n| case | proves | checked |\n|---|---|---|\n",
    );
    for case in cases {
        let e = &case.expected;
        let mut checks = Vec::new();
        if let Some(run) = e.get("run") {
            checks.push(format!(
                "run: stdout ({} line(s)), exit code {}",
                run["stdout"].as_str().unwrap_or_default().lines().count(),
                run["exit_code"].as_i64().unwrap_or(0)
            ));
        }
        let count = |k: &str| e.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
        if count("files") > 0 {
            checks.push(format!("{} file(s)", count("files")));
        }
        if let Some(config) = e.get("config").and_then(Value::as_object) {
            checks.push(format!(
                "config: {}",
                config.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if count("annotations") > 0 {
            checks.push(format!("{} annotation(s)", count("annotations")));
        }
        if let Some(n) = e.get("min_layers").and_then(Value::as_u64) {
            checks.push(format!("at least {n} layers"));
        }
        if let Some(t) = e.get("layer_media_types").and_then(Value::as_array) {
            let types: Vec<&str> = t.iter().filter_map(Value::as_str).collect();
            checks.push(format!("layer media types: {}", types.join(", ")));
        }
        if let Some(p) = e.get("index_platforms").and_then(Value::as_array) {
            let list: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
            checks.push(format!("an index with {}", list.join(", ")));
        }
        if let Some(b) = e.get("build").and_then(Value::as_object) {
            checks.push(format!(
                "build options: {}",
                b.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(u) = e.get("unsupported").and_then(Value::as_object) {
            for (tool, why) in u {
                checks.push(format!("unsupported by {tool}: {}", why.as_str().unwrap_or_default()));
            }
        }
        md += &format!(
            "| [`{}`](../conformance/cases/{}/) | {} | {} |\n",
            case.name,
            case.name,
            e.get("proves")
                .and_then(Value::as_str)
                .unwrap_or("(not described)")
                .replace('|', "\\|"),
            checks.join("; ").replace('|', "\\|")
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(runner: &str) -> Cell {
        Cell {
            builder: "buildah".into(),
            copier: "skopeo".into(),
            runner: runner.into(),
            case: "links".into(),
        }
    }

    #[test]
    fn failures_link_to_details_with_a_diff_and_json_follows_the_schema() {
        let diff = format!(
            "stdout differs (- expected, + seen):\n{}",
            super::super::cases::line_diff("a\n", "b\n")
        );
        let report = Report {
            date: "2026-12-05T00:00:00Z".into(),
            kernel: "6.1".into(),
            cgroup: "cgroup v2 (unified)".into(),
            tools: Vec::new(),
            cells: vec![
                CellResult::new(cell("ctr"), Outcome::Pass, 1.0, Vec::new()),
                CellResult::new(
                    cell("mine"),
                    Outcome::Fail,
                    2.0,
                    vec![diff, "config User: \"x\"".into()],
                ),
                CellResult::new(cell("other"), Outcome::NotRun, 0.0, vec!["other: no cgroup v2".into()]),
            ],
        };
        let case = Case {
            name: "links".into(),
            dir: std::path::PathBuf::from("/nonexistent"),
            expected: serde_json::Map::new(),
        };
        let md = report.markdown(std::slice::from_ref(&case));
        assert!(
            md.contains("| buildah × skopeo | pass | [**FAIL**](#failure-1) | not run |"),
            "{md}"
        );
        assert!(
            md.contains("<a id=\"failure-1\"></a>\n### buildah / skopeo / mine on `links`"),
            "{md}"
        );
        assert!(md.contains("```diff\n  - a\n  + b\n  ```"), "{md}");
        assert!(md.contains("## Not run\n\n- other: no cgroup v2"), "{md}");
        let json = report.json();
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["summary"]["fail"], 1);
        assert_eq!(json["summary"]["not-run"], 1);
        assert_eq!(json["cells"][1]["result"], "fail");
        assert_eq!(json["cells"][1]["problems"][1], "config User: \"x\"");
        let back = CellResult::from_json(&json["cells"][2]).unwrap();
        assert_eq!((back.cell, back.outcome), (cell("other"), Outcome::NotRun));
    }
}
