//! Property test: a layer created from a tree and applied to an empty directory gives the tree back, and an
//! overlayfs upperdir (whiteout devices, opaque directories) created as a layer and applied on top gives what
//! overlayfs would show.
//!
//! Each case generates two trees — a lower one and an overlay upper one — from a model, writes them to disk, makes a
//! layer of each ([`create_from_dir`], [`create_from_overlay_upper`]), applies both in turn ([`apply_layer`]) and
//! compares what is on disk with the model: types, modes (setuid, setgid and sticky included), owners, symlink
//! targets, file contents, xattrs and which names are hardlinks of each other. Needs root (owners, `trusted.*`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::Path;

use berth_layer::apply::{ApplyOptions, apply_layer};
use berth_layer::create::{CreateOptions, create_from_dir, create_from_overlay_upper};
use berth_layer::whiteout::OVERLAY_OPAQUE_XATTR;
use berth_spec::media_type::Compression;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use rustix::fs::{CWD, FileType, Mode, XattrFlags};

/// Owner and permissions of a directory or regular file, and its xattrs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    /// `st_mode & 0o7777`.
    mode: u32,
    uid: u32,
    gid: u32,
    xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// `opaque` only in an upper tree.
    Dir {
        meta: Meta,
        opaque: bool,
        children: Tree,
    },
    /// Files of one tree with the same `link` are hardlinks of each other.
    File {
        meta: Meta,
        data: Vec<u8>,
        link: Option<u8>,
    },
    Symlink {
        target: String,
        uid: u32,
        gid: u32,
    },
    /// Only in an upper tree: overlayfs's 0:0 character device.
    Whiteout,
}

type Tree = BTreeMap<String, Node>;

fn meta() -> impl Strategy<Value = Meta> {
    let id = || prop::sample::select(vec![0u32, 1, 1000, 65534, 100_000]);
    let xattr_name = prop::sample::select(vec!["user.a".to_owned(), "user.berth.b".to_owned()]);
    (
        0u32..0o10000,
        id(),
        id(),
        btree_map(xattr_name, vec(any::<u8>(), 1..16), 0..=2),
    )
        .prop_map(|(mode, uid, gid, xattrs)| Meta { mode, uid, gid, xattrs })
}

fn node(upper: bool) -> impl Strategy<Value = Node> {
    // Link groups of the two trees never share an id: a layer's hardlinks name files of that layer only.
    let links = if upper { 2u8..4 } else { 0u8..2 };
    let file = (meta(), vec(any::<u8>(), 0..1200), prop::option::of(links)).prop_map(|(meta, data, link)| Node::File {
        meta,
        data,
        link,
    });
    let target = prop::sample::select(vec!["a", "../b", "/etc/passwd", "c/d", "é"]);
    let id = || prop::sample::select(vec![0u32, 1000, 65534]);
    let symlink = (target, id(), id()).prop_map(|(t, uid, gid)| Node::Symlink {
        target: t.to_owned(),
        uid,
        gid,
    });
    let leaf = if upper {
        prop_oneof![4 => file, 2 => symlink, 2 => Just(Node::Whiteout)].boxed()
    } else {
        prop_oneof![4 => file, 2 => symlink].boxed()
    };
    leaf.prop_recursive(3, 24, 4, move |inner| {
        (meta(), any::<bool>(), tree_of(inner)).prop_map(move |(meta, opaque, children)| Node::Dir {
            meta,
            opaque: upper && opaque,
            children,
        })
    })
}

/// A few names, so that lower and upper trees often collide.
fn tree_of(node: impl Strategy<Value = Node>) -> impl Strategy<Value = Tree> {
    btree_map(
        prop::sample::select(vec!["a", "b", "c", "é"]).prop_map(str::to_owned),
        node,
        0..4,
    )
}

/// Gives every file of a link group the metadata and data of the group's first file (in walk order), as the
/// hardlinks written by [`materialize`] will have.
fn normalize_links(tree: &mut Tree, first: &mut HashMap<u8, (Meta, Vec<u8>)>) {
    for node in tree.values_mut() {
        match node {
            Node::Dir { children, .. } => normalize_links(children, first),
            Node::File {
                meta,
                data,
                link: Some(k),
            } => {
                let (m, d) = first.entry(*k).or_insert_with(|| (meta.clone(), data.clone()));
                (*meta, *data) = (m.clone(), d.clone());
            }
            _ => {}
        }
    }
}

fn set_meta(path: &Path, meta: &Meta) {
    lchown(path, Some(meta.uid), Some(meta.gid)).unwrap();
    // After chown, which clears setuid/setgid.
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode)).unwrap();
    for (k, v) in &meta.xattrs {
        rustix::fs::lsetxattr(path, k.as_str(), v, XattrFlags::empty()).unwrap();
    }
}

/// Writes `tree` below `dir`; `links` maps a link group to the path of its first file.
fn materialize(dir: &Path, tree: &Tree, links: &mut HashMap<u8, std::path::PathBuf>) {
    for (name, node) in tree {
        let path = dir.join(name);
        match node {
            Node::Dir { meta, opaque, children } => {
                fs::create_dir(&path).unwrap();
                materialize(&path, children, links);
                set_meta(&path, meta);
                if *opaque {
                    rustix::fs::lsetxattr(&path, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty()).unwrap();
                }
            }
            Node::File { meta, data, link } => {
                if let Some(first) = link.and_then(|k| links.get(&k)) {
                    fs::hard_link(first, &path).unwrap();
                    continue;
                }
                fs::write(&path, data).unwrap();
                set_meta(&path, meta);
                if let Some(k) = link {
                    links.insert(*k, path);
                }
            }
            Node::Symlink { target, uid, gid } => {
                symlink(target, &path).unwrap();
                lchown(&path, Some(*uid), Some(*gid)).unwrap();
            }
            Node::Whiteout => {
                rustix::fs::mknodat(CWD, &path, FileType::CharacterDevice, Mode::empty(), 0).unwrap();
            }
        }
    }
}

/// What overlayfs shows for `upper` over `lower`, as a tree without whiteouts or opaque flags. Inside an opaque
/// directory `hidden` is set: no lower entry survives there, but a directory the upper tree puts over a lower one
/// keeps the lower one's xattrs (a layer can add xattrs, not remove them; containerd and Docker apply layers the
/// same way).
fn merge(lower: &Tree, upper: &Tree, hidden: bool) -> Tree {
    let mut out = if hidden { Tree::new() } else { lower.clone() };
    for (name, node) in upper {
        match (node, lower.get(name)) {
            (Node::Whiteout, _) => {
                out.remove(name);
            }
            (
                Node::Dir { meta, opaque, children },
                Some(Node::Dir {
                    meta: lower_meta,
                    children: lower_children,
                    ..
                }),
            ) => {
                let mut meta = meta.clone();
                for (k, v) in &lower_meta.xattrs {
                    meta.xattrs.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let children = merge(lower_children, children, hidden || *opaque);
                out.insert(
                    name.clone(),
                    Node::Dir {
                        meta,
                        opaque: false,
                        children,
                    },
                );
            }
            (Node::Dir { meta, children, .. }, _) => {
                let children = merge(&Tree::new(), children, false);
                out.insert(
                    name.clone(),
                    Node::Dir {
                        meta: meta.clone(),
                        opaque: false,
                        children,
                    },
                );
            }
            (other, _) => {
                out.insert(name.clone(), other.clone());
            }
        }
    }
    out
}

/// One entry as found on disk (or expected there), by path below the root.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Dir(Meta),
    File(Meta, Vec<u8>),
    Symlink { target: String, uid: u32, gid: u32 },
}

/// The entries of a tree and its hardlink groups (sets of paths naming one file).
#[derive(Debug, PartialEq, Eq, Default)]
struct Snapshot {
    entries: BTreeMap<String, Seen>,
    links: BTreeSet<BTreeSet<String>>,
}

/// The snapshot the model `tree` should give.
fn expected(tree: &Tree) -> Snapshot {
    fn walk(prefix: &str, tree: &Tree, snap: &mut Snapshot, groups: &mut BTreeMap<u8, BTreeSet<String>>) {
        for (name, node) in tree {
            let path = format!("{prefix}{name}");
            let seen = match node {
                Node::Dir { meta, children, .. } => {
                    walk(&format!("{path}/"), children, snap, groups);
                    Seen::Dir(meta.clone())
                }
                Node::File { meta, data, link } => {
                    if let Some(k) = link {
                        groups.entry(*k).or_default().insert(path.clone());
                    }
                    Seen::File(meta.clone(), data.clone())
                }
                Node::Symlink { target, uid, gid } => Seen::Symlink {
                    target: target.clone(),
                    uid: *uid,
                    gid: *gid,
                },
                Node::Whiteout => unreachable!("a merged tree has no whiteouts"),
            };
            snap.entries.insert(path, seen);
        }
    }
    let mut snap = Snapshot::default();
    let mut groups = BTreeMap::new();
    walk("", tree, &mut snap, &mut groups);
    snap.links = groups.into_values().filter(|g| g.len() > 1).collect();
    snap
}

fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names).unwrap();
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        if name == "security.selinux" {
            continue;
        }
        let mut value = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(path, name, &mut value).unwrap();
        value.truncate(len);
        out.insert(name.to_owned(), value);
    }
    out
}

fn snapshot(root: &Path) -> Snapshot {
    fn walk(dir: &Path, prefix: &str, snap: &mut Snapshot, inodes: &mut BTreeMap<(u64, u64), BTreeSet<String>>) {
        let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = format!("{prefix}{}", name.to_str().unwrap());
            let st = fs::symlink_metadata(&path).unwrap();
            let meta = || Meta {
                mode: st.mode() & 0o7777,
                uid: st.uid(),
                gid: st.gid(),
                xattrs: xattrs(&path),
            };
            let seen = if st.is_dir() {
                walk(&path, &format!("{rel}/"), snap, inodes);
                Seen::Dir(meta())
            } else if st.is_file() {
                if st.nlink() > 1 {
                    inodes.entry((st.dev(), st.ino())).or_default().insert(rel.clone());
                }
                Seen::File(meta(), fs::read(&path).unwrap())
            } else if st.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                Seen::Symlink {
                    target: target.to_str().unwrap().to_owned(),
                    uid: st.uid(),
                    gid: st.gid(),
                }
            } else {
                panic!("{rel}: unexpected file type {:?}", st.file_type());
            };
            snap.entries.insert(rel, seen);
        }
    }
    let mut snap = Snapshot::default();
    let mut inodes = BTreeMap::new();
    walk(root, "", &mut snap, &mut inodes);
    snap.links = inodes.into_values().collect();
    snap
}

/// Creates a layer with `create` and applies it to `rootfs`, checking the diffID and that nothing was skipped.
fn layer_onto(
    rootfs: &Path,
    compression: Compression,
    create: impl FnOnce(&mut Vec<u8>, &CreateOptions) -> berth_layer::compress::LayerDigests,
) {
    let opts = CreateOptions {
        compression,
        threads: 1,
        ..CreateOptions::default()
    };
    let mut blob = Vec::new();
    let layer = create(&mut blob, &opts);
    assert_eq!(layer.size, blob.len() as u64);
    let apply = ApplyOptions {
        compression: Some(compression),
        diff_id: Some(layer.diff_id.clone()),
        ..ApplyOptions::default()
    };
    let report = apply_layer(blob.as_slice(), rootfs, &apply).unwrap();
    assert_eq!(
        (report.skipped_chown, report.skipped_devices, report.skipped_xattrs),
        (0, 0, 0),
        "nothing may be skipped when applying as root"
    );
}

fn round_trip(mut lower: Tree, mut upper: Tree, compression: Compression) {
    normalize_links(&mut lower, &mut HashMap::new());
    normalize_links(&mut upper, &mut HashMap::new());
    let tmp = tempfile::tempdir().unwrap();
    let (lower_dir, upper_dir, rootfs) = (
        tmp.path().join("lower"),
        tmp.path().join("upper"),
        tmp.path().join("rootfs"),
    );
    for dir in [&lower_dir, &upper_dir, &rootfs] {
        fs::create_dir(dir).unwrap();
    }
    materialize(&lower_dir, &lower, &mut HashMap::new());
    materialize(&upper_dir, &upper, &mut HashMap::new());
    let want_lower = expected(&lower);
    assert_same(
        &snapshot(&lower_dir),
        &want_lower,
        "the source tree differs from its model",
    );

    layer_onto(&rootfs, compression, |out, opts| {
        create_from_dir(&lower_dir, out, opts).unwrap()
    });
    assert_same(
        &snapshot(&rootfs),
        &want_lower,
        "the lower layer applied to an empty directory",
    );

    layer_onto(&rootfs, compression, |out, opts| {
        create_from_overlay_upper(&upper_dir, out, opts).unwrap()
    });
    assert_same(
        &snapshot(&rootfs),
        &expected(&merge(&lower, &upper, false)),
        "the upper layer applied over the lower one",
    );
}

/// Fails with the paths where `found` and `want` differ (not two whole trees, which proptest would print many times
/// over while shrinking).
fn assert_same(found: &Snapshot, want: &Snapshot, what: &str) {
    let mut diffs = Vec::new();
    let paths: BTreeSet<&String> = found.entries.keys().chain(want.entries.keys()).collect();
    for path in paths {
        let (f, w) = (found.entries.get(path), want.entries.get(path));
        if f != w {
            let brief = |s: Option<&Seen>| match s {
                Some(Seen::File(meta, data)) => format!("File({meta:?}, {} bytes)", data.len()),
                other => format!("{other:?}"),
            };
            diffs.push(format!("  {path}: found {}, want {}", brief(f), brief(w)));
        }
    }
    if found.links != want.links {
        diffs.push(format!("  hardlinks: found {:?}, want {:?}", found.links, want.links));
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn layers_round_trip_through_create_and_apply(
        lower in tree_of(node(false)),
        upper in tree_of(node(true)),
        compression in prop::sample::select(vec![Compression::None, Compression::Gzip, Compression::Zstd]),
    ) {
        if !is_root() {
            eprintln!("skipped: needs root (owners, trusted.overlay.opaque)");
            return Ok(());
        }
        round_trip(lower, upper, compression);
    }
}

/// The model and its checks catch a difference (so the property cannot pass vacuously).
#[test]
fn round_trip_snapshot_sees_a_changed_mode() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let meta = Meta {
        mode: 0o4755,
        uid: 1000,
        gid: 0,
        xattrs: BTreeMap::from([("user.a".to_owned(), b"x".to_vec())]),
    };
    let tree = Tree::from([(
        "f".to_owned(),
        Node::File {
            meta: meta.clone(),
            data: b"data".to_vec(),
            link: None,
        },
    )]);
    let tmp = tempfile::tempdir().unwrap();
    materialize(tmp.path(), &tree, &mut HashMap::new());
    assert_eq!(snapshot(tmp.path()), expected(&tree));
    fs::set_permissions(tmp.path().join("f"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_ne!(snapshot(tmp.path()), expected(&tree));
}
