//! Black-box tests of the `berth-copy` binary: it runs against a real registry (Debian's docker-registry), real
//! peers (skopeo, containerd's `ctr`) and a fault-injecting proxy, and the results are checked by reading the
//! layouts and registries directly.
//!
//! Every invocation gets a private `$HOME` (so the blob-location cache and auth files of one test never leak into
//! another, nor into the user's), and no auth file from the environment.

mod auth;
mod commands;
mod containerd;
mod conversions;
mod errors;
mod hostile;
mod interrupt;
mod multiarch;
mod roundtrip;
mod skopeo;
mod snapshots;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use berth_spec::layout::Layout;
use berth_spec::{Algorithm, Digest, media_type as mt};
use berth_testkit::image::{ImageSpec, TarBuilder, WrittenImage};
use oci_spec::image::Descriptor;
use serde_json::{Value, json};

/// A private working directory for one test, and `berth-copy` commands that live in it.
#[derive(Debug)]
pub struct Env {
    /// The directory; removed when the test ends.
    pub dir: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Env {
        let dir = tempfile::Builder::new().prefix("berth-copy-it-").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Env { dir }
    }
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    /// A path inside the test directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The private `$HOME` of the commands.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// `berth-copy ARGS` with a private `$HOME` and no ambient credentials or store.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth-copy"));
        c.args(args)
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.home())
            .env("DOCKER_CONFIG", self.home().join(".docker"))
            // Root ignores XDG_DATA_HOME (HOSTILE-INPUTS 38), so the private store is named explicitly.
            .env("BERTH_STORE", self.home().join(".local/share/berth/store"))
            .env("BERTH_CACHE", self.home().join(".cache/berth"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `berth-copy ARGS` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("berth-copy starts")
    }

    /// Runs `berth-copy ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth-copy {args:?} failed ({}):\n{}",
            out.status,
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs `berth-copy ARGS`, which must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "berth-copy {args:?} succeeded but should not have:\n{}",
            text(&out.stderr)
        );
        eprintln!("berth-copy {args:?} failed as expected:\n{}", text(&out.stderr));
        text(&out.stderr)
    }

    /// `oci:DIR[:REF]` for a directory of the test.
    pub fn oci(&self, rel: &str, reference: Option<&str>) -> String {
        match reference {
            Some(r) => format!("oci:{}:{r}", self.path(rel).display()),
            None => format!("oci:{}", self.path(rel).display()),
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Creates the layout `rel` of `env` holding busybox as `name`.
pub fn busybox_layout(env: &Env, rel: &str, name: &str) -> WrittenImage {
    let layout = Layout::create(env.path(rel)).unwrap();
    berth_testkit::busybox::write_image(&layout, name).unwrap()
}

/// Deterministic incompressible bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    berth_testkit::rng::Rng::new(seed).fill(&mut buf);
    buf
}

/// An image of `layers` layers, each holding one file of `layer_size` random bytes, for `arch`.
pub fn random_image(seed: u64, layers: usize, layer_size: usize, arch: &str) -> ImageSpec {
    let layers = (0..layers)
        .map(|i| {
            let mut t = TarBuilder::new();
            t.file(
                &format!("data-{i}"),
                0o644,
                &random_bytes(seed * 1000 + i as u64, layer_size),
            );
            t.finish()
        })
        .collect();
    ImageSpec {
        layers,
        config: json!({"Cmd": ["/bin/sh"], "Env": [format!("SEED={seed}")]}),
        architecture: arch.to_owned(),
    }
}

/// Writes an OCI index over `images` (with their platforms) into `layout` and names it `name`.
pub fn write_index(layout: &Layout, name: &str, images: &[(&WrittenImage, &str)]) -> (Digest, Vec<u8>) {
    let manifests: Vec<Value> = images
        .iter()
        .map(|(img, arch)| {
            json!({
                "mediaType": mt::OCI_MANIFEST,
                "digest": img.manifest_digest.to_string(),
                "size": img.manifest_bytes.len(),
                "platform": {"architecture": arch, "os": "linux"},
            })
        })
        .collect();
    let bytes =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": manifests})).unwrap();
    let w = layout.writer().unwrap();
    let digest = w.put_bytes(&bytes, Algorithm::Sha256).unwrap();
    let desc = Descriptor::new(mt::OCI_INDEX.into(), bytes.len() as u64, digest.to_oci());
    w.set_ref(name, &desc).unwrap();
    (digest, bytes)
}

/// The digest the layout at `dir` names `name` (or its only entry).
pub fn layout_digest(dir: &Path, name: Option<&str>) -> String {
    let desc = Layout::open(dir).unwrap().resolve(name).unwrap();
    desc.digest().to_string()
}

/// The bytes of a blob of the layout at `dir`, read straight from the file (and checked against its name).
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        Digest::sha256(&bytes).to_string(),
        digest,
        "blob {digest} of {} is corrupt",
        dir.display()
    );
    bytes
}

/// A JSON blob of a layout.
pub fn layout_json(dir: &Path, digest: &str) -> Value {
    serde_json::from_slice(&layout_blob(dir, digest)).unwrap()
}

/// Every blob file name of a layout, as digests.
pub fn layout_blobs(dir: &Path) -> BTreeSet<String> {
    let Ok(rd) = std::fs::read_dir(dir.join("blobs/sha256")) else {
        return BTreeSet::new();
    };
    rd.map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect()
}

/// The digests of a manifest's layers and its config, read from a layout.
pub fn manifest_parts(dir: &Path, manifest: &str) -> (String, Vec<String>) {
    let m = layout_json(dir, manifest);
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    (m["config"]["digest"].as_str().unwrap().to_owned(), layers)
}

/// The diffIDs of the config `config` of a layout.
pub fn diff_ids(dir: &Path, config: &str) -> Vec<String> {
    let c = layout_json(dir, config);
    c["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

/// A bare HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP request to `host` (`127.0.0.1:PORT`) — independent of berth-registry, to check what a registry
/// really holds.
pub fn http(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_with_body(method, host, path, headers, &[])
}

/// [`http`] with a request body.
pub fn http_with_body(method: &str, host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
}

/// The digest of the bytes a registry serves for `repo:reference` (computed here, not taken from a header).
pub fn registry_digest(host: &str, repo: &str, reference: &str) -> String {
    let accept = [
        mt::OCI_MANIFEST,
        mt::OCI_INDEX,
        mt::DOCKER_MANIFEST,
        mt::DOCKER_MANIFEST_LIST,
    ]
    .join(", ");
    let r = http(
        "GET",
        host,
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", &accept)],
    );
    assert_eq!(r.status, 200, "GET {repo}:{reference} from {host}: {}", text(&r.body));
    Digest::sha256(&r.body).to_string()
}

/// How many requests of `method` to paths containing `path_part` the registry logged.
pub fn logged(registry_log: &str, method: &str, path_part: &str) -> usize {
    registry_log
        .lines()
        .filter(|l| l.contains(&format!("\"{method} /v2/")) && l.contains(path_part))
        .count()
}

/// docs/cli/berth-copy.md is the reference the command line gives (regenerate it with `cargo xtask docs`).
#[test]
fn the_cli_reference_is_current() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli/berth-copy.md");
    if let Err(e) = berth_cli::docs::check_reference(std::path::Path::new(env!("CARGO_BIN_EXE_berth-copy")), &doc) {
        panic!("{e}");
    }
}
