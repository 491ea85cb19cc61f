//! A real registry for black-box tests: Debian's `docker-registry` (CNCF distribution 2.8) serving on 127.0.0.1
//! with a random free port and storage in a temporary directory (deletes enabled), without authentication, with
//! htpasswd Basic authentication, or with token authentication backed by a small token server of our own.
//!
//! The token server ([`TokenServer`], also on 127.0.0.1) checks Basic credentials and grants exactly the scopes
//! requested, as ES256 JWTs carrying their signing certificate in the `x5c` header; the registry trusts that
//! self-signed certificate through `rootcertbundle`. Anonymous token requests get a token with no access.
//!
//! ```no_run
//! let registry = berth_testkit::registry::TestRegistry::anonymous().unwrap();
//! println!("push to {}/my/repo", registry.host());
//! ```

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use crate::tools::{require, run};

/// The `service` the registry and the token server agree on.
pub const TOKEN_SERVICE: &str = "berth-test-registry";
/// The JWT issuer the registry trusts.
pub const TOKEN_ISSUER: &str = "berth-test-token-issuer";

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum RegistryAuth {
    /// No authentication.
    Anonymous,
    /// htpasswd (bcrypt) Basic authentication with one user.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Token authentication through a [`TokenServer`] that knows one user.
    Token {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

/// A running registry, stopped (by PID) when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    token: Option<TokenServer>,
}

impl TestRegistry {
    /// A registry without authentication.
    pub fn anonymous() -> Result<Self> {
        Self::start(RegistryAuth::Anonymous)
    }

    /// A registry with Basic authentication for `user`/`password`.
    pub fn basic(user: &str, password: &str) -> Result<Self> {
        Self::start(RegistryAuth::Basic {
            user: user.into(),
            password: password.into(),
        })
    }

    /// A registry with token authentication for `user`/`password`.
    pub fn token(user: &str, password: &str) -> Result<Self> {
        Self::start(RegistryAuth::Token {
            user: user.into(),
            password: password.into(),
        })
    }

    /// Starts a registry and waits until `GET /v2/` answers.
    pub fn start(auth: RegistryAuth) -> Result<Self> {
        let exe = require("docker-registry")?;
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir()?;
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)?;
        let (auth_yaml, token) = match &auth {
            RegistryAuth::Anonymous => (String::new(), None),
            RegistryAuth::Basic { user, password } => {
                let htpasswd = dir.path().join("htpasswd");
                let line = crate::tools::stdout(Command::new(require("htpasswd")?).args(["-Bbn", user, password]))?;
                fs::write(&htpasswd, line.trim_end().to_owned() + "\n")?;
                let yaml = format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", quoted(&htpasswd));
                (yaml, None)
            }
            RegistryAuth::Token { user, password } => {
                let keys = make_signing_key(dir.path())?;
                let server = TokenServer::start(user, password, &keys.pkcs8_der, &keys.cert_der)?;
                let yaml = format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    \
                     issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.port(),
                    quoted(&keys.cert_pem)
                );
                (yaml, Some(server))
            }
        };
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let config = dir.path().join("config.yml");
            fs::write(&config, config_yaml(port, &storage, &auth_yaml))?;
            let log = fs::File::create(dir.path().join("registry.log"))?;
            let mut child = Command::new(&exe)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", exe.display()))?;
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    return Ok(TestRegistry {
                        child,
                        port,
                        dir,
                        token,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
                    if !log.contains("address already in use") {
                        bail!("docker-registry did not start: {e}\n--- registry log ---\n{log}");
                    }
                    last_error = Some(e);
                }
            }
        }
        bail!("docker-registry could not find a free port: {last_error:?}")
    }

    /// `127.0.0.1:PORT`, to use as the registry host of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The token server, for token-authenticated registries.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_yaml(port: u16, storage: &Path, auth: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
         delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  \
         addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n{auth}",
        quoted(storage)
    )
}

/// A YAML double-quoted string for a path.
fn quoted(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).expect("strings serialize")
}

/// Waits until `GET /v2/` answers 200 or 401, or the process exits.
fn wait_ready(child: &mut Child, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("it exited with {status}");
        }
        if let Ok(status) = probe(port)
            && (status == 200 || status == 401)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("GET /v2/ did not answer 200 or 401 within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The status code of `GET /v2/` on 127.0.0.1:`port`.
fn probe(port: u16) -> Result<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    Ok(text.get(9..12).unwrap_or_default().parse()?)
}

/// An EC P-256 key (PKCS#8 DER) and its self-signed certificate (PEM file and DER), made with `openssl`.
struct SigningKey {
    pkcs8_der: Vec<u8>,
    cert_der: Vec<u8>,
    cert_pem: PathBuf,
}

fn make_signing_key(dir: &Path) -> Result<SigningKey> {
    let openssl = require("openssl")?;
    let (key_pem, cert_pem) = (dir.join("token.key"), dir.join("token.crt"));
    let (key_der, cert_der) = (dir.join("token.key.der"), dir.join("token.crt.der"));
    run(Command::new(&openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj"])
        .arg(format!("/CN={TOKEN_ISSUER}"))
        .arg("-keyout")
        .arg(&key_pem)
        .arg("-out")
        .arg(&cert_pem))?;
    run(Command::new(&openssl)
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(&key_pem)
        .arg("-out")
        .arg(&key_der))?;
    run(Command::new(&openssl)
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert_pem)
        .arg("-out")
        .arg(&cert_der))?;
    Ok(SigningKey {
        pkcs8_der: fs::read(&key_der)?,
        cert_der: fs::read(&cert_der)?,
        cert_pem,
    })
}

/// One request the token server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The Basic user name, `None` for anonymous requests.
    pub user: Option<String>,
    /// The `scope` parameters, as sent.
    pub scopes: Vec<String>,
    /// Whether the credentials were accepted (anonymous requests are answered, with no access).
    pub authenticated: bool,
}

/// A minimal token server (HTTP/1.1, one connection at a time) on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    thread: Option<JoinHandle<()>>,
}

struct Issuer {
    user: String,
    password: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// base64 (standard) of the DER certificate, for the `x5c` header.
    x5c: String,
    serial: AtomicU64,
}

impl TokenServer {
    /// Serves tokens for `user`/`password`, signed with the P-256 key `pkcs8_der` whose certificate is `cert_der`.
    pub fn start(user: &str, password: &str, pkcs8_der: &[u8], cert_der: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8_der, &rng)
            .map_err(|e| anyhow!("the token signing key is not a P-256 PKCS#8 key: {e}"))?;
        let issuer = Issuer {
            user: user.to_owned(),
            password: password.to_owned(),
            key,
            rng,
            x5c: STANDARD.encode(cert_der),
            serial: AtomicU64::new(0),
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = issuer.serve(conn, &requests2);
                }
            }
        });
        Ok(TokenServer {
            port,
            stop,
            requests,
            thread: Some(thread),
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Issuer {
    fn serve(&self, mut conn: TcpStream, log: &Mutex<Vec<TokenRequest>>) -> Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let head = read_head(&mut conn)?;
        let target = head.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default();
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let scopes: Vec<String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == "scope")
            .map(|(_, v)| percent_decode(v))
            .collect();
        let basic = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let encoded = value.trim().strip_prefix("Basic ")?;
            name.eq_ignore_ascii_case("authorization").then(|| STANDARD.decode(encoded.trim()).ok())?
        });
        let user_pass = basic.map(|raw| String::from_utf8_lossy(&raw).into_owned());
        let user = user_pass.as_deref().map(|up| up.split(':').next().unwrap_or_default().to_owned());
        let authenticated = user_pass.as_deref() == Some(format!("{}:{}", self.user, self.password).as_str());
        if let Ok(mut l) = log.lock() {
            l.push(TokenRequest {
                user: user.clone(),
                scopes: scopes.clone(),
                authenticated,
            });
        }
        if user_pass.is_some() && !authenticated {
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid user name or password"}]}"#;
            return respond(&mut conn, "401 Unauthorized", body);
        }
        let granted = if authenticated { scopes.as_slice() } else { &[] };
        let token = self.jwt(user.as_deref().unwrap_or_default(), granted)?;
        respond(&mut conn, "200 OK", &serde_json::json!({"token": token, "expires_in": 300}).to_string())
    }

    /// An ES256 JWT granting `scopes` (`TYPE:NAME:ACTIONS`).
    fn jwt(&self, subject: &str, scopes: &[String]) -> Result<String> {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("berth-{}", self.serial.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| anyhow!("signing failed: {e}"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// Reads a request head (up to the blank line, at most 64 KiB).
fn read_head(conn: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 64 * 1024 || conn.read(&mut byte)? == 0 {
            bail!("incomplete request head");
        }
        buf.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) -> Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(conn.flush()?)
}

/// Decodes `%XX` escapes and `+` in a query value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
