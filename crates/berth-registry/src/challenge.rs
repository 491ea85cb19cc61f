//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1): one or more challenges, each a scheme and `name=value`
//! parameters whose values are tokens or quoted strings.

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

/// One challenge: a scheme (lowercased) and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter's value by (lowercase) name.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthScheme {
    /// HTTP Basic with the registry credentials.
    Basic,
    /// The token flow.
    Bearer(BearerChallenge),
}

/// The parameters of a `Bearer` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
    /// Space-separated scopes the registry says the request needs.
    pub scope: Option<String>,
}

/// The scheme to use from all `WWW-Authenticate` headers of a response: Bearer (with a realm) wins over Basic.
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<AuthScheme> {
    let challenges: Vec<Challenge> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse)
        .collect();
    let bearer = challenges.iter().find_map(|c| {
        (c.scheme == "bearer").then_some(())?;
        Some(BearerChallenge {
            realm: c.param("realm")?.to_owned(),
            service: c.param("service").map(str::to_owned),
            scope: c.param("scope").map(str::to_owned),
        })
    });
    match bearer {
        Some(b) => Some(AuthScheme::Bearer(b)),
        None => challenges
            .iter()
            .any(|c| c.scheme == "basic")
            .then_some(AuthScheme::Basic),
    }
}

/// Parses one header value into its challenges. Malformed parts are dropped, never guessed at; every turn of
/// the outer loop consumes a token or stops, so hostile input cannot make it spin.
pub(crate) fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let Some(scheme) = p.token() else { break };
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        loop {
            let save = p.i;
            p.skip(|b| b == b' ' || b == b'\t' || b == b',');
            let Some(name) = p.token() else {
                p.i = save;
                break;
            };
            p.skip(|b| b == b' ' || b == b'\t');
            if !p.eat(b'=') {
                // Not a parameter: the next challenge's scheme (or a token68, which registries do not use).
                p.i = save;
                break;
            }
            p.skip(|b| b == b' ' || b == b'\t');
            let Some(value) = p.value() else {
                p.i = save;
                break;
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        out.push(challenge);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.i += 1;
        }
    }

    /// An RFC 9110 token (tchar+).
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A token or a quoted string (with `\` escapes).
    fn value(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return self.token();
        }
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }

    #[test]
    fn docker_hub_bearer() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        let c = parse(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            [
                ("realm", "https://auth.docker.io/token"),
                ("service", "registry.docker.io"),
                ("scope", "repository:library/alpine:pull")
            ]
        );
    }

    #[test]
    fn scopes_with_commas_errors_and_spaces() {
        let h = r#"Bearer realm="http://127.0.0.1:1/t", service = "svc", scope="repository:a:pull,push repository:b:pull",error="insufficient_scope""#;
        let c = parse(h);
        assert_eq!(c[0].param("scope"), Some("repository:a:pull,push repository:b:pull"));
        assert_eq!(c[0].param("service"), Some("svc"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn basic_and_several_challenges_in_one_header() {
        let c = parse(r#"Basic realm="Registry Realm", Bearer realm="https://a/t",service=s"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("service"), Some("s"));
        let c = parse("BASIC");
        assert_eq!(c[0].scheme, "basic");
        assert!(c[0].params.is_empty());
    }

    #[test]
    fn quoted_escapes_and_malformed_input() {
        let c = parse(r#"Bearer realm="a\"b\\c""#);
        assert_eq!(c[0].param("realm"), Some(r#"a"b\c"#));
        // Unterminated quote: the parameter is dropped, nothing panics or loops.
        let c = parse(r#"Bearer realm="https://x"#);
        assert_eq!(c[0].param("realm"), None);
        for junk in [
            "",
            "=",
            ",,,",
            "\"",
            "Bearer ==",
            "Bearer realm=",
            "Bearer a=b=c",
            "(){}",
        ] {
            let _ = parse(junk);
        }
    }

    #[test]
    fn bearer_wins_and_needs_a_realm() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, "Basic realm=x".parse().unwrap());
        h.append(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://r/t",service="s""#.parse().unwrap(),
        );
        let Some(AuthScheme::Bearer(b)) = from_headers(&h) else {
            panic!()
        };
        assert_eq!(b.realm, "https://r/t");
        assert_eq!(b.service.as_deref(), Some("s"));
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, r#"Bearer service="s""#.parse().unwrap());
        assert_eq!(from_headers(&h), None);
        h.append(WWW_AUTHENTICATE, "Basic".parse().unwrap());
        assert_eq!(from_headers(&h), Some(AuthScheme::Basic));
    }
}
