//! Writing small, deterministic test images into an OCI layout through berth-spec.

use std::io::Write;

use anyhow::{Context, Result};
use berth_spec::layout::Layout;
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
    let mut layer_descs = Vec::new();
    let (mut layers, mut diff_ids) = (Vec::new(), Vec::new());
    for tar in &spec.layers {
        let gz = gzip(tar);
        let d = w.put_bytes(&gz, Algorithm::Sha256)?;
        layer_descs.push(json!({"mediaType": mt::OCI_LAYER_GZIP, "digest": d.to_string(), "size": gz.len()}));
        layers.push(d);
        diff_ids.push(Digest::sha256(tar));
    }
    let config = json!({
        "created": "2026-01-01T00:00:00Z",
        "architecture": spec.architecture,
        "os": "linux",
        "config": spec.config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "history": spec.layers.iter().map(|_| json!({"created": "2026-01-01T00:00:00Z", "created_by": "berth-testkit"})).collect::<Vec<_>>(),
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
        layers,
        diff_ids,
    })
}

/// Applies every layer of the named image, bottom first, to `rootfs` with berth-layer (diffIDs verified).
pub fn apply_image(layout: &Layout, name: &str, rootfs: &std::path::Path) -> Result<()> {
    let image = layout.load_image(Some(name), &berth_spec::platform::Platform::host())?;
    std::fs::create_dir_all(rootfs)?;
    let layers = image.manifest.parsed().layers().iter().zip(image.config.parsed().rootfs().diff_ids());
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
