//! Blob-writing I/O tuning: `O_DIRECT` for large blobs ([`DirectWriter`]) and early writeback
//! ([`start_writeback`], `sync_file_range`) for the rest. Both are optimizations only: the bytes written, the
//! fsync before the rename and the commit protocol are the same with or without them.
//!
//! Why `O_DIRECT`: a blob of many megabytes written through the page cache costs a kernel copy of every byte, the
//! page cache's bookkeeping, and the writeback, all on the two or so cores that are also receiving, hashing and
//! (for a local registry) serving the bytes. [`DirectWriter`] instead gathers the bytes into aligned 1 MiB buffers
//! and has a helper thread write them with `O_DIRECT`, so the disk reads them straight from this process's memory
//! while the next buffer fills. The unaligned tail goes through the page cache, and the caller fsyncs as for any
//! blob. Blobs of [`DIRECT_MIN`] (16 MiB) and more are written this way; smaller ones gain nothing from a thread.
//!
//! Why early writeback: every blob is fsynced before it is renamed into place, and that fsync would otherwise wait
//! for the whole blob to reach the disk. Blobs written through the page cache ask the kernel every
//! [`WRITEBACK_CHUNK`] (8 MiB) to start writing back what came before, without waiting, so the disk works while
//! the download goes on and the fsync waits only for the last chunk.
//!
//! What was measured (`docs/architecture.md`, on the project's two-core test machine pulling from a local
//! registry): the kernel's copy into the page cache and its writeback were a fifth of the CPU time of a pull, and
//! with `O_DIRECT` `berth-copy` pulls as fast as a bare `curl` GET of the same blobs, which neither hashes nor
//! syncs; early writeback took the fsyncs at the end of a 553 MB pull from about 0.17 s to under 5 ms.
//!
//! Fallback: a file system that refuses `O_DIRECT` (at open, or `EINVAL` on a write) gets ordinary positional
//! writes instead; a `sync_file_range` error is ignored, since the fsync still guarantees durability.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes per write. Large enough that a write costs little next to the copy that filled it.
const BLOCK: usize = 1 << 20;
/// Buffers in flight: one filling, the rest queued or being written.
const BUFFERS: usize = 4;
/// Alignment of buffer addresses, file offsets and lengths for `O_DIRECT` (the largest logical block size in use).
const ALIGN: usize = 4096;
/// Blobs at least this large are written this way; smaller ones gain nothing from a thread.
pub(crate) const DIRECT_MIN: u64 = 16 << 20;

/// A `BLOCK`-byte buffer at an `ALIGN`-aligned address (a slightly larger vector, used from an aligned offset).
struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        let mem = vec![0u8; BLOCK + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        assert!(start < ALIGN, "a byte pointer can always be aligned");
        AlignedBuf { mem, start }
    }
    fn get(&self) -> &[u8] {
        &self.mem[self.start..self.start + BLOCK]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + BLOCK]
    }
}

struct Job {
    buf: AlignedBuf,
    len: usize,
    offset: u64,
}

/// Sequential writes of one file, handed to a helper thread in aligned blocks (see the module documentation).
pub(crate) struct DirectWriter {
    block: AlignedBuf,
    filled: usize,
    /// File offset of `block[0]`.
    offset: u64,
    jobs: Option<SyncSender<Job>>,
    free: Receiver<AlignedBuf>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Set when the writer is dropped unfinished: the thread skips what is still queued.
    abandoned: Arc<AtomicBool>,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter")
            .field("offset", &self.offset)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl DirectWriter {
    /// A writer for `file` (empty, opened for writing without `O_APPEND`, which would make the positional writes
    /// append), or `None` when it cannot be reopened with `O_DIRECT`.
    pub(crate) fn new(file: &File) -> Option<DirectWriter> {
        // Reopened through /proc (the same inode, checked), for a second open file description with O_DIRECT.
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .ok()?;
        let (a, b) = (file.metadata().ok()?, direct.metadata().ok()?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return None;
        }
        let plain = file.try_clone().ok()?;
        Self::with_files(direct, plain).ok()
    }

    /// A writer whose thread writes with `direct`, or with `plain` once `direct` is refused.
    fn with_files(direct: File, plain: File) -> io::Result<DirectWriter> {
        let (jobs, job_rx) = sync_channel::<Job>(BUFFERS);
        let (free_tx, free) = sync_channel::<AlignedBuf>(BUFFERS);
        for _ in 1..BUFFERS {
            free_tx
                .send(AlignedBuf::new())
                .map_err(|_| io::Error::other("buffer queue closed"))?;
        }
        let abandoned = Arc::new(AtomicBool::new(false));
        let skip = Arc::clone(&abandoned);
        let thread = std::thread::Builder::new()
            .name("berth-blob-io".into())
            .spawn(move || write_jobs(&direct, &plain, &job_rx, &free_tx, &skip))?;
        Ok(DirectWriter {
            block: AlignedBuf::new(),
            filled: 0,
            offset: 0,
            jobs: Some(jobs),
            free,
            thread: Some(thread),
            abandoned,
        })
    }

    /// Appends `buf`.
    pub(crate) fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = buf.len().min(BLOCK - self.filled);
            self.block.get_mut()[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
            self.filled += n;
            buf = &buf[n..];
            if self.filled == BLOCK {
                self.submit(BLOCK)?;
            }
        }
        Ok(())
    }

    /// Hands the first `len` bytes of the current block (a multiple of `ALIGN`) to the thread, continuing in a
    /// buffer it has written (waiting for one if need be).
    fn submit(&mut self, len: usize) -> io::Result<()> {
        let Ok(next) = self.free.recv() else {
            return Err(self.stop());
        };
        let buf = std::mem::replace(&mut self.block, next);
        let job = Job {
            buf,
            len,
            offset: self.offset,
        };
        let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            return Err(self.stop());
        }
        self.offset += len as u64;
        self.filled = 0;
        Ok(())
    }

    /// Writes what is left, waits for every write, and returns the first error any of them had.
    pub(crate) fn finish(mut self, file: &File) -> io::Result<()> {
        let aligned = self.filled / ALIGN * ALIGN;
        let tail = self.block.get()[aligned..self.filled].to_vec();
        if aligned > 0 {
            self.submit(aligned)?;
        }
        self.join()?;
        file.write_all_at(&tail, self.offset)
    }

    /// Ends the job queue and waits for the thread: its result.
    fn join(&mut self) -> io::Result<()> {
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the blob writing thread panicked")),
            None => Ok(()),
        }
    }

    /// Stops the thread and returns why it had stopped.
    fn stop(&mut self) -> io::Error {
        self.join()
            .err()
            .unwrap_or_else(|| io::Error::other("the blob writing thread stopped"))
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The helper thread: writes each job at its offset, with `O_DIRECT` until the file system refuses it.
fn write_jobs(
    direct: &File,
    plain: &File,
    jobs: &Receiver<Job>,
    free: &SyncSender<AlignedBuf>,
    abandoned: &AtomicBool,
) -> io::Result<()> {
    let mut use_direct = true;
    for job in jobs {
        if abandoned.load(Ordering::Relaxed) {
            return Ok(());
        }
        let data = &job.buf.get()[..job.len];
        if use_direct {
            match direct.write_all_at(data, job.offset) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::debug!("O_DIRECT refused on a blob write: writing through the page cache");
                    use_direct = false;
                    plain.write_all_at(data, job.offset)?;
                }
                Err(e) => return Err(e),
            }
        } else {
            plain.write_all_at(data, job.offset)?;
        }
        // The writer may have stopped waiting (it is finishing or dropped): the buffer is not needed then.
        let _ = free.send(job.buf);
    }
    Ok(())
}

/// Bytes written through the page cache between two requests to start their writeback.
pub(crate) const WRITEBACK_CHUNK: u64 = 8 << 20;

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to the disk, without waiting (see the
/// module documentation). Best effort: an error here (a file system without the call) changes nothing, as the
/// fsync still guarantees durability.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range takes a file descriptor, borrowed here from a live `File`, and plain integers; it
    // touches no memory of this process.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        let mut x: u32 = 0x2545_f491;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// A temporary directory on a file system that takes O_DIRECT: the system's temp directory, else (a tmpfs
    /// before Linux 6.6) one under the build's target directory.
    fn direct_dir() -> tempfile::TempDir {
        let takes_direct = |dir: &tempfile::TempDir| {
            let path = dir.path().join("probe");
            File::create(&path).is_ok()
                && OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(&path)
                    .is_ok()
        };
        let dir = tempfile::tempdir().unwrap();
        if takes_direct(&dir) {
            return dir;
        }
        let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
        let dir = tempfile::tempdir_in(target).unwrap();
        assert!(takes_direct(&dir), "no file system here takes O_DIRECT");
        dir
    }

    fn read(path: &std::path::Path) -> Vec<u8> {
        let mut out = Vec::new();
        File::open(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    /// Whole blocks, a partial aligned block and an unaligned tail, fed in chunks that straddle every boundary.
    #[test]
    fn writes_every_byte_in_place() {
        let dir = direct_dir();
        for len in [0, 1, ALIGN, ALIGN + 1, BLOCK, 3 * BLOCK + 2 * ALIGN + 17, 9 * BLOCK - 1] {
            let path = dir.path().join(format!("f{len}"));
            let file = File::create(&path).unwrap();
            let mut w = DirectWriter::new(&file).expect("this file system takes O_DIRECT");
            let data = pattern(len);
            for chunk in data.chunks(65_537) {
                w.write_all(chunk).unwrap();
            }
            w.finish(&file).unwrap();
            assert!(read(&path) == data, "length {len}");
        }
    }

    /// A write the file system refuses with EINVAL (here: an O_DIRECT write of a length that is no multiple of the
    /// block size) is done through the page cache instead, and so is every later one.
    #[test]
    fn einval_falls_back_to_the_page_cache() {
        let dir = direct_dir();
        let path = dir.path().join("f");
        let plain = File::create(&path).unwrap();
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .unwrap();
        let data = pattern(3 * 1000);
        let (jobs, job_rx) = sync_channel(4);
        let (free_tx, free) = sync_channel(4);
        for (i, part) in data.chunks(1000).enumerate() {
            let mut buf = AlignedBuf::new();
            buf.get_mut()[..1000].copy_from_slice(part);
            jobs.send(Job {
                buf,
                len: 1000,
                offset: i as u64 * 1000,
            })
            .unwrap();
        }
        drop(jobs);
        write_jobs(&direct, &plain, &job_rx, &free_tx, &AtomicBool::new(false)).unwrap();
        assert_eq!(free.try_iter().count(), 3, "every buffer comes back");
        assert!(read(&path) == data);
    }

    /// An error of the thread's writes reaches the writer (here: both descriptors are read-only, EBADF), on a
    /// later write or at the latest when finishing.
    #[test]
    fn a_failed_write_is_reported() {
        let dir = direct_dir();
        let path = dir.path().join("f");
        File::create(&path).unwrap();
        let ro = || File::open(&path).unwrap();
        let mut w = DirectWriter::with_files(ro(), ro()).unwrap();
        let data = pattern(6 * BLOCK);
        let result = w.write_all(&data).and_then(|()| w.finish(&ro()));
        let err = result.expect_err("nothing can be written");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
