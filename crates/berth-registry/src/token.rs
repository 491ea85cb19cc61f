//! The bearer token flow: `GET realm?service=…&scope=…` (with Basic credentials when configured), answered by
//! `{"token"|"access_token", "expires_in"}`.

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use serde::Deserialize;

use crate::auth::Scope;
use crate::challenge::BearerChallenge;
use crate::client::Inner;
use crate::credentials::Credentials;
use crate::endpoint::{Endpoint, origin};
use crate::error::{RegistryError, Subject, Target, chain};
use crate::redirect::{self, OutBody, Outgoing, ScopedAuth, SendError};
use crate::response::read_capped;
use crate::retry::with_retries;

/// Token responses larger than this are refused.
const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;
/// Lifetime of a token whose response gives none (or 0), per the token spec's default.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// Longest lifetime believed.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// `Bearer …`, marked sensitive.
    pub header: HeaderValue,
    /// Refresh after this instant (a little before the real expiry).
    pub refresh_at: Instant,
}

impl Token {
    pub(crate) fn fresh_at(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// Checks the realm: https anywhere, or plain http only on the registry's own host when the registry itself may be
/// spoken to over plain HTTP (loopback, or `tls_verify = false`). Anything else would send credentials in clear.
pub(crate) fn check_realm(endpoint: &Endpoint, realm: &str) -> Result<Url, RegistryError> {
    let fail = |reason: String| RegistryError::Token {
        host: endpoint.host.clone(),
        realm: realm.to_owned(),
        status: None,
        reason,
    };
    let url = Url::parse(realm).map_err(|e| fail(format!("the realm is not a URL ({e})")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if endpoint.plain_http_allowed() && url.host_str() == Some(endpoint.hostname.as_str()) => Ok(url),
        "http" => Err(fail(format!(
            "refusing a token realm on plain http{}; the registry must announce an https realm",
            if endpoint.plain_http_allowed() {
                " on another host"
            } else {
                " (the registry is not allowed plain HTTP; --tls-verify=false would allow it)"
            }
        ))),
        other => Err(fail(format!("unsupported realm scheme {other:?}"))),
    }
}

/// Fetches a token for `scope` from the challenge's realm.
pub(crate) async fn fetch(
    inner: &Inner,
    challenge: &BearerChallenge,
    scope: &Scope,
    credentials: Option<&Credentials>,
) -> Result<Token, RegistryError> {
    let endpoint = &inner.endpoint;
    let fail = |reason: String| RegistryError::Token {
        host: endpoint.host.clone(),
        realm: challenge.realm.clone(),
        status: None,
        reason,
    };
    let mut url = check_realm(endpoint, &challenge.realm)?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(service) = &challenge.service {
            q.append_pair("service", service);
        }
        for s in scope.items() {
            q.append_pair("scope", s);
        }
    }
    let auth = credentials.map(|c| ScopedAuth {
        origin: origin(&url),
        value: c.basic_header(),
    });
    let target = Target::new(&endpoint.host, "", Subject::ApiCheck);
    let headers = reqwest::header::HeaderMap::new();
    let resp = with_retries(&inner.retry, true, async || {
        let out = Outgoing {
            method: Method::GET,
            url: url.clone(),
            headers: &headers,
            body: OutBody::Empty,
        };
        redirect::follow(&inner.http, out, auth.as_ref(), &target).await
    })
    .await
    .map_err(|e| match e {
        SendError::Transport(e) => fail(format!("cannot reach the token server: {}", chain(&e))),
        SendError::Fatal(e) => fail(chain(&e)),
    })?;
    let status = resp.status();
    if !status.is_success() {
        let who = credentials.map_or_else(|| "anonymous access".to_owned(), |c| format!("user {:?}", c.username));
        let advice = match status.as_u16() {
            401 | 403 => "; check --creds / the authfile",
            _ => "",
        };
        return Err(RegistryError::Token {
            host: endpoint.host.clone(),
            realm: challenge.realm.clone(),
            status: Some(status.as_u16()),
            reason: format!("HTTP {status} for {who}{advice}"),
        });
    }
    let body = read_capped(resp, MAX_TOKEN_RESPONSE, inner.stall, &target)
        .await
        .map_err(|e| match e {
            RegistryError::TooLarge { .. } => fail(format!("response larger than {MAX_TOKEN_RESPONSE} bytes")),
            e => fail(chain(&e)),
        })?;
    parse_response(&body, Instant::now()).map_err(fail)
}

/// Parses a token response; the token must be usable as a header value.
pub(crate) fn parse_response(body: &[u8], now: Instant) -> Result<Token, String> {
    // serde also reads a struct from a JSON array, field by position: `["abc"]` would be the token `abc`.
    if body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b != b'{')
    {
        return Err("the response is not a JSON object".to_owned());
    }
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("the response is not token JSON: {e}"))?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or("the response has neither \"token\" nor \"access_token\"")?;
    let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token contains characters a header cannot carry".to_owned())?;
    header.set_sensitive(true);
    let lifetime = match parsed.expires_in {
        Some(s) if s > 0 => Duration::from_secs(s as u64).min(MAX_LIFETIME),
        _ => DEFAULT_LIFETIME,
    };
    // Refresh early enough that a token does not expire between the check and the request.
    let margin = (lifetime / 10).min(Duration::from_secs(30));
    Ok(Token {
        header,
        refresh_at: now + lifetime - margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_fields_and_lifetimes() {
        let now = Instant::now();
        let t = parse_response(br#"{"token":"abc","expires_in":300}"#, now).unwrap();
        assert_eq!(t.header, "Bearer abc");
        assert!(t.header.is_sensitive());
        assert_eq!(t.refresh_at, now + Duration::from_secs(270));
        let t = parse_response(br#"{"access_token":"xyz","expires_in":0}"#, now).unwrap();
        assert_eq!(t.header, "Bearer xyz");
        assert_eq!(t.refresh_at, now + Duration::from_secs(54));
        let t = parse_response(br#"{"token":"","access_token":"a","expires_in":-5}"#, now).unwrap();
        assert_eq!(t.header, "Bearer a");
        assert!(t.fresh_at(now) && !t.fresh_at(now + DEFAULT_LIFETIME));
        assert!(parse_response(br#"{"token":"a\nb"}"#, now).is_err());
        assert!(parse_response(br#"{"expires_in":5}"#, now).is_err());
        assert!(parse_response(b"<html>", now).is_err());
    }

    /// Found by `cargo xtask fuzz` (berth-fuzz's `auth` target): serde reads structs from arrays too, so a token
    /// server answering `[" "]` gave the token `" "`, and `["", "x"]` the access token `x`.
    #[test]
    fn token_response_that_is_a_json_array_is_refused() {
        let now = Instant::now();
        for body in [
            &br#"[" "]"#[..],
            br#"["token"]"#,
            br#" ["", "x" ]"#,
            br#"["t", null, 300]"#,
        ] {
            let e = parse_response(body, now).unwrap_err();
            assert!(e.contains("not a JSON object"), "{e}");
        }
        assert!(parse_response(b" \n{\"token\":\"t\"}", now).is_ok());
    }

    #[test]
    fn realm_on_plain_http_is_refused_unless_the_registry_is_local() {
        let remote = Endpoint::new("registry.example", None).unwrap();
        check_realm(&remote, "https://auth.example/token").unwrap();
        let e = check_realm(&remote, "http://registry.example/token").unwrap_err();
        assert!(e.to_string().contains("refusing a token realm on plain http"), "{e}");
        assert!(check_realm(&remote, "ftp://auth.example/").is_err());
        assert!(check_realm(&remote, "not a url").is_err());

        let local = Endpoint::new("127.0.0.1:5000", None).unwrap();
        check_realm(&local, "http://127.0.0.1:5001/token").unwrap();
        let e = check_realm(&local, "http://auth.example/token").unwrap_err();
        assert!(e.to_string().contains("on another host"), "{e}");
        check_realm(&local, "https://auth.example/token").unwrap();

        let insecure = Endpoint::new("registry.example", Some(false)).unwrap();
        check_realm(&insecure, "http://registry.example:8080/token").unwrap();
        assert!(check_realm(&insecure, "http://auth.example/token").is_err());
    }
}
