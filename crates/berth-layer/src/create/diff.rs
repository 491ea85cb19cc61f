//! What to write for one directory, in each of the three modes: a whole tree, the difference between a lower and
//! an upper tree (containerd-style double walk), and an overlayfs upperdir.
//!
//! Within a directory the opaque marker comes first, then the `.wh.NAME` deletions sorted by NAME, then the
//! entries sorted by name bytes: whiteouts never follow an entry of their own directory in the stream.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::CreateError;
use super::walk::{Kind, Node, list_dir, read_node};
use crate::whiteout::WHITEOUT_DEVICE;

/// How a directory's children are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Children {
    /// Every entry below, as it is.
    Whole,
    /// Compared against the same directory of the lower tree.
    Diff,
    /// Read as an overlayfs upperdir.
    Overlay,
}

/// One step of a directory's output.
#[derive(Debug)]
pub(crate) enum Item {
    /// `.wh..wh..opq`: hide everything the lower layers have in this directory.
    Opaque,
    /// `.wh.NAME`: delete NAME.
    Whiteout(OsString),
    /// An entry of the upper tree. `emit` is false for an unchanged directory, written only if something below it
    /// is; `children` says how to continue inside a directory.
    Entry {
        name: OsString,
        node: Node,
        emit: bool,
        children: Children,
    },
}

/// The items of directory `upper` (with `lower`, its counterpart in the lower tree, for [`Children::Diff`]).
pub(crate) fn items(
    children: Children,
    lower: &Path,
    upper: &Path,
    upper_node: &Node,
) -> Result<Vec<Item>, CreateError> {
    match children {
        Children::Whole => whole(upper),
        Children::Diff => diff(lower, upper),
        Children::Overlay => overlay(upper, upper_node.overlay.opaque),
    }
}

fn entry(name: OsString, node: Node, children: Children) -> Item {
    Item::Entry {
        name,
        node,
        emit: true,
        children,
    }
}

fn whole(upper: &Path) -> Result<Vec<Item>, CreateError> {
    list_dir(upper)?
        .into_iter()
        .map(|name| Ok(entry(name.clone(), read_node(&upper.join(&name))?, Children::Whole)))
        .collect()
}

fn diff(lower: &Path, upper: &Path) -> Result<Vec<Item>, CreateError> {
    let lower_names = list_dir(lower)?;
    let upper_names = list_dir(upper)?;
    let in_lower = |name: &OsString| {
        lower_names
            .binary_search_by(|l| l.as_bytes().cmp(name.as_bytes()))
            .is_ok()
    };
    let in_upper = |name: &OsString| {
        upper_names
            .binary_search_by(|u| u.as_bytes().cmp(name.as_bytes()))
            .is_ok()
    };

    // Every lower child gone: the directory was replaced; say so once instead of one whiteout per child.
    if !lower_names.is_empty() && !lower_names.iter().any(in_upper) {
        let mut items = vec![Item::Opaque];
        items.extend(whole(upper)?);
        return Ok(items);
    }

    let mut items: Vec<Item> = lower_names
        .iter()
        .filter(|name| !in_upper(name))
        .map(|name| Item::Whiteout(name.clone()))
        .collect();
    for name in upper_names {
        let node = read_node(&upper.join(&name))?;
        if !in_lower(&name) {
            items.push(entry(name, node, Children::Whole));
            continue;
        }
        let lower_node = read_node(&lower.join(&name))?;
        if node.is_dir() && lower_node.is_dir() {
            let emit = !node.same_as(&lower_node);
            items.push(Item::Entry {
                name,
                node,
                emit,
                children: Children::Diff,
            });
        } else if !node.same_as(&lower_node) {
            items.push(entry(name, node, Children::Whole));
        }
    }
    Ok(items)
}

fn overlay(upper: &Path, opaque: bool) -> Result<Vec<Item>, CreateError> {
    let mut items = Vec::new();
    if opaque {
        items.push(Item::Opaque);
    }
    let mut entries = Vec::new();
    for name in list_dir(upper)? {
        let path = upper.join(&name);
        let node = read_node(&path)?;
        // overlayfs records a deletion as a 0:0 character device.
        if node.kind == Kind::Char && node.rdev == WHITEOUT_DEVICE {
            items.push(Item::Whiteout(name));
            continue;
        }
        if let Some(xattr) = node.overlay.needs_lower.clone() {
            return Err(CreateError::OverlayNeedsLower { path, xattr });
        }
        entries.push(entry(name, node, Children::Overlay));
    }
    items.extend(entries);
    Ok(items)
}
