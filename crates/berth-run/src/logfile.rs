//! The log of a detached container: one line per line of output, in the "k8s-file" format podman and CRI use:
//! `TIMESTAMP STREAM F|P CONTENT`, where `F` ends a line and `P` is a partial line continued by the next entry.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest line kept whole; longer output is split into partial entries.
const MAX_LINE: usize = 16 * 1024;

/// Which stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (and a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// The stream.
    pub stream: Stream,
    /// The bytes, with the line's newline when the entry is full.
    pub content: Vec<u8>,
}

/// RFC 3339 UTC with nanoseconds, from the system clock.
pub fn timestamp_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_time(d.as_secs(), d.subsec_nanos())
}

/// RFC 3339 UTC with nanoseconds.
pub fn format_time(secs: u64, nanos: u32) -> String {
    berth_spec::time::rfc3339_nanos(secs as i64, nanos)
}

/// Copies everything read from `source` into the shared log, line by line, until end of file.
pub fn copy_to_log(mut source: impl Read, stream: Stream, log: Arc<Mutex<File>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let write = |content: &[u8], full: bool| {
        let mut line = Vec::with_capacity(content.len() + 48);
        line.extend_from_slice(timestamp_now().as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.name().as_bytes());
        line.extend_from_slice(if full { b" F " } else { b" P " });
        line.extend_from_slice(content);
        line.push(b'\n');
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(&line);
        }
    };
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            write(&pending[..i], true);
            pending.drain(..=i);
        }
        if pending.len() >= MAX_LINE {
            write(&pending, false);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        write(&pending, false);
    }
}

/// Parses one log line (without its newline). Malformed lines are `None`.
pub fn parse_line(line: &[u8]) -> Option<Entry> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let mut content = parts.next().unwrap_or_default().to_vec();
    if full {
        content.push(b'\n');
    }
    Some(Entry { time, stream, content })
}

/// Reads every complete entry from `reader`; returns them and the bytes of an incomplete last line (still being
/// written) which the caller should read again later.
pub fn read_entries(reader: &mut impl BufRead) -> std::io::Result<(Vec<Entry>, usize)> {
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok((out, consumed));
        }
        consumed += n;
        if let Some(e) = parse_line(&line[..line.len() - 1]) {
            out.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(format_time(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_time(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(format_time(1_796_000_000, 0), "2026-11-30T00:53:20.000000000Z");
    }

    #[test]
    fn lines_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = Arc::new(Mutex::new(File::create(&path).unwrap()));
        copy_to_log(&b"one\ntwo words\n\npartial"[..], Stream::Stdout, log.clone());
        copy_to_log(&b"err\n"[..], Stream::Stderr, log);
        let mut reader = std::io::BufReader::new(File::open(&path).unwrap());
        let (entries, _) = read_entries(&mut reader).unwrap();
        let texts: Vec<(Stream, &[u8])> = entries.iter().map(|e| (e.stream, &e.content[..])).collect();
        assert_eq!(
            texts,
            [
                (Stream::Stdout, &b"one\n"[..]),
                (Stream::Stdout, b"two words\n"),
                (Stream::Stdout, b"\n"),
                (Stream::Stdout, b"partial"),
                (Stream::Stderr, b"err\n"),
            ]
        );
        assert!(parse_line(b"garbage").is_none());
    }
}
