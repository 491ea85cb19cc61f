//! Manifests: GET (bounded, digest computed locally), HEAD, PUT and DELETE.

use berth_spec::document::DEFAULT_MAX_DOCUMENT_SIZE;
use berth_spec::{Algorithm, Digest, media_type};
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde::Deserialize;

use crate::auth::Scope;
use crate::client::{Registry, Request};
use crate::endpoint::{ManifestRef, check_repo, header_value};
use crate::error::{RegistryError, Subject};
use crate::response::{content_length, read_capped};

/// What a manifest GET asks for when the caller names no media types.
const DEFAULT_ACCEPT: &[&str] = &[
    media_type::OCI_MANIFEST,
    media_type::OCI_INDEX,
    media_type::DOCKER_MANIFEST,
    media_type::DOCKER_MANIFEST_LIST,
];

/// A manifest or index as received: raw bytes, the media type the registry declared, and the digest computed
/// here over the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The bytes exactly as received.
    pub bytes: Vec<u8>,
    /// `Content-Type` (without parameters), or the document's own `mediaType` when the header is missing.
    pub media_type: String,
    /// The digest of `bytes` (sha256, or the algorithm of the digest it was requested by).
    pub digest: Digest,
}

/// The part of a manifest that names its own media type.
#[derive(Deserialize)]
struct MediaTypeField {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
}

fn accept_header(accept: &[&str]) -> reqwest::header::HeaderValue {
    let list = if accept.is_empty() { DEFAULT_ACCEPT } else { accept };
    header_value(&list.join(", ")).unwrap_or_else(|| header_value(&DEFAULT_ACCEPT.join(", ")).expect("static"))
}

/// `Content-Type` without parameters, if present and not empty.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let v = v.split(';').next().unwrap_or_default().trim();
    (!v.is_empty()).then(|| v.to_owned())
}

impl Registry {
    /// Fetches a manifest by tag or digest. At most 4 MiB is read; the digest is computed over the bytes
    /// received (`Docker-Content-Digest` is ignored), and must equal `reference` when that is a digest.
    /// `accept` lists the media types wanted (empty: OCI and Docker v2 manifests and indexes).
    pub async fn get_manifest(&self, repo: &str, reference: &str, accept: &[&str]) -> Result<Manifest, RegistryError> {
        let inner = &self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        let r = ManifestRef::parse(&inner.endpoint.host, repo, reference)?;
        let target = inner.target(repo, Subject::Manifest(reference.to_owned()));
        let url = inner.url(&format!("v2/{repo}/manifests/{r}")).await?;
        let req = Request::new(Method::GET, url).header(ACCEPT, accept_header(accept));
        let resp = inner.send_expect(&req, &Scope::pull(repo), &target, &[200]).await?;
        let declared = content_type(resp.headers());
        let bytes = read_capped(resp, DEFAULT_MAX_DOCUMENT_SIZE, inner.stall, &target).await?;
        let algorithm = r.digest().map_or(Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of_bytes(algorithm, &bytes);
        if let Some(expected) = r.digest()
            && *expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                target,
                expected: expected.clone(),
                found: digest,
            });
        }
        let media_type = match declared {
            Some(mt) => mt,
            None => serde_json::from_slice::<MediaTypeField>(&bytes)
                .ok()
                .and_then(|f| f.media_type)
                .ok_or_else(|| RegistryError::BadResponse {
                    target: target.clone(),
                    reason: "no Content-Type and no mediaType field: cannot tell what the document is".into(),
                })?,
        };
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Whether a manifest exists: `Some((digest, media type, size))`, or `None` on 404.
    ///
    /// A HEAD has no body to hash, so the digest is the registry's `Docker-Content-Digest`, checked against
    /// `reference` when that is a digest; use it to decide "already there?", never as proof of content. When the
    /// registry omits the header or the size, this falls back to a GET and computes both.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<Option<(Digest, String, u64)>, RegistryError> {
        let inner = &self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        let r = ManifestRef::parse(&inner.endpoint.host, repo, reference)?;
        let target = inner.target(repo, Subject::Manifest(reference.to_owned()));
        let url = inner.url(&format!("v2/{repo}/manifests/{r}")).await?;
        let req = Request::new(Method::HEAD, url).header(ACCEPT, accept_header(accept));
        let resp = inner
            .send_expect(&req, &Scope::pull(repo), &target, &[200, 404])
            .await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        match (claimed, content_length(&resp), content_type(resp.headers())) {
            (Some(d), Some(size), Some(mt)) => {
                if let Some(expected) = r.digest()
                    && *expected != d
                {
                    return Err(RegistryError::DigestMismatch {
                        target,
                        expected: expected.clone(),
                        found: d,
                    });
                }
                Ok(Some((d, mt, size)))
            }
            _ => {
                let m = self.get_manifest(repo, reference, accept).await?;
                let size = m.bytes.len() as u64;
                Ok(Some((m.digest, m.media_type, size)))
            }
        }
    }

    /// Uploads a manifest under a tag or a digest; returns its digest, computed here. Pushing under a digest the
    /// bytes do not have is refused before anything is sent.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let inner = &self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        let r = ManifestRef::parse(&inner.endpoint.host, repo, reference)?;
        let target = inner.target(repo, Subject::Manifest(reference.to_owned()));
        let algorithm = r.digest().map_or(Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of_bytes(algorithm, bytes);
        if let Some(expected) = r.digest()
            && *expected != digest
        {
            return Err(RegistryError::Source {
                target,
                reason: format!("has digest {digest}, not the {expected} it is being pushed as"),
            });
        }
        let content_type = header_value(media_type).ok_or_else(|| RegistryError::Source {
            target: target.clone(),
            reason: format!("has a media type that cannot be sent: {media_type:?}"),
        })?;
        let url = inner.url(&format!("v2/{repo}/manifests/{r}")).await?;
        let req = Request::new(Method::PUT, url)
            .header(CONTENT_TYPE, content_type)
            .body(Bytes::copy_from_slice(bytes));
        let resp = inner
            .send_expect(&req, &Scope::push(repo), &target, &[200, 201, 202, 204])
            .await?;
        if let Some(claimed) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && claimed.trim() != digest.to_string()
        {
            tracing::warn!(%target, %digest, claimed, "the registry reports a different digest for the manifest");
        }
        Ok(digest)
    }

    /// Deletes a manifest by digest (tags pointing at it go with it). Registries may refuse (HTTP 405).
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<(), RegistryError> {
        let inner = &self.inner;
        check_repo(&inner.endpoint.host, repo)?;
        let target = inner.target(repo, Subject::Manifest(digest.to_string()));
        let url = inner.url(&format!("v2/{repo}/manifests/{digest}")).await?;
        let req = Request::new(Method::DELETE, url);
        inner
            .send_expect(&req, &Scope::delete(repo), &target, &[200, 202, 204])
            .await?;
        Ok(())
    }
}
