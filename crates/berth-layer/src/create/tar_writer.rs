//! Writing tar entries: ustar headers built with `tar::Header`, a PAX extended header in front when a value does
//! not fit (long or non-ASCII names and link names, big numbers, negative mtimes, xattrs), bodies streamed from
//! the source file, and the 512-byte padding and end-of-archive blocks.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::walk::{Kind, Node, Xattr};
use super::{ContentElsewhere, CreateError, Elsewhere};

const BLOCK: usize = 512;
/// Largest value of an 8-byte octal field (uid, gid).
const MAX_OCTAL_8: u64 = 0o7_777_777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77_777_777_777;
/// Bytes read from a source file at a time.
const READ_BUFFER: usize = 1024 * 1024;
/// Mode of whiteout entries.
const WHITEOUT_MODE: u32 = 0o644;

/// What one header says.
struct Spec<'a> {
    path: &'a [u8],
    ty: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    size: u64,
    link: &'a [u8],
    device: Option<(u32, u32)>,
    xattrs: &'a [Xattr],
}

/// Writes a deterministic tar stream.
pub(crate) struct TarWriter<'e, W: Write> {
    out: W,
    source_date_epoch: Option<i64>,
    /// (dev, ino) of multiply-linked files already written, and the tar path they were written at.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    sockets_skipped: u64,
    first_socket: Option<PathBuf>,
    /// Placeholder files whose content is read from elsewhere.
    elsewhere: Option<&'e ContentElsewhere>,
}

impl<'e, W: Write> TarWriter<'e, W> {
    pub(crate) fn new(out: W, source_date_epoch: Option<i64>, elsewhere: Option<&'e ContentElsewhere>) -> Self {
        TarWriter {
            elsewhere,
            out,
            source_date_epoch,
            links: HashMap::new(),
            buf: Vec::new(),
            sockets_skipped: 0,
            first_socket: None,
        }
    }

    fn clamp(&self, mtime: i64) -> i64 {
        match self.source_date_epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }

    fn spec<'a>(&self, path: &'a [u8], ty: EntryType, node: &'a Node) -> Spec<'a> {
        Spec {
            path,
            ty,
            mode: node.mode,
            uid: node.uid.into(),
            gid: node.gid.into(),
            mtime: self.clamp(node.mtime),
            size: 0,
            link: &[],
            device: None,
            xattrs: &node.xattrs,
        }
    }

    /// Writes directory `rel` (no trailing slash; one is added).
    pub(crate) fn directory(&mut self, rel: &[u8], node: &Node) -> Result<(), CreateError> {
        let mut path = rel.to_vec();
        path.push(b'/');
        let spec = self.spec(&path, EntryType::Directory, node);
        self.header(&spec).map_err(write_err(rel))
    }

    /// Writes the whiteout or opaque marker `rel`.
    pub(crate) fn whiteout(&mut self, rel: &[u8], mtime: i64) -> Result<(), CreateError> {
        let spec = Spec {
            path: rel,
            ty: EntryType::Regular,
            mode: WHITEOUT_MODE,
            uid: 0,
            gid: 0,
            mtime: self.clamp(mtime),
            size: 0,
            link: &[],
            device: None,
            xattrs: &[],
        };
        self.header(&spec).map_err(write_err(rel))
    }

    /// Writes non-directory `rel`, read from `abs`: a file with its content, a link to an earlier path of the same
    /// inode, a symlink, a device or a FIFO. Sockets are counted and skipped.
    pub(crate) fn non_directory(&mut self, rel: &[u8], node: &Node, abs: &Path) -> Result<(), CreateError> {
        if node.kind == Kind::Socket {
            self.sockets_skipped += 1;
            self.first_socket.get_or_insert_with(|| abs.to_owned());
            return Ok(());
        }
        if node.nlink > 1 {
            if let Some(target) = self.links.get(&(node.dev, node.ino)).cloned() {
                let mut spec = self.spec(rel, EntryType::Link, node);
                spec.link = &target;
                spec.xattrs = &[];
                return self.header(&spec).map_err(write_err(rel));
            }
            self.links.insert((node.dev, node.ino), rel.to_vec());
        }
        let mut spec = self.spec(rel, EntryType::Regular, node);
        match node.kind {
            Kind::File => {
                if let Some(elsewhere) = self.elsewhere
                    && let Some(source) = elsewhere.files.get(&(node.dev, node.ino))
                {
                    let (file, meta) = open_elsewhere(source, abs, node)?;
                    spec.size = source.size;
                    self.header(&spec).map_err(write_err(rel))?;
                    if !elsewhere.hash {
                        return self.body(file, &source.path, source.size, rel, None);
                    }
                    let mut hasher = blake3::Hasher::new();
                    self.body(file, &source.path, source.size, rel, Some(&mut hasher))?;
                    elsewhere.record(super::SourceDigest {
                        path: source.path.clone(),
                        meta,
                        blake3: *hasher.finalize().as_bytes(),
                    });
                    return Ok(());
                }
                let file = open_regular(abs, node)?;
                spec.size = node.size;
                self.header(&spec).map_err(write_err(rel))?;
                return self.body(file, abs, node.size, rel, None);
            }
            Kind::Symlink => {
                spec.ty = EntryType::Symlink;
                spec.link = &node.link_target;
            }
            Kind::Char | Kind::Block => {
                spec.ty = if node.kind == Kind::Char {
                    EntryType::Char
                } else {
                    EntryType::Block
                };
                spec.device = Some((rustix::fs::major(node.rdev), rustix::fs::minor(node.rdev)));
            }
            Kind::Fifo => spec.ty = EntryType::Fifo,
            Kind::Dir | Kind::Socket => unreachable!("handled by the caller and above"),
        }
        self.header(&spec).map_err(write_err(rel))
    }

    /// Writes the end-of-archive blocks and returns the output.
    pub(crate) fn finish(mut self) -> Result<W, CreateError> {
        if let Some(first) = &self.first_socket {
            tracing::warn!(
                count = self.sockets_skipped,
                first = %first.display(),
                "skipped socket(s): a layer cannot hold sockets"
            );
        }
        let end = [0u8; 2 * BLOCK];
        self.out.write_all(&end).map_err(write_err(b"end of archive"))?;
        Ok(self.out)
    }

    /// Streams `size` bytes of `file` and the padding; the file must be exactly `size` bytes long. `hasher` is also
    /// given the bytes.
    fn body(
        &mut self,
        mut file: File,
        abs: &Path,
        size: u64,
        rel: &[u8],
        mut hasher: Option<&mut blake3::Hasher>,
    ) -> Result<(), CreateError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; READ_BUFFER];
        }
        let changed = |detail: String| CreateError::ChangedWhileReading {
            path: abs.to_owned(),
            detail,
        };
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = read_retrying(&mut file, &mut self.buf[..want]).map_err(|source| CreateError::Read {
                path: abs.to_owned(),
                source,
            })?;
            if n == 0 {
                return Err(changed(format!("it was {size} bytes but ended after {}", size - left)));
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&self.buf[..n]);
            }
            self.out.write_all(&self.buf[..n]).map_err(write_err(rel))?;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        if read_retrying(&mut file, &mut probe).is_ok_and(|n| n > 0) {
            return Err(changed(format!("it was {size} bytes but grew while being read")));
        }
        self.pad(size).map_err(write_err(rel))
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the PAX extended header `spec` needs, if any, then its ustar header.
    fn header(&mut self, spec: &Spec<'_>) -> io::Result<()> {
        let mut pax = Vec::new();
        let split = ustar_split(spec.path);
        let link_fits = spec.link.is_ascii() && spec.link.len() <= 100;
        if std::str::from_utf8(spec.path).is_err() || std::str::from_utf8(spec.link).is_err() {
            pax_record(&mut pax, b"hdrcharset", b"BINARY");
        }
        if split.is_none() {
            pax_record(&mut pax, b"path", spec.path);
        }
        if !link_fits {
            pax_record(&mut pax, b"linkpath", spec.link);
        }
        if spec.size > MAX_OCTAL_12 {
            pax_record(&mut pax, b"size", spec.size.to_string().as_bytes());
        }
        if spec.uid > MAX_OCTAL_8 {
            pax_record(&mut pax, b"uid", spec.uid.to_string().as_bytes());
        }
        if spec.gid > MAX_OCTAL_8 {
            pax_record(&mut pax, b"gid", spec.gid.to_string().as_bytes());
        }
        if spec.mtime < 0 || spec.mtime as u64 > MAX_OCTAL_12 {
            pax_record(&mut pax, b"mtime", spec.mtime.to_string().as_bytes());
        }
        for (name, value) in spec.xattrs {
            pax_record(&mut pax, &[b"SCHILY.xattr.".as_slice(), name].concat(), value);
        }

        if !pax.is_empty() {
            let base = spec
                .path
                .rsplit(|&b| b == b'/')
                .find(|c| !c.is_empty())
                .unwrap_or_default();
            let mut name = b"PaxHeaders/".to_vec();
            name.extend(ascii_only(base));
            let mut h = Header::new_ustar();
            set_bytes(&mut h.as_old_mut().name, &name);
            h.set_entry_type(EntryType::XHeader);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(pax.len() as u64);
            h.set_cksum();
            self.out.write_all(h.as_bytes())?;
            self.out.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }

        let mut h = Header::new_ustar();
        match split {
            Some((prefix, name)) => {
                let ustar = h.as_ustar_mut().expect("a ustar header");
                set_bytes(&mut ustar.prefix, prefix);
                set_bytes(&mut ustar.name, name);
            }
            None => set_bytes(&mut h.as_old_mut().name, &ascii_only(spec.path)),
        }
        let link = if link_fits {
            spec.link.to_vec()
        } else {
            ascii_only(spec.link)
        };
        set_bytes(&mut h.as_old_mut().linkname, &link);
        h.set_entry_type(spec.ty);
        h.set_mode(spec.mode & 0o7777);
        h.set_uid(spec.uid);
        h.set_gid(spec.gid);
        h.set_mtime(spec.mtime.max(0) as u64);
        h.set_size(spec.size);
        if let Some((major, minor)) = spec.device {
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes())
    }
}

fn write_err(rel: &[u8]) -> impl FnOnce(io::Error) -> CreateError + '_ {
    move |source| CreateError::Write {
        entry: PathBuf::from(std::ffi::OsStr::from_bytes(rel)),
        source,
    }
}

/// Opens `abs` for reading without following a symlink or blocking on a FIFO swapped in, and checks it is still
/// the regular file `node` describes.
/// Opens the file holding the content of placeholder `abs`, which must still be the file that was copied (same
/// inode, size and mtime) while the placeholder must still be empty.
fn open_elsewhere(source: &Elsewhere, abs: &Path, node: &Node) -> Result<(File, std::fs::Metadata), CreateError> {
    if node.size != 0 {
        return Err(CreateError::ChangedWhileReading {
            path: abs.to_owned(),
            detail: "the placeholder of a copied file was written to".into(),
        });
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let read_err = |e| CreateError::Read {
        path: source.path.clone(),
        source: e,
    };
    let file = File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(&source.path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let same = meta.is_file()
        && meta.dev() == source.dev
        && meta.ino() == source.ino
        && meta.len() == source.size
        && meta.mtime() == source.mtime
        && meta.mtime_nsec() == source.mtime_nsec;
    if !same {
        return Err(CreateError::ChangedWhileReading {
            path: source.path.clone(),
            detail: "it changed after it was copied".into(),
        });
    }
    Ok((file, meta))
}

fn open_regular(abs: &Path, node: &Node) -> Result<File, CreateError> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let file = File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(abs)
        .map_err(|source| CreateError::Read {
            path: abs.to_owned(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| CreateError::Read {
        path: abs.to_owned(),
        source,
    })?;
    if !meta.is_file() || meta.dev() != node.dev || meta.ino() != node.ino {
        return Err(CreateError::ChangedWhileReading {
            path: abs.to_owned(),
            detail: "it was replaced by another file".into(),
        });
    }
    Ok(file)
}

fn read_retrying(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Splits an ASCII path into ustar (prefix, name) fields, or `None` if it needs a PAX `path` record.
fn ustar_split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if !path.is_ascii() {
        return None;
    }
    if path.len() <= 100 {
        return Some((&[], path));
    }
    // The split slash must leave at most 155 bytes before it and 1..=100 after it. A trailing slash stays in name.
    let search_end = path.len().saturating_sub(1).min(156);
    let slash = path[..search_end].iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&path[..slash], &path[slash + 1..]);
    (prefix.len() <= 155 && !name.is_empty() && name.len() <= 100).then_some((prefix, name))
}

/// Appends the PAX record `"<len> <key>=<value>\n"`, whose length counts its own digits.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while rest + len.to_string().len() != len {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The ASCII bytes of `s` (for the informational header fields a PAX record overrides).
fn ascii_only(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|b| b.is_ascii() && *b != 0).collect()
}

/// Copies `src` into a NUL-padded header field, truncating.
fn set_bytes(field: &mut [u8], src: &[u8]) {
    let n = src.len().min(field.len());
    field[..n].copy_from_slice(&src[..n]);
    field[n..].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_pax_record_length_counts_itself() {
        for (key, value, want) in [
            (&b"path"[..], &b"x"[..], &b"9 path=x\n"[..]),
            (b"a", &[b'v'; 5], b"11 a=vvvvv\n"),
            (b"k", &[b'v'; 93], &[&b"99 k="[..], &[b'v'; 93], b"\n"].concat()),
            (b"k", &[b'v'; 94], &[&b"101 k="[..], &[b'v'; 94], b"\n"].concat()),
        ] {
            let mut out = Vec::new();
            pax_record(&mut out, key, value);
            assert_eq!(out, want);
            let len: usize = std::str::from_utf8(&out[..out.iter().position(|&b| b == b' ').unwrap()])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, out.len());
        }
    }

    #[test]
    fn create_ustar_split_rules() {
        assert_eq!(ustar_split(b"etc/passwd"), Some((&b""[..], &b"etc/passwd"[..])));
        let long = [&[b'a'; 150][..], b"/", &[b'b'; 99]].concat();
        assert_eq!(ustar_split(&long), Some((&long[..150], &long[151..])));
        let long_dir = [&[b'a'; 150][..], b"/", &[b'b'; 99], b"/"].concat();
        assert_eq!(ustar_split(&long_dir), Some((&long_dir[..150], &long_dir[151..])));
        assert_eq!(ustar_split(&[b'a'; 101]), None);
        assert_eq!(ustar_split(&[&[b'a'; 156][..], b"/b"].concat()), None);
        assert_eq!(ustar_split("é".as_bytes()), None);
    }

    #[test]
    fn create_names_a_file_that_changes_size_while_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("log");
        for (before, after, says) in [
            (&b"0123456789"[..], &b"01234"[..], "ended after 5"),
            (b"01", b"0123", "grew"),
        ] {
            std::fs::write(&file, before).unwrap();
            let node = crate::create::walk::read_node(&file).unwrap();
            std::fs::write(&file, after).unwrap();
            let mut tar = TarWriter::new(Vec::new(), None, None);
            let err = tar.non_directory(b"log", &node, &file).unwrap_err();
            match &err {
                CreateError::ChangedWhileReading { path, detail } => {
                    assert_eq!(path, &file);
                    assert!(detail.contains(says), "{err}");
                }
                other => panic!("unexpected {other}"),
            }
        }
    }
}
