//! The step cache: the layer each file-system step made, keyed by what decides its result — the key of the step
//! before (from the base image's manifest digest on), the instruction as expanded, the build arguments and
//! environment a RUN sees, and the content of what a COPY or ADD reads (names, modes, bytes; never times). A
//! rebuild whose keys match reuses the layers without running anything.
//!
//! Layers live in an OCI layout of their own under the builder's directory (`step-cache/layers`, blobs only:
//! written verified, never named in its index) and one small file per key (`step-cache/keys/KEY.json`), replaced
//! atomically, so concurrent builds share the cache safely and a crash leaves at worst an unused blob.

use std::path::{Path, PathBuf};

use berth_spec::io_context::IoContext;
use berth_spec::layout::Layout;
use berth_spec::{Algorithm, Digest, Hasher};
use oci_spec::image::Descriptor;
use serde_json::json;

use crate::error::BuildError;
use crate::image::Layer;

/// The cache under a builder's working directory.
#[derive(Debug, Clone)]
pub struct StepCache {
    keys: PathBuf,
    layers: Layout,
}

/// The next key: `prev` and the step's description (and anything it reads) hashed together.
pub fn next_key(prev: &str, parts: &[&str]) -> String {
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(prev.as_bytes());
    for p in parts {
        h.update(&[0]);
        h.update(p.as_bytes());
    }
    h.finish().hex().to_owned()
}

impl StepCache {
    /// Opens (creating) the cache in `work_dir/step-cache`.
    pub fn open(work_dir: &Path) -> Result<StepCache, BuildError> {
        let dir = work_dir.join("step-cache");
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).at("create", &keys)?;
        let layers = Layout::create(dir.join("layers"))?;
        Ok(StepCache { keys, layers })
    }

    /// The layer cached under `key`, if it is there and its blob is intact (size checked; the digest is checked
    /// when the layer is read).
    pub fn get(&self, key: &str) -> Option<Layer> {
        let text = std::fs::read(self.keys.join(format!("{key}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
        let descriptor: Descriptor = serde_json::from_value(v["layer"].clone()).ok()?;
        let diff_id = Digest::parse(v["diff_id"].as_str()?).ok()?;
        let digest = Digest::from_oci(descriptor.digest()).ok()?;
        let size = std::fs::metadata(self.layers.blob_path(&digest)).ok()?.len();
        (size == descriptor.size()).then(|| Layer {
            descriptor,
            diff_id,
            layout: self.layers.clone(),
        })
    }

    /// Records `layer` (its blob linked or copied in) under `key`. The layer's blob was written by this build, so it
    /// is not hashed again.
    pub fn put(&self, key: &str, layer: &Layer) -> Result<(), BuildError> {
        let digest = Digest::from_oci(layer.descriptor.digest()).map_err(|e| BuildError::Work {
            what: "record a step in the cache",
            source: Box::new(e),
        })?;
        let size = layer.descriptor.size();
        let writer = self.layers.writer()?;
        if !self.layers.has_blob(&digest) && !writer.link_fresh_blob_from(&layer.layout, &digest)? {
            let mut r = layer.layout.open_blob(&digest, size)?;
            writer.put_blob(&mut r, &digest, size)?;
        }
        drop(writer);
        let entry = json!({"layer": layer.descriptor, "diff_id": layer.diff_id.to_string()});
        let path = self.keys.join(format!("{key}.json"));
        let tmp = self.keys.join(format!(".{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(&entry).expect("JSON")).at("write", &tmp)?;
        std::fs::rename(&tmp, &path).at("rename into place", &path)?;
        Ok(())
    }

    /// Notes that the step `instruction` after `parent` had `key`, so that a later miss can say why it missed.
    pub fn remember(&self, parent: &str, instruction: &str, key: &str) {
        let seen = self.keys.parent().expect("keys is in step-cache").join("seen");
        let _ = std::fs::create_dir_all(&seen);
        let _ = std::fs::write(seen.join(next_key(parent, &[instruction])), key);
        let _ = std::fs::write(seen.join(format!("parent-{parent}")), "");
    }

    /// Whether the step `instruction` ran after `parent` before (if not, it cannot be in the cache).
    pub fn seen(&self, parent: &str, instruction: &str) -> bool {
        let seen = self.keys.parent().expect("keys is in step-cache").join("seen");
        seen.join(next_key(parent, &[instruction])).exists()
    }

    /// Why the step `instruction` after `parent` is not in the cache.
    pub fn why_missed(&self, parent: &str, instruction: &str) -> &'static str {
        let seen = self.keys.parent().expect("keys is in step-cache").join("seen");
        if seen.join(next_key(parent, &[instruction])).exists() {
            "the same instruction ran before, but what it reads changed (files, build arguments, environment)"
        } else if seen.join(format!("parent-{parent}")).exists() {
            "the instruction is new or changed"
        } else {
            "an earlier step changed (or this is the first build)"
        }
    }

    /// Bytes the cache holds, and how many steps.
    pub fn usage(&self) -> (u64, usize) {
        let keys = std::fs::read_dir(&self.keys).map_or(0, |d| d.count());
        (dir_size(self.layers.root()), keys)
    }
}

/// Total size of the files below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
