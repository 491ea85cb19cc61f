//! The registry host: validation, where its API lives, and whether plain HTTP may be used with it.

use std::net::IpAddr;

use berth_spec::Digest;
use reqwest::Url;
use reqwest::header::HeaderValue;

use crate::error::RegistryError;

/// Docker Hub's names for itself, all served by [`DOCKER_HUB_API_HOST`].
pub(crate) const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];
/// Where Docker Hub's registry API lives.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// How a registry may be spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTPS with certificate verification.
    Https,
    /// Plain HTTP (automatic for loopback hosts).
    Http,
    /// `tls_verify = false`: HTTPS without verification, falling back to plain HTTP.
    Insecure,
}

/// One registry host.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// As configured, e.g. `docker.io` or `localhost:5000`.
    pub host: String,
    /// Where requests go, e.g. `registry-1.docker.io` or `localhost:5000`.
    pub api_host: String,
    /// The API host's name without port, for same-host comparisons.
    pub hostname: String,
    pub transport: Transport,
}

impl Endpoint {
    pub(crate) fn new(host: &str, tls_verify: Option<bool>) -> Result<Self, RegistryError> {
        let invalid = |reason: &str| RegistryError::InvalidHost {
            host: host.to_owned(),
            reason: reason.to_owned(),
        };
        if host.is_empty() {
            return Err(invalid("it is empty"));
        }
        if host.contains("://") {
            return Err(invalid("leave out the scheme; use --tls-verify=false for plain HTTP"));
        }
        if host
            .bytes()
            .any(|b| matches!(b, b'/' | b'@' | b'?' | b'#' | b'\\') || b.is_ascii_whitespace())
        {
            return Err(invalid("it contains a character a host name cannot have"));
        }
        let api_host = if DOCKER_HUB_ALIASES.contains(&host) {
            DOCKER_HUB_API_HOST.to_owned()
        } else {
            host.to_ascii_lowercase()
        };
        let url = Url::parse(&format!("https://{api_host}/")).map_err(|e| invalid(&e.to_string()))?;
        let hostname = url.host_str().ok_or_else(|| invalid("it has no host name"))?.to_owned();
        let transport = match tls_verify {
            Some(true) => Transport::Https,
            Some(false) => Transport::Insecure,
            None if is_loopback(&url) => Transport::Http,
            None => Transport::Https,
        };
        Ok(Endpoint {
            host: host.to_owned(),
            api_host,
            hostname,
            transport,
        })
    }

    /// Whether plain HTTP may be used with this registry (and with a token realm on the same host).
    pub(crate) fn plain_http_allowed(&self) -> bool {
        self.transport != Transport::Https
    }

    /// The API base for a scheme, `SCHEME://API_HOST/`.
    pub(crate) fn base(&self, scheme: &str) -> Url {
        Url::parse(&format!("{scheme}://{}/", self.api_host)).expect("host validated in Endpoint::new")
    }
}

/// `localhost`, 127.0.0.0/8 or `[::1]`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Scheme, host and port of a URL: the unit credentials are scoped to.
pub(crate) fn origin(url: &Url) -> (String, String, Option<u16>) {
    (
        url.scheme().to_owned(),
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default(),
    )
}

/// Checks a repository path against the distribution grammar: `/`-separated components of `[a-z0-9]` with
/// single `.`, `_`, `__` or runs of `-` between them. The checked name is safe to put in a URL path.
pub(crate) fn check_repo(host: &str, repo: &str) -> Result<(), RegistryError> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-'))
            && !c.contains("..")
            && !c.contains("___")
            && !c.contains("._")
            && !c.contains("_.")
    };
    if repo.len() <= 255 && repo.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(RegistryError::InvalidRepository {
            host: host.to_owned(),
            repo: repo.to_owned(),
        })
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone)]
pub(crate) enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

impl ManifestRef {
    /// Parses a tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest.
    pub(crate) fn parse(host: &str, repo: &str, reference: &str) -> Result<Self, RegistryError> {
        if reference.contains(':') {
            if let Ok(d) = Digest::parse(reference) {
                return Ok(ManifestRef::Digest(d));
            }
        } else {
            let b = reference.as_bytes();
            let ok = (1..=128).contains(&b.len())
                && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
                && b.iter()
                    .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
            if ok {
                return Ok(ManifestRef::Tag(reference.to_owned()));
            }
        }
        Err(RegistryError::InvalidReference {
            host: host.to_owned(),
            repo: repo.to_owned(),
            reference: reference.to_owned(),
        })
    }

    pub(crate) fn digest(&self) -> Option<&Digest> {
        match self {
            ManifestRef::Digest(d) => Some(d),
            ManifestRef::Tag(_) => None,
        }
    }
}

impl std::fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestRef::Tag(t) => f.write_str(t),
            ManifestRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// A header value from text the registry or the caller supplied; `None` if it cannot be a header.
pub(crate) fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_automatic_only_for_loopback() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "LOCALHOST",
        ] {
            assert_eq!(Endpoint::new(host, None).unwrap().transport, Transport::Http, "{host}");
        }
        for host in ["quay.io", "10.0.0.1:5000", "localhost.example.com", "[::2]:80"] {
            assert_eq!(Endpoint::new(host, None).unwrap().transport, Transport::Https, "{host}");
        }
        assert_eq!(
            Endpoint::new("localhost", Some(true)).unwrap().transport,
            Transport::Https
        );
        assert_eq!(
            Endpoint::new("quay.io", Some(false)).unwrap().transport,
            Transport::Insecure
        );
    }

    #[test]
    fn docker_hub_api_host() {
        let e = Endpoint::new("docker.io", None).unwrap();
        assert_eq!(e.api_host, "registry-1.docker.io");
        assert_eq!(e.host, "docker.io");
    }

    #[test]
    fn hostile_hosts_are_refused() {
        for host in [
            "",
            "https://quay.io",
            "quay.io/x",
            "user@quay.io",
            "a b",
            "quay.io?x",
            "host:99999",
        ] {
            assert!(Endpoint::new(host, None).is_err(), "{host:?}");
        }
    }

    #[test]
    fn repository_and_reference_grammar() {
        for ok in ["a", "library/alpine", "a.b/c-d/e__f", "x--y"] {
            check_repo("h", ok).unwrap();
        }
        for bad in ["", "A", "a/../b", "a//b", "/a", "a/", "a?b", "a%2fb", "-a", "a b"] {
            assert!(check_repo("h", bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            ManifestRef::parse("h", "r", "v1.0_x-y").unwrap(),
            ManifestRef::Tag(_)
        ));
        let d = Digest::sha256(b"");
        assert!(matches!(
            ManifestRef::parse("h", "r", &d.to_string()).unwrap(),
            ManifestRef::Digest(_)
        ));
        for bad in ["", ".x", "a/b", "sha256:zz", "a?b", &"t".repeat(129)] {
            assert!(ManifestRef::parse("h", "r", bad).is_err(), "{bad:?}");
        }
    }
}
