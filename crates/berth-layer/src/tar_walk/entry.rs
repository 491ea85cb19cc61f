//! One entry as the walker yields it, and its header fields with PAX overrides applied.

use std::borrow::Cow;

use tar::{EntryType, Header};

use super::{KeyValue, SparseMap, WalkError, numeric, pax};

/// One entry, with its extension headers applied.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub(super) header: Header,
    pub(super) path: Vec<u8>,
    pub(super) link: Option<Vec<u8>>,
    pub(super) size: u64,
    pub(super) header_size: u64,
    pub(super) pax: Vec<KeyValue>,
    pub(super) sparse: Option<SparseMap>,
    pub(super) header_offset: u64,
    pub(super) data_offset: u64,
}

impl TarEntry {
    /// The entry's own header block (its fields as written: extension headers are not folded into it).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The entry's type.
    pub fn entry_type(&self) -> EntryType {
        self.header.entry_type()
    }

    /// The name: from the PAX `path` record, else the GNU long name, else the header (ustar prefix included).
    pub fn path_bytes(&self) -> &[u8] {
        &self.path
    }

    /// The name, for messages.
    pub fn path_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.path)
    }

    /// The link target (PAX `linkpath`, else the GNU long link, else the header's), if any.
    pub fn link_bytes(&self) -> Option<&[u8]> {
        self.link.as_deref()
    }

    /// Bytes of data stored in the archive after the header: the PAX `size` if there is one, else the header's.
    /// For a GNU sparse entry this is the data stored, not the file's size (see [`TarEntry::sparse`]).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The header's own size field (0 when blank).
    pub fn header_size(&self) -> u64 {
        self.header_size
    }

    /// The PAX `size` record, if there is one.
    pub fn pax_size(&self) -> Option<u64> {
        self.pax_value(b"size").and_then(pax::decimal)
    }

    /// Every PAX record of the entry's local header, in order (a key may repeat; the last one counts).
    pub fn pax_records(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pax.iter().map(|(k, v)| (&k[..], &v[..]))
    }

    /// The value of the last PAX record with this key.
    pub fn pax_value(&self, key: &[u8]) -> Option<&[u8]> {
        self.pax.iter().rev().find(|(k, _)| k == key).map(|(_, v)| &v[..])
    }

    /// The owner: PAX `uid`, else the header's field.
    pub fn uid(&self) -> Result<u64, WalkError> {
        self.id(b"uid", &self.header.as_old().uid)
    }

    /// The group: PAX `gid`, else the header's field.
    pub fn gid(&self) -> Result<u64, WalkError> {
        self.id(b"gid", &self.header.as_old().gid)
    }

    fn id(&self, key: &[u8], field: &[u8]) -> Result<u64, WalkError> {
        let what = String::from_utf8_lossy(key);
        match self.pax_value(key) {
            Some(v) => pax::decimal(v)
                .ok_or_else(|| self.malformed(format!("bad PAX {what} {:?}", String::from_utf8_lossy(v)))),
            None => numeric(field).map_err(|e| self.malformed(format!("bad {what} field: {e}"))),
        }
    }

    /// The permission bits of the header's mode field (`0o7777` at most).
    pub fn mode(&self) -> Result<u32, WalkError> {
        numeric(&self.header.as_old().mode)
            .map(|m| (m & 0o7777) as u32)
            .map_err(|e| self.malformed(format!("bad mode field: {e}")))
    }

    /// The modification time as (seconds, nanoseconds in `0..1e9`): PAX `mtime`, else the header's field.
    pub fn mtime(&self) -> Result<(i64, u32), WalkError> {
        match self.pax_value(b"mtime") {
            Some(v) => {
                pax::time(v).ok_or_else(|| self.malformed(format!("bad PAX mtime {:?}", String::from_utf8_lossy(v))))
            }
            None => numeric(&self.header.as_old().mtime)
                .ok()
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| (s, 0))
                .ok_or_else(|| self.malformed("bad mtime field")),
        }
    }

    /// Extended attributes from `SCHILY.xattr.NAME` (raw value) and `LIBARCHIVE.xattr.NAME` (URL-encoded name,
    /// base64 value) records, in order.
    pub fn xattrs(&self) -> Result<Vec<KeyValue>, WalkError> {
        let mut out = Vec::new();
        for (k, v) in self.pax_records() {
            if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                out.push((name.to_vec(), v.to_vec()));
            } else if let Some(name) = k.strip_prefix(b"LIBARCHIVE.xattr.") {
                let bad = || {
                    self.malformed(format!(
                        "malformed PAX record {:?}: the name must be URL-encoded and the value base64",
                        String::from_utf8_lossy(k)
                    ))
                };
                let name = pax::url_decode(name).ok_or_else(bad)?;
                let value = pax::base64_decode(v).ok_or_else(bad)?;
                out.push((name, value));
            }
        }
        Ok(out)
    }

    /// The sparse map of a GNU sparse entry (type `S`), validated: segments in order, inside the file, holding
    /// exactly the stored data.
    pub fn sparse(&self) -> Option<&SparseMap> {
        self.sparse.as_ref()
    }

    /// Where the entry's header (its first extension header, if it has any) starts in the stream.
    pub fn header_offset(&self) -> u64 {
        self.header_offset
    }

    /// Where the entry's data starts in the stream.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    fn malformed(&self, reason: impl Into<String>) -> WalkError {
        WalkError::malformed(&self.path, reason)
    }
}
