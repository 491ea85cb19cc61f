//! The `auth` target: what a registry and its token server say about authentication —
//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1) and token responses — through berth-registry's parsers
//! (reached through its hidden `fuzzing` module).
//!
//! # Input
//!
//! First byte even: the rest is `WWW-Authenticate` values, one per line. Odd: the rest is a token response body.
//!
//! # Oracle
//!
//! No panic and no hang, and:
//! - every challenge has a non-empty lowercase token as scheme and non-empty lowercase tokens as parameter
//!   names; written back out (values quoted and escaped) the challenges parse to the same list;
//! - the scheme the client picks is one the headers offered: Bearer only with the realm of a Bearer
//!   challenge, Basic only when no Bearer challenge has a realm;
//! - a token response is accepted only with a non-empty `token` or `access_token`, and is never used for more
//!   than a day.

use std::time::Duration;

use berth_registry::fuzzing;

/// The longest a token is used for (berth-registry caps lifetimes at 24 hours).
const MAX_TOKEN_USE: Duration = Duration::from_secs(24 * 3600);

/// The target.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        challenges(rest);
    } else {
        token(rest);
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn challenges(rest: &[u8]) {
    let values: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let mut offered = Vec::new();
    for v in &values {
        let header = String::from_utf8_lossy(v);
        let parsed = fuzzing::challenges(&header);
        for (scheme, params) in &parsed {
            assert!(
                is_token(scheme) && !scheme.bytes().any(|b| b.is_ascii_uppercase()),
                "scheme {scheme:?}"
            );
            for (name, _) in params {
                assert!(
                    is_token(name) && !name.bytes().any(|b| b.is_ascii_uppercase()),
                    "name {name:?}"
                );
            }
        }
        let written = write_back(&parsed);
        assert_eq!(
            fuzzing::challenges(&written),
            parsed,
            "{header:?} parses to challenges that, written as {written:?}, parse differently"
        );
        // The HTTP stack hands the parser only values that are visible ASCII.
        if std::str::from_utf8(v).is_ok_and(|s| s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))) {
            offered.extend(parsed);
        }
    }
    let bearer_realms: Vec<&str> = offered
        .iter()
        .filter(|(s, _)| s == "bearer")
        .filter_map(|(_, p)| p.iter().find(|(n, _)| n == "realm").map(|(_, v)| v.as_str()))
        .collect();
    match fuzzing::scheme_from_headers(&values) {
        Some(("bearer", Some((realm, _, _)))) => {
            assert!(
                bearer_realms.contains(&realm.as_str()),
                "chose Bearer realm {realm:?}, not offered"
            )
        }
        Some(("basic", None)) => {
            assert!(
                bearer_realms.is_empty(),
                "chose Basic over a Bearer challenge with a realm"
            );
            assert!(offered.iter().any(|(s, _)| s == "basic"), "chose Basic, not offered");
        }
        Some(other) => panic!("unexpected choice {other:?}"),
        None => assert!(
            bearer_realms.is_empty() && !offered.iter().any(|(s, _)| s == "basic"),
            "chose nothing though {offered:?} was offered"
        ),
    }
}

/// Writes challenges back as a header value, every value quoted.
fn write_back(challenges: &[(String, Vec<(String, String)>)]) -> String {
    let mut out = String::new();
    for (i, (scheme, params)) in challenges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(scheme);
        for (j, (name, value)) in params.iter().enumerate() {
            out.push_str(if j == 0 { " " } else { ", " });
            out.push_str(name);
            out.push_str("=\"");
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out
}

fn token(body: &[u8]) {
    let Ok(lifetime) = fuzzing::token_lifetime(body) else {
        return;
    };
    assert!(lifetime <= MAX_TOKEN_USE, "a token used for {lifetime:?}");
    // Compared through a JSON value where one can be built: serde skips unknown fields without checking their
    // strings are UTF-8 or their numbers fit a float, and such documents are still accepted.
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&String::from_utf8_lossy(body)) else {
        return;
    };
    assert!(
        value.is_object(),
        "accepted a token response that is not a JSON object: {value}"
    );
    let non_empty = |k: &str| value.get(k).and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty());
    assert!(
        non_empty("token") || non_empty("access_token"),
        "accepted a response without a token"
    );
}

/// Seed inputs: challenges as registries send them, and token responses.
pub fn seeds() -> Vec<Vec<u8>> {
    let headers: [&[u8]; 10] = [
        br#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        br#"Basic realm="Registry Realm""#,
        br#"Basic realm="r", Bearer realm="https://a/t",service=s"#,
        br#"Bearer realm="http://127.0.0.1:1/t", service = "svc", scope="repository:a:pull,push repository:b:pull",error="insufficient_scope""#,
        br#"Bearer realm="https://q/\"quoted\\",error=invalid_token"#,
        b"Negotiate abc==, Basic",
        b"Basic realm=\"a\"\nBearer realm=\"https://b/t\"",
        b"BEARER REALM=\"https://UPPER/t\"",
        br#"Bearer realm="unterminated"#,
        b",,, ,\t=",
    ];
    let bodies: [&[u8]; 6] = [
        br#"{"token":"abc","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#,
        br#"{"access_token":"xyz","expires_in":0}"#,
        br#"{"token":"","access_token":"a","expires_in":-5}"#,
        br#"{"token":"line\r\nbreak"}"#,
        br#"{"token":"t","expires_in":9223372036854775807}"#,
        br#"{"expires_in":60}"#,
    ];
    let mut out = Vec::new();
    for h in headers {
        out.push([&[0u8][..], h].concat());
    }
    for b in bodies {
        out.push([&[1u8][..], b].concat());
    }
    out
}
