//! Retries, refusals and lying registries, against local servers.

use std::time::{Duration, Instant, SystemTime};

use berth_registry::{ClientOptions, Registry, RegistryError};
use berth_spec::{Digest, media_type};

use crate::client;
use crate::fake::{FakeServer, Reply};

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// A registry whose manifest requests are answered by `reply(index of the manifest request)`.
fn manifests(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> FakeServer {
    let count = std::sync::atomic::AtomicUsize::new(0);
    FakeServer::start(move |req, _| {
        if req.path() == "/v2/" {
            return Reply::new(200);
        }
        reply(count.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    })
}

fn ok() -> Reply {
    Reply::new(200)
        .header("Content-Type", media_type::OCI_INDEX)
        .body(MANIFEST)
}

fn manifest_requests(s: &FakeServer) -> usize {
    s.requests().iter().filter(|q| q.path().contains("/manifests/")).count()
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date_is_honored() {
    let s = manifests(|n| match n {
        0 => Reply::new(429).header("Retry-After", "1"),
        1 => Reply::new(503).header(
            "Retry-After",
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2)),
        ),
        _ => ok(),
    });
    let started = Instant::now();
    let m = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap();
    assert_eq!(m.bytes, MANIFEST.as_bytes());
    // 1 s, then until the date (at least 1 s more, given the date's whole seconds).
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(manifest_requests(&s), 3);
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let s = manifests(|_| Reply::new(502));
    let opts = ClientOptions {
        retry_times: 2,
        ..ClientOptions::default()
    };
    let err = Registry::new(&s.host(), &opts)
        .unwrap()
        .get_manifest("r", "v1", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Status { status: 502, .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(manifest_requests(&s), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let s = manifests(|_| Reply::new(403).body(r#"{"errors":[{"code":"DENIED","message":"no way"}]}"#));
    let err = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap_err();
    assert!(matches!(err, RegistryError::Denied { .. }), "{err}");
    assert!(err.to_string().contains("DENIED: no way"), "{err}");
    assert_eq!(manifest_requests(&s), 1);

    let s = manifests(|_| Reply::new(404).body(r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#));
    let err = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap_err();
    assert!(matches!(err, RegistryError::RepositoryUnknown { .. }), "{err}");
    assert_eq!(manifest_requests(&s), 1);
}

#[tokio::test]
async fn manifest_digests_are_computed_not_believed() {
    let real = Digest::sha256(MANIFEST.as_bytes());
    let liar = Digest::sha256(b"lie");
    let s = manifests(move |n| match n {
        0 => ok().header("Docker-Content-Digest", liar.to_string()),
        _ => ok().body(MANIFEST.replace("[]", "[ ]")),
    });
    let r = client(&s.host());
    let m = r.get_manifest("r", "v1", &[]).await.unwrap();
    assert_eq!(m.digest, real, "Docker-Content-Digest is ignored");
    assert_eq!(m.media_type, media_type::OCI_INDEX);
    let err = r.get_manifest("r", &real.to_string(), &[]).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { ref expected, .. } if *expected == real),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_manifests_are_refused() {
    let big = format!(r#"{{"pad":"{}"}}"#, " ".repeat(5 << 20));
    let s = manifests(move |n| match n {
        0 => Reply::new(200).body(big.clone()),
        _ => Reply::new(200).body(big.clone()).without_length(),
    });
    let r = client(&s.host());
    for _ in 0..2 {
        let err = r.get_manifest("r", "v1", &[]).await.unwrap_err();
        assert!(matches!(err, RegistryError::TooLarge { limit: 4194304, .. }), "{err}");
    }
}

#[tokio::test]
async fn missing_content_type_falls_back_to_the_media_type_field() {
    let s = manifests(|_| Reply::new(200).body(MANIFEST));
    let m = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap();
    assert_eq!(m.media_type, media_type::OCI_INDEX);
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let s = manifests(|n| if n < 2 { Reply::hang_up() } else { ok() });
    let m = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap();
    assert_eq!(m.bytes, MANIFEST.as_bytes());
    assert_eq!(manifest_requests(&s), 3);

    let s = manifests(|_| Reply::hang_up());
    let opts = ClientOptions {
        retry_times: 1,
        ..ClientOptions::default()
    };
    let err = Registry::new(&s.host(), &opts)
        .unwrap()
        .get_manifest("r", "v1", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("{}/r: manifest v1", s.host())),
        "{err}"
    );
    assert_eq!(manifest_requests(&s), 2);
}

#[tokio::test]
async fn tls_verify_false_falls_back_to_plain_http_and_true_insists_on_https() {
    let s = manifests(|_| ok());
    let insecure = ClientOptions {
        tls_verify: Some(false),
        ..ClientOptions::default()
    };
    let m = Registry::new(&s.host(), &insecure)
        .unwrap()
        .get_manifest("r", "v1", &[])
        .await
        .unwrap();
    assert_eq!(m.bytes, MANIFEST.as_bytes());
    let strict = ClientOptions {
        tls_verify: Some(true),
        retry_times: 0,
        ..ClientOptions::default()
    };
    let err = Registry::new(&s.host(), &strict)
        .unwrap()
        .get_manifest("r", "v1", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    assert_eq!(manifest_requests(&s), 1, "only the insecure client got through");
}

#[tokio::test]
async fn failed_upload_starts_over_in_a_new_session() {
    let puts = std::sync::atomic::AtomicUsize::new(0);
    let s = FakeServer::start(move |req, _| match (req.method.as_str(), req.path()) {
        ("GET", "/v2/") => Reply::new(200),
        ("HEAD", _) => Reply::new(404),
        ("POST", _) => Reply::new(202).header("Location", format!("/v2/r/blobs/uploads/s{}", req.body.len())),
        ("PUT", _) if puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 1 => Reply::new(500),
        ("PUT", _) => Reply::new(201),
        _ => Reply::new(204),
    });
    let opts = ClientOptions {
        retry_times: 1,
        ..ClientOptions::default()
    };
    let r = Registry::new(&s.host(), &opts).unwrap();
    let bytes = crate::data(50, 1000);
    let (total, progress) = crate::counter();
    let open = crate::opener(bytes.clone());
    let outcome = r
        .put_blob("r", &Digest::sha256(&bytes), 1000, &open, &progress)
        .await
        .unwrap();
    assert_eq!(outcome, berth_registry::PutOutcome::Uploaded);
    assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 1000);
    let reqs = s.requests();
    let count = |m: &str| reqs.iter().filter(|q| q.method == m).count();
    assert_eq!((count("POST"), count("PUT"), count("DELETE")), (2, 2, 1), "{reqs:?}");
    assert!(reqs.iter().filter(|q| q.method == "PUT").all(|q| q.body == bytes));
}
