//! The `reference` target: every parser of image names a user or an image can hand Berth — transports
//! ([`ImageRef`]), docker/distribution references as written and normalized ([`DockerReference`]), store names
//! ([`StoreRef`]), OCI ref names ([`validate_ref_name`]) and platforms ([`Platform`]).
//!
//! Oracle: no panic; every error carries the input as given; every value that parses displays as a string that
//! parses back to an equal value (the crate's documented promise); normalized references are fixed points of
//! normalization and always have a host and a tag or digest; repository names are at most 255 characters; a
//! store name's ref name is a valid OCI ref name.

use berth_spec::platform::Platform;
use berth_spec::reference::{DockerReference, ImageRef, StoreRef, validate_ref_name};

/// The target.
pub fn run(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let s = input.as_ref();

    match ImageRef::parse(s) {
        Ok(r) => {
            let shown = r.to_string();
            assert_eq!(ImageRef::parse(&shown).as_ref(), Ok(&r), "{s:?} displays as {shown:?}");
        }
        Err(e) => {
            assert_eq!(e.input(), s, "the error must carry the input as given");
            let _ = e.to_string();
        }
    }

    match DockerReference::parse(s) {
        Ok(r) => {
            check_docker(&r);
            let shown = r.to_string();
            assert_eq!(
                DockerReference::parse(&shown).as_ref(),
                Ok(&r),
                "{s:?} displays as {shown:?}"
            );
        }
        Err(e) => assert_eq!(e.input(), s),
    }

    match DockerReference::parse_normalized(s) {
        Ok(r) => {
            check_docker(&r);
            assert!(r.domain().is_some(), "{s:?}: a normalized reference names its registry");
            assert!(
                r.tag().is_some() || r.digest().is_some(),
                "{s:?}: normalized without tag or digest"
            );
            let shown = r.to_string();
            assert_eq!(
                DockerReference::parse_normalized(&shown).as_ref(),
                Ok(&r),
                "{s:?} normalizes to {shown:?}, which normalizes to something else"
            );
            let familiar = r.familiar();
            assert_eq!(
                DockerReference::parse_normalized(&familiar).as_ref(),
                Ok(&r),
                "{s:?}: the familiar form {familiar:?} names another image"
            );
        }
        Err(e) => assert_eq!(e.input(), s),
    }

    match StoreRef::parse(s) {
        Ok(r) => {
            if let Some(name) = r.ref_name() {
                assert!(
                    validate_ref_name(&name).is_ok(),
                    "{s:?}: stored under the invalid ref name {name:?}"
                );
            }
            let shown = r.to_string();
            assert_eq!(StoreRef::parse(&shown).as_ref(), Ok(&r), "{s:?} displays as {shown:?}");
        }
        Err(e) => assert_eq!(e.input(), s),
    }

    if let Err(e) = validate_ref_name(s) {
        assert_eq!(e.input(), s);
    }

    if let Ok(p) = Platform::parse(s) {
        let shown = p.to_string();
        assert_eq!(Platform::parse(&shown).as_ref(), Ok(&p), "{s:?} displays as {shown:?}");
    }
}

fn check_docker(r: &DockerReference) {
    assert!(
        r.name().len() <= 255,
        "{r}: repository name of {} characters",
        r.name().len()
    );
    assert!(!r.repository().is_empty(), "{r}: empty repository");
    let _ = (r.registry_host(), r.api_host());
}

/// Seed inputs: each transport and name form, and the malformed spellings the parsers' tests name.
pub fn seeds() -> Vec<Vec<u8>> {
    let d = berth_spec::Digest::sha256(b"berth");
    [
        "alpine".to_owned(),
        "alpine:3.19".to_owned(),
        format!("alpine@{d}"),
        format!("docker.io/library/alpine:3@{d}"),
        "index.docker.io/x/y".to_owned(),
        "localhost:5000/app:latest".to_owned(),
        "[::1]:5000/app:1".to_owned(),
        "10.0.0.1:5000/a/b/c".to_owned(),
        "registry.example.com/a__b/c-d.e:tag_1.0".to_owned(),
        "docker://quay.io/a/b:1".to_owned(),
        format!("docker://quay.io/a/b@{d}"),
        "docker:foo".to_owned(),
        "oci:/var/lib/images:app:1.0".to_owned(),
        "oci:rel/dir".to_owned(),
        "oci-archive:/t/a.tar:localhost:5000/app:latest".to_owned(),
        "docker-archive:/t/a.tar:@1".to_owned(),
        "docker-archive:/t/a.tar:alpine:3".to_owned(),
        format!("docker-archive:p:alpine@{d}"),
        "dir:/tmp/x".to_owned(),
        "xyz:/tmp/x".to_owned(),
        "a---b".to_owned(),
        "A/B".to_owned(),
        "../../etc/passwd".to_owned(),
        "a".repeat(256),
        "f".repeat(64),
        "linux/arm64/v8".to_owned(),
        "linux/amd64".to_owned(),
        "app:1.0".to_owned(),
        String::new(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}
