//! Hardlinks across a step's copy-up.
//!
//! Without overlayfs's `index` feature, copying up one name of a multiply linked lower file breaks the link: the
//! upper directory gets a new inode for that name, and the other names stay in the lower layer. A layer made from
//! the upper directory would then carry the new file without its other names, and in the image they would no longer
//! be one file (`ln /l/t /l/hard2` in a RUN would unlink `/l/hard1` from `/l/t`). So before the layer is written,
//! every other name of such a file that the step did not touch is linked to the copied-up file in the upper
//! directory (parent directories copied up with their metadata), as if the step had run on a plain file system.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_spec::io_context::IoContext;

use crate::error::BuildError;

/// Every name below `root` (relative) of each multiply linked regular file, by inode.
fn alias_index(root: &Path) -> HashMap<u64, Vec<PathBuf>> {
    let mut index: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let child = rel.join(e.file_name());
            if meta.is_dir() {
                todo.push(child);
            } else if meta.is_file() && meta.nlink() > 1 {
                index.entry(meta.ino()).or_default().push(child);
            }
        }
    }
    index
}

/// Regular files below `upper` (relative paths).
fn upper_files(upper: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(upper.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let child = rel.join(e.file_name());
            if ft.is_dir() {
                todo.push(child);
            } else if ft.is_file() {
                out.push(child);
            }
        }
    }
    out
}

/// Whether each lower layer (by index) has each directory (relative), as a directory: asked once per directory
/// rather than once per file below it.
type DirsSeen = HashMap<(usize, PathBuf), bool>;

/// The topmost lower layer (of `lowers`, bottom first) holding `rel` as a regular file with other names.
fn lower_origin<'a>(lowers: &'a [PathBuf], rel: &Path, dirs: &mut DirsSeen) -> Option<(&'a Path, std::fs::Metadata)> {
    for (i, layer) in lowers.iter().enumerate().rev() {
        // A layer without `rel`'s directory has nothing at `rel` (a COPY's new tree is absent from every lower).
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            let has = *dirs
                .entry((i, parent.to_owned()))
                .or_insert_with(|| std::fs::symlink_metadata(layer.join(parent)).is_ok_and(|m| m.is_dir()));
            if !has {
                continue;
            }
        }
        match std::fs::symlink_metadata(layer.join(rel)) {
            Ok(m) if m.is_file() && m.nlink() > 1 => return Some((layer, m)),
            // Anything else at that name (a whiteout device, a directory, a single file) ends the search.
            Ok(_) => return None,
            Err(_) => {}
        }
    }
    None
}

/// Whether `rel` is visible from the lower layers through the upper directory: not present in upper (so not
/// changed or deleted there) and no opaque directory of upper above it.
fn untouched(upper: &Path, rel: &Path) -> bool {
    if std::fs::symlink_metadata(upper.join(rel)).is_ok() {
        return false;
    }
    let mut dir = rel.parent();
    while let Some(d) = dir {
        let p = upper.join(d);
        if is_opaque(&p) {
            return false;
        }
        dir = d.parent();
    }
    true
}

fn is_opaque(dir: &Path) -> bool {
    [
        berth_layer::whiteout::OVERLAY_OPAQUE_XATTR,
        berth_layer::whiteout::USER_OVERLAY_OPAQUE_XATTR,
    ]
    .iter()
    .any(|name| {
        let mut v = [0u8; 4];
        matches!(rustix::fs::lgetxattr(dir, *name, &mut v[..]), Ok(1) if v[0] == b'y')
    })
}

/// Makes the parent directories of `rel` exist in `upper`, copied from the topmost lower layer that has them
/// (mode, owner, times), as overlayfs's own copy-up would.
fn copy_up_parents(upper: &Path, lowers: &[PathBuf], rel: &Path) -> Result<(), BuildError> {
    let mut missing = Vec::new();
    let mut dir = rel.parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() || upper.join(d).is_dir() {
            break;
        }
        missing.push(d.to_owned());
        dir = d.parent();
    }
    for d in missing.into_iter().rev() {
        let target = upper.join(&d);
        std::fs::create_dir(&target).at("create", &target)?;
        if let Some(meta) = lowers.iter().rev().find_map(|l| std::fs::metadata(l.join(&d)).ok()) {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .at("chmod", &target)?;
            rustix::fs::chown(
                &target,
                Some(rustix::fs::Uid::from_raw(meta.uid())),
                Some(rustix::fs::Gid::from_raw(meta.gid())),
            )
            .at("chown", &target)?;
        }
    }
    Ok(())
}

/// Links, in `upper`, the untouched lower names of every copied-up multiply linked file to its upper copy.
pub fn relink_copied_up(upper: &Path, lowers: &[PathBuf]) -> Result<usize, BuildError> {
    let mut indexes: HashMap<PathBuf, HashMap<u64, Vec<PathBuf>>> = HashMap::new();
    let mut linked = 0;
    let mut dirs = DirsSeen::new();
    for rel in upper_files(upper) {
        let Some((layer, meta)) = lower_origin(lowers, &rel, &mut dirs) else {
            continue;
        };
        let index = indexes.entry(layer.to_owned()).or_insert_with(|| alias_index(layer));
        let Some(aliases) = index.get(&meta.ino()) else {
            continue;
        };
        for alias in aliases.iter().filter(|a| **a != rel) {
            // An alias shadowed by a higher lower layer is not this file any more.
            let shadowed = lowers
                .iter()
                .rev()
                .take_while(|l| l.as_path() != layer)
                .any(|l| std::fs::symlink_metadata(l.join(alias)).is_ok());
            if shadowed || !untouched(upper, alias) {
                continue;
            }
            copy_up_parents(upper, lowers, alias)?;
            let (from, to) = (upper.join(&rel), upper.join(alias));
            std::fs::hard_link(&from, &to).at("link", &to)?;
            linked += 1;
        }
    }
    Ok(linked)
}
