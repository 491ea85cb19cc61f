//! The `layer` target: [`berth_layer::apply::apply_layer`] on a mutated tar stream, into a fresh root.
//!
//! # Input
//!
//! The first byte chooses how the rest is turned into a layer stream; the rest is a tar archive (or, in
//! [`Wrap::AsGiven`] mode, whatever bytes, compressed or not):
//!
//! | bits | meaning |
//! |------|---------|
//! | 0-1  | 0: the bytes as given (sniffed as the runner would), 1: gzip, 2: zstd, 3: gzip in two members |
//! | 2    | write whiteouts in overlayfs form into an empty root, instead of applying them to a lower tree |
//! | 3    | map ids (container 0-65535 to host 100000-165535); with bit 2, use `user.overlay.*` xattrs |
//! | 4-7  | `e`: when not 0, the last 512 bytes of the tar are repeated to add 2^(e+10) bytes (2 KiB - 32 MiB) |
//!
//! Compression is applied here, as the stream is read, so the mutations land in the tar and every one of them
//! reaches the extractor through a real gzip or zstd decoder. The repetition turns a few bytes of input into a
//! long stream without holding it in memory: a PAX or GNU long-name header followed by its first data block
//! becomes a record of megabytes, a header block becomes a hundred thousand entries.
//!
//! # Oracle
//!
//! `apply_layer` may succeed or fail, but must not panic, and afterwards:
//! - the temporary directory holds exactly the root and a sibling canary directory, and the root is still a
//!   directory;
//! - the canary (a file and an empty directory) is unchanged: content, mode, owner, inode, link count and
//!   mtime — so nothing was written, chmod'ed or hard-linked through a link that left the root;
//! - no `berth-fuzz-escape` (the name the seeds use to climb out) exists next to the temporary directory or
//!   in `/`;
//! - it returned within [`TIME_LIMIT`];
//! - the process's peak resident memory grew by at most [`MEMORY_LIMIT_MIB`] during the call (more when the
//!   bytes are given as they are and are zstd, whose format lets a stream ask for a 128 MiB window), measured by
//!   resetting the kernel's high-water mark (`/proc/self/clear_refs`) before the call and reading `VmHWM`
//!   after it. The extractor should stream: hold a few 1 MiB chunks and the current entry's headers
//!   (capped at 1 MiB each), so a PAX or GNU record that the repetition makes 32 MiB long shows as growth.
//!
//! Repetition stops at 32 MiB because every input pays for it: the stream is made, hashed and unpacked by
//! coverage-instrumented code.
//!
//! The temporary directory (`layer_sandbox.rs`) is made under `$BERTH_FUZZ_TMPDIR`, else `/dev/shm`, else the
//! system's temporary directory. In OCI mode the root starts with a small lower tree (files, a symlinked
//! directory, an absolute symlink to `/`, a relative one climbing out, links to the canary, a hard link) for
//! whiteouts, type changes and links to act on.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use berth_layer::apply::{ApplyOptions, IdRange, WhiteoutMode, apply_layer};
use berth_spec::media_type::Compression;

use crate::layer_sandbox::{PeakRss, Sandbox};

/// The name seeds use for paths that climb out of the root; it must never appear outside it.
pub const ESCAPE_NAME: &str = "berth-fuzz-escape";
/// The longest an extraction may take (the largest stream is 32 MiB plus the input).
pub const TIME_LIMIT: Duration = Duration::from_secs(20);
/// How much the peak resident memory may grow while one layer is applied.
pub const MEMORY_LIMIT_MIB: u64 = 24;
/// The same for zstd streams given as they are, which may legitimately ask the decoder for a 128 MiB window.
pub const MEMORY_LIMIT_ZSTD_AS_GIVEN_MIB: u64 = 128 + MEMORY_LIMIT_MIB;

/// How the tar bytes become the layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// As given: the extractor sniffs plain, gzip or zstd.
    AsGiven,
    /// Compressed with gzip here.
    Gzip,
    /// Compressed with zstd here.
    Zstd,
    /// Compressed with gzip here, as two members split in the middle.
    GzipTwoMembers,
}

/// A decoded input of the `layer` target.
#[derive(Debug, Clone, Copy)]
pub struct LayerInput<'a> {
    /// How the bytes become the stream.
    pub wrap: Wrap,
    /// overlayfs whiteouts into an empty root.
    pub overlay: bool,
    /// Map ids.
    pub id_map: bool,
    /// Bytes added by repeating the last block.
    pub expand: u64,
    /// The tar archive (or, as given, any bytes).
    pub tar: &'a [u8],
}

impl<'a> LayerInput<'a> {
    /// Splits the mode byte from the archive.
    pub fn decode(data: &'a [u8]) -> Self {
        let (mode, tar) = match data.split_first() {
            Some((&mode, tar)) => (mode, tar),
            None => (0, data),
        };
        let wrap = match mode & 3 {
            0 => Wrap::AsGiven,
            1 => Wrap::Gzip,
            2 => Wrap::Zstd,
            _ => Wrap::GzipTwoMembers,
        };
        let e = u32::from(mode >> 4);
        LayerInput {
            wrap,
            overlay: mode & 4 != 0,
            id_map: mode & 8 != 0,
            expand: if e == 0 { 0 } else { 1u64 << (e + 10) },
            tar,
        }
    }
}

/// Builds an input of the `layer` target (for seeds and regression tests); `expand_exp` is `e` above (0-15).
pub fn encode(wrap: Wrap, overlay: bool, id_map: bool, expand_exp: u8, tar: &[u8]) -> Vec<u8> {
    let mut mode = match wrap {
        Wrap::AsGiven => 0,
        Wrap::Gzip => 1,
        Wrap::Zstd => 2,
        Wrap::GzipTwoMembers => 3,
    };
    if overlay {
        mode |= 4;
    }
    if id_map {
        mode |= 8;
    }
    mode |= (expand_exp & 0xf) << 4;
    let mut out = vec![mode];
    out.extend_from_slice(tar);
    out
}

/// The target: applies the layer the input describes and checks the oracle; panics on a violation.
pub fn run(data: &[u8]) {
    let input = LayerInput::decode(data);
    let sandbox = Sandbox::new(input.overlay);
    let opts = ApplyOptions {
        whiteouts: if input.overlay {
            WhiteoutMode::Overlay {
                user_xattr: input.id_map,
            }
        } else {
            WhiteoutMode::Oci
        },
        uid_map: id_map(input.id_map),
        gid_map: id_map(input.id_map),
        ..ApplyOptions::default()
    };
    let memory_limit_mib = if input.wrap == Wrap::AsGiven && Compression::sniff(input.tar) == Compression::Zstd {
        MEMORY_LIMIT_ZSTD_AS_GIVEN_MIB
    } else {
        MEMORY_LIMIT_MIB
    };

    let layer = stream(&input);
    let peak = PeakRss::start();
    let started = Instant::now();
    let result = apply_layer(layer, sandbox.root(), &opts);
    let elapsed = started.elapsed();
    let grown_mib = peak.and_then(|p| p.grown_kib()).map(|k| k / 1024);
    if let Err(e) = &result {
        // Rendering the error must not panic either.
        let _ = e.to_string();
    }

    sandbox.check();
    assert!(
        elapsed <= TIME_LIMIT,
        "applying a {}-byte input ({:?}, {} bytes repeated) took {elapsed:?}, more than {TIME_LIMIT:?}",
        data.len(),
        input.wrap,
        input.expand
    );
    if let Some(grown) = grown_mib {
        assert!(
            grown <= memory_limit_mib,
            "applying a {}-byte input ({:?}, {} bytes repeated) grew peak memory by {grown} MiB (limit \
             {memory_limit_mib} MiB); result: {result:?}",
            data.len(),
            input.wrap,
            input.expand
        );
    }
}

fn id_map(on: bool) -> Vec<IdRange> {
    if on {
        vec![IdRange {
            container: 0,
            host: 100_000,
            size: 65_536,
        }]
    } else {
        Vec::new()
    }
}

/// The layer stream, compressed as the input says, produced as it is read.
fn stream<'a>(input: &LayerInput<'a>) -> Box<dyn Read + Send + 'a> {
    let plain = Expanded::new(input.tar, input.expand);
    // Deflating megabytes through instrumented code would cost every such input a second or more: long
    // streams go into stored blocks (zstd is C, uninstrumented, and fast at any length).
    let gzip_level = if input.expand >= 1 << 20 {
        flate2::Compression::none()
    } else {
        flate2::Compression::fast()
    };
    match input.wrap {
        Wrap::AsGiven => Box::new(plain),
        Wrap::Gzip => Box::new(flate2::read::GzEncoder::new(plain, gzip_level)),
        Wrap::Zstd => Box::new(zstd::stream::read::Encoder::new(plain, 1).expect("a zstd encoder at level 1")),
        Wrap::GzipTwoMembers => {
            let total = input.tar.len() as u64 + input.expand;
            let mut plain = plain;
            let first = (&mut plain).take(total / 2);
            let mut head = Vec::new();
            flate2::read::GzEncoder::new(first, gzip_level)
                .read_to_end(&mut head)
                .expect("reading from memory");
            Box::new(io::Cursor::new(head).chain(flate2::read::GzEncoder::new(plain, gzip_level)))
        }
    }
}

/// `tar` followed by `extra` bytes made by repeating its last block (zeros when it is empty).
struct Expanded<'a> {
    tar: &'a [u8],
    tail: &'a [u8],
    pos: usize,
    extra: u64,
    tail_pos: usize,
}

impl<'a> Expanded<'a> {
    fn new(tar: &'a [u8], extra: u64) -> Self {
        const ZEROS: &[u8] = &[0; 512];
        let tail = if tar.is_empty() {
            ZEROS
        } else {
            &tar[tar.len() - tar.len().min(512)..]
        };
        Expanded {
            tar,
            tail,
            pos: 0,
            extra,
            tail_pos: 0,
        }
    }
}

impl Read for Expanded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.tar.len() {
            let n = buf.len().min(self.tar.len() - self.pos);
            buf[..n].copy_from_slice(&self.tar[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        let mut n = 0;
        while n < buf.len() && self.extra > 0 {
            let run = (self.tail.len() - self.tail_pos).min(buf.len() - n);
            let run = run.min(usize::try_from(self.extra).unwrap_or(usize::MAX));
            buf[n..n + run].copy_from_slice(&self.tail[self.tail_pos..self.tail_pos + run]);
            n += run;
            self.extra -= run as u64;
            self.tail_pos = (self.tail_pos + run) % self.tail.len();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_byte_round_trips() {
        let data = encode(Wrap::Zstd, true, false, 7, b"tar");
        let input = LayerInput::decode(&data);
        assert_eq!(input.wrap, Wrap::Zstd);
        assert!(input.overlay && !input.id_map);
        assert_eq!(input.expand, 1 << 17);
        assert_eq!(input.tar, b"tar");
    }

    #[test]
    fn expansion_repeats_the_last_block() {
        let mut tar = vec![1u8; 600];
        tar[599] = 2;
        let mut out = Vec::new();
        Expanded::new(&tar, 1000).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1600);
        assert_eq!(&out[600..1112], &tar[88..600]);
        assert_eq!(out[1111], 2);
        assert_eq!(&out[1112..1600], &tar[88..576]);
    }
}
