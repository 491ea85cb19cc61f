//! Uploads: one retry layer, streamed PATCHes, resumption, and content that is not what was promised; against a
//! real registry behind the fault proxy, and against local servers where the real one cannot misbehave enough.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use berth_registry::{ClientOptions, PutOutcome, Registry, RegistryError};
use berth_spec::Digest;
use berth_testkit::faultproxy::{Fault, FaultProxy};
use berth_testkit::registry::TestRegistry;

use crate::fake::{FakeServer, Reply};
use crate::{counter, data, opener, pull};

/// Above the size sent in one PUT.
const STREAMED: usize = 5 * 1024 * 1024 + 321;

fn with_retries(host: &str, retry_times: u32) -> Registry {
    let opts = ClientOptions {
        retry_times,
        ..ClientOptions::default()
    };
    Registry::new(host, &opts).unwrap()
}

fn count(proxy: &FaultProxy, method: &str) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|s| s.method == method && s.target.contains("/blobs/uploads/"))
        .count()
}

/// Regression (issue #13): every request of an upload session was retried by the client and the session again
/// by `put_blob`, so `retry_times = 2` meant up to 9 attempts.
#[tokio::test]
async fn upload_retries_are_one_layer_not_two() {
    let reg = TestRegistry::anonymous().unwrap();
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let r = with_retries(&proxy.addr, 2);

    // A registry that always fails the committing PUT of a small blob: 3 attempts.
    proxy.add("PUT", "/blobs/uploads/", 100, Fault::Status(503, None));
    let small = data(60, 1000);
    let err = r
        .put_blob(
            "one/layer",
            &Digest::sha256(&small),
            1000,
            &opener(small.clone()),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Status { status: 503, .. }), "{err}");
    assert_eq!(count(&proxy, "PUT"), 3);

    // A registry that always fails the PATCH of a streamed blob: 3 attempts too.
    proxy.clear();
    proxy.add("PATCH", "/blobs/uploads/", 100, Fault::Status(503, None));
    let big = data(61, STREAMED);
    let err = r
        .put_blob(
            "one/layer",
            &Digest::sha256(&big),
            big.len() as u64,
            &opener(big.clone()),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Status { status: 503, .. }), "{err}");
    assert_eq!(count(&proxy, "PATCH"), 3);

    // One failure with `Retry-After: 1`: two attempts, a second apart.
    proxy.clear();
    proxy.add("PUT", "/blobs/uploads/", 1, Fault::Status(503, Some("1".into())));
    let puts = count(&proxy, "PUT");
    let started = Instant::now();
    let digest = Digest::sha256(&small);
    let outcome = r
        .put_blob("one/layer", &digest, 1000, &opener(small.clone()), &|_| {})
        .await;
    assert_eq!(outcome.unwrap(), PutOutcome::Uploaded);
    assert_eq!(count(&proxy, "PUT") - puts, 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(pull(&r, "one/layer", &digest, 1000).await, small);

    proxy.clear();
    proxy.add("PATCH", "/blobs/uploads/", 1, Fault::Status(429, None));
    let patches = count(&proxy, "PATCH");
    let digest = Digest::sha256(&big);
    let outcome = r
        .put_blob("one/layer", &digest, big.len() as u64, &opener(big.clone()), &|_| {})
        .await;
    assert_eq!(outcome.unwrap(), PutOutcome::Uploaded);
    assert_eq!(count(&proxy, "PATCH") - patches, 2);
    assert_eq!(pull(&r, "one/layer", &digest, big.len() as u64).await, big);
}

#[tokio::test]
async fn large_blob_is_streamed_in_one_patch() {
    let reg = TestRegistry::anonymous().unwrap();
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let r = with_retries(&proxy.addr, 2);
    let bytes = data(62, 40_000_000);
    let digest = Digest::sha256(&bytes);
    let (sent, progress) = counter();
    let outcome = r
        .put_blob(
            "big/blob",
            &digest,
            bytes.len() as u64,
            &opener(bytes.clone()),
            &progress,
        )
        .await;
    assert_eq!(outcome.unwrap(), PutOutcome::Uploaded);
    assert_eq!(sent.load(Ordering::Relaxed), bytes.len() as u64);
    let seen = proxy.seen();
    let patches: Vec<_> = seen.iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{seen:#?}");
    let header = |name: &str| {
        patches[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-length"), Some("40000000"));
    assert_eq!(header("content-range"), Some("0-39999999"));
    assert_eq!(header("transfer-encoding"), None);
    let put = seen.iter().find(|s| s.method == "PUT").unwrap();
    assert!(put.target.contains("digest=sha256%3A"), "{}", put.target);
    assert_eq!(pull(&r, "big/blob", &digest, bytes.len() as u64).await, bytes);
}

/// CNCF distribution 2.8 cannot resume a session whose PATCH broke off (its session state still says offset 0),
/// so the upload starts over in a new session and lands intact.
#[tokio::test]
async fn patch_cut_midway_starts_over_when_the_registry_cannot_resume() {
    let reg = TestRegistry::anonymous().unwrap();
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let r = with_retries(&proxy.addr, 2);
    proxy.add("PATCH", "/blobs/uploads/", 1, Fault::CutRequest(3_000_000));
    let bytes = data(63, 12_000_000);
    let digest = Digest::sha256(&bytes);
    let (sent, progress) = counter();
    let outcome = r
        .put_blob(
            "cut/blob",
            &digest,
            bytes.len() as u64,
            &opener(bytes.clone()),
            &progress,
        )
        .await;
    assert_eq!(outcome.unwrap(), PutOutcome::Uploaded);
    assert_eq!(
        sent.load(Ordering::Relaxed),
        bytes.len() as u64,
        "progress never counts twice"
    );
    assert_eq!(count(&proxy, "PATCH"), 2);
    assert_eq!(count(&proxy, "POST"), 2, "a new session");
    assert_eq!(pull(&r, "cut/blob", &digest, bytes.len() as u64).await, bytes);
}

/// A registry that keeps what a broken-off PATCH delivered and says so: the upload resumes from there, with the
/// rest of the blob only.
#[tokio::test]
async fn patch_cut_midway_resumes_from_the_offset_the_registry_reports() {
    let bytes = data(64, STREAMED);
    let digest = Digest::sha256(&bytes);
    let half = bytes.len() / 2;
    let stored = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
    let (s2, want) = (stored.clone(), digest.to_string());
    let s = FakeServer::start(move |req, _| {
        let mut stored = s2.lock().unwrap();
        match (req.method.as_str(), req.path()) {
            ("GET", "/v2/") => Reply::new(200),
            ("HEAD", _) => Reply::new(404),
            ("POST", _) => Reply::new(202).header("Location", "/v2/r/blobs/uploads/u?n=0"),
            ("PATCH", _) if stored.is_empty() => {
                stored.extend_from_slice(&req.body[..half]);
                Reply::hang_up()
            }
            ("PATCH", _) => {
                stored.extend_from_slice(&req.body);
                Reply::new(202).header("Location", "/v2/r/blobs/uploads/u?n=2")
            }
            ("GET", _) => Reply::new(204)
                .header("Range", format!("0-{}", stored.len() - 1))
                .header("Location", "/v2/r/blobs/uploads/u?n=1"),
            ("PUT", _) if req.target.contains(&want.replace(':', "%3A")) => Reply::new(201),
            _ => Reply::new(400),
        }
    });
    let r = with_retries(&s.host(), 1);
    let (sent, progress) = counter();
    let outcome = r
        .put_blob("r", &digest, bytes.len() as u64, &opener(bytes.clone()), &progress)
        .await;
    assert_eq!(outcome.unwrap(), PutOutcome::Uploaded);
    assert_eq!(*stored.lock().unwrap(), bytes);
    assert_eq!(sent.load(Ordering::Relaxed), bytes.len() as u64);
    let reqs = s.requests();
    let patches: Vec<_> = reqs.iter().filter(|q| q.method == "PATCH").collect();
    assert_eq!(
        patches.len(),
        2,
        "{:?}",
        reqs.iter().map(|q| &q.target).collect::<Vec<_>>()
    );
    assert_eq!(patches[1].target, "/v2/r/blobs/uploads/u?n=1");
    assert_eq!(
        patches[1].header("content-range"),
        Some(format!("{half}-{}", bytes.len() - 1).as_str())
    );
    assert_eq!(patches[1].body.len(), bytes.len() - half);
    let put = reqs.iter().find(|q| q.method == "PUT").unwrap();
    assert!(
        put.target.starts_with("/v2/r/blobs/uploads/u?n=2&digest="),
        "{}",
        put.target
    );
    assert!(put.body.is_empty());
}

/// A redirect of a streamed PATCH cannot be followed (the body is spent): a clear error, not a silent re-send.
#[tokio::test]
async fn redirected_patch_is_a_clear_error() {
    let s = FakeServer::start(|req, _| match (req.method.as_str(), req.path()) {
        ("GET", "/v2/") => Reply::new(200),
        ("HEAD", _) => Reply::new(404),
        ("POST", _) => Reply::new(202).header("Location", "/v2/r/blobs/uploads/u"),
        ("PATCH", _) => Reply::new(307).header("Location", "/elsewhere"),
        _ => Reply::new(204),
    });
    let bytes = data(65, STREAMED);
    let err = with_retries(&s.host(), 1)
        .put_blob(
            "r",
            &Digest::sha256(&bytes),
            bytes.len() as u64,
            &opener(bytes),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Redirect { .. }), "{err}");
    assert!(err.to_string().contains("cannot be sent a second time"), "{err}");
    assert!(!s.requests().iter().any(|q| q.path() == "/elsewhere"));
}

#[tokio::test]
async fn streamed_content_must_match_its_digest_and_size() {
    let reg = TestRegistry::anonymous().unwrap();
    let r = with_retries(&reg.host(), 2);
    let bytes = data(66, STREAMED);
    let size = bytes.len() as u64;
    let digest = Digest::sha256(&bytes);
    let wrong = Digest::sha256(b"something else");
    let put = |digest: Digest, size: u64| {
        let (r, bytes) = (r.clone(), bytes.clone());
        async move { r.put_blob("r", &digest, size, &opener(bytes), &|_| {}).await }
    };
    let err = put(wrong.clone(), size).await.unwrap_err();
    assert!(matches!(err, RegistryError::Source { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("has digest {digest}, not {wrong}")),
        "{err}"
    );
    let err = put(digest.clone(), size + 10).await.unwrap_err();
    assert!(matches!(err, RegistryError::Source { .. }), "{err}");
    assert!(err.to_string().contains(&format!("ends after {size} bytes")), "{err}");
    let err = put(digest.clone(), size - 1).await.unwrap_err();
    assert!(matches!(err, RegistryError::Source { .. }), "{err}");
    assert!(err.to_string().contains("longer than"), "{err}");
    assert_eq!(r.blob_exists("r", &wrong).await.unwrap(), None);
    assert_eq!(r.blob_exists("r", &digest).await.unwrap(), None);
}
