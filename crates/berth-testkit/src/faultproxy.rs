//! A fault-injecting HTTP proxy for registry tests: it sits on 127.0.0.1 in front of a real registry, forwards
//! requests, and breaks chosen responses — cut bodies, lying digests, 429/5xx, ignored `Range`, a slow trickle,
//! redirects — while logging every request it saw (with its headers), so tests can assert what a client sent.
//!
//! Requests are forwarded one per upstream connection (`Connection: close`) and responses buffered, which is fine
//! for test-sized blobs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching response.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Send the headers and only `n` bytes of the body, then close.
    CutBody(usize),
    /// Forward without the `Range` header (the registry answers 200 with the whole body).
    IgnoreRange,
    /// Replace the `Docker-Content-Digest` header.
    LieDigest(String),
    /// Remove the `Docker-Content-Digest` header.
    DropDigest,
    /// Flip one byte of the body.
    CorruptBody,
    /// Answer with this status (and optional `Retry-After`) instead of forwarding.
    Status(u16, Option<String>),
    /// Send the body at this many bytes per second.
    Trickle(usize),
    /// Answer `307` to this location (`{path}` is replaced by the request path and query).
    Redirect(String),
    /// Reset the connection after sending half the body.
    Reset,
    /// Forward the request with only the first `n` bytes of its body, then close the upstream connection and the
    /// client's without an answer: an upload that broke off midway, the registry holding part of it.
    CutRequest(usize),
}

/// A rule: the first `times` requests whose method and path contain the given strings get the fault.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Method to match (`GET`, `HEAD`, …), or empty for any.
    pub method: String,
    /// Substring of the request target.
    pub path_contains: String,
    /// How many matching requests are affected.
    pub times: usize,
    /// The fault.
    pub fault: Fault,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Target (path and query).
    pub target: String,
    /// Headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The status returned to the client (0: none, the connection was closed).
    pub status: u16,
}

/// The running proxy; stopped on drop.
#[derive(Debug)]
pub struct FaultProxy {
    /// `127.0.0.1:PORT` of the proxy.
    pub addr: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    load: Arc<Load>,
}

/// Requests being answered now, and the most there ever were at once.
#[derive(Debug, Default)]
struct Load {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Counts one request as in flight until dropped.
struct InFlight<'a>(&'a Load);

impl<'a> InFlight<'a> {
    fn new(load: &'a Load) -> Self {
        let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
        load.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(load)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        listener.set_nonblocking(true)?;
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let load = Arc::new(Load::default());
        let (r, l, s, up, ld) = (
            rules.clone(),
            log.clone(),
            stop.clone(),
            upstream.to_owned(),
            load.clone(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, l, up, ld) = (r.clone(), l.clone(), up.clone(), ld.clone());
                        std::thread::spawn(move || {
                            let _ = serve(conn, &up, &r, &l, &ld);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(FaultProxy {
            addr,
            rules,
            log,
            stop,
            load,
        })
    }

    /// Adds a rule.
    pub fn add(&self, method: &str, path_contains: &str, times: usize, fault: Fault) {
        self.rules.lock().expect("rules").push(Rule {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            times,
            fault,
        });
    }

    /// Removes all rules.
    pub fn clear(&self) {
        self.rules.lock().expect("rules").clear();
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().expect("log").clone()
    }

    /// The most requests that were being answered at the same time (from reading the request to sending the
    /// last byte of the response): above 1 only for a client that works in parallel.
    pub fn peak_in_flight(&self) -> usize {
        self.load.peak.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Header lines up to the blank line, names lowercased.
fn read_headers(r: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = read_headers(r)?;
    let body = if is_chunked(&headers) {
        // Forwarded with a Content-Length instead.
        headers.retain(|(k, _)| k != "transfer-encoding");
        let body = read_chunked(r)?;
        headers.push(("content-length".into(), body.len().to_string()));
        body
    } else {
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
    }))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"))
}

/// Reads a `Transfer-Encoding: chunked` body (and its trailers).
fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(|_| std::io::Error::other("bad chunk size"))?;
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if r.read_line(&mut trailer)? == 0 || trailer.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn forward(up: &str, req: &Request, drop_range: bool) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(up)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if k == "connection" || (drop_range && k == "range") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(&req.body)?;
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line)?;
    let mut it = status_line.trim_end().splitn(3, ' ');
    let _ = it.next();
    let status: u16 = it.next().and_then(|c| c.parse().ok()).unwrap_or(502);
    let reason = it.next().unwrap_or("").to_owned();
    let mut headers = read_headers(&mut r)?;
    let mut body = Vec::new();
    let no_body = req.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    if !no_body && is_chunked(&headers) {
        // The client gets a Content-Length instead.
        headers.retain(|(k, _)| k != "transfer-encoding");
        body = read_chunked(&mut r)?;
    } else if !no_body {
        let len: Option<usize> = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok());
        match len {
            Some(n) => {
                body.resize(n, 0);
                r.read_exact(&mut body)?;
            }
            None => {
                r.read_to_end(&mut body)?;
            }
        }
    }
    Ok(Response {
        status,
        reason,
        headers,
        body,
    })
}

/// Sends `req` upstream with its body cut after `n` bytes, waits for the upstream to take them, and hangs up.
fn cut_request(up: &str, req: &Request, n: usize) -> std::io::Result<()> {
    let mut s = TcpStream::connect(up)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(&req.body[..n.min(req.body.len())])?;
    s.flush()?;
    std::thread::sleep(Duration::from_millis(200));
    s.shutdown(Shutdown::Both)
}

fn take_fault(rules: &Mutex<Vec<Rule>>, req: &Request) -> Option<Fault> {
    let mut rules = rules.lock().expect("rules");
    let rule = rules.iter_mut().find(|r| {
        r.times > 0 && (r.method.is_empty() || r.method == req.method) && req.target.contains(&r.path_contains)
    })?;
    rule.times -= 1;
    Some(rule.fault.clone())
}

fn serve(
    conn: TcpStream,
    up: &str,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<Seen>>,
    load: &Load,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    while let Some(req) = read_request(&mut reader)? {
        let _in_flight = InFlight::new(load);
        let fault = take_fault(rules, &req);
        if let Some(Fault::CutRequest(n)) = fault {
            cut_request(up, &req, n)?;
            log.lock().expect("log").push(Seen {
                method: req.method.clone(),
                target: req.target.clone(),
                headers: req.headers.clone(),
                status: 0,
            });
            let _ = rustix::net::sockopt::set_socket_linger(&out, Some(Duration::ZERO));
            return Ok(());
        }
        let mut resp = match &fault {
            Some(Fault::Status(code, retry_after)) => {
                let mut headers = vec![("content-length".to_owned(), "0".to_owned())];
                if let Some(ra) = retry_after {
                    headers.push(("retry-after".into(), ra.clone()));
                }
                Response {
                    status: *code,
                    reason: "Injected".into(),
                    headers,
                    body: Vec::new(),
                }
            }
            Some(Fault::Redirect(to)) => Response {
                status: 307,
                reason: "Temporary Redirect".into(),
                headers: vec![
                    ("location".into(), to.replace("{path}", &req.target)),
                    ("content-length".into(), "0".into()),
                ],
                body: Vec::new(),
            },
            _ => forward(up, &req, matches!(fault, Some(Fault::IgnoreRange)))?,
        };
        match &fault {
            Some(Fault::LieDigest(d)) => {
                resp.headers.retain(|(k, _)| k != "docker-content-digest");
                resp.headers.push(("docker-content-digest".into(), d.clone()));
            }
            Some(Fault::DropDigest) => resp.headers.retain(|(k, _)| k != "docker-content-digest"),
            Some(Fault::CorruptBody) if !resp.body.is_empty() => {
                let mid = resp.body.len() / 2;
                resp.body[mid] ^= 0xff;
            }
            _ => {}
        }
        log.lock().expect("log").push(Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            headers: req.headers.clone(),
            status: resp.status,
        });
        resp.headers
            .retain(|(k, _)| k != "connection" && k != "transfer-encoding");
        if !resp.headers.iter().any(|(k, _)| k == "content-length") {
            resp.headers
                .push(("content-length".into(), resp.body.len().to_string()));
        }
        let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, resp.reason);
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        match fault {
            Some(Fault::CutBody(n)) => {
                out.write_all(&resp.body[..n.min(resp.body.len())])?;
                out.flush()?;
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::Reset) => {
                out.write_all(&resp.body[..resp.body.len() / 2])?;
                out.flush()?;
                // Dropping with unread data makes the kernel send RST.
                let _ = rustix::net::sockopt::set_socket_linger(&out, Some(Duration::ZERO));
                return Ok(());
            }
            Some(Fault::Trickle(rate)) => {
                let chunk = rate.max(1) / 10 + 1;
                for c in resp.body.chunks(chunk) {
                    out.write_all(c)?;
                    out.flush()?;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            _ => out.write_all(&resp.body)?,
        }
        out.flush()?;
    }
    Ok(())
}
