//! Hand-written scanners for the docker/distribution and OCI image-spec reference grammars.
//!
//! Every grammar here has the shape `run (separator run)*`; [`runs_joined_by`] scans that shape given what a run
//! character is and how long the separator at a position is. The separators are chosen so that scanning greedily
//! (longest separator first) accepts exactly what the regular expressions accept.

/// Longest `HOST/PATH` docker/distribution accepts.
pub(super) const NAME_MAX: usize = 255;
/// Longest tag docker/distribution accepts.
pub(super) const TAG_MAX: usize = 128;

/// Index of the first byte at or after `start` that is not `in_run`.
fn run_end(b: &[u8], start: usize, in_run: impl Fn(u8) -> bool) -> usize {
    b[start..]
        .iter()
        .position(|&c| !in_run(c))
        .map_or(b.len(), |n| start + n)
}

/// Whether `s` is `run (separator run)*` with non-empty runs; `separator(rest)` returns the separator's length
/// at the start of `rest`, or `None` if `rest` does not start with one.
fn runs_joined_by(s: &str, in_run: impl Fn(u8) -> bool, separator: impl Fn(&[u8]) -> Option<usize>) -> bool {
    let b = s.as_bytes();
    let mut i = run_end(b, 0, &in_run);
    if i == 0 {
        return false;
    }
    while i < b.len() {
        let Some(sep) = separator(&b[i..]) else {
            return false;
        };
        let end = run_end(b, i + sep, &in_run);
        if end == i + sep {
            return false;
        }
        i = end;
    }
    true
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A docker path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub(super) fn is_path_component(s: &str) -> bool {
    runs_joined_by(s, is_lower_alnum, |rest| match rest {
        [b'_', b'_', ..] => Some(2),
        [b'.' | b'_', ..] => Some(1),
        [b'-', ..] => Some(rest.iter().take_while(|&&c| c == b'-').count()),
        _ => None,
    })
}

/// A docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(super) fn is_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    match s.as_bytes() {
        [first, rest @ ..] => {
            s.len() <= TAG_MAX && word(*first) && rest.iter().all(|&c| word(c) || c == b'.' || c == b'-')
        }
        [] => false,
    }
}

/// A registry host: `host [":" port]` where host is a DNS name or IPv4 address (components
/// `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` joined by `.`) or `[IPv6]`, and port is `[0-9]+`.
pub(super) fn is_domain(s: &str) -> bool {
    let (host_ok, port) = match s.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((ip, port)) => (
                !ip.is_empty() && ip.bytes().all(|c| c.is_ascii_hexdigit() || c == b':'),
                port,
            ),
            None => return false,
        },
        None => {
            let (host, port) = s.find(':').map_or((s, ""), |i| s.split_at(i));
            let dns = runs_joined_by(
                host,
                |c| c.is_ascii_alphanumeric(),
                |rest| match rest {
                    [b'.', ..] => Some(1),
                    [b'-', ..] => Some(rest.iter().take_while(|&&c| c == b'-').count()),
                    _ => None,
                },
            );
            (dns, port)
        }
    };
    host_ok
        && (port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())))
}

/// docker's rule for whether the first `/`-separated part of a name is a registry host rather than a path
/// component: it contains `.` or `:`, is `localhost`, or has uppercase letters (which paths never do).
pub(super) fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|c| c.is_ascii_uppercase())
}

/// An OCI ref name: `component ("/" component)*`, `component ::= alphanum (separator alphanum)*`,
/// `alphanum ::= [A-Za-z0-9]+`, `separator ::= [-._:@+] | "--"`.
pub(super) fn is_ref_name(s: &str) -> bool {
    s.split('/').all(|component| {
        runs_joined_by(
            component,
            |c| c.is_ascii_alphanumeric(),
            |rest| match rest {
                [b'-', b'-', ..] => Some(2),
                [b'-' | b'.' | b'_' | b':' | b'@' | b'+', ..] => Some(1),
                _ => None,
            },
        )
    })
}

/// A string docker refuses as a name because it looks like an image ID: `[a-f0-9]{64}`.
pub(super) fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        for ok in [
            "a",
            "0",
            "alpine",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b-c_d__e",
            "9a",
        ] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in [
            "", "A", "aB", ".a", "a.", "_a", "a_", "-a", "a-", "a___b", "a..b", "a._b", "a b", "a/b", "é",
        ] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["1", "latest", "_", "_x", "V1.2-rc_3", "a.", "a-"] {
            assert!(is_tag(ok), "{ok}");
        }
        assert!(is_tag(&"a".repeat(128)));
        for bad in ["", ".a", "-a", "a b", "a:b", "a/b", "a@b", "é"] {
            assert!(!is_tag(bad), "{bad}");
        }
        assert!(!is_tag(&"a".repeat(129)));
    }

    #[test]
    fn domains() {
        for ok in [
            "localhost",
            "localhost:5000",
            "example.com",
            "Registry.Example.COM:443",
            "a-b--c.d",
            "10.0.0.1",
            "10.0.0.1:5000",
            "[::1]",
            "[::1]:5000",
            "[2001:DB8::1]:5000",
            "Foo",
        ] {
            assert!(is_domain(ok), "{ok}");
        }
        for bad in [
            "",
            ":5000",
            "a:",
            "a:b",
            "a:5000:1",
            "-a.com",
            "a-.com",
            "a..b",
            ".a",
            "a.",
            "[]",
            "[::1",
            "[x]",
            "[::1]5000",
            "a_b.com",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }

    #[test]
    fn domain_heuristic_follows_docker() {
        assert!(looks_like_domain("localhost"));
        assert!(looks_like_domain("example.com"));
        assert!(looks_like_domain("host:5000"));
        assert!(looks_like_domain("Foo"));
        assert!(!looks_like_domain("library"));
        assert!(!looks_like_domain("local-host"));
    }

    #[test]
    fn hex_identifiers() {
        assert!(is_hex_identifier(&"a".repeat(64)));
        assert!(!is_hex_identifier(&"a".repeat(63)));
        assert!(!is_hex_identifier(&"A".repeat(64)));
        assert!(!is_hex_identifier(&"g".repeat(64)));
    }
}
