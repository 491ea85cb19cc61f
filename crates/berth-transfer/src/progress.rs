//! Progress events: the engine calls a [`Progress`]; each binary decides how they look (bars on a TTY, plain
//! periodic lines otherwise, nothing with `--quiet`). The library never prints.

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
