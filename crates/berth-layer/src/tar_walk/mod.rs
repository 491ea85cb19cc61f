//! Reading a tar stream header by header, with every extension header held under a cap.
//!
//! [`TarWalker`] yields one [`TarEntry`] per file-system entry — with GNU long names and long links, PAX records
//! and the GNU old-style sparse map already applied — and then reads that entry's data. It is the one tar reader
//! of Berth: layers are applied through it and image archives are walked through it, so both read the same
//! archive the same way, and neither lets the `tar` crate read extension headers into memory on its own (`tar` is
//! used only to parse header blocks).
//!
//! Memory stays bounded whatever the stream holds: a GNU long name or long link, a PAX header (local or global)
//! may hold at most [`MAX_EXTENSION`] bytes, as in Go's `archive/tar`, and a GNU sparse map at most
//! [`MAX_SPARSE_HEADERS`] bytes of extended headers. Bigger ones are refused from their header, before anything
//! is read. Time is linear in the stream's size.
//!
//! Where tar readers disagree, the walker does what Go's `archive/tar` (and so containerd) does:
//! a later `x` header replaces an earlier one; PAX `path` and `linkpath` win over GNU long names; a PAX `size`
//! wins over the header's size field (Go writes 0 there for files of 8 GiB and more); names end at their first
//! NUL; blank numeric fields read as 0; the header checksum may be summed signed or unsigned; the stream ends at
//! the first all-zero block or at end of file on a block boundary. What follows the end is left unread.
//!
//! ```
//! use berth_layer::tar_walk::TarWalker;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut b = tar::Builder::new(Vec::new());
//! let mut h = tar::Header::new_gnu();
//! h.set_size(5);
//! b.append_data(&mut h, "hello.txt", &b"hello"[..])?;
//! let bytes = b.into_inner()?;
//!
//! let mut walker = TarWalker::new(&bytes[..]);
//! while let Some(entry) = walker.next_entry()? {
//!     let mut data = Vec::new();
//!     std::io::Read::read_to_end(&mut walker.data(), &mut data)?;
//!     assert_eq!((entry.path_bytes(), &data[..]), (&b"hello.txt"[..], &b"hello"[..]));
//! }
//! # Ok(()) }
//! ```

mod entry;
mod pax;
mod sparse;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::{self, Read, Seek};

use tar::{EntryType, Header};

pub use entry::TarEntry;
pub use sparse::{SparseMap, SparseSegment};

/// The most bytes a GNU long name, GNU long link or PAX header may hold (Go's `maxSpecialFileSize`).
pub const MAX_EXTENSION: u64 = 1 << 20;
/// The most bytes of extended sparse headers one GNU sparse entry may have (2,048 blocks, 43,008 segments).
pub const MAX_SPARSE_HEADERS: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// A (key, value) pair: a PAX record, or an extended attribute's name and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Why a tar stream could not be walked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// Reading failed, or the stream ends inside a header or an entry's data.
    #[error("malformed or truncated tar stream after {entries} entries")]
    Read {
        /// Entries read before the failure.
        entries: u64,
        /// The reader's error (`UnexpectedEof` when the stream is truncated).
        source: io::Error,
    },
    /// A header block whose checksum does not match its content.
    #[error("the tar header at byte {offset} (after {entries} entries) fails its checksum: the stream is corrupt")]
    Checksum {
        /// Entries read before it.
        entries: u64,
        /// Where the header starts in the stream.
        offset: u64,
    },
    /// An extension header bigger than Berth reads into memory.
    #[error("{header}: its {what} is {size} bytes, over the {limit}-byte limit; the archive is malformed or hostile")]
    TooLarge {
        /// The extension header's own name (`././@LongLink`, `PaxHeaders/...`).
        header: String,
        /// What kind of extension header (`GNU long name`, `PAX header`, …).
        what: &'static str,
        /// The size its header claims.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// A header, PAX record or sparse map that cannot be read.
    #[error("{entry}: {reason}")]
    Malformed {
        /// The entry (or extension header) involved, as named in the archive.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The stream ends after an extension header, with no entry for it to describe.
    #[error("the archive ends after a {what} with no entry for it to describe; it is truncated or malformed")]
    DanglingExtension {
        /// Entries read before it.
        entries: u64,
        /// The last extension header read.
        what: &'static str,
    },
}

impl WalkError {
    fn malformed(entry: &[u8], reason: impl Into<String>) -> WalkError {
        WalkError::Malformed {
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }
}

/// Parses a numeric header field: octal text (spaces and NULs around it ignored, blank is 0) or GNU base-256.
pub(crate) fn numeric(field: &[u8]) -> Result<u64, String> {
    if let Some((&first, rest)) = field.split_first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return Err("negative base-256 number".into());
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for &b in rest {
            v = v
                .checked_mul(256)
                .map(|v| v | u64::from(b))
                .ok_or("base-256 number out of range")?;
        }
        return Ok(v);
    }
    let blank = |b: &u8| *b == 0 || *b == b' ';
    let start = field.iter().position(|b| !blank(b)).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !blank(b)).map_or(start, |i| i + 1);
    let text = &field[start..end];
    if text.is_empty() {
        return Ok(0);
    }
    text.iter().try_fold(0u64, |v, &b| match b {
        b'0'..=b'7' => v
            .checked_mul(8)
            .map(|v| v + u64::from(b - b'0'))
            .ok_or_else(|| "octal number out of range".to_string()),
        _ => Err(format!("{:?} is not an octal number", String::from_utf8_lossy(text))),
    })
}

/// The part of a name before its first NUL.
fn until_nul(mut b: Vec<u8>) -> Vec<u8> {
    if let Some(i) = b.iter().position(|&c| c == 0) {
        b.truncate(i);
    }
    b
}

fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Extension headers read, waiting for the entry they describe.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<KeyValue>>,
    /// The last one read, for the error when the stream ends after it.
    last: Option<&'static str>,
}

/// Walks a tar stream entry by entry; see the [module documentation](self).
pub struct TarWalker<R> {
    reader: R,
    seek: Option<fn(&mut R, i64) -> io::Result<()>>,
    /// Bytes consumed from the stream.
    pos: u64,
    /// Entries returned so far.
    entries: u64,
    /// Unread data of the current entry, and the padding after it.
    data_left: u64,
    padding: u64,
    ended: bool,
}

impl<R> std::fmt::Debug for TarWalker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWalker")
            .field("pos", &self.pos)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl<R: Read> TarWalker<R> {
    /// Walks a stream, skipping unread data by reading it.
    pub fn new(reader: R) -> Self {
        TarWalker {
            reader,
            seek: None,
            pos: 0,
            entries: 0,
            data_left: 0,
            padding: 0,
            ended: false,
        }
    }

    /// Entries returned so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes consumed from the stream so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The reader, positioned after the end-of-archive block once [`TarWalker::next_entry`] has returned `None`.
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// The next entry, or `None` at the end of the archive. Data of the previous entry left unread is skipped.
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>, WalkError> {
        if self.ended {
            return Ok(None);
        }
        self.skip(self.data_left + self.padding)?;
        self.data_left = 0;
        self.padding = 0;
        let mut pending = Pending::default();
        let mut first_offset = None;
        loop {
            let offset = self.pos;
            let Some(header) = self.read_header()? else {
                self.ended = true;
                return match pending.last {
                    Some(what) => Err(WalkError::DanglingExtension {
                        entries: self.entries,
                        what,
                    }),
                    None => Ok(None),
                };
            };
            let first_offset = *first_offset.get_or_insert(offset);
            let size = numeric(&header.as_old().size)
                .map_err(|e| WalkError::malformed(&header.path_bytes(), format!("bad size field: {e}")))?;
            match header.entry_type() {
                EntryType::GNULongName => {
                    let name = self.read_extension(&header, size, "GNU long name")?;
                    pending.long_name = Some(until_nul(name));
                    pending.last = Some("GNU long name");
                }
                EntryType::GNULongLink => {
                    let link = self.read_extension(&header, size, "GNU long link")?;
                    pending.long_link = Some(until_nul(link));
                    pending.last = Some("GNU long link");
                }
                EntryType::XHeader => {
                    let data = self.read_extension(&header, size, "PAX header")?;
                    let records = pax::parse(&data).map_err(|reason| {
                        WalkError::malformed(&header.path_bytes(), format!("malformed PAX header: {reason}"))
                    })?;
                    pending.pax = Some(records);
                    pending.last = Some("PAX header");
                }
                // Global records carry defaults (comments, mtimes) that no consumer uses: checked and skipped.
                EntryType::XGlobalHeader => {
                    self.check_extension_size(&header, size, "PAX global header")?;
                    self.skip(size + padding(size))?;
                }
                _ => return self.finish_entry(header, size, pending, first_offset).map(Some),
            }
        }
    }

    /// A reader of the current entry's data (its stored bytes: for a sparse entry, the segments back to back).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { walker: self }
    }

    fn finish_entry(
        &mut self,
        header: Header,
        header_size: u64,
        pending: Pending,
        header_offset: u64,
    ) -> Result<TarEntry, WalkError> {
        let pax = pending.pax.unwrap_or_default();
        let last = |key: &[u8]| pax.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let mut path = pending.long_name.unwrap_or_else(|| header.path_bytes().into_owned());
        let mut link = pending
            .long_link
            .or_else(|| header.link_name_bytes().map(Cow::into_owned));
        for key in [&b"path"[..], b"linkpath"] {
            let Some(v) = last(key) else { continue };
            if v.contains(&0) {
                return Err(WalkError::malformed(
                    &path,
                    format!("its PAX {} contains a NUL byte", String::from_utf8_lossy(key)),
                ));
            }
            if key == b"path" {
                path = v;
            } else {
                link = Some(v);
            }
        }
        let link = link.filter(|l| !l.is_empty());
        let size = match last(b"size") {
            Some(v) => pax::decimal(&v).ok_or_else(|| {
                WalkError::malformed(
                    &path,
                    format!("its PAX size {:?} is not a number", String::from_utf8_lossy(&v)),
                )
            })?,
            None => header_size,
        };
        let sparse = if header.entry_type() == EntryType::GNUSparse {
            Some(self.read_sparse_map(&header, size, &path)?)
        } else {
            None
        };
        self.entries += 1;
        self.data_left = size;
        self.padding = padding(size);
        Ok(TarEntry {
            header,
            path,
            link,
            size,
            header_size,
            pax,
            sparse,
            header_offset,
            data_offset: self.pos,
        })
    }

    fn read_sparse_map(&mut self, header: &Header, stored: u64, path: &[u8]) -> Result<SparseMap, WalkError> {
        let gnu = header
            .as_gnu()
            .ok_or_else(|| WalkError::malformed(path, "a GNU sparse entry (type S) without a GNU header"))?;
        let mut builder = sparse::Builder::new(path);
        builder.add(&gnu.sparse)?;
        let mut more = gnu.isextended[0] != 0;
        let mut extended = 0u64;
        while more {
            extended += BLOCK;
            if extended > MAX_SPARSE_HEADERS {
                return Err(WalkError::malformed(
                    path,
                    format!(
                        "its GNU sparse map runs over {MAX_SPARSE_HEADERS} bytes of extended headers; the archive is \
                         malformed or hostile"
                    ),
                ));
            }
            let mut ext = tar::GnuExtSparseHeader::new();
            self.read_exact(ext.as_mut_bytes(), "the stream ends inside a GNU sparse map")?;
            builder.add(ext.sparse())?;
            more = ext.isextended[0] != 0;
        }
        let real_size = numeric(&gnu.realsize).map_err(|e| WalkError::malformed(path, format!("bad realsize: {e}")))?;
        builder.finish(real_size, stored)
    }

    fn check_extension_size(&self, header: &Header, size: u64, what: &'static str) -> Result<(), WalkError> {
        if size > MAX_EXTENSION {
            return Err(WalkError::TooLarge {
                header: String::from_utf8_lossy(&header.path_bytes()).into_owned(),
                what,
                size,
                limit: MAX_EXTENSION,
            });
        }
        Ok(())
    }

    fn read_extension(&mut self, header: &Header, size: u64, what: &'static str) -> Result<Vec<u8>, WalkError> {
        self.check_extension_size(header, size, what)?;
        let mut data = vec![0u8; size as usize];
        self.read_exact(&mut data, "the stream ends inside an extension header")?;
        self.skip(padding(size))?;
        Ok(data)
    }

    /// The next header block; `None` at end of file or at an all-zero block.
    fn read_header(&mut self) -> Result<Option<Header>, WalkError> {
        let mut header = Header::new_old();
        let n = self.fill(header.as_mut_bytes()).map_err(|e| self.read_error(e))?;
        if n == 0 {
            return Ok(None);
        }
        if n < BLOCK as usize {
            return Err(self.truncated("the stream ends inside a tar header"));
        }
        let bytes = header.as_bytes();
        if bytes.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let stored = numeric(&header.as_old().cksum).ok();
        let spaces = 8 * u64::from(b' ');
        let field = 148..156;
        let unsigned: u64 = spaces
            + bytes
                .iter()
                .enumerate()
                .filter(|(i, _)| !field.contains(i))
                .map(|(_, &b)| u64::from(b))
                .sum::<u64>();
        let signed: i64 = spaces as i64
            + bytes
                .iter()
                .enumerate()
                .filter(|(i, _)| !field.contains(i))
                .map(|(_, &b)| i64::from(b as i8))
                .sum::<i64>();
        if stored != Some(unsigned) && stored.map(|s| s as i64) != Some(signed) {
            return Err(WalkError::Checksum {
                entries: self.entries,
                offset: self.pos - BLOCK,
            });
        }
        Ok(Some(header))
    }

    /// Reads until `buf` is full or the stream ends; returns how many bytes were read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.reader.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    self.pos += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn read_exact(&mut self, buf: &mut [u8], truncated: &str) -> Result<(), WalkError> {
        let n = self.fill(buf).map_err(|e| self.read_error(e))?;
        if n < buf.len() {
            return Err(self.truncated(truncated));
        }
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<(), WalkError> {
        if n == 0 {
            return Ok(());
        }
        if let Some(seek) = self.seek {
            let delta = i64::try_from(n).map_err(|_| self.truncated("an entry's size is out of range"))?;
            seek(&mut self.reader, delta).map_err(|e| self.read_error(e))?;
            self.pos += n;
            return Ok(());
        }
        let mut buf = [0u8; 8192];
        let mut left = n;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let k = self.fill(&mut buf[..want]).map_err(|e| self.read_error(e))?;
            if k < want {
                return Err(self.truncated("the stream ends inside an entry's data"));
            }
            left -= k as u64;
        }
        Ok(())
    }

    fn read_error(&self, source: io::Error) -> WalkError {
        WalkError::Read {
            entries: self.entries,
            source,
        }
    }

    fn truncated(&self, what: &str) -> WalkError {
        self.read_error(io::Error::new(io::ErrorKind::UnexpectedEof, what.to_owned()))
    }
}

impl<R: Read + Seek> TarWalker<R> {
    /// Walks a seekable stream (a file), skipping unread data by seeking. Data past the end of the file is not
    /// noticed until it is read: callers that only record offsets check them against the file's length.
    pub fn seekable(reader: R) -> Self {
        TarWalker {
            seek: Some(|r, n| r.seek_relative(n)),
            ..TarWalker::new(reader)
        }
    }
}

/// The data of the current entry; see [`TarWalker::data`]. Fails with `UnexpectedEof` if the stream ends early.
#[derive(Debug)]
pub struct EntryData<'a, R> {
    walker: &'a mut TarWalker<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let w = &mut *self.walker;
        if w.data_left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(w.data_left).unwrap_or(usize::MAX));
        let n = loop {
            match w.reader.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the stream ends {} bytes before the end of entry {}'s data (truncated)",
                    w.data_left, w.entries
                ),
            ));
        }
        w.data_left -= n as u64;
        w.pos += n as u64;
        Ok(n)
    }
}
