//! Image references and transports, spelled the way skopeo spells them.
//!
//! Three layers:
//!
//! - [`DockerReference`]: a docker/distribution name `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`, parsed as written
//!   ([`DockerReference::parse`]) or normalized the way `docker pull` and skopeo do
//!   ([`DockerReference::parse_normalized`]: `ubuntu` means `docker.io/library/ubuntu:latest`).
//! - [`StoreRef`]: a bare `NAME[:TAG][@DIGEST]` naming an image in Berth's default local store, kept as the user
//!   spelled it; [`StoreRef::ref_name`] is the `org.opencontainers.image.ref.name` it is stored under.
//! - [`ImageRef`]: one of the transports `oci:PATH[:REF]`, `oci-archive:PATH[:REF]`,
//!   `docker://NAME`, `docker-archive:PATH[:NAME:TAG|:@INDEX]`, or a bare store name.
//!
//! Everything is validated at parse time by hand-written scanners of the docker/distribution and OCI image-spec
//! grammars; `Display` gives back a string that parses to the same value.
//!
//! Berth keeps its own parser rather than oci-spec's `distribution::Reference` because that one is looser where it
//! matters to a tool that verifies what it names: it takes a bare image ID as a repository, uppercase or sha384
//! digests Berth cannot verify, Unicode tags, and `Foo/bar` as the invalid `docker.io/Foo/bar`; it counts the
//! name limit without the host; and it has no form without Docker's normalization (`docker.io/library/`,
//! `:latest`), which `oci:` names, store names and `familiar` need. `tests/reference_vs_oci_spec.rs` runs both
//! on the same inputs and lists each difference.
//!
//! ```
//! use berth_spec::reference::{DockerReference, ImageRef};
//!
//! let r = ImageRef::parse("oci:/var/lib/images:app:1.0").unwrap();
//! assert!(matches!(&r, ImageRef::Oci { reference: Some(name), .. } if name == "app:1.0"));
//! assert_eq!(r.to_string(), "oci:/var/lib/images:app:1.0");
//!
//! let d = DockerReference::parse_normalized("alpine").unwrap();
//! assert_eq!(d.to_string(), "docker.io/library/alpine:latest");
//! assert_eq!(d.familiar(), "alpine:latest");
//! ```

mod docker;
mod grammar;
mod store;
mod transport;

pub use docker::DockerReference;
pub use store::StoreRef;
pub use transport::{DockerArchiveRef, ImageRef};

use crate::digest::DigestError;

/// How the transports are written, for error messages.
const TRANSPORT_SYNTAX: &str = "oci:PATH[:REF], oci-archive:PATH[:REF], docker://NAME[:TAG][@DIGEST], \
     docker-archive:PATH[:NAME:TAG|:@INDEX], or a bare NAME[:TAG][@DIGEST] for the local store";

/// Checks an OCI ref name (the value of the `org.opencontainers.image.ref.name` annotation) against the
/// image-spec grammar: `component ("/" component)*`, `component ::= alphanum (separator alphanum)*`,
/// `alphanum ::= [A-Za-z0-9]+`, `separator ::= [-._:@+] | "--"`.
pub fn validate_ref_name(ref_name: &str) -> Result<(), ReferenceError> {
    if grammar::is_ref_name(ref_name) {
        Ok(())
    } else {
        Err(ReferenceError::InvalidRefName {
            input: ref_name.to_owned(),
            ref_name: ref_name.to_owned(),
        })
    }
}

/// Why a reference string was refused. Every variant carries the whole string as given (`input`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Nothing names a repository (empty string, or only a host, tag or digest).
    #[error("invalid reference {input:?}: missing repository name; write NAME[:TAG][@DIGEST], e.g. alpine:3")]
    MissingName {
        /// The string as given.
        input: String,
    },
    /// The part before the first `/` is a registry host, but not a valid one.
    #[error(
        "invalid reference {input:?}: {domain:?} is not a valid registry host; write HOST[:PORT] such as \
         registry.example.com:5000, localhost, 10.0.0.1:5000 or [::1]:5000"
    )]
    InvalidDomain {
        /// The string as given.
        input: String,
        /// The host part.
        domain: String,
    },
    /// A repository path component has uppercase letters.
    #[error("invalid reference {input:?}: repository names must be lowercase (found {component:?})")]
    Uppercase {
        /// The string as given.
        input: String,
        /// The offending path component.
        component: String,
    },
    /// A repository path component does not match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    #[error(
        "invalid reference {input:?}: path component {component:?} is invalid; components are non-empty runs of \
         lowercase letters and digits joined by '.', '_', '__' or dashes, separated by '/'"
    )]
    InvalidPathComponent {
        /// The string as given.
        input: String,
        /// The offending path component (empty for `a//b` or a trailing `/`).
        component: String,
    },
    /// The tag does not match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error(
        "invalid reference {input:?}: tag {tag:?} is invalid; a tag is 1 to 128 letters, digits, '_', '.' or '-' \
         and must not start with '.' or '-'"
    )]
    InvalidTag {
        /// The string as given.
        input: String,
        /// The tag part.
        tag: String,
    },
    /// The part after `@` is not a valid digest.
    #[error(
        "invalid reference {input:?}: the digest after '@' is invalid; write NAME@sha256:<64 lowercase hex digits>"
    )]
    InvalidDigest {
        /// The string as given.
        input: String,
        /// What is wrong with the digest.
        #[source]
        source: DigestError,
    },
    /// Host and path together are longer than docker/distribution allows.
    #[error("invalid reference {input:?}: the repository name is {length} characters; at most 255 are allowed")]
    NameTooLong {
        /// The string as given.
        input: String,
        /// Length of `HOST/PATH`.
        length: usize,
    },
    /// A 64-hex-digit string, which docker refuses as a name because it looks like an image ID.
    #[error(
        "invalid reference {input:?}: a 64-character hex string cannot be a repository name; to refer to an image \
         by digest write NAME@sha256:HEX"
    )]
    HexIdentifier {
        /// The string as given.
        input: String,
    },
    /// An OCI ref name does not match the image-spec grammar.
    #[error(
        "invalid reference {input:?}: {ref_name:?} is not a valid OCI ref name; it must be '/'-separated \
         components of letters and digits joined by one of - . _ : @ + or --, e.g. app:1.0"
    )]
    InvalidRefName {
        /// The string as given.
        input: String,
        /// The ref name.
        ref_name: String,
    },
    /// A store name is a valid docker name, but `REPO:TAG` is not a valid OCI ref name, so it cannot be stored.
    #[error(
        "invalid image name {input:?}: it would be stored under the OCI ref name {ref_name:?}, which the image \
         spec does not allow; use single '.', '_' or '-' (or '--') between letters and digits, no '__' or '---', \
         a tag that does not end in a separator, and no [IPv6] host"
    )]
    NotStorable {
        /// The string as given.
        input: String,
        /// The ref name it would be stored under.
        ref_name: String,
    },
    /// A bare store name equal to a transport name would read back as that transport.
    #[error(
        "invalid image name {input:?}: {name:?} is a transport name, so `{name}:TAG` would not read back as an \
         image name; write localhost/{name} instead"
    )]
    TransportName {
        /// The string as given.
        input: String,
        /// The name.
        name: String,
    },
    /// `oci:`, `oci-archive:` or `docker-archive:` with nothing before the next `:`.
    #[error("invalid image reference {input:?}: the path is empty; write {transport}:PATH[:REF]")]
    EmptyPath {
        /// The string as given.
        input: String,
        /// The transport.
        transport: &'static str,
    },
    /// `docker:NAME` without the `//`.
    #[error("invalid image reference {input:?}: the docker transport is written with '//'; write {suggestion}")]
    DockerNeedsSlashes {
        /// The string as given.
        input: String,
        /// The corrected spelling.
        suggestion: String,
    },
    /// `docker-archive:PATH:` with nothing after the second `:`.
    #[error(
        "invalid image reference {input:?}: nothing follows the ':' after the path; write docker-archive:PATH, \
         docker-archive:PATH:NAME:TAG or docker-archive:PATH:@INDEX"
    )]
    EmptyArchiveReference {
        /// The string as given.
        input: String,
    },
    /// `docker-archive:PATH:@N` where N is not a non-negative integer.
    #[error(
        "invalid image reference {input:?}: source index {index:?} is not a non-negative integer; write \
         docker-archive:PATH:@0 for the first image in the archive"
    )]
    InvalidSourceIndex {
        /// The string as given.
        input: String,
        /// The text after `@`.
        index: String,
    },
    /// `docker-archive:PATH:NAME@DIGEST`: archives name images by tag only.
    #[error(
        "invalid image reference {input:?}: docker-archive references cannot carry a digest; write \
         docker-archive:PATH:NAME:TAG or docker-archive:PATH:@INDEX"
    )]
    ArchiveDigest {
        /// The string as given.
        input: String,
    },
    /// A skopeo transport that Berth does not implement.
    #[error(
        "invalid image reference {input:?}: Berth does not support the {transport}: transport; use {TRANSPORT_SYNTAX}"
    )]
    UnsupportedTransport {
        /// The string as given.
        input: String,
        /// The transport name.
        transport: String,
    },
    /// `xyz:REST` where `xyz` could be meant as a transport but is none, and the whole string is no image name
    /// either. (When the prefix cannot be a transport, e.g. `a.com:x/y` or `app:1`, the name error is returned
    /// as it is.)
    #[error(
        "{name_error}; also, \"{transport}:\" is not a transport (transports: oci:, oci-archive:, docker://, \
         docker-archive:)"
    )]
    UnknownTransport {
        /// The string as given.
        input: String,
        /// The text before the first `:`.
        transport: String,
        /// Why the whole string is not a valid bare image name.
        name_error: Box<ReferenceError>,
    },
}

impl ReferenceError {
    /// The string as given.
    pub fn input(&self) -> &str {
        match self {
            Self::MissingName { input }
            | Self::InvalidDomain { input, .. }
            | Self::Uppercase { input, .. }
            | Self::InvalidPathComponent { input, .. }
            | Self::InvalidTag { input, .. }
            | Self::InvalidDigest { input, .. }
            | Self::NameTooLong { input, .. }
            | Self::HexIdentifier { input }
            | Self::InvalidRefName { input, .. }
            | Self::NotStorable { input, .. }
            | Self::TransportName { input, .. }
            | Self::EmptyPath { input, .. }
            | Self::DockerNeedsSlashes { input, .. }
            | Self::EmptyArchiveReference { input }
            | Self::InvalidSourceIndex { input, .. }
            | Self::ArchiveDigest { input }
            | Self::UnsupportedTransport { input, .. }
            | Self::UnknownTransport { input, .. } => input,
        }
    }

    /// Replaces the reported input, so an error found inside `docker://NAME` names the whole string.
    fn with_input(mut self, whole: &str) -> Self {
        match &mut self {
            Self::MissingName { input }
            | Self::InvalidDomain { input, .. }
            | Self::Uppercase { input, .. }
            | Self::InvalidPathComponent { input, .. }
            | Self::InvalidTag { input, .. }
            | Self::InvalidDigest { input, .. }
            | Self::NameTooLong { input, .. }
            | Self::HexIdentifier { input }
            | Self::InvalidRefName { input, .. }
            | Self::NotStorable { input, .. }
            | Self::TransportName { input, .. }
            | Self::EmptyPath { input, .. }
            | Self::DockerNeedsSlashes { input, .. }
            | Self::EmptyArchiveReference { input }
            | Self::InvalidSourceIndex { input, .. }
            | Self::ArchiveDigest { input }
            | Self::UnsupportedTransport { input, .. }
            | Self::UnknownTransport { input, .. } => *input = whole.to_owned(),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_ref_name_follows_the_image_spec() {
        for ok in [
            "app",
            "app:1.0",
            "localhost:5000/app:latest",
            "a--b",
            "a+b@c",
            "A/B/C",
            "v1.2.3-rc_1",
        ] {
            assert!(validate_ref_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "a---b", "a__b", "-a", "a-", "app:", ":1", "a b", "a/[::1]", "é",
        ] {
            let e = validate_ref_name(bad).unwrap_err();
            assert!(matches!(e, ReferenceError::InvalidRefName { .. }), "{bad}: {e:?}");
            assert_eq!(e.input(), bad);
        }
    }

    #[test]
    fn with_input_replaces_the_reported_string() {
        let e = ReferenceError::MissingName { input: String::new() }.with_input("docker://");
        assert_eq!(
            e.to_string(),
            "invalid reference \"docker://\": missing repository name; write NAME[:TAG][@DIGEST], e.g. alpine:3"
        );
    }
}
