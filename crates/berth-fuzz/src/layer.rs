//! The `layer` target: [`berth_layer::apply::apply_layer`] on a mutated tar stream, into a fresh root.
//!
//! # Input
//!
//! The first byte chooses how the rest is turned into a layer stream; the rest is a tar archive (or, in
//! [`Wrap::AsGiven`] mode, whatever bytes, compressed or not):
//!
//! | bits | meaning |
//! |------|---------|
//! | 0-1  | 0: the bytes as given (sniffed as the runner would), 1: gzip, 2: zstd, 3: gzip in two members |
//! | 2    | write whiteouts in overlayfs form into an empty root, instead of applying them to a lower tree |
//! | 3    | map ids (container 0-65535 to host 100000-165535); with bit 2, use `user.overlay.*` xattrs |
//! | 4-7  | `e`: when not 0, the last 512 bytes of the tar are repeated to add 2^(e+10) bytes (2 KiB - 32 MiB) |
//!
//! Compression is applied here, as the stream is read, so the mutations land in the tar and every one of them
//! reaches the extractor through a real gzip or zstd decoder. The repetition turns a few bytes of input into a
//! long stream without holding it in memory: a PAX or GNU long-name header followed by its first data block
//! becomes a record of megabytes, a header block becomes a hundred thousand entries.
//!
//! # Oracle
//!
//! `apply_layer` may succeed or fail, but must not panic, and afterwards:
//! - the temporary directory holds exactly the root and a sibling canary directory, and the root is still a
//!   directory;
//! - the canary (a file and an empty directory) is unchanged: content, mode, owner, inode, link count and
//!   mtime — so nothing was written, chmod'ed or hard-linked through a link that left the root;
//! - no `berth-fuzz-escape` (the name the seeds use to climb out) exists next to the temporary directory or
//!   in `/`;
//! - it returned within [`TIME_LIMIT`];
//! - the process's peak resident memory grew by at most [`MEMORY_LIMIT_MIB`] during the call (more when the
//!   bytes are given as they are and are zstd, whose format lets a stream ask for a 128 MiB window), measured by
//!   resetting the kernel's high-water mark (`/proc/self/clear_refs`) before the call and reading `VmHWM`
//!   after it. The extractor should stream: hold a few 1 MiB chunks and the current entry's headers
//!   (capped at 1 MiB each), so a PAX or GNU record that the repetition makes 32 MiB long shows as growth.
//!
//! Repetition stops at 32 MiB because every input pays for it: the stream is made, hashed and unpacked by
//! coverage-instrumented code.
//!
//! The temporary directory is made under `$BERTH_FUZZ_TMPDIR`, else `/dev/shm`, else the system's temporary
//! directory. In OCI mode the root starts with a small lower tree (files, a symlinked directory, an absolute symlink to
//! `/`, a relative one climbing out, a hard link) for whiteouts, type changes and links to act on.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_layer::apply::{ApplyOptions, IdRange, WhiteoutMode, apply_layer};
use berth_spec::media_type::Compression;

/// The name seeds use for paths that climb out of the root; it must never appear outside it.
pub const ESCAPE_NAME: &str = "berth-fuzz-escape";
/// The longest an extraction may take (the largest stream is 32 MiB plus the input).
pub const TIME_LIMIT: Duration = Duration::from_secs(20);
/// How much the peak resident memory may grow while one layer is applied.
pub const MEMORY_LIMIT_MIB: u64 = 24;
/// The same for zstd streams given as they are, which may legitimately ask the decoder for a 128 MiB window.
pub const MEMORY_LIMIT_ZSTD_AS_GIVEN_MIB: u64 = 128 + MEMORY_LIMIT_MIB;

const CANARY_CONTENT: &[u8] = b"the canary outside the root\n";

/// How the tar bytes become the layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// As given: the extractor sniffs plain, gzip or zstd.
    AsGiven,
    /// Compressed with gzip here.
    Gzip,
    /// Compressed with zstd here.
    Zstd,
    /// Compressed with gzip here, as two members split in the middle.
    GzipTwoMembers,
}

/// A decoded input of the `layer` target.
#[derive(Debug, Clone, Copy)]
pub struct LayerInput<'a> {
    /// How the bytes become the stream.
    pub wrap: Wrap,
    /// overlayfs whiteouts into an empty root.
    pub overlay: bool,
    /// Map ids.
    pub id_map: bool,
    /// Bytes added by repeating the last block.
    pub expand: u64,
    /// The tar archive (or, as given, any bytes).
    pub tar: &'a [u8],
}

impl<'a> LayerInput<'a> {
    /// Splits the mode byte from the archive.
    pub fn decode(data: &'a [u8]) -> Self {
        let (mode, tar) = match data.split_first() {
            Some((&mode, tar)) => (mode, tar),
            None => (0, data),
        };
        let wrap = match mode & 3 {
            0 => Wrap::AsGiven,
            1 => Wrap::Gzip,
            2 => Wrap::Zstd,
            _ => Wrap::GzipTwoMembers,
        };
        let e = u32::from(mode >> 4);
        LayerInput {
            wrap,
            overlay: mode & 4 != 0,
            id_map: mode & 8 != 0,
            expand: if e == 0 { 0 } else { 1u64 << (e + 10) },
            tar,
        }
    }
}

/// Builds an input of the `layer` target (for seeds and regression tests); `expand_exp` is `e` above (0-15).
pub fn encode(wrap: Wrap, overlay: bool, id_map: bool, expand_exp: u8, tar: &[u8]) -> Vec<u8> {
    let mut mode = match wrap {
        Wrap::AsGiven => 0,
        Wrap::Gzip => 1,
        Wrap::Zstd => 2,
        Wrap::GzipTwoMembers => 3,
    };
    if overlay {
        mode |= 4;
    }
    if id_map {
        mode |= 8;
    }
    mode |= (expand_exp & 0xf) << 4;
    let mut out = vec![mode];
    out.extend_from_slice(tar);
    out
}

/// The target: applies the layer the input describes and checks the oracle; panics on a violation.
pub fn run(data: &[u8]) {
    let input = LayerInput::decode(data);
    let sandbox = Sandbox::new(input.overlay);
    let opts = ApplyOptions {
        whiteouts: if input.overlay {
            WhiteoutMode::Overlay {
                user_xattr: input.id_map,
            }
        } else {
            WhiteoutMode::Oci
        },
        uid_map: id_map(input.id_map),
        gid_map: id_map(input.id_map),
        ..ApplyOptions::default()
    };
    let memory_limit_mib = if input.wrap == Wrap::AsGiven && Compression::sniff(input.tar) == Compression::Zstd {
        MEMORY_LIMIT_ZSTD_AS_GIVEN_MIB
    } else {
        MEMORY_LIMIT_MIB
    };

    let layer = stream(&input);
    let peak = PeakRss::start();
    let started = Instant::now();
    let result = apply_layer(layer, sandbox.root(), &opts);
    let elapsed = started.elapsed();
    let grown_mib = peak.and_then(|p| p.grown_kib()).map(|k| k / 1024);
    if let Err(e) = &result {
        // Rendering the error must not panic either.
        let _ = e.to_string();
    }

    sandbox.check();
    assert!(
        elapsed <= TIME_LIMIT,
        "applying a {}-byte input ({:?}, {} bytes repeated) took {elapsed:?}, more than {TIME_LIMIT:?}",
        data.len(),
        input.wrap,
        input.expand
    );
    if let Some(grown) = grown_mib {
        assert!(
            grown <= memory_limit_mib,
            "applying a {}-byte input ({:?}, {} bytes repeated) grew peak memory by {grown} MiB (limit \
             {memory_limit_mib} MiB); result: {result:?}",
            data.len(),
            input.wrap,
            input.expand
        );
    }
}

fn id_map(on: bool) -> Vec<IdRange> {
    if on {
        vec![IdRange {
            container: 0,
            host: 100_000,
            size: 65_536,
        }]
    } else {
        Vec::new()
    }
}

/// The layer stream, compressed as the input says, produced as it is read.
fn stream<'a>(input: &LayerInput<'a>) -> Box<dyn Read + Send + 'a> {
    let plain = Expanded::new(input.tar, input.expand);
    // Deflating megabytes through instrumented code would cost every such input a second or more: long
    // streams go into stored blocks (zstd is C, uninstrumented, and fast at any length).
    let gzip_level = if input.expand >= 1 << 20 {
        flate2::Compression::none()
    } else {
        flate2::Compression::fast()
    };
    match input.wrap {
        Wrap::AsGiven => Box::new(plain),
        Wrap::Gzip => Box::new(flate2::read::GzEncoder::new(plain, gzip_level)),
        Wrap::Zstd => Box::new(zstd::stream::read::Encoder::new(plain, 1).expect("a zstd encoder at level 1")),
        Wrap::GzipTwoMembers => {
            let total = input.tar.len() as u64 + input.expand;
            let mut plain = plain;
            let first = (&mut plain).take(total / 2);
            let mut head = Vec::new();
            flate2::read::GzEncoder::new(first, gzip_level)
                .read_to_end(&mut head)
                .expect("reading from memory");
            Box::new(io::Cursor::new(head).chain(flate2::read::GzEncoder::new(plain, gzip_level)))
        }
    }
}

/// `tar` followed by `extra` bytes made by repeating its last block (zeros when it is empty).
struct Expanded<'a> {
    tar: &'a [u8],
    tail: &'a [u8],
    pos: usize,
    extra: u64,
    tail_pos: usize,
}

impl<'a> Expanded<'a> {
    fn new(tar: &'a [u8], extra: u64) -> Self {
        const ZEROS: &[u8] = &[0; 512];
        let tail = if tar.is_empty() {
            ZEROS
        } else {
            &tar[tar.len() - tar.len().min(512)..]
        };
        Expanded {
            tar,
            tail,
            pos: 0,
            extra,
            tail_pos: 0,
        }
    }
}

impl Read for Expanded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.tar.len() {
            let n = buf.len().min(self.tar.len() - self.pos);
            buf[..n].copy_from_slice(&self.tar[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        let mut n = 0;
        while n < buf.len() && self.extra > 0 {
            let run = (self.tail.len() - self.tail_pos).min(buf.len() - n);
            let run = run.min(usize::try_from(self.extra).unwrap_or(usize::MAX));
            buf[n..n + run].copy_from_slice(&self.tail[self.tail_pos..self.tail_pos + run]);
            n += run;
            self.extra -= run as u64;
            self.tail_pos = (self.tail_pos + run) % self.tail.len();
        }
        Ok(n)
    }
}

/// A temporary directory holding the root and, beside it, the canary; removed on drop.
struct Sandbox {
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
    fn new(empty_root: bool) -> Self {
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

    fn root(&self) -> &Path {
        &self.root
    }

    /// Panics, naming what changed, if anything outside the root did.
    fn check(&self) {
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
struct PeakRss {
    start_kib: u64,
}

impl PeakRss {
    /// Resets the kernel's high-water mark; `None` where that is not possible.
    fn start() -> Option<Self> {
        fs::write("/proc/self/clear_refs", "5").ok()?;
        Some(PeakRss {
            start_kib: status_kib("VmRSS")?,
        })
    }

    fn grown_kib(&self) -> Option<u64> {
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

    #[test]
    fn mode_byte_round_trips() {
        let data = encode(Wrap::Zstd, true, false, 7, b"tar");
        let input = LayerInput::decode(&data);
        assert_eq!(input.wrap, Wrap::Zstd);
        assert!(input.overlay && !input.id_map);
        assert_eq!(input.expand, 1 << 17);
        assert_eq!(input.tar, b"tar");
    }

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

    #[test]
    fn expansion_repeats_the_last_block() {
        let mut tar = vec![1u8; 600];
        tar[599] = 2;
        let mut out = Vec::new();
        Expanded::new(&tar, 1000).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1600);
        assert_eq!(&out[600..1112], &tar[88..600]);
        assert_eq!(out[1111], 2);
        assert_eq!(&out[1112..1600], &tar[88..576]);
    }
}
