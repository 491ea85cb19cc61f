//! Tests of layer creation. They run as root (chown, mknod, trusted.* xattrs); a sub-assertion whose setup the
//! test filesystem refuses (xattrs) is skipped with a note.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};

use berth_spec::Digest;
use berth_spec::media_type::Compression;
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use tar::EntryType;

use super::*;
use crate::whiteout::{OVERLAY_OPAQUE_XATTR, USER_OVERLAY_OPAQUE_XATTR};

const T0: i64 = 1_600_000_000;

/// One entry read back from a tar stream.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    ty: EntryType,
    mode: u32,
    uid: u64,
    mtime: u64,
    link: Option<String>,
    dev: Option<(u32, u32)>,
    pax: Vec<(String, Vec<u8>)>,
    data: Vec<u8>,
}

fn read_tar(bytes: &[u8]) -> Vec<Seen> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let pax = match e.pax_extensions().unwrap() {
            Some(exts) => exts
                .map(|x| {
                    let x = x.unwrap();
                    (x.key().unwrap().to_owned(), x.value_bytes().to_vec())
                })
                .collect(),
            None => Vec::new(),
        };
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Seen {
            path: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            ty: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            mtime: h.mtime().unwrap(),
            link: e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()),
            dev: matches!(h.entry_type(), EntryType::Char | EntryType::Block)
                .then(|| (h.device_major().unwrap().unwrap(), h.device_minor().unwrap().unwrap())),
            pax,
            data,
        });
    }
    out
}

fn paths(entries: &[Seen]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

fn find<'a>(entries: &'a [Seen], path: &str) -> &'a Seen {
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} missing from {:?}", paths(entries)))
}

fn plain() -> CreateOptions {
    CreateOptions {
        compression: Compression::None,
        ..CreateOptions::default()
    }
}

fn tar_of(root: &Path, opts: &CreateOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_tar_from_dir(root, &mut out, opts).unwrap();
    out
}

fn set_mtime(path: &Path, secs: i64, nsecs: i64) {
    let ts = Timespec {
        tv_sec: secs,
        tv_nsec: nsecs as _,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// Sets every mtime below `root` (and its own) to `T0`.
fn pin_mtimes(root: &Path) {
    for name in fs::read_dir(root).unwrap() {
        let path = name.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            pin_mtimes(&path);
        }
        set_mtime(&path, T0, 0);
    }
    set_mtime(root, T0, 0);
}

fn write(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mknod(path: &Path, ty: FileType, major: u32, minor: u32) {
    let dev = rustix::fs::makedev(major, minor);
    rustix::fs::mknodat(CWD, path, ty, Mode::from_raw_mode(0o644), dev).unwrap();
}

/// Sets an xattr, or prints why the filesystem refused and returns false.
fn try_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    match rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()) {
        Ok(()) => true,
        Err(e) => {
            println!(
                "note: skipping the {name} assertion: setting it on {} failed: {e}",
                path.display()
            );
            false
        }
    }
}

/// A tree with one of everything.
fn populate(root: &Path) {
    write(&root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n", 0o644);
    write(&root.join("bin/su"), b"\x7fELF setuid", 0o4755);
    write(&root.join("bin/wall"), b"\x7fELF setgid", 0o2755);
    fs::create_dir(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    symlink("../etc/passwd", root.join("bin/link")).unwrap();
    write(&root.join("a.txt"), b"a", 0o600);
    write(&root.join("a/b"), &vec![7u8; 3 * 1024 * 1024 + 3], 0o644);
    write(&root.join("B"), b"", 0o644);
    fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-")).unwrap();
    std::os::unix::fs::lchown(root.join("a.txt"), Some(1000), Some(100)).unwrap();
    mknod(&root.join("fifo"), FileType::Fifo, 0, 0);
}

#[test]
fn create_is_deterministic_across_trees_and_threads() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&one, &two] {
        populate(dir.path());
        pin_mtimes(dir.path());
    }
    let opts = CreateOptions::default();
    let tar = tar_of(one.path(), &opts);
    assert!(tar == tar_of(two.path(), &opts), "same tree, different bytes");
    assert_eq!(tar.len() % 512, 0);
    assert!(tar.ends_with(&[0u8; 1024]));
    assert_eq!(
        paths(&read_tar(&tar)),
        [
            "B",
            "a/",
            "a/b",
            "a.txt",
            "bin/",
            "bin/link",
            "bin/su",
            "bin/wall",
            "etc/",
            "etc/passwd",
            "etc/passwd-",
            "fifo",
            "tmp/"
        ]
    );
    for compression in [Compression::Gzip, Compression::Zstd] {
        let mut blobs = Vec::new();
        for (dir, threads) in [(&one, 1), (&two, 2), (&one, 4)] {
            let mut blob = Vec::new();
            let opts = CreateOptions {
                compression,
                threads,
                ..CreateOptions::default()
            };
            create_from_dir(dir.path(), &mut blob, &opts).unwrap();
            blobs.push(blob);
        }
        assert!(blobs.windows(2).all(|w| w[0] == w[1]), "{compression} output varies");
    }
}

#[test]
fn create_keeps_metadata_types_and_hardlinks() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    mknod(&dir.path().join("null"), FileType::CharacterDevice, 1, 3);
    mknod(&dir.path().join("loop0"), FileType::BlockDevice, 7, 0);
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    pin_mtimes(dir.path());
    let entries = read_tar(&tar_of(dir.path(), &CreateOptions::default()));

    assert!(!paths(&entries).contains(&"sock"), "sockets are skipped");
    let null = find(&entries, "null");
    assert_eq!((null.ty, null.dev), (EntryType::Char, Some((1, 3))));
    let loop0 = find(&entries, "loop0");
    assert_eq!((loop0.ty, loop0.dev), (EntryType::Block, Some((7, 0))));
    assert_eq!(find(&entries, "fifo").ty, EntryType::Fifo);
    assert_eq!(find(&entries, "bin/su").mode, 0o4755);
    assert_eq!(find(&entries, "bin/wall").mode, 0o2755);
    assert_eq!(find(&entries, "tmp/").mode, 0o1777);
    let a = find(&entries, "a.txt");
    assert_eq!((a.uid, a.mode, a.mtime), (1000, 0o600, T0 as u64));
    let link = find(&entries, "bin/link");
    assert_eq!(
        (link.ty, link.link.as_deref()),
        (EntryType::Symlink, Some("../etc/passwd"))
    );
    assert_eq!(find(&entries, "a/b").data.len(), 3 * 1024 * 1024 + 3);

    let first = find(&entries, "etc/passwd");
    assert_eq!(first.ty, EntryType::Regular);
    assert_eq!(first.data, b"root:x:0:0::/root:/bin/sh\n");
    let second = find(&entries, "etc/passwd-");
    assert_eq!(
        (second.ty, second.link.as_deref()),
        (EntryType::Link, Some("etc/passwd"))
    );
    assert!(second.data.is_empty());
}

#[test]
fn create_clamps_mtimes_to_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("old"), b"o", 0o644);
    write(&dir.path().join("new"), b"n", 0o644);
    set_mtime(&dir.path().join("old"), 1000, 5);
    set_mtime(&dir.path().join("new"), 2_000_000_000, 0);
    let opts = CreateOptions {
        source_date_epoch: Some(1_500_000_000),
        ..CreateOptions::default()
    };
    let entries = read_tar(&tar_of(dir.path(), &opts));
    assert_eq!(find(&entries, "old").mtime, 1000);
    assert_eq!(find(&entries, "new").mtime, 1_500_000_000);
}

#[test]
fn create_uses_pax_for_long_and_non_ascii_names() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("{}/{}", "d".repeat(150), "f".repeat(99));
    let long = format!("{}/{}", "l".repeat(60), "n".repeat(200));
    write(&dir.path().join(&deep), b"split", 0o644);
    write(&dir.path().join(&long), b"long", 0o644);
    write(&dir.path().join("café"), b"utf8", 0o644);
    let target = "t".repeat(180);
    symlink(&target, dir.path().join("longlink")).unwrap();
    let tar = tar_of(dir.path(), &CreateOptions::default());
    let entries = read_tar(&tar);

    let split = find(&entries, &deep);
    assert!(
        split.pax.is_empty(),
        "a path that fits prefix+name needs no PAX: {:?}",
        split.pax
    );
    for (path, data) in [(long.as_str(), &b"long"[..]), ("café", b"utf8")] {
        let e = find(&entries, path);
        assert_eq!(e.data, data);
        assert!(
            e.pax.iter().any(|(k, v)| k == "path" && v == path.as_bytes()),
            "{path}: {:?}",
            e.pax
        );
    }
    let link = find(&entries, "longlink");
    assert_eq!(link.link.as_deref(), Some(target.as_str()));
    assert!(link.pax.iter().any(|(k, _)| k == "linkpath"));

    // GNU tar reads the same names.
    let listed = pipe("tar", &["-tf", "-"], &tar);
    let listed = String::from_utf8(listed).unwrap();
    for path in [deep.as_str(), long.as_str(), "café", "longlink"] {
        assert!(listed.lines().any(|l| l == path), "GNU tar does not list {path}");
    }
}

#[test]
fn create_keeps_capabilities_and_user_xattrs_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ping");
    write(&file, b"ping", 0o755);
    fs::create_dir(dir.path().join("d")).unwrap();
    // vfs_cap_data revision 2, effective, CAP_NET_RAW permitted.
    let cap = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let has_cap = try_xattr(&file, "security.capability", &cap);
    let has_user = try_xattr(&file, "user.comment", b"hello");
    let has_user_overlay = try_xattr(&file, "user.overlay.origin", b"x");
    let has_trusted = try_xattr(&dir.path().join("d"), OVERLAY_OPAQUE_XATTR, b"y");
    let entries = read_tar(&tar_of(dir.path(), &CreateOptions::default()));
    let pax = &find(&entries, "ping").pax;
    if has_cap {
        assert!(
            pax.contains(&("SCHILY.xattr.security.capability".into(), cap.to_vec())),
            "{pax:?}"
        );
    }
    if has_user {
        assert!(
            pax.contains(&("SCHILY.xattr.user.comment".into(), b"hello".to_vec())),
            "{pax:?}"
        );
    }
    if has_user_overlay {
        assert!(!pax.iter().any(|(k, _)| k.contains("overlay")), "{pax:?}");
    }
    if has_trusted {
        assert!(
            find(&entries, "d/").pax.is_empty(),
            "trusted.overlay.* must not be emitted"
        );
    }
}

/// Builds the lower tree of the diff tests.
fn lower_tree(root: &Path) {
    write(&root.join("etc/passwd"), b"root", 0o644);
    write(&root.join("etc/group"), b"g", 0o644);
    write(&root.join("etc/hosts"), b"h", 0o644);
    write(&root.join("usr/bin/tool"), b"tool", 0o755);
    write(&root.join("var/cache/a"), b"a", 0o644);
    write(&root.join("var/cache/b/c"), b"c", 0o644);
    write(&root.join("var/log/x"), b"x", 0o644);
    write(&root.join("opt/x/1"), b"1", 0o644);
    write(&root.join("opt/x/2"), b"2", 0o644);
    write(&root.join("keep/file"), b"k", 0o644);
    write(&root.join("was-file"), b"f", 0o644);
    fs::create_dir(root.join("home")).unwrap();
    pin_mtimes(root);
}

#[test]
fn create_diff_adds_changes_and_deletes() {
    let (lower, upper) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    lower_tree(lower.path());
    lower_tree(upper.path());
    let up = upper.path();
    write(&up.join("etc/new"), b"new", 0o644);
    write(&up.join("etc/passwd"), b"root:x", 0o644);
    fs::set_permissions(up.join("etc/group"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(up.join("etc/hosts")).unwrap();
    fs::remove_dir_all(up.join("var/cache")).unwrap();
    fs::remove_file(up.join("opt/x/1")).unwrap();
    fs::remove_file(up.join("opt/x/2")).unwrap();
    write(&up.join("opt/x/3"), b"3", 0o644);
    fs::remove_file(up.join("was-file")).unwrap();
    write(&up.join("was-file/inside"), b"i", 0o644);
    // Same metadata, different content: unchanged by the double-walk rule.
    fs::write(up.join("keep/file"), b"K").unwrap();
    set_mtime(&up.join("keep/file"), T0, 0);
    set_mtime(&up.join("keep"), T0, 0);

    let mut blob = Vec::new();
    let opts = plain();
    create_diff(lower.path(), up, &mut blob, &opts).unwrap();
    let entries = read_tar(&blob);
    assert_eq!(
        paths(&entries),
        [
            "etc/",
            "etc/.wh.hosts",
            "etc/group",
            "etc/new",
            "etc/passwd",
            "opt/",
            "opt/x/",
            "opt/x/.wh..wh..opq",
            "opt/x/3",
            "var/",
            "var/.wh.cache",
            "was-file/",
            "was-file/inside",
        ]
    );
    assert_eq!(find(&entries, "etc/group").mode, 0o600);
    assert_eq!(find(&entries, "etc/passwd").data, b"root:x");
    for wh in ["etc/.wh.hosts", "opt/x/.wh..wh..opq", "var/.wh.cache"] {
        let e = find(&entries, wh);
        assert_eq!((e.ty, e.data.len()), (EntryType::Regular, 0));
    }

    // Identical trees: an empty layer.
    let mut blob = Vec::new();
    create_diff(lower.path(), lower.path(), &mut blob, &opts).unwrap();
    assert_eq!(blob, [0u8; 1024]);
}

#[test]
fn create_diff_emptied_directory_is_opaque() {
    let (lower, upper) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(&lower.path().join("d/old"), b"o", 0o644);
    fs::create_dir(upper.path().join("d")).unwrap();
    let mut blob = Vec::new();
    let opts = plain();
    create_diff(lower.path(), upper.path(), &mut blob, &opts).unwrap();
    assert_eq!(paths(&read_tar(&blob)), ["d/", "d/.wh..wh..opq"]);
}

#[test]
fn create_from_overlay_upperdir() {
    let upper = tempfile::tempdir().unwrap();
    let up = upper.path();
    write(&up.join("etc/passwd"), b"p", 0o644);
    mknod(&up.join("etc/gone"), FileType::CharacterDevice, 0, 0);
    mknod(&up.join("etc/tty"), FileType::CharacterDevice, 5, 0);
    write(&up.join("opq/new"), b"n", 0o644);
    write(&up.join("uopq/new"), b"n", 0o644);
    let trusted = try_xattr(&up.join("opq"), OVERLAY_OPAQUE_XATTR, b"y");
    let user = try_xattr(&up.join("uopq"), USER_OVERLAY_OPAQUE_XATTR, b"y");
    let mut blob = Vec::new();
    let opts = plain();
    create_from_overlay_upper(up, &mut blob, &opts).unwrap();
    let entries = read_tar(&blob);
    let seen = paths(&entries);
    assert_eq!(seen[..4], ["etc/", "etc/.wh.gone", "etc/passwd", "etc/tty"]);
    assert_eq!(find(&entries, "etc/tty").dev, Some((5, 0)));
    assert_eq!(seen.contains(&"opq/.wh..wh..opq"), trusted);
    assert_eq!(seen.contains(&"uopq/.wh..wh..opq"), user);
    assert!(
        entries
            .iter()
            .all(|e| e.pax.iter().all(|(k, _)| !k.contains("overlay")))
    );

    if try_xattr(&up.join("etc"), "trusted.overlay.redirect", b"/old") {
        let err = create_from_overlay_upper(up, Vec::new(), &opts).unwrap_err();
        assert!(matches!(err, CreateError::OverlayNeedsLower { .. }), "{err}");
    }
}

fn pipe(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed");
    out.stdout
}

#[test]
fn create_compressed_digests_match_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let tar = tar_of(dir.path(), &CreateOptions::default());
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut blob = Vec::new();
        let opts = CreateOptions {
            compression,
            threads: 2,
            ..CreateOptions::default()
        };
        let d = create_from_dir(dir.path(), &mut blob, &opts).unwrap();
        assert_eq!((d.digest.clone(), d.size), (Digest::sha256(&blob), blob.len() as u64));
        assert_eq!(
            (d.diff_id.clone(), d.uncompressed_size),
            (Digest::sha256(&tar), tar.len() as u64)
        );
        assert_eq!(d.compression, compression);
        let decoded = match compression {
            Compression::None => blob.clone(),
            Compression::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&blob[..]).read_to_end(&mut out).unwrap();
                assert!(pipe("gzip", &["-dc"], &blob) == out, "gzip -dc disagrees");
                out
            }
            Compression::Zstd => zstd::decode_all(&blob[..]).unwrap(),
        };
        assert!(decoded == tar, "{compression}: decoded stream differs");
    }
}

#[test]
fn create_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("sub/.wh.x"), b"", 0o644);
    let err = write_tar_from_dir(dir.path(), Vec::new(), &CreateOptions::default()).unwrap_err();
    assert!(
        matches!(&err, CreateError::ReservedName { path } if path.ends_with("sub/.wh.x")),
        "{err}"
    );

    let file = dir.path().join("sub/.wh.x");
    let err = write_tar_from_dir(&file, Vec::new(), &CreateOptions::default()).unwrap_err();
    assert!(matches!(err, CreateError::NotADirectory { .. }), "{err}");

    let opts = CreateOptions {
        level: Some(42),
        ..CreateOptions::default()
    };
    let err = create_from_dir(dir.path(), Vec::new(), &opts).unwrap_err();
    assert!(matches!(err, CreateError::InvalidLevel { level: 42, .. }), "{err}");
}

fn elsewhere_of(path: &Path) -> Elsewhere {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    Elsewhere {
        path: path.to_owned(),
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    }
}

#[test]
fn placeholders_take_their_content_from_where_it_was_copied_from() {
    let src = tempfile::tempdir().unwrap();
    let upper = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    write(&src.path().join("data"), &content, 0o644);
    write(&upper.path().join("data"), b"", 0o640);
    std::fs::hard_link(upper.path().join("data"), upper.path().join("alias")).unwrap();
    write(&upper.path().join("own"), b"its own bytes", 0o600);
    let mut map = ContentElsewhere::default();
    map.insert(&upper.path().join("data"), elsewhere_of(&src.path().join("data")))
        .unwrap();
    let mut out = Vec::new();
    create_from_overlay_upper_elsewhere(upper.path(), &map, &mut out, &plain()).unwrap();
    let seen = read_tar(&out);
    assert_eq!(paths(&seen), ["alias", "data", "own"]);
    // The first name carries the content (with the placeholder's mode), the second links to it.
    assert_eq!(find(&seen, "alias").data, content);
    assert_eq!(find(&seen, "alias").mode, 0o640);
    assert_eq!(find(&seen, "data").ty, EntryType::Link);
    assert_eq!(find(&seen, "own").data, b"its own bytes");
    assert!(map.source_digests().is_empty(), "nothing hashed unless asked");

    // Asked to, the layer hashes each source as it reads it (once, for the one placeholder with two names).
    map.hash_sources();
    let mut again = Vec::new();
    create_from_overlay_upper_elsewhere(upper.path(), &map, &mut again, &plain()).unwrap();
    assert!(again == out, "hashing does not change the layer");
    let digests = map.source_digests();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].path, src.path().join("data"));
    assert_eq!(digests[0].blake3, *blake3::hash(&content).as_bytes());
    assert_eq!(digests[0].meta.len(), content.len() as u64);

    // Only empty files can stand for others.
    assert!(
        map.insert(&upper.path().join("own"), elsewhere_of(&src.path().join("data")))
            .is_err()
    );

    // The source changed after the copy (same size, new bytes and mtime): refused, not half old.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&src.path().join("data"), &vec![7u8; content.len()], 0o644);
    let err = create_from_overlay_upper_elsewhere(upper.path(), &map, &mut Vec::new(), &plain()).unwrap_err();
    assert!(matches!(err, CreateError::ChangedWhileReading { .. }), "{err}");
    assert!(err.to_string().contains("changed after it was copied"), "{err}");

    // The placeholder was written to: refused too.
    let mut map = ContentElsewhere::default();
    map.insert(&upper.path().join("data"), elsewhere_of(&src.path().join("data")))
        .unwrap();
    std::fs::write(upper.path().join("data"), b"x").unwrap();
    let err = create_from_overlay_upper_elsewhere(upper.path(), &map, &mut Vec::new(), &plain()).unwrap_err();
    assert!(err.to_string().contains("placeholder"), "{err}");
}

#[test]
fn an_output_that_hashes_itself_gets_the_same_bytes() {
    let root = tempfile::tempdir().unwrap();
    populate(root.path());
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = CreateOptions {
            compression,
            ..CreateOptions::default()
        };
        let (mut hashed, mut plain) = (Vec::new(), Vec::new());
        let a = create_from_dir(root.path(), &mut hashed, &opts).unwrap();
        let b = create_from_dir(
            root.path(),
            &mut plain,
            &CreateOptions {
                hash_output: false,
                ..opts.clone()
            },
        )
        .unwrap();
        assert!(hashed == plain, "{compression}: the bytes differ");
        assert_eq!((a.size, &a.diff_id), (b.size, &b.diff_id), "{compression}");
        assert_eq!(Digest::sha256(&plain), a.digest, "{compression}");
    }
}
