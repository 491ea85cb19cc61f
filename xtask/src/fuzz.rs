//! `cargo xtask fuzz [--time SECS] [--keep-going] [TARGET...]`: coverage-guided fuzzing of berth-fuzz's
//! targets with libFuzzer, on the stable toolchain.
//!
//! The targets are the files of `crates/berth-fuzz/fuzz_targets/`; why libFuzzer, and why it works on stable,
//! is in berth-fuzz's crate docs. This command does what `cargo fuzz run --sanitizer none` does, without
//! needing cargo-fuzz installed:
//!
//! 1. makes sure a C++ compiler is there (libfuzzer-sys compiles libFuzzer; `g++` is installed with apt if not);
//! 2. builds the binaries in release mode with debug assertions and SanitizerCoverage instrumentation — stable
//!    `-C` flags only — for the host triple given explicitly, so build scripts and proc macros stay
//!    uninstrumented and the normal build's artifacts are untouched;
//! 3. runs each target for `--time` seconds (default [`DEFAULT_SECS`]) on its corpus
//!    (`<target-dir>/fuzz-corpus/TARGET`, kept between runs, seeded by the binary itself), with a per-input
//!    time-out and a resident-memory limit;
//! 4. prints each target's executions, executions per second and findings. A finding is the input libFuzzer
//!    saved under `<target-dir>/fuzz-findings/TARGET/` (`crash-*`, `oom-*`, `timeout-*`); the command then exits
//!    non-zero. libFuzzer's own output goes to `<target-dir>/fuzz-findings/TARGET.log`.
//!
//! A target stops at its first finding unless `--keep-going` is given (libFuzzer's fork mode, which carries on
//! past crashes, time-outs and out-of-memory inputs and saves each).
//!
//! `cargo xtask ci` does not run this: `cargo test` runs every target for a few seconds instead (berth-fuzz's
//! smoke tests).

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail, ensure};

/// Seconds per target when `--time` is not given.
const DEFAULT_SECS: u64 = 60;
/// libFuzzer's per-input time-out, in seconds (the layer target's own bound is 20 s).
const INPUT_TIMEOUT_SECS: u64 = 30;
/// libFuzzer's resident-memory limit (the layer target checks its own, much smaller, growth bound).
const RSS_LIMIT_MB: u64 = 4096;
/// What `cargo fuzz build --sanitizer none` passes to rustc: SanitizerCoverage's inline 8-bit counters, PC
/// table, comparison tracing and stack depth — the feedback libFuzzer needs — plus `cfg(fuzzing)` and debug
/// assertions, so overflows panic. Every flag is a stable `-C` option.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Ccodegen-units=1",
];

const USAGE: &str = "usage: cargo xtask fuzz [--time SECS] [--keep-going] [TARGET...]";

struct Options {
    secs: u64,
    keep_going: bool,
    targets: Vec<String>,
}

/// What one target's run produced.
struct Outcome {
    target: String,
    executions: Option<u64>,
    per_sec: Option<u64>,
    findings: Vec<PathBuf>,
    status: std::process::ExitStatus,
    log: PathBuf,
    bin: PathBuf,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let all = list_targets(&root)?;
    let options = parse(args, &all)?;

    ensure_cxx()?;
    let target_dir = target_dir(&root)?;
    let triple = host_triple()?;
    build(&root, &triple)?;
    let bin_dir = target_dir.join(&triple).join("release");

    let mut outcomes = Vec::new();
    for name in &options.targets {
        println!(
            "\n==> fuzz {name} ({} s{})",
            options.secs,
            if options.keep_going { ", keep going" } else { "" }
        );
        let outcome = fuzz_one(&bin_dir.join(name), name, &target_dir, &options)?;
        report(&outcome);
        outcomes.push(outcome);
    }

    println!("\n{:<12} {:>14} {:>10}  findings", "target", "executions", "exec/s");
    let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    for o in &outcomes {
        println!(
            "{:<12} {:>14} {:>10}  {}",
            o.target,
            show(o.executions),
            show(o.per_sec),
            o.findings.len()
        );
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.findings.is_empty() || !o.status.success())
        .map(|o| o.target.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(
            "findings in {}: each saved input is a bug; turn it into a regression test in berth-fuzz's \
             tests/it/regressions.rs (or the crate at fault) once minimized",
            failed.join(", ")
        )
    }
}

fn parse(args: &[String], all: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        secs: DEFAULT_SECS,
        keep_going: false,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--time" => {
                let v = it
                    .next()
                    .with_context(|| format!("--time needs a number of seconds\n{USAGE}"))?;
                options.secs = v
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .with_context(|| format!("--time {v:?}: expected a positive number of seconds\n{USAGE}"))?;
            }
            "--keep-going" => options.keep_going = true,
            flag if flag.starts_with('-') => bail!("fuzz: unknown option `{flag}`\n{USAGE}"),
            name => {
                ensure!(
                    all.iter().any(|t| t == name),
                    "fuzz: no target `{name}`; the targets are: {}",
                    all.join(", ")
                );
                options.targets.push(name.to_owned());
            }
        }
    }
    if options.targets.is_empty() {
        options.targets = all.to_vec();
    }
    Ok(options)
}

/// The targets: the file stems of `crates/berth-fuzz/fuzz_targets/*.rs`, sorted.
fn list_targets(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("crates/berth-fuzz/fuzz_targets");
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem()
        {
            names.push(stem.to_string_lossy().into_owned());
        }
    }
    names.sort();
    ensure!(!names.is_empty(), "no fuzz targets in {}", dir.display());
    Ok(names)
}

/// libfuzzer-sys compiles libFuzzer's C++ sources with the `cc` crate.
fn ensure_cxx() -> anyhow::Result<()> {
    let found = Command::new("c++")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("no C++ compiler (libFuzzer is C++); installing g++");
        crate::packages::ensure_installed(&["g++"])?;
    }
    Ok(())
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR` and cargo configuration).
pub(crate) fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(crate::cargo())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("could not start cargo metadata")?;
    ensure!(out.status.success(), "cargo metadata failed ({})", out.status);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let dir = v["target_directory"]
        .as_str()
        .context("cargo metadata gave no target_directory")?;
    Ok(PathBuf::from(dir))
}

fn host_triple() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .context("could not start rustc")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV printed no host triple")
}

fn build(root: &Path, triple: &str) -> anyhow::Result<()> {
    let mut flags: Vec<String> = RUSTFLAGS.iter().map(|s| (*s).to_owned()).collect();
    if let Ok(extra) = std::env::var("RUSTFLAGS") {
        flags.extend(extra.split_whitespace().map(str::to_owned));
    }
    let args = [
        "build",
        "--release",
        "-p",
        "berth-fuzz",
        "--features",
        "libfuzzer",
        "--bins",
        "--target",
        triple,
    ];
    println!("$ RUSTFLAGS=\"{}\" cargo {}", flags.join(" "), args.join(" "));
    let status = Command::new(crate::cargo())
        .args(args)
        .current_dir(root)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", flags.join(" "))
        .status()
        .context("could not start cargo")?;
    ensure!(status.success(), "building the fuzz targets failed ({status})");
    Ok(())
}

fn fuzz_one(bin: &Path, name: &str, target_dir: &Path, options: &Options) -> anyhow::Result<Outcome> {
    let corpus = target_dir.join("fuzz-corpus").join(name);
    let findings = target_dir.join("fuzz-findings").join(name);
    fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    fs::create_dir_all(&findings).with_context(|| format!("creating {}", findings.display()))?;
    let before = list_findings(&findings)?;
    let log = target_dir.join("fuzz-findings").join(format!("{name}.log"));

    let mut args: Vec<OsString> = vec![
        corpus.into_os_string(),
        prefixed("-artifact_prefix=", &format!("{}/", findings.display())),
        format!("-max_total_time={}", options.secs).into(),
        format!("-timeout={INPUT_TIMEOUT_SECS}").into(),
        format!("-rss_limit_mb={RSS_LIMIT_MB}").into(),
        "-print_final_stats=1".into(),
    ];
    if options.keep_going {
        args.extend(["-fork=1", "-ignore_crashes=1", "-ignore_ooms=1", "-ignore_timeouts=1"].map(OsString::from));
    }
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let started = Instant::now();
    let status = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("could not start {}", bin.display()))?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    let (executions, per_sec) = stats(&text, started.elapsed().as_secs());
    let after = list_findings(&findings)?;
    Ok(Outcome {
        target: name.to_owned(),
        executions,
        per_sec,
        findings: after.into_iter().filter(|f| !before.contains(f)).collect(),
        status,
        log,
        bin: bin.to_owned(),
    })
}

fn prefixed(flag: &str, value: &str) -> OsString {
    let mut s = OsString::from(flag);
    s.push(value);
    s
}

/// The inputs libFuzzer saved as findings (slow-unit files are reports, not failures).
fn list_findings(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ["crash-", "oom-", "timeout-", "leak-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Executions and executions per second from libFuzzer's output: its final statistics, or (in fork mode,
/// which prints none) its last status line `#N: cov: … exec/s: R …`.
fn stats(log: &str, secs: u64) -> (Option<u64>, Option<u64>) {
    let stat = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(n) = stat("stat::number_of_executed_units:") {
        return (Some(n), stat("stat::average_exec_per_sec:").or(Some(n / secs.max(1))));
    }
    let last = log.lines().rev().find(|l| l.starts_with('#') && l.contains("exec/s:"));
    let Some(line) = last else { return (None, None) };
    let count = line[1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse::<u64>().ok());
    let rate = line
        .split("exec/s:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse::<u64>().ok());
    (count, rate.or(count.map(|n| n / secs.max(1))))
}

fn report(o: &Outcome) {
    let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    println!(
        "<== {}: {} executions, {} exec/s, {} findings; exit {} (log: {})",
        o.target,
        show(o.executions),
        show(o.per_sec),
        o.findings.len(),
        o.status,
        o.log.display()
    );
    // In --keep-going mode one bug can leave hundreds of inputs: list a few.
    const LISTED: usize = 10;
    for f in o.findings.iter().take(LISTED) {
        println!("    finding: {}", f.display());
    }
    if o.findings.len() > LISTED {
        println!(
            "    … and {} more in {}",
            o.findings.len() - LISTED,
            o.findings[0].parent().unwrap_or(Path::new("")).display()
        );
    }
    if let Some(first) = o.findings.first() {
        // Replaying one input prints the panic (fork mode keeps the children's output out of the log).
        let replay = Command::new(&o.bin)
            .arg(first)
            .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
            .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
            .stdin(Stdio::null())
            .output();
        if let Ok(out) = replay {
            let text = String::from_utf8_lossy(&out.stderr);
            let mut lines = text.lines().skip_while(|l| !l.contains("panicked at")).take(3);
            if let Some(at) = lines.next() {
                println!("    {}: {at}", first.file_name().unwrap_or_default().to_string_lossy());
                for l in lines.take_while(|l| !l.starts_with("stack backtrace") && !l.starts_with("note:")) {
                    println!("      {l}");
                }
            } else if let Some(l) = text
                .lines()
                .find(|l| l.starts_with("==") || l.contains("out-of-memory"))
            {
                println!("    {}: {l}", first.file_name().unwrap_or_default().to_string_lossy());
            }
        }
        println!(
            "    reproduce: {} FILE; minimize: {} -minimize_crash=1 -runs=100000 FILE",
            o.bin.display(),
            o.bin.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_from_final_statistics_and_from_fork_mode() {
        let plain = "#1024\tpulse  cov: 10 exec/s: 50\nstat::number_of_executed_units: 123456\n\
                     stat::average_exec_per_sec:     2057\n";
        assert_eq!(stats(plain, 60), (Some(123456), Some(2057)));
        let fork = "#2000: cov: 1 ft: 2 corp: 3 exec/s: 40 oom/timeout/crash: 0/0/0 time: 5s job: 1\n\
                    #9000: cov: 1 ft: 2 corp: 3 exec/s: 150 oom/timeout/crash: 0/0/1 time: 60s job: 4\n";
        assert_eq!(stats(fork, 60), (Some(9000), Some(150)));
        assert_eq!(stats("nothing", 60), (None, None));
    }

    #[test]
    fn every_target_file_is_a_binary_of_berth_fuzz() {
        let root = crate::workspace_root();
        let manifest = fs::read_to_string(root.join("crates/berth-fuzz/Cargo.toml")).unwrap();
        for name in list_targets(&root).unwrap() {
            assert!(
                manifest.contains(&format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"")),
                "fuzz_targets/{name}.rs has no [[bin]] in berth-fuzz's Cargo.toml"
            );
        }
    }
}
