//! Authentication: Basic with `--src-creds`/`--dest-creds`, with `--authfile`, with a docker credential helper;
//! wrong passwords named clearly; the bearer-token flow for push and pull.

use std::os::unix::fs::PermissionsExt;

use berth_testkit::registry::TestRegistry;

use crate::{Env, busybox_layout, layout_digest};

const USER: &str = "berth";
const PASSWORD: &str = "s3cret-pass";

/// Standard base64 with padding (enough for an auth file).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn basic_auth_with_creds_flags() {
    let env = Env::new();
    let reg = TestRegistry::basic(USER, PASSWORD).unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let creds = format!("{USER}:{PASSWORD}");
    let remote = format!("docker://{}/private/busybox:1", reg.host());
    env.ok(&[
        "copy",
        "-q",
        "--dest-creds",
        &creds,
        &env.oci("a", Some("bb:1")),
        &remote,
    ]);
    env.ok(&["copy", "-q", "--src-creds", &creds, &remote, &env.oci("b", Some("bb"))]);
    assert_eq!(
        layout_digest(&env.path("b"), Some("bb")),
        img.manifest_digest.to_string()
    );
    // Registry to registry, both sides authenticated.
    let copy = format!("docker://{}/private/copy:1", reg.host());
    env.ok(&[
        "copy",
        "-q",
        "--src-creds",
        &creds,
        "--dest-creds",
        &creds,
        &remote,
        &copy,
    ]);
    let tags = env.ok(&[
        "list-tags",
        "--src-creds",
        &creds,
        &format!("docker://{}/private/copy", reg.host()),
    ]);
    assert!(tags.contains("\"1\""), "{tags}");
    // skopeo's --creds works for commands on one reference; whichever credential flag is given to inspect applies
    // to its one registry.
    let one = format!("docker://{}/private/copy:1", reg.host());
    for flag in ["--creds", "--src-creds", "--dest-creds"] {
        let out = env.ok(&["inspect", flag, &creds, &one]);
        assert!(out.contains(&img.manifest_digest.to_string()), "{flag}: {out}");
    }
    // For copy, one --creds would send the password to both registries: refused.
    let err = env.fails(&[
        "copy",
        "-q",
        "--creds",
        &creds,
        &remote,
        &format!("docker://{}/private/both:1", reg.host()),
    ]);
    assert!(err.contains("--src-creds"), "{err}");
    // A password is required (no prompt: scripts and CI would hang).
    let err = env.fails(&["inspect", "--creds", USER, &one]);
    assert!(
        err.contains("write them as USER:PASSWORD") && !err.contains("--creds ("),
        "{err}"
    );
}

#[test]
fn basic_auth_from_an_authfile_and_a_credential_helper() {
    let env = Env::new();
    let reg = TestRegistry::basic(USER, PASSWORD).unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let authfile = env.path("auth.json");
    let entry = serde_json::json!({"auths": {reg.host(): {"auth": base64(format!("{USER}:{PASSWORD}").as_bytes())}}});
    std::fs::write(&authfile, entry.to_string()).unwrap();
    let remote = format!("docker://{}/private/busybox:1", reg.host());
    env.ok(&[
        "copy",
        "-q",
        "--authfile",
        authfile.to_str().unwrap(),
        &env.oci("a", Some("bb:1")),
        &remote,
    ]);
    env.ok(&[
        "copy",
        "-q",
        "--authfile",
        authfile.to_str().unwrap(),
        &remote,
        &env.oci("b", Some("bb")),
    ]);
    assert_eq!(
        layout_digest(&env.path("b"), Some("bb")),
        img.manifest_digest.to_string()
    );
    // $REGISTRY_AUTH_FILE is the same file.
    let out = env
        .cmd(&["inspect", "--raw", &remote])
        .env("REGISTRY_AUTH_FILE", &authfile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::text(&out.stderr));

    // ~/.docker/config.json naming a docker-credential-* helper found on PATH.
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-berthtest");
    let answer = serde_json::json!({"ServerURL": reg.host(), "Username": USER, "Secret": PASSWORD});
    std::fs::write(&helper, format!("#!/bin/sh\nread server\nprintf '%s' '{answer}'\n")).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = env.home().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        serde_json::json!({"credHelpers": {reg.host(): "berthtest"}}).to_string(),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = env
        .cmd(&["copy", "-q", &remote, &env.oci("c", Some("bb"))])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "credential helper: {}", crate::text(&out.stderr));
    assert_eq!(
        layout_digest(&env.path("c"), Some("bb")),
        img.manifest_digest.to_string()
    );
}

#[test]
fn wrong_or_missing_password_fails_naming_the_registry_and_401() {
    let env = Env::new();
    let reg = TestRegistry::basic(USER, PASSWORD).unwrap();
    busybox_layout(&env, "a", "bb:1");
    let remote = format!("docker://{}/private/busybox:1", reg.host());
    let wrong = format!("{USER}:wrong");
    let err = env.fails(&[
        "copy",
        "-q",
        "--dest-creds",
        &wrong,
        &env.oci("a", Some("bb:1")),
        &remote,
    ]);
    assert!(err.contains(&reg.host()) && err.contains("401"), "{err}");
    let err = env.fails(&["copy", "-q", "--src-creds", &wrong, &remote, &env.oci("b", None)]);
    assert!(err.contains(&reg.host()) && err.contains("401"), "{err}");
    let err = env.fails(&["copy", "-q", &env.oci("a", Some("bb:1")), &remote]);
    assert!(
        err.contains(&reg.host()) && err.contains("401"),
        "without credentials: {err}"
    );
    // A 401 is not retried: a handful of requests, not retry-times' worth of them.
    let log = reg.log();
    let unauthorized = log.lines().filter(|l| l.contains("HTTP/1.1\" 401")).count();
    assert!((1..=12).contains(&unauthorized), "{log}");
}

#[test]
fn token_auth_push_and_pull() {
    let env = Env::new();
    let reg = TestRegistry::token(USER, PASSWORD).unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    let creds = format!("{USER}:{PASSWORD}");
    let remote = format!("docker://{}/tok/busybox:1", reg.host());
    env.ok(&[
        "copy",
        "-q",
        "--dest-creds",
        &creds,
        &env.oci("a", Some("bb:1")),
        &remote,
    ]);
    env.ok(&["copy", "-q", "--src-creds", &creds, &remote, &env.oci("b", Some("bb"))]);
    assert_eq!(
        layout_digest(&env.path("b"), Some("bb")),
        img.manifest_digest.to_string()
    );
    let requests = reg.token_server().unwrap().requests();
    assert!(requests.iter().all(|r| r.authenticated), "{requests:#?}");
    assert!(
        requests.iter().any(|r| r
            .scopes
            .iter()
            .any(|s| s.starts_with("repository:tok/busybox:") && s.contains("push"))),
        "{requests:#?}"
    );
    let err = env.fails(&[
        "copy",
        "-q",
        "--src-creds",
        &format!("{USER}:nope"),
        &remote,
        &env.oci("c", None),
    ]);
    assert!(err.contains("401"), "{err}");
}

/// `login` checks the password with the registry before writing anything, stores it where skopeo and podman look
/// (`$XDG_RUNTIME_DIR/containers/auth.json`, mode 0600), so later commands need no flags and skopeo reads it too;
/// `logout` removes it. Basic and bearer-token registries alike.
#[test]
fn login_stores_checked_credentials_and_logout_removes_them() {
    use std::io::Write;
    let env = Env::new();
    let img = busybox_layout(&env, "a", "bb:1");
    let file = env.home().join("containers/auth.json");
    let login = |host: &str, password: &str| {
        let mut child = env
            .cmd(&["login", "-u", USER, "--password-stdin", host])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    for (kind, reg) in [
        ("basic", TestRegistry::basic(USER, PASSWORD).unwrap()),
        ("token", TestRegistry::token(USER, PASSWORD).unwrap()),
    ] {
        let host = reg.host().to_owned();
        let remote = format!("docker://{host}/private/busybox:1");
        // A wrong password: refused by the registry, nothing written.
        let _ = std::fs::remove_file(&file);
        let out = login(&host, "wrong");
        assert!(!out.status.success(), "{kind}: a wrong password logged in");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&host) && err.contains("401"), "{kind}: {err}");
        assert!(!file.exists(), "{kind}: a failed login wrote {}", file.display());

        let out = login(&host, PASSWORD);
        assert!(out.status.success(), "{kind}: {}", String::from_utf8_lossy(&out.stderr));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{kind}");
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            doc["auths"][&host]["auth"],
            base64(format!("{USER}:{PASSWORD}").as_bytes()),
            "{kind}"
        );
        // No credential flags from now on; skopeo reads the same file.
        env.ok(&["copy", "-q", &env.oci("a", Some("bb:1")), &remote]);
        let inspected = env.ok(&["inspect", &remote]);
        assert!(inspected.contains(&img.manifest_digest.to_string()), "{kind}");
        let skopeo = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
            .arg(&file)
            .arg(&remote)
            .output()
            .unwrap();
        assert!(
            skopeo.status.success(),
            "{kind}: skopeo: {}",
            String::from_utf8_lossy(&skopeo.stderr)
        );

        env.ok(&["logout", &host]);
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert!(doc["auths"].get(&host).is_none(), "{kind}: {doc}");
        let err = env.fails(&["inspect", &remote]);
        assert!(err.contains("401"), "{kind}: {err}");
        let err = env.fails(&["logout", &host]);
        assert!(err.contains("not logged in"), "{kind}: {err}");
    }
    env.ok(&["logout", "--all"]);
}
