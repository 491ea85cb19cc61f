//! The `digest` target: [`berth_spec::Digest::parse`].
//!
//! Oracle: no panic; a digest that parses is canonical (it displays as exactly the input: a known algorithm,
//! `:`, lowercase hex of the algorithm's length, so it is safe as a file name), and it survives the conversions
//! the rest of Berth makes: to and from oci-spec's digest, and through serde.

use berth_spec::Digest;

/// The target.
pub fn run(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let digest = match Digest::parse(&input) {
        Ok(d) => d,
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            return;
        }
    };
    assert_eq!(digest.to_string(), input, "a parsed digest is not canonical");
    assert_eq!(digest.hex().len(), digest.algorithm().hex_len());
    assert!(
        digest.hex().bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{digest}: the hex part must be safe as a file name"
    );
    assert_eq!(Digest::from_oci(&digest.to_oci()).as_ref(), Ok(&digest));
    let json = serde_json::to_string(&digest).expect("a digest serializes");
    let back: Digest = serde_json::from_str(&json).expect("a serialized digest deserializes");
    assert_eq!(back, digest);
    let _ = digest.short();
}

/// Seed inputs: valid digests of both algorithms and the hostile spellings of HOSTILE-INPUTS.md item 2.
pub fn seeds() -> Vec<Vec<u8>> {
    let sha256 = Digest::sha256(b"berth").to_string();
    let sha512 = Digest::of_bytes(berth_spec::Algorithm::Sha512, b"berth").to_string();
    let hex = &sha256["sha256:".len()..];
    [
        sha256.clone(),
        sha512,
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha256:{}", &hex[1..]),
        format!("sha256:{hex}0"),
        "sha256:../../../etc/passwd".to_owned(),
        format!("sha256+b64:{hex}"),
        format!("md5:{}", &hex[..32]),
        format!("SHA256:{hex}"),
        format!("sha256::{hex}"),
        hex.to_owned(),
        String::new(),
        ":".to_owned(),
        format!("sha256:{}\u{0}", &hex[..63]),
        format!("sha256:{}é", &hex[..62]),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}
