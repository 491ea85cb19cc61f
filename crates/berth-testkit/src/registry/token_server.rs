//! The token server behind [`TestRegistry::token`](super::TestRegistry::token): HTTP/1.1 on 127.0.0.1, one
//! connection at a time, issuing ES256 JWTs with the signing certificate in `x5c`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use super::{TOKEN_ISSUER, TOKEN_SERVICE};

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
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default();
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
            name.eq_ignore_ascii_case("authorization")
                .then(|| STANDARD.decode(encoded.trim()).ok())?
        });
        let user_pass = basic.map(|raw| String::from_utf8_lossy(&raw).into_owned());
        let user = user_pass
            .as_deref()
            .map(|up| up.split(':').next().unwrap_or_default().to_owned());
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
        respond(
            &mut conn,
            "200 OK",
            &serde_json::json!({"token": token, "expires_in": 300}).to_string(),
        )
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
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
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
