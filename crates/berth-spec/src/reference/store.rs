//! Bare image names for Berth's default local store.

use std::fmt;
use std::str::FromStr;

use super::docker::DockerReference;
use super::transport::TRANSPORT_NAMES;
use super::{ReferenceError, grammar};
use crate::digest::Digest;

/// A bare `NAME[:TAG][@DIGEST]` naming an image in the default local store, e.g. `app:1`, `localhost/app` or
/// `localhost:5000/app@sha256:...`.
///
/// The repository is kept exactly as spelled (no `docker.io/library/` normalization); a name with neither tag nor
/// digest gets the tag `latest`. Parsing also checks that the name can be stored: [`ref_name`](Self::ref_name)
/// must be a valid OCI ref name, and a bare transport name (`oci`, `docker`, ...) is refused because `oci:TAG`
/// would read back as a transport.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreRef {
    /// Always has a tag or a digest.
    reference: DockerReference,
}

impl StoreRef {
    /// Parses a bare store name.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if grammar::is_hex_identifier(input) {
            return Err(ReferenceError::HexIdentifier {
                input: input.to_owned(),
            });
        }
        let mut reference = DockerReference::parse(input)?;
        if reference.domain().is_none() && TRANSPORT_NAMES.contains(&reference.repository()) {
            return Err(ReferenceError::TransportName {
                input: input.to_owned(),
                name: reference.repository().to_owned(),
            });
        }
        reference.default_tag();
        let store_ref = StoreRef { reference };
        match store_ref.ref_name() {
            Some(ref_name) if !grammar::is_ref_name(&ref_name) => Err(ReferenceError::NotStorable {
                input: input.to_owned(),
                ref_name,
            }),
            _ => Ok(store_ref),
        }
    }

    /// The repository as spelled, with its host if one was given: `app`, `localhost:5000/app`.
    pub fn repository(&self) -> &str {
        self.reference.name()
    }

    /// The tag (`latest` when neither tag nor digest was given); `None` for a digest-only reference.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.reference.digest()
    }

    /// The `org.opencontainers.image.ref.name` this image is stored under in the store's `index.json`:
    /// `REPO:TAG`, e.g. `app:1` or `localhost:5000/app:latest`. `None` for a digest-only reference, which is
    /// looked up by [`digest`](Self::digest) instead.
    pub fn ref_name(&self) -> Option<String> {
        self.tag().map(|tag| format!("{}:{tag}", self.repository()))
    }

    /// The same name as a (non-normalized) docker reference.
    pub fn as_docker_reference(&self) -> &DockerReference {
        &self.reference
    }
}

impl fmt::Display for StoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reference.fmt(f)
    }
}

impl fmt::Debug for StoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreRef({self})")
    }
}

impl FromStr for StoreRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::docker::tests::D;
    use super::*;

    #[test]
    fn names_keep_their_spelling_and_get_latest() {
        for (input, repository, tag, ref_name) in [
            ("app", "app", Some("latest"), Some("app:latest")),
            ("app:1", "app", Some("1"), Some("app:1")),
            ("ubuntu", "ubuntu", Some("latest"), Some("ubuntu:latest")),
            ("library/app:1", "library/app", Some("1"), Some("library/app:1")),
            (
                "localhost/app",
                "localhost/app",
                Some("latest"),
                Some("localhost/app:latest"),
            ),
            (
                "localhost:5000/app",
                "localhost:5000/app",
                Some("latest"),
                Some("localhost:5000/app:latest"),
            ),
            (
                "Registry.Example.com/a/b:V1",
                "Registry.Example.com/a/b",
                Some("V1"),
                Some("Registry.Example.com/a/b:V1"),
            ),
            ("localhost/oci:1", "localhost/oci", Some("1"), Some("localhost/oci:1")),
        ] {
            let r = StoreRef::parse(input).unwrap();
            assert_eq!(
                (r.repository(), r.tag(), r.ref_name().as_deref()),
                (repository, tag, ref_name),
                "{input}"
            );
            assert_eq!(r.digest(), None);
            assert_eq!(StoreRef::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn digests() {
        let r = StoreRef::parse(&format!("app@{D}")).unwrap();
        assert_eq!((r.tag(), r.ref_name()), (None, None));
        assert_eq!(r.digest().map(ToString::to_string).as_deref(), Some(D));
        assert_eq!(r.to_string(), format!("app@{D}"));
        let r = StoreRef::parse(&format!("app:1@{D}")).unwrap();
        assert_eq!(r.ref_name().as_deref(), Some("app:1"));
        assert!(r.digest().is_some());
    }

    #[test]
    fn unstorable_names_are_refused() {
        for input in ["a__b", "a---b", "app:v1.", "app:v1-", "app:_x", "[::1]:5000/app:1"] {
            let e = StoreRef::parse(input).unwrap_err();
            assert!(matches!(e, ReferenceError::NotStorable { .. }), "{input}: {e:?}");
        }
        for input in [
            "oci",
            "docker",
            "docker-archive",
            "oci-archive",
            "dir",
            "containers-storage",
        ] {
            let e = StoreRef::parse(input).unwrap_err();
            assert!(matches!(e, ReferenceError::TransportName { .. }), "{input}: {e:?}");
            assert!(e.to_string().contains(&format!("localhost/{input}")), "{e}");
        }
        assert!(matches!(
            StoreRef::parse(&"f".repeat(64)),
            Err(ReferenceError::HexIdentifier { .. })
        ));
        assert!(matches!(StoreRef::parse("App"), Err(ReferenceError::Uppercase { .. })));
    }
}
