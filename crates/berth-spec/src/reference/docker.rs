//! docker/distribution references: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.

use std::fmt;
use std::str::FromStr;

use super::ReferenceError;
use super::grammar;
use crate::digest::Digest;

/// The registry a name without a host refers to.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The old spelling of [`DEFAULT_DOMAIN`], normalized away.
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Where Docker Hub's registry API is served.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference gets when it has neither tag nor digest.
pub(super) const DEFAULT_TAG: &str = "latest";

/// A docker/distribution-style reference: an optional registry host, a repository path, an optional tag and an
/// optional digest.
///
/// [`parse`](Self::parse) keeps the string as written; [`parse_normalized`](Self::parse_normalized) applies the
/// Docker Hub defaults. `Display` writes `HOST/PATH:TAG@DIGEST` (omitting absent parts) and parses back to an
/// equal value.
#[derive(Clone)]
pub struct DockerReference {
    /// `HOST/PATH` or `PATH`.
    name: String,
    /// Byte offset of `PATH` in `name` (0 when there is no host).
    path_start: usize,
    tag: Option<String>,
    digest: Option<Digest>,
    /// The tag is `latest` because the input named none ([`parse_normalized`](Self::parse_normalized)). Not part
    /// of equality: `ubuntu` and `docker.io/library/ubuntu:latest` name the same image.
    tag_implied: bool,
}

impl PartialEq for DockerReference {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.path_start, &self.tag, &self.digest)
            == (&other.name, other.path_start, &other.tag, &other.digest)
    }
}

impl Eq for DockerReference {}

impl std::hash::Hash for DockerReference {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.name, self.path_start, &self.tag, &self.digest).hash(state);
    }
}

/// A reference string cut into its parts, before validation.
struct Parts<'a> {
    domain: Option<&'a str>,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(input: &'a str) -> Self {
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (input, None),
        };
        // A tag follows the last ':' unless a '/' comes after it (then the ':' belonged to a host's port).
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => (&rest[..colon], Some(&rest[colon + 1..])),
            _ => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, path)) if grammar::looks_like_domain(first) => (Some(first), path),
            _ => (None, name),
        };
        Parts {
            domain,
            path,
            tag,
            digest,
        }
    }
}

impl DockerReference {
    /// Parses `[HOST[:PORT]/]PATH[:TAG][@DIGEST]` as written, without docker.io defaults: `ubuntu` has no host
    /// and no tag. The first path component is a host iff it contains `.` or `:`, is `localhost`, or has
    /// uppercase letters (docker's rule).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let parts = Parts::split(input);
        Self::build(input, parts.domain, parts.path, parts.tag, parts.digest)
    }

    /// Parses like `docker pull` and skopeo's `docker://` do: no host means `docker.io`, `index.docker.io` means
    /// `docker.io`, a single-component path on `docker.io` gets `library/`, and a reference with neither tag nor
    /// digest gets the tag `latest`. Like docker, refuses a bare 64-hex-digit string (an image ID).
    pub fn parse_normalized(input: &str) -> Result<Self, ReferenceError> {
        if grammar::is_hex_identifier(input) {
            return Err(ReferenceError::HexIdentifier {
                input: input.to_owned(),
            });
        }
        let parts = Parts::split(input);
        if parts.path.is_empty() {
            return Err(ReferenceError::MissingName {
                input: input.to_owned(),
            });
        }
        let domain = match parts.domain {
            None | Some(LEGACY_DEFAULT_DOMAIN) => DEFAULT_DOMAIN,
            Some(domain) => domain,
        };
        let official;
        let path = if domain == DEFAULT_DOMAIN && !parts.path.contains('/') {
            official = format!("{OFFICIAL_REPO_PREFIX}{}", parts.path);
            &official
        } else {
            parts.path
        };
        let tag = match (parts.tag, parts.digest) {
            (None, None) => Some(DEFAULT_TAG),
            (tag, _) => tag,
        };
        let mut built = Self::build(input, Some(domain), path, tag, parts.digest)?;
        built.tag_implied = parts.tag.is_none() && parts.digest.is_none();
        Ok(built)
    }

    /// Whether the input named only a repository: no tag and no digest (the tag reads as `latest`).
    pub fn names_repository_only(&self) -> bool {
        self.tag_implied || (self.tag.is_none() && self.digest.is_none())
    }

    fn build(
        input: &str,
        domain: Option<&str>,
        path: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Self, ReferenceError> {
        let err_input = || input.to_owned();
        if path.is_empty() {
            return Err(ReferenceError::MissingName { input: err_input() });
        }
        if let Some(domain) = domain.filter(|d| !grammar::is_domain(d)) {
            return Err(ReferenceError::InvalidDomain {
                input: err_input(),
                domain: domain.to_owned(),
            });
        }
        if let Some(bad) = path.split('/').find(|c| !grammar::is_path_component(c)) {
            let component = bad.to_owned();
            return Err(if grammar::is_path_component(&bad.to_ascii_lowercase()) {
                ReferenceError::Uppercase {
                    input: err_input(),
                    component,
                }
            } else {
                ReferenceError::InvalidPathComponent {
                    input: err_input(),
                    component,
                }
            });
        }
        if let Some(tag) = tag.filter(|t| !grammar::is_tag(t)) {
            return Err(ReferenceError::InvalidTag {
                input: err_input(),
                tag: tag.to_owned(),
            });
        }
        let digest = digest
            .map(Digest::parse)
            .transpose()
            .map_err(|source| ReferenceError::InvalidDigest {
                input: err_input(),
                source,
            })?;
        let (name, path_start) = match domain {
            Some(domain) => (format!("{domain}/{path}"), domain.len() + 1),
            None => (path.to_owned(), 0),
        };
        if name.len() > grammar::NAME_MAX {
            return Err(ReferenceError::NameTooLong {
                input: err_input(),
                length: name.len(),
            });
        }
        Ok(DockerReference {
            name,
            path_start,
            tag: tag.map(str::to_owned),
            digest,
            tag_implied: false,
        })
    }

    /// The registry host with its port, if the reference names one.
    pub fn domain(&self) -> Option<&str> {
        self.path_start.checked_sub(1).map(|end| &self.name[..end])
    }

    /// The repository path without the host, e.g. `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.name[self.path_start..]
    }

    /// Host and path, e.g. `docker.io/library/alpine`, or just the path when there is no host.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// docker's short form: drops `docker.io/` and, for official images, `library/` (`alpine:3` for
    /// `docker.io/library/alpine:3`). Parses back with [`parse_normalized`](Self::parse_normalized): a path
    /// whose first component would read as a host (`docker.io/quay.io/app`, `docker.io/localhost/app`) keeps its
    /// `docker.io/`, where docker's own short form would name another registry.
    pub fn familiar(&self) -> String {
        let name = match self.domain() {
            Some(DEFAULT_DOMAIN) => {
                let path = self.repository();
                let short = match path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                    Some(official) if !official.contains('/') => official,
                    _ => path,
                };
                match short.split_once('/') {
                    Some((first, _)) if grammar::looks_like_domain(first) => self.name(),
                    _ => short,
                }
            }
            _ => self.name(),
        };
        let mut out = name.to_owned();
        self.write_suffix(&mut out).expect("writing to a String cannot fail");
        out
    }

    /// The registry this reference names: its host, or `docker.io` when it has none.
    pub fn registry_host(&self) -> &str {
        self.domain().unwrap_or(DEFAULT_DOMAIN)
    }

    /// The host to send registry API requests to: [`registry_host`](Self::registry_host), except that Docker
    /// Hub's API lives at `registry-1.docker.io`. Use with a normalized reference, whose
    /// [`repository`](Self::repository) then carries the `library/` prefix the API expects.
    pub fn api_host(&self) -> &str {
        match self.registry_host() {
            DEFAULT_DOMAIN | LEGACY_DEFAULT_DOMAIN => DOCKER_HUB_API_HOST,
            host => host,
        }
    }

    /// Gives a reference with neither tag nor digest the tag `latest`.
    pub(super) fn default_tag(&mut self) {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
    }

    fn write_suffix(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if let Some(tag) = &self.tag {
            write!(out, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(out, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DockerReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        self.write_suffix(f)
    }
}

impl fmt::Debug for DockerReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DockerReference({self})")
    }
}

impl FromStr for DockerReference {
    type Err = ReferenceError;
    /// Same as [`DockerReference::parse`] (no normalization).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DockerReference::parse(s)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::digest::DigestError;

    pub(in crate::reference) const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_keeps_what_was_written() {
        for (input, expected) in [
            ("ubuntu", (None, "ubuntu", None)),
            ("foo/bar", (None, "foo/bar", None)),
            ("foo/bar/baz:1", (None, "foo/bar/baz", Some("1"))),
            ("localhost/x", (Some("localhost"), "x", None)),
            ("localhost:5000/x:1", (Some("localhost:5000"), "x", Some("1"))),
            ("localhost:5000", (None, "localhost", Some("5000"))),
            ("[::1]:5000/a/b:v", (Some("[::1]:5000"), "a/b", Some("v"))),
            ("Foo/bar", (Some("Foo"), "bar", None)),
            (
                "example.com/a__b/c---d:_T.1-x",
                (Some("example.com"), "a__b/c---d", Some("_T.1-x")),
            ),
        ] {
            let r = DockerReference::parse(input).unwrap();
            assert_eq!((r.domain(), r.repository(), r.tag()), expected, "{input}");
            assert_eq!(r.digest(), None);
            assert_eq!(r.to_string(), input);
        }
        let with_digest = format!("10.0.0.1:5000/a/b:1@{D}");
        let r = DockerReference::parse(&with_digest).unwrap();
        assert_eq!(
            (r.domain(), r.repository(), r.tag()),
            (Some("10.0.0.1:5000"), "a/b", Some("1"))
        );
        assert_eq!(r.digest().map(ToString::to_string).as_deref(), Some(D));
        assert_eq!(r.name(), "10.0.0.1:5000/a/b");
        assert_eq!(r.to_string(), with_digest);
        assert_eq!(with_digest.parse::<DockerReference>().unwrap(), r);
    }

    #[test]
    fn a_repository_alone_is_told_apart_from_an_explicit_latest() {
        let bare = DockerReference::parse_normalized("localhost:5000/x").unwrap();
        let latest = DockerReference::parse_normalized("localhost:5000/x:latest").unwrap();
        let pinned = DockerReference::parse_normalized(&format!("localhost:5000/x@{D}")).unwrap();
        assert!(bare.names_repository_only());
        assert!(!latest.names_repository_only() && !pinned.names_repository_only());
        assert_eq!(bare, latest, "still the same image");
        assert!(DockerReference::parse("x").unwrap().names_repository_only());
    }

    #[test]
    fn normalization_follows_docker() {
        for (input, expected) in [
            ("ubuntu", "docker.io/library/ubuntu:latest"),
            ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
            ("foo/bar", "docker.io/foo/bar:latest"),
            ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
            ("docker.io/library/ubuntu:1", "docker.io/library/ubuntu:1"),
            ("index.docker.io/x", "docker.io/library/x:latest"),
            ("index.docker.io/foo/bar:1", "docker.io/foo/bar:1"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("quay.io/a/b/c:v1", "quay.io/a/b/c:v1"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
        ] {
            assert_eq!(
                DockerReference::parse_normalized(input).unwrap().to_string(),
                expected,
                "{input}"
            );
        }
        let r = DockerReference::parse_normalized(&format!("ubuntu@{D}")).unwrap();
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/ubuntu@{D}"),
            "a digest suppresses the default tag"
        );
        let r = DockerReference::parse_normalized(&format!("ubuntu:1@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/ubuntu:1@{D}"));
    }

    #[test]
    fn a_dotted_first_component_is_a_host() {
        // docker's rule makes `a.b_c` a host, and an invalid one; Go's regexp-based Parse would backtrack and
        // accept it as a path, but its ParseNormalizedNamed disagrees with itself there, so refuse it.
        assert!(matches!(
            DockerReference::parse("a.b_c/d"),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert!(matches!(
            DockerReference::parse_normalized("a.b_c/d"),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert_eq!(DockerReference::parse("a.b_c").unwrap().repository(), "a.b_c");
    }

    #[test]
    fn hex_identifiers_are_not_names() {
        let id = "a".repeat(64);
        assert!(matches!(
            DockerReference::parse_normalized(&id),
            Err(ReferenceError::HexIdentifier { .. })
        ));
        assert!(DockerReference::parse_normalized(&format!("{id}:1")).is_ok());
    }

    #[test]
    fn familiar_and_hosts() {
        for (input, familiar, api) in [
            ("alpine:3", "alpine:3", "registry-1.docker.io"),
            ("foo/bar", "foo/bar:latest", "registry-1.docker.io"),
            ("library/a/b", "library/a/b:latest", "registry-1.docker.io"),
            ("localhost:5000/x:1", "localhost:5000/x:1", "localhost:5000"),
        ] {
            let r = DockerReference::parse_normalized(input).unwrap();
            assert_eq!(r.familiar(), familiar);
            assert_eq!(r.api_host(), api);
            assert_eq!(DockerReference::parse_normalized(&r.familiar()).unwrap(), r);
        }
        let bare = DockerReference::parse("alpine").unwrap();
        assert_eq!(
            (bare.domain(), bare.registry_host(), bare.api_host()),
            (None, "docker.io", "registry-1.docker.io")
        );
        assert_eq!(bare.familiar(), "alpine");
        assert_eq!(DockerReference::parse("quay.io/x").unwrap().registry_host(), "quay.io");
    }

    /// Found by `cargo xtask fuzz` (berth-fuzz's `reference` target): `docker.io/cker.io/vv` was shortened to
    /// `cker.io/vv`, which names the registry `cker.io`; berth-copy wrote such short forms as docker-archive
    /// RepoTags, so the archive named another image.
    #[test]
    fn familiar_form_of_a_docker_io_path_that_looks_like_a_host_keeps_docker_io() {
        for (input, familiar) in [
            ("docker.io/cker.io/vv", "docker.io/cker.io/vv:latest"),
            ("docker.io/quay.io/app:1", "docker.io/quay.io/app:1"),
            ("docker.io/localhost/app", "docker.io/localhost/app:latest"),
            ("docker.io/docker.io/x/y", "docker.io/docker.io/x/y:latest"),
            ("docker.io/library/a.b", "a.b:latest"),
            ("docker.io/a.b", "a.b:latest"),
            ("docker.io/x.y/z.w", "docker.io/x.y/z.w:latest"),
        ] {
            let r = DockerReference::parse_normalized(input).unwrap();
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(DockerReference::parse_normalized(&r.familiar()).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn refusals_name_the_input_and_the_rule() {
        let e = DockerReference::parse("Foo").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference \"Foo\": repository names must be lowercase (found \"Foo\")"
        );
        assert!(matches!(
            DockerReference::parse("foo/Bar"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            DockerReference::parse_normalized("Foo"),
            Err(ReferenceError::Uppercase { .. })
        ));
        for (input, want) in [
            ("", "MissingName"),
            (":1", "MissingName"),
            ("localhost/", "MissingName"),
            ("a//b", "InvalidPathComponent"),
            ("a/", "InvalidPathComponent"),
            ("/a", "InvalidPathComponent"),
            ("a___b", "InvalidPathComponent"),
            ("-a", "InvalidPathComponent"),
            ("a b", "InvalidPathComponent"),
            ("a:", "InvalidTag"),
            ("a:.x", "InvalidTag"),
            ("a:-x", "InvalidTag"),
            ("a:b c", "InvalidTag"),
            ("a.com:/x", "InvalidDomain"),
            ("a.com:x/y", "InvalidDomain"),
            ("-a.com/x", "InvalidDomain"),
            ("[::1/x", "InvalidDomain"),
            ("a@", "InvalidDigest"),
            ("a@sha256:abc", "InvalidDigest"),
            ("a@@sha256:abc", "InvalidDigest"),
        ] {
            let e = DockerReference::parse(input).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{input:?}: {e:?}");
            assert_eq!(e.input(), input);
            assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
        }
    }

    #[test]
    fn digest_errors_keep_their_source() {
        let e = DockerReference::parse("a@sha256:abc").unwrap_err();
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<DigestError>());
        assert!(
            matches!(source, Some(DigestError::WrongLength { found: 3, .. })),
            "{e:?}"
        );
        assert!(DockerReference::parse(&format!("a@{}", D.to_uppercase())).is_err());
    }

    #[test]
    fn length_limits() {
        assert!(DockerReference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
        assert!(matches!(
            DockerReference::parse(&format!("a:{}", "t".repeat(129))),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(DockerReference::parse(&"a".repeat(255)).is_ok());
        let e = DockerReference::parse(&"a".repeat(256)).unwrap_err();
        assert!(matches!(e, ReferenceError::NameTooLong { length: 256, .. }), "{e:?}");
        // The limit applies to the normalized name: docker.io/library/ is 18 characters.
        assert!(DockerReference::parse_normalized(&"a".repeat(237)).is_ok());
        assert!(matches!(
            DockerReference::parse_normalized(&"a".repeat(238)),
            Err(ReferenceError::NameTooLong { length: 256, .. })
        ));
    }

    /// A docker path component.
    pub(in crate::reference) fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,4}){0,2}"
    }

    /// A repository path of one to three components. A first component with a `.` followed by more components
    /// would be read as a host (and `a.b_c/d` refused as an invalid one), so those are not generated.
    pub(in crate::reference) fn path() -> impl Strategy<Value = String> {
        proptest::collection::vec(component(), 1..4)
            .prop_filter("first component looks like a host", |c| {
                c.len() == 1 || !grammar::looks_like_domain(&c[0])
            })
            .prop_map(|c| c.join("/"))
    }

    /// A host that docker's rule recognizes as one.
    pub(in crate::reference) fn domain() -> impl Strategy<Value = String> {
        let port = proptest::option::of(1u16..);
        let dns = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?){1,3}";
        let host = prop_oneof![
            Just("localhost".to_owned()),
            dns,
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "\\[[0-9a-fA-F]{0,4}:[0-9a-fA-F:]{0,8}\\]",
            "[A-Z][a-zA-Z0-9]{0,5}",
        ];
        (host, port).prop_map(|(h, p)| p.map_or(h.clone(), |p| format!("{h}:{p}")))
    }

    pub(in crate::reference) fn tag() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
    }

    pub(in crate::reference) fn digest() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
            "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}"))
        ]
    }

    /// `(name, tag, digest)` of a valid, non-normalized reference.
    pub(in crate::reference) fn reference() -> impl Strategy<Value = (String, Option<String>, Option<String>)> {
        let name =
            (proptest::option::of(domain()), path()).prop_map(|(d, p)| d.map_or(p.clone(), |d| format!("{d}/{p}")));
        (name, proptest::option::of(tag()), proptest::option::of(digest()))
    }

    pub(in crate::reference) fn spell(name: &str, tag: Option<&str>, digest: Option<&str>) -> String {
        let mut s = name.to_owned();
        s.extend(tag.map(|t| format!(":{t}")));
        s.extend(digest.map(|d| format!("@{d}")));
        s
    }

    proptest! {
        #[test]
        fn random_strings_never_panic(s in "\\PC{0,80}", t in "[a-zA-Z0-9:/@._\\[\\]-]{0,40}") {
            for s in [&s, &t] {
                if let Ok(r) = DockerReference::parse(s) {
                    prop_assert_eq!(&r.to_string(), s);
                }
                if let Ok(r) = DockerReference::parse_normalized(s) {
                    prop_assert_eq!(DockerReference::parse(&r.to_string()), Ok(r));
                }
            }
        }

        #[test]
        fn valid_references_round_trip((name, tag, digest) in reference()) {
            let s = spell(&name, tag.as_deref(), digest.as_deref());
            let r = DockerReference::parse(&s).unwrap();
            prop_assert_eq!(r.name(), name.as_str());
            prop_assert_eq!(r.tag(), tag.as_deref());
            prop_assert_eq!(r.digest().map(ToString::to_string), digest);
            prop_assert_eq!(r.to_string(), s);
            prop_assert_eq!(DockerReference::parse(&r.to_string()), Ok(r));
        }

        #[test]
        fn normalization_is_idempotent((name, tag, digest) in reference()) {
            let s = spell(&name, tag.as_deref(), digest.as_deref());
            let n = DockerReference::parse_normalized(&s).unwrap();
            prop_assert!(n.domain().is_some());
            prop_assert!(n.tag().is_some() || n.digest().is_some());
            prop_assert_eq!(DockerReference::parse_normalized(&n.to_string()), Ok(n.clone()));
            prop_assert_eq!(DockerReference::parse(&n.to_string()), Ok(n));
        }
    }
}
