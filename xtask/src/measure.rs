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

/// The fastest of [`RUNS`] runs of each of `fs`, measured in rounds: every round runs each once, starting one
/// further along each time. A slow spell of the machine (disk writeback, a noisy neighbour) then falls on all of
/// them alike instead of on whichever ran during it.
pub fn best_each(fs: &mut [&mut dyn FnMut() -> Result<Duration>]) -> Result<Vec<Duration>> {
    let mut best = vec![Duration::MAX; fs.len()];
    for round in 0..RUNS {
        for k in 0..fs.len() {
            let i = (round + k) % fs.len();
            best[i] = best[i].min(fs[i]()?);
        }
    }
    Ok(best)
}

/// The median of `runs` runs of each of `fs`, taken in rounds that rotate the order like [`best_each`]. For
/// workloads whose best run flatters (a cache or a quiet moment helps one run of several).
pub fn median_each(fs: &mut [&mut dyn FnMut() -> Result<Duration>], runs: usize) -> Result<Vec<Duration>> {
    let mut times = vec![Vec::with_capacity(runs); fs.len()];
    for round in 0..runs {
        for k in 0..fs.len() {
            let i = (round + k) % fs.len();
            times[i].push(fs[i]()?);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect())
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

/// Runs a command (stdout discarded) and returns its wall time and its peak resident memory in bytes (the
/// kernel's `ru_maxrss` of that process alone, from `wait4`).
#[allow(unsafe_code)]
pub fn sh_peak(cmd: &mut Command) -> Result<(Duration, u64)> {
    use std::io::Read;
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let pid = libc::pid_t::try_from(child.id()).context("pid")?;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills; the child is ours and not waited for elsewhere.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    ensure!(r == pid, "waiting for {cmd:?}: {}", std::io::Error::last_os_error());
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: {err}"
    );
    Ok((elapsed, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024))
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

/// One benchmark row: Berth, its peer (if any) and the floor (if any), with the issue's target.
pub struct Measured {
    pub what: &'static str,
    pub berth: Duration,
    pub peer: Option<(&'static str, Duration)>,
    pub floor: Option<(&'static str, Duration)>,
    pub target: &'static str,
}

/// Prints the rows as a table (stdout, or stderr with `json`) and, with `json`, as JSON on stdout; writes them into
/// docs/benchmarks.md with a chart ([`crate::publish`]).
pub fn report(bench: &str, rows: &[Measured], bytes: u64, note: &str, json: bool) {
    // Sub-second workloads (container starts) in milliseconds, the rest in seconds.
    let all = rows
        .iter()
        .flat_map(|r| [Some(r.berth), r.peer.map(|p| p.1), r.floor.map(|f| f.1)])
        .flatten();
    let ms = all.clone().count() > 0 && all.clone().all(|d| d < Duration::from_secs(1));
    let (unit, scale, places) = if ms { ("ms", 1000.0, 1) } else { ("s", 1.0, 2) };
    let show = |d: Duration| format!("{:.places$}", d.as_secs_f64() * scale);
    let mut table = String::new();
    table.push_str(&format!(
        "{:<20} {:>9} {:>14} {:>9} {:>8} {:>12} {:>9} {:>8}  target\n",
        "workload",
        format!("berth {unit}"),
        "peer",
        format!("peer {unit}"),
        "÷peer",
        "floor",
        format!("floor {unit}"),
        "÷floor"
    ));
    let mut out = Vec::new();
    for r in rows {
        let b = r.berth.as_secs_f64();
        let (pn, ps, pr) = match r.peer {
            Some((n, d)) => (n, show(d), format!("{:.2}x", b / d.as_secs_f64())),
            None => ("-", "-".into(), "-".into()),
        };
        let (fname, fs, fr) = match r.floor {
            Some((n, d)) => (n, show(d), format!("{:.2}x", b / d.as_secs_f64())),
            None => ("-", "-".into(), "-".into()),
        };
        table.push_str(&format!(
            "{:<20} {:>9} {:>14} {:>9} {:>8} {:>12} {:>9} {:>8}  {}\n",
            r.what,
            show(r.berth),
            pn,
            ps,
            pr,
            fname,
            fs,
            fr,
            r.target
        ));
        out.push(format!(
            r#"{{"workload":"{}","berth_s":{b:.4},"peer":{},"peer_s":{},"floor":{},"floor_s":{}}}"#,
            r.what,
            r.peer.map_or("null".into(), |(n, _)| format!("\"{n}\"")),
            r.peer.map_or("null".into(), |(_, d)| format!("{:.4}", d.as_secs_f64())),
            r.floor.map_or("null".into(), |(n, _)| format!("\"{n}\"")),
            r.floor
                .map_or("null".into(), |(_, d)| format!("{:.4}", d.as_secs_f64())),
        ));
    }
    table.push_str(&format!(
        "(times are wall {}, best of {RUNS} unless a row says otherwise; ratios are Berth's time over the \
         other's: below 1 is faster; {note})\n",
        if ms { "milliseconds" } else { "seconds" }
    ));
    if let Err(e) = crate::publish::publish(&crate::workspace_root(), bench, rows, note) {
        eprintln!("warning: docs/benchmarks.md not written: {e:#}");
    }
    if json {
        eprint!("{table}");
        println!(
            r#"{{"bench":"{bench}","input_bytes":{bytes},"rows":[{}]}}"#,
            out.join(",")
        );
    } else {
        print!("{table}");
    }
}
