//! Redirects, upload locations, pagination and token realms, against local servers.

use std::sync::Arc;

use berth_registry::{ClientOptions, Credentials, PutOutcome, Registry, RegistryError};
use berth_spec::Digest;

use crate::fake::{FakeServer, Reply, Seen};
use crate::{client, data, opener};

/// `Basic base64(u:p)`.
const AUTH: &str = "Basic dTpw";

fn login(host: &str) -> Registry {
    let opts = ClientOptions {
        credentials: Some(Credentials::parse("u:p").unwrap()),
        ..ClientOptions::default()
    };
    Registry::new(host, &opts).unwrap()
}

/// Answers `/v2/` like a Basic-auth registry; `None` for other paths.
fn basic_gate(req: &Seen) -> Option<Reply> {
    if req.header("authorization") != Some(AUTH) {
        return Some(Reply::new(401).header("WWW-Authenticate", r#"Basic realm="fake""#));
    }
    (req.path() == "/v2/").then(|| Reply::new(200))
}

#[tokio::test]
async fn redirect_to_object_storage_drops_authorization() {
    let blob = Arc::new(data(40, 5000));
    let b2 = blob.clone();
    let storage = FakeServer::start(move |_, _| Reply::new(200).body(b2.to_vec()));
    let storage_url = storage.url("/bucket/object?X-Signature=secret");
    let registry = FakeServer::start(move |req, _| {
        basic_gate(req).unwrap_or_else(|| Reply::new(307).header("Location", storage_url.clone()))
    });
    let r = login(&registry.host());
    let mut out = Vec::new();
    r.get_blob("r", &Digest::sha256(&blob), 5000, &mut out, &|_| {})
        .await
        .unwrap();
    assert_eq!(out, *blob);
    let at_registry = registry.requests();
    assert!(
        at_registry
            .iter()
            .any(|q| q.path().contains("/blobs/") && q.header("authorization") == Some(AUTH))
    );
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(
        at_storage[0].header("authorization"),
        None,
        "credentials leaked to another origin"
    );
}

#[tokio::test]
async fn redirect_loops_and_endless_chains_are_refused() {
    let s = FakeServer::start(|req, _| match req.path() {
        "/v2/" => Reply::new(200),
        "/v2/r/manifests/a" => Reply::new(302).header("Location", "/v2/r/manifests/b"),
        "/v2/r/manifests/b" => Reply::new(307).header("Location", "a"),
        p => {
            let n: u32 = p.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            Reply::new(301).header("Location", format!("/v2/r/manifests/hop-{}", n + 1))
        }
    });
    let r = client(&s.host());
    let err = r.get_manifest("r", "a", &[]).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Redirect { .. }) && err.to_string().contains("loop"),
        "{err}"
    );
    let err = r.get_manifest("r", "hop-0", &[]).await.unwrap_err();
    assert!(err.to_string().contains("more than 10 redirects"), "{err}");
}

#[tokio::test]
async fn upload_locations_relative_and_on_another_host() {
    let bytes = data(41, 3000);
    let digest = Digest::sha256(&bytes);
    let other = FakeServer::start(|_, _| Reply::new(201));
    let elsewhere = other.url("/upload/1?state=abc");
    let registry = FakeServer::start(move |req, _| {
        if let Some(reply) = basic_gate(req) {
            return reply;
        }
        match (req.method.as_str(), req.path()) {
            ("HEAD", _) => Reply::new(404),
            ("POST", "/v2/far/blobs/uploads/") => Reply::new(202).header("Location", elsewhere.clone()),
            ("POST", "/v2/near/blobs/uploads/") => Reply::new(202).header("Location", "/v2/near/blobs/uploads/u1"),
            ("PUT", "/v2/near/blobs/uploads/u1") => Reply::new(201),
            ("POST", _) => Reply::new(202),
            _ => Reply::new(400),
        }
    });
    let r = login(&registry.host());
    let put = |repo: &'static str| {
        let (r, bytes, digest) = (r.clone(), bytes.clone(), digest.clone());
        async move { r.put_blob(repo, &digest, 3000, &opener(bytes), &|_| {}).await }
    };
    assert_eq!(put("far").await.unwrap(), PutOutcome::Uploaded);
    let at_other = other.requests();
    assert_eq!(at_other.len(), 1);
    assert_eq!(at_other[0].method, "PUT");
    assert_eq!(
        at_other[0].header("authorization"),
        None,
        "credentials leaked to another host"
    );
    assert_eq!(at_other[0].body, bytes);
    assert!(at_other[0].target.contains("state=abc") && at_other[0].target.contains("digest=sha256%3A"));

    assert_eq!(put("near").await.unwrap(), PutOutcome::Uploaded);
    let put_near = registry.requests().into_iter().find(|q| q.method == "PUT").unwrap();
    assert_eq!(put_near.header("authorization"), Some(AUTH));
    assert_eq!(put_near.body, bytes);

    let err = put("nowhere").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::MissingLocation { status: 202, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("without a Location header"), "{err}");
}

#[tokio::test]
async fn tag_pages_are_followed_through_link_headers() {
    let s = FakeServer::start(|req, _| {
        let page = |tags: &str| Reply::new(200).body(format!(r#"{{"name":"r","tags":[{tags}]}}"#));
        match req.target.as_str() {
            "/v2/" => Reply::new(200),
            "/v2/r/tags/list?n=2" => page(r#""a","b""#).header("Link", r#"</v2/r/tags/list?n=2&last=b>; rel="next""#),
            "/v2/r/tags/list?n=2&last=b" => page(r#""c","d""#).header("Link", r#"<list?n=2&last=d>; rel="next""#),
            "/v2/r/tags/list?n=2&last=d" => page(r#""e""#),
            "/v2/loop/tags/list" => page(r#""x""#).header("Link", r#"</v2/loop/tags/list>; rel="next""#),
            _ => Reply::new(404),
        }
    });
    let r = client(&s.host());
    assert_eq!(
        r.list_tags_paged("r", Some(2)).await.unwrap(),
        ["a", "b", "c", "d", "e"]
    );
    let err = r.list_tags("loop").await.unwrap_err();
    assert!(err.to_string().contains("pagination loops"), "{err}");
}

/// A registry asking for bearer tokens from `realm` (a path on itself unless absolute), whose token endpoint answers
/// `token_reply`, and which accepts nothing (every authorized request is 401 again).
fn bearer_registry(realm: impl Fn(&str) -> String + Send + Sync + 'static, token_reply: Reply) -> FakeServer {
    FakeServer::start(move |req, _| {
        if req.path() == "/token" {
            return token_reply.clone();
        }
        let host = req.header("host").unwrap_or_default().to_owned();
        let challenge = format!(r#"Bearer realm="{}",service="fake""#, realm(&host));
        Reply::new(401).header("WWW-Authenticate", challenge)
    })
}

#[tokio::test]
async fn endless_401_after_a_token_stops() {
    let s = bearer_registry(
        |host| format!("http://{host}/token"),
        Reply::new(200).body(r#"{"token":"t"}"#),
    );
    let err = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    let manifest_requests = s.requests().iter().filter(|q| q.path().contains("/manifests/")).count();
    assert_eq!(manifest_requests, 2, "one attempt and one after a fresh token");
}

#[tokio::test]
async fn hostile_token_realms_and_bodies_are_refused() {
    // A realm on plain http on another host name (localhost is not 127.0.0.1).
    let s = bearer_registry(
        |host| format!("http://{}/token", host.replace("127.0.0.1", "localhost")),
        Reply::new(500),
    );
    let err = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("refusing a token realm on plain http on another host"),
        "{err}"
    );
    assert!(!s.requests().iter().any(|q| q.path() == "/token"));

    let huge = Reply::new(200).body(format!(r#"{{"token":"{}"}}"#, "x".repeat(2 << 20)));
    let s = bearer_registry(|host| format!("http://{host}/token"), huge.without_length());
    let err = client(&s.host()).get_manifest("r", "v1", &[]).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Token { .. }) && err.to_string().contains("larger than"),
        "{err}"
    );
}
