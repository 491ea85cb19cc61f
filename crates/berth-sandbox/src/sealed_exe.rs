//! Running from a sealed copy of our own binary, so that a container can never reach the file on the host
//! (runc's CVE-2019-5736, HOSTILE-INPUTS 40).
//!
//! A container's first process is cloned from the runtime, not executed, and a process joining a container with
//! `exec` is the runtime until it executes the command. Until then `/proc/self/exe` (and `/proc/PID/exe` as the
//! container sees it) names the runtime's binary: an image whose command is `/proc/self/exe`, or whose `/bin/sh`
//! is `#!/proc/self/exe`, makes the container run the host's binary, and a process in the container can keep a
//! descriptor of that file and write through it once the runtime has exited — replacing the host's runtime with
//! the container's program, to be run next by root.
//!
//! [`ensure_sealed`] closes that: before anything else the binary re-executes itself from a copy no process can
//! change, with the same arguments and environment, so that from then on `/proc/self/exe` names that copy and the
//! host's file is not reachable from any process the runtime starts. Two ways, the first that works:
//!
//! - a read-only overlayfs, never attached to any mount tree, whose lower layers are the binary's directory and an
//!   empty detached tmpfs (overlayfs needs two lower layers when it has no upper one): the binary is opened through
//!   it and executed. Writes through `/proc/self/exe` then fail with `EROFS`, and the overlay's file is not the
//!   host's inode. It costs a few system calls whatever the binary's size (runc 1.2 protects itself the same way);
//!   it needs the right to mount (root, or a user namespace of one's own) and overlayfs's `lowerdir+` (Linux 6.8);
//! - otherwise a memfd: the binary is copied into it, sealed against every change (`F_SEAL_WRITE`,
//!   `F_SEAL_GROW`, `F_SEAL_SHRINK`, then `F_SEAL_SEAL`) and executed; writes fail with `EPERM`. This copies the
//!   whole binary on every start (youki does this, with the `pentacle` crate).
//!
//! This is Berth's own implementation of both.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use rustix::fs::{MemfdFlags, SealFlags};

/// The path that names this program's executable: the sealed copy once [`ensure_sealed`] has run. Re-execute
/// through it, never through the path `std::env::current_exe` reads from it (a memfd has no path).
pub const SELF_EXE: &str = "/proc/self/exe";

/// The seals that make the copy immutable.
const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// overlayfs's `f_type` (statfs).
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// Whether this process already runs from a sealed copy: a sealed memfd, or a file of a read-only overlayfs.
pub fn is_sealed() -> bool {
    let Ok(exe) = std::fs::File::open(SELF_EXE) else {
        return false;
    };
    if rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(SEALS)) {
        return true;
    }
    let on_overlay = rustix::fs::fstatfs(&exe).is_ok_and(|s| s.f_type == OVERLAYFS_MAGIC);
    on_overlay && rustix::fs::fstatvfs(&exe).is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Re-executes this program from a sealed copy of itself, unless it already runs from one. Returns only when it
/// already does (or on failure). Call it first thing in `main`, while the process has one thread.
pub fn ensure_sealed(name: &str) -> io::Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let program = match read_only_overlay_copy() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!("no read-only overlay for the binary ({e}): copying it into a sealed memfd");
            memfd_copy(name)?
        }
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| name.into());
    // The descriptor is close-on-exec: the kernel opens the program through it before closing it, and nothing
    // after the exec holds it (an ELF binary needs no descriptor once mapped).
    let err = std::process::Command::new(format!("/proc/self/fd/{}", program.as_raw_fd()))
        .arg0(arg0)
        .args(args)
        .exec();
    Err(err)
}

/// The binary opened through a detached read-only overlay of its directory (and an empty detached tmpfs).
fn read_only_overlay_copy() -> io::Result<OwnedFd> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, fsconfig_create, fsconfig_set_string, fsmount, fsopen,
    };
    let exe = std::fs::read_link(SELF_EXE)?;
    let (Some(dir), Some(file)) = (exe.parent(), exe.file_name()) else {
        return Err(io::Error::other(format!("{} has no directory", exe.display())));
    };
    let empty = {
        let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
        fsconfig_set_string(fs.as_fd(), "mode", "0555")?;
        fsconfig_create(fs.as_fd())?;
        fsmount(
            fs.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_RDONLY,
        )?
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(fs.as_fd(), "lowerdir+", dir)?;
    fsconfig_set_string(fs.as_fd(), "lowerdir+", format!("/proc/self/fd/{}", empty.as_raw_fd()))?;
    fsconfig_create(fs.as_fd())?;
    let mnt = fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?;
    let fd = rustix::fs::openat(
        mnt.as_fd(),
        file,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )?;
    // It must be the same program (the directory could have changed since /proc/self/exe was read).
    let (ours, theirs) = (rustix::fs::stat(SELF_EXE)?, rustix::fs::fstat(&fd)?);
    if ours.st_size != theirs.st_size || ours.st_mtime != theirs.st_mtime || ours.st_mtime_nsec != theirs.st_mtime_nsec
    {
        return Err(io::Error::other("the binary changed on disk"));
    }
    Ok(fd)
}

/// The binary copied into a sealed memfd.
fn memfd_copy(name: &str) -> io::Result<OwnedFd> {
    let mut exe = std::fs::File::open(SELF_EXE)?;
    let memfd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut copy = std::fs::File::from(memfd);
    // std copies file to file with copy_file_range/sendfile: the bytes stay in the kernel.
    io::copy(&mut exe, &mut copy)?;
    rustix::fs::fcntl_add_seals(copy.as_fd(), SEALS)?;
    Ok(OwnedFd::from(copy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_memfd_refuses_writes() {
        use std::io::Write;
        let memfd = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        let mut f = std::fs::File::from(memfd);
        f.write_all(b"binary").unwrap();
        rustix::fs::fcntl_add_seals(f.as_fd(), SEALS).unwrap();
        assert!(rustix::fs::fcntl_get_seals(&f).unwrap().contains(SEALS));
        // Through a new open of its /proc path, as a container would try.
        let mut again = std::fs::OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .unwrap();
        let e = again.write_all(b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::PERM.raw_os_error()));
        assert!(
            rustix::fs::fcntl_add_seals(f.as_fd(), SealFlags::empty()).is_err(),
            "sealed against new seals"
        );
    }

    /// The overlay copy of this very test binary: the same bytes, a read-only overlay's file (not the host's
    /// inode), and no way to write it, also reopened through /proc/self/fd.
    #[test]
    fn the_read_only_overlay_copy_is_the_binary_and_refuses_writes() {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let fd = match read_only_overlay_copy() {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("note: no overlay copy here ({e}): the memfd fallback is what runs");
                return;
            }
        };
        let copy = std::fs::File::from(fd);
        let host = std::fs::read(SELF_EXE).unwrap();
        let mut bytes = Vec::new();
        (&copy).read_to_end(&mut bytes).unwrap();
        assert!(bytes == host, "the copy has other bytes");
        assert_eq!(rustix::fs::fstatfs(&copy).unwrap().f_type, OVERLAYFS_MAGIC);
        let (ours, theirs) = (std::fs::metadata(SELF_EXE).unwrap(), copy.metadata().unwrap());
        assert_ne!((ours.dev(), ours.ino()), (theirs.dev(), theirs.ino()));
        let e = std::fs::OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{}", copy.as_raw_fd()))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::ROFS.raw_os_error()), "{e}");
    }

    #[test]
    fn this_test_binary_is_not_sealed() {
        assert!(!is_sealed());
    }
}
