//! Timing helpers shared by the side-by-side benchmarks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

/// Repetitions per measurement; the best (fastest) counts.
pub const RUNS: usize = 3;

/// The fastest of [`RUNS`] runs of `f`.
pub fn best(mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        best = best.min(f()?);
    }
    Ok(best)
}

/// Runs a command (stdout discarded) and returns its wall time; fails with its stderr.
pub fn sh(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(start.elapsed())
}

/// Runs a command with stdout into `out` and returns its wall time.
pub fn sh_to(cmd: &mut Command, out: &Path) -> Result<Duration> {
    let file = std::fs::File::create(out)?;
    let start = Instant::now();
    let o = cmd
        .stdout(file)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    ensure!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(start.elapsed())
}

/// Lets the file system finish background work (writeback, block freeing of deleted trees) so that it is not
/// billed to the next timed run; on this kind of VM, inode creation right after such work is several times slower.
pub fn settle() -> Result<()> {
    sh(&mut Command::new("sync"))?;
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}

/// Whether `tool` is on PATH.
pub fn which(tool: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join(tool).is_file())
}
