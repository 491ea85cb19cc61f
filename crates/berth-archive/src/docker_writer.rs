//! Writing a docker-archive (`docker load` format) of images from an OCI image layout.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use berth_spec::document::ManifestOrIndex;
use berth_spec::layout::Layout;
use berth_spec::media_type::{self, Compression};
use berth_spec::reference::DockerReference;
use berth_spec::{Algorithm, Digest, Hasher};
use oci_spec::image::Descriptor;

use crate::docker_reader::DockerArchiveImage;
use berth_spec::io_context::IoContext;

use crate::error::{ArchiveError, LayoutContext, Result};
use crate::tar_out::TarOut;

/// Writes several images into one docker-archive: `<config hex>.json` configs, `<diffID hex>/layer.tar`
/// uncompressed layers (each stored once, however many images share it), then `manifest.json` and `repositories`.
///
/// The archive is written to a temp file next to its destination and renamed into place by
/// [`DockerArchiveWriter::finish`]; dropped unfinished, or after an error, it leaves nothing.
#[derive(Debug)]
pub struct DockerArchiveWriter {
    out: PathBuf,
    tar: Option<TarOut>,
    images: Vec<DockerArchiveImage>,
    written: HashSet<String>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// A layer to write: the blob, its compression, and the diffID it must decompress to.
struct LayerPlan {
    blob: Digest,
    size: u64,
    compression: Compression,
    diff_id: Digest,
}

impl DockerArchiveWriter {
    /// Starts a docker-archive that [`Self::finish`] will put at `out`.
    pub fn create(out: &Path) -> Result<DockerArchiveWriter> {
        Ok(DockerArchiveWriter {
            out: out.to_owned(),
            tar: Some(TarOut::create(out)?),
            images: Vec::new(),
            written: HashSet::new(),
            repositories: BTreeMap::new(),
        })
    }

    fn unsupported(&self, image: &str, reason: String) -> ArchiveError {
        ArchiveError::Unsupported {
            archive: self.out.clone(),
            image: image.to_owned(),
            reason,
        }
    }

    /// Adds the image whose manifest `manifest_desc` points at (a single-platform image manifest; pick one from an
    /// index first) under `repo_tags` (`name:tag`, normalized and written in docker's short form; may be empty).
    /// Every layer is decompressed and its diffID checked against the config while written.
    pub fn add_image(&mut self, layout: &Layout, manifest_desc: &Descriptor, repo_tags: &[String]) -> Result<()> {
        if self.tar.is_none() {
            return Err(ArchiveError::Aborted {
                archive: self.out.clone(),
            });
        }
        let mut tags = Vec::new();
        for t in repo_tags {
            let r = DockerReference::parse_normalized(t).map_err(|source| ArchiveError::BadTag {
                archive: self.out.clone(),
                tag: t.clone(),
                source: Box::new(source),
            })?;
            if r.digest().is_some() {
                return Err(self.unsupported(t, "a RepoTag cannot carry a digest; give NAME:TAG".into()));
            }
            tags.push(r.familiar());
        }
        let manifest = match layout.read_manifest_or_index(manifest_desc).in_archive(&self.out)? {
            ManifestOrIndex::Manifest(m) => m,
            ManifestOrIndex::Index(i) => {
                let reason = "it is an index; a docker-archive holds single-platform images: choose one manifest";
                return Err(self.unsupported(&i.digest().to_string(), reason.into()));
            }
        };
        let label = tags.first().cloned().unwrap_or_else(|| manifest.digest().to_string());
        let config = layout.read_config(manifest.parsed().config()).in_archive(&self.out)?;
        let diff_ids = config.parsed().rootfs().diff_ids();
        let layers = manifest.parsed().layers();
        if diff_ids.len() != layers.len() {
            return Err(ArchiveError::LayerCount {
                archive: self.out.clone(),
                image: label,
                layers: layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut plan = Vec::new();
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let mt = layer.media_type().to_string();
            let compression = media_type::layer_compression(&mt).ok_or_else(|| {
                self.unsupported(
                    &label,
                    format!("layer media type {mt:?} is not a layer Berth can unpack"),
                )
            })?;
            let bad_digest = |e: berth_spec::DigestError| self.unsupported(&label, e.to_string());
            plan.push(LayerPlan {
                blob: Digest::from_oci(layer.digest()).map_err(bad_digest)?,
                size: layer.size(),
                compression,
                diff_id: Digest::parse(diff_id).map_err(bad_digest)?,
            });
        }
        // From here on the archive is being written; any error leaves it unusable.
        let mut tar = self.tar.take().expect("checked above");
        self.write_image(&mut tar, layout, &label, config.digest(), config.bytes(), &plan)?;
        self.tar = Some(tar);
        let entry = DockerArchiveImage {
            config_path: format!("{}.json", config.digest().hex()),
            repo_tags: Vec::new(),
            layers: plan.iter().map(|l| format!("{}/layer.tar", l.diff_id.hex())).collect(),
        };
        let pos = match self
            .images
            .iter()
            .position(|e| e.config_path == entry.config_path && e.layers == entry.layers)
        {
            Some(pos) => pos,
            None => {
                self.images.push(entry);
                self.images.len() - 1
            }
        };
        for tag in tags {
            if let (Some(top), Some((repo, t))) = (plan.last(), split_tag(&tag)) {
                self.repositories
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(t.to_owned(), top.diff_id.hex().to_owned());
            }
            if !self.images[pos].repo_tags.contains(&tag) {
                self.images[pos].repo_tags.push(tag);
            }
        }
        Ok(())
    }

    fn write_image(
        &mut self,
        tar: &mut TarOut,
        layout: &Layout,
        label: &str,
        config_digest: &Digest,
        config: &[u8],
        plan: &[LayerPlan],
    ) -> Result<()> {
        let config_name = format!("{}.json", config_digest.hex());
        if !self.written.contains(&config_name) {
            tar.file_bytes(&config_name, config)?;
            self.written.insert(config_name);
        }
        for layer in plan {
            let name = format!("{}/layer.tar", layer.diff_id.hex());
            if !self.written.contains(&name) {
                write_layer(tar, layout, label, &name, layer)?;
                self.written.insert(name);
            }
        }
        Ok(())
    }

    /// Writes `manifest.json` and `repositories` and renames the archive into place.
    pub fn finish(mut self) -> Result<()> {
        let Some(mut tar) = self.tar.take() else {
            return Err(ArchiveError::Aborted { archive: self.out });
        };
        let manifest = serde_json::to_vec(&self.images).expect("manifest.json serializes");
        tar.file_bytes("manifest.json", &manifest)?;
        if !self.repositories.is_empty() {
            let repositories = serde_json::to_vec(&self.repositories).expect("repositories serializes");
            tar.file_bytes("repositories", &repositories)?;
        }
        tar.finish()
    }
}

/// `name:tag` (docker's short form) split into repository and tag.
fn split_tag(tag: &str) -> Option<(&str, &str)> {
    let colon = tag.rfind(':')?;
    (tag[colon..].find('/').is_none()).then(|| (&tag[..colon], &tag[colon + 1..]))
}

/// Decompresses one layer blob into the `<diffID>/layer.tar` member, checking the diffID.
fn write_layer(tar: &mut TarOut, layout: &Layout, label: &str, name: &str, layer: &LayerPlan) -> Result<()> {
    let archive = tar.target().to_owned();
    let blob_path = layout.blob_path(&layer.blob);
    let layer_error = |source: io::Error| ArchiveError::Layer {
        archive: archive.clone(),
        image: label.to_owned(),
        member: layer.blob.to_string(),
        source,
    };
    let blob = layout.open_blob(&layer.blob, layer.size).in_archive(&archive)?;
    let mut blob = BufReader::with_capacity(1 << 20, blob);
    let found = Compression::sniff(blob.fill_buf().at("read blob", &blob_path)?);
    if found != layer.compression && !(layer.compression == Compression::None && blob.buffer().is_empty()) {
        let e = io::Error::other(format!("its media type says {} but it is {found}", layer.compression));
        return Err(layer_error(e));
    }
    let plain_size = (layer.compression == Compression::None).then_some(layer.size);
    let mut decoded = berth_spec::diff_id::decoder(blob, layer.compression).map_err(layer_error)?;
    let member = tar.begin_file(name, plain_size)?;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match decoded.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(layer_error(e)),
        };
        hasher.update(&buf[..n]);
        tar.write_all(&buf[..n]).at("write archive", &archive)?;
    }
    let found = hasher.finish();
    if found != layer.diff_id {
        return Err(ArchiveError::DiffIdMismatch {
            archive,
            layer: format!("image {label}: layer {}", layer.blob),
            expected: layer.diff_id.clone(),
            found,
        });
    }
    tar.end_file(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_at_the_last_colon_after_the_last_slash() {
        assert_eq!(split_tag("busybox:latest"), Some(("busybox", "latest")));
        assert_eq!(split_tag("localhost:5000/a/b:v1"), Some(("localhost:5000/a/b", "v1")));
        assert_eq!(split_tag("localhost:5000/a"), None);
    }
}
