//! Layer diffIDs: the digest of a layer's uncompressed tar stream.

use std::io::{self, BufRead, BufReader, Read};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::media_type::Compression;

/// Why a layer's diffID could not be confirmed.
#[derive(Debug, thiserror::Error)]
pub enum DiffIdError {
    /// The blob's compression is not the one its media type states.
    #[error("layer {layer}: media type says {declared} but the content is {found}")]
    CompressionMismatch {
        /// The layer blob.
        layer: Digest,
        /// From the media type.
        declared: Compression,
        /// Sniffed from the bytes.
        found: Compression,
    },
    /// The uncompressed stream hashes to something else.
    #[error("layer {layer}: uncompressed content hashes to {found}, but the config's diff_id is {expected}")]
    Mismatch {
        /// The layer blob.
        layer: Digest,
        /// The config's diff_id.
        expected: Digest,
        /// Computed.
        found: Digest,
    },
    /// The stream could not be decompressed.
    #[error("layer {layer}")]
    Io {
        /// The layer blob.
        layer: Digest,
        /// The decoder's error.
        source: io::Error,
    },
}

/// Wraps `reader` in the decoder for `compression` (gzip accepts multi-member streams).
pub fn decoder<'a>(reader: impl Read + Send + 'a, compression: Compression) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// Computes the diffID of a layer stream whose media type declares `declared`, checking that the bytes really
/// are compressed that way. Returns the diffID and the uncompressed size.
pub fn compute(reader: impl Read + Send, declared: Compression, layer: &Digest) -> Result<(Digest, u64), DiffIdError> {
    let io_err = |source| DiffIdError::Io {
        layer: layer.clone(),
        source,
    };
    let mut buffered = BufReader::with_capacity(1 << 20, reader);
    let head = buffered.fill_buf().map_err(io_err)?;
    let found = Compression::sniff(head);
    // An uncompressed tar never starts with a compression magic; an empty blob is "uncompressed".
    if found != declared && !(declared == Compression::None && head.is_empty()) {
        return Err(DiffIdError::CompressionMismatch {
            layer: layer.clone(),
            declared,
            found,
        });
    }
    let mut dec = decoder(buffered, declared).map_err(io_err)?;
    let mut h = Hasher::new(Algorithm::Sha256);
    let n = io::copy(&mut dec, &mut h).map_err(io_err)?;
    Ok((h.finish(), n))
}

/// Computes and checks a layer's diffID.
pub fn verify(
    reader: impl Read + Send,
    declared: Compression,
    layer: &Digest,
    expected: &Digest,
) -> Result<(), DiffIdError> {
    let (found, _) = compute(reader, declared, layer)?;
    if &found != expected {
        return Err(DiffIdError::Mismatch {
            layer: layer.clone(),
            expected: expected.clone(),
            found,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_zstd_and_plain_give_the_same_diff_id() {
        let data = b"pretend this is a tar stream".repeat(100);
        let want = Digest::sha256(&data);
        let layer = Digest::sha256(b"layer");
        assert_eq!(compute(&gzip(&data)[..], Compression::Gzip, &layer).unwrap().0, want);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(compute(&z[..], Compression::Zstd, &layer).unwrap().0, want);
        assert_eq!(
            compute(&data[..], Compression::None, &layer).unwrap(),
            (want, data.len() as u64)
        );
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        let layer = Digest::sha256(&two);
        assert_eq!(
            compute(&two[..], Compression::Gzip, &layer).unwrap().0,
            Digest::sha256(b"first second")
        );
    }

    #[test]
    fn compression_must_match_media_type() {
        let layer = Digest::sha256(b"l");
        let e = compute(&gzip(b"x")[..], Compression::Zstd, &layer).unwrap_err();
        assert!(
            matches!(
                e,
                DiffIdError::CompressionMismatch {
                    found: Compression::Gzip,
                    ..
                }
            ),
            "{e}"
        );
        let e = compute(&b"plain"[..], Compression::Gzip, &layer).unwrap_err();
        assert!(
            matches!(
                e,
                DiffIdError::CompressionMismatch {
                    found: Compression::None,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn mismatch_and_truncation_are_errors() {
        let layer = Digest::sha256(b"l");
        let e = verify(&gzip(b"abc")[..], Compression::Gzip, &layer, &Digest::sha256(b"abd")).unwrap_err();
        assert!(matches!(e, DiffIdError::Mismatch { .. }), "{e}");
        let g = gzip(&b"abc".repeat(1000));
        let e = compute(&g[..g.len() / 2], Compression::Gzip, &layer).unwrap_err();
        assert!(matches!(e, DiffIdError::Io { .. }), "{e}");
    }
}
