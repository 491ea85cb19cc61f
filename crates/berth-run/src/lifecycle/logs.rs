//! `logs`: the output of a detached container, from its log file.

use std::io::{BufReader, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::RunError;
use crate::logfile::{Stream, read_entries};
use crate::state::{ContainerRecord, StateDir, Status};
use berth_spec::io_context::IoContext;

/// Writes the container's log to `stdout`/`stderr` (each entry to its own stream); with `follow`, keeps going
/// until the container has exited. `timestamps` prefixes each line with its time; `tail` keeps the last lines.
pub fn logs(
    state: &StateDir,
    record: &ContainerRecord,
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), RunError> {
    let path = state.container_dir(&record.id).join("ctr.log");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunError::container(
                &record.name,
                "it has no log: only detached containers (run -d) keep one",
            ));
        }
        Err(e) => return Err(e).at("open", &path).map_err(Into::into),
    };
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    let mut first = true;
    loop {
        // Read the status before the log, so output written just before the exit is not missed.
        // Until the monitor has recorded the exit, which it does after copying the last output into the log.
        let running = follow
            && state
                .load(&record.id)
                .map(|r| r.status == Status::Running && (r.live_status() == Status::Running || r.monitor_alive()))
                .unwrap_or(false);
        reader.seek(SeekFrom::Start(offset)).at("read", &path)?;
        let (mut entries, consumed) = read_entries(&mut reader).at("read", &path)?;
        offset += consumed as u64;
        if first && let Some(n) = tail {
            // Lines, not entries: a long line is several partial entries.
            let mut lines = 0;
            let mut start = entries.len();
            while start > 0 {
                let ends_line = entries[start - 1].content.ends_with(b"\n");
                if ends_line {
                    if lines == n {
                        break;
                    }
                    lines += 1;
                }
                start -= 1;
            }
            entries.drain(..start);
        }
        first = false;
        for e in entries {
            let out: &mut dyn Write = match e.stream {
                Stream::Stdout => &mut *stdout,
                Stream::Stderr => &mut *stderr,
            };
            if timestamps {
                let _ = write!(out, "{} ", e.time);
            }
            out.write_all(&e.content).at("write", "the output")?;
        }
        stdout.flush().at("write", "the output")?;
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
