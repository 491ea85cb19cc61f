//! Entry points for `berth-fuzz`: the parsers of what a registry or its token server sends about
//! authentication, reachable from outside the crate without making their types public API. Hidden from the
//! docs; nothing else should call these.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use crate::challenge::{self, AuthScheme};

/// The challenges in one `WWW-Authenticate` value, as (lowercased scheme, [(lowercased name, value)]).
pub fn challenges(header: &str) -> Vec<(String, Vec<(String, String)>)> {
    challenge::parse(header)
        .into_iter()
        .map(|c| (c.scheme, c.params))
        .collect()
}

/// What the client decides from a response's `WWW-Authenticate` values (values a header cannot carry are
/// skipped, as the HTTP stack would refuse them): `None`, `Some(("basic", None))`, or
/// `Some(("bearer", Some((realm, service, scope))))`.
#[allow(clippy::type_complexity)]
pub fn scheme_from_headers(
    values: &[&[u8]],
) -> Option<(&'static str, Option<(String, Option<String>, Option<String>)>)> {
    let mut headers = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.append(WWW_AUTHENTICATE, v);
        }
    }
    challenge::from_headers(&headers).map(|s| match s {
        AuthScheme::Basic => ("basic", None),
        AuthScheme::Bearer(b) => ("bearer", Some((b.realm, b.service, b.scope))),
    })
}

/// Parses a token server's answer; on success, how long the token will be used before it is refreshed.
pub fn token_lifetime(body: &[u8]) -> Result<Duration, String> {
    let now = Instant::now();
    crate::token::parse_response(body, now).map(|t| t.refresh_at.saturating_duration_since(now))
}
