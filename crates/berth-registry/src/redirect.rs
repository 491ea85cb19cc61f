//! Sending one request and following its redirects by hand (the HTTP client's own policy is off), so that
//! credentials never leave the origin they belong to.
//!
//! Rules: at most [`MAX_REDIRECTS`] hops; a URL seen before is a loop; https → http is refused; `Authorization`
//! is attached only to URLs on the credentials' origin (scheme, host and port), so a redirect to object storage
//! carries none; 303 (and 301/302 for anything but GET/HEAD) turn into a bodiless GET.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Client, Method, Response, StatusCode, Url};

use crate::endpoint::origin;
use crate::error::{RegistryError, Target, chain};

/// Most redirects followed for one request.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// One request to send.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: &'a HeaderMap,
    pub body: Option<Bytes>,
}

/// An `Authorization` value and the only origin it may be sent to.
#[derive(Debug, Clone)]
pub(crate) struct ScopedAuth {
    pub origin: (String, String, Option<u16>),
    pub value: HeaderValue,
}

/// Why sending failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Connection trouble; may be retried.
    Transport(reqwest::Error),
    /// Anything else; never retried.
    Fatal(RegistryError),
}

impl SendError {
    pub(crate) fn into_error(self, target: &Target) -> RegistryError {
        match self {
            SendError::Transport(e) => {
                let detail = if e.is_timeout() {
                    format!("timed out: {}", chain(&e))
                } else {
                    chain(&e)
                };
                RegistryError::Transport {
                    target: Box::new(target.clone()),
                    detail,
                }
            }
            SendError::Fatal(e) => e,
        }
    }
}

/// Sends `req`, following redirects; returns the first non-redirect response (or a redirect without `Location`).
pub(crate) async fn follow(
    http: &Client,
    req: Outgoing<'_>,
    auth: Option<&ScopedAuth>,
    target: &Target,
) -> Result<Response, SendError> {
    let refuse = |reason: String| {
        SendError::Fatal(RegistryError::Redirect {
            target: Box::new(target.clone()),
            reason,
        })
    };
    let Outgoing {
        mut method,
        mut url,
        headers,
        mut body,
    } = req;
    let mut headers = headers.clone();
    let mut seen = vec![url.clone()];
    loop {
        let mut b = http.request(method.clone(), url.clone()).headers(headers.clone());
        if let Some(a) = auth
            && origin(&url) == a.origin
        {
            b = b.header(AUTHORIZATION, a.value.clone());
        }
        match &body {
            Some(bytes) => b = b.body(bytes.clone()),
            None if matches!(method, Method::POST | Method::PUT | Method::PATCH) => b = b.body(Bytes::new()),
            None => {}
        }
        let resp = b.send().await.map_err(|e| {
            // Past the first hop the URL may be a signed object-storage URL: keep it out of messages.
            SendError::Transport(if seen.len() > 1 { e.without_url() } else { e })
        })?;
        let status = resp.status();
        if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Ok(resp);
        }
        let Some(location) = resp.headers().get(LOCATION) else {
            return Ok(resp);
        };
        let next = location
            .to_str()
            .ok()
            .and_then(|l| url.join(l).ok())
            .ok_or_else(|| refuse(format!("HTTP {status} with an invalid Location {location:?}")))?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(refuse(format!("refusing to follow a redirect to {:?}", next.scheme())));
        }
        if url.scheme() == "https" && next.scheme() == "http" {
            return Err(refuse(format!(
                "refusing to follow a redirect from https to plain http ({}://{}); fix the registry's \
                 redirect configuration",
                next.scheme(),
                next.host_str().unwrap_or_default()
            )));
        }
        if seen.contains(&next) {
            return Err(refuse(format!("redirect loop: {} was already visited", strip_query(&next))));
        }
        if seen.len() > MAX_REDIRECTS {
            return Err(refuse(format!("more than {MAX_REDIRECTS} redirects")));
        }
        let to_get = status == StatusCode::SEE_OTHER
            || (matches!(status.as_u16(), 301 | 302) && !matches!(method, Method::GET | Method::HEAD));
        if to_get {
            method = Method::GET;
            body = None;
            for h in [CONTENT_LENGTH, CONTENT_TYPE, CONTENT_RANGE] {
                headers.remove(h);
            }
        }
        tracing::debug!(from = %strip_query(&url), to = %strip_query(&next), %status, "following redirect");
        seen.push(next.clone());
        url = next;
    }
}

/// A URL without its query (which may hold signatures), for messages.
fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}
