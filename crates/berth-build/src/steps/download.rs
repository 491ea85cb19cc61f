//! `ADD URL`: a file fetched over HTTP(S) into the step (never extracted), mode 0600, its modification time from
//! `Last-Modified` when the server gives one, and checked against `--checksum` when given.

use std::path::{Path, PathBuf};

use berth_spec::{Digest, Hasher};

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct DownloadError {
    /// The URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// The file name a URL gives (its last path segment), for a destination directory.
pub fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.split_once("://").map_or(path, |(_, rest)| rest);
    let name = after_host
        .split_once('/')
        .map_or("", |(_, p)| p)
        .rsplit('/')
        .next()
        .unwrap_or("");
    if name.is_empty() {
        "index.html".to_owned()
    } else {
        name.to_owned()
    }
}

/// Downloads `url` into `dir/name`; returns the file's path.
pub fn download(url: &str, dir: &Path, name: &str, checksum: Option<&Digest>) -> Result<PathBuf, DownloadError> {
    let fail = |reason: String| DownloadError {
        url: url.to_owned(),
        reason,
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(fail("ADD fetches http:// and https:// URLs only".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let path = dir.join(name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let (bytes, modified) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .user_agent(concat!("berth-build/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(berth_spec::error_chain(&e)))?;
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(berth_spec::error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let bytes = resp.bytes().await.map_err(|e| fail(berth_spec::error_chain(&e)))?;
        Ok((bytes, modified))
    })?;
    if let Some(want) = checksum {
        let mut h = Hasher::new(want.algorithm());
        h.update(&bytes);
        let found = h.finish();
        if &found != want {
            return Err(fail(format!(
                "has checksum {found}, not the {want} --checksum asks for"
            )));
        }
    }
    std::fs::write(&path, &bytes).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    if let Some(t) = modified {
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(|e| fail(e.to_string()))?;
        f.set_modified(t).map_err(|e| fail(e.to_string()))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_urls() {
        assert_eq!(file_name("http://h/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(file_name("https://h:8080/"), "index.html");
        assert_eq!(file_name("http://h"), "index.html");
    }
}
