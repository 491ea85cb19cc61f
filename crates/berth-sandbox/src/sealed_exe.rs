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
//! [`ensure_sealed`] closes that: before anything else, the binary copies itself into a memfd, seals it against
//! every change (`F_SEAL_WRITE`, `F_SEAL_GROW`, `F_SEAL_SHRINK`, then `F_SEAL_SEAL`), and re-executes from it with
//! the same arguments and environment. From then on `/proc/self/exe` is that sealed, anonymous copy: writes through
//! it fail with `EPERM`, and the host's file is not reachable from any process the runtime starts. youki does the
//! same at its start (with the `pentacle` crate); this is Berth's own implementation.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
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

/// Whether this process already runs from a sealed copy.
pub fn is_sealed() -> bool {
    let Ok(exe) = std::fs::File::open(SELF_EXE) else {
        return false;
    };
    rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(SEALS))
}

/// Re-executes this program from a sealed in-memory copy of itself, unless it already runs from one. Returns only
/// when it already does (or on failure). Call it first thing in `main`, while the process has one thread.
pub fn ensure_sealed(name: &str) -> io::Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let mut exe = std::fs::File::open(SELF_EXE)?;
    let memfd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut copy = std::fs::File::from(memfd);
    // std copies file to file with copy_file_range/sendfile: the bytes stay in the kernel.
    io::copy(&mut exe, &mut copy)?;
    rustix::fs::fcntl_add_seals(copy.as_fd(), SEALS)?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| name.into());
    // The descriptor is close-on-exec: the kernel opens the program through it before closing it, and nothing
    // after the exec holds it (an ELF binary needs no descriptor once mapped).
    let err = std::process::Command::new(format!("/proc/self/fd/{}", copy.as_raw_fd()))
        .arg0(arg0)
        .args(args)
        .exec();
    Err(err)
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

    #[test]
    fn this_test_binary_is_not_sealed() {
        assert!(!is_sealed());
    }
}
