//! Media types of OCI and Docker schema 2 documents and layers, and the exact conversions between them.

use std::fmt;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI empty descriptor (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, uncompressed (deprecated in image-spec 1.1 but still read).
pub const OCI_LAYER_ND_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip.
pub const OCI_LAYER_ND_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd.
pub const OCI_LAYER_ND_ZSTD: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 signed manifest (read-only legacy; refused).
pub const DOCKER_MANIFEST_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign (non-distributable) layer, gzip.
pub const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (RFC 1952), possibly multi-member.
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl Compression {
    /// Sniffs the compression from the first bytes of a blob (gzip and zstd magic numbers; else tar).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The manifest format family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// OCI image-spec.
    Oci,
    /// Docker image manifest v2 schema 2.
    DockerV2S2,
}

/// What a media type denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An image manifest.
    Manifest,
    /// An index / manifest list.
    Index,
    /// An image config.
    Config,
    /// A filesystem layer.
    Layer {
        /// Compression of the blob.
        compression: Compression,
        /// Whether the layer is marked non-distributable/foreign.
        non_distributable: bool,
    },
    /// The OCI empty descriptor.
    Empty,
}

/// A known media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Known {
    /// The family.
    pub format: Format,
    /// What it denotes.
    pub kind: Kind,
    /// The exact string.
    pub name: &'static str,
}

const KNOWN: &[Known] = &[
    known(Format::Oci, Kind::Manifest, OCI_MANIFEST),
    known(Format::Oci, Kind::Index, OCI_INDEX),
    known(Format::Oci, Kind::Config, OCI_CONFIG),
    known(Format::Oci, Kind::Empty, OCI_EMPTY),
    known(Format::Oci, layer(Compression::None, false), OCI_LAYER_TAR),
    known(Format::Oci, layer(Compression::Gzip, false), OCI_LAYER_GZIP),
    known(Format::Oci, layer(Compression::Zstd, false), OCI_LAYER_ZSTD),
    known(Format::Oci, layer(Compression::None, true), OCI_LAYER_ND_TAR),
    known(Format::Oci, layer(Compression::Gzip, true), OCI_LAYER_ND_GZIP),
    known(Format::Oci, layer(Compression::Zstd, true), OCI_LAYER_ND_ZSTD),
    known(Format::DockerV2S2, Kind::Manifest, DOCKER_MANIFEST),
    known(Format::DockerV2S2, Kind::Index, DOCKER_MANIFEST_LIST),
    known(Format::DockerV2S2, Kind::Config, DOCKER_CONFIG),
    known(Format::DockerV2S2, layer(Compression::Gzip, false), DOCKER_LAYER_GZIP),
    known(Format::DockerV2S2, layer(Compression::None, false), DOCKER_LAYER_TAR),
    known(
        Format::DockerV2S2,
        layer(Compression::Gzip, true),
        DOCKER_LAYER_FOREIGN_GZIP,
    ),
];

const fn known(format: Format, kind: Kind, name: &'static str) -> Known {
    Known { format, kind, name }
}

const fn layer(compression: Compression, non_distributable: bool) -> Kind {
    Kind::Layer {
        compression,
        non_distributable,
    }
}

/// Why a media type conversion is impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// The media type is not one Berth knows.
    #[error("unknown media type {0:?}")]
    Unknown(String),
    /// The target format has no equivalent.
    #[error("media type {from:?} has no {target:?} equivalent{hint}")]
    NoEquivalent {
        /// The source media type.
        from: String,
        /// The requested format.
        target: Format,
        /// What to do instead.
        hint: &'static str,
    },
}

/// Looks up a media type string.
pub fn lookup(media_type: &str) -> Option<Known> {
    KNOWN.iter().copied().find(|k| k.name == media_type)
}

/// The kind of a media type, if known.
pub fn kind_of(media_type: &str) -> Option<Kind> {
    lookup(media_type).map(|k| k.kind)
}

/// True for manifest media types of either family.
pub fn is_manifest(media_type: &str) -> bool {
    kind_of(media_type) == Some(Kind::Manifest)
}

/// True for index / manifest-list media types of either family.
pub fn is_index(media_type: &str) -> bool {
    kind_of(media_type) == Some(Kind::Index)
}

/// The compression of a layer media type; `None` when it is not a known layer type.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match kind_of(media_type) {
        Some(Kind::Layer { compression, .. }) => Some(compression),
        _ => None,
    }
}

/// The media type denoting the same thing in `target` format.
///
/// OCI and Docker schema 2 map one to one for manifests, indexes, configs, gzip and plain tar layers, and
/// non-distributable gzip layers. zstd layers, non-distributable plain/zstd layers and the empty descriptor exist
/// only in OCI. Unknown media types are an error, never passed through silently.
pub fn convert(media_type: &str, target: Format) -> Result<&'static str, MediaTypeError> {
    let k = lookup(media_type).ok_or_else(|| MediaTypeError::Unknown(media_type.to_owned()))?;
    if k.format == target {
        return Ok(k.name);
    }
    KNOWN
        .iter()
        .find(|c| c.format == target && c.kind == k.kind)
        .map(|c| c.name)
        .ok_or_else(|| MediaTypeError::NoEquivalent {
            from: media_type.to_owned(),
            target,
            hint: match k.kind {
                Kind::Layer {
                    compression: Compression::Zstd,
                    ..
                } => "; Docker schema 2 has no zstd layers: recompress to gzip or keep the OCI format",
                _ => "; keep the OCI format",
            },
        })
}

/// The layer media type of `format` for `compression` (distributable layers).
pub fn layer_media_type(format: Format, compression: Compression) -> Result<&'static str, MediaTypeError> {
    let kind = layer(compression, false);
    KNOWN
        .iter()
        .find(|c| c.format == format && c.kind == kind)
        .map(|c| c.name)
        .ok_or(MediaTypeError::NoEquivalent {
            from: OCI_LAYER_ZSTD.to_owned(),
            target: format,
            hint: "; Docker schema 2 has no zstd layers: recompress to gzip or keep the OCI format",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_maps_to_itself() {
        for k in KNOWN {
            assert_eq!(convert(k.name, k.format).unwrap(), k.name);
            assert_eq!(lookup(k.name), Some(*k));
        }
    }

    #[test]
    fn exact_oci_docker_pairs_roundtrip() {
        let pairs = [
            (OCI_MANIFEST, DOCKER_MANIFEST),
            (OCI_INDEX, DOCKER_MANIFEST_LIST),
            (OCI_CONFIG, DOCKER_CONFIG),
            (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP),
            (OCI_LAYER_TAR, DOCKER_LAYER_TAR),
            (OCI_LAYER_ND_GZIP, DOCKER_LAYER_FOREIGN_GZIP),
        ];
        for (oci, docker) in pairs {
            assert_eq!(convert(oci, Format::DockerV2S2).unwrap(), docker);
            assert_eq!(convert(docker, Format::Oci).unwrap(), oci);
        }
    }

    #[test]
    fn zstd_has_no_docker_equivalent() {
        let e = convert(OCI_LAYER_ZSTD, Format::DockerV2S2).unwrap_err();
        assert!(e.to_string().contains("recompress to gzip"), "{e}");
        assert!(convert(OCI_LAYER_ND_ZSTD, Format::DockerV2S2).is_err());
        assert!(convert(OCI_EMPTY, Format::DockerV2S2).is_err());
        assert!(layer_media_type(Format::DockerV2S2, Compression::Zstd).is_err());
        assert_eq!(
            layer_media_type(Format::Oci, Compression::Zstd).unwrap(),
            OCI_LAYER_ZSTD
        );
    }

    #[test]
    fn unknown_types_are_errors() {
        assert_eq!(
            convert("application/x-foo", Format::Oci).unwrap_err(),
            MediaTypeError::Unknown("application/x-foo".into())
        );
        assert_eq!(kind_of(DOCKER_MANIFEST_V1_SIGNED), None);
    }

    #[test]
    fn classification() {
        assert!(is_manifest(DOCKER_MANIFEST) && is_manifest(OCI_MANIFEST));
        assert!(is_index(DOCKER_MANIFEST_LIST) && is_index(OCI_INDEX));
        assert_eq!(layer_compression(DOCKER_LAYER_GZIP), Some(Compression::Gzip));
        assert_eq!(layer_compression(OCI_LAYER_ZSTD), Some(Compression::Zstd));
        assert_eq!(layer_compression(OCI_CONFIG), None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(Compression::sniff(b"etc/\0\0"), Compression::None);
    }
}
