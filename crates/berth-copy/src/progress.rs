//! Progress reporting: the library calls a [`Progress`]; the binary decides how it looks (bars on a TTY, plain
//! periodic lines otherwise, nothing with `--quiet`). Progress never goes to stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_spec::Digest;

/// How a blob ended up at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Bytes were transferred.
    Copied,
    /// The destination already had it.
    Skipped,
    /// Mounted from another repository of the same registry: no bytes sent.
    Mounted,
}

/// Receives progress events. Implementations must be cheap: `advance` is called per chunk.
pub trait Progress: Send + Sync {
    /// A blob transfer starts.
    fn start(&self, digest: &Digest, size: u64, what: &str);
    /// `bytes` more bytes of `digest` moved.
    fn advance(&self, digest: &Digest, bytes: u64);
    /// The blob is done.
    fn done(&self, digest: &Digest, outcome: Outcome);
    /// A one-line message (e.g. "Writing manifest").
    fn message(&self, text: &str);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &Digest, _: u64, _: &str) {}
    fn advance(&self, _: &Digest, _: u64) {}
    fn done(&self, _: &Digest, _: Outcome) {}
    fn message(&self, _: &str) {}
}

struct Blob {
    size: u64,
    done: u64,
    what: String,
    last_line: Instant,
}

/// Progress on stderr: redrawn bars on a terminal, plain lines (start, every 5 s, end) otherwise.
pub struct Stderr {
    tty: bool,
    state: Mutex<(BTreeMap<Digest, Blob>, usize, Instant)>,
}

impl std::fmt::Debug for Stderr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stderr {{ tty: {} }}", self.tty)
    }
}

const PERIOD: Duration = Duration::from_secs(5);

fn mb(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

impl Stderr {
    /// Bars when stderr is a terminal (unless `plain`), lines otherwise.
    pub fn new(plain: bool) -> Self {
        use std::io::IsTerminal;
        let tty = !plain && std::io::stderr().is_terminal();
        Stderr {
            tty,
            state: Mutex::new((BTreeMap::new(), 0, Instant::now())),
        }
    }

    fn bar(d: &Digest, b: &Blob) -> String {
        let width = 30;
        let frac = if b.size == 0 {
            1.0
        } else {
            b.done as f64 / b.size as f64
        };
        let filled = ((frac * width as f64) as usize).min(width);
        format!(
            "{} {} [{}{}] {} / {}",
            b.what,
            d.short(),
            "=".repeat(filled),
            " ".repeat(width - filled),
            mb(b.done),
            mb(b.size)
        )
    }

    fn redraw(&self, state: &mut (BTreeMap<Digest, Blob>, usize, Instant)) {
        let mut err = std::io::stderr().lock();
        // Move up over the lines drawn last time, then draw the active blobs.
        if state.1 > 0 {
            let _ = write!(err, "\x1b[{}A", state.1);
        }
        for (d, b) in &state.0 {
            let _ = writeln!(err, "\x1b[2K{}", Self::bar(d, b));
        }
        state.1 = state.0.len();
        state.2 = Instant::now();
    }
}

impl Progress for Stderr {
    fn start(&self, digest: &Digest, size: u64, what: &str) {
        let mut s = self.state.lock().expect("progress lock");
        s.0.insert(
            digest.clone(),
            Blob {
                size,
                done: 0,
                what: what.to_owned(),
                last_line: Instant::now(),
            },
        );
        if self.tty {
            self.redraw(&mut s);
        } else {
            eprintln!("{what} blob {} ({})", digest.short(), mb(size));
        }
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        let mut s = self.state.lock().expect("progress lock");
        let tty = self.tty;
        let Some(b) = s.0.get_mut(digest) else { return };
        b.done += bytes;
        if !tty && b.last_line.elapsed() >= PERIOD {
            b.last_line = Instant::now();
            eprintln!("  {} {} / {}", digest.short(), mb(b.done), mb(b.size));
        }
        if tty && s.2.elapsed() >= Duration::from_millis(100) {
            self.redraw(&mut s);
        }
    }

    fn done(&self, digest: &Digest, outcome: Outcome) {
        let mut s = self.state.lock().expect("progress lock");
        let b = s.0.remove(digest);
        let word = match outcome {
            Outcome::Copied => "done",
            Outcome::Skipped => "already present",
            Outcome::Mounted => "mounted",
        };
        if self.tty {
            self.redraw(&mut s);
            // Print the finished line above the live area.
            let size = b.map_or(0, |b| b.size);
            let mut err = std::io::stderr().lock();
            if s.1 > 0 {
                let _ = write!(err, "\x1b[{}A", s.1);
            }
            let _ = writeln!(err, "\x1b[2Kblob {} {word} ({})", digest.short(), mb(size));
            drop(err);
            s.1 = 0;
            self.redraw(&mut s);
        } else {
            eprintln!("  {} {word}", digest.short());
        }
    }

    fn message(&self, text: &str) {
        let mut s = self.state.lock().expect("progress lock");
        if self.tty && s.1 > 0 {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\x1b[{}A", s.1);
            let _ = writeln!(err, "\x1b[2K{text}");
            drop(err);
            s.1 = 0;
            self.redraw(&mut s);
        } else {
            eprintln!("{text}");
        }
    }
}
