//! `sync`: copy every tag of a repository, every image of a layout, or a YAML list of images (skopeo's format)
//! into a registry namespace or a layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_spec::Digest;
use berth_spec::reference::{DockerReference, ImageRef};

use berth_transfer::{CopyError, CopyOptions, Endpoints, Progress, copy_between};

/// What to sync from.
#[derive(Debug, Clone)]
pub enum SyncSource {
    /// Every tag of `docker://HOST/REPO` (`true`), or only the tag or digest given (`false`).
    Registry(DockerReference, bool),
    /// Every named image of a layout.
    Layout(PathBuf),
    /// A skopeo-style YAML file: `HOST: { images: { REPO: [TAGS…] (empty = all) }, tls-verify: BOOL, credentials: {username, password} }`.
    Yaml(PathBuf),
}

/// Where to sync to.
#[derive(Debug, Clone)]
pub enum SyncDest {
    /// `docker://HOST/PREFIX`: images land at `HOST/PREFIX/<last path component of the source repo>:TAG`.
    Registry(String),
    /// `oci:PATH`: images are named `REPO:TAG` in the layout.
    Layout(PathBuf),
}

#[derive(serde::Deserialize)]
struct YamlRegistry {
    #[serde(default)]
    images: BTreeMap<String, Vec<String>>,
    #[serde(rename = "tls-verify")]
    tls_verify: Option<bool>,
    credentials: Option<YamlCreds>,
}

#[derive(serde::Deserialize)]
struct YamlCreds {
    username: String,
    password: String,
}

/// One image synced: (source, destination, digest).
pub type Synced = (String, String, Digest);

/// Runs a sync; stops at the first failing image (its error names it).
pub async fn sync(
    endpoints: &Endpoints,
    src: &SyncSource,
    dst: &SyncDest,
    opts: &CopyOptions,
    progress: Arc<dyn Progress>,
) -> Result<Vec<Synced>, CopyError> {
    let mut jobs: Vec<(Endpoints, ImageRef, String)> = Vec::new();
    match src {
        SyncSource::Registry(r, all_tags) => {
            if let Some(d) = r.digest() {
                return Err(CopyError::usage(format!(
                    "sync {r}: sync takes a repository (every tag) or REPOSITORY:TAG, not a digest ({d}); to copy \
                     one image by digest, use `berth-copy copy`"
                )));
            }
            let tags = match (all_tags, r.tag()) {
                (false, Some(t)) => vec![t.to_owned()],
                _ => {
                    crate::inspect::list_tags(endpoints, &ImageRef::Docker(r.clone()))
                        .await?
                        .1
                }
            };
            for t in tags {
                let img = DockerReference::parse_normalized(&format!("{}:{t}", r.name()))
                    .map_err(|e| CopyError::usage(berth_spec::error_chain(&e)))?;
                jobs.push((
                    endpoints.clone(),
                    ImageRef::Docker(img),
                    format!("{}:{t}", r.repository()),
                ));
            }
        }
        SyncSource::Layout(path) => {
            let layout = berth_spec::layout::Layout::open(path)?;
            for (name, _) in layout.refs()? {
                jobs.push((
                    endpoints.clone(),
                    ImageRef::Oci {
                        path: path.clone(),
                        reference: Some(name.clone()),
                    },
                    name,
                ));
            }
        }
        SyncSource::Yaml(path) => jobs.extend(yaml_jobs(endpoints, path).await?),
    }
    let mut done = Vec::new();
    for (ep, image, name) in jobs {
        let target = dest_ref(dst, &name)?;
        progress.message(&format!("Copying {image} to {target}"));
        let report = copy_between(
            ep.open_source(&image)?,
            endpoints.open_dest(&target)?,
            opts,
            progress.clone(),
        )
        .await?;
        done.push((image.to_string(), target.to_string(), report.digest));
    }
    Ok(done)
}

async fn yaml_jobs(endpoints: &Endpoints, path: &Path) -> Result<Vec<(Endpoints, ImageRef, String)>, CopyError> {
    let text = std::fs::read_to_string(path).map_err(CopyError::io(path.display()))?;
    let doc = parse_yaml(&text).map_err(|e| CopyError::usage(format!("{}: {e}", path.display())))?;
    let mut jobs = Vec::new();
    for (host, reg) in doc {
        let mut ep = endpoints.clone();
        if reg.tls_verify.is_some() {
            ep.src.tls_verify = reg.tls_verify;
        }
        if let Some(c) = reg.credentials {
            ep.src.creds = Some(berth_registry::Credentials {
                username: c.username,
                password: c.password,
            });
        }
        for (repo, tags) in reg.images {
            let base = DockerReference::parse_normalized(&format!("{host}/{repo}"))
                .map_err(|e| CopyError::usage(format!("{}: {e}", path.display())))?;
            let tags = if tags.is_empty() {
                crate::inspect::list_tags(&ep, &ImageRef::Docker(base.clone())).await?.1
            } else {
                tags
            };
            for t in tags {
                let img = DockerReference::parse_normalized(&format!("{host}/{repo}:{t}"))
                    .map_err(|e| CopyError::usage(format!("{}: {e}", path.display())))?;
                jobs.push((ep.clone(), ImageRef::Docker(img), format!("{}:{t}", base.repository())));
            }
        }
    }
    Ok(jobs)
}

/// Parses a skopeo-style sync file: registry host -> what to copy from it.
fn parse_yaml(text: &str) -> Result<BTreeMap<String, YamlRegistry>, serde_norway::Error> {
    serde_norway::from_str(text)
}

fn dest_ref(dst: &SyncDest, name: &str) -> Result<ImageRef, CopyError> {
    match dst {
        SyncDest::Layout(path) => Ok(ImageRef::Oci {
            path: path.clone(),
            reference: Some(name.to_owned()),
        }),
        SyncDest::Registry(prefix) => {
            let last = name.rsplit('/').next().unwrap_or(name);
            let r = DockerReference::parse_normalized(&format!("{}/{last}", prefix.trim_end_matches('/')))
                .map_err(|e| CopyError::usage(berth_spec::error_chain(&e)))?;
            Ok(ImageRef::Docker(r))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_yaml_in_skopeo_format_parses() {
        let doc = parse_yaml(
            "registry.example.com:5000:\n  images:\n    team/app: [\"1\", \"2\"]\n    all/tags: []\n  \
             tls-verify: false\n  credentials:\n    username: u\n    password: p\nquay.io:\n  images:\n    \
             podman/stable:\n      - v5\n",
        )
        .unwrap();
        let reg = &doc["registry.example.com:5000"];
        assert_eq!(reg.images["team/app"], ["1", "2"]);
        assert!(reg.images["all/tags"].is_empty());
        assert_eq!(reg.tls_verify, Some(false));
        let creds = reg.credentials.as_ref().unwrap();
        assert_eq!((creds.username.as_str(), creds.password.as_str()), ("u", "p"));
        let quay = &doc["quay.io"];
        assert_eq!(quay.images["podman/stable"], ["v5"]);
        assert_eq!(quay.tls_verify, None);
        assert!(quay.credentials.is_none());
    }

    #[test]
    fn sync_yaml_errors_say_where() {
        // No Debug for the parsed value (it holds a password), so no unwrap_err.
        let e = parse_yaml("not: [valid")
            .err()
            .expect("an unclosed list is an error")
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = parse_yaml("host:\n  images: [a, b]\n")
            .err()
            .expect("images is a map")
            .to_string();
        assert!(e.contains("images"), "{e}");
    }
}
