//! Item 39 of HOSTILE-INPUTS.md against `apply_layer` and `LayerCache`: resource bombs in small layers. Time stays
//! linear in the layer's size, memory stays bounded, and a layer that fills the disk fails cleanly.
//!
//! Tests that guard against hangs apply the layer on a thread and fail after a generous deadline, so a regression
//! fails instead of hanging; memory is measured in a child process (this test binary, re-run on `rss_probe_child`).

mod support;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_layer::apply::{ApplyError, ApplyOptions, ApplyReport, LayerCache, apply_layer};
use berth_spec::Digest;
use rustix::fs::{Mode, OFlags};
use support::{RawTar, Sandbox};
use tar::EntryType;

const DEADLINE: Duration = Duration::from_secs(10);

/// Applies `layer` on a thread with a 512 KiB stack (a quarter of a test thread's: recursion on the depth of a
/// tree overflows it); fails the test if that takes longer than [`DEADLINE`].
fn apply_within_deadline(sb: &Sandbox, layer: Vec<u8>) -> Result<ApplyReport, ApplyError> {
    let (tx, rx) = mpsc::channel();
    let root = sb.root.clone();
    std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(move || {
            let _ = tx.send(apply_layer(&layer[..], &root, &ApplyOptions::default()));
        })
        .unwrap();
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("applying the layer took more than {DEADLINE:?}"))
}

#[test]
fn hostile_39_symlink_chain_resolution_is_linear() {
    // l0 -> ., lk -> l(k-1)/l(k-1): resolving l36 the naive way walks 2^37 links. A 20 KB layer used to pin a core
    // for hours; the walk now follows at most 40 symlinks per path, as the kernel does.
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.symlink("l0", ".");
    for k in 1..=36 {
        t.symlink(&format!("l{k}"), &format!("l{0}/l{0}", k - 1));
    }
    // Within the budget (1 + 31 links): resolves to the root, creating `missing-too` on the way.
    t.symlink("b", "missing-too/../l4")
        .file("b/within-budget", 0o644, b"ok");
    t.symlink("a", "missing/../l36").file("a/f", 0o644, b"x");
    let layer = t.finish();
    assert!(layer.len() < 25_000, "{}", layer.len());
    let e = apply_within_deadline(&sb, layer).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a/f: too many levels of symbolic links: resolving its directory follows more than 40 symlinks"
    );
    assert_eq!(std::fs::read(sb.path("within-budget")).unwrap(), b"ok");
    assert!(sb.path("missing-too").is_dir() && sb.path("missing").is_dir());
    sb.assert_contained();
}

#[test]
fn hostile_39_repeated_opaque_markers_clear_their_directory_once() {
    // 15,000 files and 15,000 copies of the same opaque marker: clearing the directory once per marker walked
    // 225 million entries.
    const N: usize = 15_000;
    let sb = Sandbox::new();
    let mut lower = RawTar::new();
    lower.dir("d", 0o755).file("d/lower", 0o644, b"hidden");
    apply_layer(&lower.finish()[..], &sb.root, &ApplyOptions::default()).unwrap();
    let mut t = RawTar::new();
    t.dir("d", 0o755);
    for i in 0..N {
        t.file(&format!("d/{i}"), 0o644, b"");
    }
    for _ in 0..N {
        t.file("d/.wh..wh..opq", 0o644, b"");
    }
    apply_within_deadline(&sb, t.finish()).unwrap();
    assert!(!sb.path("d/lower").exists());
    assert_eq!(std::fs::read_dir(sb.path("d")).unwrap().count(), N);
}

/// Builds `root/d/d/…/d/bottom`, `depth` directories deep, with `*at` calls (no path that long can be named).
fn deep_tree(root: &Path, depth: usize) {
    let mut fd: OwnedFd = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(&fd, "d", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    }
    let f = rustix::fs::openat(
        fd.as_fd(),
        "bottom",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    drop(f);
}

#[test]
fn hostile_39_removing_a_very_deep_tree_neither_recurses_nor_runs_out_of_descriptors() {
    // Removal used to recurse, a stack frame and an open descriptor per level: 6,000 levels overflow the apply
    // thread's stack (and a deeper tree runs out of descriptors). Whiteouts and opaque directories both remove
    // trees. (Not deeper: the kernel's rmdir costs grow with the depth, so this test would get slow.)
    const DEPTH: usize = 6_000;
    for layer in [
        {
            let mut t = RawTar::new();
            t.file(".wh.d", 0o644, b"");
            t
        },
        {
            let mut t = RawTar::new();
            t.file("kept", 0o644, b"").file(".wh..wh..opq", 0o644, b"");
            t
        },
    ] {
        let sb = Sandbox::new();
        deep_tree(&sb.root, DEPTH);
        apply_within_deadline(&sb, layer.finish()).unwrap();
        assert!(!sb.path("d").exists());
        sb.assert_contained();
    }
}

// ---- extension headers: memory bounded, measured in a child process ----

const PROBE_LAYER: &str = "BERTH_TEST_PROBE_LAYER";
const PROBE_ROOT: &str = "BERTH_TEST_PROBE_ROOT";

/// Not a test of its own: when the variables above are set (by [`probe`]), applies that layer in this process and
/// prints the outcome and the process's peak RSS. Otherwise it does nothing.
#[test]
fn rss_probe_child() {
    let (Some(layer), Some(root)) = (std::env::var_os(PROBE_LAYER), std::env::var_os(PROBE_ROOT)) else {
        return;
    };
    let outcome = match apply_layer(File::open(layer).unwrap(), Path::new(&root), &ApplyOptions::default()) {
        Ok(r) => format!("applied {} entries", r.entries),
        Err(e) => e.to_string(),
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .to_owned();
    println!("probe-outcome: {outcome}");
    println!("probe-vmhwm-kb: {hwm}");
}

struct Probe {
    outcome: String,
    peak_rss: u64,
    elapsed: Duration,
}

impl Probe {
    /// Checks the outcome (shown cut short if it differs: an error naming a gigabyte-long entry is that long).
    fn assert_outcome(&self, want: &str) {
        let shown: String = self.outcome.chars().take(300).collect();
        assert!(self.outcome == want, "outcome: {shown:?}…\n   want: {want:?}");
    }
}

/// Applies the layer file in a child process; returns its outcome, peak RSS (bytes) and run time.
fn probe(layer: &Path, root: &Path) -> Probe {
    let start = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["rss_probe_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE_LAYER, layer)
        .env(PROBE_ROOT, root)
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the probe failed: {stdout}\n{stderr}");
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(key).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("no {key:?} in the probe's output: {stdout}\n{stderr}"))
            .trim()
            .to_owned()
    };
    Probe {
        outcome: field("probe-outcome:"),
        peak_rss: field("probe-vmhwm-kb:").parse::<u64>().unwrap() * 1024,
        elapsed,
    }
}

const RSS_LIMIT: u64 = 200 << 20;

#[test]
fn hostile_39_gnu_long_name_of_a_gigabyte_is_refused_in_bounded_memory() {
    // 1 GiB of name compresses to ~4 MB of gzip; reading it whole used to take the extraction past 1 GB of RSS.
    let sb = Sandbox::new();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("long-name.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(&path).unwrap()),
        flate2::Compression::fast(),
    );
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(EntryType::GNULongName);
    h.set_size(1 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    gz.write_all(h.as_bytes()).unwrap();
    let chunk = vec![b'n'; 1 << 20];
    for _ in 0..1024 {
        gz.write_all(&chunk).unwrap();
    }
    let mut t = RawTar::new();
    t.file("after", 0o644, b"x");
    gz.write_all(&t.finish()).unwrap();
    gz.finish().unwrap().flush().unwrap();

    let p = probe(&path, &sb.root);
    p.assert_outcome(
        "././@LongLink: its GNU long name is 1073741824 bytes, over the 1048576-byte limit; the layer is malformed \
         or hostile",
    );
    assert!(p.elapsed < DEADLINE, "took {:?}", p.elapsed);
    assert!(p.peak_rss < RSS_LIMIT, "peak RSS {} MB", p.peak_rss >> 20);
    sb.assert_contained();
}

#[test]
fn hostile_39_pax_header_claiming_two_gigabytes_is_refused_in_bounded_memory() {
    // The header claims 2 GB; the stream holds the start of one record claiming as much, then ends.
    let sb = Sandbox::new();
    let mut h = RawTar::header(b"PaxHeaders/claims-2gb", EntryType::XHeader, 0o644, 2_000_000_000, b"");
    h.set_cksum();
    let mut layer = h.as_bytes().to_vec();
    layer.extend_from_slice(b"2000000000 path=");
    layer.resize(layer.len() + 64 * 1024, b'p');
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("pax.tar");
    std::fs::write(&path, &layer).unwrap();
    let p = probe(&path, &sb.root);
    p.assert_outcome(
        "PaxHeaders/claims-2gb: its PAX header is 2000000000 bytes, over the 1048576-byte limit; the layer is \
         malformed or hostile",
    );
    assert!(p.elapsed < DEADLINE, "took {:?}", p.elapsed);
    assert!(p.peak_rss < RSS_LIMIT, "peak RSS {} MB", p.peak_rss >> 20);

    // A record claiming 2 GB in a small header is malformed, not a reason to read on.
    let mut t = RawTar::new();
    let body = b"2000000000 path=x\n";
    t.entry(b"PaxHeaders/record", EntryType::XHeader, 0o644, body, b"")
        .file("f", 0o644, b"");
    let e = apply_layer(&t.finish()[..], &sb.root, &ApplyOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "PaxHeaders/record: malformed PAX header: a record claims 2000000000 bytes but 18 remain in the header"
    );
    sb.assert_contained();
}

// ---- a layer that fills the disk ----

/// A tmpfs mounted on a directory for the life of the value (unmounted on drop, even when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount (these tests run as root)");
        assert!(status.success(), "mount -t tmpfs on {} failed", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// While alive, this thread has no CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH: root meets permission bits as any
/// user does, as in rootless extraction. Capabilities are per thread, so other tests are not affected.
struct WithoutDacOverride(rustix::thread::CapabilitySets);

impl WithoutDacOverride {
    fn new() -> Self {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let saved = capabilities(None).unwrap();
        let mut reduced = saved;
        reduced.effective -= CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
        set_capabilities(None, reduced).unwrap();
        WithoutDacOverride(saved)
    }
}

impl Drop for WithoutDacOverride {
    fn drop(&mut self) {
        rustix::thread::set_capabilities(None, self.0).unwrap();
    }
}

#[test]
fn hostile_39_layer_filling_the_disk_fails_with_enospc_and_leaves_nothing_behind() {
    let sb = Sandbox::new();
    let mnt = sb.dir.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let _tmpfs = Tmpfs::mount(&mnt, "2m");
    let cache = LayerCache::new(mnt.join("cache")).unwrap();
    // Directories a non-root remover cannot empty as they are (0500, 0000), then more data than the disk holds.
    let mut t = RawTar::new();
    t.dir("ro", 0o755)
        .file("ro/f", 0o644, b"in a read-only directory")
        .dir("ro", 0o500)
        .dir("closed", 0o755)
        .file("closed/g", 0o644, b"in a closed directory")
        .dir("closed", 0o000)
        .file("big", 0o644, &vec![0x5a; 3 << 20]);
    let layer = t.finish();
    let diff_id = Digest::sha256(&layer);
    let result = {
        let _rootless = WithoutDacOverride::new();
        cache.ensure(&diff_id, || Ok(&layer[..]), &ApplyOptions::default())
    };
    let left = |d: &str| std::fs::read_dir(mnt.join("cache").join(d)).unwrap().count();
    assert_eq!((left("tmp"), left("layers/sha256")), (0, 0), "nothing is left behind");
    assert_eq!(cache.list().unwrap(), vec![]);
    let e = result.unwrap_err();
    assert!(matches!(e, ApplyError::NoSpace { .. }), "{e:?}");
    let msg = berth_spec::error_chain(&e);
    assert!(
        msg.starts_with("big: write: the disk is full; free space") && msg.contains("No space left on device"),
        "{msg}"
    );
}
