//! Registry credentials and `docker-credential-*` helpers.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::RegistryError;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Parses `USER:PASSWORD` (the password may contain `:`; the user may not be empty).
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let Some((username, password)) = s.split_once(':') else {
            return Err(RegistryError::InvalidCredentials {
                reason: "no ':' between user and password".into(),
            });
        };
        if username.is_empty() {
            return Err(RegistryError::InvalidCredentials {
                reason: "the user name is empty".into(),
            });
        }
        Ok(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Decodes an auth-file `auth` value: base64 of `USER:PASSWORD`.
    pub(crate) fn from_auth_field(auth: &str) -> Option<Self> {
        let engine = base64::engine::general_purpose::STANDARD;
        let lenient = base64::engine::general_purpose::STANDARD_NO_PAD;
        let auth = auth.trim();
        let raw = engine
            .decode(auth)
            .or_else(|_| lenient.decode(auth.trim_end_matches('=')))
            .ok()?;
        Credentials::parse(std::str::from_utf8(&raw).ok()?).ok()
    }

    /// The `Authorization: Basic …` value.
    pub(crate) fn basic_header(&self) -> reqwest::header::HeaderValue {
        let raw = format!("{}:{}", self.username, self.password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Basic {encoded}"))
            .expect("base64 is a valid header value");
        v.set_sensitive(true);
        v
    }
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The error for helper `helper` asked about `server`.
fn helper_error(helper: &str, server: &str, reason: String) -> RegistryError {
    RegistryError::CredentialHelper {
        helper: helper.to_owned(),
        host: server.to_owned(),
        reason,
    }
}

/// `docker-credential-<helper>`, if `helper` is a plain name.
fn program(helper: &str, server: &str) -> Result<String, RegistryError> {
    if helper.is_empty()
        || !helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(helper_error(
            helper,
            server,
            "the helper name in the auth file is not a plain name".into(),
        ));
    }
    Ok(format!("docker-credential-{helper}"))
}

/// The places `program` may be on `path`.
fn candidates<'a>(program: &'a str, path: Option<&'a OsString>) -> impl Iterator<Item = PathBuf> + 'a {
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(move |dir| dir.join(program))
}

fn not_on_path(helper: &str, server: &str, program: &str) -> RegistryError {
    helper_error(
        helper,
        server,
        format!("{program} is not on PATH; install it or remove it from the auth file"),
    )
}

/// Runs `docker-credential-<helper> get` with `server` on stdin, searching `path` (the `PATH` to use), blocking
/// the calling thread. "credentials not found" is `Ok(None)`.
pub(crate) fn run_helper(
    helper: &str,
    server: &str,
    path: Option<&OsString>,
) -> Result<Option<Credentials>, RegistryError> {
    let program = program(helper, server)?;
    let exe = candidates(&program, path)
        .find(|p| p.is_file())
        .ok_or_else(|| not_on_path(helper, server, &program))?;
    let out = spawn_with_input(&exe, server)
        .map_err(|e| helper_error(helper, server, format!("cannot run {}: {e}", exe.display())))?;
    helper_answer(helper, server, &out)
}

/// [`run_helper`] for async code: the helper runs as a `tokio::process` child, so no worker thread waits for it.
pub(crate) async fn run_helper_async(
    helper: &str,
    server: &str,
    path: Option<&OsString>,
) -> Result<Option<Credentials>, RegistryError> {
    let program = program(helper, server)?;
    let mut exe = None;
    for p in candidates(&program, path) {
        if tokio::fs::metadata(&p).await.is_ok_and(|m| m.is_file()) {
            exe = Some(p);
            break;
        }
    }
    let exe = exe.ok_or_else(|| not_on_path(helper, server, &program))?;
    let out = spawn_with_input_async(&exe, server)
        .await
        .map_err(|e| helper_error(helper, server, format!("cannot run {}: {e}", exe.display())))?;
    helper_answer(helper, server, &out)
}

/// What a helper's `get` said: credentials, "not found" (`None`), or an error.
fn helper_answer(helper: &str, server: &str, out: &std::process::Output) -> Result<Option<Credentials>, RegistryError> {
    let fail = |reason: String| helper_error(helper, server, reason);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // The helper protocol's only structured answer is this message.
        if stdout.contains("credentials not found") || stderr.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "`get` failed ({}): {}{}",
            out.status,
            stdout.trim(),
            stderr.trim()
        )));
    }
    let parsed: HelperOutput = serde_json::from_slice(&out.stdout).map_err(|e| {
        fail(format!(
            "its output is not the expected JSON {{\"Username\",\"Secret\"}}: {e}"
        ))
    })?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    if parsed.username == "<token>" {
        return Err(fail(
            "it returned an identity token, which Berth does not support; use --creds".into(),
        ));
    }
    Ok(Some(Credentials {
        username: parsed.username,
        password: parsed.secret,
    }))
}

/// `ETXTBSY`: a helper script that was just written can hit it while another thread forks; spawning is retried
/// briefly.
const ETXTBSY: i32 = 26;

/// Spawns `exe get`, writes `input` to its stdin and collects its output.
fn spawn_with_input(exe: &PathBuf, input: &str) -> std::io::Result<std::process::Output> {
    let mut tries = 0;
    let mut child = loop {
        match Command::new(exe)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading stdin closes the pipe; its exit status tells what happened.
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output()
}

/// [`spawn_with_input`] with `tokio::process`.
async fn spawn_with_input_async(exe: &PathBuf, input: &str) -> std::io::Result<std::process::Output> {
    use tokio::io::AsyncWriteExt as _;
    let mut tries = 0;
    let mut child = loop {
        match tokio::process::Command::new(exe)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    child.wait_with_output().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_user_pass() {
        let c = Credentials::parse("me:p:a:ss").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "p:a:ss"));
        assert!(Credentials::parse("nopass").is_err());
        assert!(Credentials::parse(":pw").is_err());
        assert_eq!(Credentials::parse("u:").unwrap().password, "");
        assert!(!format!("{c:?}").contains("p:a:ss"));
    }

    #[test]
    fn auth_field_decoding() {
        let c = Credentials::from_auth_field("dXNlcjpwYXNz").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pass"));
        assert!(Credentials::from_auth_field("dXNlcjpwYXNz").is_some());
        assert!(Credentials::from_auth_field("dXNlcg==").is_none(), "no colon");
        assert!(Credentials::from_auth_field("!!!").is_none());
        assert_eq!(Credentials::parse("a:b").unwrap().basic_header(), "Basic YTpi");
    }
}
