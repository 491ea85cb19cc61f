use std::os::unix::fs::PermissionsExt;

use super::*;

/// base64("user:pass") for a few users.
fn auth(user: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:secret-{user}"))
}

fn env_with(dir: &Path) -> AuthEnv {
    AuthEnv {
        home: Some(dir.join("home")),
        path: Some(dir.join("bin").into_os_string()),
        ..AuthEnv::default()
    }
}

fn write(path: &Path, json: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, json).unwrap();
}

fn user_of(host: &str, opts: &ClientOptions, env: &AuthEnv) -> Option<String> {
    lookup_with(host, opts, env).unwrap().map(|c| {
        assert_eq!(c.password, format!("secret-{}", c.username));
        c.username
    })
}

#[test]
fn every_key_form_matches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    let json = format!(
        r#"{{"auths": {{
            "plain.example:5000": {{"auth": "{}"}},
            "https://scheme.example": {{"auth": "{}"}},
            "slash.example/": {{"auth": "{}"}},
            "https://index.docker.io/v1/": {{"auth": "{}"}},
            "http://Upper.Example/v2/": {{"auth": "{}"}}
        }}}}"#,
        auth("plain"),
        auth("scheme"),
        auth("slash"),
        auth("hub"),
        auth("upper")
    );
    write(&file, &json);
    let opts = ClientOptions {
        authfile: Some(file),
        ..ClientOptions::default()
    };
    let env = env_with(dir.path());
    assert_eq!(user_of("plain.example:5000", &opts, &env).as_deref(), Some("plain"));
    assert_eq!(user_of("scheme.example", &opts, &env).as_deref(), Some("scheme"));
    assert_eq!(user_of("slash.example", &opts, &env).as_deref(), Some("slash"));
    assert_eq!(user_of("docker.io", &opts, &env).as_deref(), Some("hub"));
    assert_eq!(user_of("registry-1.docker.io", &opts, &env).as_deref(), Some("hub"));
    assert_eq!(user_of("upper.example", &opts, &env).as_deref(), Some("upper"));
    assert_eq!(
        user_of("plain.example", &opts, &env),
        None,
        "the port is part of the host"
    );
    assert_eq!(user_of("other.example", &opts, &env), None);
}

#[test]
fn docker_io_key_serves_hub_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("home/.docker/config.json");
    write(
        &file,
        &format!(r#"{{"auths": {{"docker.io": {{"auth": "{}"}}}}}}"#, auth("hub")),
    );
    let env = env_with(dir.path());
    let opts = ClientOptions::default();
    assert_eq!(user_of("index.docker.io", &opts, &env).as_deref(), Some("hub"));
    assert_eq!(user_of("docker.io", &opts, &env).as_deref(), Some("hub"));
}

#[test]
fn explicit_credentials_win_and_files_are_searched_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with(dir.path());
    env.xdg_runtime_dir = Some(dir.path().join("run"));
    env.registry_auth_file = Some(dir.path().join("env-auth.json"));
    let host = "r.example";
    let entry = |u: &str| format!(r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#, auth(u));
    write(&dir.path().join("home/.docker/config.json"), &entry("docker"));
    assert_eq!(
        user_of(host, &ClientOptions::default(), &env).as_deref(),
        Some("docker")
    );
    write(&dir.path().join("run/containers/auth.json"), &entry("xdg"));
    assert_eq!(user_of(host, &ClientOptions::default(), &env).as_deref(), Some("xdg"));
    write(&dir.path().join("env-auth.json"), &entry("envfile"));
    assert_eq!(
        user_of(host, &ClientOptions::default(), &env).as_deref(),
        Some("envfile")
    );
    // An explicit auth file replaces $REGISTRY_AUTH_FILE; one without the host falls through to the rest.
    write(&dir.path().join("explicit.json"), r#"{"auths": {}}"#);
    let opts = ClientOptions {
        authfile: Some(dir.path().join("explicit.json")),
        ..ClientOptions::default()
    };
    assert_eq!(user_of(host, &opts, &env).as_deref(), Some("xdg"));
    let opts = ClientOptions {
        credentials: Some(Credentials::parse("cli:secret-cli").unwrap()),
        ..opts
    };
    assert_eq!(user_of(host, &opts, &env).as_deref(), Some("cli"));
}

#[test]
fn malformed_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    write(&file, "{not json");
    let opts = ClientOptions {
        authfile: Some(file.clone()),
        ..ClientOptions::default()
    };
    let err = lookup_with("h", &opts, &env_with(dir.path())).unwrap_err();
    assert!(err.to_string().contains(&file.display().to_string()), "{err}");
    write(&file, r#"{"auths": {"h": {"auth": "bm8tY29sb24="}}}"#);
    let err = lookup_with("h", &opts, &env_with(dir.path())).unwrap_err();
    assert!(err.to_string().contains("not base64 of USER:PASSWORD"), "{err}");
}

/// Writes `bin/docker-credential-test`, which answers for `helper.example` and says "not found" otherwise.
fn install_helper(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("docker-credential-test");
    let tmp = bin.join(".tmp-helper");
    std::fs::write(
        &tmp,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r host\n\
         if [ \"$host\" = helper.example ]; then\n\
           printf '{\"ServerURL\":\"%s\",\"Username\":\"helper\",\"Secret\":\"secret-helper\"}' \"$host\"\n\
         else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
    )
    .unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &script).unwrap();
}

#[test]
fn cred_helpers_and_creds_store() {
    let dir = tempfile::tempdir().unwrap();
    install_helper(dir.path());
    let env = env_with(dir.path());
    let file = dir.path().join("auth.json");
    let opts = ClientOptions {
        authfile: Some(file.clone()),
        ..ClientOptions::default()
    };
    write(
        &file,
        &format!(
            r#"{{"auths": {{"helper.example": {{"auth": "{}"}}}}, "credHelpers": {{"https://helper.example": "test"}}}}"#,
            auth("file")
        ),
    );
    assert_eq!(
        user_of("helper.example", &opts, &env).as_deref(),
        Some("helper"),
        "credHelpers beat auths"
    );
    write(&file, r#"{"auths": {"helper.example": {}}, "credsStore": "test"}"#);
    assert_eq!(user_of("helper.example", &opts, &env).as_deref(), Some("helper"));
    assert_eq!(
        user_of("elsewhere.example", &opts, &env),
        None,
        "\"not found\" is no credentials"
    );
    write(&file, r#"{"credHelpers": {"helper.example": "missing"}}"#);
    let err = lookup_with("helper.example", &opts, &env).unwrap_err();
    assert!(
        err.to_string().contains("docker-credential-missing is not on PATH"),
        "{err}"
    );
    write(&file, r#"{"credHelpers": {"helper.example": "../../bin/sh"}}"#);
    let err = lookup_with("helper.example", &opts, &env).unwrap_err();
    assert!(err.to_string().contains("not a plain name"), "{err}");
    // A default store that cannot answer leaves requests anonymous (most registries need nothing), as skopeo.
    write(&file, r#"{"credsStore": "missing"}"#);
    assert_eq!(lookup_with("anon.example", &opts, &env).unwrap(), None);
}

/// `Registry::new` runs in async code: it only notes which helper to ask, and the helper runs later as an async
/// child process, when credentials are first needed.
#[tokio::test]
async fn helpers_run_only_when_credentials_are_needed() {
    let dir = tempfile::tempdir().unwrap();
    install_helper(dir.path());
    let env = env_with(dir.path());
    let file = dir.path().join("auth.json");
    let opts = ClientOptions {
        authfile: Some(file.clone()),
        ..ClientOptions::default()
    };
    let ran = dir.path().join("ran");
    let bin = dir.path().join("bin");
    let tmp = bin.join(".tmp-marker");
    std::fs::write(
        &tmp,
        format!(
            "#!/bin/sh\ntouch '{}'\nexec '{}' \"$@\"\n",
            ran.display(),
            bin.join("docker-credential-test").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, bin.join("docker-credential-marker")).unwrap();

    write(&file, r#"{"credHelpers": {"helper.example": "marker"}}"#);
    let source = CredentialSource::locate("helper.example", &opts, &env).unwrap();
    assert!(!ran.exists(), "the helper ran before credentials were needed");
    let found = source.resolve().await.unwrap().unwrap();
    assert_eq!(
        (found.username.as_str(), found.password.as_str()),
        ("helper", "secret-helper")
    );
    assert!(ran.exists());

    // Same answers as the blocking lookup: a missing helper named for the host is an error, a store that cannot
    // answer leaves requests anonymous, and a helper's "not found" falls through to the next file.
    write(&file, r#"{"credHelpers": {"helper.example": "missing"}}"#);
    let source = CredentialSource::locate("helper.example", &opts, &env).unwrap();
    let err = source.resolve().await.unwrap_err();
    assert!(
        err.to_string().contains("docker-credential-missing is not on PATH"),
        "{err}"
    );
    write(&file, r#"{"credsStore": "missing"}"#);
    let source = CredentialSource::locate("anon.example", &opts, &env).unwrap();
    assert_eq!(source.resolve().await.unwrap(), None);
    write(&file, r#"{"credHelpers": {"other.example": "test"}}"#);
    write(
        &dir.path().join("home/.docker/config.json"),
        &format!(r#"{{"auths": {{"other.example": {{"auth": "{}"}}}}}}"#, auth("docker")),
    );
    let source = CredentialSource::locate("other.example", &opts, &env).unwrap();
    assert_eq!(source.resolve().await.unwrap().unwrap().username, "docker");
}
