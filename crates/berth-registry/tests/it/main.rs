//! Black-box tests of berth-registry: against a real registry (Debian's docker-registry, CNCF distribution 2.8)
//! and against tiny local HTTP servers that misbehave on purpose.

mod auth;
mod fake;
mod faults;
mod mounts;
mod redirects;
mod resume;
mod roundtrip;
mod uploads;

use std::io::{Cursor, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_registry::{ClientOptions, Registry};
use berth_spec::{Digest, media_type};

/// Deterministic pseudo-random bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    berth_testkit::rng::Rng::new(seed).fill(&mut buf);
    buf
}

/// A client with no retries' waiting to speak of.
pub fn client(host: &str) -> Registry {
    Registry::new(host, &ClientOptions::default()).unwrap()
}

/// An `open` factory over bytes.
pub fn opener(bytes: Vec<u8>) -> impl Fn() -> std::io::Result<Box<dyn Read + Send>> + Send + Sync {
    let bytes = Arc::new(bytes);
    move || Ok(Box::new(Cursor::new(bytes.as_ref().clone())) as Box<dyn Read + Send>)
}

/// A progress callback and the total it counted.
pub fn counter() -> (Arc<AtomicU64>, impl Fn(u64) + Send + Sync) {
    let total = Arc::new(AtomicU64::new(0));
    let t = total.clone();
    (total, move |n| {
        t.fetch_add(n, Ordering::Relaxed);
    })
}

/// Pushes `bytes` as a blob of `repo`; returns its digest.
pub async fn push(registry: &Registry, repo: &str, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256(bytes);
    registry
        .put_blob(repo, &digest, bytes.len() as u64, &opener(bytes.to_vec()), &|_| {})
        .await
        .unwrap();
    digest
}

/// Downloads a blob into memory.
pub async fn pull(registry: &Registry, repo: &str, digest: &Digest, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    registry.get_blob(repo, digest, size, &mut out, &|_| {}).await.unwrap();
    out
}

/// Pushes a config and a layer to `repo` and returns the bytes of an OCI manifest referencing them.
pub async fn image_manifest(registry: &Registry, repo: &str, seed: u64) -> Vec<u8> {
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":{seed}}}"#);
    let layer = data(seed, 2048);
    let (c, l) = (
        push(registry, repo, config.as_bytes()).await,
        push(registry, repo, &layer).await,
    );
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{l}","size":{}}}]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        config.len(),
        media_type::OCI_LAYER_GZIP,
        layer.len()
    )
    .into_bytes()
}
