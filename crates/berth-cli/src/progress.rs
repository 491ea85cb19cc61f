//! Drawing the transfer engine's progress events on stderr.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_spec::Digest;
use berth_transfer::progress::{Outcome, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain (non-terminal) line reports a blob still moving.
const PERIOD: Duration = Duration::from_secs(5);

/// Progress on stderr: one bar per blob on a terminal, plain lines (start, every 5 s, end) otherwise.
#[derive(Debug)]
pub struct Bars {
    multi: Option<MultiProgress>,
    blobs: Mutex<HashMap<Digest, Blob>>,
}

#[derive(Debug)]
struct Blob {
    size: u64,
    done: u64,
    bar: Option<ProgressBar>,
    last_line: Instant,
}

fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

impl Bars {
    /// Bars when stderr is a terminal (unless `plain`), lines otherwise.
    pub fn new(plain: bool) -> Self {
        let target = ProgressDrawTarget::stderr();
        let multi = (!plain && !target.is_hidden()).then(|| MultiProgress::with_draw_target(target));
        Bars {
            multi,
            blobs: Mutex::new(HashMap::new()),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("a valid template")
            .progress_chars("=> ")
    }

    fn line(&self, text: &str) {
        match &self.multi {
            // Printed above the bars, which are redrawn below.
            Some(m) => {
                if m.println(text).is_err() {
                    eprintln!("{text}");
                }
            }
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for Bars {
    fn start(&self, digest: &Digest, size: u64, what: &str) {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(size).with_style(Self::style()));
            bar.set_prefix(format!("{what} {}", digest.short()));
            bar
        });
        if bar.is_none() {
            eprintln!("{what} blob {} ({})", digest.short(), human(size));
        }
        let blob = Blob {
            size,
            done: 0,
            bar,
            last_line: Instant::now(),
        };
        self.blobs.lock().expect("progress lock").insert(digest.clone(), blob);
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        let mut blobs = self.blobs.lock().expect("progress lock");
        let Some(b) = blobs.get_mut(digest) else { return };
        b.done += bytes;
        match &b.bar {
            Some(bar) => bar.inc(bytes),
            None if b.last_line.elapsed() >= PERIOD => {
                b.last_line = Instant::now();
                eprintln!("  {} {} / {}", digest.short(), human(b.done), human(b.size));
            }
            None => {}
        }
    }

    fn done(&self, digest: &Digest, outcome: Outcome) {
        let blob = self.blobs.lock().expect("progress lock").remove(digest);
        let word = match outcome {
            Outcome::Copied => "done",
            Outcome::Skipped => "already present",
            Outcome::Mounted => "mounted",
        };
        match blob.and_then(|b| b.bar.map(|bar| (bar, b.size))) {
            Some((bar, size)) => {
                bar.finish_and_clear();
                if let Some(m) = &self.multi {
                    m.remove(&bar);
                }
                self.line(&format!("blob {} {word} ({})", digest.short(), human(size)));
            }
            None => eprintln!("  {} {word}", digest.short()),
        }
    }

    fn message(&self, text: &str) {
        self.line(text);
    }
}

/// Layer extraction (unpacking into a layer cache) shown through a [`Progress`] display: a bar per layer on a
/// terminal, a line when each starts and ends otherwise.
pub struct Unpacking(pub std::sync::Arc<dyn Progress>);

impl std::fmt::Debug for Unpacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unpacking")
    }
}

impl berth_layer::apply::ExtractProgress for Unpacking {
    fn start(&self, layer: &berth_layer::apply::LayerRef) {
        self.0.start(&layer.digest, layer.size, "Unpacking");
    }
    fn advance(&self, layer: &berth_layer::apply::LayerRef, bytes: u64) {
        self.0.advance(&layer.digest, bytes);
    }
    fn done(&self, layer: &berth_layer::apply::LayerRef) {
        self.0.done(&layer.digest, Outcome::Copied);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mode_counts_without_a_terminal() {
        let bars = Bars::new(true);
        let d = Digest::sha256(b"x");
        bars.start(&d, 10, "Copying");
        bars.advance(&d, 4);
        bars.advance(&d, 6);
        assert_eq!(bars.blobs.lock().unwrap()[&d].done, 10);
        bars.done(&d, Outcome::Copied);
        assert!(bars.blobs.lock().unwrap().is_empty());
        // Events for a blob never started are ignored, not a panic.
        bars.advance(&d, 1);
        bars.done(&d, Outcome::Skipped);
    }
}
