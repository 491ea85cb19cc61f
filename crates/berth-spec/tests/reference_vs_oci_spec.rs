//! Berth's reference parser next to oci-spec's (`oci_spec::distribution::Reference`, the `distribution` feature),
//! on the same inputs.
//!
//! Both normalize the way `docker pull` does (`busybox` is `docker.io/library/busybox:latest`), so Berth's side is
//! [`DockerReference::parse_normalized`]. Where they agree, they must give the same registry, repository, tag and
//! digest (or both refuse). Where they differ, each difference is listed with the reason Berth's answer is the one
//! it wants; a change on either side fails here and has to be looked at.

use berth_spec::reference::DockerReference;
use oci_spec::distribution::Reference;

/// (registry, repository, tag, digest), as both parsers report them.
type Parsed = (String, String, Option<String>, Option<String>);

fn berth(input: &str) -> Option<Parsed> {
    let r = DockerReference::parse_normalized(input).ok()?;
    Some((
        r.registry_host().to_owned(),
        r.repository().to_owned(),
        r.tag().map(str::to_owned),
        r.digest().map(ToString::to_string),
    ))
}

fn oci_spec(input: &str) -> Option<Parsed> {
    let r: Reference = input.parse().ok()?;
    Some((
        r.registry().to_owned(),
        r.repository().to_owned(),
        r.tag().map(str::to_owned),
        r.digest().map(str::to_owned),
    ))
}

const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn both_parsers_agree_on_ordinary_references() {
    let valid = [
        "busybox".to_owned(),
        "busybox:1.36".to_owned(),
        "library/busybox".to_owned(),
        "docker.io/library/busybox:latest".to_owned(),
        "index.docker.io/library/busybox".to_owned(),
        "opensuse/leap:15.3".to_owned(),
        "quay.io/podman/stable:v5".to_owned(),
        "localhost/app".to_owned(),
        "localhost:5000/team/app:dev".to_owned(),
        "registry.example.com:443/a/b/c/d".to_owned(),
        "test.com:5000".to_owned(),
        "lowercase:Uppercase".to_owned(),
        "a__b/c-d/e---f/g.h_i".to_owned(),
        "xn--n3h.com/myimage:xn--n3h.com".to_owned(),
        format!("busybox@{SHA256}"),
        format!("ghcr.io/owner/app:1@{SHA256}"),
        format!("localhost:5000/app:{}", "t".repeat(128)),
    ];
    let invalid = [
        "".to_owned(),
        ":tag".to_owned(),
        "@sha256:abc".to_owned(),
        "busybox:".to_owned(),
        "busybox@".to_owned(),
        "busybox:-tag".to_owned(),
        "busybox:.tag".to_owned(),
        "bad_/repo".to_owned(),
        "repo//double".to_owned(),
        "repo/".to_owned(),
        "-leading/dash".to_owned(),
        "under_/score".to_owned(),
        "a..b".to_owned(),
        "UPPER".to_owned(),
        "host:notaport/app".to_owned(),
        "space in/name".to_owned(),
        format!("busybox:{}", "t".repeat(129)),
        "busybox@sha256:0123".to_owned(),
        "busybox@md5:0123456789abcdef0123456789abcdef".to_owned(),
    ];
    for input in &valid {
        let b = berth(input).unwrap_or_else(|| panic!("Berth refuses {input:?}"));
        assert_eq!(Some(b), oci_spec(input), "{input:?}");
    }
    for input in &invalid {
        assert_eq!(berth(input), None, "Berth accepts {input:?}");
        assert_eq!(oci_spec(input), None, "oci-spec accepts {input:?}");
    }
}

#[test]
fn where_the_parsers_differ_berth_follows_docker_and_the_image_spec() {
    let hex64 = "0123456789abcdef".repeat(4);
    let upper_hex = format!("busybox@sha256:{}", "0123456789ABCDEF".repeat(4));
    let sha384 = format!("busybox@sha384:{}", "0".repeat(96));
    let long_name = format!("registry.example.com/{}", "a".repeat(250));
    let ipv6 = "[::1]:5000/app:1".to_owned();
    // (input, Berth accepts, oci-spec accepts, why Berth's answer is the intended one)
    let cases: [(&str, bool, bool, &str); 7] = [
        (
            &hex64,
            false,
            true,
            "a bare 64-hex string is an image ID; docker refuses it as a reference, so a typo cannot pull a repo",
        ),
        (
            "Foo/bar",
            true,
            true,
            "docker reads an uppercase first component as a host (Foo, repository bar); oci-spec puts the \
             invalid repository docker.io/Foo/bar together (see the values below)",
        ),
        (
            "busybox:ümlaut",
            false,
            true,
            "the tag grammar is ASCII ([A-Za-z0-9_][A-Za-z0-9_.-]*); oci-spec's \\w also matches Unicode letters",
        ),
        (
            &upper_hex,
            false,
            true,
            "the image-spec says sha256 digests are lowercase hex ([a-f0-9]{64}); oci-spec takes any case",
        ),
        (
            &sha384,
            false,
            true,
            "Berth verifies digests, so it accepts only the algorithms it can hash (sha256, sha512)",
        ),
        (
            &long_name,
            false,
            true,
            "distribution limits the whole name (host and path) to 255 bytes; oci-spec counts only the path",
        ),
        (
            &ipv6,
            true,
            false,
            "distribution accepts a bracketed IPv6 registry host; oci-spec's regular expression predates that",
        ),
    ];
    for (input, berth_ok, oci_ok, why) in cases {
        assert_eq!(
            (berth(input).is_some(), oci_spec(input).is_some()),
            (berth_ok, oci_ok),
            "{input:?}: {why}"
        );
    }
    // Accepted by both, but read differently.
    assert_eq!(
        berth("Foo/bar"),
        Some(("Foo".to_owned(), "bar".to_owned(), Some("latest".to_owned()), None))
    );
    assert_eq!(
        oci_spec("Foo/bar"),
        Some((
            "docker.io".to_owned(),
            "Foo/bar".to_owned(),
            Some("latest".to_owned()),
            None
        ))
    );
}
