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
    pub body: OutBody,
}

/// The body of an [`Outgoing`] request.
#[derive(Debug)]
pub(crate) enum OutBody {
    /// None (an empty one for POST, PUT and PATCH).
    Empty,
    /// Bytes, which a redirect can send again.
    Bytes(Bytes),
    /// A stream, which can be sent only once: a redirect that would need it again is refused.
    Stream(reqwest::Body),
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
/// A streamed body is sent once: a redirect that keeps the method and body (307, 308) is then an error, since
/// the stream is spent and only the caller can start it again.
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
    let mut streamed = false;
    loop {
        let mut b = http.request(method.clone(), url.clone()).headers(headers.clone());
        if let Some(a) = auth
            && origin(&url) == a.origin
        {
            b = b.header(AUTHORIZATION, a.value.clone());
        }
        match std::mem::replace(&mut body, OutBody::Empty) {
            OutBody::Bytes(bytes) => {
                b = b.body(bytes.clone());
                body = OutBody::Bytes(bytes);
            }
            OutBody::Stream(stream) => {
                b = b.body(stream);
                streamed = true;
            }
            OutBody::Empty if matches!(method, Method::POST | Method::PUT | Method::PATCH) => b = b.body(Bytes::new()),
            OutBody::Empty => {}
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
        let next = next_hop(&url, location, &seen).map_err(|reason| refuse(format!("HTTP {status}: {reason}")))?;
        let to_get = status == StatusCode::SEE_OTHER
            || (matches!(status.as_u16(), 301 | 302) && !matches!(method, Method::GET | Method::HEAD));
        if streamed && !to_get {
            return Err(refuse(format!(
                "HTTP {status} redirect of {method} {}: its streamed body cannot be sent a second time, so \
                 the redirect is not followed; the registry (or a proxy before it) should not redirect uploads",
                strip_query(&url)
            )));
        }
        if to_get {
            method = Method::GET;
            body = OutBody::Empty;
            for h in [CONTENT_LENGTH, CONTENT_TYPE, CONTENT_RANGE] {
                headers.remove(h);
            }
        }
        tracing::debug!(from = %strip_query(&url), to = %strip_query(&next), %status, "following redirect");
        seen.push(next.clone());
        url = next;
    }
}

/// Where a redirect from `current` to `location` leads, or why it is not followed (https to http, a scheme
/// other than http(s), a URL already visited, too many hops).
pub(crate) fn next_hop(current: &Url, location: &HeaderValue, seen: &[Url]) -> Result<Url, String> {
    let next = location
        .to_str()
        .ok()
        .and_then(|l| current.join(l.trim()).ok())
        .ok_or_else(|| format!("invalid redirect Location {location:?}"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!("refusing to follow a redirect to a {:?} URL", next.scheme()));
    }
    if current.scheme() == "https" && next.scheme() == "http" {
        return Err(format!(
            "refusing to follow a redirect from https to plain http (http://{}); fix the registry's redirect \
             configuration",
            next.host_str().unwrap_or_default()
        ));
    }
    if seen.contains(&next) {
        return Err(format!("redirect loop: {} was already visited", strip_query(&next)));
    }
    if seen.len() > MAX_REDIRECTS {
        return Err(format!("more than {MAX_REDIRECTS} redirects"));
    }
    Ok(next)
}

/// A URL without its query (which may hold signatures), for messages.
fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(from: &str, to: &'static str, seen: &[&str]) -> Result<Url, String> {
        let seen: Vec<Url> = seen.iter().map(|s| Url::parse(s).unwrap()).collect();
        next_hop(&Url::parse(from).unwrap(), &HeaderValue::from_static(to), &seen)
    }

    #[test]
    fn redirect_targets() {
        let a = "https://reg.example/v2/r/blobs/x";
        assert_eq!(
            hop(a, "/storage/x?sig=1", &[a]).unwrap().as_str(),
            "https://reg.example/storage/x?sig=1"
        );
        assert_eq!(hop(a, "y", &[a]).unwrap().as_str(), "https://reg.example/v2/r/blobs/y");
        assert_eq!(
            hop(a, "https://s3.example/b", &[a]).unwrap().host_str(),
            Some("s3.example")
        );
        let e = hop(a, "http://s3.example/b", &[a]).unwrap_err();
        assert!(e.contains("from https to plain http"), "{e}");
        assert!(
            hop("http://127.0.0.1:5000/v2/", "https://s3.example/b", &[]).is_ok(),
            "upgrades are fine"
        );
        assert!(hop(a, "file:///etc/passwd", &[a]).unwrap_err().contains("\"file\""));
        assert!(hop(a, "/v2/r/blobs/x", &[a]).unwrap_err().contains("loop"));
        let many: Vec<String> = (0..=MAX_REDIRECTS)
            .map(|i| format!("https://reg.example/{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(hop(a, "/next", &many).unwrap_err().contains("more than 10"));
        assert!(
            hop(a, "http://[bad", &[a])
                .unwrap_err()
                .contains("invalid redirect Location")
        );
    }
}
