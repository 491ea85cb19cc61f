//! Manifests, indexes and configs carried as raw bytes + digest + parsed value.
//!
//! The digest of a document is always the digest of the bytes received or written — never of a
//! re-serialization (oci-spec drops unknown fields and reorders maps, so a re-serialized document has another
//! digest). Parsing refuses what an attacker can use to make two tools see different images: documents with both
//! `manifests` and `layers`/`config` (CVE-2021-41190), a `mediaType` that disagrees with the descriptor, schema 1,
//! digests that are not canonical, and documents larger than a cap (4 MiB by default).

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::digest::{Algorithm, Digest, DigestError};
use crate::media_type::{self, Kind};

/// The default cap on the size of a manifest, index or config: 4 MiB, as registries commonly enforce.
pub const DEFAULT_MAX_DOCUMENT_SIZE: u64 = 4 * 1024 * 1024;

/// Why a document was refused.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Bigger than the cap.
    #[error("{source_name}: document of {size} bytes exceeds the {limit}-byte limit for manifests and configs")]
    TooLarge {
        /// Where the document came from (reference, path or digest).
        source_name: String,
        /// Its (claimed or real) size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// Not valid JSON of the expected shape.
    #[error("{source_name}: malformed {what}: {error}")]
    Json {
        /// Where the document came from.
        source_name: String,
        /// What was expected ("image manifest", "image index", "image config").
        what: &'static str,
        /// The parser's complaint.
        error: serde_json::Error,
    },
    /// Both `manifests` and `layers`/`config`: an index and a manifest at once.
    #[error(
        "{source_name}: ambiguous document has both \"manifests\" and \"layers\"/\"config\"; refusing it \
         (CVE-2021-41190): ask the publisher to fix the image"
    )]
    Ambiguous {
        /// Where the document came from.
        source_name: String,
    },
    /// The document's `mediaType` differs from the descriptor's.
    #[error("{source_name}: descriptor says mediaType {descriptor:?} but the document says {document:?}")]
    MediaTypeMismatch {
        /// Where the document came from.
        source_name: String,
        /// Media type in the descriptor (or expected by the caller).
        descriptor: String,
        /// Media type inside the document.
        document: String,
    },
    /// Not a manifest/index type Berth handles.
    #[error("{source_name}: unsupported media type {media_type:?}{hint}")]
    Unsupported {
        /// Where the document came from.
        source_name: String,
        /// The media type.
        media_type: String,
        /// What to do.
        hint: &'static str,
    },
    /// `schemaVersion` is not 2.
    #[error("{source_name}: schemaVersion {found:?} is not supported (only schema version 2)")]
    SchemaVersion {
        /// Where the document came from.
        source_name: String,
        /// The version found.
        found: Option<u64>,
    },
    /// A digest inside the document is not canonical.
    #[error("{source_name}: {error}")]
    BadDigest {
        /// Where the document came from.
        source_name: String,
        /// The digest error.
        error: DigestError,
    },
    /// The bytes do not hash to the expected digest.
    #[error("{source_name}: content hashes to {found}, expected {expected}")]
    DigestMismatch {
        /// Where the document came from.
        source_name: String,
        /// Expected digest.
        expected: Digest,
        /// Computed digest.
        found: Digest,
    },
    /// The config's `rootfs.diff_ids` count differs from the manifest's layer count.
    #[error(
        "{source_name}: the manifest lists {layers} layers but the config lists {diff_ids} diff_ids; the image is \
         corrupt"
    )]
    DiffIdCount {
        /// Where the document came from.
        source_name: String,
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
}

/// A parsed document together with the exact bytes it was parsed from and their digest.
#[derive(Debug, Clone)]
pub struct Document<T> {
    bytes: Vec<u8>,
    digest: Digest,
    media_type: String,
    parsed: T,
}

impl<T> Document<T> {
    /// The bytes as received or written.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The digest of [`Self::bytes`].
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    /// The media type (from the document, else from the descriptor).
    pub fn media_type(&self) -> &str {
        &self.media_type
    }
    /// The parsed value.
    pub fn parsed(&self) -> &T {
        &self.parsed
    }
    /// Size of the bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    /// Takes the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
    /// A descriptor pointing at this document.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.as_str().into(), self.size(), self.digest.to_oci())
    }
}

/// A manifest or an index: what a reference resolves to.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing would only add indirection at every use
pub enum ManifestOrIndex {
    /// An image manifest (OCI or Docker schema 2).
    Manifest(Document<ImageManifest>),
    /// An index (OCI index or Docker manifest list).
    Index(Document<ImageIndex>),
}

impl ManifestOrIndex {
    /// The digest of the document's bytes.
    pub fn digest(&self) -> &Digest {
        match self {
            ManifestOrIndex::Manifest(d) => d.digest(),
            ManifestOrIndex::Index(d) => d.digest(),
        }
    }
    /// The document's media type.
    pub fn media_type(&self) -> &str {
        match self {
            ManifestOrIndex::Manifest(d) => d.media_type(),
            ManifestOrIndex::Index(d) => d.media_type(),
        }
    }
    /// The document's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            ManifestOrIndex::Manifest(d) => d.bytes(),
            ManifestOrIndex::Index(d) => d.bytes(),
        }
    }
}

/// What parsing is told about a document: where it came from and what its descriptor claims.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// A name for error messages: a reference, a path or a digest.
    pub source: &'a str,
    /// The digest the bytes must have, if known.
    pub digest: Option<&'a Digest>,
    /// The descriptor's media type, if known.
    pub media_type: Option<&'a str>,
    /// The size cap.
    pub max_size: u64,
}

impl<'a> Expect<'a> {
    /// Expectations with only a source name and the default cap.
    pub fn from_source(source: &'a str) -> Self {
        Expect {
            source,
            digest: None,
            media_type: None,
            max_size: DEFAULT_MAX_DOCUMENT_SIZE,
        }
    }
    /// Adds the descriptor's digest and media type.
    pub fn with_descriptor(mut self, digest: &'a Digest, media_type: Option<&'a str>) -> Self {
        self.digest = Some(digest);
        self.media_type = media_type;
        self
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u64>,
    media_type: Option<String>,
    manifests: Option<Vec<ProbeDescriptor>>,
    layers: Option<Vec<ProbeDescriptor>>,
    config: Option<ProbeDescriptor>,
}

/// Just the digest of a descriptor, checked by Berth's strict parser before oci-spec sees the document, so the
/// error names the offending string.
#[derive(serde::Deserialize)]
struct ProbeDescriptor {
    digest: Option<String>,
    #[serde(flatten)]
    _rest: IgnoredAny,
}

impl Probe {
    fn descriptors(&self) -> impl Iterator<Item = &ProbeDescriptor> {
        let m = self.manifests.iter().flatten();
        let l = self.layers.iter().flatten();
        m.chain(l).chain(self.config.iter())
    }
}

fn digest_and_check(bytes: &[u8], ex: &Expect<'_>) -> Result<Digest, DocumentError> {
    if bytes.len() as u64 > ex.max_size {
        return Err(DocumentError::TooLarge {
            source_name: ex.source.to_owned(),
            size: bytes.len() as u64,
            limit: ex.max_size,
        });
    }
    let alg = ex.digest.map_or(Algorithm::Sha256, Digest::algorithm);
    let found = Digest::of_bytes(alg, bytes);
    if let Some(expected) = ex.digest
        && expected != &found
    {
        return Err(DocumentError::DigestMismatch {
            source_name: ex.source.to_owned(),
            expected: expected.clone(),
            found,
        });
    }
    Ok(found)
}

fn json<T: DeserializeOwned>(bytes: &[u8], what: &'static str, ex: &Expect<'_>) -> Result<T, DocumentError> {
    let err = |error| DocumentError::Json {
        source_name: ex.source.to_owned(),
        what,
        error,
    };
    // serde also reads a struct from a JSON array, field by position; every other tool refuses a document that
    // is not an object, so an image must not be one that only Berth can read.
    if bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b != b'{')
    {
        return Err(err(serde::de::Error::custom("expected a JSON object")));
    }
    serde_json::from_slice(bytes).map_err(err)
}

/// Parses a manifest or an index, deciding which from the descriptor's media type, the document's own
/// `mediaType`, and (for documents that name neither) its structure.
pub fn parse_manifest_or_index(bytes: Vec<u8>, ex: Expect<'_>) -> Result<ManifestOrIndex, DocumentError> {
    let digest = digest_and_check(&bytes, &ex)?;
    let probe: Probe = json(&bytes, "manifest or index", &ex)?;
    let src = || ex.source.to_owned();
    if probe.manifests.is_some() && (probe.layers.is_some() || probe.config.is_some()) {
        return Err(DocumentError::Ambiguous { source_name: src() });
    }
    if let (Some(desc), Some(doc)) = (ex.media_type, probe.media_type.as_deref())
        && desc != doc
    {
        return Err(DocumentError::MediaTypeMismatch {
            source_name: src(),
            descriptor: desc.to_owned(),
            document: doc.to_owned(),
        });
    }
    let declared = probe.media_type.clone().or_else(|| ex.media_type.map(str::to_owned));
    let kind = match declared.as_deref() {
        Some(mt) => match media_type::kind_of(mt) {
            Some(k @ (Kind::Manifest | Kind::Index)) => k,
            _ => {
                let hint = if mt == media_type::DOCKER_MANIFEST_V1_SIGNED {
                    ": Docker schema 1 is obsolete; convert the image to schema 2 or OCI"
                } else {
                    ": expected an OCI or Docker schema 2 manifest or index"
                };
                return Err(DocumentError::Unsupported {
                    source_name: src(),
                    media_type: mt.to_owned(),
                    hint,
                });
            }
        },
        None if probe.manifests.is_some() => Kind::Index,
        None if probe.config.is_some() || probe.layers.is_some() => Kind::Manifest,
        None => {
            return Err(DocumentError::Unsupported {
                source_name: src(),
                media_type: String::new(),
                hint: ": the document has no mediaType and neither manifests nor config",
            });
        }
    };
    // The structure must agree with the declared kind.
    let structural_mismatch = match kind {
        Kind::Index => probe.layers.is_some() || probe.config.is_some(),
        _ => probe.manifests.is_some(),
    };
    if structural_mismatch {
        return Err(DocumentError::MediaTypeMismatch {
            source_name: src(),
            descriptor: declared.clone().unwrap_or_default(),
            document: if kind == Kind::Index {
                "an image manifest"
            } else {
                "an image index"
            }
            .to_owned(),
        });
    }
    for d in probe.descriptors() {
        if let Some(digest) = &d.digest {
            Digest::parse(digest).map_err(|error| DocumentError::BadDigest {
                source_name: src(),
                error,
            })?;
        }
    }
    if probe.schema_version != Some(2) {
        return Err(DocumentError::SchemaVersion {
            source_name: src(),
            found: probe.schema_version,
        });
    }
    let default_mt = if kind == Kind::Index {
        media_type::OCI_INDEX
    } else {
        media_type::OCI_MANIFEST
    };
    let media_type = declared.unwrap_or_else(|| default_mt.to_owned());
    if kind == Kind::Index {
        let parsed: ImageIndex = json(&bytes, "image index", &ex)?;
        check_descriptors(parsed.manifests(), ex.source)?;
        Ok(ManifestOrIndex::Index(Document {
            bytes,
            digest,
            media_type,
            parsed,
        }))
    } else {
        let parsed: ImageManifest = json(&bytes, "image manifest", &ex)?;
        check_descriptors(std::iter::once(parsed.config()).chain(parsed.layers()), ex.source)?;
        Ok(ManifestOrIndex::Manifest(Document {
            bytes,
            digest,
            media_type,
            parsed,
        }))
    }
}

/// Parses an image manifest; an index is an error.
pub fn parse_manifest(bytes: Vec<u8>, ex: Expect<'_>) -> Result<Document<ImageManifest>, DocumentError> {
    match parse_manifest_or_index(bytes, ex)? {
        ManifestOrIndex::Manifest(m) => Ok(m),
        ManifestOrIndex::Index(i) => Err(DocumentError::MediaTypeMismatch {
            source_name: ex.source.to_owned(),
            descriptor: "an image manifest".to_owned(),
            document: i.media_type,
        }),
    }
}

/// Parses an image index; a manifest is an error.
pub fn parse_index(bytes: Vec<u8>, ex: Expect<'_>) -> Result<Document<ImageIndex>, DocumentError> {
    match parse_manifest_or_index(bytes, ex)? {
        ManifestOrIndex::Index(i) => Ok(i),
        ManifestOrIndex::Manifest(m) => Err(DocumentError::MediaTypeMismatch {
            source_name: ex.source.to_owned(),
            descriptor: "an image index".to_owned(),
            document: m.media_type,
        }),
    }
}

/// Parses an image config (OCI or Docker).
pub fn parse_config(bytes: Vec<u8>, ex: Expect<'_>) -> Result<Document<ImageConfiguration>, DocumentError> {
    let digest = digest_and_check(&bytes, &ex)?;
    let parsed: ImageConfiguration = json(&bytes, "image config", &ex)?;
    for d in parsed.rootfs().diff_ids() {
        Digest::parse(d).map_err(|error| DocumentError::BadDigest {
            source_name: ex.source.to_owned(),
            error,
        })?;
    }
    let media_type = ex.media_type.unwrap_or(media_type::OCI_CONFIG).to_owned();
    Ok(Document {
        bytes,
        digest,
        media_type,
        parsed,
    })
}

/// Checks that every descriptor's digest is canonical (algorithm + exact-length lowercase hex).
pub fn check_descriptors<'d>(
    descriptors: impl IntoIterator<Item = &'d Descriptor>,
    source: &str,
) -> Result<(), DocumentError> {
    for d in descriptors {
        Digest::from_oci(d.digest()).map_err(|error| DocumentError::BadDigest {
            source_name: source.to_owned(),
            error,
        })?;
    }
    Ok(())
}

/// Checks that a config's `rootfs.diff_ids` pairs one to one with the manifest's layers.
pub fn check_diff_id_count(
    manifest: &ImageManifest,
    config: &ImageConfiguration,
    source: &str,
) -> Result<(), DocumentError> {
    let layers = manifest.layers().len();
    let diff_ids = config.rootfs().diff_ids().len();
    if layers != diff_ids {
        return Err(DocumentError::DiffIdCount {
            source_name: source.to_owned(),
            layers,
            diff_ids,
        });
    }
    Ok(())
}

/// Builds a [`Document`] from bytes this process produced (e.g. serialized with serde_json).
pub fn own<T>(bytes: Vec<u8>, media_type: &str, parsed: T) -> Document<T> {
    let digest = Digest::sha256(&bytes);
    Document {
        bytes,
        digest,
        media_type: media_type.to_owned(),
        parsed,
    }
}

#[cfg(test)]
mod tests;
