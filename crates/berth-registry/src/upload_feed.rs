//! The local content of an upload, read on a blocking thread: hashed as it is read, held to the size the caller
//! promised, and either returned whole (small blobs) or handed piece by piece to a streamed request body through a
//! bounded channel, so a large blob is never in memory and no tokio worker reads a file or hashes.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use berth_spec::{Algorithm, Digest, Hasher};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Bytes read (and sent) at a time.
const PIECE: u64 = 256 * 1024;
/// Pieces read ahead of the HTTP client.
const AHEAD: usize = 4;

/// The reader an [`OpenBlob`](crate::OpenBlob) gives.
pub(crate) type BoxRead = Box<dyn Read + Send>;

/// Reads all `size` bytes of `reader` on a blocking thread and checks them against `digest`. The error says what is
/// wrong with the content (to follow "the local content to upload").
pub(crate) async fn read_whole(reader: BoxRead, digest: &Digest, size: u64) -> Result<Bytes, String> {
    let expected = digest.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let mut data = Vec::new();
        reader
            .take(size + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if data.len() as u64 != size {
            return Err(format!("has {} bytes, not the {size} promised", data.len()));
        }
        check(Digest::of_bytes(expected.algorithm(), &data), &expected)?;
        Ok(Bytes::from(data))
    })
    .await;
    joined.unwrap_or_else(|e| Err(format!("cannot be read: the reading thread failed: {e}")))
}

/// `Ok` if `found` is `expected`, otherwise what to say about the content.
pub(crate) fn check(found: Digest, expected: &Digest) -> Result<(), String> {
    if found == *expected {
        Ok(())
    } else {
        Err(format!("has digest {found}, not {expected}"))
    }
}

/// A blocking thread reading a blob from an offset into a streamed request body.
pub(crate) struct Feed {
    body: Option<reqwest::Body>,
    /// Bytes read so far, counting the skipped ones: what the registry holds once the body is sent.
    sent: Arc<AtomicU64>,
    /// What is wrong with the content, set before the body is aborted because of it.
    problem: Arc<OnceLock<String>>,
    thread: JoinHandle<Result<Digest, String>>,
    /// Dropped with the feed: stops a thread waiting for a body nobody reads any more.
    _stop: oneshot::Sender<()>,
}

impl Feed {
    /// Starts reading `reader`: the first `from` bytes are hashed only (the registry has them), the rest up to
    /// `size` go into the body. The body ends early with an error when the content is shorter than `size`.
    pub(crate) fn start(reader: BoxRead, algorithm: Algorithm, from: u64, size: u64) -> Self {
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(AHEAD);
        let (stop_tx, stop_rx) = oneshot::channel();
        let sent = Arc::new(AtomicU64::new(0));
        let problem = Arc::new(OnceLock::new());
        let pump = Pump {
            runtime: tokio::runtime::Handle::current(),
            tx,
            stop: stop_rx,
            sent: sent.clone(),
            problem: problem.clone(),
        };
        let thread = tokio::task::spawn_blocking(move || pump.run(reader, algorithm, from, size));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Feed {
            body: Some(reqwest::Body::wrap_stream(stream)),
            sent,
            problem,
            thread,
            _stop: stop_tx,
        }
    }

    /// The request body (once).
    pub(crate) fn take_body(&mut self) -> reqwest::Body {
        self.body.take().expect("the body is taken once")
    }

    /// How many bytes of the blob have been read into the body (or skipped).
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// What is wrong with the content, if reading it failed or it was shorter than promised.
    pub(crate) fn problem(&self) -> Option<String> {
        self.problem.get().cloned()
    }

    /// Waits for the reading to end (the body must have been consumed, or dropped): the digest of the whole
    /// content, or what is wrong with it (including content longer than promised).
    pub(crate) async fn finish(mut self) -> Result<Digest, String> {
        drop(self.body.take());
        let thread = &mut self.thread;
        thread
            .await
            .unwrap_or_else(|e| Err(format!("cannot be read: the reading thread failed: {e}")))
    }
}

/// The blocking half of a [`Feed`].
struct Pump {
    runtime: tokio::runtime::Handle,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    stop: oneshot::Receiver<()>,
    sent: Arc<AtomicU64>,
    problem: Arc<OnceLock<String>>,
}

impl Pump {
    fn run(mut self, mut reader: BoxRead, algorithm: Algorithm, from: u64, size: u64) -> Result<Digest, String> {
        let mut hasher = Hasher::new(algorithm);
        let mut offset = 0u64;
        while offset < size {
            let want = PIECE.min(size - offset);
            let mut piece = Vec::with_capacity(want as usize);
            if let Err(e) = (&mut reader).take(want).read_to_end(&mut piece) {
                return Err(self.fail(format!("cannot be read: {e}")));
            }
            if piece.is_empty() {
                return Err(self.fail(format!("ends after {offset} bytes, not the {size} promised")));
            }
            hasher.update(&piece);
            let end = offset + piece.len() as u64;
            // The part the registry holds already is only hashed.
            if end > from {
                let skip = from.saturating_sub(offset) as usize;
                let fresh = Bytes::from(piece).slice(skip..);
                if !self.deliver(Ok(fresh)) {
                    return Err("was not read to the end: the request stopped taking it".to_owned());
                }
            }
            offset = end;
            self.sent.store(offset, Ordering::Relaxed);
        }
        // The body is complete: let it end before looking for content beyond the promised size.
        drop(self.tx);
        let mut extra = Vec::new();
        if let Err(e) = reader.take(1).read_to_end(&mut extra) {
            return Err(format!("cannot be read: {e}"));
        }
        if !extra.is_empty() {
            return Err(format!("is longer than the {size} bytes promised"));
        }
        Ok(hasher.finish())
    }

    /// Hands an item to the body; `false` once nobody will read it.
    fn deliver(&mut self, item: std::io::Result<Bytes>) -> bool {
        let (tx, stop) = (&self.tx, &mut self.stop);
        self.runtime.block_on(async {
            tokio::select! {
                sent = tx.send(item) => sent.is_ok(),
                _ = stop => false,
            }
        })
    }

    /// Records what is wrong with the content, then aborts the body with it.
    fn fail(&mut self, reason: String) -> String {
        let _ = self.problem.set(reason.clone());
        self.deliver(Err(std::io::Error::other(reason.clone())));
        reason
    }
}
