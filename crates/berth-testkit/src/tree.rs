//! A comparable summary of a directory tree: content, modes, owners, xattrs, links and mtimes of every entry.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What is compared for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`.
    pub kind: &'static str,
    /// Permission bits incl. setuid/setgid/sticky (not for symlinks).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// sha256 of the content (files), the target (symlinks), or `major:minor` (devices).
    pub content: String,
    /// mtime in seconds (`None` when not compared).
    pub mtime: Option<i64>,
    /// Extended attributes (overlay-private ones excluded).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// For hardlinked files: the first path (in sorted order) of the group.
    pub link_group: Option<PathBuf>,
}

/// Options for [`summarize`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Compare {
    /// Compare mtimes of files and symlinks.
    pub file_mtimes: bool,
    /// Compare mtimes of directories.
    pub dir_mtimes: bool,
}

/// Summarizes every entry under `root` (the root itself excluded), keyed by relative path.
pub fn summarize(root: &Path, cmp: Compare) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    walk(root, root, cmp, &mut out, &mut inodes)?;
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    cmp: Compare,
    out: &mut BTreeMap<PathBuf, Entry>,
    inodes: &mut BTreeMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for p in names {
        let m = std::fs::symlink_metadata(&p).with_context(|| p.display().to_string())?;
        let ft = m.file_type();
        let rel = p.strip_prefix(root)?.to_owned();
        let (kind, content) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            ("symlink", std::fs::read_link(&p)?.display().to_string())
        } else if ft.is_file() {
            ("file", berth_spec::Digest::sha256(&std::fs::read(&p)?).to_string())
        } else if ft.is_char_device() {
            ("char", format!("{}:{}", m.rdev() >> 8 & 0xfff, m.rdev() & 0xff))
        } else if ft.is_block_device() {
            ("block", format!("{}:{}", m.rdev() >> 8 & 0xfff, m.rdev() & 0xff))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("socket", String::new())
        };
        let link_group =
            (ft.is_file() && m.nlink() > 1).then(|| inodes.entry((m.dev(), m.ino())).or_insert(rel.clone()).clone());
        let mtime_wanted = if ft.is_dir() { cmp.dir_mtimes } else { cmp.file_mtimes };
        let entry = Entry {
            kind,
            mode: if ft.is_symlink() { 0 } else { m.mode() & 0o7777 },
            uid: m.uid(),
            gid: m.gid(),
            content,
            mtime: mtime_wanted.then_some(m.mtime()),
            xattrs: xattrs(&p),
            link_group,
        };
        out.insert(rel, entry);
        if ft.is_dir() {
            walk(root, &p, cmp, out, inodes)?;
        }
    }
    Ok(())
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names[..]) else {
        return out;
    };
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        if berth_spec::whiteout::is_overlay_xattr(name) {
            continue;
        }
        let mut val = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(p, std::ffi::OsStr::from_bytes(name), &mut val[..]) {
            val.truncate(len);
            out.insert(key, val);
        }
    }
    out
}

/// Human-readable differences between two summaries (empty when equal).
pub fn diff(a: &BTreeMap<PathBuf, Entry>, b: &BTreeMap<PathBuf, Entry>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, va) in a {
        match b.get(k) {
            None => out.push(format!("only in first: {}", k.display())),
            Some(vb) if vb != va => out.push(format!(
                "differs: {}\n   first:  {va:?}\n   second: {vb:?}",
                k.display()
            )),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("only in second: {}", k.display()));
    }
    out
}
