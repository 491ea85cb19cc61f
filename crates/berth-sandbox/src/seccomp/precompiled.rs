//! Seccomp filters compiled once per profile and kept on disk, so that starting a container does not compile its
//! profile again.
//!
//! libcontainer compiles a container's `linux.seccomp` with libseccomp in the container's init process on every
//! start: about 10 ms for Docker's default profile, a third of a container's start-up (runc pays the same). Berth's
//! copy of libcontainer (see `vendor/README.md`) can instead load a classic BPF program compiled ahead of time for
//! that exact profile, by the same code. [`prepare`] finds that program in a cache directory, or compiles and
//! stores it, and hands it to libcontainer before the container is created; the init process, cloned from the
//! caller, loads it where it would have loaded the compiled one.
//!
//! A program is stored under a key naming everything it depends on: the profile (its JSON), libseccomp's version
//! and the kernel API level it found, and the architecture. Each file ends with a SHA-256 of the key and the
//! program, checked on every read, and is written to a temporary name and renamed: a torn or altered file is
//! never loaded (it is compiled again). Nothing here is fatal: whenever the cache cannot help, libcontainer
//! compiles the profile as before.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

/// Programs kept at most; the least recently written go first.
const MAX_ENTRIES: usize = 64;

/// Largest program file read: the kernel takes at most 4096 instructions of 8 bytes, plus the checksum.
const MAX_FILE_BYTES: u64 = 4096 * 8 + 32;

/// What [`prepare`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The program was in the cache.
    Cached,
    /// The program was compiled now and stored.
    Compiled,
    /// The profile cannot be loaded from a program alone (filter flags, or `SCMP_ACT_NOTIFY`): libcontainer
    /// compiles it at start.
    NotEligible,
    /// Something failed (logged): libcontainer compiles the profile at start.
    Failed,
}

/// Makes `seccomp`'s program ready for the next container this process creates or enters, from the cache in
/// `dir` (created if missing) or compiled now and stored there.
pub fn prepare(seccomp: &LinuxSeccomp, dir: &Path) -> Prepared {
    let Some(key) = key(seccomp) else {
        return Prepared::Failed;
    };
    let path = dir.join(format!("{}.bpf", hex::encode(key)));
    if let Some(program) = read(&path, &key) {
        libcontainer::seccomp::set_precompiled(seccomp.clone(), program);
        return Prepared::Cached;
    }
    let program = match libcontainer::seccomp::compile_seccomp(seccomp) {
        Ok(Some(program)) => program,
        Ok(None) => return Prepared::NotEligible,
        Err(e) => {
            tracing::debug!(
                "compiling the seccomp profile ahead of time failed: {}",
                berth_spec::error_chain(&e)
            );
            return Prepared::Failed;
        }
    };
    if let Err(e) = store(dir, &path, &key, &program) {
        tracing::debug!("could not keep the compiled seccomp filter in {}: {e}", dir.display());
    }
    libcontainer::seccomp::set_precompiled(seccomp.clone(), program);
    Prepared::Compiled
}

/// The cache key: the profile, libseccomp's version and API level, and the architecture.
fn key(seccomp: &LinuxSeccomp) -> Option<[u8; 32]> {
    let profile = serde_json::to_vec(seccomp).ok()?;
    let version = libseccomp::ScmpVersion::current().ok()?;
    let api = libseccomp::get_api();
    let mut h = Sha256::new();
    h.update(b"berth seccomp bpf 1\0");
    h.update(format!(
        "libseccomp {}.{}.{} api {api} arch {}\0",
        version.major,
        version.minor,
        version.micro,
        std::env::consts::ARCH
    ));
    h.update(&profile);
    Some(h.finalize().into())
}

fn checksum(key: &[u8; 32], program: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key);
    h.update(program);
    h.finalize().into()
}

/// The program stored at `path` for `key`, if there is one whose checksum holds.
fn read(path: &Path, key: &[u8; 32]) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > MAX_FILE_BYTES || bytes.len() < 32 + 8 {
        tracing::debug!("{}: not a stored seccomp filter (size {})", path.display(), bytes.len());
        return None;
    }
    let (program, sum) = bytes.split_at(bytes.len() - 32);
    if program.len() % 8 != 0 || checksum(key, program) != sum {
        tracing::debug!("{}: checksum mismatch; compiling the profile again", path.display());
        return None;
    }
    Some(program.to_vec())
}

/// Writes the program and its checksum to a temporary file in `dir` and renames it to `path`; then trims the
/// cache to [`MAX_ENTRIES`].
fn store(dir: &Path, path: &Path, key: &[u8; 32], program: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(program)?;
        f.write_all(&checksum(key, program))?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    trim(dir);
    Ok(())
}

/// Removes the oldest programs beyond [`MAX_ENTRIES`].
fn trim(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bpf"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= MAX_ENTRIES {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - MAX_ENTRIES] {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::{Profile, Target, evaluate};

    fn default_filter() -> LinuxSeccomp {
        evaluate(&Profile::builtin(), &Target::host(["CAP_CHOWN".to_owned()].into()))
    }

    #[test]
    fn a_profile_is_compiled_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let filter = default_filter();
        assert_eq!(prepare(&filter, dir.path()), Prepared::Compiled);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "one program, no temporary file left");
        let stored = std::fs::read(files[0].path()).unwrap();
        let program = libcontainer::seccomp::compile_seccomp(&filter).unwrap().unwrap();
        assert_eq!(
            &stored[..stored.len() - 32],
            &program[..],
            "the file holds libcontainer's program"
        );
        assert!(
            program.len() > 8 * 100,
            "Docker's default profile is hundreds of instructions"
        );
        assert_eq!(prepare(&filter, dir.path()), Prepared::Cached);
    }

    #[test]
    fn another_profile_has_another_program() {
        let dir = tempfile::tempdir().unwrap();
        let filter = default_filter();
        let mut other = filter.clone();
        other.set_syscalls(Some(filter.syscalls().clone().unwrap()[1..].to_vec()));
        assert_eq!(prepare(&filter, dir.path()), Prepared::Compiled);
        assert_eq!(prepare(&other, dir.path()), Prepared::Compiled);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_damaged_program_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let filter = default_filter();
        prepare(&filter, dir.path());
        let path = std::fs::read_dir(dir.path()).unwrap().flatten().next().unwrap().path();
        let good = std::fs::read(&path).unwrap();
        // One instruction changed (an allowed syscall's number, say): the checksum no longer holds.
        let mut bad = good.clone();
        bad[100] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(prepare(&filter, dir.path()), Prepared::Compiled);
        assert_eq!(std::fs::read(&path).unwrap(), good, "rewritten with the right program");
        // Truncated, as by a crash of a writer that did not rename.
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert_eq!(prepare(&filter, dir.path()), Prepared::Compiled);
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }

    #[test]
    fn profiles_with_flags_or_notify_are_left_to_libcontainer() {
        let dir = tempfile::tempdir().unwrap();
        let mut filter = default_filter();
        filter.set_flags(Some(vec![
            oci_spec::runtime::LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        ]));
        assert_eq!(prepare(&filter, dir.path()), Prepared::NotEligible);
        assert_eq!(std::fs::read_dir(dir.path()).map_or(0, |d| d.count()), 0);
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_programs() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MAX_ENTRIES + 3 {
            std::fs::write(dir.path().join(format!("{i:064x}.bpf")), b"x").unwrap();
        }
        trim(dir.path());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), MAX_ENTRIES);
    }
}
