//! `cargo xtask ci`: what CI runs, and what a newcomer runs to check a fresh machine.
//!
//! Steps, each with a header and its wall time:
//! 1. packages — install the Debian packages the tests use, if missing (skipped by `--no-install`);
//! 2. fmt      — `cargo fmt --all -- --check`;
//! 3. clippy   — `cargo clippy --workspace --all-targets -- -D warnings`;
//! 4. test     — `cargo test --workspace --no-fail-fast`, streamed live and captured, then summarized;
//! 5. demo, the conformance self-test and matrix, and dist (the release archive, used on a bare minbase root).
//!
//! A failing fmt or clippy step does not stop the tests from running: one CI run reports everything.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::packages;

/// A step that runs after the packages: it fails, or it does not.
type Check = fn() -> anyhow::Result<()>;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut install = true;
    let mut only_packages = false;
    for arg in args {
        match arg.as_str() {
            "--no-install" => install = false,
            // Hidden: run the package step alone (to check a machine without running the suite).
            "--only-packages" => only_packages = true,
            other => bail!("ci: unknown argument `{other}` (usage: cargo xtask ci [--no-install])"),
        }
    }

    let started = Instant::now();
    let mut failed: Vec<&str> = Vec::new();
    if install || only_packages {
        step("packages", || packages::ensure_installed(packages::TEST_PACKAGES))?;
    }
    if only_packages {
        return Ok(());
    }
    let checks: [(&str, Check); 7] = [
        ("fmt", fmt),
        ("clippy", clippy),
        ("test", test_suite),
        ("demo", demo),
        ("conformance self-test", conformance_self_test),
        ("conformance", conformance),
        ("dist", dist),
    ];
    for (name, check) in checks {
        if step(name, check).is_err() {
            failed.push(name);
        }
    }

    println!(
        "\n==> ci: {} in {:.1}s",
        if failed.is_empty() { "ok" } else { "FAILED" },
        secs(started)
    );
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("ci failed: {}", failed.join(", "))
    }
}

/// The interop matrix (`cargo xtask conformance`): every builder x copier x runner cell.
fn conformance() -> anyhow::Result<()> {
    crate::conformance::run(&[])
}

/// The release archive, used on a bare debootstrap minbase root (`cargo xtask dist --check`).
fn dist() -> anyhow::Result<()> {
    crate::dist::run(&["--check".to_owned()])
}

/// The README's first command, as a new user runs it (the packages are installed already).
fn demo() -> anyhow::Result<()> {
    crate::demo::run(&["--no-install".to_owned()])
}

/// The harness's own check: a deliberately broken adapter fails its own cells and no other.
fn conformance_self_test() -> anyhow::Result<()> {
    crate::conformance::run(&["--self-test".to_owned()])
}

/// Runs one step between a header and a footer with its wall time; an error is printed here and returned.
fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    println!("\n==> {name}");
    let started = Instant::now();
    let result = f();
    match &result {
        Ok(()) => println!("<== {name}: ok ({:.1}s)", secs(started)),
        Err(e) => println!("<== {name}: FAILED ({:.1}s): {e:#}", secs(started)),
    }
    result
}

fn fmt() -> anyhow::Result<()> {
    cargo_checked(&["fmt", "--all", "--", "--check"])
}

fn clippy() -> anyhow::Result<()> {
    cargo_checked(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
}

fn cargo_checked(args: &[&str]) -> anyhow::Result<()> {
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(crate::cargo())
        .args(args)
        .current_dir(crate::workspace_root())
        .status()
        .context("could not start cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// One captured line and the order in which it was read, across both pipes.
struct Line {
    seq: u64,
    text: String,
}

fn test_suite() -> anyhow::Result<()> {
    let args = ["test", "--workspace", "--no-fail-fast"];
    println!("$ cargo {}", args.join(" "));
    let mut child = Command::new(crate::cargo())
        .args(args)
        .current_dir(crate::workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start cargo")?;

    // Cargo writes `Running <binary>` to stderr and the test binary writes `test result:` to stdout, so the two
    // pipes are read by two threads that stamp each line from one counter: a result belongs to the latest
    // `Running` line read before it. Cargo prints `Running` before it spawns the binary, so a reader would have to
    // lag by a whole process start for a pairing to go wrong.
    let captured = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out = tee(stdout, io::stdout(), Arc::clone(&captured), Arc::clone(&counter));
    let err = tee(stderr, io::stderr(), Arc::clone(&captured), Arc::clone(&counter));
    let status = child.wait().context("waiting for cargo test")?;
    out.join()
        .expect("stdout reader panicked")
        .context("reading cargo test's stdout")?;
    err.join()
        .expect("stderr reader panicked")
        .context("reading cargo test's stderr")?;

    let mut lines = std::mem::take(&mut *captured.lock().expect("no reader panicked"));
    lines.sort_by_key(|l| l.seq);
    let summary = Summary::from_lines(lines.iter().map(|l| l.text.as_str()));
    summary.print();

    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    if summary.failed > 0 {
        bail!("{} tests failed", summary.failed);
    }
    Ok(())
}

/// Copies `source` to `sink` line by line as it arrives, keeping a copy of every line.
fn tee<R, W>(
    source: R,
    mut sink: W,
    captured: Arc<Mutex<Vec<Line>>>,
    counter: Arc<AtomicU64>,
) -> thread::JoinHandle<io::Result<()>>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                return Ok(());
            }
            let seq = counter.fetch_add(1, Ordering::SeqCst);
            sink.write_all(&buf)?;
            sink.flush()?;
            let text = String::from_utf8_lossy(&buf).trim_end().to_owned();
            captured.lock().expect("no reader panicked").push(Line { seq, text });
        }
    })
}

/// What the summary block reports: each test binary with its result line, and totals.
#[derive(Debug, Default)]
struct Summary {
    /// (`Running ...` or `Doc-tests ...` line, its `test result:` line if it printed one).
    binaries: Vec<(String, Option<String>)>,
    /// Cargo's closing `error: N targets failed:` block, if any.
    errors: Vec<String>,
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Summary {
    fn from_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Self {
        let mut summary = Summary::default();
        let mut in_failed_targets = false;
        for line in lines {
            let trimmed = line.trim();
            if trimmed.starts_with("Running ") || trimmed.starts_with("Doc-tests ") {
                summary.binaries.push((trimmed.to_owned(), None));
            } else if let Some(counts) = trimmed.strip_prefix("test result: ") {
                summary.passed += count(counts, "passed");
                summary.failed += count(counts, "failed");
                summary.ignored += count(counts, "ignored");
                match summary.binaries.last_mut() {
                    Some((_, result @ None)) => *result = Some(trimmed.to_owned()),
                    _ => summary
                        .binaries
                        .push(("(unknown test binary)".to_owned(), Some(trimmed.to_owned()))),
                }
            } else if trimmed.starts_with("error: ") && trimmed.contains("failed") {
                in_failed_targets = true;
                summary.errors.push(trimmed.to_owned());
            } else if in_failed_targets && line.starts_with(char::is_whitespace) && !trimmed.is_empty() {
                summary.errors.push(format!("    {trimmed}"));
            } else {
                in_failed_targets = false;
            }
        }
        summary
    }

    fn print(&self) {
        println!("\n==> test summary");
        for (binary, result) in &self.binaries {
            println!("  {binary}");
            match result {
                Some(result) => println!("      {result}"),
                None => println!("      (no `test result:` line: the binary crashed, or it is not a libtest harness)"),
            }
        }
        for error in &self.errors {
            println!("  {error}");
        }
        println!(
            "  total: {} passed; {} failed; {} ignored ({} test binaries)",
            self.passed,
            self.failed,
            self.ignored,
            self.binaries.len()
        );
    }
}

/// The number before `word` in `ok. 5 passed; 0 failed; 1 ignored; ...`.
fn count(counts: &str, word: &str) -> u64 {
    counts
        .split(';')
        .filter_map(|part| {
            let mut words = part.split_whitespace().rev();
            let (last, number) = (words.next()?, words.next()?);
            (last == word).then(|| number.parse::<u64>().ok()).flatten()
        })
        .sum()
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_pairs_results_with_binaries_and_totals() {
        let log = "\
   Compiling berth-spec v0.1.0
     Running unittests src/lib.rs (target/debug/deps/berth_spec-0123)

running 3 tests
test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/crash.rs (target/debug/deps/crash-4567)
     Running tests/interop.rs (target/debug/deps/interop-89ab)
test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s

   Doc-tests berth_spec
test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.30s
error: 2 targets failed:
    `-p berth-spec --test crash`
    `-p berth-spec --test interop`
";
        let s = Summary::from_lines(log.lines());
        assert_eq!((s.passed, s.failed, s.ignored), (8, 2, 1));
        assert_eq!(s.binaries.len(), 4);
        assert!(s.binaries[1].0.contains("crash") && s.binaries[1].1.is_none());
        assert!(s.binaries[2].1.as_deref().unwrap().contains("2 failed"));
        assert_eq!(s.errors.len(), 3);
    }
}
