//! Blob uploads: existence check, cross-repository mounts (guided by the blob-location cache), then an upload
//! whose content is verified locally before it is committed.
//!
//! Small blobs go in the committing PUT. Larger ones are streamed in one PATCH (read and hashed on a blocking
//! thread, never held in memory), then committed with an empty PUT. After a failed PATCH the registry is asked how
//! much it received (`GET` on the session: `Range: 0-LAST`) and the upload resumes from there with
//! `Content-Range`; when the session is gone or says nothing useful, the upload starts over in a new one.
//!
//! Retries happen in one place: the requests of a session are sent once each, and [`Registry::put_blob`]'s loop
//! decides whether to resume, start over or give up, so `retry_times = n` means at most n + 1 attempts.

use std::io::Read;
use std::time::Duration;

use berth_spec::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::Scope;
use crate::client::{Registry, Request};
use crate::endpoint::{check_repo, header_value};
use crate::error::{RegistryError, Subject, Target};
use crate::response::status_error;
use crate::retry::retry_after;
use crate::upload_feed::{self, Feed};

/// Blobs up to this size go in one PUT (read into memory first); larger ones are streamed in a PATCH.
pub(crate) const MONOLITHIC_MAX: u64 = 4 * 1024 * 1024;
/// Most cached locations tried as mount sources.
const MOUNT_CANDIDATES: usize = 3;
/// Most attempts at one upload, however far each one got (a registry cutting every request after a few bytes
/// would otherwise keep it going for ever).
const MAX_ATTEMPTS: u32 = 64;
/// How often the progress of a streamed PATCH is reported.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// The local content of an upload: a factory, so a failed upload can start over.
pub type OpenBlob = dyn Fn() -> std::io::Result<Box<dyn Read + Send>> + Send + Sync;

/// What [`Registry::put_blob`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The repository already had the blob.
    Existed,
    /// The blob was mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// The blob was uploaded.
    Uploaded,
}

/// How a mount request ended.
enum Mount {
    Mounted,
    /// The registry opened an upload session instead (202).
    Session(Url),
}

/// Reports progress as increments, never counting bytes twice when an upload resumes or starts over.
struct Progress<'a> {
    callback: &'a (dyn Fn(u64) + Send + Sync),
    reported: u64,
}

impl Progress<'_> {
    fn reached(&mut self, total: u64) {
        if total > self.reported {
            (self.callback)(total - self.reported);
            self.reported = total;
        }
    }
}

/// The blob being uploaded.
struct Blob<'a> {
    repo: &'a str,
    digest: &'a Digest,
    size: u64,
    open: &'a OpenBlob,
    target: &'a Target,
    scope: Scope,
}

impl Blob<'_> {
    fn source_error(&self, reason: String) -> RegistryError {
        RegistryError::Source {
            target: Box::new(self.target.clone()),
            reason,
        }
    }

    fn open(&self) -> Result<upload_feed::BoxRead, RegistryError> {
        (self.open)().map_err(|e| self.source_error(format!("cannot be opened: {e}")))
    }
}

/// An upload session and how many bytes of the blob the registry holds in it.
struct Session {
    url: Url,
    offset: u64,
}

/// Why one attempt at an upload failed, and what the session loop may do next.
struct Failed {
    error: RegistryError,
    /// Another attempt could help.
    retry: bool,
    /// The `Retry-After` of the response that failed, if it had one.
    wait: Option<Duration>,
    /// The session the attempt used (to resume from, or cancel).
    session: Option<Url>,
    /// The session may hold part of the blob: ask it where to resume rather than start over.
    resumable: bool,
}

impl Failed {
    fn new(error: RegistryError, session: Option<Url>) -> Self {
        Failed {
            retry: error.is_transient(),
            error,
            wait: None,
            session,
            resumable: false,
        }
    }

    fn resumable(self) -> Self {
        Failed {
            resumable: true,
            ..self
        }
    }
}

impl Registry {
    /// Makes `digest` (of `size` bytes, read through `open`) present in `repo`: nothing to do if it is there
    /// already; otherwise a cross-repository mount from repositories the blob-location cache says hold it; otherwise
    /// an upload (one PUT up to 4 MiB; above, one streamed PATCH and a committing PUT). The content is hashed while
    /// read and must match `digest` and `size` before the upload is committed. A transient failure (connection
    /// trouble, 429, 5xx) resumes the upload where the registry says it stopped, or starts it over (reopening the
    /// content), at most `retry_times` times in a row and after the `Retry-After` the registry asked for.
    /// `progress` gets increments adding up to `size`.
    ///
    /// `open` is called on the async task (it should only open); reading and hashing happen on blocking threads.
    pub async fn put_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &OpenBlob,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PutOutcome, RegistryError> {
        let inner = &*self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        if let Some(found) = self.blob_exists(repo, digest).await? {
            if found != size {
                tracing::warn!(%digest, repo, found, size, "the registry reports another size for this blob");
            }
            return Ok(PutOutcome::Existed);
        }
        let mut session = None;
        let candidates = inner
            .cache
            .as_ref()
            .map_or_else(Vec::new, |c| c.repos_with(&inner.endpoint.host, digest));
        for from in candidates
            .into_iter()
            .filter(|r| r != repo && check_repo(&inner.endpoint.host, r).is_ok())
            .take(MOUNT_CANDIDATES)
        {
            match self.try_mount(repo, digest, &from).await {
                Ok(Mount::Mounted) => {
                    self.remember_location(repo, digest);
                    return Ok(PutOutcome::Mounted { from });
                }
                Ok(Mount::Session(url)) => {
                    tracing::debug!(%digest, from, "mount answered with an upload session; uploading into it");
                    session = Some(Session { url, offset: 0 });
                    break;
                }
                Err(e) => tracing::debug!(%digest, from, error = %e, "mount failed; trying the next location"),
            }
        }
        let mut progress = Progress {
            callback: progress,
            reported: 0,
        };
        let target = inner.target(repo, Subject::Upload(digest.clone()));
        let blob = Blob {
            repo,
            digest,
            size,
            open,
            target: &target,
            scope: Scope::push(repo),
        };
        let (mut failures, mut attempts, mut furthest) = (0u32, 0u32, 0u64);
        loop {
            attempts += 1;
            let result = match session.take() {
                Some(s) => self.attempt(&blob, s, &mut progress).await,
                None => match self.start_upload(&blob).await {
                    Ok(url) => self.attempt(&blob, Session { url, offset: 0 }, &mut progress).await,
                    Err(f) => Err(f),
                },
            };
            let failed = match result {
                Ok(()) => break,
                Err(f) => f,
            };
            // A committing PUT whose answer was lost may have landed: look before trying again.
            if !matches!(failed.error, RegistryError::Source { .. })
                && self.blob_exists(repo, digest).await.ok().flatten() == Some(size)
            {
                break;
            }
            failures += 1;
            if !failed.retry || failures > inner.retry.times || attempts >= MAX_ATTEMPTS {
                if let Some(url) = failed.session {
                    self.cancel(&blob, url).await;
                }
                return Err(failed.error);
            }
            let delay = failed.wait.unwrap_or_else(|| inner.retry.backoff(failures - 1));
            tracing::warn!(error = %failed.error, ?delay, "upload attempt failed; trying again");
            tokio::time::sleep(delay).await;
            session = match failed.session {
                Some(url) if failed.resumable => self.resume_point(&blob, url).await,
                Some(url) => {
                    self.cancel(&blob, url).await;
                    None
                }
                None => None,
            };
            if let Some(s) = &session
                && s.offset > furthest
            {
                // The registry holds more than ever before: the retry budget counts failures in a row.
                furthest = s.offset;
                failures = 0;
            }
        }
        progress.reached(size);
        self.remember_location(repo, digest);
        Ok(PutOutcome::Uploaded)
    }

    /// Asks the registry to mount `digest` from `from_repo` into `repo`: `true` if it did (201). When it opens an
    /// upload session instead (202: it does not have the blob there, or the token lacks pull on `from_repo`), the
    /// session is cancelled and the answer is `false`.
    pub async fn mount_blob(&self, repo: &str, digest: &Digest, from_repo: &str) -> Result<bool, RegistryError> {
        let host = &self.inner.endpoint.host;
        check_repo(host, repo)?;
        check_repo(host, from_repo)?;
        match self.try_mount(repo, digest, from_repo).await? {
            Mount::Mounted => {
                self.remember_location(repo, digest);
                Ok(true)
            }
            Mount::Session(url) => {
                let target = self.inner.target(repo, Subject::Upload(digest.clone()));
                let req = Request::new(Method::DELETE, url);
                if let Err(e) = self.inner.send_once(&req, &Scope::push(repo), &target).await {
                    tracing::debug!(error = %e, "cancelling the upload session failed");
                }
                Ok(false)
            }
        }
    }

    async fn try_mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount, RegistryError> {
        let inner = &self.inner;
        let target = inner.target(repo, Subject::Upload(digest.clone()));
        let mut url = inner.url(&format!("v2/{repo}/blobs/uploads/")).await?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let req = Request::new(Method::POST, url);
        let resp = inner
            .send_expect(&req, &Scope::mount(repo, from), &target, &[201, 202])
            .await?;
        if resp.status().as_u16() == 201 {
            return Ok(Mount::Mounted);
        }
        Ok(Mount::Session(location(&resp, &target)?))
    }

    /// `POST /v2/<repo>/blobs/uploads/`: the session URL.
    async fn start_upload(&self, blob: &Blob<'_>) -> Result<Url, Failed> {
        let inner = &self.inner;
        let url = inner
            .url(&format!("v2/{}/blobs/uploads/", blob.repo))
            .await
            .map_err(|e| Failed::new(e, None))?;
        let req = Request::new(Method::POST, url);
        let resp = inner
            .send_once(&req, &blob.scope, blob.target)
            .await
            .map_err(|e| Failed::new(e, None))?;
        let resp = self.expect(resp, StatusCode::ACCEPTED, blob.target, None).await?;
        location(&resp, blob.target).map_err(|e| Failed::new(e, None))
    }

    /// Best-effort `DELETE` of an upload session that will not be completed.
    async fn cancel(&self, blob: &Blob<'_>, url: Url) {
        let req = Request::new(Method::DELETE, url);
        if let Err(e) = self.inner.send_once(&req, &blob.scope, blob.target).await {
            tracing::debug!(error = %e, "cancelling the upload session failed");
        }
    }

    /// Asks the registry how much of the blob the session `url` holds (`GET`: 204 with `Range: 0-LAST` and a
    /// `Location` to go on with). `None`, after cancelling the session, when it is gone, holds nothing worth
    /// resuming from, or answers something unusable: the upload then starts over.
    async fn resume_point(&self, blob: &Blob<'_>, url: Url) -> Option<Session> {
        let req = Request::new(Method::GET, url.clone());
        let found = match self.inner.send_once(&req, &blob.scope, blob.target).await {
            Ok(resp) if resp.status() == StatusCode::NO_CONTENT => {
                let offset = resp
                    .headers()
                    .get(RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_upload_range);
                let next = location(&resp, blob.target).unwrap_or_else(|_| url.clone());
                offset.map(|offset| Session { url: next, offset })
            }
            Ok(resp) => {
                tracing::debug!(status = %resp.status(), "the upload session cannot say what it holds");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "asking the upload session what it holds failed");
                None
            }
        };
        match found {
            // `0-0` is what an empty session reports too: only a range past it says anything was received.
            Some(s) if s.offset > 1 && s.offset <= blob.size => {
                tracing::info!(offset = s.offset, size = blob.size, "resuming the upload");
                Some(s)
            }
            _ => {
                self.cancel(blob, url).await;
                None
            }
        }
    }

    /// One attempt in an open session.
    async fn attempt(&self, blob: &Blob<'_>, session: Session, progress: &mut Progress<'_>) -> Result<(), Failed> {
        if blob.size <= MONOLITHIC_MAX {
            self.upload_whole(blob, session.url).await
        } else {
            self.upload_streamed(blob, session, progress).await
        }
    }

    /// Reads the whole (small) blob, verifies it, and sends it with the committing PUT.
    async fn upload_whole(&self, blob: &Blob<'_>, session: Url) -> Result<(), Failed> {
        let fail = |e| Failed::new(e, Some(session.clone()));
        let reader = blob.open().map_err(fail)?;
        let data = upload_feed::read_whole(reader, blob.digest, blob.size)
            .await
            .map_err(|reason| fail(blob.source_error(reason)))?;
        let req = Request::new(Method::PUT, with_digest(session.clone(), blob.digest))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
            .body(data);
        let resp = self
            .inner
            .send_once(&req, &blob.scope, blob.target)
            .await
            .map_err(fail)?;
        self.expect(resp, StatusCode::CREATED, blob.target, Some(session.clone()))
            .await?;
        Ok(())
    }

    /// Streams the blob from `session.offset` in one PATCH, then commits with an empty PUT once size and digest
    /// are verified.
    async fn upload_streamed(
        &self,
        blob: &Blob<'_>,
        session: Session,
        progress: &mut Progress<'_>,
    ) -> Result<(), Failed> {
        let Session { mut url, offset } = session;
        let reader = blob.open().map_err(|e| Failed::new(e, Some(url.clone())))?;
        let mut feed = Feed::start(reader, blob.digest.algorithm(), offset, blob.size);
        if offset < blob.size {
            let req = Request::new(Method::PATCH, url.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
                .header(
                    CONTENT_RANGE,
                    header_value(&format!("{offset}-{}", blob.size - 1)).expect("digits"),
                )
                .header(
                    CONTENT_LENGTH,
                    header_value(&(blob.size - offset).to_string()).expect("digits"),
                );
            let sending = self.inner.send_stream(&req, feed.take_body(), &blob.scope, blob.target);
            let sent = report_while(sending, &feed, progress).await;
            // Content that is not what was promised explains whatever the request ended with.
            if let Some(reason) = feed.problem() {
                return Err(Failed::new(blob.source_error(reason), Some(url)));
            }
            let resp = sent.map_err(|e| Failed::new(e, Some(url.clone())).resumable())?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                return Err(self.unauthorized(blob, resp, url).await);
            }
            let resp = self
                .expect(resp, StatusCode::ACCEPTED, blob.target, Some(url.clone()))
                .await
                .map_err(|f| match (f.retry, offset) {
                    (true, _) => f.resumable(),
                    // A resumed PATCH refused (416 RANGE_INVALID, say): start over.
                    (false, 1..) => Failed { retry: true, ..f },
                    (false, 0) => f,
                })?;
            url = location(&resp, blob.target).map_err(|e| Failed::new(e, None))?;
        }
        let found = feed
            .finish()
            .await
            .map_err(|reason| Failed::new(blob.source_error(reason), Some(url.clone())))?;
        upload_feed::check(found, blob.digest)
            .map_err(|reason| Failed::new(blob.source_error(reason), Some(url.clone())))?;
        progress.reached(blob.size);
        let req = Request::new(Method::PUT, with_digest(url.clone(), blob.digest));
        let resp = self
            .inner
            .send_once(&req, &blob.scope, blob.target)
            .await
            .map_err(|e| Failed::new(e, Some(url.clone())).resumable())?;
        self.expect(resp, StatusCode::CREATED, blob.target, Some(url))
            .await
            .map_err(Failed::resumable)?;
        Ok(())
    }

    /// A 401 to a streamed PATCH (a token that expired mid-upload, say): worth resuming if re-authenticating
    /// per its challenge got fresh credentials, an error otherwise.
    async fn unauthorized(&self, blob: &Blob<'_>, resp: Response, url: Url) -> Failed {
        let inner = &*self.inner;
        let renewed = inner
            .auth
            .on_unauthorized(inner, resp.headers(), &blob.scope)
            .await
            .unwrap_or(false);
        let error = status_error(resp, Box::new(blob.target.clone()), inner.stall).await;
        Failed {
            retry: renewed,
            ..Failed::new(error, Some(url)).resumable()
        }
    }

    /// `resp` if its status is `ok`, otherwise the error it carries and the wait its `Retry-After` asks for.
    async fn expect(
        &self,
        resp: Response,
        ok: StatusCode,
        target: &Target,
        session: Option<Url>,
    ) -> Result<Response, Failed> {
        if resp.status() == ok {
            return Ok(resp);
        }
        let wait = retry_after(resp.headers());
        let error = status_error(resp, Box::new(target.clone()), self.inner.stall).await;
        Err(Failed {
            wait,
            ..Failed::new(error, session)
        })
    }
}

/// Awaits `sending`, reporting the feed's progress meanwhile.
async fn report_while<T>(sending: impl Future<Output = T>, feed: &Feed, progress: &mut Progress<'_>) -> T {
    let mut sending = std::pin::pin!(sending);
    let mut tick = tokio::time::interval(PROGRESS_TICK);
    loop {
        tokio::select! {
            out = &mut sending => return out,
            _ = tick.tick() => progress.reached(feed.sent()),
        }
    }
}

/// The offset after an upload session's `Range: 0-LAST` (CNCF distribution writes no unit; `bytes=` is accepted).
fn parse_upload_range(value: &str) -> Option<u64> {
    let value = value.trim();
    let range = value.strip_prefix("bytes=").unwrap_or(value);
    let (first, last) = range.split_once('-')?;
    let digits = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok())?;
    (digits(first)? == 0).then_some(())?;
    digits(last)?.checked_add(1)
}

/// The `Location` of an upload response, resolved against the URL that answered (it may be relative).
fn location(resp: &Response, target: &Target) -> Result<Url, RegistryError> {
    let Some(value) = resp.headers().get(LOCATION) else {
        return Err(RegistryError::MissingLocation {
            target: Box::new(target.clone()),
            status: resp.status().as_u16(),
        });
    };
    value
        .to_str()
        .ok()
        .and_then(|v| resp.url().join(v.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| RegistryError::BadResponse {
            target: Box::new(target.clone()),
            reason: format!("invalid upload Location {value:?}"),
        })
}

fn with_digest(mut url: Url, digest: &Digest) -> Url {
    url.query_pairs_mut().append_pair("digest", &digest.to_string());
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ranges() {
        assert_eq!(parse_upload_range("0-0"), Some(1));
        assert_eq!(parse_upload_range("0-1023"), Some(1024));
        assert_eq!(parse_upload_range(" bytes=0-9 "), Some(10));
        assert_eq!(parse_upload_range("5-9"), None, "a session holds a prefix");
        assert_eq!(parse_upload_range("0-"), None);
        assert_eq!(parse_upload_range("0--1"), None);
        assert_eq!(parse_upload_range("0-18446744073709551615"), None);
        assert_eq!(parse_upload_range(""), None);
    }
}
