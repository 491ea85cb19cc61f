//! PAX extended header records (`LEN KEY=VALUE\n`) and the encodings of their values.

/// Splits a PAX header into its records, strictly: every record's length must cover exactly one
/// `LEN KEY=VALUE\n` line, and keys must not be empty.
pub(super) fn parse(mut data: &[u8]) -> Result<Vec<super::KeyValue>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or("a record does not start with its length")?;
        let len = decimal(&data[..space])
            .and_then(|l| usize::try_from(l).ok())
            .ok_or("a record's length is not a number")?;
        if len <= space + 1 || len > data.len() {
            return Err(format!(
                "a record claims {len} bytes but {} remain in the header",
                data.len()
            ));
        }
        let record = &data[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or("a record does not end with a newline where its length says")?;
        let eq = record.iter().position(|&b| b == b'=').ok_or("a record has no `=`")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.is_empty() || key.contains(&0) {
            return Err("a record has an empty key or a NUL in its key".into());
        }
        out.push((key.to_vec(), value.to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// A non-negative decimal number (`uid`, `gid`, `size`).
pub(super) fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time (`mtime`): decimal seconds, possibly negative, with an optional fraction (nanoseconds kept).
/// Returns (seconds, nanoseconds in `0..1e9`), so -1.5 is (-2, 500000000).
pub(super) fn time(v: &[u8]) -> Option<(i64, u32)> {
    let v = std::str::from_utf8(v).ok()?;
    let (negative, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (secs, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos: u32 = format!("{:0<9}", frac.get(..9).unwrap_or(frac)).parse().ok()?;
    if !negative {
        return Some((secs, nanos));
    }
    if nanos == 0 {
        Some((secs.checked_neg()?, 0))
    } else {
        Some((secs.checked_neg()?.checked_sub(1)?, 1_000_000_000 - nanos))
    }
}

/// Decodes `%XX` escapes (libarchive URL-encodes xattr names in `LIBARCHIVE.xattr.NAME`).
pub(super) fn url_decode(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hex = std::str::from_utf8(v.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Decodes standard base64, with or without `=` padding (libarchive writes it without).
pub(super) fn base64_decode(v: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let v = v.strip_suffix(b"==").or_else(|| v.strip_suffix(b"=")).unwrap_or(v);
    if v.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    for chunk in v.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | digit(c)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}
