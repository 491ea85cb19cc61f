//! Writing small, deterministic test images into an OCI layout through berth-spec.

use std::io::Write;

use anyhow::{Context, Result};
use berth_layer::compress::LayerDigests;
use berth_spec::layout::{Layout, LayoutWriter};
use berth_spec::media_type as mt;
use berth_spec::{Algorithm, Digest};
use oci_spec::image::Descriptor;
use serde_json::{Value, json};

/// A fixed timestamp for reproducible test images.
pub const EPOCH: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Builds a deterministic tar stream: fixed mtimes, root ownership, entries in the order added.
#[derive(Default)]
pub struct TarBuilder {
    inner: Option<tar::Builder<Vec<u8>>>,
}

impl std::fmt::Debug for TarBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TarBuilder")
    }
}

impl TarBuilder {
    /// An empty archive.
    pub fn new() -> Self {
        TarBuilder {
            inner: Some(tar::Builder::new(Vec::new())),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(EPOCH);
        h.set_size(size);
        h
    }

    fn b(&mut self) -> &mut tar::Builder<Vec<u8>> {
        self.inner.as_mut().expect("builder not finished")
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.b()
            .append_data(&mut h, path, std::io::empty())
            .expect("tar to memory");
        self
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b().append_data(&mut h, path, data).expect("tar to memory");
        self
    }

    /// Adds a symlink.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b().append_link(&mut h, path, target).expect("tar to memory");
        self
    }

    /// Finishes the archive.
    pub fn finish(&mut self) -> Vec<u8> {
        self.inner
            .take()
            .expect("builder not finished")
            .into_inner()
            .expect("tar to memory")
    }
}

/// gzip-compresses bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip to memory");
    e.finish().expect("gzip to memory")
}

/// What goes into a test image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Uncompressed layer tars, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// The image config's `config` object (Cmd, Env, …).
    pub config: Value,
    /// GOARCH.
    pub architecture: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    /// Descriptor of the manifest.
    pub manifest: Descriptor,
    /// Its digest.
    pub manifest_digest: Digest,
    /// The manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// Config digest.
    pub config_digest: Digest,
    /// Compressed layer digests.
    pub layers: Vec<Digest>,
    /// Layer diffIDs.
    pub diff_ids: Vec<Digest>,
}

/// Writes `spec` as a gzip-layered OCI image and names it `name` (when given).
pub fn write_image(layout: &Layout, name: Option<&str>, spec: &ImageSpec) -> Result<WrittenImage> {
    let w = layout.writer()?;
    let mut layers = Vec::new();
    for tar in &spec.layers {
        let gz = gzip(tar);
        let d = w.put_bytes(&gz, Algorithm::Sha256)?;
        layers.push(LayerDesc {
            media_type: mt::OCI_LAYER_GZIP,
            digest: d,
            size: gz.len() as u64,
            diff_id: Digest::sha256(tar),
        });
    }
    write_manifest(&w, name, &layers, &spec.config, &spec.architecture)
}

/// Writes an image of layers that are already compressed blobs, each with the digests its creator reported (the
/// blob is stored only if it hashes to `digest` and is `size` bytes), for the host's platform, and names it `name`.
/// `config` is the image config's `config` object (Cmd, Env, …).
pub fn write_layers_image(
    layout: &Layout,
    name: &str,
    layers: &[(Vec<u8>, LayerDigests)],
    config: &Value,
) -> Result<WrittenImage> {
    let w = layout.writer()?;
    let mut descs = Vec::new();
    for (blob, d) in layers {
        w.put_blob(&mut &blob[..], &d.digest, d.size)
            .with_context(|| format!("storing layer {}", d.digest))?;
        descs.push(LayerDesc {
            media_type: d.media_type,
            digest: d.digest.clone(),
            size: d.size,
            diff_id: d.diff_id.clone(),
        });
    }
    let arch = berth_spec::platform::Platform::host().architecture;
    write_manifest(&w, Some(name), &descs, config, &arch)
}

/// One stored layer blob, as the manifest and config name it.
struct LayerDesc {
    media_type: &'static str,
    digest: Digest,
    size: u64,
    diff_id: Digest,
}

/// Writes the config and manifest for layers already stored, and names the image `name` (when given).
fn write_manifest(
    w: &LayoutWriter,
    name: Option<&str>,
    layers: &[LayerDesc],
    config: &Value,
    architecture: &str,
) -> Result<WrittenImage> {
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size}))
        .collect();
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = json!({
        "created": "2026-01-01T00:00:00Z",
        "architecture": architecture,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "history": layers.iter().map(|_| json!({"created": "2026-01-01T00:00:00Z", "created_by": "berth-testkit"})).collect::<Vec<_>>(),
    });
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = w.put_bytes(&config_bytes, Algorithm::Sha256)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": layer_descs,
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = w.put_bytes(&manifest_bytes, Algorithm::Sha256)?;
    let desc = Descriptor::new(
        mt::OCI_MANIFEST.into(),
        manifest_bytes.len() as u64,
        manifest_digest.to_oci(),
    );
    match name {
        Some(n) => w.set_ref(n, &desc).with_context(|| format!("naming the image {n}"))?,
        None => w.add_entry(&desc)?,
    }
    Ok(WrittenImage {
        manifest: desc,
        manifest_digest,
        manifest_bytes,
        config_digest,
        layers: layers.iter().map(|l| l.digest.clone()).collect(),
        diff_ids,
    })
}

/// Applies every layer of the named image, bottom first, to `rootfs` with berth-layer (diffIDs verified).
pub fn apply_image(layout: &Layout, name: &str, rootfs: &std::path::Path) -> Result<()> {
    let image = layout.load_image(Some(name), &berth_spec::platform::Platform::host())?;
    std::fs::create_dir_all(rootfs)?;
    let layers = image
        .manifest
        .parsed()
        .layers()
        .iter()
        .zip(image.config.parsed().rootfs().diff_ids());
    for (layer, diff_id) in layers {
        let digest = Digest::from_oci(layer.digest())?;
        let reader = layout.open_blob(&digest, layer.size())?;
        let opts = berth_layer::apply::ApplyOptions {
            compression: mt::layer_compression(layer.media_type().as_ref()),
            diff_id: Some(Digest::parse(diff_id)?),
            ..Default::default()
        };
        berth_layer::apply::apply_layer(reader, rootfs, &opts).with_context(|| format!("applying layer {digest}"))?;
    }
    Ok(())
}
