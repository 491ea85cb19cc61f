//! `docker://` images for `run`: pulled into the default store through the shared registry client (one
//! platform, every blob verified), then run from there like any stored image.

use std::path::Path;

use berth_registry::{ClientOptions, DigestCheck, Registry};
use berth_spec::Digest;
use berth_spec::document::{Expect, ManifestOrIndex, parse_config, parse_manifest_or_index};
use berth_spec::layout::Layout;
use berth_spec::platform::{Platform, select};
use berth_spec::reference::{DockerReference, StoreRef};

use crate::RunError;

/// When `run` pulls a `docker://` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the store lacks it (podman's default).
    #[default]
    Missing,
    /// Every time.
    Always,
    /// Never: the image must be in the store.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = RunError;

    fn from_str(s: &str) -> Result<Self, RunError> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err(RunError::option(format!("--pull {s}"), "use missing, always or never")),
        }
    }
}

/// The store name a `docker://` reference is kept under: its full name and tag (`localhost:5000/app:1`), or
/// its digest.
pub fn store_name(reference: &DockerReference) -> Result<StoreRef, RunError> {
    let text = match (reference.tag(), reference.digest()) {
        (_, Some(d)) => format!("{}@{d}", reference.name()),
        (Some(t), None) => format!("{}:{t}", reference.name()),
        (None, None) => format!("{}:latest", reference.name()),
    };
    StoreRef::parse(&text).map_err(|e| RunError::Unsupported {
        image: format!("docker://{reference}"),
        reason: format!("cannot be named in the store: {e}"),
    })
}

fn registry_err(image: &str) -> impl Fn(berth_registry::RegistryError) -> RunError + '_ {
    move |e| RunError::Unsupported {
        image: image.to_owned(),
        reason: e.to_string(),
    }
}

/// Pulls the image for `platform` into the store at `store` (created if absent) and names it as
/// [`store_name`] says, unless `policy` finds it there already. Returns the store name.
pub fn pull(
    reference: &DockerReference,
    store: &Path,
    platform: &Platform,
    policy: PullPolicy,
    options: &ClientOptions,
) -> Result<StoreRef, RunError> {
    let label = format!("docker://{reference}");
    let name = store_name(reference)?;
    let layout = Layout::create(store).map_err(|e| RunError::Layout {
        image: label.clone(),
        source: Box::new(e),
    })?;
    let present = match (name.digest(), name.ref_name()) {
        (Some(d), _) => layout.resolve_digest(d).is_ok(),
        (None, n) => layout.resolve(n.as_deref()).is_ok(),
    };
    match (policy, present) {
        (PullPolicy::Never, false) => {
            return Err(RunError::Unsupported {
                image: label,
                reason: "it is not in the store and --pull=never forbids pulling it".into(),
            });
        }
        (PullPolicy::Never, true) | (PullPolicy::Missing, true) => return Ok(name),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Unsupported {
            image: label.clone(),
            reason: format!("cannot start the network runtime: {e}"),
        })?;
    // The runtime ends with this function, before any container is cloned from this process.
    runtime.block_on(pull_async(reference, &layout, platform, options, &label, &name))?;
    Ok(name)
}

async fn pull_async(
    reference: &DockerReference,
    layout: &Layout,
    platform: &Platform,
    options: &ClientOptions,
    label: &str,
    name: &StoreRef,
) -> Result<(), RunError> {
    let err = registry_err(label);
    let layout_err = |e| RunError::Layout {
        image: label.to_owned(),
        source: Box::new(e),
    };
    let doc_err = |e: berth_spec::document::DocumentError| RunError::Unsupported {
        image: label.to_owned(),
        reason: e.to_string(),
    };
    let registry = Registry::new(reference.api_host(), options).map_err(&err)?;
    let repo = reference.repository();
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    eprintln!("Pulling {label}");
    let mut fetched = registry.get_manifest(repo, &wanted, &[]).await.map_err(&err)?;
    let mut doc = parse_manifest_or_index(
        fetched.bytes.clone(),
        Expect {
            media_type: Some(&fetched.media_type),
            ..Expect::from_source(label)
        },
    )
    .map_err(doc_err)?;
    if let ManifestOrIndex::Index(index) = &doc {
        let chosen = select(index.parsed(), platform, label).map_err(|e| RunError::Unsupported {
            image: label.to_owned(),
            reason: e.to_string(),
        })?;
        let digest = Digest::from_oci(chosen.digest()).map_err(|e| RunError::Unsupported {
            image: label.to_owned(),
            reason: e.to_string(),
        })?;
        fetched = registry
            .get_manifest(repo, &digest.to_string(), &[])
            .await
            .map_err(&err)?;
        let media = chosen.media_type().to_string();
        doc = parse_manifest_or_index(
            fetched.bytes.clone(),
            Expect::from_source(label).with_descriptor(&digest, Some(&media)),
        )
        .map_err(doc_err)?;
    }
    let ManifestOrIndex::Manifest(manifest) = doc else {
        return Err(RunError::Unsupported {
            image: label.to_owned(),
            reason: "the platform's entry is itself an index; Berth follows one level".into(),
        });
    };
    let writer = layout.writer().map_err(layout_err)?;
    let config_desc = manifest.parsed().config();
    let blobs = std::iter::once(config_desc).chain(manifest.parsed().layers().iter());
    for desc in blobs {
        let digest = Digest::from_oci(desc.digest()).map_err(|e| RunError::Unsupported {
            image: label.to_owned(),
            reason: e.to_string(),
        })?;
        if layout.verify_blob(&digest, desc.size()).is_ok() {
            continue;
        }
        let mut sink = writer.blob_writer_expecting(&digest, desc.size()).map_err(layout_err)?;
        // The blob writer verifies digest and size before it commits: no second hash here.
        registry
            .get_blob_checked(repo, &digest, desc.size(), &mut sink, &|_| {}, DigestCheck::BySink)
            .await
            .map_err(&err)?;
        sink.commit().map_err(layout_err)?;
        eprintln!("Copied blob {digest} ({} bytes)", desc.size());
    }
    // The config must parse before the image is named in the store.
    let config_digest = Digest::from_oci(config_desc.digest()).map_err(|e| RunError::Unsupported {
        image: label.to_owned(),
        reason: e.to_string(),
    })?;
    let config_bytes = layout
        .read_blob_capped(
            &config_digest,
            config_desc.size(),
            berth_spec::document::DEFAULT_MAX_DOCUMENT_SIZE,
        )
        .map_err(layout_err)?;
    parse_config(
        config_bytes,
        Expect::from_source(label).with_descriptor(&config_digest, None),
    )
    .map_err(doc_err)?;
    let descriptor = manifest.descriptor();
    writer.put_document(&manifest).map_err(layout_err)?;
    if let Some(ref_name) = name.ref_name() {
        writer.set_ref(&ref_name, &descriptor).map_err(layout_err)?;
    } else {
        writer.add_entry(&descriptor).map_err(layout_err)?;
    }
    eprintln!("Stored {label} as {name} ({})", manifest.digest());
    Ok(())
}
