//! Resumable downloads against a local server that cuts, stalls, ignores `Range` or lies.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_registry::{ClientOptions, Registry, RegistryError, Timeouts};
use berth_spec::Digest;

use crate::fake::{FakeServer, Reply, Seen};
use crate::{client, counter, data};

const SIZE: usize = 100_000;
const CUT: usize = 40_000;

/// The start offset of `Range: bytes=N-`.
fn range_start(req: &Seen) -> Option<usize> {
    req.header("range")?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// A registry whose blob answers come from `blob_reply(request, blob, index of the blob request)`.
fn server(blob: Arc<Vec<u8>>, blob_reply: impl Fn(&Seen, &[u8], usize) -> Reply + Send + Sync + 'static) -> FakeServer {
    let blob_requests = std::sync::atomic::AtomicUsize::new(0);
    FakeServer::start(move |req, _| {
        if req.path() == "/v2/" {
            return Reply::new(200);
        }
        blob_reply(req, &blob, blob_requests.fetch_add(1, Ordering::SeqCst))
    })
}

/// A correct partial answer to a range request.
fn partial(req: &Seen, blob: &[u8]) -> Reply {
    let start = range_start(req).expect("a Range header");
    Reply::new(206)
        .header(
            "Content-Range",
            format!("bytes {start}-{}/{}", blob.len() - 1, blob.len()),
        )
        .body(blob[start..].to_vec())
}

async fn fetch(r: &Registry, blob: &[u8]) -> Result<Vec<u8>, RegistryError> {
    let mut out = Vec::new();
    let digest = Digest::sha256(blob);
    r.get_blob("r", &digest, blob.len() as u64, &mut out, &|_| {})
        .await
        .map(|()| out)
}

fn blob_requests(s: &FakeServer) -> Vec<Seen> {
    s.requests()
        .into_iter()
        .filter(|r| r.path().starts_with("/v2/r/blobs/"))
        .collect()
}

#[tokio::test]
async fn cut_body_resumes_with_a_checked_206() {
    let blob = Arc::new(data(30, SIZE));
    let s = server(blob.clone(), |req, blob, n| match n {
        0 => Reply::new(200).body(blob.to_vec()).cut_at(CUT),
        _ => partial(req, blob),
    });
    let r = client(&s.host());
    let (total, progress) = counter();
    let mut out = Vec::new();
    r.get_blob("r", &Digest::sha256(&blob), SIZE as u64, &mut out, &progress)
        .await
        .unwrap();
    assert_eq!(out, *blob);
    assert_eq!(
        total.load(Ordering::Relaxed),
        SIZE as u64,
        "progress counts every byte once"
    );
    let reqs = blob_requests(&s);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), None);
    assert_eq!(reqs[1].header("range"), Some(format!("bytes={CUT}-").as_str()));
}

#[tokio::test]
async fn stalled_body_times_out_and_resumes() {
    let blob = Arc::new(data(31, SIZE));
    let s = server(blob.clone(), |req, blob, n| match n {
        0 => Reply::new(200)
            .body(blob.to_vec())
            .cut_at(CUT)
            .stall(Duration::from_secs(3)),
        _ => partial(req, blob),
    });
    let timeouts = Timeouts {
        stall: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let r = Registry::with_timeouts(&s.host(), &ClientOptions::default(), timeouts).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(fetch(&r, &blob).await.unwrap(), *blob);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not wait for the stalled connection"
    );
    assert_eq!(
        blob_requests(&s)[1].header("range"),
        Some(format!("bytes={CUT}-").as_str())
    );
}

/// A server that ignores `Range` after a cut body sends the whole blob again: what was already received is
/// dropped from it, and the digest of the result is still checked.
#[tokio::test]
async fn range_answered_with_200_reads_the_blob_again() {
    let blob = Arc::new(data(32, SIZE));
    let s = server(blob.clone(), |_, blob, n| match n {
        0 => Reply::new(200).body(blob.to_vec()).cut_at(CUT),
        _ => Reply::new(200).body(blob.to_vec()),
    });
    assert_eq!(fetch(&client(&s.host()), &blob).await.unwrap(), *blob);
    assert_eq!(
        blob_requests(&s)[1].header("range"),
        Some(format!("bytes={CUT}-").as_str())
    );
    // A server sending other bytes the second time: the digest check refuses the result.
    let other = Arc::new(data(34, SIZE));
    let s = server(blob.clone(), move |_, blob, n| match n {
        0 => Reply::new(200).body(blob.to_vec()).cut_at(CUT),
        _ => Reply::new(200).body(other.to_vec()),
    });
    let err = fetch(&client(&s.host()), &blob).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn partial_answer_at_the_wrong_offset_is_refused() {
    let blob = Arc::new(data(33, SIZE));
    let s = server(blob.clone(), |_, blob, n| match n {
        0 => Reply::new(200).body(blob.to_vec()).cut_at(CUT),
        _ => Reply::new(206)
            .header("Content-Range", format!("bytes 0-{}/{}", blob.len() - 1, blob.len()))
            .body(blob.to_vec()),
    });
    let err = fetch(&client(&s.host()), &blob).await.unwrap_err();
    assert!(matches!(err, RegistryError::BadContentRange { .. }), "{err}");
}

#[tokio::test]
async fn wrong_body_is_a_digest_error() {
    let blob = Arc::new(data(34, SIZE));
    let s = server(blob.clone(), |_, _, _| Reply::new(200).body(data(35, SIZE)));
    let err = fetch(&client(&s.host()), &blob).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&Digest::sha256(&blob).to_string()), "{err}");
}

#[tokio::test]
async fn lengths_that_differ_from_the_descriptor_are_refused() {
    let blob = Arc::new(data(36, SIZE));
    // Announced too long.
    let s = server(blob.clone(), |_, blob, _| {
        Reply::new(200).body([blob, b"extra"].concat())
    });
    let err = fetch(&client(&s.host()), &blob).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::SizeMismatch { found, .. } if found == SIZE as u64 + 5),
        "{err}"
    );
    // No length, and more bytes than the descriptor: refused when they arrive.
    let s = server(blob.clone(), |_, blob, _| {
        Reply::new(200).body([blob, b"extra"].concat()).without_length()
    });
    let err = fetch(&client(&s.host()), &blob).await.unwrap_err();
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err}");
    // No length and fewer bytes: the end of the connection is a cut, and the rest is fetched with Range.
    let s = server(blob.clone(), |req, blob, n| match n {
        0 => Reply::new(200).body(blob[..CUT].to_vec()).without_length(),
        _ => partial(req, blob),
    });
    assert_eq!(fetch(&client(&s.host()), &blob).await.unwrap(), *blob);
}

#[tokio::test]
async fn repeated_cuts_without_progress_give_up() {
    let blob = Arc::new(data(37, SIZE));
    let s = server(blob.clone(), |req, blob, n| match n {
        0 => Reply::new(200).body(blob.to_vec()).cut_at(CUT),
        _ => partial(req, blob).cut_at(0),
    });
    let opts = ClientOptions {
        retry_times: 2,
        ..ClientOptions::default()
    };
    let err = fetch(&Registry::new(&s.host(), &opts).unwrap(), &blob)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    assert_eq!(
        blob_requests(&s).len(),
        3,
        "the first request, then two resumptions without progress"
    );
}
