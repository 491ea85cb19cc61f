//! Reading response bodies with limits and a stall timeout, and turning unwelcome statuses into errors.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Response, StatusCode};
use serde::Deserialize;

use crate::error::{ErrorCode, RegistryError, Subject, Target, chain};

/// How much of an error body is read to find the registry's error code.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Why the next chunk of a body could not be read.
#[derive(Debug)]
pub(crate) enum ChunkError {
    /// The connection failed.
    Transport(reqwest::Error),
    /// No byte arrived for the stall timeout.
    Stalled(Duration),
}

impl ChunkError {
    pub(crate) fn into_error(self, target: Box<Target>) -> RegistryError {
        let detail = match self {
            ChunkError::Transport(e) => format!("the connection failed while reading the body: {}", chain(&e)),
            ChunkError::Stalled(d) => format!("no data received for {} s while reading the body", d.as_secs()),
        };
        RegistryError::Transport { target, detail }
    }
}

/// The next chunk of `resp`'s body, `None` at its end.
pub(crate) async fn next_chunk(resp: &mut Response, stall: Duration) -> Result<Option<Bytes>, ChunkError> {
    match tokio::time::timeout(stall, resp.chunk()).await {
        Ok(Ok(chunk)) => Ok(chunk),
        Ok(Err(e)) => Err(ChunkError::Transport(e)),
        Err(_) => Err(ChunkError::Stalled(stall)),
    }
}

/// The value of `Content-Length`, if present and numeric.
pub(crate) fn content_length(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads a whole body of at most `limit` bytes; the limit is checked before allocating and while reading, so a
/// lying or missing `Content-Length` cannot make this allocate more.
pub(crate) async fn read_capped(
    mut resp: Response,
    limit: u64,
    stall: Duration,
    target: &Target,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        target: Box::new(target.clone()),
        limit,
    };
    let announced = content_length(&resp);
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(announced.unwrap_or(0).min(64 * 1024) as usize);
    while let Some(chunk) = next_chunk(&mut resp, stall)
        .await
        .map_err(|e| e.into_error(Box::new(target.clone())))?
    {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    /// Free-form; shown when it is a short string (a registry's own explanation).
    #[serde(default)]
    detail: serde_json::Value,
}

/// What ends the message of a manifest the registry refused as such (see [`RegistryError::is_manifest_refusal`]).
/// The advice (a flag to retry with) is the tool's to give: the shared client does not know the tool's flags.
const MANIFEST_REFUSED: &str = "; the registry refused the manifest (it may not take this manifest format)";

/// The error for a response whose status the operation cannot continue from. Reads (a bounded part of) the body
/// for the registry's error code, which tells "blob unknown" from "repository unknown".
pub(crate) async fn status_error(resp: Response, target: Box<Target>, stall: Duration) -> RegistryError {
    let status = resp.status();
    let body = read_capped(resp, ERROR_BODY_LIMIT, stall, &target)
        .await
        .unwrap_or_default();
    error_for(status, &body, target)
}

/// Maps a status and error body to an error (separate from I/O for testing).
pub(crate) fn error_for(status: StatusCode, body: &[u8], target: Box<Target>) -> RegistryError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|b| b.errors.first())
        .filter(|e| !e.code.is_empty())
        .map(|e| ErrorCode::parse(&e.code));
    let message = parsed
        .map(|b| {
            b.errors
                .iter()
                .map(|e| {
                    let text = match (e.code.is_empty(), e.message.is_empty()) {
                        (false, false) => format!("{}: {}", e.code, e.message),
                        (false, true) => e.code.clone(),
                        _ => e.message.clone(),
                    };
                    match e.detail.as_str() {
                        Some(d) if !d.is_empty() && d.len() <= 300 && !text.contains(d) => format!("{text} ({d})"),
                        _ => text,
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    match status.as_u16() {
        401 => RegistryError::Unauthorized { target, detail },
        403 => RegistryError::Denied { target, detail },
        404 => match (&code, &target.subject) {
            (Some(ErrorCode::BlobUnknown | ErrorCode::BlobUploadUnknown), _) => RegistryError::BlobUnknown { target },
            (Some(ErrorCode::ManifestUnknown), _) => RegistryError::ManifestUnknown { target },
            (Some(ErrorCode::NameUnknown), _) => RegistryError::RepositoryUnknown { target },
            (None, Subject::Blob(_) | Subject::Upload(_)) => RegistryError::BlobUnknown { target },
            (None, Subject::Manifest(_)) => RegistryError::ManifestUnknown { target },
            (None, Subject::Tags) => RegistryError::RepositoryUnknown { target },
            _ => RegistryError::Status {
                target,
                status: 404,
                code,
                detail,
            },
        },
        http => {
            let manifest = matches!(target.subject, Subject::Manifest(_));
            let advice = match http {
                400 | 415
                    if manifest && matches!(code, None | Some(ErrorCode::ManifestInvalid | ErrorCode::Unsupported)) =>
                {
                    MANIFEST_REFUSED
                }
                405 => "; the registry does not allow this operation (is deletion enabled?)",
                429 => "; the registry is rate-limiting requests and retries ran out",
                500..=599 => "; the registry kept failing and retries ran out: try again later",
                _ => "",
            };
            RegistryError::Status {
                target,
                status: http,
                code,
                detail: format!("{detail}{advice}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_spec::Digest;

    fn blob_target() -> Box<Target> {
        Target::new("h", "r", Subject::Blob(Digest::sha256(b"x")))
    }

    #[test]
    fn not_found_uses_error_code_over_subject() {
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
        let e = error_for(StatusCode::NOT_FOUND, body, blob_target());
        assert!(matches!(e, RegistryError::RepositoryUnknown { .. }), "{e}");
        let e = error_for(StatusCode::NOT_FOUND, b"", blob_target());
        assert!(matches!(e, RegistryError::BlobUnknown { .. }), "{e}");
        let manifest = Target::new("h", "r", Subject::Manifest("v1".into()));
        let e = error_for(StatusCode::NOT_FOUND, b"garbage", manifest);
        assert!(matches!(e, RegistryError::ManifestUnknown { .. }), "{e}");
    }

    #[test]
    fn unauthorized_says_what_to_do_and_names_everything() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        let e = error_for(StatusCode::UNAUTHORIZED, body, blob_target());
        let msg = e.to_string();
        assert!(msg.contains("h/r: blob sha256:"), "{msg}");
        assert!(msg.contains("UNAUTHORIZED: authentication required"), "{msg}");
        assert!(msg.contains("--creds"), "{msg}");
        assert_eq!(e.status(), Some(401));
        assert!(!e.is_transient());
    }

    #[test]
    fn a_refused_manifest_shows_the_registrys_detail() {
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"OCI manifests are not supported"}]}"#;
        let manifest = Target::new("h", "r", Subject::Manifest("v1".into()));
        let msg = error_for(StatusCode::BAD_REQUEST, body, manifest).to_string();
        assert!(msg.contains("(OCI manifests are not supported)"), "{msg}");
        assert!(msg.contains("refused the manifest"), "{msg}");
        assert!(
            !msg.contains("--format"),
            "the tool gives flag advice, not the client: {msg}"
        );
        // A structured or huge detail is not printed.
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown","detail":{"digest":"x"}}]}"#;
        let msg = error_for(StatusCode::BAD_REQUEST, body, blob_target()).to_string();
        assert!(
            !msg.contains("digest") && !msg.contains("refused the manifest"),
            "{msg}"
        );
    }

    #[test]
    fn error_codes_are_parsed_into_the_status_variant() {
        let manifest = || Target::new("h", "r", Subject::Manifest("v1".into()));
        let body = br#"{"errors":[{"code":"UNSUPPORTED","message":"nope"},{"code":"DENIED"}]}"#;
        let e = error_for(StatusCode::UNSUPPORTED_MEDIA_TYPE, body, manifest());
        assert_eq!(e.code(), Some(&ErrorCode::Unsupported));
        assert!(e.is_manifest_refusal(), "{e}");
        let e = error_for(StatusCode::BAD_REQUEST, b"", manifest());
        assert_eq!(e.code(), None);
        assert!(e.is_manifest_refusal(), "no code: still a refusal");
        // Another code, or the same code about a blob, is not.
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
        let e = error_for(StatusCode::BAD_REQUEST, body, manifest());
        assert_eq!(e.code(), Some(&ErrorCode::ManifestBlobUnknown));
        assert!(!e.is_manifest_refusal(), "{e}");
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID"}]}"#;
        assert!(!error_for(StatusCode::BAD_REQUEST, body, blob_target()).is_manifest_refusal());
        // A registry's own code is kept as sent.
        let body = br#"{"errors":[{"code":"QUOTA_EXCEEDED","message":"full"}]}"#;
        let e = error_for(StatusCode::BAD_REQUEST, body, blob_target());
        assert_eq!(e.code(), Some(&ErrorCode::Other("QUOTA_EXCEEDED".into())));
        assert!(e.to_string().contains("QUOTA_EXCEEDED: full"), "{e}");
        for name in ["BLOB_UPLOAD_INVALID", "TOOMANYREQUESTS", "RANGE_INVALID", "x"] {
            assert_eq!(ErrorCode::parse(name).as_str(), name);
        }
    }

    #[test]
    fn unauthorized_is_told_apart_from_other_refusals() {
        assert!(error_for(StatusCode::UNAUTHORIZED, b"", blob_target()).is_unauthorized());
        assert!(!error_for(StatusCode::FORBIDDEN, b"", blob_target()).is_unauthorized());
        assert!(!error_for(StatusCode::BAD_GATEWAY, b"", blob_target()).is_unauthorized());
    }

    #[test]
    fn server_errors_are_transient() {
        let e = error_for(StatusCode::BAD_GATEWAY, b"", blob_target());
        assert!(e.is_transient());
        assert!(e.to_string().contains("502"), "{e}");
    }
}
