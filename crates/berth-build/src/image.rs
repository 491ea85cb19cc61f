//! The image a stage is building: its config (kept as JSON, so fields Berth does not model survive), its layers,
//! and where each layer's blob and extracted directory are.

use std::path::PathBuf;

use berth_spec::layout::{Image, Layout};
use berth_spec::media_type::Compression;
use berth_spec::platform::Platform;
use berth_spec::{Algorithm, Digest, media_type};
use oci_spec::image::Descriptor;
use serde_json::{Map, Value, json};

use crate::error::BuildError;

/// One layer of the image being built.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob's descriptor, as the manifest lists it.
    pub descriptor: Descriptor,
    /// Its diffID.
    pub diff_id: Digest,
    /// The layout holding the blob.
    pub layout: Layout,
}

/// A stage's image: config and layers.
#[derive(Debug, Clone)]
pub struct ImageState {
    /// The image config document.
    pub config: Value,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// Directories of the layers extracted in overlayfs form, once known (bottom first).
    pub layer_dirs: Option<Vec<PathBuf>>,
    /// The step-cache key of this state: the base's manifest digest (or `scratch`), then each instruction's.
    pub key: String,
}

impl ImageState {
    /// The empty image of `FROM scratch`.
    pub fn scratch(platform: &Platform) -> ImageState {
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = &platform.variant {
            config["variant"] = Value::String(v.clone());
        }
        ImageState {
            config,
            layers: Vec::new(),
            layer_dirs: Some(Vec::new()),
            key: format!("scratch {platform}"),
        }
    }

    /// The state of a base image read from `layout`.
    pub fn from_image(layout: &Layout, image: &Image) -> Result<ImageState, BuildError> {
        let label = image.manifest.digest().to_string();
        let bad = |e: &dyn std::fmt::Display| BuildError::Base {
            image: label.clone(),
            source: e.to_string().into(),
        };
        let config: Value = serde_json::from_slice(image.config.bytes()).map_err(|e| bad(&e))?;
        let diff_ids = image.config.parsed().rootfs().diff_ids();
        let mut layers = Vec::new();
        for (desc, diff_id) in image.manifest.parsed().layers().iter().zip(diff_ids) {
            let media = desc.media_type().to_string();
            if media_type::layer_compression(&media).is_none() {
                return Err(bad(&format!(
                    "layer {} has media type {media:?}, which Berth cannot unpack",
                    desc.digest()
                )));
            }
            layers.push(Layer {
                descriptor: desc.clone(),
                diff_id: Digest::parse(diff_id).map_err(|e| bad(&e))?,
                layout: layout.clone(),
            });
        }
        Ok(ImageState {
            config,
            layers,
            layer_dirs: None,
            key: image.manifest.digest().to_string(),
        })
    }

    /// The `config` object of the image config (created if absent).
    pub fn run_config(&mut self) -> &mut Map<String, Value> {
        if !self.config.get("config").is_some_and(Value::is_object) {
            self.config["config"] = json!({});
        }
        self.config["config"].as_object_mut().expect("an object")
    }

    /// A string field of the `config` object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.config
            .get("config")
            .and_then(|c| c.get(key))
            .filter(|v| !v.is_null())
    }

    /// `Env` as `(key, value)` pairs, in order.
    pub fn env(&self) -> Vec<(String, String)> {
        self.get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|e| match e.split_once('=') {
                        Some((k, v)) => (k.to_owned(), v.to_owned()),
                        None => (e.to_owned(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets (replacing, in place) `key` in `Env`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value.to_owned(),
            None => env.push((key.to_owned(), value.to_owned())),
        }
        let list = env
            .into_iter()
            .map(|(k, v)| Value::String(format!("{k}={v}")))
            .collect();
        self.run_config().insert("Env".into(), Value::Array(list));
    }

    /// The working directory (`/` when unset).
    pub fn workdir(&self) -> String {
        self.get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_owned()
    }

    /// The user (`""` for root).
    pub fn user(&self) -> String {
        self.get("User").and_then(Value::as_str).unwrap_or_default().to_owned()
    }

    /// Appends a history entry.
    pub fn add_history(&mut self, created_by: &str, created: &str, empty_layer: bool) {
        let mut entry = json!({"created": created, "created_by": created_by, "comment": "berth-build"});
        if empty_layer {
            entry["empty_layer"] = Value::Bool(true);
        }
        if !self.config.get("history").is_some_and(Value::is_array) {
            self.config["history"] = json!([]);
        }
        self.config["history"].as_array_mut().expect("an array").push(entry);
    }

    /// Adds a layer taken from the step cache (its directory is found, or extracted, when a step needs it).
    pub fn push_cached_layer(&mut self, layer: Layer) {
        self.layers.push(layer);
        self.layer_dirs = None;
    }

    /// Adds a layer made by this build, with its directory in the layer cache when it has one there (else the
    /// next mount extracts it from the blob).
    pub fn push_layer(&mut self, layer: Layer, dir: Option<PathBuf>) {
        self.layers.push(layer);
        match (dir, &mut self.layer_dirs) {
            (Some(dir), Some(dirs)) => dirs.push(dir),
            _ => self.layer_dirs = None,
        }
    }

    /// Writes the image into `out`: layer blobs not there yet (copied from where they are; with `recompress`,
    /// layers of another compression recompressed, their diffIDs checked), the config and the manifest with
    /// `annotations`. Returns the manifest's descriptor and the config digest (the image id).
    pub fn commit(
        &mut self,
        out: &Layout,
        created: &str,
        annotations: &[(String, String)],
        recompress: Option<Compression>,
        format: media_type::Format,
    ) -> Result<(Descriptor, Digest), BuildError> {
        let writer = out.writer()?;
        if let Some(target) = recompress {
            for layer in &mut self.layers {
                recompress_layer(out, &writer, layer, target)?;
            }
        }
        for layer in &self.layers {
            let digest = Digest::from_oci(layer.descriptor.digest()).map_err(|e| BuildError::Base {
                image: out.root().display().to_string(),
                source: e.to_string().into(),
            })?;
            let size = layer.descriptor.size();
            if out.has_blob(&digest) || layer.layout.root() == out.root() {
                continue;
            }
            if !writer.link_blob_from(&layer.layout, &digest, size)? {
                let mut r = layer.layout.open_blob(&digest, size)?;
                writer.put_blob(&mut r, &digest, size)?;
            }
        }
        let diff_ids: Vec<Value> = self
            .layers
            .iter()
            .map(|l| Value::String(l.diff_id.to_string()))
            .collect();
        self.config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        self.config["created"] = Value::String(created.to_owned());
        let config_bytes = serde_json::to_vec(&self.config).expect("JSON serializes");
        let config_digest = writer.put_bytes(&config_bytes, Algorithm::Sha256)?;
        let docker = format == media_type::Format::DockerV2S2;
        let fail = |e: &dyn std::fmt::Display| BuildError::Option {
            option: "--format docker".into(),
            reason: e.to_string(),
        };
        let mut layers = Vec::new();
        for l in &self.layers {
            let mut d = serde_json::to_value(&l.descriptor).expect("a descriptor serializes");
            let mt = l.descriptor.media_type().to_string();
            if let Some(c) = media_type::layer_compression(&mt) {
                d["mediaType"] = Value::String(
                    media_type::layer_media_type(format, c)
                        .map_err(|e| fail(&e))?
                        .to_owned(),
                );
            }
            if docker && let Some(obj) = d.as_object_mut() {
                // Docker schema 2 descriptors carry no annotations.
                obj.remove("annotations");
            }
            layers.push(d);
        }
        let (manifest_type, config_type) = if docker {
            (media_type::DOCKER_MANIFEST, media_type::DOCKER_CONFIG)
        } else {
            (media_type::OCI_MANIFEST, media_type::OCI_CONFIG)
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {
                "mediaType": config_type,
                "digest": config_digest.to_string(),
                "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let mut manifest = manifest;
        if !annotations.is_empty() {
            if docker {
                return Err(fail(
                    &"Docker schema 2 manifests have no annotations; use labels, or the OCI format",
                ));
            }
            let map: Map<String, Value> = annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            manifest["annotations"] = Value::Object(map);
        }
        let manifest_bytes = serde_json::to_vec(&manifest).expect("JSON serializes");
        let manifest_digest = writer.put_bytes(&manifest_bytes, Algorithm::Sha256)?;
        let descriptor = Descriptor::new(
            manifest_type.into(),
            manifest_bytes.len() as u64,
            manifest_digest.to_oci(),
        );
        Ok((descriptor, config_digest))
    }
}

/// Rewrites `layer` with `target` compression into `out` (unless it has it already), checking that the content
/// (its diffID) is unchanged.
fn recompress_layer(
    out: &Layout,
    writer: &berth_spec::layout::LayoutWriter,
    layer: &mut Layer,
    target: Compression,
) -> Result<(), BuildError> {
    let mt = layer.descriptor.media_type().to_string();
    let Some(from) = media_type::layer_compression(&mt) else {
        return Ok(());
    };
    if from == target {
        return Ok(());
    }
    let fail = |e: &dyn std::fmt::Display| BuildError::Work {
        what: "recompress a base layer",
        source: e.to_string().into(),
    };
    let digest = Digest::from_oci(layer.descriptor.digest()).map_err(|e| fail(&e))?;
    let reader = layer.layout.open_blob(&digest, layer.descriptor.size())?;
    let mut decoded = berth_spec::diff_id::decoder(reader, from).map_err(|e| fail(&e))?;
    let mut blob = writer.blob_writer(Algorithm::Sha256)?;
    let mut lw = berth_layer::compress::LayerWriter::new(&mut blob, target, None, 0).map_err(|e| fail(&e))?;
    std::io::copy(&mut decoded, &mut lw).map_err(|e| fail(&e))?;
    let made = lw.finish().map_err(|e| fail(&e))?;
    if made.diff_id != layer.diff_id {
        return Err(fail(&format!(
            "layer {digest}: its content is {}, not the diffID {} the image names",
            made.diff_id, layer.diff_id
        )));
    }
    let (new_digest, size) = blob.commit()?;
    let new_mt = media_type::layer_media_type(media_type::Format::Oci, target).map_err(|e| fail(&e))?;
    layer.descriptor = Descriptor::new(new_mt.into(), size, new_digest.to_oci());
    layer.layout = out.clone();
    Ok(())
}
