//! Blob uploads: existence check, cross-repository mounts (guided by the blob-location cache), then a
//! monolithic or chunked upload whose content is verified locally before it is committed.

use std::io::Read;

use berth_spec::{Digest, Hasher};
use bytes::Bytes;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, Response, Url};

use crate::auth::Scope;
use crate::client::{Inner, Registry, Request};
use crate::endpoint::{check_repo, header_value};
use crate::error::{RegistryError, Subject, Target};

/// Blobs up to this size go in one PUT; larger ones in PATCH chunks.
pub(crate) const MONOLITHIC_MAX: u64 = 16 * 1024 * 1024;
/// Chunk size of chunked uploads.
pub(crate) const CHUNK_SIZE: u64 = 8 * 1024 * 1024;
/// Most cached locations tried as mount sources.
const MOUNT_CANDIDATES: usize = 3;

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

/// Reports progress as increments, never counting bytes twice when an upload starts over.
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

impl Registry {
    /// Makes `digest` (of `size` bytes, read through `open`) present in `repo`: nothing to do if it is there
    /// already; otherwise a cross-repository mount from repositories the blob-location cache says hold it; otherwise
    /// an upload (one PUT up to 16 MiB, 8 MiB PATCH chunks above). The content is hashed while read and must match
    /// `digest` and `size` before the upload is committed. A transient failure starts the upload over (reopening
    /// the content), at most `retry_times` times. `progress` gets increments adding up to `size`.
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
                    session = Some(url);
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
        let mut attempt = 0;
        loop {
            let url = match session.take() {
                Some(url) => url,
                None => self.start_upload(repo, &target).await?,
            };
            let result = if size <= MONOLITHIC_MAX {
                self.upload_whole(repo, digest, size, open, url.clone(), &target).await
            } else {
                self.upload_chunks(repo, digest, size, open, url.clone(), &target, &mut progress)
                    .await
            };
            match result {
                Ok(()) => break,
                Err(e) => {
                    self.cancel(repo, url, &target).await;
                    // A repeated final PUT can fail (session gone) after the first one landed: look before failing.
                    let landed = !matches!(e, RegistryError::Source { .. })
                        && self.blob_exists(repo, digest).await.ok().flatten() == Some(size);
                    if landed {
                        break;
                    }
                    if !e.is_transient() || attempt >= inner.retry.times {
                        return Err(e);
                    }
                    let delay = inner.retry.backoff(attempt);
                    tracing::warn!(error = %e, ?delay, "upload failed; starting over");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
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
                self.cancel(repo, url, &target).await;
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
    async fn start_upload(&self, repo: &str, target: &Target) -> Result<Url, RegistryError> {
        let inner = &self.inner;
        let url = inner.url(&format!("v2/{repo}/blobs/uploads/")).await?;
        let req = Request::new(Method::POST, url);
        let resp = inner.send_expect(&req, &Scope::push(repo), target, &[202]).await?;
        location(&resp, target)
    }

    /// Best-effort `DELETE` of an upload session that will not be completed.
    async fn cancel(&self, repo: &str, url: Url, target: &Target) {
        let req = Request::new(Method::DELETE, url);
        if let Err(e) = self.inner.send(&req, &Scope::push(repo), target).await {
            tracing::debug!(error = %e, "cancelling the upload session failed");
        }
    }

    /// Reads the whole (small) blob, verifies it, and sends it with the committing PUT.
    async fn upload_whole(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &OpenBlob,
        session: Url,
        target: &Target,
    ) -> Result<(), RegistryError> {
        let reader = open().map_err(|e| source_error(target, format!("cannot be opened: {e}")))?;
        let (_, data) = read_up_to(reader, size + 1, target).await?;
        if data.len() as u64 != size {
            return Err(source_error(
                target,
                format!("has {} bytes, not the {size} promised", data.len()),
            ));
        }
        verify(Digest::of_bytes(digest.algorithm(), &data), digest, target)?;
        let req = Request::new(Method::PUT, with_digest(session, digest))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
            .body(Bytes::from(data));
        self.inner.send_expect(&req, &Scope::push(repo), target, &[201]).await?;
        Ok(())
    }

    /// Sends the blob in PATCH chunks with `Content-Range`, following each new `Location`, then commits with an
    /// empty PUT once size and digest are verified.
    #[allow(clippy::too_many_arguments)]
    async fn upload_chunks(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &OpenBlob,
        session: Url,
        target: &Target,
        progress: &mut Progress<'_>,
    ) -> Result<(), RegistryError> {
        let inner: &Inner = &self.inner;
        let scope = Scope::push(repo);
        let mut reader = open().map_err(|e| source_error(target, format!("cannot be opened: {e}")))?;
        let mut hasher = Hasher::new(digest.algorithm());
        let (mut url, mut offset) = (session, 0u64);
        while offset < size {
            let (r, chunk) = read_up_to(reader, CHUNK_SIZE.min(size - offset), target).await?;
            reader = r;
            if chunk.is_empty() {
                return Err(source_error(
                    target,
                    format!("ends after {offset} bytes, not the {size} promised"),
                ));
            }
            hasher.update(&chunk);
            let last = offset + chunk.len() as u64 - 1;
            let req = Request::new(Method::PATCH, url)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
                .header(
                    CONTENT_RANGE,
                    header_value(&format!("{offset}-{last}")).expect("digits"),
                )
                .body(Bytes::from(chunk));
            let resp = inner.send_expect(&req, &scope, target, &[202]).await?;
            url = location(&resp, target)?;
            offset = last + 1;
            progress.reached(offset);
        }
        let (_, extra) = read_up_to(reader, 1, target).await?;
        if !extra.is_empty() {
            return Err(source_error(
                target,
                format!("is longer than the {size} bytes promised"),
            ));
        }
        verify(hasher.finish(), digest, target)?;
        let req = Request::new(Method::PUT, with_digest(url, digest));
        inner.send_expect(&req, &scope, target, &[201]).await?;
        Ok(())
    }
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

fn source_error(target: &Target, reason: String) -> RegistryError {
    RegistryError::Source {
        target: Box::new(target.clone()),
        reason,
    }
}

fn verify(found: Digest, expected: &Digest, target: &Target) -> Result<(), RegistryError> {
    if found == *expected {
        Ok(())
    } else {
        Err(source_error(target, format!("has digest {found}, not {expected}")))
    }
}

type BoxRead = Box<dyn Read + Send>;

/// Reads up to `limit` bytes (fewer only at end of input) on a blocking thread; gives the reader back.
async fn read_up_to(reader: BoxRead, limit: u64, target: &Target) -> Result<(BoxRead, Vec<u8>), RegistryError> {
    let joined = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let mut taken = reader.take(limit);
        let result = taken.read_to_end(&mut buf);
        (taken.into_inner(), buf, result)
    })
    .await;
    match joined {
        Ok((reader, buf, Ok(_))) => Ok((reader, buf)),
        Ok((_, _, Err(e))) => Err(source_error(target, format!("cannot be read: {e}"))),
        Err(e) => Err(source_error(
            target,
            format!("cannot be read: the reading thread failed: {e}"),
        )),
    }
}
