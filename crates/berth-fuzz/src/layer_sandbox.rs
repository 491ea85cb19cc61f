//! The ground the `layer` target extracts on, and the measurements its oracle takes (see [`crate::layer`]): a
//! temporary directory holding the root (with a small lower tree in OCI mode) and a canary beside it, checked
//! after every extraction, and the growth of the process's peak resident memory over the call.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::layer::ESCAPE_NAME;

const CANARY_CONTENT: &[u8] = b"the canary outside the root\n";

/// A temporary directory holding the root and, beside it, the canary; removed on drop.
pub(crate) struct Sandbox {
    dir: PathBuf,
    root: PathBuf,
    canary: PathBuf,
    canary_file: Snapshot,
    canary_sub: Snapshot,
}

/// What must not change about a canary path.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    file_type: fs::FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Snapshot {
    fn of(path: &Path) -> Option<Self> {
        let m = fs::symlink_metadata(path).ok()?;
        Some(Snapshot {
            file_type: m.file_type(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            ino: m.ino(),
            nlink: m.nlink(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}

impl Sandbox {
    pub(crate) fn new(empty_root: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-fuzz-layer-")
            .tempdir_in(scratch_base())
            .expect("create a temporary directory")
            .keep();
        let root = dir.join("root");
        let canary = dir.join("canary");
        fs::create_dir(&root).expect("create the root");
        fs::create_dir(&canary).expect("create the canary directory");
        fs::write(canary.join("keep"), CANARY_CONTENT).expect("write the canary");
        fs::create_dir(canary.join("sub")).expect("create the canary's subdirectory");
        if !empty_root {
            lower_tree(&root).expect("create the lower tree");
        }
        let canary_file = Snapshot::of(&canary.join("keep")).expect("the canary exists");
        let canary_sub = Snapshot::of(&canary.join("sub")).expect("the canary exists");
        Sandbox {
            dir,
            root,
            canary,
            canary_file,
            canary_sub,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Panics, naming what changed, if anything outside the root did.
    pub(crate) fn check(&self) {
        let mut escaped = Vec::new();
        for place in [self.dir.parent(), Some(Path::new("/"))].into_iter().flatten() {
            let p = place.join(ESCAPE_NAME);
            if fs::symlink_metadata(&p).is_ok() {
                // Removed before reporting, so the next input is judged on its own.
                let _ = fs::remove_file(&p).or_else(|_| fs::remove_dir_all(&p));
                escaped.push(p);
            }
        }
        assert!(escaped.is_empty(), "the layer created {escaped:?}, outside the root");
        let mut names = list(&self.dir);
        names.sort();
        assert_eq!(
            names,
            ["canary", "root"],
            "the layer changed the directory that holds the root"
        );
        let root = fs::symlink_metadata(&self.root).expect("the root exists");
        assert!(root.is_dir(), "the root was replaced by a {:?}", root.file_type());
        let mut names = list(&self.canary);
        names.sort();
        assert_eq!(
            names,
            ["keep", "sub"],
            "the layer changed the canary directory beside the root"
        );
        assert_eq!(
            fs::read(self.canary.join("keep")).ok().as_deref(),
            Some(CANARY_CONTENT),
            "the layer wrote to the canary file beside the root"
        );
        assert_eq!(
            Snapshot::of(&self.canary.join("keep")).as_ref(),
            Some(&self.canary_file),
            "the layer changed the canary file's metadata (mode, owner, links) beside the root"
        );
        assert_eq!(
            Snapshot::of(&self.canary.join("sub")).as_ref(),
            Some(&self.canary_sub),
            "the layer changed the canary directory's metadata beside the root"
        );
        assert!(
            list(&self.canary.join("sub")).is_empty(),
            "the layer wrote into the canary directory beside the root"
        );
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        remove_tree(&self.dir);
    }
}

/// Where the temporary roots go: `$BERTH_FUZZ_TMPDIR`, else `/dev/shm` (a tmpfs: making and removing a tree
/// per input there costs a fraction of what it costs on a disk file system), else the system's temporary
/// directory.
fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_FUZZ_TMPDIR") {
        return dir.into();
    }
    let shm = Path::new("/dev/shm");
    if fs::metadata(shm).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o1777 == 0o1777) {
        return shm.to_owned();
    }
    std::env::temp_dir()
}

fn list(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The lower layers an OCI-mode layer is applied onto.
fn lower_tree(root: &Path) -> io::Result<()> {
    for d in ["etc/conf.d", "bin", "usr/lib", "dir/sub", "opaque/inner"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::write(root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(root.join("etc/conf.d/a"), b"a\n")?;
    fs::write(root.join("bin/sh"), b"#!/bin/false\n")?;
    fs::set_permissions(root.join("bin/sh"), fs::Permissions::from_mode(0o755))?;
    fs::write(root.join("usr/lib/libc.so"), b"\x7fELF")?;
    fs::write(root.join("dir/keep"), b"k")?;
    fs::write(root.join("opaque/inner/x"), b"x")?;
    fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-"))?;
    symlink("usr/lib", root.join("lib"))?;
    symlink("/", root.join("abs"))?;
    symlink("../..", root.join("up"))?;
    symlink("../canary", root.join("canary-rel"))?;
    symlink("../canary/keep", root.join("canary-file"))?;
    Ok(())
}

/// Removes a tree a layer made, giving directories owner rwx first when a plain removal fails (a layer can
/// leave directories of mode 000, which an unprivileged process cannot empty). Never follows symlinks.
fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    fn open_up(p: &Path) {
        let Ok(m) = fs::symlink_metadata(p) else { return };
        if m.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(entries) = fs::read_dir(p) {
                for e in entries.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(path);
    let _ = fs::remove_dir_all(path);
}

/// The growth of the process's peak resident set over a call.
pub(crate) struct PeakRss {
    start_kib: u64,
}

impl PeakRss {
    /// Resets the kernel's high-water mark; `None` where that is not possible.
    pub(crate) fn start() -> Option<Self> {
        fs::write("/proc/self/clear_refs", "5").ok()?;
        Some(PeakRss {
            start_kib: status_kib("VmRSS")?,
        })
    }

    pub(crate) fn grown_kib(&self) -> Option<u64> {
        Some(status_kib("VmHWM")?.saturating_sub(self.start_kib))
    }
}

fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics(f: impl FnOnce()) -> String {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("the oracle must fire");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn the_oracle_sees_writes_links_and_chmods_beside_the_root() {
        let s = Sandbox::new(false);
        s.check();
        fs::write(s.canary.join("keep"), b"changed").unwrap();
        assert!(panics(|| s.check()).contains("wrote to the canary file"));

        let s = Sandbox::new(false);
        fs::hard_link(s.canary.join("keep"), s.root.join("link")).unwrap();
        assert!(panics(|| s.check()).contains("metadata"));

        let s = Sandbox::new(true);
        fs::set_permissions(s.canary.join("keep"), fs::Permissions::from_mode(0o4777)).unwrap();
        assert!(panics(|| s.check()).contains("metadata"));

        let s = Sandbox::new(true);
        fs::write(s.dir.join("new"), b"").unwrap();
        assert!(panics(|| s.check()).contains("holds the root"));

        let s = Sandbox::new(true);
        let escaped = s.dir.parent().unwrap().join(ESCAPE_NAME);
        fs::write(&escaped, b"").unwrap();
        assert!(panics(|| s.check()).contains("outside the root"));
        assert!(!escaped.exists(), "the escaped file is removed once reported");
    }

    #[test]
    fn the_oracle_sees_memory_growth() {
        let Some(peak) = PeakRss::start() else { return };
        let big = vec![1u8; 96 << 20];
        std::hint::black_box(&big);
        drop(big);
        assert!(peak.grown_kib().unwrap() >= 90 << 10);
    }
}
