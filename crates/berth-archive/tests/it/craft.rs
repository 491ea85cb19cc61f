//! Building source images and crafting (hostile) archives byte by byte.

use std::io::Read;
use std::path::Path;

use anyhow::Result;
use berth_spec::Digest;
use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_testkit::busybox;
use berth_testkit::image::{self, ImageSpec, TarBuilder, WrittenImage};
use serde_json::json;
use tar::EntryType;

/// The second image's extra layer.
pub fn extra_layer() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.file("hello", 0o644, b"hello from the second image\n");
    t.finish()
}

/// A layout with `busybox:latest` (one layer) and `two:v1` (the same layer plus [`extra_layer`]).
pub fn two_images(dir: &Path) -> Result<(Layout, WrittenImage, WrittenImage)> {
    let layout = Layout::create(dir)?;
    let one = busybox::write_image(&layout, "busybox:latest")?;
    let spec = ImageSpec {
        layers: vec![busybox::rootfs_tar()?, extra_layer()],
        config: json!({"Cmd": ["/bin/cat", "/hello"]}),
        architecture: Platform::host().architecture,
    };
    let two = image::write_image(&layout, Some("two:v1"), &spec)?;
    assert_eq!(one.layers[0], two.layers[0], "the images must share their first layer");
    Ok((layout, one, two))
}

/// Decompresses every layer of image `name` in `layout`, bottom first.
pub fn layer_contents(layout: &Layout, name: &str) -> Result<Vec<Vec<u8>>> {
    let image = layout.load_image(Some(name), &Platform::host())?;
    layout.verify_diff_ids(&image)?;
    let mut out = Vec::new();
    for l in image.manifest.parsed().layers() {
        let digest = Digest::from_oci(l.digest())?;
        let compression = berth_spec::media_type::layer_compression(l.media_type().as_ref()).expect("a layer");
        let blob = layout.open_blob(&digest, l.size())?;
        let mut data = Vec::new();
        berth_spec::diff_id::decoder(blob, compression)?.read_to_end(&mut data)?;
        out.push(data);
    }
    Ok(out)
}

/// A tar written header by header, so names and types can be anything.
#[derive(Debug, Default)]
pub struct RawTar {
    pub bytes: Vec<u8>,
}

impl RawTar {
    pub fn new() -> Self {
        RawTar::default()
    }

    /// A member with exactly this name, type, link target and data; `claimed` overrides the header's size.
    pub fn member(&mut self, name: &str, kind: EntryType, data: &[u8], link: &str, claimed: Option<u64>) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_size(claimed.unwrap_or(data.len() as u64));
        h.set_cksum();
        self.bytes.extend_from_slice(h.as_bytes());
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len().div_ceil(512) * 512, 0);
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.member(name, EntryType::Regular, data, "", None)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.member(name, EntryType::Directory, b"", "", None)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.member(name, EntryType::Symlink, b"", target, None)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.member(name, EntryType::Link, b"", target, None)
    }

    /// The archive with its end blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.resize(out.len() + 1024, 0);
        out
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.finish())?;
        Ok(())
    }
}

/// A minimal valid oci-archive's members (one image: config + one layer + manifest) added to `t`; returns the
/// manifest digest. The image is named `x`. Without `with_manifest`, the manifest blob is left out.
pub fn oci_members(t: &mut RawTar, with_manifest: bool) -> Digest {
    let layer = image::gzip(&extra_layer());
    let layer_digest = Digest::sha256(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&extra_layer()).to_string()]},
    }))
    .unwrap();
    let config_digest = Digest::sha256(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let manifest_digest = Digest::sha256(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "x"},
        }],
    }))
    .unwrap();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &index)
        .dir("blobs/")
        .dir("blobs/sha256/");
    let mut blobs = vec![(&layer_digest, &layer), (&config_digest, &config)];
    if with_manifest {
        blobs.push((&manifest_digest, &manifest));
    }
    for (digest, data) in blobs {
        t.file(&format!("blobs/sha256/{}", digest.hex()), data);
    }
    manifest_digest
}

/// A docker-archive image: its layer tars and a config naming their diffIDs.
pub struct DockerParts {
    pub config: Vec<u8>,
    pub config_name: String,
    pub layers: Vec<Vec<u8>>,
}

impl DockerParts {
    /// An image of the given layer tars; `diff_ids` overrides the config's list.
    pub fn new(layers: Vec<Vec<u8>>, diff_ids: Option<Vec<String>>) -> Self {
        let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| Digest::sha256(l).to_string()).collect());
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_name = format!("{}.json", Digest::sha256(&config).hex());
        DockerParts {
            config,
            config_name,
            layers,
        }
    }

    /// Adds config, layers (`L<i>/layer.tar`) and a manifest.json naming them, tagged `tag`.
    pub fn add_to(&self, t: &mut RawTar, tag: &str) {
        let layer_names: Vec<String> = (0..self.layers.len()).map(|i| format!("L{i}/layer.tar")).collect();
        t.file(&self.config_name, &self.config);
        for (name, data) in layer_names.iter().zip(&self.layers) {
            t.file(name, data);
        }
        let manifest = json!([{"Config": self.config_name, "RepoTags": [tag], "Layers": layer_names}]);
        t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    }
}
