//! A tar writer that writes whatever it is told: the seeds of the layer target need headers no well-behaved
//! archiver produces (names with `..`, base-256 numbers, modes above 07777, GNU sparse maps that claim a
//! terabyte, PAX records that override the size), so headers are laid out by hand here rather than through the
//! `tar` crate's builder, which refuses or normalizes most of them.

/// Entry type flags (POSIX ustar, GNU and PAX).
pub mod kind {
    /// A regular file.
    pub const FILE: u8 = b'0';
    /// A hard link to `link`.
    pub const HARDLINK: u8 = b'1';
    /// A symbolic link to `link`.
    pub const SYMLINK: u8 = b'2';
    /// A character device.
    pub const CHAR: u8 = b'3';
    /// A block device.
    pub const BLOCK: u8 = b'4';
    /// A directory.
    pub const DIR: u8 = b'5';
    /// A FIFO.
    pub const FIFO: u8 = b'6';
    /// PAX records for the next entry.
    pub const PAX: u8 = b'x';
    /// PAX records for every following entry.
    pub const PAX_GLOBAL: u8 = b'g';
    /// GNU: the next entry's name.
    pub const GNU_LONG_NAME: u8 = b'L';
    /// GNU: the next entry's link target.
    pub const GNU_LONG_LINK: u8 = b'K';
    /// GNU: a sparse file (old GNU format, map in the header).
    pub const GNU_SPARSE: u8 = b'S';
}

/// How numeric fields are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// NUL-terminated octal, as POSIX says (values too big for the field are cut to its low digits).
    Octal,
    /// GNU base-256: the high bit of the first byte set, then the value big-endian.
    Base256,
}

/// One header's fields; [`TarWriter::entry`] lays them out.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// Entry name (up to 100 bytes; longer names are cut: use PAX or a GNU long name for more).
    pub name: &'a [u8],
    /// Mode bits, written as given (may exceed 07777).
    pub mode: u64,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// The size field; `None` writes the data's length.
    pub size: Option<u64>,
    /// Modification time.
    pub mtime: u64,
    /// Type flag, see [`kind`].
    pub kind: u8,
    /// Link target for links (up to 100 bytes).
    pub link: &'a [u8],
    /// GNU magic (`ustar  \0`) instead of POSIX (`ustar\000`).
    pub gnu: bool,
    /// Device major and minor.
    pub device: (u64, u64),
    /// Encoding of numeric fields.
    pub numbers: Numbers,
}

impl<'a> Header<'a> {
    /// A POSIX header of type `kind` named `name`, mode 0644 (0755 for directories), owned by 0:0.
    pub fn new(kind: u8, name: &'a [u8]) -> Self {
        Header {
            name,
            mode: if kind == self::kind::DIR { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: None,
            mtime: 1_700_000_000,
            kind,
            link: b"",
            gnu: false,
            device: (0, 0),
            numbers: Numbers::Octal,
        }
    }
}

/// Builds a tar stream in memory.
#[derive(Debug, Default)]
pub struct TarWriter {
    out: Vec<u8>,
}

impl TarWriter {
    /// An empty stream.
    pub fn new() -> Self {
        TarWriter::default()
    }

    /// Writes a header and `data` padded to a whole block. The header's size field may disagree with the data.
    pub fn entry(&mut self, h: &Header<'_>, data: &[u8]) -> &mut Self {
        let block = self.header_block(h, data.len() as u64, None);
        self.out.extend_from_slice(&block);
        self.data(data)
    }

    /// Writes raw bytes padded to a whole block.
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.out.extend_from_slice(data);
        self.pad();
        self
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(&Header::new(kind::FILE, name.as_bytes()), data)
    }

    /// A regular file with the given mode.
    pub fn file_mode(&mut self, name: &str, mode: u64, data: &[u8]) -> &mut Self {
        self.entry(
            &Header {
                mode,
                ..Header::new(kind::FILE, name.as_bytes())
            },
            data,
        )
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(&Header::new(kind::DIR, name.as_bytes()), b"")
    }

    /// A symlink.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(kind::SYMLINK, name, target)
    }

    /// A hard link.
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(kind::HARDLINK, name, target)
    }

    fn link(&mut self, k: u8, name: &str, target: &str) -> &mut Self {
        self.entry(
            &Header {
                link: target.as_bytes(),
                mode: 0o777,
                ..Header::new(k, name.as_bytes())
            },
            b"",
        )
    }

    /// A character or block device, or a FIFO.
    pub fn node(&mut self, k: u8, name: &str, major: u64, minor: u64) -> &mut Self {
        self.entry(
            &Header {
                device: (major, minor),
                ..Header::new(k, name.as_bytes())
            },
            b"",
        )
    }

    /// A PAX extended header (`x`, or `g` when `global`) holding `records`.
    pub fn pax(&mut self, global: bool, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (key, value) in records {
            body.extend_from_slice(&pax_record(key.as_bytes(), value));
        }
        let k = if global { kind::PAX_GLOBAL } else { kind::PAX };
        self.entry(&Header::new(k, b"././@PaxHeader"), &body)
    }

    /// A GNU long-name (`L`) or long-link (`K`) header carrying `value` NUL-terminated.
    pub fn gnu_long(&mut self, k: u8, value: &[u8]) -> &mut Self {
        let mut body = value.to_vec();
        body.push(0);
        self.entry(
            &Header {
                gnu: true,
                ..Header::new(k, b"././@LongLink")
            },
            &body,
        )
    }

    /// An old-GNU sparse file: `map` is (offset, length) of the data chunks (at most four, in the header),
    /// `real_size` the size the file claims; `data` holds the chunks back to back.
    pub fn gnu_sparse(&mut self, name: &str, real_size: u64, map: &[(u64, u64)], data: &[u8]) -> &mut Self {
        let h = Header {
            gnu: true,
            ..Header::new(kind::GNU_SPARSE, name.as_bytes())
        };
        let block = self.header_block(&h, data.len() as u64, Some((real_size, map)));
        self.out.extend_from_slice(&block);
        self.data(data)
    }

    /// The two zero blocks that end an archive.
    pub fn end(&mut self) -> &mut Self {
        self.out.extend_from_slice(&[0u8; 1024]);
        self
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Ends the archive and returns it.
    pub fn finish(mut self) -> Vec<u8> {
        self.end();
        self.out
    }

    fn pad(&mut self) {
        let rem = self.out.len() % 512;
        if rem != 0 {
            self.out.resize(self.out.len() + 512 - rem, 0);
        }
    }

    fn header_block(&self, h: &Header<'_>, data_len: u64, sparse: Option<(u64, &[(u64, u64)])>) -> [u8; 512] {
        let mut b = [0u8; 512];
        put_bytes(&mut b[0..100], h.name);
        put_num(&mut b[100..108], h.mode, h.numbers);
        put_num(&mut b[108..116], h.uid, h.numbers);
        put_num(&mut b[116..124], h.gid, h.numbers);
        put_num(&mut b[124..136], h.size.unwrap_or(data_len), h.numbers);
        put_num(&mut b[136..148], h.mtime, h.numbers);
        b[156] = h.kind;
        put_bytes(&mut b[157..257], h.link);
        if h.gnu {
            b[257..265].copy_from_slice(b"ustar  \0");
        } else {
            b[257..265].copy_from_slice(b"ustar\x0000");
        }
        put_bytes(&mut b[265..297], b"root");
        put_bytes(&mut b[297..329], b"root");
        put_num(&mut b[329..337], h.device.0, h.numbers);
        put_num(&mut b[337..345], h.device.1, h.numbers);
        if let Some((real_size, map)) = sparse {
            // Old GNU layout: four (offset, numbytes) pairs at 386, isextended at 482, realsize at 483.
            for (i, (offset, len)) in map.iter().take(4).enumerate() {
                let at = 386 + i * 24;
                put_num(&mut b[at..at + 12], *offset, h.numbers);
                put_num(&mut b[at + 12..at + 24], *len, h.numbers);
            }
            put_num(&mut b[483..495], real_size, h.numbers);
        }
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        put_num(&mut b[148..155], u64::from(sum), Numbers::Octal);
        b[155] = b' ';
        b
    }
}

/// One PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including itself.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut r = len.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn put_num(field: &mut [u8], value: u64, numbers: Numbers) {
    match numbers {
        Numbers::Octal => {
            let digits = field.len() - 1;
            let s = format!("{value:0digits$o}");
            put_bytes(field, &s.as_bytes()[s.len() - digits..]);
            field[digits] = 0;
        }
        Numbers::Base256 => {
            field.fill(0);
            let be = value.to_be_bytes();
            let n = be.len().min(field.len());
            let start = field.len() - n;
            field[start..].copy_from_slice(&be[be.len() - n..]);
            field[0] |= 0x80;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_crate_reads_what_it_writes() {
        let mut w = TarWriter::new();
        w.dir("d/")
            .file("d/f", b"hello")
            .symlink("d/l", "f")
            .hardlink("d/h", "d/f");
        w.pax(false, &[("path", b"d/a-long-pax-name"), ("SCHILY.xattr.user.k", b"v")])
            .file("ignored", b"x");
        w.gnu_long(kind::GNU_LONG_NAME, b"d/a-long-gnu-name")
            .file("ignored", b"y");
        w.entry(
            &Header {
                numbers: Numbers::Base256,
                uid: 1 << 33,
                ..Header::new(kind::FILE, b"d/big-uid")
            },
            b"z",
        );
        let bytes = w.finish();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "d/",
                "d/f",
                "d/l",
                "d/h",
                "d/a-long-pax-name",
                "d/a-long-gnu-name",
                "d/big-uid"
            ]
        );
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n");
        let r = pax_record(b"k", &[b'v'; 94]);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with(b"101 k="));
    }
}
