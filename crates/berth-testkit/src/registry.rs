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
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools::{require, run};

mod token_server;

pub use token_server::{TokenRequest, TokenServer};

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
                let yaml = format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    quoted(&htpasswd)
                );
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
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
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
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
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
