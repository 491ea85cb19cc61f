//! Layers Berth creates give back the tree they were made from — applied by Berth, unpacked by umoci, or stacked
//! by overlayfs — and the same tree always makes the same bytes. Every test here runs as root (devices, owners,
//! `security.capability`, overlay mounts).

use std::io::Read;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_layer::apply::{ApplyOptions, WhiteoutMode, apply_layer};
use berth_layer::compress::LayerDigests;
use berth_layer::create::{CreateOptions, create_diff, create_from_dir};
use berth_spec::Digest;
use berth_spec::layout::Layout;
use berth_spec::media_type::Compression;
use berth_testkit::rng::Rng;
use berth_testkit::tree::{self, Compare};
use berth_testkit::{image, tools};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

const ALL_MTIMES: Compare = Compare {
    file_mtimes: true,
    dir_mtimes: true,
};

/// The clamp used by the SOURCE_DATE_EPOCH test: some entries of the rich tree are older, most are newer.
const CLAMP: i64 = 1_000_000_000;

/// A file capability set, `cap_net_bind_service+ep`, as the kernel stores it (VFS_CAP_REVISION_2, little-endian):
/// magic 0x02000001 (revision 2, effective), permitted low word 1 << 10, then inheritable low, permitted and
/// inheritable high, all zero.
const CAPABILITY: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What one entry of a test tree is.
#[derive(Debug, Clone)]
enum Kind {
    Dir,
    /// A file with its content and the other names of its inode.
    File(Vec<u8>, Vec<String>),
    Symlink(String),
    Fifo,
    Char(u32, u32),
}

/// One entry of a test tree and the metadata it ends up with.
#[derive(Debug, Clone)]
struct Spec {
    path: String,
    kind: Kind,
    mode: u32,
    owner: (u32, u32),
    xattrs: Vec<(&'static str, Vec<u8>)>,
    mtime: i64,
}

/// The order entries are created in (so two builds of one tree differ in inode numbers and directory order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Forward,
    Reverse,
}

fn dir(path: &str, mode: u32) -> Spec {
    Spec {
        path: path.into(),
        kind: Kind::Dir,
        mode,
        owner: (0, 0),
        xattrs: Vec::new(),
        mtime: 0,
    }
}

fn file(path: &str, mode: u32, data: &[u8]) -> Spec {
    Spec {
        kind: Kind::File(data.to_vec(), Vec::new()),
        ..dir(path, mode)
    }
}

fn link(path: &str, target: &str) -> Spec {
    Spec {
        kind: Kind::Symlink(target.into()),
        ..dir(path, 0o777)
    }
}

fn owned(mut spec: Spec, uid: u32, gid: u32) -> Spec {
    spec.owner = (uid, gid);
    spec
}

fn with_xattr(mut spec: Spec, name: &'static str, value: &[u8]) -> Spec {
    spec.xattrs.push((name, value.to_vec()));
    spec
}

/// A tree with the kinds of entries and metadata a layer must carry. Entries get distinct fixed mtimes, most
/// after [`CLAMP`], a few before it.
fn rich_tree() -> Vec<Spec> {
    let mut big = vec![0u8; 5 * 1024 * 1024];
    Rng::new(0x5eed).fill(&mut big[..3 * 1024 * 1024]);
    let name200 = "n".repeat(200);
    let deep = format!("deep/{}/{}/{}", "a".repeat(60), "b".repeat(60), "c".repeat(60));
    let deep_pax = format!("{deep}/{}/{}", "d".repeat(90), "e".repeat(90));
    let long_target = format!("../{}/{}", "t".repeat(80), "u".repeat(80));
    let mut specs = vec![
        dir("bin", 0o755),
        dir("etc", 0o755),
        owned(dir("private", 0o700), 1234, 5678),
        dir("tmp", 0o1777),
        with_xattr(owned(dir("srv", 0o2775), 0, 5678), "user.dir-note", b"on a directory"),
        dir("ro", 0o555),
        dir("empty", 0o711),
        dir("dev", 0o755),
        dir("usr", 0o755),
        dir("usr/share", 0o755),
        dir("usr/share/caf\u{e9}", 0o755),
        dir("long", 0o755),
        dir(&format!("long/{name200}-dir"), 0o750),
        dir("deep", 0o755),
        dir(&format!("deep/{}", "a".repeat(60)), 0o755),
        dir(&format!("deep/{}/{}", "a".repeat(60), "b".repeat(60)), 0o755),
        dir(&deep, 0o755),
        dir(&format!("{deep}/{}", "d".repeat(90)), 0o755),
        dir(&deep_pax, 0o700),
        dir("replace", 0o755),
        dir("replace/sub", 0o755),
        file("bin/tool", 0o755, b"#!/bin/sh\necho tool\n"),
        file("bin/suid", 0o4755, b"setuid\n"),
        owned(file("bin/sgid", 0o2755, b"setgid\n"), 0, 5678),
        owned(
            file("bin/suid-owned", 0o6750, b"setuid and setgid, not root's\n"),
            1234,
            5678,
        ),
        with_xattr(
            file("bin/ping", 0o755, b"capable\n"),
            "security.capability",
            &CAPABILITY,
        ),
        file("etc/empty", 0o644, b""),
        owned(file("etc/secret", 0o600, b"s3cret\n"), 1234, 5678),
        with_xattr(
            Spec {
                kind: Kind::File(
                    b"key=value\n".to_vec(),
                    vec!["etc/config.hard".into(), "bin/config.also".into()],
                ),
                ..file("etc/config", 0o640, b"")
            },
            "user.note",
            b"three names, one inode",
        ),
        file("srv/big.bin", 0o644, &big),
        file("ro/inside", 0o444, b"in a read-only directory\n"),
        owned(file("private/key", 0o400, b"private\n"), 1234, 5678),
        file(
            "usr/share/caf\u{e9}/r\u{e9}sum\u{e9} \u{65e5}\u{672c}\u{8a9e} \u{1f600}.txt",
            0o644,
            "non-ASCII\n".as_bytes(),
        ),
        file(&format!("long/{name200}"), 0o644, b"a 200-byte name\n"),
        file(&format!("long/{name200}-dir/x"), 0o644, b"below a 200-byte name\n"),
        Spec {
            kind: Kind::File(b"deep and hard-linked\n".to_vec(), vec!["deep-hardlink".into()]),
            ..file(&format!("{deep}/file"), 0o644, b"")
        },
        file(&format!("{deep_pax}/leaf"), 0o600, b"a path only PAX can hold\n"),
        file("replace/a", 0o644, b"a\n"),
        file("replace/sub/b", 0o644, b"b\n"),
        link("etc/abs", "/etc/secret"),
        link("bin/rel", "tool"),
        link("dangling", "../no/such/target"),
        link("long-link", &long_target),
        owned(link("etc/owned-link", "config"), 1234, 5678),
        Spec {
            kind: Kind::Fifo,
            ..dir("srv/fifo", 0o640)
        },
        Spec {
            kind: Kind::Char(1, 3),
            ..dir("dev/null", 0o666)
        },
    ];
    for (i, spec) in specs.iter_mut().enumerate() {
        // Every seventh entry predates the clamp; the rest are spread over later years.
        spec.mtime = if i % 7 == 3 {
            900_000_000 + i as i64
        } else {
            1_500_000_000 + 86_400 * i as i64
        };
    }
    specs
}

/// Creates `specs` below `root` (which must exist) in `order`, then sets owners, modes, xattrs and mtimes,
/// directories last and deepest first. Returns false when `user.*` xattrs are not supported here.
fn build(root: &Path, specs: &[Spec], order: Order) -> bool {
    let ordered: Vec<&Spec> = match order {
        Order::Forward => specs.iter().collect(),
        Order::Reverse => specs.iter().rev().collect(),
    };
    for spec in &ordered {
        let p = root.join(&spec.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        match &spec.kind {
            Kind::Dir => std::fs::create_dir_all(&p).unwrap(),
            Kind::File(data, names) => {
                std::fs::write(&p, data).unwrap();
                for n in names {
                    let q = root.join(n);
                    std::fs::create_dir_all(q.parent().unwrap()).unwrap();
                    std::fs::hard_link(&p, &q).unwrap();
                }
            }
            Kind::Symlink(target) => symlink(target, &p).unwrap(),
            Kind::Fifo => rustix::fs::mknodat(CWD, &p, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap(),
            Kind::Char(major, minor) => rustix::fs::mknodat(
                CWD,
                &p,
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o600),
                rustix::fs::makedev(*major, *minor),
            )
            .unwrap(),
        }
    }
    let mut dirs: Vec<&Spec> = ordered
        .iter()
        .copied()
        .filter(|s| matches!(s.kind, Kind::Dir))
        .collect();
    dirs.sort_by_key(|s| std::cmp::Reverse(s.path.matches('/').count()));
    let non_dirs = ordered.iter().copied().filter(|s| !matches!(s.kind, Kind::Dir));
    let mut user_xattrs = true;
    for spec in non_dirs.chain(dirs) {
        let p = root.join(&spec.path);
        // chown clears setuid/setgid and file capabilities: owner first, then mode, then xattrs.
        lchown(&p, Some(spec.owner.0), Some(spec.owner.1)).unwrap();
        if !matches!(spec.kind, Kind::Symlink(_)) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(spec.mode)).unwrap();
        }
        for (name, value) in &spec.xattrs {
            match rustix::fs::lsetxattr(&p, *name, value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if name.starts_with("user.") => {
                    if user_xattrs {
                        eprintln!(
                            "note: cannot set {name} on {} ({e}); user xattrs are not tested here",
                            p.display()
                        );
                    }
                    user_xattrs = false;
                }
                Err(e) => panic!("setting {name} on {}: {e}", p.display()),
            }
        }
        set_mtime(&p, spec.mtime, 123_456_789);
    }
    user_xattrs
}

/// Sets the mtime (and atime) of `p` without following a symlink.
fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// A fresh directory `name` under `parent`.
fn fresh(parent: &Path, name: &str) -> PathBuf {
    let p = parent.join(name);
    std::fs::create_dir(&p).unwrap();
    p
}

fn create(root: &Path, compression: Compression, source_date_epoch: Option<i64>) -> (Vec<u8>, LayerDigests) {
    let opts = CreateOptions {
        compression,
        source_date_epoch,
        ..Default::default()
    };
    let mut blob = Vec::new();
    let digests = create_from_dir(root, &mut blob, &opts).unwrap();
    (blob, digests)
}

fn decompress(blob: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => blob.to_vec(),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(blob).read_to_end(&mut out).unwrap();
            out
        }
        Compression::Zstd => zstd::decode_all(blob).unwrap(),
    }
}

fn apply(blob: &[u8], digests: &LayerDigests, rootfs: &Path, whiteouts: WhiteoutMode) {
    let opts = ApplyOptions {
        whiteouts,
        compression: Some(digests.compression),
        diff_id: Some(digests.diff_id.clone()),
        ..Default::default()
    };
    apply_layer(blob, rootfs, &opts).unwrap_or_else(|e| panic!("applying {}: {e}", digests.digest));
}

/// The differences between the trees `want` and `got` (mtimes included), as one message; `None` when equal.
fn tree_diff(want: &Path, got: &Path, what: &str) -> Option<String> {
    let a = tree::summarize(want, ALL_MTIMES).unwrap();
    let b = tree::summarize(got, ALL_MTIMES).unwrap();
    assert!(a.len() > 40, "{what}: the tree has content");
    let d = tree::diff(&a, &b);
    (!d.is_empty()).then(|| {
        format!(
            "{what} (first: {}, second: {}):\n{}",
            want.display(),
            got.display(),
            d.join("\n")
        )
    })
}

fn assert_same_tree(want: &Path, got: &Path, what: &str) {
    if let Some(d) = tree_diff(want, got, what) {
        panic!("{d}");
    }
}

/// Checks the builder made what the round trip is meant to cover, so that a source tree which silently lost (say)
/// its capability or its device cannot make the comparisons vacuous.
fn check_rich_source(root: &Path, user_xattrs: bool) {
    let t = tree::summarize(root, ALL_MTIMES).unwrap();
    let e = |p: &str| {
        t.get(Path::new(p))
            .unwrap_or_else(|| panic!("{p} is missing from the source tree"))
    };
    assert_eq!(
        e("bin/ping").xattrs.get("security.capability"),
        Some(&CAPABILITY.to_vec())
    );
    let suid = e("bin/suid-owned");
    assert_eq!((suid.mode, suid.uid, suid.gid), (0o6750, 1234, 5678));
    assert_eq!(e("tmp").mode, 0o1777);
    assert_eq!(e("private").mode, 0o700);
    assert_eq!(e("etc/owned-link").uid, 1234);
    assert_eq!((e("dev/null").kind, e("dev/null").content.as_str()), ("char", "1:3"));
    assert_eq!(e("srv/fifo").kind, "fifo");
    let group = e("etc/config").link_group.clone();
    assert!(group.is_some());
    assert_eq!(
        t.values().filter(|x| x.link_group == group).count(),
        3,
        "three names for etc/config's inode"
    );
    if user_xattrs {
        assert!(e("etc/config").xattrs.contains_key("user.note"));
        assert!(e("srv").xattrs.contains_key("user.dir-note"));
    }
    for (p, x) in &t {
        assert!(
            x.mtime < Some(1_600_000_000),
            "{}: mtime {:?} is not a fixed one",
            p.display(),
            x.mtime
        );
    }
}

#[test]
fn a_layer_of_a_rich_tree_applies_back_to_the_same_tree() {
    let dir = tempfile::tempdir().unwrap();
    let src = fresh(dir.path(), "src");
    let user_xattrs = build(&src, &rich_tree(), Order::Forward);
    check_rich_source(&src, user_xattrs);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (blob, d) = create(&src, compression, None);
        assert_eq!(d.compression, compression);
        assert_eq!(d.digest, Digest::sha256(&blob), "{compression}: digest of the blob");
        assert_eq!(d.size, blob.len() as u64, "{compression}: size of the blob");
        let tar = decompress(&blob, compression);
        assert_eq!(d.diff_id, Digest::sha256(&tar), "{compression}: diffID");
        assert_eq!(
            d.uncompressed_size,
            tar.len() as u64,
            "{compression}: uncompressed size"
        );
        assert_eq!(
            Compression::sniff(&blob),
            compression,
            "{compression}: the blob is what it says"
        );
        assert_eq!(
            berth_spec::media_type::layer_compression(d.media_type),
            Some(compression)
        );
        let out = fresh(dir.path(), &format!("out-{compression}"));
        apply(&blob, &d, &out, WhiteoutMode::Oci);
        assert_same_tree(&src, &out, &format!("{compression}: source vs applied"));
    }
}

/// Sets every mtime newer than `after` under `root` to now (as if the tree had been rebuilt later), directories
/// after their children.
fn touch_newer_than(root: &Path, after: i64) {
    use std::os::unix::fs::MetadataExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let summary = tree::summarize(root, ALL_MTIMES).unwrap();
    for (rel, entry) in summary.iter().rev() {
        let p = root.join(rel);
        if std::fs::symlink_metadata(&p).unwrap().mtime() > after && entry.kind != "dir" {
            set_mtime(&p, now, 0);
        }
    }
    let mut dirs: Vec<_> = summary
        .iter()
        .filter(|(_, e)| e.kind == "dir")
        .map(|(rel, _)| rel.clone())
        .collect();
    dirs.sort_by_key(|rel| std::cmp::Reverse(rel.components().count()));
    for rel in dirs {
        let p = root.join(rel);
        if std::fs::symlink_metadata(&p).unwrap().mtime() > after {
            set_mtime(&p, now, 0);
        }
    }
}

#[test]
fn the_same_tree_always_makes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let one = fresh(dir.path(), "one");
    let two = fresh(&fresh(&fresh(dir.path(), "elsewhere"), "much-deeper"), "two");
    build(&one, &rich_tree(), Order::Forward);
    // Something in between, so the two trees' inode numbers are not simply shifted.
    std::fs::write(dir.path().join("spacer"), vec![0u8; 4096]).unwrap();
    build(&two, &rich_tree(), Order::Reverse);
    assert_same_tree(&one, &two, "the two builds");
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (a, da) = create(&one, compression, None);
        let (b, db) = create(&two, compression, None);
        assert!(a == b, "{compression}: {} vs {}", da.digest, db.digest);
        assert_eq!(da, db);
        let one_thread = CreateOptions {
            compression,
            threads: 1,
            ..Default::default()
        };
        let mut c = Vec::new();
        create_from_dir(&two, &mut c, &one_thread).unwrap();
        assert!(a == c, "{compression}: one thread vs one per core");
    }

    // Clamped to SOURCE_DATE_EPOCH, a later rebuild (every newer mtime now) gives the same bytes too.
    touch_newer_than(&two, CLAMP);
    for compression in [Compression::Gzip, Compression::Zstd] {
        let (a, da) = create(&one, compression, Some(CLAMP));
        let (b, db) = create(&two, compression, Some(CLAMP));
        assert!(a == b, "{compression} clamped: {} vs {}", da.digest, db.digest);
        let tar = decompress(&a, compression);
        let mut archive = tar::Archive::new(&tar[..]);
        let (mut entries, mut older) = (0, 0);
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let mtime = entry.header().mtime().unwrap() as i64;
            let path = entry.path().unwrap().display().to_string();
            assert!(mtime <= CLAMP, "{compression}: {path} has mtime {mtime} after {CLAMP}");
            entries += 1;
            older += usize::from(mtime < CLAMP);
        }
        assert!(entries > 40, "{compression}: {entries} entries");
        assert!(
            older > 3,
            "{compression}: mtimes older than the clamp are kept ({older} found)"
        );
        if compression == Compression::Gzip {
            // A reproducible build's gzip is zlib's level 6, whose bytes do not depend on the CPU or libisal.
            let mut w = berth_layer::compress::LayerWriter::new_portable(Vec::new(), compression, None, 0).unwrap();
            std::io::Write::write_all(&mut w, &tar).unwrap();
            let (_, portable) = w.finish_into_inner().unwrap();
            assert!(a == portable, "SOURCE_DATE_EPOCH gzip is not the portable encoding");
            // The layer tool reads the variable as a builder does.
            let out = dir.path().join("tool.tar.gz");
            let ran = std::process::Command::new(env!("CARGO_BIN_EXE_berth-layer-tool"))
                .env("SOURCE_DATE_EPOCH", CLAMP.to_string())
                .args(["create", s(&two), s(&out), "gzip"])
                .output()
                .unwrap();
            assert!(ran.status.success(), "{ran:?}");
            assert!(
                std::fs::read(&out).unwrap() == a,
                "berth-layer-tool ignored SOURCE_DATE_EPOCH"
            );
        }
    }
}

/// Turns a copy of the rich tree into an upper tree: a file and a directory deleted, a directory replaced, a file
/// modified, a chmod-only change, a hardlink between new names and a new hardlink to an unchanged file.
fn make_upper(upper: &Path) {
    std::fs::remove_file(upper.join("etc/secret")).unwrap();
    std::fs::remove_dir_all(upper.join("ro")).unwrap();
    std::fs::remove_dir_all(upper.join("replace/sub")).unwrap();
    std::fs::remove_file(upper.join("replace/a")).unwrap();
    std::fs::write(upper.join("replace/new"), b"the only child now\n").unwrap();
    std::fs::write(upper.join("bin/tool"), b"#!/bin/sh\necho tool, version 2\n").unwrap();
    std::fs::set_permissions(upper.join("etc/empty"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(upper.join("replace/new"), upper.join("usr/new-link")).unwrap();
    // A new name for an unchanged file: the layer must carry the inode's other names too.
    std::fs::hard_link(upper.join("bin/sgid"), upper.join("usr/sgid-link")).unwrap();
}

/// A lower rich tree, its upper, and the two layers: the whole lower tree, and the diff from lower to upper.
struct TwoLayers {
    lower: PathBuf,
    upper: PathBuf,
    layers: Vec<(Vec<u8>, LayerDigests)>,
}

fn two_layers(dir: &Path) -> TwoLayers {
    let lower = fresh(dir, "lower");
    let upper = fresh(dir, "upper");
    build(&lower, &rich_tree(), Order::Forward);
    build(&upper, &rich_tree(), Order::Forward);
    make_upper(&upper);
    let layer1 = create(&lower, Compression::Gzip, None);
    let mut blob = Vec::new();
    let d = create_diff(&lower, &upper, &mut blob, &CreateOptions::default()).unwrap();
    TwoLayers {
        lower,
        upper,
        layers: vec![layer1, (blob, d)],
    }
}

#[test]
fn umoci_unpacks_berth_layers_to_the_source_tree() {
    let dir = tempfile::tempdir().unwrap();
    let t = two_layers(dir.path());
    let layout_dir = dir.path().join("layout");
    let layout = Layout::create(&layout_dir).unwrap();
    let config = serde_json::json!({"Cmd": ["/bin/tool"]});
    image::write_layers_image(&layout, "one", &t.layers[..1], &config).unwrap();
    image::write_layers_image(&layout, "two", &t.layers, &config).unwrap();

    // Every comparison is made before failing, so one report shows all that differs.
    let mut failures = Vec::new();
    for (name, want) in [("one", &t.lower), ("two", &t.upper)] {
        let bundle = dir.path().join(format!("umoci-{name}"));
        let image_ref = format!("{}:{name}", s(&layout_dir));
        tools::run(
            tools::umoci()
                .unwrap()
                .args(["unpack", "--image", &image_ref])
                .arg(&bundle),
        )
        .unwrap();
        failures.extend(tree_diff(
            want,
            &bundle.join("rootfs"),
            &format!("image {name}: source vs umoci"),
        ));
    }

    // Berth applies the same two layers, bottom first, to the same tree.
    let ours = fresh(dir.path(), "berth-two");
    for (blob, d) in &t.layers {
        apply(blob, d, &ours, WhiteoutMode::Oci);
    }
    failures.extend(tree_diff(&t.upper, &ours, "upper vs berth-applied layers"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Unmounts on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.0).output() {
            Ok(out) if out.status.success() => {}
            other => eprintln!("umount {}: {other:?}", self.0.display()),
        }
    }
}

#[test]
fn overlay_whiteouts_stack_to_the_upper_tree_under_overlayfs() {
    let dir = tempfile::tempdir().unwrap();
    let t = two_layers(dir.path());
    let mut lowers = Vec::new();
    for (i, (blob, d)) in t.layers.iter().enumerate() {
        let l = fresh(dir.path(), &format!("l{}", i + 1));
        apply(blob, d, &l, WhiteoutMode::Overlay { user_xattr: false });
        lowers.push(l);
    }
    // Layer 1 has no whiteouts, so its overlay form is the lower tree itself.
    assert_same_tree(&t.lower, &lowers[0], "lower vs layer 1 in overlay form");

    let merged = fresh(dir.path(), "merged");
    let opts = format!("lowerdir={}:{}", s(&lowers[1]), s(&lowers[0]));
    let out = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "note: cannot mount overlayfs here ({}); the merged tree is not compared",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    let _mounted = Mounted(merged.clone());
    assert_same_tree(&t.upper, &merged, "upper vs overlayfs of the two layers");
}

/// The tar entries of a layer, as `TYPE PATH [-> LINK]` lines.
fn listing(blob: &[u8], compression: Compression) -> String {
    let tar = decompress(blob, compression);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| format!(" -> {}", l.display()))
            .unwrap_or_default();
        out.push(format!(
            "{:?} {}{link}",
            entry.header().entry_type(),
            entry.path().unwrap().display()
        ));
    }
    out.join("\n")
}

/// Regression test for a hardlink added to an unchanged file: `create_diff` writes only the new name, as an
/// independent regular file, so the link is lost when the layer is applied (by Berth, umoci or overlayfs alike).
#[test]
fn create_diff_keeps_a_hardlink_added_to_an_unchanged_file() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper) = (fresh(dir.path(), "lower"), fresh(dir.path(), "upper"));
    for root in [&lower, &upper] {
        std::fs::write(root.join("a"), b"one inode\n").unwrap();
        set_mtime(&root.join("a"), 1_500_000_000, 0);
    }
    std::fs::hard_link(upper.join("a"), upper.join("b")).unwrap();
    for root in [&lower, &upper] {
        set_mtime(root, 1_500_000_000, 0);
    }
    let base = create(&lower, Compression::None, None);
    let mut blob = Vec::new();
    let d = create_diff(
        &lower,
        &upper,
        &mut blob,
        &CreateOptions {
            compression: Compression::None,
            ..Default::default()
        },
    )
    .unwrap();
    let out = fresh(dir.path(), "out");
    apply(&base.0, &base.1, &out, WhiteoutMode::Oci);
    apply(&blob, &d, &out, WhiteoutMode::Oci);
    let want = tree::summarize(&upper, ALL_MTIMES).unwrap();
    let got = tree::summarize(&out, ALL_MTIMES).unwrap();
    let diff = tree::diff(&want, &got);
    assert!(
        diff.is_empty(),
        "diff layer:\n{}\n\nupper vs applied:\n{}",
        listing(&blob, Compression::None),
        diff.join("\n")
    );
}
