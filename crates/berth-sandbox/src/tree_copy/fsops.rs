//! The file-system steps of a tree copy, each on directory descriptors and names.

use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use berth_spec::whiteout::{OVERLAY_OPAQUE_XATTR, USER_OVERLAY_OPAQUE_XATTR, is_overlay_xattr};
use rustix::fs::{AtFlags, FileType, XattrFlags};
use rustix::io::{Errno, Result};

use super::{MAX_DEPTH, open_dir_at};

/// What a destination name currently holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Existing {
    None,
    Dir,
    Other,
}

impl Existing {
    pub(super) fn of(dir: BorrowedFd<'_>, name: &CStr) -> Result<Existing> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(Existing::Dir),
            Ok(_) => Ok(Existing::Other),
            Err(Errno::NOENT) => Ok(Existing::None),
            Err(e) => Err(e),
        }
    }
}

/// Calls an xattr list/get function with a growing buffer until the answer fits. A file system without xattr
/// support answers with nothing.
pub(super) fn list_xattrs(mut call: impl FnMut(&mut [u8]) -> Result<usize>) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 512];
    loop {
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 8, 0),
            Err(Errno::NOTSUP | Errno::NODATA) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}

/// Whether a layer directory is marked opaque in overlayfs form.
pub(super) fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    [OVERLAY_OPAQUE_XATTR, USER_OVERLAY_OPAQUE_XATTR].iter().any(|name| {
        let mut value = [0u8; 4];
        matches!(rustix::fs::fgetxattr(dir, *name, &mut value[..]), Ok(1) if value[0] == b'y')
    })
}

/// Removes `name` from `dir`, whatever it is; a directory goes with everything in it.
pub(super) fn remove_entry(dir: BorrowedFd<'_>, name: &CStr, depth: usize) -> Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => {
            let sub = open_dir_at(dir, name)?;
            clear_dir(sub.as_fd(), depth + 1)?;
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
        }
        Err(e) => Err(e),
    }
}

/// Removes everything inside `dir`.
pub(super) fn clear_dir(dir: BorrowedFd<'_>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::LOOP);
    }
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    for name in names {
        remove_entry(dir, &name, depth)?;
    }
    Ok(())
}

/// Copies a file's data: a reflink when the file system shares extents, else `copy_file_range`, else a read/write
/// loop. Each fallback, once needed, is remembered for the rest of the copy. Returns the bytes copied.
pub(super) fn copy_data(
    from: &OwnedFd,
    to: &OwnedFd,
    size: u64,
    reflink: &mut bool,
    copy_range: &mut bool,
) -> std::io::Result<u64> {
    if size == 0 {
        return Ok(0);
    }
    if *reflink {
        match rustix::fs::ioctl_ficlone(to, from) {
            Ok(()) => return Ok(size),
            Err(_) => *reflink = false,
        }
    }
    if *copy_range {
        let mut done = 0u64;
        loop {
            match rustix::fs::copy_file_range(from, None, to, None, 1 << 30) {
                Ok(0) => return Ok(done),
                Ok(n) => done += n as u64,
                Err(Errno::INTR) => {}
                Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::NOTSUP) if done == 0 => {
                    *copy_range = false;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut reader = std::fs::File::from(from.try_clone()?);
    let mut writer = std::fs::File::from(to.try_clone()?);
    std::io::copy(&mut reader, &mut writer)
}

/// `/proc/self/fd/DIR/NAME`: a path that reaches `name` in an open directory without resolving anything but the
/// last component (which the `l*xattr` calls do not follow).
fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> CString {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    CString::new(OsString::from_vec(path).into_vec()).expect("no NUL in a file name")
}

/// Copies the xattrs of `src_dir/name` to `dst_dir/name` without following a symlink there. Returns how many the
/// destination refused.
pub(super) fn copy_xattrs_at(
    (src_dir, name): (BorrowedFd<'_>, &CStr),
    (dst_dir, dst_name): (BorrowedFd<'_>, &CStr),
) -> Result<u64> {
    let (src, dst) = (proc_path(src_dir, name), proc_path(dst_dir, dst_name));
    let names = list_xattrs(|buf| rustix::fs::llistxattr(&src, buf))?;
    let mut refused = 0;
    for xname in names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty() && !is_overlay_xattr(n))
    {
        let xname = CString::new(xname).expect("split at NUL");
        let value = list_xattrs(|buf| rustix::fs::lgetxattr(&src, &xname, buf))?;
        match rustix::fs::lsetxattr(&dst, &xname, &value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::NOTSUP) => refused += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}
