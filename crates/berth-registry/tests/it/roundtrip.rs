//! Push and pull against a real registry without authentication.

use std::sync::atomic::Ordering;

use berth_registry::{PutOutcome, RegistryError};
use berth_spec::{Digest, media_type};
use berth_testkit::registry::TestRegistry;

use crate::{client, counter, data, image_manifest, opener, push};

#[tokio::test]
async fn small_blob_is_uploaded_once_and_pulled_back() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = client(&reg.host());
    let bytes = data(1, 100_000);
    let digest = Digest::sha256(&bytes);
    let (sent, progress) = counter();
    let open = opener(bytes.clone());
    let outcome = r
        .put_blob("small/blob", &digest, bytes.len() as u64, &open, &progress)
        .await;
    assert_eq!(outcome.unwrap(), PutOutcome::Uploaded);
    assert_eq!(sent.load(Ordering::Relaxed), bytes.len() as u64);
    assert_eq!(
        r.blob_exists("small/blob", &digest).await.unwrap(),
        Some(bytes.len() as u64)
    );
    let again = r
        .put_blob("small/blob", &digest, bytes.len() as u64, &open, &|_| {})
        .await;
    assert_eq!(again.unwrap(), PutOutcome::Existed);

    let (received, progress) = counter();
    let mut out = Vec::new();
    r.get_blob("small/blob", &digest, bytes.len() as u64, &mut out, &progress)
        .await
        .unwrap();
    assert_eq!(out, bytes);
    assert_eq!(received.load(Ordering::Relaxed), bytes.len() as u64);
    assert_eq!(r.blob_exists("other/repo", &digest).await.unwrap(), None);
}

#[tokio::test]
async fn upload_content_must_match_its_digest_and_size() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = client(&reg.host());
    let bytes = data(3, 1000);
    let wrong = Digest::sha256(b"something else");
    let err = r
        .put_blob("r", &wrong, 1000, &opener(bytes.clone()), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Source { .. }), "{err}");
    assert!(err.to_string().contains(&wrong.to_string()), "{err}");
    let digest = Digest::sha256(&bytes);
    let err = r
        .put_blob("r", &digest, 999, &opener(bytes), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not the 999 promised"), "{err}");
    assert_eq!(r.blob_exists("r", &wrong).await.unwrap(), None);
    assert_eq!(r.blob_exists("r", &digest).await.unwrap(), None);
}

#[tokio::test]
async fn manifest_by_tag_and_by_digest() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = client(&reg.host());
    let manifest = image_manifest(&r, "app", 4).await;
    let digest = r
        .put_manifest("app", "v1", &manifest, media_type::OCI_MANIFEST)
        .await
        .unwrap();
    assert_eq!(digest, Digest::sha256(&manifest));

    let by_tag = r.get_manifest("app", "v1", &[media_type::OCI_MANIFEST]).await.unwrap();
    assert_eq!(by_tag.bytes, manifest);
    assert_eq!(by_tag.digest, digest);
    assert_eq!(by_tag.media_type, media_type::OCI_MANIFEST);
    let by_digest = r.get_manifest("app", &digest.to_string(), &[]).await.unwrap();
    assert_eq!(by_digest, by_tag);

    let head = r.head_manifest("app", "v1", &[]).await.unwrap();
    assert_eq!(
        head,
        Some((
            digest.clone(),
            media_type::OCI_MANIFEST.to_owned(),
            manifest.len() as u64
        ))
    );
    assert_eq!(r.head_manifest("app", "nope", &[]).await.unwrap(), None);

    // Pushing by digest, and refusing to push bytes under a digest they do not have.
    let other = image_manifest(&r, "app", 5).await;
    let d2 = r
        .put_manifest(
            "app",
            &Digest::sha256(&other).to_string(),
            &other,
            media_type::OCI_MANIFEST,
        )
        .await;
    assert_eq!(d2.unwrap(), Digest::sha256(&other));
    let err = r
        .put_manifest("app", &digest.to_string(), &other, media_type::OCI_MANIFEST)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not the"), "{err}");
    let err = r.get_manifest("app", "missing", &[]).await.unwrap_err();
    assert!(matches!(err, RegistryError::ManifestUnknown { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{}/app: manifest missing", reg.host())),
        "{err}"
    );
}

#[tokio::test]
async fn tags_are_listed_and_manifests_deleted() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = client(&reg.host());
    let manifest = image_manifest(&r, "tagged", 6).await;
    let mut tags: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    for t in &tags {
        r.put_manifest("tagged", t, &manifest, media_type::OCI_MANIFEST)
            .await
            .unwrap();
    }
    let mut listed = r.list_tags("tagged").await.unwrap();
    listed.sort();
    tags.sort();
    assert_eq!(listed, tags);
    // Small pages: distribution 2.8 ignores `n` for tags; newer registries paginate (see redirects.rs).
    let mut paged = r.list_tags_paged("tagged", Some(2)).await.unwrap();
    paged.sort();
    assert_eq!(paged, tags);
    let err = r.list_tags("never/pushed").await.unwrap_err();
    assert!(matches!(err, RegistryError::RepositoryUnknown { .. }), "{err}");

    let digest = Digest::sha256(&manifest);
    r.delete_manifest("tagged", &digest).await.unwrap();
    let err = r.get_manifest("tagged", &digest.to_string(), &[]).await.unwrap_err();
    assert!(matches!(err, RegistryError::ManifestUnknown { .. }), "{err}");
    assert_eq!(r.head_manifest("tagged", "t0", &[]).await.unwrap(), None);
    let err = r.delete_manifest("tagged", &digest).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}

#[tokio::test]
async fn unknown_blob_is_named_as_such() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = client(&reg.host());
    push(&r, "exists", b"x").await;
    let missing = Digest::sha256(b"missing");
    let mut sink = Vec::new();
    let err = r.get_blob("exists", &missing, 7, &mut sink, &|_| {}).await.unwrap_err();
    assert!(matches!(err, RegistryError::BlobUnknown { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{}/exists: blob {missing}", reg.host())),
        "{err}"
    );
    assert!(sink.is_empty());
}
