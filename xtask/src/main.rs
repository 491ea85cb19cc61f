//! `cargo xtask`: Berth's project automation.
//!
//! Kept dependency-light on purpose (no argument-parsing crate): every command hand-parses its few flags.
//! `main` only dispatches; each command lives in its own module.
//!
//! - `demo`  — runs the main job on a bundled example ([`demo`]).
//! - `ci`    — installs the Debian packages the tests use, then fmt, clippy and the whole test suite ([`ci`]).
//! - `bench` — side-by-side benchmarks against peers measured in the same run ([`bench`]).
//! - `conformance` — the interop matrix of builders x copiers x runners over `conformance/cases` ([`conformance`]).
//! - `dist`  — the release archive, checked on a bare minbase root ([`dist`]); `docs` — the CLI reference pages.
//! - `fuzz`  — coverage-guided fuzzing of berth-fuzz's targets with libFuzzer, on stable ([`fuzz`]).

mod bench;
mod bench_build;
mod bench_copy;
mod bench_layer;
mod bench_run;
mod bench_runtime;
mod ci;
mod conformance;
mod demo;
mod dist;
mod fuzz;
mod measure;
mod packages;
mod publish;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  demo                run Berth's main job on a bundled example
  ci [--no-install]   install the Debian packages the tests use (unless --no-install), then
                      cargo fmt --check, cargo clippy -D warnings and the whole test suite
  bench [NAME]        side-by-side benchmarks; NAME is one of: floors (default), copy, run, runtime, layer, build
                      options: --json (JSON on stdout, table on stderr), --mib N (input size)
  conformance         the interop matrix (builder x copier x runner over conformance/cases);
                      options: --only KEY=VALUE[,…] (keys: builder, copier, runner, case), --keep
  dist [--check]      release archive target/dist/berth-VERSION-x86_64-linux.tar.gz (binaries, man pages,
                      completions); --check uses it inside a debootstrap minbase root with nothing installed
  docs                rewrite docs/cli/TOOL.md from each tool's command line
  fuzz [TARGET...]    fuzz the berth-fuzz targets (all by default) with libFuzzer; saves findings
                      under <target-dir>/fuzz-findings/TARGET/ and fails if there are any;
                      options: --time SECS (per target, default 60), --keep-going
  help                print this message
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "demo" => demo::run(rest),
        "dist" => dist::run(rest),
        "docs" => dist::write_docs(rest),
        "ci" => ci::run(rest),
        "bench" => bench::run(rest),
        "conformance" => conformance::run(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("error: unknown command `{other}`\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}

/// The cargo that launched us (`$CARGO`), so toolchain overrides carry through; plain `cargo` otherwise.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds `packages` (`release` or debug, quietly) and returns the directory of their binaries, where cargo put
/// them (`CARGO_TARGET_DIR` or a configured target directory included).
fn cargo_build(root: &std::path::Path, release: bool, packages: &[&str]) -> anyhow::Result<std::path::PathBuf> {
    let mut cmd = std::process::Command::new(cargo());
    cmd.args(["build", "--quiet"]).current_dir(root);
    if release {
        cmd.arg("--release");
    }
    for p in packages {
        cmd.args(["-p", p]);
    }
    let status = anyhow::Context::context(cmd.status(), "cannot run cargo")?;
    anyhow::ensure!(status.success(), "building {} failed ({status})", packages.join(", "));
    Ok(fuzz::target_dir(root)?.join(if release { "release" } else { "debug" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usage text once left out `bench run`: it must name every benchmark there is.
    #[test]
    fn usage_names_every_benchmark() {
        let line = USAGE
            .lines()
            .find(|l| l.trim_start().starts_with("bench [NAME]"))
            .expect("the usage text describes `bench`");
        let (_, listed) = line.split_once("one of: ").expect("the bench line lists its names");
        let listed: Vec<&str> = listed.split(", ").map(|n| n.trim_end_matches(" (default)")).collect();
        let mut known: Vec<&str> = bench::names().collect();
        assert_eq!(listed[0], known[0], "the default comes first");
        known.sort_unstable();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, known, "usage lists {listed:?}");
    }
}
