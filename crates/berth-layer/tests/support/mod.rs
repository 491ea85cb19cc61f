//! Test support: a raw tar writer that can express hostile archives (`..` names, absolute links, PAX records,
//! GNU long names, base-256 numbers), and a sandbox that detects any write outside the root.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Writes tar archives header by header, without the safety checks of `tar::Builder`.
#[derive(Default)]
pub struct RawTar {
    buf: Vec<u8>,
}

fn pad(buf: &mut Vec<u8>) {
    let rem = buf.len() % 512;
    if rem != 0 {
        buf.resize(buf.len() + 512 - rem, 0);
    }
}

impl RawTar {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn header(name: &[u8], kind: tar::EntryType, mode: u32, size: u64, link: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        {
            let b = h.as_mut_bytes();
            let n = name.len().min(100);
            b[..n].copy_from_slice(&name[..n]);
            let l = link.len().min(100);
            b[157..157 + l].copy_from_slice(&link[..l]);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn raw_header(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    pub fn entry(&mut self, name: &[u8], kind: tar::EntryType, mode: u32, data: &[u8], link: &[u8]) -> &mut Self {
        let h = Self::header(name, kind, mode, data.len() as u64, link);
        self.raw_header(h, data)
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.entry(name.as_bytes(), tar::EntryType::Regular, mode, data, b"")
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.entry(name.as_bytes(), tar::EntryType::Directory, mode, b"", b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name.as_bytes(), tar::EntryType::Symlink, 0o777, b"", target.as_bytes())
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name.as_bytes(), tar::EntryType::Link, 0o644, b"", target.as_bytes())
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3; // ' ' '=' '\n'
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let h = Self::header(
            b"././@PaxHeader",
            tar::EntryType::XHeader,
            0o644,
            body.len() as u64,
            b"",
        );
        self.raw_header(h, &body)
    }

    /// A GNU long-name header applying to the next entry.
    pub fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        self.raw_header(h, &data)
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.buf.clone()
    }

    /// The archive with its two end-of-archive blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut b = self.buf.clone();
        b.resize(b.len() + 1024, 0);
        b
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A temp directory holding `root/` and a few files around it; `escaped()` lists anything changed outside root.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

fn snapshot(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p == root {
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        use std::os::unix::fs::MetadataExt;
        let content = if m.is_file() {
            std::fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        out.insert(
            p.clone(),
            format!("{:o} {} {} {:?}", m.mode(), m.uid(), m.len(), content),
        );
        if m.is_dir() {
            snapshot(&p, root, out);
        }
    }
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/victim"), b"precious").unwrap();
        std::fs::write(dir.path().join("victim"), b"precious").unwrap();
        let mut before = BTreeMap::new();
        snapshot(dir.path(), &root, &mut before);
        Sandbox { dir, root, before }
    }

    /// Paths outside the root that appeared, disappeared or changed.
    pub fn escaped(&self) -> Vec<PathBuf> {
        let mut now = BTreeMap::new();
        snapshot(self.dir.path(), &self.root, &mut now);
        let mut diff: Vec<PathBuf> = now
            .iter()
            .filter(|(k, v)| self.before.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        diff.extend(self.before.keys().filter(|k| !now.contains_key(*k)).cloned());
        diff
    }

    pub fn assert_contained(&self) {
        let e = self.escaped();
        assert!(e.is_empty(), "written outside the root: {e:?}");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Reads an xattr (not following a final symlink).
pub fn getxattr(path: &Path, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n =
        rustix::fs::lgetxattr(path, name, &mut buf[..]).unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()));
    buf.truncate(n);
    buf
}
