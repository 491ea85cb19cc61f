//! Basic and token authentication against a real registry.

use berth_registry::{ClientOptions, Credentials, Registry, RegistryError};
use berth_spec::{Digest, media_type};
use berth_testkit::registry::TestRegistry;

use crate::{data, image_manifest, opener, pull, push};

fn login(host: &str, creds: &str) -> Registry {
    let opts = ClientOptions {
        credentials: Some(Credentials::parse(creds).unwrap()),
        ..ClientOptions::default()
    };
    Registry::new(host, &opts).unwrap()
}

/// A client that cannot pick up credentials from the machine's auth files.
fn anonymous(host: &str) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("auth.json");
    std::fs::write(&empty, "{}").unwrap();
    let opts = ClientOptions {
        authfile: Some(empty),
        ..ClientOptions::default()
    };
    Registry::new(host, &opts).unwrap()
}

#[tokio::test]
async fn basic_auth_push_and_pull() {
    let reg = TestRegistry::basic("alice", "s3cret:with:colons").unwrap();
    let r = login(&reg.host(), "alice:s3cret:with:colons");
    let bytes = data(20, 10_000);
    let digest = push(&r, "private/app", &bytes).await;
    assert_eq!(pull(&r, "private/app", &digest, 10_000).await, bytes);
    let manifest = image_manifest(&r, "private/app", 21).await;
    r.put_manifest("private/app", "v1", &manifest, media_type::OCI_MANIFEST)
        .await
        .unwrap();
    assert_eq!(r.list_tags("private/app").await.unwrap(), ["v1"]);
}

#[tokio::test]
async fn basic_auth_wrong_password_is_a_clear_401() {
    let reg = TestRegistry::basic("alice", "right").unwrap();
    let r = login(&reg.host(), "alice:wrong");
    let err = r.get_manifest("private/app", "v1", &[]).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.is_unauthorized());
    let msg = err.to_string();
    assert!(
        msg.contains(&reg.host()) && msg.contains("private/app") && msg.contains("manifest v1"),
        "{msg}"
    );
    assert!(msg.contains("401") && msg.contains("--creds"), "{msg}");

    let err = anonymous(&reg.host())
        .blob_exists("private/app", &Digest::sha256(b""))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn token_auth_pull_and_push_scopes() {
    let reg = TestRegistry::token("bob", "hunter2").unwrap();
    let r = login(&reg.host(), "bob:hunter2");
    let bytes = data(22, 20_000);
    let digest = push(&r, "tok/app", &bytes).await;
    assert_eq!(pull(&r, "tok/app", &digest, 20_000).await, bytes);
    let server = reg.token_server().unwrap();
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .all(|q| q.authenticated && q.user.as_deref() == Some("bob")),
        "{requests:?}"
    );
    let scopes: Vec<&str> = requests
        .iter()
        .flat_map(|q| q.scopes.iter().map(String::as_str))
        .collect();
    assert!(scopes.contains(&"repository:tok/app:pull,push"), "{scopes:?}");
    assert!(scopes.contains(&"repository:tok/app:pull"), "{scopes:?}");
    // Tokens are cached per scope: a few token requests for many registry requests.
    assert!(requests.len() <= 4, "{requests:?}");

    // A mount asks for push on the target and pull on the source.
    assert!(r.mount_blob("tok/other", &digest, "tok/app").await.unwrap());
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.scopes,
        ["repository:tok/other:pull,push", "repository:tok/app:pull"]
    );
}

#[tokio::test]
async fn token_auth_refusals() {
    let reg = TestRegistry::token("bob", "hunter2").unwrap();
    let err = login(&reg.host(), "bob:wrong")
        .get_manifest("tok/app", "v1", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Token { status: Some(401), .. }), "{err}");
    assert!(
        err.is_unauthorized(),
        "a token server refusing the credentials is an authentication failure"
    );
    assert!(
        err.to_string().contains("401") && err.to_string().contains("--creds"),
        "{err}"
    );

    // Anonymous tokens grant nothing: the registry keeps answering 401, and the client stops after one retry.
    let before = reg.log().matches("\"PUT ").count() + reg.log().matches("\"POST ").count();
    let bytes = data(23, 100);
    let digest = Digest::sha256(&bytes);
    let r = anonymous(&reg.host());
    let err = r
        .put_blob("tok/app", &digest, 100, &opener(bytes), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    let log = reg.log();
    assert_eq!(
        log.matches("\"POST ").count() + log.matches("\"PUT ").count(),
        before,
        "nothing was written"
    );
    let heads = log.matches("\"HEAD /v2/tok/app/blobs/").count();
    assert_eq!(heads, 2, "one attempt and one re-authenticated attempt: {log}");
}
