//! A writer whose bytes reach their destination on another thread: the producer (tar, hashing, compression)
//! and the consumer (a blob's digest and its file writes) then use two cores instead of taking turns on one.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Chunks handed to the writing thread.
const CHUNK: usize = 1024 * 1024;
/// Chunks in flight: bounds the memory the pipe holds (`CHUNK * DEPTH`).
const DEPTH: usize = 4;

/// The producing side: buffers writes into chunks and passes them to the writing thread.
#[derive(Debug)]
pub struct ThreadedWriter {
    buf: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
}

impl ThreadedWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self.empty.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        let sent = self.full.as_ref().map(|tx| tx.send(chunk));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writing thread stopped on an error: it is reported when the thread is joined.
            _ => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the writing thread stopped")),
        }
    }
}

impl Write for ThreadedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Runs `produce` with a [`ThreadedWriter`] whose bytes are written, in order, to `out` on a thread of their own,
/// and returns what `produce` returned with `out` (flushed). An error of the writing side (made an `E` by
/// `io_err`) wins over the producer's, which then only saw a broken pipe.
pub fn with_writer_thread<W, R, E>(
    mut out: W,
    produce: impl FnOnce(&mut ThreadedWriter) -> Result<R, E>,
    io_err: impl Fn(io::Error) -> E,
) -> Result<(R, W), E>
where
    W: Write + Send,
{
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(DEPTH);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH + 1);
    std::thread::scope(|scope| {
        let writing = scope.spawn(move || -> io::Result<W> {
            for mut chunk in full_rx {
                out.write_all(&chunk)?;
                chunk.clear();
                let _ = empty_tx.try_send(chunk);
            }
            out.flush()?;
            Ok(out)
        });
        let mut w = ThreadedWriter {
            buf: Vec::with_capacity(CHUNK),
            full: Some(full_tx),
            empty: empty_rx,
        };
        let produced = produce(&mut w).and_then(|r| w.send().map(|()| r).map_err(&io_err));
        // Closing the channel ends the writing thread's loop.
        w.full = None;
        let written = writing.join().expect("the writing thread does not panic");
        match (produced, written) {
            (_, Err(e)) => Err(io_err(e)),
            (Err(e), Ok(_)) => Err(e),
            (Ok(r), Ok(out)) => Ok((r, out)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_errors_of_either_side_are_reported() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let (n, out) = with_writer_thread(
            Vec::new(),
            |w| -> io::Result<usize> {
                for piece in data.chunks(7919) {
                    w.write_all(piece)?;
                }
                Ok(data.len())
            },
            |e| e,
        )
        .unwrap();
        assert_eq!(n, data.len());
        assert_eq!(out, data);

        #[derive(Debug)]
        struct Failing(usize);
        impl Write for Failing {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk full"));
                }
                self.0 -= 1;
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = with_writer_thread(
            Failing(1),
            |w| -> io::Result<()> {
                for _ in 0..20 {
                    w.write_all(&vec![0; CHUNK])?;
                }
                Ok(())
            },
            |e| e,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");

        let err = with_writer_thread(
            Vec::new(),
            |w| -> io::Result<()> {
                w.write_all(b"partial")?;
                Err(io::Error::other("source vanished"))
            },
            |e| e,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "source vanished");
    }
}
