//! Layer compression in one pass: [`LayerWriter`] takes the uncompressed tar stream, hashes it (the diffID),
//! compresses it (plain, parallel gzip or multi-threaded zstd) and hashes and counts what reaches the output (the
//! blob digest and size), so a layer is read from disk exactly once.
//!
//! gzip is compressed pigz-style: the stream is cut into fixed blocks, each block is deflated by a worker thread
//! with the previous block's last 32 KiB as its dictionary and ends on a sync flush (a byte-aligned empty stored
//! block), so the blocks concatenate into one deflate stream inside a single gzip member. Block boundaries depend
//! only on the data, so the bytes are the same whatever the number of threads.
//!
//! gzip levels 1 to 3, and the default (3), deflate with ISA-L's igzip when the `isal` feature is on (the Berth tools
//! turn it on): about four times as fast as zlib at level 6, for layers a few percent larger. Levels 0 and 4 to 9
//! deflate with zlib (zlib-rs) at that level. igzip picks its match finder by the CPU's instruction set, and its
//! bytes may change with the system's libisal, so a writer made with [`LayerWriter::new_portable`] (for
//! reproducible builds) uses zlib at every level, 6 by default: its bytes depend only on the input, the level and
//! Berth's version.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::{fmt, thread};

use berth_spec::media_type::{Compression, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};
use berth_spec::{Algorithm, Digest, Hasher};
use flate2::{Compress, FlushCompress, Status};

/// Uncompressed bytes per gzip block. Twice pigz's default: each block pays for a fresh compressor (see
/// [`deflate_block`]), and in-flight memory stays at about `4 * threads` blocks.
const GZIP_BLOCK: usize = 1024 * 1024;
/// The deflate window: how much of the previous block primes the next one.
const DEFLATE_WINDOW: usize = 32 * 1024;
/// The zstd level used when none is given (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// The gzip level used when none is given: igzip's best (see the module documentation), or zlib's default
/// without igzip.
pub const DEFAULT_GZIP_LEVEL: i32 = if cfg!(feature = "isal") { 3 } else { PORTABLE_GZIP_LEVEL };
/// The gzip level of [`LayerWriter::new_portable`] when none is given (zlib's default).
pub const PORTABLE_GZIP_LEVEL: i32 = 6;

/// What a finished layer stream hashed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the bytes written to the output (the blob's digest).
    pub digest: Digest,
    /// Number of bytes written to the output (the blob's size).
    pub size: u64,
    /// sha256 of the uncompressed tar stream (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// The compression applied.
    pub compression: Compression,
    /// The OCI layer media type matching `compression`.
    pub media_type: &'static str,
}

/// The levels `compression` accepts, or `None` when it takes no level.
pub fn level_range(compression: Compression) -> Option<std::ops::RangeInclusive<i32>> {
    match compression {
        Compression::None => None,
        Compression::Gzip => Some(0..=9),
        Compression::Zstd => Some(zstd::compression_level_range()),
    }
}

/// The number of worker threads `threads` means (0 = one per core).
pub(crate) fn effective_threads(threads: usize) -> usize {
    match threads {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// A writer that turns an uncompressed layer stream into a blob, computing every digest on the way.
pub struct LayerWriter<W: Write> {
    diff_id: Hasher,
    uncompressed_size: u64,
    compression: Compression,
    backend: Backend<W>,
}

enum Backend<W: Write> {
    Plain(Counted<W>),
    Gzip(ParallelGzip<Counted<W>>),
    Zstd(zstd::stream::write::Encoder<'static, Counted<W>>),
}

impl<W: Write> fmt::Debug for LayerWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerWriter")
            .field("compression", &self.compression)
            .field("uncompressed_size", &self.uncompressed_size)
            .finish_non_exhaustive()
    }
}

impl<W: Write> LayerWriter<W> {
    /// A writer compressing with `compression` at `level` (the codec's default when `None`) on `threads` threads
    /// (0 = one per core). A level outside [`level_range`] is an `InvalidInput` error.
    pub fn new(out: W, compression: Compression, level: Option<i32>, threads: usize) -> io::Result<Self> {
        Self::with_deflater(out, compression, level, threads, false)
    }

    /// [`new`](Self::new), except that gzip uses zlib at every level (6 when `None`), whose bytes do not depend on
    /// the CPU or the system's libraries: for reproducible builds.
    pub fn new_portable(out: W, compression: Compression, level: Option<i32>, threads: usize) -> io::Result<Self> {
        Self::with_deflater(out, compression, level, threads, true)
    }

    fn with_deflater(
        out: W,
        compression: Compression,
        level: Option<i32>,
        threads: usize,
        portable: bool,
    ) -> io::Result<Self> {
        if let (Some(level), Some(range)) = (level, level_range(compression))
            && !range.contains(&level)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{compression} level {level} is outside {}..={}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        let out = Counted::new(out);
        let threads = effective_threads(threads);
        let backend = match compression {
            Compression::None => Backend::Plain(out),
            Compression::Gzip => {
                let codec = if portable {
                    Deflater::Zlib(level.unwrap_or(PORTABLE_GZIP_LEVEL).clamp(0, 9) as u32)
                } else {
                    Deflater::for_level(level.unwrap_or(DEFAULT_GZIP_LEVEL))
                };
                Backend::Gzip(ParallelGzip::new(out, codec, threads)?)
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, level.unwrap_or(DEFAULT_ZSTD_LEVEL))?;
                // With one worker or more, zstd's output does not depend on the number of workers.
                enc.multithread(u32::try_from(threads).unwrap_or(u32::MAX))?;
                enc.include_checksum(true)?;
                Backend::Zstd(enc)
            }
        };
        Ok(LayerWriter {
            diff_id: Hasher::new(Algorithm::Sha256),
            uncompressed_size: 0,
            compression,
            backend,
        })
    }

    /// Does not hash the compressed stream: for an output that hashes what it is given itself (a layout's blob
    /// writer), so that the bytes are not hashed twice. [`LayerDigests::digest`] is then the digest of nothing.
    pub fn without_output_digest(mut self) -> Self {
        let counted = match &mut self.backend {
            Backend::Plain(c) => c,
            Backend::Gzip(g) => &mut g.out,
            Backend::Zstd(z) => z.get_mut(),
        };
        counted.hash = false;
        self
    }

    /// Ends the compressed stream and returns the digests.
    pub fn finish(self) -> io::Result<LayerDigests> {
        self.finish_into_inner().map(|(digests, _)| digests)
    }

    /// Ends the compressed stream and returns the digests and the output writer.
    pub fn finish_into_inner(self) -> io::Result<(LayerDigests, W)> {
        let mut diff_id = self.diff_id;
        let mut counted = match self.backend {
            Backend::Plain(c) => c,
            Backend::Gzip(g) => {
                let (out, hashed) = g.finish()?;
                if let Some(h) = hashed {
                    diff_id = h;
                }
                out
            }
            Backend::Zstd(z) => z.finish()?,
        };
        counted.inner.flush()?;
        let media_type = match self.compression {
            Compression::None => OCI_LAYER_TAR,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        };
        let digests = LayerDigests {
            digest: counted.hasher.finish(),
            size: counted.count,
            diff_id: diff_id.finish(),
            uncompressed_size: self.uncompressed_size,
            compression: self.compression,
            media_type,
        };
        Ok((digests, counted.inner))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (n, hashed) = match &mut self.backend {
            Backend::Plain(w) => (w.write(buf)?, false),
            Backend::Gzip(w) => (w.write(buf)?, w.hashes_input()),
            Backend::Zstd(w) => (w.write(buf)?, false),
        };
        if !hashed {
            self.diff_id.update(&buf[..n]);
        }
        self.uncompressed_size += n as u64;
        Ok(n)
    }

    /// Flushes the output only: a flush never cuts a compressed block, so it cannot change the bytes produced.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.backend {
            Backend::Plain(w) => w.flush(),
            Backend::Gzip(w) => w.out.flush(),
            Backend::Zstd(w) => w.get_mut().flush(),
        }
    }
}

/// Hashes and counts the bytes that reach `inner`.
struct Counted<W> {
    inner: W,
    hasher: Hasher,
    /// Whether `hasher` is fed (see [`LayerWriter::without_output_digest`]).
    hash: bool,
    count: u64,
}

impl<W: Write> Counted<W> {
    fn new(inner: W) -> Self {
        Counted {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            hash: true,
            count: 0,
        }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if self.hash {
            self.hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One block for a worker.
struct Job {
    data: Arc<Vec<u8>>,
    dict: Vec<u8>,
    last: bool,
    reply: Sender<io::Result<Deflated>>,
}

/// A compressed block and the CRC of its uncompressed bytes.
struct Deflated {
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// The deflate implementation and level of a gzip stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deflater {
    Zlib(u32),
    #[cfg(feature = "isal")]
    Igzip(u32),
}

impl Deflater {
    /// The deflater for a gzip `level` in 0..=9 (see the module documentation).
    fn for_level(level: i32) -> Deflater {
        let level = level.clamp(0, 9) as u32;
        match level {
            #[cfg(feature = "isal")]
            1..=3 => Deflater::Igzip(level),
            _ => Deflater::Zlib(level),
        }
    }

    /// The gzip header's XFL byte: 2 for zlib's best compression, 4 for its fastest, else 0 (RFC 1952).
    fn xfl(self) -> u8 {
        match self {
            Deflater::Zlib(9) => 2,
            Deflater::Zlib(1) => 4,
            _ => 0,
        }
    }
}

/// A single-member gzip stream deflated block by block, in parallel when `threads > 1`.
struct ParallelGzip<W: Write> {
    out: W,
    level: Deflater,
    block: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    engine: Engine,
}

enum Engine {
    Inline,
    Pool(Pool),
}

struct Pool {
    /// The blocks, in stream order, to the thread hashing the uncompressed stream (the diffID): that hash then
    /// runs beside the producer instead of on its thread.
    to_hasher: Option<SyncSender<Arc<Vec<u8>>>>,
    hasher: Option<JoinHandle<Hasher>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    /// Replies for blocks sent and not yet written, in stream order.
    pending: VecDeque<Receiver<io::Result<Deflated>>>,
    max_pending: usize,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.to_hasher = None;
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<W: Write> ParallelGzip<W> {
    fn new(mut out: W, level: Deflater, threads: usize) -> io::Result<Self> {
        // RFC 1952 header: no name, mtime 0 (reproducible), XFL from the level, OS 255 (unknown).
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level.xfl(), 255])?;
        let engine = if threads <= 1 {
            Engine::Inline
        } else {
            let max_pending = threads * 2;
            let (tx, rx) = mpsc::sync_channel::<Job>(max_pending);
            let rx = Arc::new(Mutex::new(rx));
            let workers = (0..threads)
                .map(|i| {
                    let rx = Arc::clone(&rx);
                    thread::Builder::new()
                        .name(format!("berth-gzip-{i}"))
                        .spawn(move || gzip_worker(&rx, level))
                })
                .collect::<io::Result<Vec<_>>>()?;
            let (to_hasher, blocks) = mpsc::sync_channel::<Arc<Vec<u8>>>(max_pending);
            let hasher = thread::Builder::new().name("berth-diffid".into()).spawn(move || {
                let mut h = Hasher::new(Algorithm::Sha256);
                for block in blocks {
                    h.update(&block);
                }
                h
            })?;
            Engine::Pool(Pool {
                to_hasher: Some(to_hasher),
                hasher: Some(hasher),
                jobs: Some(tx),
                workers,
                pending: VecDeque::new(),
                max_pending,
            })
        };
        Ok(ParallelGzip {
            out,
            level,
            block: Vec::with_capacity(GZIP_BLOCK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            engine,
        })
    }

    /// Whether this stream hashes what it is given (the diffID) itself, on a thread of its own.
    fn hashes_input(&self) -> bool {
        matches!(&self.engine, Engine::Pool(p) if p.to_hasher.is_some())
    }

    /// Hands the current block to the compressor; `last` ends the deflate stream.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(if last { 0 } else { GZIP_BLOCK }));
        let next_dict = data[data.len().saturating_sub(DEFLATE_WINDOW)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, next_dict);
        match &mut self.engine {
            Engine::Inline => {
                let done = deflate_block(self.level, &dict, &data, last)?;
                self.crc.combine(&done.crc);
                self.out.write_all(&done.bytes)
            }
            Engine::Pool(pool) => {
                let data = Arc::new(data);
                let hashed = pool
                    .to_hasher
                    .as_ref()
                    .is_some_and(|tx| tx.send(Arc::clone(&data)).is_ok());
                if !hashed {
                    return Err(worker_gone());
                }
                let (reply, rx) = mpsc::channel();
                let job = Job {
                    data,
                    dict,
                    last,
                    reply,
                };
                let sent = pool.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
                if !sent {
                    return Err(worker_gone());
                }
                pool.pending.push_back(rx);
                let keep = if last { 0 } else { pool.max_pending };
                while pool.pending.len() > keep {
                    let rx = pool.pending.pop_front().ok_or_else(worker_gone)?;
                    let done = rx.recv().map_err(|_| worker_gone())??;
                    self.crc.combine(&done.crc);
                    self.out.write_all(&done.bytes)?;
                }
                Ok(())
            }
        }
    }

    /// Writes the last block and the trailer (CRC-32 and length mod 2^32) and returns the output, and the hash of
    /// the uncompressed stream when this stream made it ([`Self::hashes_input`]).
    fn finish(mut self) -> io::Result<(W, Option<Hasher>)> {
        self.dispatch(true)?;
        let crc = std::mem::take(&mut self.crc);
        let isize = crc.total_len() as u32;
        self.out.write_all(&crc.finalize().to_le_bytes())?;
        self.out.write_all(&isize.to_le_bytes())?;
        self.out.flush()?;
        let hashed = match &mut self.engine {
            Engine::Inline => None,
            Engine::Pool(pool) => {
                // Closing the channel ends the hasher's loop.
                pool.to_hasher = None;
                let thread = pool.hasher.take().ok_or_else(worker_gone)?;
                Some(thread.join().map_err(|_| worker_gone())?)
            }
        };
        drop(self.engine);
        Ok((self.out, hashed))
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(GZIP_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == GZIP_BLOCK {
            self.dispatch(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("a gzip compression thread stopped unexpectedly")
}

fn gzip_worker(jobs: &Mutex<Receiver<Job>>, level: Deflater) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let done = deflate_block(level, &job.dict, &job.data, job.last);
        let _ = job.reply.send(done);
    }
}

/// Deflates one block as raw deflate, primed with `dict`, ending on a sync flush (or the stream end if `last`).
fn deflate_block(level: Deflater, dict: &[u8], data: &[u8], last: bool) -> io::Result<Deflated> {
    let bytes = match level {
        Deflater::Zlib(level) => zlib_block(flate2::Compression::new(level), dict, data, last)?,
        #[cfg(feature = "isal")]
        Deflater::Igzip(level) => igzip::block(level, dict, data, last)?,
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    Ok(Deflated { bytes, crc })
}

/// [`deflate_block`] by zlib.
///
/// Each block gets a fresh compressor: a reused one (`Compress::reset`) can emit different, equally valid, bytes
/// depending on what it compressed before (zlib-rs issue #459), which would tie the output to thread scheduling.
fn zlib_block(level: flate2::Compression, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let c = &mut Compress::new(level, false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let start = c.total_in();
    let consumed = |c: &Compress| (c.total_in() - start) as usize;
    let mut bytes = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if bytes.len() == bytes.capacity() {
            bytes.reserve(64 * 1024);
        }
        let status = c
            .compress_vec(&data[consumed(c)..], &mut bytes, flush)
            .map_err(io::Error::other)?;
        let all_in = consumed(c) == data.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and output space was left over.
            _ if !last && all_in && bytes.len() < bytes.capacity() => break,
            _ => {}
        }
    }
    Ok(bytes)
}

/// [`deflate_block`] by ISA-L's igzip, through the C wrapper in `csrc/igzip_block.c`.
#[cfg(feature = "isal")]
mod igzip {
    use std::io;

    // SAFETY: the signature matches `berth_igzip_block` in csrc/igzip_block.c.
    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn berth_igzip_block(
            level: u32,
            dict: *const u8,
            dict_len: u32,
            input: *const u8,
            in_len: u32,
            last: i32,
            out: *mut u8,
            out_cap: u32,
            out_len: *mut u32,
        ) -> i32;
    }

    /// The wrapper's answer when the output did not fit.
    const NEED_ROOM: i32 = 1;

    pub(super) fn block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
        let too_big = || io::Error::other("a gzip block over 4 GiB");
        let dict_len = u32::try_from(dict.len()).map_err(|_| too_big())?;
        let in_len = u32::try_from(data.len()).map_err(|_| too_big())?;
        // An empty slice's pointer is dangling, which C's memcpy may not be given even for 0 bytes.
        static NOTHING: [u8; 1] = [0];
        let real = |s: &[u8]| if s.is_empty() { NOTHING.as_ptr() } else { s.as_ptr() };
        // Stored blocks bound the growth of incompressible data to a few bytes per 64 KiB; start above that.
        let mut cap = data.len() + data.len() / 16 + 4096;
        loop {
            // Not zeroed: the wrapper only writes into it, and the length is set to what it wrote.
            let mut out: Vec<u8> = Vec::with_capacity(cap);
            let out_cap = u32::try_from(cap).map_err(|_| too_big())?;
            let mut out_len = 0u32;
            // SAFETY: every pointer comes from a live slice or vector with the length passed beside it; the
            // wrapper reads `dict` and `data`, writes at most `out_cap` bytes of `out` and the one u32 `out_len`,
            // and keeps no pointer after it returns.
            #[allow(unsafe_code)]
            let rc = unsafe {
                berth_igzip_block(
                    level,
                    real(dict),
                    dict_len,
                    real(data),
                    in_len,
                    i32::from(last),
                    out.as_mut_ptr(),
                    out_cap,
                    &mut out_len,
                )
            };
            match rc {
                0 => {
                    let len = (out_len as usize).min(cap);
                    // SAFETY: the wrapper initialised the first `out_len` bytes (at most `out_cap`, the capacity).
                    #[allow(unsafe_code)]
                    unsafe {
                        out.set_len(len)
                    };
                    return Ok(out);
                }
                NEED_ROOM => cap *= 2,
                rc => return Err(io::Error::other(format!("igzip level {level} failed with code {rc}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Compressible but not trivial data, several gzip blocks long.
    fn sample(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if i % 7 == 0 {
                    (x >> 24) as u8
                } else {
                    b"layer codec "[i % 12]
                }
            })
            .collect()
    }

    fn compress(data: &[u8], compression: Compression, level: Option<i32>, threads: usize) -> (Vec<u8>, LayerDigests) {
        let mut w = LayerWriter::new(Vec::new(), compression, level, threads).unwrap();
        for chunk in data.chunks(70_001) {
            w.write_all(chunk).unwrap();
        }
        let (d, out) = w.finish_into_inner().unwrap();
        (out, d)
    }

    fn gunzip_cli(bytes: &[u8]) -> Vec<u8> {
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip CLI");
        let mut stdin = child.stdin.take().unwrap();
        let input = bytes.to_vec();
        let feeder = thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "gzip -dc failed: {out:?}");
        out.stdout
    }

    fn check_digests(data: &[u8], out: &[u8], d: &LayerDigests) {
        assert_eq!(d.diff_id, Digest::sha256(data));
        assert_eq!(d.uncompressed_size, data.len() as u64);
        assert_eq!(d.digest, Digest::sha256(out));
        assert_eq!(d.size, out.len() as u64);
    }

    #[test]
    fn compress_gzip_decodes_and_is_thread_independent() {
        for len in [0, 1, GZIP_BLOCK, 3 * GZIP_BLOCK + 17, 2 * 1024 * 1024 + 5] {
            let data = sample(len);
            let (one, d1) = compress(&data, Compression::Gzip, None, 1);
            check_digests(&data, &one, &d1);
            assert_eq!(d1.media_type, OCI_LAYER_GZIP);
            for threads in [2, 3, 8] {
                let (many, _) = compress(&data, Compression::Gzip, None, threads);
                assert!(one == many, "len {len}: threads 1 and {threads} differ");
            }
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut decoded)
                .unwrap();
            assert!(decoded == data, "GzDecoder mismatch at len {len}");
            assert!(gunzip_cli(&one) == data, "gzip -dc mismatch at len {len}");
        }
    }

    #[test]
    fn compress_gzip_levels() {
        let data = sample(2 * GZIP_BLOCK + 600_000);
        let mut sizes = Vec::new();
        for level in 0..=9 {
            let (out, d) = compress(&data, Compression::Gzip, Some(level), 2);
            check_digests(&data, &out, &d);
            assert!(gunzip_cli(&out) == data, "level {level}");
            let (one, _) = compress(&data, Compression::Gzip, Some(level), 1);
            assert!(one == out, "level {level}: threads 1 and 2 differ");
            sizes.push(out.len());
        }
        // Stored (level 0) is the largest; every other level compresses this data to well under half.
        assert!(sizes[0] > data.len(), "{sizes:?}");
        assert!(sizes[1..].iter().all(|&n| n < data.len() / 2), "{sizes:?}");
        let (default, _) = compress(&data, Compression::Gzip, None, 2);
        let (three, _) = compress(&data, Compression::Gzip, Some(DEFAULT_GZIP_LEVEL), 2);
        assert!(default == three, "the default level is not DEFAULT_GZIP_LEVEL");
        let err = LayerWriter::new(Vec::new(), Compression::Gzip, Some(10), 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// Levels 1-3 are igzip's with the `isal` feature: the output is not zlib's at the same level.
    #[test]
    fn compress_gzip_low_levels_use_igzip_when_built_with_it() {
        let data = sample(GZIP_BLOCK + 1000);
        for level in 1..=3 {
            let (ours, _) = compress(&data, Compression::Gzip, Some(level), 1);
            let block = |last| zlib_block(flate2::Compression::new(level as u32), &[], &data[..GZIP_BLOCK], last);
            let zlib_first = block(false).unwrap();
            // The first block follows the 10-byte header in both cases.
            let same_as_zlib = ours[10..].starts_with(&zlib_first);
            assert_eq!(same_as_zlib, !cfg!(feature = "isal"), "level {level}");
        }
    }

    /// A portable writer uses zlib at every level, 6 by default: the same bytes as the fast writer at level 6, and
    /// (with igzip built in) not the fast writer's bytes at levels 1-3.
    #[test]
    fn compress_gzip_portable_is_zlib() {
        let data = sample(GZIP_BLOCK + 5000);
        let portable = |level| {
            let mut w = LayerWriter::new_portable(Vec::new(), Compression::Gzip, level, 2).unwrap();
            w.write_all(&data).unwrap();
            let (d, out) = w.finish_into_inner().unwrap();
            check_digests(&data, &out, &d);
            assert!(gunzip_cli(&out) == data);
            out
        };
        let (six, _) = compress(&data, Compression::Gzip, Some(6), 2);
        assert!(portable(None) == six, "the portable default is not zlib level 6");
        for level in 1..=3 {
            let (fast, _) = compress(&data, Compression::Gzip, Some(level), 2);
            let zlib = &zlib_block(flate2::Compression::new(level as u32), &[], &data[..GZIP_BLOCK], false).unwrap();
            assert!(portable(Some(level))[10..].starts_with(zlib), "level {level}");
            assert_eq!(fast == portable(Some(level)), !cfg!(feature = "isal"), "level {level}");
        }
    }

    /// A block is primed with the end of the block before it: a second block that repeats random bytes from the
    /// end of the first costs almost nothing, at every level that compresses. (16 KiB back, not 32: zlib reaches
    /// only 32 KiB less 262 bytes.)
    #[test]
    fn compress_gzip_blocks_see_the_previous_window() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let first: Vec<u8> = (0..GZIP_BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let tail = &first[GZIP_BLOCK - 16 * 1024..];
        let data = [&first[..], tail, tail].concat();
        for level in 1..=9 {
            let (alone, _) = compress(&first, Compression::Gzip, Some(level), 1);
            let (out, _) = compress(&data, Compression::Gzip, Some(level), 2);
            assert!(gunzip_cli(&out) == data, "level {level}");
            // Without the first block as history the second would cost another 16 KiB.
            assert!(
                out.len() < alone.len() + 2048,
                "level {level}: {} bytes against {} for the first block alone",
                out.len(),
                alone.len()
            );
        }
    }

    #[test]
    fn compress_zstd_decodes_and_is_thread_independent() {
        let data = sample(5 * 1024 * 1024);
        let (one, d) = compress(&data, Compression::Zstd, Some(3), 1);
        check_digests(&data, &one, &d);
        assert_eq!(d.media_type, OCI_LAYER_ZSTD);
        let (two, _) = compress(&data, Compression::Zstd, Some(3), 2);
        assert!(one == two, "zstd output depends on the thread count");
        assert!(zstd::decode_all(&one[..]).unwrap() == data);
    }

    #[test]
    fn compress_plain_passes_through() {
        let data = sample(10_000);
        let (out, d) = compress(&data, Compression::None, None, 0);
        assert!(out == data);
        check_digests(&data, &out, &d);
        assert_eq!(d.media_type, OCI_LAYER_TAR);
    }
}
