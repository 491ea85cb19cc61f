//! Items 11–19 of HOSTILE-INPUTS.md against `apply_layer` (39, resource bombs, is in `hostile_bombs.rs`): every archive is crafted here, and every test checks
//! that nothing outside the root was created, changed or deleted.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_layer::apply::{ApplyError, ApplyOptions, apply_layer};
use berth_spec::Digest;
use berth_spec::media_type::Compression;
use support::{RawTar, Sandbox, gzip};
use tar::EntryType;

fn apply(sb: &Sandbox, tar: &[u8]) -> Result<berth_layer::apply::ApplyReport, ApplyError> {
    apply_layer(tar, &sb.root, &ApplyOptions::default())
}

fn read(sb: &Sandbox, rel: &str) -> String {
    std::fs::read_to_string(sb.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A host path a broken extractor would create by following a link out of the root.
fn host_canary() -> (String, std::path::PathBuf) {
    let name = format!("berth-escape-canary-{}", std::process::id());
    let p = Path::new("/").join(&name);
    let _ = std::fs::remove_file(&p);
    (name, p)
}

// ---- 11: names ----

#[test]
fn hostile_11_dotdot_absolute_empty_and_root_names_stay_inside() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.file("../victim", 0o644, b"via dotdot")
        .file("/../outside/victim", 0o644, b"via rooted dotdot")
        .file("/abs", 0o644, b"absolute")
        .dir(".", 0o755)
        .dir("/", 0o755)
        .dir("", 0o755);
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert_eq!(read(&sb, "victim"), "via dotdot");
    assert_eq!(read(&sb, "outside/victim"), "via rooted dotdot");
    assert_eq!(read(&sb, "abs"), "absolute");
}

#[test]
fn hostile_11_a_file_replacing_the_root_is_refused() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.file("/", 0o644, b"x");
    let e = apply(&sb, &t.finish()).unwrap_err();
    assert_eq!(e.to_string(), "/: the entry would replace the root directory");
    assert!(sb.root.is_dir());
    sb.assert_contained();
}

// ---- 12: symlinks ----

#[test]
fn hostile_12_absolute_relative_and_chained_symlinks_never_lead_out() {
    let sb = Sandbox::new();
    let (canary, host) = host_canary();
    let mut t = RawTar::new();
    t.symlink("abs", "/")
        .file(&format!("abs/{canary}"), 0o644, b"1")
        .symlink("rel", "../../../../../../..")
        .file(&format!("rel/{canary}-rel"), 0o644, b"2")
        .symlink("a", "b")
        .symlink("b", "c/../..")
        .dir("c", 0o755)
        .file(&format!("a/{canary}-chain"), 0o644, b"3")
        .symlink("up", "..")
        .file("up/victim", 0o644, b"4")
        .symlink("out", &format!("{}", sb.dir.path().join("outside").display()))
        .file("out/victim", 0o644, b"5");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert!(
        !host.exists()
            && !Path::new(&format!("/{canary}-rel")).exists()
            && !Path::new(&format!("/{canary}-chain")).exists()
    );
    assert_eq!(read(&sb, &canary), "1");
    assert_eq!(read(&sb, &format!("{canary}-rel")), "2");
    assert_eq!(read(&sb, &format!("{canary}-chain")), "3");
    assert_eq!(read(&sb, "victim"), "4");
    // The absolute link to the sandbox's outside/ resolves to the same path *inside* the root.
    let inside = sb
        .root
        .join(sb.dir.path().strip_prefix("/").unwrap())
        .join("outside/victim");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "5");
    // The links themselves are kept as written.
    assert_eq!(std::fs::read_link(sb.path("abs")).unwrap(), Path::new("/"));
}

#[test]
fn hostile_12_symlink_to_dotdot_then_nested_path() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.symlink("sym", "..").file("sym/a/b", 0o644, b"nested");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert_eq!(read(&sb, "a/b"), "nested");
}

#[test]
fn hostile_12_dotdot_after_a_symlink_goes_to_its_real_parent() {
    // `p -> x/../new` with `x -> d/sub`: `..` is taken from where `x` leads (d/sub), as the kernel does, so `new`
    // is created in d. Resolving `..` lexically (x/../new = new) would put it at the top instead.
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.dir("d", 0o755)
        .dir("d/sub", 0o755)
        .symlink("x", "d/sub")
        .symlink("p", "x/../new")
        .file("p/f", 0o644, b"real parent")
        .symlink("q", "/x/../../../../new2")
        .file("q/g", 0o644, b"clamped at the root")
        // Entry names themselves are cleaned lexically, as docker and containerd clean them: x/../h is h.
        .file("x/../h", 0o644, b"lexical name");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert_eq!(read(&sb, "d/new/f"), "real parent");
    assert!(!sb.path("new").exists());
    assert_eq!(read(&sb, "new2/g"), "clamped at the root");
    assert_eq!(read(&sb, "h"), "lexical name");
}

// ---- 13: hardlinks ----

#[test]
fn hostile_13_hardlinks_resolve_in_root() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0")
        .hardlink("abs-link", "/etc/passwd")
        .hardlink("dotdot-link", "../../../etc/passwd");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    let ino = std::fs::metadata(sb.path("etc/passwd")).unwrap().ino();
    assert_eq!(std::fs::metadata(sb.path("abs-link")).unwrap().ino(), ino);
    assert_eq!(std::fs::metadata(sb.path("dotdot-link")).unwrap().ino(), ino);
}

#[test]
fn hostile_13_hardlink_to_escaping_symlink_then_chmod_never_touches_the_target() {
    // containerd CVE-2021-32760: a later entry at the link's path must not chmod through it.
    let sb = Sandbox::new();
    let victim = sb.dir.path().join("victim");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut t = RawTar::new();
    t.symlink("s", victim.to_str().unwrap())
        .hardlink("h", "s")
        .entry(b"h", EntryType::Regular, 0o4777, b"", b"");
    t.entry(b"s", EntryType::Directory, 0o777, b"", b"");
    apply(&sb, &t.finish()).unwrap();
    // The sandbox snapshot was taken before the chmod above; check the mode explicitly.
    assert_eq!(std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(sb.path("s")).unwrap().is_dir());
    assert_eq!(
        std::fs::symlink_metadata(sb.path("h")).unwrap().permissions().mode() & 0o7777,
        0o4777
    );
}

#[test]
fn hostile_13_hardlink_to_a_symlink_links_the_symlink_itself() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.symlink("s", "/etc/shadow").hardlink("h", "s");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert_eq!(std::fs::read_link(sb.path("h")).unwrap(), Path::new("/etc/shadow"));
}

#[test]
fn hostile_13_hardlink_to_directory_or_missing_target_is_refused() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.dir("d", 0o755).hardlink("h", "d");
    let e = apply(&sb, &t.finish()).unwrap_err();
    assert_eq!(e.to_string(), "h: hardlink target \"d\" is a directory");
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.hardlink("early", "later").file("later", 0o644, b"x");
    let e = apply(&sb, &t.finish()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "early: hardlink target \"later\" does not exist (it must come earlier in the layer)"
    );
    sb.assert_contained();
}

// ---- 14: type changes ----

#[test]
fn hostile_14_type_changes_at_one_path() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.file("p", 0o644, b"file")
        .symlink("p", "/etc")
        .file("p", 0o600, b"file again")
        .dir("d", 0o755)
        .file("d/child", 0o644, b"c")
        .file("d", 0o644, b"now a file")
        .file("f", 0o644, b"x")
        .dir("f", 0o700)
        .file("f/inner", 0o644, b"inner");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert_eq!(read(&sb, "p"), "file again");
    assert!(std::fs::symlink_metadata(sb.path("p")).unwrap().is_file());
    assert_eq!(read(&sb, "d"), "now a file");
    assert_eq!(read(&sb, "f/inner"), "inner");
}

// ---- 15: whiteouts ----

fn lower(sb: &Sandbox) {
    let mut t = RawTar::new();
    t.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"p")
        .file("etc/group", 0o644, b"g")
        .dir("etc/sub", 0o755)
        .file("etc/sub/deep", 0o644, b"d")
        .dir("var", 0o755)
        .file("var/keep", 0o644, b"k")
        .symlink("lnk", "/etc");
    apply(sb, &t.finish()).unwrap();
}

#[test]
fn hostile_15_whiteouts_missing_opaque_and_symlinked_parent() {
    let sb = Sandbox::new();
    lower(&sb);
    let mut t = RawTar::new();
    t.file(".wh.does-not-exist", 0o644, b"")
        .file("missing-dir/.wh.x", 0o644, b"")
        .file("lnk/.wh.group", 0o644, b"")
        .dir("var", 0o755)
        .file("var/new", 0o644, b"n")
        .file("var/.wh..wh..opq", 0o644, b"");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert!(
        !sb.path("etc/group").exists(),
        "whiteout through an in-root symlinked parent applies in-root"
    );
    assert!(sb.path("etc/passwd").exists());
    assert!(!sb.path("var/keep").exists(), "opaque hides lower content");
    assert_eq!(
        read(&sb, "var/new"),
        "n",
        "opaque keeps this layer's content, even when listed before the marker"
    );
    assert!(!sb.path(".wh.does-not-exist").exists());
}

#[test]
fn hostile_15_whiteout_and_same_named_file_in_one_layer_keeps_the_file() {
    for order in [true, false] {
        let sb = Sandbox::new();
        lower(&sb);
        let mut t = RawTar::new();
        if order {
            t.file("etc/.wh.passwd", 0o644, b"").file("etc/passwd", 0o600, b"new");
        } else {
            t.file("etc/passwd", 0o600, b"new").file("etc/.wh.passwd", 0o644, b"");
        }
        apply(&sb, &t.finish()).unwrap();
        assert_eq!(read(&sb, "etc/passwd"), "new", "order {order}");
    }
}

#[test]
fn hostile_15_malformed_whiteout_names_are_refused() {
    for (name, msg) in [
        (".wh..", ".wh..: invalid name in the reserved .wh. whiteout namespace"),
        (".wh...", ".wh...: invalid name in the reserved .wh. whiteout namespace"),
        (".wh.", ".wh.: invalid name in the reserved .wh. whiteout namespace"),
        (
            ".wh.etc/file",
            ".wh.etc/file: a directory in its path has a reserved .wh. whiteout name",
        ),
    ] {
        let sb = Sandbox::new();
        lower(&sb);
        let mut t = RawTar::new();
        t.file(name, 0o644, b"");
        let e = apply(&sb, &t.finish()).unwrap_err();
        assert_eq!(e.to_string(), msg);
        assert!(sb.path("etc/passwd").exists());
        sb.assert_contained();
    }
}

#[test]
fn overlay_mode_writes_char_device_whiteouts_and_opaque_xattr() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.dir("etc", 0o755)
        .file("etc/.wh.passwd", 0o644, b"")
        .dir("var", 0o755)
        .file("var/.wh..wh..opq", 0o644, b"");
    let opts = ApplyOptions {
        whiteouts: berth_layer::apply::WhiteoutMode::Overlay { user_xattr: false },
        ..Default::default()
    };
    apply_layer(&t.finish()[..], &sb.root, &opts).unwrap();
    let m = std::fs::symlink_metadata(sb.path("etc/passwd")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(m.file_type().is_char_device() && m.rdev() == berth_layer::whiteout::WHITEOUT_DEVICE);
    let v = support::getxattr(&sb.path("var"), berth_layer::whiteout::OVERLAY_OPAQUE_XATTR);
    assert_eq!(v, b"y");
}

// ---- 16: devices, FIFOs, special bits ----

#[test]
fn hostile_16_devices_fifos_and_mode_bits() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    let mut h = RawTar::header(b"null", EntryType::Char, 0o666, 0, b"");
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    t.raw_header(h, b"");
    t.entry(b"fifo", EntryType::Fifo, 0o640, b"", b"")
        .file("suid", 0o4755, b"s")
        .file("sgid", 0o2755, b"g")
        .dir("sticky", 0o1777);
    // Mode bits above 07777 are ignored.
    let mut h = RawTar::header(b"big-mode", EntryType::Regular, 0, 1, b"");
    h.as_mut_bytes()[100..108].copy_from_slice(b"0177777\0");
    t.raw_header(h, b"x");
    let report = apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    use std::os::unix::fs::FileTypeExt;
    let null = std::fs::symlink_metadata(sb.path("null")).unwrap();
    if report.skipped_devices == 0 {
        assert!(null.file_type().is_char_device());
        assert_eq!((rustix::fs::major(null.rdev()), rustix::fs::minor(null.rdev())), (1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
    }
    assert!(
        std::fs::symlink_metadata(sb.path("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let mode = |p: &str| std::fs::symlink_metadata(sb.path(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("suid"), 0o4755);
    assert_eq!(mode("sgid"), 0o2755);
    assert_eq!(mode("sticky"), 0o1777);
    assert_eq!(mode("big-mode"), 0o7777);
}

// ---- 17: xattrs ----

#[test]
fn hostile_17_security_capability_kept_forged_overlay_xattrs_refused() {
    let sb = Sandbox::new();
    // A valid VFS_CAP_REVISION_2 blob granting cap_net_bind_service (bit 10), effective.
    let mut cap = vec![0u8; 20];
    cap[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
    cap[4..8].copy_from_slice(&(1u32 << 10).to_le_bytes());
    let mut t = RawTar::new();
    t.pax(&[("SCHILY.xattr.security.capability", &cap)])
        .file("ping", 0o755, b"bin");
    apply(&sb, &t.finish()).unwrap();
    let got = support::getxattr(&sb.path("ping"), "security.capability");
    assert_eq!(got, cap);
    for key in [
        "SCHILY.xattr.trusted.overlay.opaque",
        "SCHILY.xattr.user.overlay.redirect",
    ] {
        let sb = Sandbox::new();
        let mut t = RawTar::new();
        t.pax(&[(key, b"y")]).dir("d", 0o755);
        let e = apply(&sb, &t.finish()).unwrap_err();
        let x = key.trim_start_matches("SCHILY.xattr.");
        assert_eq!(
            e.to_string(),
            format!("d: carries the overlayfs xattr \"{x}\"; layers must not forge overlay metadata")
        );
        assert!(!sb.path("d").exists());
    }
}

#[test]
fn hostile_17_xattrs_on_device_nodes_fifos_and_symlinks_are_set_on_the_node() {
    // They used to be set with lsetxattr on /proc/self/fd/N, which names the magic link, not the node: refused,
    // and dropped with only a log line.
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    let mut h = RawTar::header(b"null", EntryType::Char, 0o666, 0, b"");
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    t.pax(&[("SCHILY.xattr.trusted.berth-test", b"char")])
        .raw_header(h, b"");
    t.pax(&[
        ("SCHILY.xattr.trusted.berth-test", b"fifo"),
        // The kernel allows user.* only on regular files and directories: counted, not silently dropped.
        ("SCHILY.xattr.user.berth-test", b"refused"),
    ])
    .entry(b"fifo", EntryType::Fifo, 0o640, b"", b"");
    t.pax(&[("SCHILY.xattr.trusted.berth-test", b"link")])
        .symlink("link", "/nowhere");
    t.pax(&[("SCHILY.xattr.user.berth-test", b"file")])
        .file("file", 0o644, b"f");
    let report = apply(&sb, &t.finish()).unwrap();
    assert_eq!(report.skipped_devices, 0, "these tests run as root");
    assert_eq!(support::getxattr(&sb.path("null"), "trusted.berth-test"), b"char");
    assert_eq!(support::getxattr(&sb.path("fifo"), "trusted.berth-test"), b"fifo");
    assert_eq!(support::getxattr(&sb.path("link"), "trusted.berth-test"), b"link");
    assert_eq!(support::getxattr(&sb.path("file"), "user.berth-test"), b"file");
    assert_eq!(report.skipped_xattrs, 1, "user.berth-test on the FIFO");
    sb.assert_contained();
}

// ---- 18: names and numbers ----

#[test]
fn hostile_18_long_names_non_utf8_base256_and_pax_overrides() {
    let sb = Sandbox::new();
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(200));
    let long_link = format!("/{}", "t".repeat(300));
    let mut t = RawTar::new();
    t.pax(&[("path", long.as_bytes())])
        .file("short-ignored", 0o644, b"pax path");
    t.pax(&[("linkpath", long_link.as_bytes())])
        .symlink("longlink", "ignored");
    t.gnu_long_name(format!("g/{}/{}", "n".repeat(200), "m".repeat(200)).as_bytes())
        .file("x", 0o644, b"gnu");
    t.entry(b"caf\xe9-latin1", EntryType::Regular, 0o644, b"bytes", b"");
    // uid/gid in base-256 (GNU), and a PAX mtime with nanoseconds.
    let mut h = RawTar::header(b"owned", EntryType::Regular, 0o644, 1, b"");
    h.as_mut_bytes()[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0x03, 0xe8]);
    t.pax(&[("mtime", b"1700000000.123456789"), ("gid", b"2000")])
        .raw_header(h, b"o");
    apply(&sb, &t.finish()).unwrap();
    sb.assert_contained();
    assert_eq!(read(&sb, &long), "pax path");
    assert_eq!(std::fs::read_link(sb.path("longlink")).unwrap(), Path::new(&long_link));
    assert_eq!(read(&sb, &format!("g/{}/{}", "n".repeat(200), "m".repeat(200))), "gnu");
    use std::os::unix::ffi::OsStrExt;
    assert!(sb.root.join(std::ffi::OsStr::from_bytes(b"caf\xe9-latin1")).is_file());
    let m = std::fs::metadata(sb.path("owned")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mtime(), m.mtime_nsec()),
        (1000, 2000, 1_700_000_000, 123_456_789)
    );
}

#[test]
fn hostile_18_uid_2_pow_32_and_minus_one_are_refused() {
    for (uid, shown) in [(&b"4294967296"[..], "4294967296"), (&b"4294967295"[..], "4294967295")] {
        let sb = Sandbox::new();
        let mut t = RawTar::new();
        t.pax(&[("uid", uid)]).file("f", 0o644, b"x");
        let e = apply(&sb, &t.finish()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("f: uid {shown} is out of range (0..=4294967294)")
        );
    }
}

#[test]
fn hostile_18_negative_mtime_is_applied_or_ignored_not_fatal() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.pax(&[("mtime", b"-1.5")]).file("old", 0o644, b"x");
    apply(&sb, &t.finish()).unwrap();
    assert_eq!(read(&sb, "old"), "x");
}

#[test]
fn hostile_18_gnu_sparse_entry_claiming_a_terabyte_is_refused_without_allocating() {
    let sb = Sandbox::new();
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(512); // stored data
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    {
        let gnu = h.as_gnu_mut().unwrap();
        // one data block at offset 1 TiB - 512, length 512; real size 1 TiB
        let tb: u64 = 1 << 40;
        // GNU base-256: high bit set, big-endian value in the remaining bytes.
        let octal = |v: u64, field: &mut [u8]| {
            field.fill(0);
            field[0] = 0x80;
            let n = field.len();
            field[n - 8..].copy_from_slice(&v.to_be_bytes());
        };
        octal(tb - 512, &mut gnu.sparse[0].offset);
        octal(512, &mut gnu.sparse[0].numbytes);
        octal(tb, &mut gnu.realsize);
    }
    let mut t = RawTar::new();
    t.raw_header(h, &[7u8; 512]);
    let start = std::time::Instant::now();
    let e = apply(&sb, &t.finish()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("sparse: sparse file claims 1099511627776 bytes"),
        "{e}"
    );
    assert!(start.elapsed().as_secs() < 5);
    sb.assert_contained();
}

#[test]
fn hostile_18_gnu_sparse_entry_writes_its_runs_at_their_offsets_and_leaves_holes() {
    // 4 runs in the header and 2 in an extended header; 1 MiB file, 3 KiB of data.
    let runs: Vec<(u64, u8)> = (0..6).map(|i| (i * 128 * 1024, b'A' + i as u8)).collect();
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(6 * 512);
    h.set_mtime(0);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(1 << 20);
    for (slot, (off, _)) in gnu.sparse.iter_mut().zip(&runs) {
        slot.set_offset(*off);
        slot.set_length(512);
    }
    gnu.set_is_extended(true);
    let mut ext = tar::GnuExtSparseHeader::new();
    for (slot, (off, _)) in ext.sparse_mut().iter_mut().zip(&runs[4..]) {
        slot.set_offset(*off);
        slot.set_length(512);
    }
    let mut data = ext.as_bytes().to_vec();
    for (_, byte) in &runs {
        data.extend_from_slice(&[*byte; 512]);
    }
    let mut t = RawTar::new();
    t.raw_header(h, &data).file("after", 0o644, b"next entry");
    let sb = Sandbox::new();
    apply(&sb, &t.finish()).unwrap();
    let got = std::fs::read(sb.path("sparse")).unwrap();
    assert_eq!(got.len(), 1 << 20);
    let mut want = vec![0u8; 1 << 20];
    for (off, byte) in &runs {
        want[*off as usize..*off as usize + 512].fill(*byte);
    }
    assert!(got == want, "runs are at their offsets and zeros elsewhere");
    let blocks = std::fs::metadata(sb.path("sparse")).unwrap().blocks();
    assert!(
        blocks * 512 < 256 * 1024,
        "holes are left, not zeros written: {blocks} blocks"
    );
    assert_eq!(read(&sb, "after"), "next entry");
}

// ---- 19: streams ----

#[test]
fn hostile_19_truncated_body_is_an_error() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    let mut noise = vec![0u8; 100_000];
    let mut x = 0x1234_5678_9abc_def0u64;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    t.file("big", 0o644, &noise);
    let bytes = t.finish();
    let e = apply(&sb, &bytes[..50_000]).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = apply_layer(&gzip(&bytes)[..2000], &sb.root, &ApplyOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("truncated") || e.to_string().contains("malformed"),
        "{e}"
    );
}

#[test]
fn hostile_19_missing_end_blocks_and_trailing_data_are_hashed() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.file("a", 0o644, b"a");
    let no_end = t.bytes();
    let r = apply(&sb, &no_end).unwrap();
    assert_eq!(r.diff_id, Digest::sha256(&no_end));
    let mut trailing = t.finish();
    trailing.extend_from_slice(b"trailing garbage after the end of the archive");
    let r = apply(&sb, &trailing).unwrap();
    assert_eq!(r.diff_id, Digest::sha256(&trailing), "the diffID covers trailing data");
    let opts = ApplyOptions {
        diff_id: Some(Digest::sha256(&t.finish())),
        ..Default::default()
    };
    let e = apply_layer(&trailing[..], &sb.root, &opts).unwrap_err();
    assert!(matches!(e, ApplyError::DiffIdMismatch { .. }), "{e}");
}

#[test]
fn hostile_19_multi_member_gzip_and_compression_mismatch() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.file("a", 0o644, b"first").file("b", 0o644, b"second");
    let tar = t.finish();
    let mut two = gzip(&tar[..1024]);
    two.extend(gzip(&tar[1024..]));
    let opts = ApplyOptions {
        compression: Some(Compression::Gzip),
        diff_id: Some(Digest::sha256(&tar)),
        ..Default::default()
    };
    apply_layer(&two[..], &sb.root, &opts).unwrap();
    assert_eq!(read(&sb, "b"), "second");
    let opts = ApplyOptions {
        compression: Some(Compression::Zstd),
        ..Default::default()
    };
    let e = apply_layer(&two[..], &sb.root, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the layer's media type says zstd but its content is gzip"
    );
    let opts = ApplyOptions {
        compression: Some(Compression::Gzip),
        ..Default::default()
    };
    let e = apply_layer(&tar[..], &sb.root, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the layer's media type says gzip but its content is uncompressed"
    );
}

#[test]
fn hostile_19_compression_bomb_streams_in_bounded_memory() {
    // 256 MiB of zeros compress to ~250 KiB; extraction streams it to disk.
    let sb = Sandbox::new();
    let mut tar = Vec::new();
    let mut h = RawTar::header(b"zeros", EntryType::Regular, 0o644, 256 << 20, b"");
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.resize(tar.len() + (256 << 20) + 1024, 0);
    let z = zstd::encode_all(&tar[..], 3).unwrap();
    drop(tar);
    assert!(z.len() < 1 << 20);
    let r = apply_layer(
        &z[..],
        &sb.root,
        &ApplyOptions {
            compression: Some(Compression::Zstd),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(std::fs::metadata(sb.path("zeros")).unwrap().len(), 256 << 20);
    assert_eq!(r.entries, 1);
}

#[test]
fn hostile_19_a_hundred_thousand_entries() {
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.dir("many", 0o755);
    for i in 0..100_000 {
        t.file(&format!("many/{i}"), 0o644, b"");
    }
    let r = apply(&sb, &t.finish()).unwrap();
    assert_eq!(r.entries, 100_001);
    assert_eq!(std::fs::read_dir(sb.path("many")).unwrap().count(), 100_000);
}

#[test]
fn id_maps_remap_owners_and_refuse_unmapped_ids() {
    use berth_layer::apply::IdRange;
    let sb = Sandbox::new();
    let mut t = RawTar::new();
    t.pax(&[("uid", b"1000"), ("gid", b"1000")])
        .file("user-file", 0o644, b"u")
        .file("root-file", 0o644, b"r");
    let map = vec![IdRange {
        container: 0,
        host: 100_000,
        size: 65_536,
    }];
    let opts = ApplyOptions {
        uid_map: map.clone(),
        gid_map: map.clone(),
        ..Default::default()
    };
    apply_layer(&t.finish()[..], &sb.root, &opts).unwrap();
    let m = std::fs::metadata(sb.path("user-file")).unwrap();
    assert_eq!((m.uid(), m.gid()), (101_000, 101_000));
    let m = std::fs::metadata(sb.path("root-file")).unwrap();
    assert_eq!((m.uid(), m.gid()), (100_000, 100_000));
    let mut t = RawTar::new();
    t.pax(&[("uid", b"70000")]).file("far", 0o644, b"f");
    let e = apply_layer(&t.finish()[..], &sb.root, &opts).unwrap_err();
    assert_eq!(e.to_string(), "far: uid 70000 is not mapped by the id mapping in use");
}

// ---- 38: the layer cache trusts only what it extracted ----

#[test]
fn hostile_38_a_layer_planted_in_the_cache_is_not_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let cache = berth_layer::apply::LayerCache::new(dir.path().join("cache")).unwrap();
    let mut t = RawTar::new();
    t.file("real", 0o644, b"extracted");
    let layer = t.finish();
    let diff_id = Digest::sha256(&layer);
    // A fake base layer under the layer's name, open to everyone (as another user could leave it).
    let planted = cache.path_for(&diff_id);
    std::fs::create_dir_all(planted.join("bin")).unwrap();
    std::fs::write(planted.join("bin/sh"), "planted").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(
        cache.get(&diff_id).is_none(),
        "a directory others may write is not a cached layer"
    );
    let e = cache
        .ensure(
            &diff_id,
            || Ok(std::io::Cursor::new(layer.clone())),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("not made by this user"), "{e}");
    // Once it is gone, the real layer is extracted and used.
    std::fs::remove_dir_all(&planted).unwrap();
    let p = cache
        .ensure(
            &diff_id,
            || Ok(std::io::Cursor::new(layer.clone())),
            &ApplyOptions::default(),
        )
        .unwrap();
    assert_eq!(std::fs::read_to_string(p.join("real")).unwrap(), "extracted");
    assert!(cache.get(&diff_id).is_some());
}
