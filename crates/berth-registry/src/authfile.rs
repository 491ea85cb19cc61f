//! Finding credentials for a registry: explicit options, then containers-auth.json / docker config files and the
//! credential helpers they name.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ClientOptions;
use crate::credentials::{Credentials, run_helper};
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
pub fn lookup_credentials(host: &str, opts: &ClientOptions) -> Result<Option<Credentials>, RegistryError> {
    lookup_with(host, opts, &AuthEnv::from_process())
}

pub(crate) fn lookup_with(
    host: &str,
    opts: &ClientOptions,
    env: &AuthEnv,
) -> Result<Option<Credentials>, RegistryError> {
    if let Some(c) = &opts.credentials {
        return Ok(Some(c.clone()));
    }
    for path in env.files(opts.authfile.as_deref()) {
        let Some(file) = read_file(&path)? else { continue };
        if let Some(c) = from_file(&file, host, &path, env)? {
            tracing::debug!(host, file = %path.display(), "using credentials from auth file");
            return Ok(Some(c));
        }
    }
    Ok(None)
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

fn from_file(file: &AuthFile, host: &str, path: &Path, env: &AuthEnv) -> Result<Option<Credentials>, RegistryError> {
    if let Some(helper) = find(&file.cred_helpers, host) {
        return run_helper(helper, host, env.path.as_ref());
    }
    if let Some(entry) = find(&file.auths, host) {
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            return Credentials::from_auth_field(auth)
                .map(Some)
                .ok_or_else(|| RegistryError::Authfile {
                    path: path.to_owned(),
                    reason: format!("the \"auth\" value for {host} is not base64 of USER:PASSWORD"),
                });
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password)
            && !u.is_empty()
        {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
    }
    // The store is a default for every host, most of which need no credentials: a store that cannot answer is a
    // warning and the request goes anonymous (as skopeo), whereas a helper named for this host must work.
    match &file.creds_store {
        Some(store) if !store.is_empty() => match run_helper(store, host, env.path.as_ref()) {
            Err(e @ RegistryError::CredentialHelper { .. }) => {
                tracing::warn!("{e}; going on without credentials for {host}");
                Ok(None)
            }
            other => other,
        },
        _ => Ok(None),
    }
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
