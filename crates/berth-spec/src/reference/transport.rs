//! Transport-qualified image references: `oci:`, `oci-archive:`, `docker://`, `docker-archive:` and bare names.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::docker::DockerReference;
use super::store::StoreRef;
use super::{ReferenceError, grammar};

const OCI: &str = "oci";
const OCI_ARCHIVE: &str = "oci-archive";
const DOCKER: &str = "docker";
const DOCKER_ARCHIVE: &str = "docker-archive";
/// skopeo transports Berth does not implement; named so that `dir:x` is refused rather than read as `dir` tag `x`.
const UNSUPPORTED: [&str; 6] = ["containers-storage", "dir", "docker-daemon", "ostree", "sif", "tarball"];
/// Every transport name skopeo knows, supported or not.
pub(super) const TRANSPORT_NAMES: [&str; 10] = [
    OCI,
    OCI_ARCHIVE,
    DOCKER,
    DOCKER_ARCHIVE,
    UNSUPPORTED[0],
    UNSUPPORTED[1],
    UNSUPPORTED[2],
    UNSUPPORTED[3],
    UNSUPPORTED[4],
    UNSUPPORTED[5],
];

/// An image reference qualified by its transport, as skopeo spells it.
///
/// `PATH` and `REF` are split at the first `:` after the transport prefix, so paths cannot contain `:` and
/// `oci:/a/b:app:1` is path `/a/b`, ref `app:1`. `Display` writes the skopeo spelling, which parses back to an
/// equal value (for values built by hand: as long as no path contains `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// `oci:PATH[:REF]`: an OCI image layout directory; `REF` selects the manifest whose
    /// `org.opencontainers.image.ref.name` annotation equals it.
    Oci {
        /// The layout directory.
        path: PathBuf,
        /// The ref name, validated by [`validate_ref_name`](super::validate_ref_name).
        reference: Option<String>,
    },
    /// `oci-archive:PATH[:REF]`: a tar archive of an OCI image layout.
    OciArchive {
        /// The archive file.
        path: PathBuf,
        /// The ref name, validated by [`validate_ref_name`](super::validate_ref_name).
        reference: Option<String>,
    },
    /// `docker://NAME[:TAG][@DIGEST]`: an image in a registry, normalized like skopeo (`docker.io`, `library/`,
    /// tag `latest` when neither tag nor digest is given).
    Docker(DockerReference),
    /// `docker-archive:PATH[:REF]`: a `docker save` tarball.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
        /// Which image in the archive (or, when writing, the name to give it).
        reference: Option<DockerArchiveRef>,
    },
    /// A bare `NAME[:TAG][@DIGEST]`: an image in the default local store.
    Store(StoreRef),
}

/// The `REF` of `docker-archive:PATH:REF`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DockerArchiveRef {
    /// `NAME[:TAG]`, normalized (`alpine` is `docker.io/library/alpine:latest`); always tagged, never digested.
    Named(DockerReference),
    /// `@N`: the N-th image in the archive's manifest, counting from 0.
    Index(usize),
}

impl ImageRef {
    /// Parses a transport-qualified reference or a bare store name.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let Some((prefix, rest)) = input.split_once(':') else {
            return StoreRef::parse(input).map(ImageRef::Store);
        };
        match prefix {
            OCI => {
                let (path, reference) = oci_parts(input, OCI, rest)?;
                Ok(ImageRef::Oci { path, reference })
            }
            OCI_ARCHIVE => {
                let (path, reference) = oci_parts(input, OCI_ARCHIVE, rest)?;
                Ok(ImageRef::OciArchive { path, reference })
            }
            DOCKER => match rest.strip_prefix("//") {
                Some(name) => DockerReference::parse_normalized(name)
                    .map(ImageRef::Docker)
                    .map_err(|e| e.with_input(input)),
                None => Err(ReferenceError::DockerNeedsSlashes {
                    input: input.to_owned(),
                    suggestion: format!("docker://{}", rest.trim_start_matches('/')),
                }),
            },
            DOCKER_ARCHIVE => {
                let (path, reference) = split_path(input, DOCKER_ARCHIVE, rest)?;
                let reference = reference.map(|r| docker_archive_ref(input, r)).transpose()?;
                Ok(ImageRef::DockerArchive { path, reference })
            }
            _ if UNSUPPORTED.contains(&prefix) => Err(ReferenceError::UnsupportedTransport {
                input: input.to_owned(),
                transport: prefix.to_owned(),
            }),
            _ => StoreRef::parse(input).map(ImageRef::Store).map_err(|e| {
                if looks_like_transport(prefix, rest) {
                    ReferenceError::UnknownTransport {
                        input: input.to_owned(),
                        transport: prefix.to_owned(),
                        name_error: Box::new(e),
                    }
                } else {
                    e
                }
            }),
        }
    }
}

/// Whether `PREFIX:REST`, which is not a valid image name, may have been meant as a transport: the prefix is a
/// lowercase word other than `localhost`, and `REST` is neither a tag (`a__b:1`) nor starts with a port
/// (`registry:5000/Foo`).
fn looks_like_transport(prefix: &str, rest: &str) -> bool {
    let word = prefix.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    let port = rest
        .split('/')
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    word && prefix != "localhost" && !port && !grammar::is_tag(rest)
}

/// Splits `PATH[:REF]` at the first `:`; an empty `PATH` is an error.
fn split_path<'a>(
    input: &str,
    transport: &'static str,
    rest: &'a str,
) -> Result<(PathBuf, Option<&'a str>), ReferenceError> {
    let (path, reference) = match rest.split_once(':') {
        Some((path, reference)) => (path, Some(reference)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(ReferenceError::EmptyPath {
            input: input.to_owned(),
            transport,
        });
    }
    Ok((PathBuf::from(path), reference))
}

/// `PATH[:REF]` for the OCI transports; like skopeo, an empty `REF` means none.
fn oci_parts(input: &str, transport: &'static str, rest: &str) -> Result<(PathBuf, Option<String>), ReferenceError> {
    let (path, reference) = split_path(input, transport, rest)?;
    let reference = reference.filter(|r| !r.is_empty());
    if let Some(ref_name) = reference.filter(|r| !grammar::is_ref_name(r)) {
        return Err(ReferenceError::InvalidRefName {
            input: input.to_owned(),
            ref_name: ref_name.to_owned(),
        });
    }
    Ok((path, reference.map(str::to_owned)))
}

fn docker_archive_ref(input: &str, reference: &str) -> Result<DockerArchiveRef, ReferenceError> {
    if reference.is_empty() {
        return Err(ReferenceError::EmptyArchiveReference {
            input: input.to_owned(),
        });
    }
    if let Some(index) = reference.strip_prefix('@') {
        return match index.parse() {
            Ok(n) if index.bytes().all(|c| c.is_ascii_digit()) => Ok(DockerArchiveRef::Index(n)),
            _ => Err(ReferenceError::InvalidSourceIndex {
                input: input.to_owned(),
                index: index.to_owned(),
            }),
        };
    }
    let named = DockerReference::parse_normalized(reference).map_err(|e| e.with_input(input))?;
    if named.digest().is_some() {
        return Err(ReferenceError::ArchiveDigest {
            input: input.to_owned(),
        });
    }
    Ok(DockerArchiveRef::Named(named))
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, reference) = match self {
            ImageRef::Docker(r) => return write!(f, "{DOCKER}://{r}"),
            ImageRef::Store(r) => return r.fmt(f),
            ImageRef::Oci { path, reference } => (OCI, path, reference.as_ref().map(|r| r as &dyn fmt::Display)),
            ImageRef::OciArchive { path, reference } => {
                (OCI_ARCHIVE, path, reference.as_ref().map(|r| r as &dyn fmt::Display))
            }
            ImageRef::DockerArchive { path, reference } => {
                (DOCKER_ARCHIVE, path, reference.as_ref().map(|r| r as &dyn fmt::Display))
            }
        };
        write!(f, "{transport}:{}", path.display())?;
        match reference {
            Some(r) => write!(f, ":{r}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for DockerArchiveRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerArchiveRef::Named(r) => r.fmt(f),
            DockerArchiveRef::Index(n) => write!(f, "@{n}"),
        }
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::docker::tests::{self as docker_tests, D};
    use super::*;

    fn oci(path: &str, reference: Option<&str>) -> ImageRef {
        ImageRef::Oci {
            path: path.into(),
            reference: reference.map(str::to_owned),
        }
    }

    fn err_kind(input: &str) -> String {
        let e = ImageRef::parse(input).unwrap_err();
        assert_eq!(e.input(), input, "{e:?}");
        assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
        format!("{e:?}").split([' ', '{']).next().unwrap().to_owned()
    }

    #[test]
    fn oci_splits_at_the_first_colon() {
        assert_eq!(ImageRef::parse("oci:/a/b:app:1").unwrap(), oci("/a/b", Some("app:1")));
        assert_eq!(ImageRef::parse("oci:/a/b").unwrap(), oci("/a/b", None));
        assert_eq!(ImageRef::parse("oci:rel/dir:").unwrap(), oci("rel/dir", None));
        assert_eq!(
            ImageRef::parse("oci:x:localhost:5000/app:latest").unwrap(),
            oci("x", Some("localhost:5000/app:latest"))
        );
        assert_eq!(
            ImageRef::parse("oci-archive:/t/a.tar:v1.0").unwrap(),
            ImageRef::OciArchive {
                path: "/t/a.tar".into(),
                reference: Some("v1.0".to_owned())
            }
        );
        assert_eq!(err_kind("oci:"), "EmptyPath");
        assert_eq!(err_kind("oci::app"), "EmptyPath");
        assert_eq!(err_kind("oci-archive:"), "EmptyPath");
        assert_eq!(err_kind("oci:/a:bad ref"), "InvalidRefName");
        assert_eq!(err_kind("oci:/a:app:"), "InvalidRefName");
        assert_eq!(err_kind("oci-archive:/a:a__b"), "InvalidRefName");
    }

    #[test]
    fn docker_is_normalized_like_skopeo() {
        for (input, expected) in [
            ("docker://alpine", "docker://docker.io/library/alpine:latest"),
            ("docker://foo/bar:1", "docker://docker.io/foo/bar:1"),
            ("docker://index.docker.io/x", "docker://docker.io/library/x:latest"),
            ("docker://localhost:5000/app", "docker://localhost:5000/app:latest"),
        ] {
            let r = ImageRef::parse(input).unwrap();
            assert!(matches!(r, ImageRef::Docker(_)));
            assert_eq!(r.to_string(), expected);
        }
        let r = ImageRef::parse(&format!("docker://quay.io/a/b@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker://quay.io/a/b@{D}"));
        assert_eq!(err_kind("docker://"), "MissingName");
        assert_eq!(err_kind("docker://Foo"), "Uppercase");
        let e = ImageRef::parse("docker:foo").unwrap_err();
        assert_eq!(
            e,
            ReferenceError::DockerNeedsSlashes {
                input: "docker:foo".into(),
                suggestion: "docker://foo".into()
            }
        );
        assert!(e.to_string().contains("write docker://foo"), "{e}");
        let Err(ReferenceError::DockerNeedsSlashes { suggestion, .. }) = ImageRef::parse("docker:/foo") else {
            panic!("docker:/foo must be refused")
        };
        assert_eq!(suggestion, "docker://foo");
    }

    #[test]
    fn docker_archive() {
        let archive = |reference| ImageRef::DockerArchive {
            path: "/t/a.tar".into(),
            reference,
        };
        assert_eq!(ImageRef::parse("docker-archive:/t/a.tar").unwrap(), archive(None));
        assert_eq!(
            ImageRef::parse("docker-archive:/t/a.tar:@1").unwrap(),
            archive(Some(DockerArchiveRef::Index(1)))
        );
        let named = |s| Some(DockerArchiveRef::Named(DockerReference::parse(s).unwrap()));
        assert_eq!(
            ImageRef::parse("docker-archive:/t/a.tar:alpine").unwrap(),
            archive(named("docker.io/library/alpine:latest"))
        );
        let r = ImageRef::parse("docker-archive:/t/a.tar:localhost:5000/app:1").unwrap();
        assert_eq!(r, archive(named("localhost:5000/app:1")));
        assert_eq!(r.to_string(), "docker-archive:/t/a.tar:localhost:5000/app:1");
        assert_eq!(
            ImageRef::parse("docker-archive:p:@1").unwrap().to_string(),
            "docker-archive:p:@1"
        );
        for (input, kind) in [
            ("docker-archive:", "EmptyPath"),
            ("docker-archive::@0", "EmptyPath"),
            ("docker-archive:p:", "EmptyArchiveReference"),
            ("docker-archive:p:@", "InvalidSourceIndex"),
            ("docker-archive:p:@-1", "InvalidSourceIndex"),
            ("docker-archive:p:@+1", "InvalidSourceIndex"),
            ("docker-archive:p:@x", "InvalidSourceIndex"),
            ("docker-archive:p:@99999999999999999999999", "InvalidSourceIndex"),
            ("docker-archive:p:Foo", "Uppercase"),
        ] {
            assert_eq!(err_kind(input), kind, "{input}");
        }
        assert_eq!(err_kind(&format!("docker-archive:p:alpine@{D}")), "ArchiveDigest");
        assert_eq!(err_kind(&format!("docker-archive:p:alpine:1@{D}")), "ArchiveDigest");
    }

    #[test]
    fn bare_names_mean_the_store() {
        for (input, ref_name) in [
            ("app", Some("app:latest")),
            ("app:1", Some("app:1")),
            ("localhost/app", Some("localhost/app:latest")),
            ("localhost:5000/app:1", Some("localhost:5000/app:1")),
            ("oci/app:1", Some("oci/app:1")),
        ] {
            let Ok(ImageRef::Store(r)) = ImageRef::parse(input) else {
                panic!("{input}")
            };
            assert_eq!(r.ref_name().as_deref(), ref_name);
        }
        let Ok(ImageRef::Store(r)) = ImageRef::parse(&format!("app@{D}")) else {
            panic!()
        };
        assert_eq!(r.ref_name(), None);
        assert_eq!(err_kind("dir:/tmp/x"), "UnsupportedTransport");
        assert_eq!(err_kind("dir:x"), "UnsupportedTransport");
        assert_eq!(err_kind("App"), "Uppercase");
        assert_eq!(err_kind("oci"), "TransportName");
        assert_eq!(err_kind("xyz:/tmp/x"), "UnknownTransport");
        assert_eq!(err_kind("xyz:dir/x"), "UnknownTransport");
        // Where the prefix cannot be a transport, the name's own error is clearer.
        assert_eq!(err_kind("a__b:1"), "NotStorable");
        assert_eq!(err_kind("a.com:x/y"), "InvalidDomain");
        assert_eq!(err_kind("registry:5000/Foo"), "Uppercase");
        assert_eq!(err_kind("localhost:5000/Foo"), "Uppercase");
        let e = ImageRef::parse("alpine:bad tag").unwrap_err();
        let ReferenceError::UnknownTransport { name_error, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(
            matches!(**name_error, ReferenceError::InvalidTag { .. }),
            "{name_error:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("tag \"bad tag\" is invalid") && msg.contains("\"alpine:\" is not a transport"),
            "{msg}"
        );
    }

    fn image_ref() -> impl Strategy<Value = String> {
        let path = "/?[a-zA-Z0-9._ -]{1,8}(/[a-zA-Z0-9._-]{1,8}){0,2}";
        let ref_name = "[A-Za-z0-9]{1,4}(([-._:@+]|--)[A-Za-z0-9]{1,4}){0,3}(/[A-Za-z0-9]{1,4}){0,1}";
        let oci_ref = (
            prop_oneof![Just(OCI), Just(OCI_ARCHIVE)],
            path,
            proptest::option::of(ref_name),
        )
            .prop_map(|(t, p, r)| format!("{t}:{p}{}", r.map(|r| format!(":{r}")).unwrap_or_default()));
        let named = || {
            docker_tests::reference()
                .prop_map(|(name, tag, digest)| docker_tests::spell(&name, tag.as_deref(), digest.as_deref()))
        };
        let docker = named().prop_map(|s| format!("docker://{s}"));
        let archive_ref = prop_oneof![
            Just(String::new()),
            (0usize..1000).prop_map(|n| format!(":@{n}")),
            (docker_tests::path(), docker_tests::tag()).prop_map(|(p, t)| format!(":{p}:{t}")),
        ];
        let archive = (path, archive_ref).prop_map(|(p, r)| format!("{DOCKER_ARCHIVE}:{p}{r}"));
        prop_oneof![oci_ref, docker, archive, named()]
    }

    proptest! {
        #[test]
        fn random_strings_never_panic(
            s in "\\PC{0,80}",
            t in "(oci|oci-archive|docker|docker-archive|dir)?:[a-zA-Z0-9:/@._-]{0,30}",
        ) {
            for s in [&s, &t] {
                if let Ok(r) = ImageRef::parse(s) {
                    prop_assert_eq!(ImageRef::parse(&r.to_string()), Ok(r));
                }
            }
        }

        #[test]
        fn display_round_trips(s in image_ref()) {
            // Generated bare names may be unstorable (`a__b`) or transport names; everything else must parse.
            match ImageRef::parse(&s) {
                Ok(r) => prop_assert_eq!(ImageRef::parse(&r.to_string()), Ok(r)),
                Err(e) => prop_assert!(
                    matches!(e, ReferenceError::NotStorable { .. } | ReferenceError::TransportName { .. }
                        | ReferenceError::UnknownTransport { .. } | ReferenceError::UnsupportedTransport { .. }),
                    "{s}: {e:?}"
                ),
            }
        }
    }
}
