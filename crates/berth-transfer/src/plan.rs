//! What a copy selects and how documents are rewritten when a copy changes them (format, compression, a
//! platform subset). When nothing changes, the source bytes are written as they are, so digests are preserved.

use berth_spec::Digest;
use berth_spec::media_type::{self as mt, Format, Kind};
use berth_spec::platform::Platform;
use oci_spec::image::Descriptor;
use serde_json::Value;

use crate::error::CopyError;

/// The media types asked for when fetching a manifest.
pub const ACCEPT: &[&str] = &[
    mt::OCI_MANIFEST,
    mt::OCI_INDEX,
    mt::DOCKER_MANIFEST,
    mt::DOCKER_MANIFEST_LIST,
];

/// Which images of an index are copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    /// The one for this host (the default, as skopeo).
    #[default]
    Host,
    /// The one for a given platform (`--override-os/arch`-like).
    One(Platform),
    /// The whole index (`--all`).
    All,
    /// A subset (`--platform`, repeatable): a new index naming only those.
    Platforms(Vec<Platform>),
}

/// The strict digest of a descriptor.
pub fn digest_of(desc: &Descriptor) -> Result<Digest, CopyError> {
    Digest::from_oci(desc.digest()).map_err(|error| {
        CopyError::Document(berth_spec::document::DocumentError::BadDigest {
            source_name: "descriptor".into(),
            error,
        })
    })
}

/// The format of a manifest/index media type.
pub fn format_of(media_type: &str) -> Option<Format> {
    mt::lookup(media_type).map(|k| k.format)
}

/// A descriptor as JSON with new digest, size and media type, keeping every other field (annotations, platform,
/// urls, unknown fields).
pub fn rewrite_descriptor(original: &Value, digest: &Digest, size: u64, media_type: &str) -> Value {
    let mut v = original.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("mediaType".into(), Value::String(media_type.to_owned()));
        o.insert("digest".into(), Value::String(digest.to_string()));
        o.insert("size".into(), Value::from(size));
    }
    v
}

/// Media type of `kind` things in `format`, converting when the target differs (refusing what has no equivalent).
pub fn convert_media_type(media_type: &str, target: Option<Format>, what: &str) -> Result<String, CopyError> {
    match target {
        None => Ok(media_type.to_owned()),
        Some(f) => match mt::kind_of(media_type) {
            Some(_) => mt::convert(media_type, f)
                .map(str::to_owned)
                .map_err(|e| CopyError::usage(format!("{what}: {e}"))),
            // Unknown media types (artifacts' layers, foreign types) pass through unchanged.
            None => Ok(media_type.to_owned()),
        },
    }
}

/// True for layer media types Berth can decompress and recompress.
pub fn is_layer(media_type: &str) -> bool {
    matches!(mt::kind_of(media_type), Some(Kind::Layer { .. }))
}

/// Drops what a Docker schema 2 manifest or manifest list has no field for (`annotations`, `artifactType`,
/// `subject`, at the top and in descriptors) when `media_type` is a Docker one, as skopeo does when converting.
pub fn fit_to_format(document: &mut Value, media_type: &str) {
    if format_of(media_type) != Some(Format::DockerV2S2) {
        return;
    }
    let strip = |v: &mut Value| {
        if let Some(o) = v.as_object_mut() {
            for key in ["annotations", "artifactType", "subject"] {
                o.remove(key);
            }
        }
    };
    strip(document);
    if let Some(config) = document.get_mut("config") {
        strip(config);
    }
    for list in ["layers", "manifests"] {
        if let Some(Value::Array(items)) = document.get_mut(list) {
            items.iter_mut().for_each(strip);
        }
    }
}

/// Serializes a rewritten document the way registries and other tools expect (compact JSON).
pub fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serializes")
}
