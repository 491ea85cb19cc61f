//! The matrix's results: the terminal table, `target/conformance/report.json` and `docs/conformance.md`.
//!
//! A run with `--only` merges its cells into the previous report, so the published table stays whole.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Filter;
use super::cases::Case;
use super::cells::{Builder, Cell, Copier, Runner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    NotImplemented,
    /// The tool's version lacks a feature the case needs (the case says which): neither pass nor fail.
    Unsupported,
}

impl Outcome {
    /// The word in report.json.
    fn json(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NotImplemented => "not-implemented",
            Outcome::Unsupported => "unsupported",
        }
    }

    /// The word in tables.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::NotImplemented => "n-i",
            Outcome::Unsupported => "unsup",
        }
    }
}

/// One cell's result. `seconds` counts the cell's share of the work as if it ran alone: the build, the copies and
/// checks of its (builder, case, copier), and its own run.
#[derive(Debug, Clone)]
pub struct CellResult {
    pub cell: Cell,
    pub outcome: Outcome,
    pub seconds: f64,
    pub reason: String,
}

impl CellResult {
    pub fn new(cell: Cell, outcome: Outcome, seconds: f64, reason: impl Into<String>) -> Self {
        CellResult {
            cell,
            outcome,
            seconds,
            reason: reason.into(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "builder": self.cell.builder.name(),
            "copier": self.cell.copier.name(),
            "runner": self.cell.runner.name(),
            "case": self.cell.case,
            "result": self.outcome.json(),
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "reason": self.reason,
        })
    }

    fn from_json(v: &Value) -> Option<CellResult> {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let find = |k: &str| s(k).map(str::to_owned);
        let builder = *Builder::ALL.iter().find(|t| Some(t.name()) == s("builder"))?;
        let copier = *Copier::ALL.iter().find(|t| Some(t.name()) == s("copier"))?;
        let runner = *Runner::ALL.iter().find(|t| Some(t.name()) == s("runner"))?;
        let outcome = [
            Outcome::Pass,
            Outcome::Fail,
            Outcome::NotImplemented,
            Outcome::Unsupported,
        ]
        .into_iter()
        .find(|o| Some(o.json()) == s("result"))?;
        Some(CellResult {
            cell: Cell {
                builder,
                copier,
                runner,
                case: find("case")?,
            },
            outcome,
            seconds: v.get("seconds").and_then(Value::as_f64).unwrap_or(0.0),
            reason: find("reason").unwrap_or_default(),
        })
    }
}

/// The results of this run, plus (when `--only` narrowed it) the previous report's other cells of cases that
/// still exist.
pub fn merge(previous: &Path, fresh: Vec<CellResult>, filter: &Filter, cases: &[Case]) -> Result<Vec<CellResult>> {
    let mut all = fresh;
    if !filter.is_empty()
        && let Ok(bytes) = fs::read(previous)
        && let Ok(old) = serde_json::from_slice::<Value>(&bytes)
    {
        let kept = old["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(CellResult::from_json)
            .filter(|o| cases.iter().any(|c| c.name == o.cell.case))
            .filter(|o| !all.iter().any(|n| n.cell == o.cell))
            .collect::<Vec<_>>();
        all.extend(kept);
    }
    all.sort_by_key(|r| order(&r.cell));
    Ok(all)
}

fn order(cell: &Cell) -> (usize, usize, usize, String) {
    let pos = |names: Vec<&str>, n: &str| names.iter().position(|x| *x == n).unwrap_or(usize::MAX);
    (
        pos(Builder::ALL.iter().map(|t| t.name()).collect(), cell.builder.name()),
        pos(Copier::ALL.iter().map(|t| t.name()).collect(), cell.copier.name()),
        pos(Runner::ALL.iter().map(|t| t.name()).collect(), cell.runner.name()),
        cell.case.clone(),
    )
}

pub fn write_json(path: &Path, results: &[CellResult]) -> Result<()> {
    fs::create_dir_all(path.parent().expect("has a parent"))?;
    let cells: Vec<Value> = results.iter().map(CellResult::to_json).collect();
    let text = serde_json::to_string_pretty(&json!({ "cells": cells }))? + "\n";
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Columns (builder/copier/runner) in matrix order, and case names, of the results.
fn axes(results: &[CellResult], cases: &[Case]) -> (Vec<String>, Vec<String>) {
    let mut columns: Vec<String> = Vec::new();
    for r in results {
        if !columns.contains(&r.cell.column()) {
            columns.push(r.cell.column());
        }
    }
    let mut rows: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
    rows.retain(|name| results.iter().any(|r| &r.cell.case == name));
    (columns, rows)
}

fn lookup<'r>(results: &'r [CellResult], column: &str, case: &str) -> Option<&'r CellResult> {
    results
        .iter()
        .find(|r| r.cell.column() == column && r.cell.case == case)
}

/// The terminal table: rows are cases, columns are cells, with short tool names.
pub fn table(results: &[CellResult], cases: &[Case]) -> String {
    let short = |column: &str| {
        column
            .split('/')
            .map(|t| match t {
                "buildah" => "bah",
                "berth-build" => "bb",
                "skopeo" => "sko",
                "berth-copy" => "bc",
                "berth-run" => "br",
                other => other,
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let (columns, rows) = axes(results, cases);
    let width = rows.iter().map(String::len).max().unwrap_or(4).max(4);
    let mut out = format!("\n{:width$}", "case");
    for c in &columns {
        out += &format!(" {:>12}", short(c));
    }
    out.push('\n');
    for case in &rows {
        out += &format!("{case:width$}");
        for c in &columns {
            let word = lookup(results, c, case).map_or("-", |r| r.outcome.word());
            out += &format!(" {word:>12}");
        }
        out.push('\n');
    }
    out += "\ncolumns are builder/copier/runner: bah=buildah bb=berth-build sko=skopeo bc=berth-copy br=berth-run\n";
    out += &summary(results);
    out
}

fn summary(results: &[CellResult]) -> String {
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    format!(
        "{} cells: {} pass, {} fail, {} unsupported by the tool, {} not implemented\n",
        results.len(),
        count(Outcome::Pass),
        count(Outcome::Fail),
        count(Outcome::Unsupported),
        count(Outcome::NotImplemented)
    )
}

/// `docs/conformance.md`: an introduction, the table and every failure with its reason.
pub fn markdown(results: &[CellResult], cases: &[Case]) -> String {
    let (columns, rows) = axes(results, cases);
    let mut md = String::from(
        "# Conformance matrix\n\n\
         <!-- Generated by `cargo xtask conformance` from target/conformance/report.json; do not edit. -->\n\n\
         Each case in `conformance/cases/` is built by a builder (buildah or berth-build), copied to a local \
         registry and back by a copier (skopeo or berth-copy), and run by a runner (containerd's `ctr`, runc on a \
         bundle from `umoci unpack`, crun on the same bundle where the host's cgroups allow it, or berth-run). \
         A cell passes when the run's stdout and exit code, the image \
         config fields, the manifest annotations and the unpacked files all match the case's `expected.json`; \
         for cells whose copier is berth-copy, the index, manifest and config it wrote must also pass \
         `oci-image-tool validate`. \"not implemented\" marks tools that cannot take part yet; such a cell never \
         passes.\n\nColumns are builder / copier / runner.\n\n| case |",
    );
    for c in &columns {
        md += &format!(" {} |", c.replace('/', " / "));
    }
    md += "\n|---|";
    md += &"---|".repeat(columns.len());
    md.push('\n');
    for case in &rows {
        md += &format!("| `{case}` |");
        for c in &columns {
            let word = match lookup(results, c, case).map(|r| r.outcome) {
                Some(Outcome::Pass) => "pass",
                Some(Outcome::Fail) => "**FAIL**",
                Some(Outcome::NotImplemented) => "not implemented",
                Some(Outcome::Unsupported) => "unsupported by tool",
                None => "—",
            };
            md += &format!(" {word} |");
        }
        md.push('\n');
    }
    md += &format!("\n{}", summary(results));
    let failures: Vec<&CellResult> = results.iter().filter(|r| r.outcome == Outcome::Fail).collect();
    md += "\n## Failures\n\n";
    if failures.is_empty() {
        md += "None.\n";
    }
    for r in failures {
        md += &format!(
            "- `{}` on `{}`: {}\n",
            r.cell.column(),
            r.cell.case,
            r.reason.replace('\n', " ")
        );
    }
    let mut unsupported: Vec<String> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Unsupported)
        .map(|r| format!("`{}`: {}", r.cell.case, r.reason))
        .collect();
    unsupported.sort_unstable();
    unsupported.dedup();
    if !unsupported.is_empty() {
        md += "\n## Unsupported by the tool\n\n";
        for reason in unsupported {
            md += &format!("- {reason}\n");
        }
    }
    let mut not_implemented: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome == Outcome::NotImplemented)
        .map(|r| r.reason.as_str())
        .collect();
    not_implemented.sort_unstable();
    not_implemented.dedup();
    if !not_implemented.is_empty() {
        md += "\n## Not implemented\n\n";
        for reason in not_implemented {
            md += &format!("- {reason}\n");
        }
    }
    md
}
