use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use berth_spec::whiteout::OVERLAY_OPAQUE_XATTR;
use rustix::fs::{FileType, Mode};

use super::{CopyRules, copy_dir_contents, copy_entry, copy_tree, merge_overlay_layer};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn mknod(path: &Path, kind: FileType, dev: u64) {
    rustix::fs::mknodat(rustix::fs::CWD, path, kind, Mode::from_raw_mode(0o640), dev).unwrap();
}

fn set_times(path: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

#[test]
fn copies_everything_a_rootfs_holds() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(src.join("d/e")).unwrap();
    fs::create_dir(&dst).unwrap();
    fs::write(src.join("d/file"), b"hello").unwrap();
    fs::set_permissions(src.join("d/file"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(src.join("d/file"), src.join("d/e/link")).unwrap();
    symlink("/etc/shadow", src.join("escape")).unwrap();
    symlink("d/file", src.join("rel")).unwrap();
    mknod(&src.join("fifo"), FileType::Fifo, 0);
    fs::set_permissions(src.join("d/e"), fs::Permissions::from_mode(0o500)).unwrap();
    rustix::fs::setxattr(
        src.join("d/file").as_path(),
        "user.berth",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    if is_root() {
        mknod(&src.join("null"), FileType::CharacterDevice, rustix::fs::makedev(1, 3));
        std::os::unix::fs::lchown(src.join("d/file"), Some(1000), Some(1001)).unwrap();
        std::os::unix::fs::lchown(src.join("escape"), Some(7), Some(8)).unwrap();
        fs::set_permissions(src.join("d/file"), fs::Permissions::from_mode(0o4755)).unwrap();
    }
    set_times(&src.join("d/file"), 1_000_000);
    set_times(&src.join("escape"), 2_000_000);
    set_times(&src.join("d"), 3_000_000);

    let stats = copy_tree(&src, &dst).unwrap();
    assert_eq!((stats.files, stats.hardlinks, stats.symlinks), (1, 1, 2));

    let file = fs::metadata(dst.join("d/file")).unwrap();
    assert_eq!(fs::read(dst.join("d/file")).unwrap(), b"hello");
    assert_eq!(file.mode() & 0o7777, 0o4755);
    assert_eq!(file.mtime(), 1_000_000);
    assert_eq!(file.ino(), fs::metadata(dst.join("d/e/link")).unwrap().ino());
    assert_eq!(fs::read_link(dst.join("escape")).unwrap(), Path::new("/etc/shadow"));
    assert_eq!(fs::symlink_metadata(dst.join("escape")).unwrap().mtime(), 2_000_000);
    assert_eq!(fs::metadata(dst.join("d")).unwrap().mtime(), 3_000_000);
    assert_eq!(fs::metadata(dst.join("d/e")).unwrap().mode() & 0o7777, 0o500);
    assert!(fs::symlink_metadata(dst.join("fifo")).unwrap().file_type().is_fifo());
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(dst.join("d/file").as_path(), "user.berth", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"v");
    if is_root() {
        assert_eq!((file.uid(), file.gid()), (1000, 1001));
        let esc = fs::symlink_metadata(dst.join("escape")).unwrap();
        assert_eq!((esc.uid(), esc.gid()), (7, 8));
        assert_eq!(
            fs::metadata(dst.join("null")).unwrap().rdev(),
            rustix::fs::makedev(1, 3)
        );
    }
}

#[test]
fn merge_applies_overlay_whiteouts() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts and trusted xattrs need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (lower, upper, dst) = (t.path().join("lower"), t.path().join("upper"), t.path().join("dst"));
    for d in [&lower, &upper, &dst] {
        fs::create_dir(d).unwrap();
    }
    fs::create_dir_all(lower.join("opaque/sub")).unwrap();
    fs::write(lower.join("opaque/old"), "old").unwrap();
    fs::write(lower.join("gone"), "x").unwrap();
    fs::create_dir_all(lower.join("gonedir/deep")).unwrap();
    fs::write(lower.join("replaced"), "lower").unwrap();
    fs::write(lower.join("becomes-dir"), "file").unwrap();
    fs::create_dir_all(lower.join("kept")).unwrap();
    fs::write(lower.join("kept/a"), "a").unwrap();

    fs::create_dir(upper.join("opaque")).unwrap();
    rustix::fs::setxattr(
        upper.join("opaque").as_path(),
        OVERLAY_OPAQUE_XATTR,
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::write(upper.join("opaque/new"), "new").unwrap();
    mknod(&upper.join("gone"), FileType::CharacterDevice, 0);
    mknod(&upper.join("gonedir"), FileType::CharacterDevice, 0);
    mknod(&upper.join("never-existed"), FileType::CharacterDevice, 0);
    fs::write(upper.join("replaced"), "upper").unwrap();
    fs::create_dir(upper.join("becomes-dir")).unwrap();
    fs::create_dir(upper.join("kept")).unwrap();
    fs::write(upper.join("kept/b"), "b").unwrap();

    merge_overlay_layer(&lower, &dst).unwrap();
    let stats = merge_overlay_layer(&upper, &dst).unwrap();
    assert_eq!(stats.whiteouts, 2);

    let names = |p: &Path| {
        let mut v: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&dst), ["becomes-dir", "kept", "opaque", "replaced"]);
    assert_eq!(names(&dst.join("opaque")), ["new"]);
    assert_eq!(names(&dst.join("kept")), ["a", "b"]);
    assert_eq!(fs::read_to_string(dst.join("replaced")).unwrap(), "upper");
    assert!(dst.join("becomes-dir").is_dir());
    let mut v = [0u8; 4];
    assert!(rustix::fs::getxattr(dst.join("opaque").as_path(), OVERLAY_OPAQUE_XATTR, &mut v[..]).is_err());
}

/// A builder's rules: `skip*` names left out, everything owned by 0:0 at mode 0640 (directories 0750).
struct Rules;

impl CopyRules for Rules {
    fn admit(&self, rel: &Path, _is_dir: bool) -> bool {
        !rel.file_name().is_some_and(|n| n.to_string_lossy().starts_with("skip"))
    }
    fn owner(&self, _st: &rustix::fs::Stat) -> (u32, u32) {
        (0, 0)
    }
    fn mode(&self, st: &rustix::fs::Stat) -> u32 {
        if st.st_mode & 0o170000 == 0o040000 {
            0o750
        } else {
            0o640
        }
    }
    fn specials(&self) -> bool {
        false
    }
}

fn open(path: &Path) -> std::os::fd::OwnedFd {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap()
}

#[test]
fn rules_decide_what_is_copied_and_how() {
    use std::os::fd::AsFd;
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("ctx/app"), t.path().join("dst"));
    fs::create_dir_all(src.join("sub/skipdir")).unwrap();
    fs::create_dir(&dst).unwrap();
    fs::set_permissions(&dst, fs::Permissions::from_mode(0o711)).unwrap();
    fs::write(src.join("sub/keep"), b"kept").unwrap();
    fs::write(src.join("sub/skip.txt"), b"left out").unwrap();
    fs::write(src.join("sub/skipdir/inner"), b"left out").unwrap();
    fs::write(src.join("top"), b"top").unwrap();
    fs::set_permissions(src.join("top"), fs::Permissions::from_mode(0o755)).unwrap();
    mknod(&src.join("sub/fifo"), FileType::Fifo, 0);
    // What was in the destination stays unless replaced.
    fs::write(dst.join("old"), b"old").unwrap();
    fs::create_dir(dst.join("sub")).unwrap();
    fs::write(dst.join("sub/keep"), b"replaced").unwrap();
    fs::write(dst.join("sub/other"), b"merged").unwrap();

    let stats = copy_dir_contents(open(&src).as_fd(), open(&dst).as_fd(), &src, Path::new("app"), &Rules).unwrap();
    assert_eq!(stats.files, 2, "{stats:?}");
    assert_eq!(fs::read(dst.join("sub/keep")).unwrap(), b"kept");
    assert_eq!(fs::read(dst.join("sub/other")).unwrap(), b"merged");
    assert_eq!(fs::read(dst.join("old")).unwrap(), b"old");
    assert!(!dst.join("sub/skip.txt").exists() && !dst.join("sub/skipdir").exists());
    assert!(!dst.join("sub/fifo").exists(), "FIFOs are not copied under these rules");
    let meta = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
    assert_eq!(meta("top").mode() & 0o7777, 0o640);
    assert_eq!(meta("sub").mode() & 0o7777, 0o750);
    // The destination directory itself keeps its own mode.
    assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o7777, 0o711);
    if is_root() {
        assert_eq!((meta("top").uid(), meta("top").gid()), (0, 0));
    }

    // One entry under another name, replacing a directory in the way.
    fs::create_dir_all(dst.join("renamed/x")).unwrap();
    let parent = open(&src);
    copy_entry(
        parent.as_fd(),
        c"top",
        open(&dst).as_fd(),
        c"renamed",
        &src,
        Path::new("app/top"),
        &Rules,
    )
    .unwrap();
    assert_eq!(fs::read(dst.join("renamed")).unwrap(), b"top");
    assert_eq!(meta("renamed").mode() & 0o7777, 0o640);
}
