//! Reading a docker-archive (`docker save`): `manifest.json` lists images, each a config member and layer
//! members, read in place through a [`MemberIndex`]. Newer `docker save` also writes an OCI layout beside
//! `manifest.json`; it is ignored (its blobs are the same members `manifest.json` names).

use std::io::Read;
use std::path::Path;

use berth_spec::Digest;
use berth_spec::document::{self, DEFAULT_MAX_DOCUMENT_SIZE, Document, Expect};
use berth_spec::media_type::{self, Compression};
use berth_spec::reference::{DockerArchiveRef, DockerReference};
use oci_spec::image::ImageConfiguration;

use berth_spec::io_context::IoContext;

use crate::error::{ArchiveError, Result};
use crate::member::normalize;
use crate::member_index::{MemberIndex, MemberReader};

/// Cap on `manifest.json` (it lists every image of the archive).
pub const MAX_MANIFEST_JSON: u64 = 16 * 1024 * 1024;

/// One image of a docker-archive, as `manifest.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DockerArchiveImage {
    /// The config member (`<hex>.json`, or `blobs/sha256/<hex>` in newer archives).
    #[serde(rename = "Config")]
    pub config_path: String,
    /// The image's names (`name:tag`), possibly none.
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// The layer members (uncompressed, gzip or zstd tar streams), bottom first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// An open docker-archive.
#[derive(Debug)]
pub struct DockerArchiveReader {
    index: MemberIndex,
    images: Vec<DockerArchiveImage>,
}

impl DockerArchiveReader {
    /// Opens and indexes a docker-archive (plain, gzip or zstd tar) and reads its `manifest.json`. Every member an
    /// image refers to must be present.
    pub fn open(path: &Path) -> Result<DockerArchiveReader> {
        let mut reader = DockerArchiveReader {
            index: MemberIndex::open(path)?,
            images: Vec::new(),
        };
        reader.images = reader.read_manifest()?;
        Ok(reader)
    }

    fn read_manifest(&self) -> Result<Vec<DockerArchiveImage>> {
        let bad = |reason: String| ArchiveError::BadManifest {
            archive: self.index.path().to_owned(),
            reason,
        };
        if !self.index.contains("manifest.json") {
            return Err(bad(
                "the archive has no manifest.json; it is not a docker-archive (`docker save` output)".into(),
            ));
        }
        let bytes = self.index.read("manifest.json", MAX_MANIFEST_JSON, "manifest.json")?;
        let images: Vec<DockerArchiveImage> =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("malformed: {e}")))?;
        if images.is_empty() {
            return Err(bad("it lists no images".into()));
        }
        for (i, image) in images.iter().enumerate() {
            let by = format!("manifest.json image @{i} ({})", image.repo_tags.join(", "));
            for path in std::iter::once(&image.config_path).chain(&image.layers) {
                self.index.resolve(path, &by)?;
            }
        }
        Ok(images)
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        self.index.path()
    }

    /// The images `manifest.json` lists, in order.
    pub fn images(&self) -> &[DockerArchiveImage] {
        &self.images
    }

    /// The only image of the archive; an error naming the images when there are several.
    pub fn only(&self) -> Result<&DockerArchiveImage> {
        match self.images.as_slice() {
            [only] => Ok(only),
            many => Err(ArchiveError::Ambiguous {
                archive: self.index.path().to_owned(),
                reason: format!(
                    "the archive holds {} images ({}); name one (docker-archive:PATH:NAME:TAG or :@N)",
                    many.len(),
                    self.list()
                ),
            }),
        }
    }

    fn list(&self) -> String {
        let names: Vec<String> = (0..self.images.len()).map(|i| self.label_at(i)).collect();
        names.join(", ")
    }

    /// Picks one image: by name (a RepoTag equal after normalization: `busybox` matches
    /// `docker.io/library/busybox:latest`) or by position (`@N`). Without a reference, use [`Self::only`].
    pub fn select(&self, reference: &DockerArchiveRef) -> Result<&DockerArchiveImage> {
        let list = || self.list();
        match reference {
            DockerArchiveRef::Index(n) => self.images.get(*n).ok_or_else(|| ArchiveError::ImageNotFound {
                archive: self.index.path().to_owned(),
                wanted: format!("@{n}"),
                available: list(),
            }),
            DockerArchiveRef::Named(wanted) => {
                let matches = |img: &&DockerArchiveImage| {
                    img.repo_tags
                        .iter()
                        .any(|t| DockerReference::parse_normalized(t).is_ok_and(|r| &r == wanted))
                };
                let found: Vec<&DockerArchiveImage> = self.images.iter().filter(matches).collect();
                match found.as_slice() {
                    [one] => Ok(one),
                    [] => Err(ArchiveError::ImageNotFound {
                        archive: self.index.path().to_owned(),
                        wanted: wanted.familiar(),
                        available: list(),
                    }),
                    many => Err(ArchiveError::Ambiguous {
                        archive: self.index.path().to_owned(),
                        reason: format!(
                            "{} images are tagged {}; pick one by position (:@N)",
                            many.len(),
                            wanted.familiar()
                        ),
                    }),
                }
            }
        }
    }

    fn label_at(&self, i: usize) -> String {
        match self.images[i].repo_tags.as_slice() {
            [] => format!("@{i}"),
            tags => format!("@{i} ({})", tags.join(", ")),
        }
    }

    /// A name for `image` in messages: its position and tags.
    pub fn label(&self, image: &DockerArchiveImage) -> String {
        match self.images.iter().position(|i| std::ptr::eq(i, image) || i == image) {
            Some(i) => self.label_at(i),
            None => image.config_path.clone(),
        }
    }

    /// The image's config, verified: at most 4 MiB, matching the digest its name states (`<hex>.json`,
    /// `blobs/sha256/<hex>`), a valid image config with as many diff_ids as the image has layers.
    pub fn config(&self, image: &DockerArchiveImage) -> Result<Document<ImageConfiguration>> {
        let label = self.label(image);
        let bytes = self.index.read(&image.config_path, DEFAULT_MAX_DOCUMENT_SIZE, &label)?;
        let found = Digest::sha256(&bytes);
        if let Some(expected) = digest_from_name(&image.config_path)
            && expected != found
        {
            return Err(ArchiveError::DigestMismatch {
                archive: self.index.path().to_owned(),
                member: image.config_path.clone(),
                expected,
                found,
            });
        }
        let source = format!("{}: {}", self.path().display(), image.config_path);
        let ex = Expect {
            media_type: Some(media_type::DOCKER_CONFIG),
            ..Expect::from_source(&source)
        };
        let config = document::parse_config(bytes, ex).map_err(|source| ArchiveError::Config {
            archive: self.index.path().to_owned(),
            image: label.clone(),
            member: image.config_path.clone(),
            source: Box::new(source),
        })?;
        let diff_ids = config.parsed().rootfs().diff_ids().len();
        if diff_ids != image.layers.len() {
            return Err(ArchiveError::LayerCount {
                archive: self.index.path().to_owned(),
                image: label,
                layers: image.layers.len(),
                diff_ids,
            });
        }
        Ok(config)
    }

    /// The config's bytes exactly as stored in the archive, verified as [`Self::config`] does.
    pub fn config_bytes(&self, image: &DockerArchiveImage) -> Result<Vec<u8>> {
        self.config(image).map(Document::into_bytes)
    }

    /// Streams layer `i` of `image` as stored (uncompressed, gzip or zstd: see [`Self::layer_compression`]).
    pub fn open_layer(&self, image: &DockerArchiveImage, i: usize) -> Result<MemberReader> {
        let path = image.layers.get(i).ok_or_else(|| ArchiveError::BadManifest {
            archive: self.index.path().to_owned(),
            reason: format!("image {} has no layer {i}", self.label(image)),
        })?;
        let entry = self.index.resolve(path, &format!("image {}", self.label(image)))?;
        Ok(self.index.reader(entry))
    }

    /// The compression of layer `i`, sniffed from its first bytes.
    pub fn layer_compression(&self, image: &DockerArchiveImage, i: usize) -> Result<Compression> {
        let mut head = [0u8; 4];
        let mut r = self.open_layer(image, i)?.take(4);
        let mut n = 0;
        while n < head.len() {
            match r.read(&mut head[n..]).at("read archive", self.index.path())? {
                0 => break,
                k => n += k,
            }
        }
        Ok(Compression::sniff(&head[..n]))
    }
}

/// The digest a config member's name states: `<64 hex>.json` or `blobs/sha256/<64 hex>`.
fn digest_from_name(path: &str) -> Option<Digest> {
    let name = normalize(path).ok()?;
    let hex = name
        .strip_suffix(".json")
        .filter(|h| !h.contains('/'))
        .or_else(|| name.strip_prefix("blobs/sha256/"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_state_digests() {
        let hex = "a".repeat(64);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(digest_from_name(&format!("{hex}.json")), Some(d.clone()));
        assert_eq!(digest_from_name(&format!("./blobs/sha256/{hex}")), Some(d));
        assert_eq!(digest_from_name("config.json"), None);
        assert_eq!(digest_from_name(&format!("x/{hex}.json")), None);
    }
}
