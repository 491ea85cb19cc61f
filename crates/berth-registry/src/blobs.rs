//! Blob existence checks and resumable, verified downloads.

use std::io::Write;

use berth_spec::{Digest, Hasher};
use bytes::Bytes;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, Url};

use crate::auth::Scope;
use crate::client::{Inner, Registry, Request};
use crate::endpoint::{check_repo, header_value};
use crate::error::{RegistryError, Subject, Target};
use crate::response::{content_length, next_chunk, status_error};

/// Most resumptions of one download that made progress (a server dribbling a byte per connection is cut off).
const MAX_RESUMES: u32 = 64;

/// How one request of a download ended.
enum PartError {
    /// The body was cut or stalled: resume from the current offset.
    Interrupted(RegistryError),
    /// Resuming cannot help.
    Fatal(RegistryError),
}

/// Who checks a downloaded blob against its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCheck {
    /// The registry client hashes the bytes and fails on a mismatch.
    Here,
    /// The sink verifies what it receives (and refuses to keep a mismatch); the client does not hash.
    BySink,
}

struct Download<'a> {
    inner: &'a Inner,
    target: Box<Target>,
    url: Url,
    scope: Scope,
    size: u64,
    offset: u64,
    /// `None` when the sink verifies the digest itself.
    hasher: Option<Hasher>,
    sink: Sink<'a>,
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

/// Where downloaded chunks go.
enum Sink<'a> {
    /// A callback that takes them at once (memory, or a cheap hand-off).
    Call(&'a mut (dyn FnMut(Bytes) -> std::io::Result<()> + Send)),
    /// A bounded channel to a writer on another thread: waiting for room suspends the download, never the
    /// thread it runs on.
    Channel(tokio::sync::mpsc::Sender<Bytes>),
}

impl Sink<'_> {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        match self {
            Sink::Call(f) => f(chunk),
            Sink::Channel(tx) => tx
                .send(chunk)
                .await
                .map_err(|_| std::io::Error::other("the writer of the downloaded data stopped")),
        }
    }
}

impl Registry {
    /// The size of `digest` in `repo` if the registry has it there (`HEAD`), `None` on 404.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let inner = &self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        let target = inner.target(repo, Subject::Blob(digest.clone()));
        let url = inner.url(&format!("v2/{repo}/blobs/{digest}")).await?;
        let req = Request::new(Method::HEAD, url);
        let resp = inner
            .send_expect(&req, &Scope::pull(repo), &target, &[200, 404])
            .await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let size = content_length(&resp).ok_or_else(|| RegistryError::BadResponse {
            target,
            reason: "HEAD answered 200 without a Content-Length".into(),
        })?;
        self.remember_location(repo, digest);
        Ok(Some(size))
    }

    /// Downloads blob `digest` of `size` bytes into `sink`, calling `progress` with the number of new bytes as they
    /// arrive (the calls add up to `size`).
    ///
    /// The bytes are hashed on the way. When the connection drops, stalls, or the body ends early, the download
    /// resumes with `Range: bytes=N-` and accepts a 206 only if its `Content-Range` starts at N; a 200 to a range
    /// request (the whole blob again) is read with its first N bytes skipped. Size and digest are checked at the
    /// end; more bytes than `size` are refused as soon as they arrive. Redirects (to object storage) are followed
    /// without `Authorization`.
    pub async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        sink: &mut (dyn Write + Send),
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        self.get_blob_checked(repo, digest, size, sink, progress, DigestCheck::Here)
            .await
    }

    /// [`get_blob`](Self::get_blob), with the digest check done here or left to a sink that verifies what it is
    /// given ([`DigestCheck::BySink`]: an OCI layout's blob writer, which hashes while writing and refuses to
    /// commit a mismatch) — so the bytes are hashed once, not twice. The size is checked here either way.
    pub async fn get_blob_checked(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        sink: &mut (dyn Write + Send),
        progress: &(dyn Fn(u64) + Send + Sync),
        check: DigestCheck,
    ) -> Result<(), RegistryError> {
        let mut put = |chunk: Bytes| sink.write_all(&chunk);
        self.get_blob_chunks(repo, digest, size, &mut put, progress, check)
            .await
    }

    /// [`get_blob_checked`](Self::get_blob_checked), handing the body to `sink` chunk by chunk as received, without
    /// copying it.
    pub async fn get_blob_chunks(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        sink: &mut (dyn FnMut(Bytes) -> std::io::Result<()> + Send),
        progress: &(dyn Fn(u64) + Send + Sync),
        check: DigestCheck,
    ) -> Result<(), RegistryError> {
        self.download(repo, digest, size, Sink::Call(sink), progress, check)
            .await
    }

    /// [`get_blob_chunks`](Self::get_blob_chunks) into a bounded channel, for a writer on a blocking thread (disk
    /// writes and hashing stay off the async runtime; a slow disk slows the download instead of filling memory).
    /// The channel closes when the download ends; a closed receiver stops it with [`RegistryError::Sink`].
    pub async fn get_blob_to_channel(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        sink: tokio::sync::mpsc::Sender<Bytes>,
        progress: &(dyn Fn(u64) + Send + Sync),
        check: DigestCheck,
    ) -> Result<(), RegistryError> {
        self.download(repo, digest, size, Sink::Channel(sink), progress, check)
            .await
    }

    async fn download<'a>(
        &'a self,
        repo: &str,
        digest: &Digest,
        size: u64,
        sink: Sink<'a>,
        progress: &'a (dyn Fn(u64) + Send + Sync),
        check: DigestCheck,
    ) -> Result<(), RegistryError> {
        let inner = &*self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        let mut d = Download {
            inner,
            target: inner.target(repo, Subject::Blob(digest.clone())),
            url: inner.url(&format!("v2/{repo}/blobs/{digest}")).await?,
            scope: Scope::pull(repo),
            size,
            offset: 0,
            hasher: (check == DigestCheck::Here).then(|| Hasher::new(digest.algorithm())),
            sink,
            progress,
        };
        let (mut failures, mut resumes) = (0u32, 0u32);
        loop {
            let before = d.offset;
            match d.part().await {
                Ok(()) if d.offset >= size => break,
                Ok(()) => {}
                Err(PartError::Fatal(e)) => return Err(e),
                Err(PartError::Interrupted(e)) => {
                    failures = if d.offset > before { 1 } else { failures + 1 };
                    if failures > inner.retry.times {
                        return Err(e);
                    }
                    let delay = inner.retry.backoff(failures - 1);
                    tracing::warn!(error = %e, offset = d.offset, ?delay, "download interrupted; resuming");
                    tokio::time::sleep(delay).await;
                }
            }
            resumes += 1;
            if resumes > MAX_RESUMES {
                return Err(RegistryError::Transport {
                    target: d.target,
                    detail: format!("gave up after {MAX_RESUMES} interrupted requests at byte {}", d.offset),
                });
            }
        }
        if let Some(hasher) = d.hasher {
            let found = hasher.finish();
            if found != *digest {
                return Err(RegistryError::DigestMismatch {
                    target: d.target,
                    expected: digest.clone(),
                    found,
                });
            }
        }
        self.remember_location(repo, digest);
        Ok(())
    }

    /// Notes in the blob-location cache (if any) that `repo` holds `digest`.
    pub(crate) fn remember_location(&self, repo: &str, digest: &Digest) {
        if let Some(cache) = &self.inner.cache {
            cache.record(&self.inner.endpoint.host, digest, repo);
        }
    }
}

impl Download<'_> {
    fn fatal(&self, make: impl FnOnce(Box<Target>) -> RegistryError) -> PartError {
        PartError::Fatal(make(self.target.clone()))
    }

    /// One request: from `offset` to the end of what the server sends.
    async fn part(&mut self) -> Result<(), PartError> {
        let mut req = Request::new(Method::GET, self.url.clone());
        if self.offset > 0 {
            let range = header_value(&format!("bytes={}-", self.offset)).expect("digits");
            req = req.header(RANGE, range);
        }
        let resp = self
            .inner
            .send(&req, &self.scope, &self.target)
            .await
            .map_err(PartError::Fatal)?;
        let Some((end, mut skip)) = self.check_response(&resp)? else {
            return Err(PartError::Fatal(
                status_error(resp, self.target.clone(), self.inner.stall).await,
            ));
        };
        let mut resp = resp;
        loop {
            let chunk = match next_chunk(&mut resp, self.inner.stall).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) if self.offset < end => {
                    let detail = format!("the body ended after {} of {} bytes", self.offset, self.size);
                    return Err(PartError::Interrupted(RegistryError::Transport {
                        target: self.target.clone(),
                        detail,
                    }));
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(PartError::Interrupted(e.into_error(self.target.clone()))),
            };
            // The part of a whole body (Range ignored) that was already received: dropped, not compared. The
            // digest of what is kept, checked at the end, covers both halves.
            let chunk = if skip > 0 {
                let dropped = skip.min(chunk.len() as u64);
                skip -= dropped;
                chunk.slice(dropped as usize..)
            } else {
                chunk
            };
            if chunk.is_empty() {
                continue;
            }
            let after = self.offset + chunk.len() as u64;
            if after > end {
                let expected = self.size;
                return Err(self.fatal(|target| RegistryError::SizeMismatch {
                    target,
                    expected,
                    found: after,
                }));
            }
            let len = chunk.len() as u64;
            if let Some(h) = &mut self.hasher {
                h.update(&chunk);
            }
            if let Err(source) = self.sink.put(chunk).await {
                return Err(self.fatal(|target| RegistryError::Sink { target, source }));
            }
            self.offset = after;
            (self.progress)(len);
        }
    }

    /// Checks status, `Content-Range` and `Content-Length`; returns the offset the body ends at and how many of its
    /// first bytes were already received (a server that ignored `Range` sends the whole blob again), or `None`
    /// when the status is an error for the caller to read.
    fn check_response(&self, resp: &Response) -> Result<Option<(u64, u64)>, PartError> {
        let (offset, size) = (self.offset, self.size);
        match resp.status().as_u16() {
            200 => match content_length(resp) {
                Some(n) if n != size => Err(self.fatal(|target| RegistryError::SizeMismatch {
                    target,
                    expected: size,
                    found: n,
                })),
                _ => {
                    if offset > 0 {
                        tracing::debug!(
                            offset,
                            "the server ignored Range: reading the blob again from the start"
                        );
                    }
                    Ok(Some((size, offset)))
                }
            },
            206 => {
                let value = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                let bad = || {
                    self.fatal(|target| RegistryError::BadContentRange {
                        target,
                        offset,
                        value: value.clone(),
                    })
                };
                let (start, last) = parse_content_range(&value, size).ok_or_else(bad)?;
                if start != offset || content_length(resp).is_some_and(|n| n != last - start + 1) {
                    return Err(bad());
                }
                Ok(Some((last + 1, 0)))
            }
            _ => Ok(None),
        }
    }
}

/// `bytes START-LAST/TOTAL` with TOTAL `*` or `size`, `START <= LAST < size`: returns `(START, LAST)`.
pub(crate) fn parse_content_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, last) = range.split_once('-')?;
    let digits = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (start, last) = (digits(start)?, digits(last)?);
    let total_ok = total.trim() == "*" || digits(total) == Some(size);
    (total_ok && start <= last && last < size).then_some((start, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 5-9/10", 10), Some((5, 9)));
        assert_eq!(parse_content_range("bytes 5-7/*", 10), Some((5, 7)));
        assert_eq!(
            parse_content_range("bytes 5-9/11", 10),
            None,
            "total differs from the descriptor"
        );
        assert_eq!(parse_content_range("bytes 5-10/10", 10), None, "past the end");
        assert_eq!(parse_content_range("bytes 9-5/10", 10), None);
        assert_eq!(parse_content_range("bytes */10", 10), None);
        assert_eq!(parse_content_range("items 0-1/10", 10), None);
        assert_eq!(parse_content_range("bytes -1-2/10", 10), None);
        assert_eq!(parse_content_range("", 10), None);
    }
}
