//! `index.json`: strict reads, and read-modify-write under an exclusive lock with atomic replacement.
//!
//! Modifications operate on the JSON value rather than on oci-spec types, so fields Berth does not model
//! (annotations of the index itself, entries' unknown fields) survive another tool's round trip.

use std::io::{Read, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex};
use serde_json::Value;

use super::error::{LayoutError, Result};
use super::lock::{self, TempFile, fsync_dir};
use super::{MAX_INDEX_JSON_SIZE, REF_NAME_ANNOTATION};
use crate::document::{self, Document, Expect};
use crate::io_context::IoContext;

/// Reads and strictly validates index.json.
pub(crate) fn read(root: &Path) -> Result<Document<ImageIndex>> {
    let path = root.join("index.json");
    let Some(file) = super::open_layout_file(root, "index.json")? else {
        return Err(LayoutError::NotALayout {
            path: root.to_owned(),
            reason: "index.json is missing".into(),
        });
    };
    let mut bytes = Vec::new();
    file.take(MAX_INDEX_JSON_SIZE + 1)
        .read_to_end(&mut bytes)
        .at("read", &path)?;
    let source = path.display().to_string();
    let ex = Expect {
        max_size: MAX_INDEX_JSON_SIZE,
        ..Expect::from_source(&source)
    };
    let doc = document::parse_index(bytes, ex).map_err(|error| LayoutError::BadIndex {
        path: path.clone(),
        error,
    })?;
    Ok(doc)
}

/// Writes `name` in the layout root atomically: temp file in `.berth/tmp`, fsync, rename, fsync the root.
pub(crate) fn write_atomically(root: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut temp = TempFile::new(root, name)?;
    temp.file.write_all(bytes).at("write", &temp.path)?;
    temp.file.sync_all().at("fsync", &temp.path)?;
    temp.rename_to(&root.join(name))?;
    fsync_dir(root)
}

/// Reads index.json under the exclusive index lock, lets `f` edit the `manifests` entries, and replaces the file.
pub(crate) fn update(root: &Path, f: impl FnOnce(&mut Vec<Value>) -> Result<()>) -> Result<()> {
    let _guard = lock::lock(&root.join(".berth/index.lock"), true)?;
    let doc = read(root)?;
    let path = root.join("index.json");
    let mut value: Value = serde_json::from_slice(doc.bytes()).map_err(|e| LayoutError::BadIndex {
        path: path.clone(),
        error: document::DocumentError::Json {
            source_name: path.display().to_string(),
            what: "image index",
            error: e,
        },
    })?;
    let obj = value.as_object_mut().expect("a validated index is an object");
    let mut entries = match obj.remove("manifests") {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    f(&mut entries)?;
    obj.insert("manifests".into(), Value::Array(entries));
    let bytes = serde_json::to_vec(&value).expect("a JSON value serializes");
    write_atomically(root, "index.json", &bytes)
}

/// The ref name of an entry as a JSON value.
pub(crate) fn value_ref_name(v: &Value) -> Option<&str> {
    v.get("annotations")?.get(REF_NAME_ANNOTATION)?.as_str()
}

/// An index entry for `desc`, with the ref-name annotation set (or removed when `name` is `None`).
pub(crate) fn entry_with_name(desc: &Descriptor, name: Option<&str>) -> Value {
    let mut v = serde_json::to_value(desc).expect("a descriptor serializes");
    let obj = v.as_object_mut().expect("a descriptor is an object");
    let ann = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(map) = ann.as_object_mut() {
        match name {
            Some(n) => {
                map.insert(REF_NAME_ANNOTATION.into(), Value::String(n.to_owned()));
            }
            None => {
                map.remove(REF_NAME_ANNOTATION);
            }
        }
        if map.is_empty() {
            obj.remove("annotations");
        }
    }
    v
}

/// Whether `name` follows image-spec's ref grammar: `component ("/" component)*`, where
/// `component ::= alphanum (separator alphanum)*`, `alphanum ::= [A-Za-z0-9]+`, `separator ::= [-._:@+] | "--"`.
pub(crate) fn valid_ref_name(name: &str) -> bool {
    crate::reference::validate_ref_name(name).is_ok()
}
