//! Finding credentials for a registry: explicit options, then containers-auth.json / docker config files and the
//! credential helpers they name.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ClientOptions;
use crate::credentials::{Credentials, run_helper, run_helper_async};
use crate::endpoint::DOCKER_HUB_ALIASES;
use crate::error::RegistryError;

/// Auth files larger than this are refused.
const MAX_AUTHFILE_SIZE: u64 = 4 * 1024 * 1024;

/// The environment the lookup reads (separate so tests need not change the process environment).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthEnv {
    pub registry_auth_file: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub path: Option<OsString>,
}

impl AuthEnv {
    pub(crate) fn from_process() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        AuthEnv {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            docker_config: var("DOCKER_CONFIG"),
            home: var("HOME"),
            path: std::env::var_os("PATH"),
        }
    }

    /// The files to search, in order: the explicit auth file or `$REGISTRY_AUTH_FILE`, then
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    fn files(&self, explicit: Option<&Path>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(p) = explicit
            .map(Path::to_path_buf)
            .or_else(|| self.registry_auth_file.clone())
        {
            out.push(p);
        }
        if let Some(dir) = &self.xdg_runtime_dir {
            out.push(dir.join("containers/auth.json"));
        }
        match (&self.docker_config, &self.home) {
            (Some(dir), _) => out.push(dir.join("config.json")),
            (None, Some(home)) => out.push(home.join(".docker/config.json")),
            (None, None) => {}
        }
        out
    }
}

#[derive(Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials to use for `host`: `opts.credentials` if set; otherwise the first auth file (see
/// [`ClientOptions::authfile`]) that knows the host, through `credHelpers`, an `auths` entry or `credsStore`, in
/// that order. Keys may be written `host`, `https://host`, `http://host/…` or `host/`; Docker Hub's names
/// (`docker.io`, `index.docker.io`, `https://index.docker.io/v1/`, `registry-1.docker.io`) are one registry.
/// Missing files are skipped; unreadable or malformed ones are errors naming the file.
///
/// This blocks while a `docker-credential-*` helper runs: call it from synchronous code (or a blocking thread).
/// [`Registry::new`](crate::Registry::new) does not call it; it runs helpers the first time the registry asks for
/// credentials, without blocking the async runtime.
pub fn lookup_credentials(host: &str, opts: &ClientOptions) -> Result<Option<Credentials>, RegistryError> {
    lookup_with(host, opts, &AuthEnv::from_process())
}

pub(crate) fn lookup_with(
    host: &str,
    opts: &ClientOptions,
    env: &AuthEnv,
) -> Result<Option<Credentials>, RegistryError> {
    let found = CredentialSource::locate(host, opts, env)?;
    for candidate in &found.candidates {
        let answer = match candidate {
            Candidate::Known(c) => return Ok(Some(c.clone())),
            Candidate::Helper { name, store } => {
                store_answer(*store, host, run_helper(name, host, found.path.as_ref()))
            }
        };
        if let Some(c) = answer? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Where a registry's credentials are to be found, settled from the options and auth files without running any
/// helper: the helpers run when credentials are first needed ([`CredentialSource::resolve`]).
#[derive(Debug, Clone)]
pub(crate) struct CredentialSource {
    host: String,
    /// In order; the first that gives credentials wins.
    candidates: Vec<Candidate>,
    /// The `PATH` helpers are searched on.
    path: Option<OsString>,
}

#[derive(Debug, Clone)]
enum Candidate {
    /// Explicit or from an `auths` entry.
    Known(Credentials),
    /// A `docker-credential-*` helper from `credHelpers`, or the default `credsStore`.
    Helper { name: String, store: bool },
}

impl CredentialSource {
    /// Reads the auth files (small; errors name the file) and notes the helpers to ask.
    pub(crate) fn from_options(host: &str, opts: &ClientOptions) -> Result<Self, RegistryError> {
        Self::locate(host, opts, &AuthEnv::from_process())
    }

    pub(crate) fn locate(host: &str, opts: &ClientOptions, env: &AuthEnv) -> Result<Self, RegistryError> {
        let mut candidates = Vec::new();
        if let Some(c) = &opts.credentials {
            candidates.push(Candidate::Known(c.clone()));
        } else {
            for path in env.files(opts.authfile.as_deref()) {
                let Some(file) = read_file(&path)? else { continue };
                if let Some(found) = from_file(&file, host, &path)? {
                    tracing::debug!(host, file = %path.display(), "credentials for the host are in this auth file");
                    let known = matches!(found, Candidate::Known(_));
                    candidates.push(found);
                    if known {
                        break;
                    }
                }
            }
        }
        Ok(CredentialSource {
            host: host.to_owned(),
            candidates,
            path: env.path.clone(),
        })
    }

    /// The credentials, running helpers as `tokio::process` children.
    pub(crate) async fn resolve(&self) -> Result<Option<Credentials>, RegistryError> {
        for candidate in &self.candidates {
            let answer = match candidate {
                Candidate::Known(c) => return Ok(Some(c.clone())),
                Candidate::Helper { name, store } => store_answer(
                    *store,
                    &self.host,
                    run_helper_async(name, &self.host, self.path.as_ref()).await,
                ),
            };
            if let Some(c) = answer? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// The store is a default for every host, most of which need no credentials: a store that cannot answer is a
/// warning and the request goes anonymous (as skopeo), whereas a helper named for this host must work.
fn store_answer(
    store: bool,
    host: &str,
    answer: Result<Option<Credentials>, RegistryError>,
) -> Result<Option<Credentials>, RegistryError> {
    match answer {
        Err(e @ RegistryError::CredentialHelper { .. }) if store => {
            tracing::warn!("{e}; going on without credentials for {host}");
            Ok(None)
        }
        other => other,
    }
}

fn read_file(path: &Path) -> Result<Option<AuthFile>, RegistryError> {
    let fail = |reason: String| RegistryError::Authfile {
        path: path.to_owned(),
        reason,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    if meta.len() > MAX_AUTHFILE_SIZE {
        return Err(fail(format!(
            "larger than {MAX_AUTHFILE_SIZE} bytes; is it the right file?"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        fail(format!(
            "not valid auth JSON ({{\"auths\": {{HOST: {{\"auth\": BASE64}}}}}}): {e}"
        ))
    })
}

fn from_file(file: &AuthFile, host: &str, path: &Path) -> Result<Option<Candidate>, RegistryError> {
    if let Some(helper) = find(&file.cred_helpers, host) {
        return Ok(Some(Candidate::Helper {
            name: helper.clone(),
            store: false,
        }));
    }
    if let Some(entry) = find(&file.auths, host) {
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            return Credentials::from_auth_field(auth)
                .map(|c| Some(Candidate::Known(c)))
                .ok_or_else(|| RegistryError::Authfile {
                    path: path.to_owned(),
                    reason: format!("the \"auth\" value for {host} is not base64 of USER:PASSWORD"),
                });
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password)
            && !u.is_empty()
        {
            return Ok(Some(Candidate::Known(Credentials {
                username: u.clone(),
                password: p.clone(),
            })));
        }
    }
    Ok(file
        .creds_store
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|store| Candidate::Helper {
            name: store.clone(),
            store: true,
        }))
}

/// The entry for `host`: an exact key first, then any key that normalizes to the host.
fn find<'a, V>(map: &'a BTreeMap<String, V>, host: &str) -> Option<&'a V> {
    map.get(host).or_else(|| {
        let want = normalize(host);
        map.iter().find(|(k, _)| normalize(k) == want).map(|(_, v)| v)
    })
}

/// `https://Host:5000/v1/` → `host:5000`; Docker Hub's names → `docker.io`.
fn normalize(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or_default().to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&k.as_str()) {
        "docker.io".to_owned()
    } else {
        k
    }
}

#[cfg(test)]
mod tests;

/// The auth file `login` writes and `logout` edits, as podman and skopeo choose it: `explicit` (`--authfile`),
/// else `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `/run/containers/UID/auth.json`.
pub fn login_authfile(explicit: Option<&Path>) -> PathBuf {
    let env = AuthEnv::from_process();
    if let Some(p) = explicit.map(Path::to_path_buf).or(env.registry_auth_file) {
        return p;
    }
    match env.xdg_runtime_dir {
        Some(dir) => dir.join("containers/auth.json"),
        None => {
            use std::os::unix::fs::MetadataExt;
            let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
            PathBuf::from(format!("/run/containers/{uid}/auth.json"))
        }
    }
}

/// The key of `host` in an auth file's `auths` (Docker Hub under `docker.io`, as podman writes it).
fn auths_key(host: &str) -> String {
    if DOCKER_HUB_ALIASES.contains(&host) {
        "docker.io".to_owned()
    } else {
        host.to_owned()
    }
}

fn read_authfile(file: &Path) -> Result<serde_json::Map<String, serde_json::Value>, RegistryError> {
    let bad = |reason: String| RegistryError::Authfile {
        path: file.to_owned(),
        reason,
    };
    match std::fs::metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(serde_json::Map::new()),
        Err(e) => return Err(bad(e.to_string())),
        Ok(m) if m.len() > MAX_AUTHFILE_SIZE => return Err(bad(format!("larger than {MAX_AUTHFILE_SIZE} bytes"))),
        Ok(_) => {}
    }
    let bytes = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("not a JSON object".into())),
        Err(e) => Err(bad(format!("not JSON: {e}"))),
    }
}

/// Writes `doc` to `file` (mode 0600, its directory created 0700) through a temporary file and a rename, so a
/// crash leaves the old file or the new one.
fn write_authfile(file: &Path, doc: &serde_json::Map<String, serde_json::Value>) -> Result<(), RegistryError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let bad = |reason: String| RegistryError::Authfile {
        path: file.to_owned(),
        reason,
    };
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| bad(format!("creating {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let text = serde_json::to_vec_pretty(doc).expect("JSON values serialize");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(bad(e.to_string()));
    }
    Ok(())
}

/// Records `user`'s credentials for `host` in `file` (the `auths` entry podman and skopeo write: base64 of
/// `user:password`), keeping everything else the file holds.
pub fn store_credentials(file: &Path, host: &str, user: &str, password: &str) -> Result<(), RegistryError> {
    use base64::Engine;
    let mut doc = read_authfile(file)?;
    let auths = doc
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !auths.is_object() {
        *auths = serde_json::Value::Object(serde_json::Map::new());
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    auths
        .as_object_mut()
        .expect("an object")
        .insert(auths_key(host), serde_json::json!({ "auth": token }));
    write_authfile(file, &doc)
}

/// Removes the credentials of `host` (every host's with `None`) from `file`. Returns whether there were any.
pub fn remove_credentials(file: &Path, host: Option<&str>) -> Result<bool, RegistryError> {
    let mut doc = read_authfile(file)?;
    let Some(auths) = doc.get_mut("auths").and_then(serde_json::Value::as_object_mut) else {
        return Ok(false);
    };
    let removed = match host {
        None => {
            let any = !auths.is_empty();
            auths.clear();
            any
        }
        Some(h) => {
            let key = auths_key(h);
            // Also the spellings readers accept: https://HOST, HOST/…
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| {
                    let bare = k.trim_start_matches("https://").trim_start_matches("http://");
                    let bare = bare.split('/').next().unwrap_or(bare);
                    bare == key || (key == "docker.io" && DOCKER_HUB_ALIASES.contains(&bare))
                })
                .cloned()
                .collect();
            for k in &keys {
                auths.remove(k);
            }
            !keys.is_empty()
        }
    };
    if removed {
        write_authfile(file, &doc)?;
    }
    Ok(removed)
}
