//! Cross-repository mounts and the blob-location cache, against a real registry.

use berth_registry::{ClientOptions, PutOutcome, Registry};
use berth_spec::Digest;
use berth_testkit::registry::TestRegistry;

use crate::{client, data, opener, pull, push};

fn with_cache(host: &str, cache: &std::path::Path) -> Registry {
    let opts = ClientOptions {
        blob_cache: Some(cache.to_owned()),
        ..ClientOptions::default()
    };
    Registry::new(host, &opts).unwrap()
}

#[tokio::test]
async fn mount_blob_across_repositories() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = client(&reg.host());
    let bytes = data(10, 5000);
    let digest = push(&r, "team/source", &bytes).await;
    assert!(r.mount_blob("team/dest", &digest, "team/source").await.unwrap());
    assert_eq!(r.blob_exists("team/dest", &digest).await.unwrap(), Some(5000));
    assert_eq!(pull(&r, "team/dest", &digest, 5000).await, bytes);
}

#[tokio::test]
async fn mount_from_a_repository_without_the_blob_is_declined() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = client(&reg.host());
    push(&r, "has/other", b"other").await;
    let absent = Digest::sha256(b"not anywhere");
    // The registry answers 202 with an upload session; mount_blob cancels it and says no.
    assert!(!r.mount_blob("want/it", &absent, "has/other").await.unwrap());
    assert_eq!(r.blob_exists("want/it", &absent).await.unwrap(), None);
    assert!(
        reg.log().contains("\"POST /v2/want/it/blobs/uploads/?"),
        "{}",
        reg.log()
    );
}

#[tokio::test]
async fn location_cache_turns_an_upload_into_a_mount() {
    let reg = TestRegistry::anonymous().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("blob-locations.json");
    let r = with_cache(&reg.host(), &cache);
    let bytes = data(11, 3000);
    let digest = Digest::sha256(&bytes);
    let first = r
        .put_blob("lib/first", &digest, 3000, &opener(bytes.clone()), &|_| {})
        .await
        .unwrap();
    assert_eq!(first, PutOutcome::Uploaded);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(
        json["hosts"][reg.host()][digest.to_string()],
        serde_json::json!(["lib/first"])
    );

    // A separate client (as a later copier run) reads the same cache file.
    let later = with_cache(&reg.host(), &cache);
    let never_read = || -> std::io::Result<Box<dyn std::io::Read + Send>> { panic!("a mount reads no content") };
    let second = later
        .put_blob("lib/second", &digest, 3000, &never_read, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        second,
        PutOutcome::Mounted {
            from: "lib/first".into()
        }
    );
    assert_eq!(pull(&later, "lib/second", &digest, 3000).await, bytes);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(
        json["hosts"][reg.host()][digest.to_string()],
        serde_json::json!(["lib/second", "lib/first"])
    );
}

/// A stale cache entry makes the registry answer the mount with an upload session (202): the blob is uploaded into
/// that session.
#[tokio::test]
async fn stale_location_falls_back_to_the_offered_upload_session() {
    let reg = TestRegistry::anonymous().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.json");
    let bytes = data(12, 4000);
    let digest = Digest::sha256(&bytes);
    let stale = serde_json::json!({"version": 1, "hosts": {reg.host(): {digest.to_string(): ["gone/away"]}}});
    std::fs::write(&cache, stale.to_string()).unwrap();
    let r = with_cache(&reg.host(), &cache);
    let outcome = r
        .put_blob("fresh/repo", &digest, 4000, &opener(bytes.clone()), &|_| {})
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::Uploaded);
    assert_eq!(pull(&r, "fresh/repo", &digest, 4000).await, bytes);
    let log = reg.log();
    assert!(log.contains("mount="), "a mount was attempted: {log}");
    assert_eq!(
        log.matches("\"POST /v2/fresh/repo/blobs/uploads/").count(),
        1,
        "the 202 session was used: {log}"
    );
}
