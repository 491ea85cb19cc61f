//! `inspect` and `list-tags`.

use berth_spec::document::{self, Expect, ManifestOrIndex};
use berth_spec::platform::{self, Platform};
use berth_spec::reference::ImageRef;
use serde_json::{Value, json};

use berth_transfer::endpoint::Source;
use berth_transfer::{CopyError, Endpoints};

/// What `inspect` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InspectWhat {
    /// skopeo's summary JSON.
    Summary,
    /// The manifest (or index) bytes, exactly as stored.
    Raw,
    /// The image config, exactly as stored.
    Config,
}

/// Returns the bytes `inspect` prints.
pub async fn inspect(
    endpoints: &Endpoints,
    image: &ImageRef,
    what: InspectWhat,
    platform: Option<&Platform>,
) -> Result<Vec<u8>, CopyError> {
    let src = endpoints.open_source(image)?;
    let (bytes, media_type, digest) = src.top().await?;
    if what == InspectWhat::Raw {
        return Ok(bytes);
    }
    let label = src.label().to_owned();
    let top = document::parse_manifest_or_index(
        bytes,
        Expect::from_source(&label).with_descriptor(&digest, Some(&media_type)),
    )?;
    let want = platform.cloned().unwrap_or_else(Platform::host);
    let (manifest_digest, manifest) = match top {
        ManifestOrIndex::Manifest(m) => (digest.clone(), m),
        ManifestOrIndex::Index(idx) => {
            let child = platform::select(idx.parsed(), &want, &label)?.clone();
            let b = src.document(&child).await?;
            let d = berth_transfer::plan::digest_of(&child)?;
            let m = document::parse_manifest(
                b,
                Expect::from_source(&label).with_descriptor(&d, Some(child.media_type().as_ref())),
            )?;
            // skopeo reports the digest of what the reference names (the index).
            (digest.clone(), m)
        }
    };
    let config_bytes = src.document(manifest.parsed().config()).await?;
    if what == InspectWhat::Config {
        return Ok(config_bytes);
    }
    let cfg: Value =
        serde_json::from_slice(&config_bytes).map_err(|e| CopyError::usage(format!("{label}: config: {e}")))?;
    let layers: Vec<Value> = manifest
        .parsed()
        .layers()
        .iter()
        .map(|l| json!(l.digest().to_string()))
        .collect();
    let layers_data: Vec<Value> = manifest
        .parsed()
        .layers()
        .iter()
        .map(|l| {
            json!({
                "MIMEType": l.media_type().to_string(),
                "Digest": l.digest().to_string(),
                "Size": l.size(),
                "Annotations": l.annotations().clone().unwrap_or_default(),
            })
        })
        .collect();
    let repo_tags = match &src {
        Source::Registry { registry, repo, .. } => registry.list_tags(repo).await.unwrap_or_default(),
        _ => Vec::new(),
    };
    let name = match image {
        ImageRef::Docker(r) => r.name().to_owned(),
        _ => String::new(),
    };
    let mut summary = json!({
        "Name": name,
        "Digest": manifest_digest.to_string(),
        "RepoTags": repo_tags,
        "Created": cfg.get("created").cloned().unwrap_or(Value::Null),
        "DockerVersion": cfg.get("docker_version").cloned().unwrap_or(Value::String(String::new())),
        "Labels": cfg.pointer("/config/Labels").cloned().unwrap_or(Value::Null),
        "Architecture": cfg.get("architecture").cloned().unwrap_or(Value::Null),
        "Os": cfg.get("os").cloned().unwrap_or(Value::Null),
        "Layers": layers,
        "LayersData": layers_data,
        "Env": cfg.pointer("/config/Env").cloned().unwrap_or(Value::Null),
    });
    if name.is_empty()
        && let Some(o) = summary.as_object_mut()
    {
        // skopeo omits an empty Name (sources that are not registries).
        o.remove("Name");
    }
    let mut out = serde_json::to_vec_pretty(&summary).expect("JSON serializes");
    out.push(b'\n');
    Ok(out)
}

/// Tags of a registry repository, or ref names of a layout (all of them) or the store (those of the repository).
pub async fn list_tags(endpoints: &Endpoints, image: &ImageRef) -> Result<(String, Vec<String>), CopyError> {
    match image {
        ImageRef::Docker(r) => {
            let src = endpoints.open_source(image)?;
            let Source::Registry { registry, repo, .. } = &src else {
                unreachable!("docker:// opens a registry")
            };
            let _ = r;
            Ok((r.name().to_owned(), registry.list_tags(repo).await?))
        }
        ImageRef::Oci { path, .. } => {
            let layout = berth_spec::layout::Layout::open(path)?;
            Ok((
                path.display().to_string(),
                layout.refs()?.into_iter().map(|(n, _)| n).collect(),
            ))
        }
        ImageRef::Store(s) => {
            let layout = berth_spec::layout::Layout::open(endpoints.store_path()?)?;
            let prefix = format!("{}:", s.repository());
            let tags = layout
                .refs()?
                .into_iter()
                .filter_map(|(n, _)| n.strip_prefix(&prefix).map(str::to_owned))
                .collect();
            Ok((s.repository().to_owned(), tags))
        }
        other => Err(CopyError::usage(format!(
            "list-tags works on docker://, oci: and store references, not {other}"
        ))),
    }
}
