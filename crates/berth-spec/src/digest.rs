//! Content digests: parsing, hashing and verification.
//!
//! A [`Digest`] is `ALGORITHM:HEX` where the algorithm is `sha256` or `sha512` and the hex part has exactly the
//! length that algorithm produces, in lowercase. Everything else is rejected at parse time with an error that
//! names the offending string, so a digest can never smuggle a path (`sha256:../../x`) into a file name.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm Berth can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm every OCI implementation must support.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears in a digest string and in `blobs/<alg>/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lowercase hex encoding.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` separates algorithm and hex.
    #[error("invalid digest {input:?}: expected ALGORITHM:HEX such as sha256:<64 hex digits>")]
    MissingSeparator {
        /// The string as given.
        input: String,
    },
    /// The algorithm is neither sha256 nor sha512.
    #[error("invalid digest {input:?}: unsupported algorithm {algorithm:?} (supported: sha256, sha512)")]
    UnsupportedAlgorithm {
        /// The string as given.
        input: String,
        /// The algorithm part.
        algorithm: String,
    },
    /// The hex part has the wrong length for its algorithm.
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex digits, found {found}")]
    WrongLength {
        /// The string as given.
        input: String,
        /// The algorithm.
        algorithm: Algorithm,
        /// Required hex length.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// The hex part contains something other than `0-9a-f`.
    #[error("invalid digest {input:?}: the hex part must be lowercase 0-9a-f")]
    BadHex {
        /// The string as given.
        input: String,
    },
}

/// A validated content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses and validates `ALGORITHM:HEX`.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        let Some((alg, hex)) = input.split_once(':') else {
            return Err(DigestError::MissingSeparator {
                input: input.to_owned(),
            });
        };
        let Some(algorithm) = Algorithm::from_name(alg) else {
            return Err(DigestError::UnsupportedAlgorithm {
                input: input.to_owned(),
                algorithm: alg.to_owned(),
            });
        };
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::WrongLength {
                input: input.to_owned(),
                algorithm,
                expected: algorithm.hex_len(),
                found: hex.len(),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::BadHex {
                input: input.to_owned(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of_bytes(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        Self::of_bytes(Algorithm::Sha256, bytes)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part, safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for messages: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm, &self.hex[..12])
    }

    /// The equivalent oci-spec digest.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // Our validation is stricter than oci-spec's, so this cannot fail.
        oci_spec::image::Digest::from_str(&self.to_string()).expect("validated digest is a valid oci-spec digest")
    }

    /// Converts (and re-validates strictly) an oci-spec digest.
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Self, DigestError> {
        Self::parse(d.as_ref())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A streaming hasher for one algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-512 state.
    Sha512(Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algorithm())
    }
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

impl io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why verified content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// More bytes arrived than the descriptor's size.
    #[error("content of {expected_digest} is longer than the {expected_size} bytes its descriptor states")]
    TooLong {
        /// Expected digest.
        expected_digest: Digest,
        /// Expected size.
        expected_size: u64,
    },
    /// The content ended before the descriptor's size.
    #[error(
        "content of {expected_digest} is {found} bytes, shorter than the {expected_size} bytes its descriptor states"
    )]
    TooShort {
        /// Expected digest.
        expected_digest: Digest,
        /// Expected size.
        expected_size: u64,
        /// Bytes read.
        found: u64,
    },
    /// The bytes hash to something else.
    #[error("digest mismatch: expected {expected}, content hashes to {found}")]
    DigestMismatch {
        /// Expected digest.
        expected: Digest,
        /// Computed digest.
        found: Digest,
    },
}

impl From<VerifyError> for io::Error {
    fn from(e: VerifyError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

impl VerifyError {
    /// Recovers a `VerifyError` carried inside an `io::Error`.
    pub fn from_io(e: &io::Error) -> Option<&VerifyError> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<VerifyError>())
    }
}

/// Checks a finished hash and count against what was expected.
pub fn check(expected: &Digest, expected_size: u64, found: Digest, found_size: u64) -> Result<(), VerifyError> {
    if found_size > expected_size {
        return Err(VerifyError::TooLong {
            expected_digest: expected.clone(),
            expected_size,
        });
    }
    if found_size < expected_size {
        return Err(VerifyError::TooShort {
            expected_digest: expected.clone(),
            expected_size,
            found: found_size,
        });
    }
    if &found != expected {
        return Err(VerifyError::DigestMismatch {
            expected: expected.clone(),
            found,
        });
    }
    Ok(())
}

/// A reader that hashes and counts what passes through it and fails — as soon as it can tell — when the content
/// does not match the expected digest and size: on the first byte past the size, and at end of stream on a short
/// read or a digest mismatch. Nothing a caller reads past a failure is ever returned as success.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: u64,
    read: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting exactly `expected_size` bytes that hash to `expected`.
    pub fn new(inner: R, expected: Digest, expected_size: u64) -> Self {
        let hasher = Some(Hasher::new(expected.algorithm()));
        VerifyingReader {
            inner,
            hasher,
            expected,
            expected_size,
            read: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Reads to the end, discarding, and reports whether the content verified.
    pub fn drain(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink()).map(|_| ())
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(hasher) = self.hasher.as_mut() else {
            // Already verified to the end.
            return Ok(0);
        };
        // Ask for at most one byte past the expected end so an over-long body is caught without reading it all.
        let remaining = self.expected_size.saturating_sub(self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            let hasher = self.hasher.take().expect("hasher present");
            check(&self.expected, self.expected_size, hasher.finish(), self.read)?;
            return Ok(0);
        }
        self.read += n as u64;
        if self.read > self.expected_size {
            self.hasher = None;
            return Err(VerifyError::TooLong {
                expected_digest: self.expected.clone(),
                expected_size: self.expected_size,
            }
            .into());
        }
        hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::sha256(b"").to_string(), EMPTY_SHA256);
        assert_eq!(
            Digest::of_bytes(Algorithm::Sha512, b"abc").to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn parse_roundtrip() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(Digest::from_oci(&d.to_oci()).unwrap(), d);
    }

    #[test]
    fn rejects_path_traversal() {
        let e = Digest::parse("sha256:../../x").unwrap_err();
        assert!(matches!(e, DigestError::WrongLength { found: 7, .. }), "{e:?}");
        assert!(e.to_string().contains("sha256:../../x"));
        let padded = format!("sha256:../../{}", "a".repeat(58));
        assert!(matches!(
            Digest::parse(&padded).unwrap_err(),
            DigestError::BadHex { .. }
        ));
    }

    #[test]
    fn rejects_uppercase_wrong_length_unknown_algorithm() {
        let upper = EMPTY_SHA256.to_uppercase().replacen("SHA256", "sha256", 1);
        assert!(matches!(Digest::parse(&upper).unwrap_err(), DigestError::BadHex { .. }));
        assert!(matches!(
            Digest::parse(&EMPTY_SHA256[..70]).unwrap_err(),
            DigestError::WrongLength {
                expected: 64,
                found: 63,
                ..
            }
        ));
        let e = Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert!(matches!(e, DigestError::UnsupportedAlgorithm { ref algorithm, .. } if algorithm == "md5"));
        assert!(matches!(
            Digest::parse("nocolon").unwrap_err(),
            DigestError::MissingSeparator { .. }
        ));
        assert!(matches!(
            Digest::parse("SHA256:abc").unwrap_err(),
            DigestError::UnsupportedAlgorithm { .. }
        ));
    }

    fn read_all(data: &[u8], d: &Digest, size: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        VerifyingReader::new(data, d.clone(), size).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn verifying_reader_accepts_exact_content() {
        let data = b"hello world";
        let d = Digest::sha256(data);
        assert_eq!(read_all(data, &d, 11).unwrap(), data);
    }

    #[test]
    fn verifying_reader_rejects_one_byte_longer_or_shorter() {
        let data = b"hello world";
        let d = Digest::sha256(data);
        let e = read_all(data, &d, 10).unwrap_err();
        assert!(matches!(
            VerifyError::from_io(&e),
            Some(VerifyError::TooLong { expected_size: 10, .. })
        ));
        let e = read_all(data, &d, 12).unwrap_err();
        assert!(matches!(
            VerifyError::from_io(&e),
            Some(VerifyError::TooShort { found: 11, .. })
        ));
    }

    #[test]
    fn verifying_reader_rejects_wrong_content() {
        let d = Digest::sha256(b"hello world");
        let e = read_all(b"hello WORLD", &d, 11).unwrap_err();
        assert!(matches!(
            VerifyError::from_io(&e),
            Some(VerifyError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn verifying_reader_never_trusts_a_huge_size() {
        // A size of 2^63 must not be used to allocate; reading stops at the real end and reports short.
        let d = Digest::sha256(b"x");
        let e = read_all(b"x", &d, 1 << 63).unwrap_err();
        assert!(matches!(
            VerifyError::from_io(&e),
            Some(VerifyError::TooShort { found: 1, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_canonical(s in ".{0,140}") {
            if let Ok(d) = Digest::parse(&s) {
                proptest::prop_assert_eq!(d.to_string(), s);
            }
        }

        #[test]
        fn valid_digests_roundtrip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64), sha512 in proptest::bool::ANY) {
            let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let d = Digest::of_bytes(alg, &bytes);
            proptest::prop_assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn any_hex_of_right_length_parses(hex in "[0-9a-f]{64}") {
            let s = format!("sha256:{hex}");
            proptest::prop_assert!(Digest::parse(&s).is_ok());
        }

        #[test]
        fn a_non_hex_char_is_refused(hex in "[0-9a-f]{63}", bad in "[^0-9a-f]") {
            let s = format!("sha256:{hex}{bad}");
            proptest::prop_assert!(Digest::parse(&s).is_err());
        }
    }
}
