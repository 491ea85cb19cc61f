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
    // The checksum finds damage, not forgery: only a directory no one else can write to is used.
    let trusted = private_dir(dir);
    if trusted && let Some(program) = read(&path, &key) {
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
    if !trusted {
        tracing::debug!(
            "{}: not a directory of this user's that only it can write to; the filter is not kept",
            dir.display()
        );
    } else if let Err(e) = store(dir, &path, &key, &program) {
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
    // What made the program: the translation of profiles (Berth's libcontainer) and this crate's release.
    h.update(libcontainer::seccomp::PRECOMPILED_FORMAT);
    h.update(concat!("\0berth-sandbox ", env!("CARGO_PKG_VERSION"), "\0"));
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

/// Creates `dir` (mode 0700) if missing, and says whether it is a directory Berth trusts (this user's, not
/// writable by others, nor replaceable through a directory above it: `berth_spec::private_dir`), reached without a
/// symlink.
fn private_dir(dir: &Path) -> bool {
    berth_spec::private_dir::ensure_private_dir(dir).is_ok() && std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
}

fn owned_and_private(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
}

/// The program stored at `path` for `key`, if there is one whose checksum holds, in a file of this user's that no
/// one else may write to.
fn read(path: &Path, key: &[u8; 32]) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    if !file.metadata().is_ok_and(|m| m.is_file() && owned_and_private(&m)) {
        tracing::debug!(
            "{}: not a file of this user's that only it can write to",
            path.display()
        );
        return None;
    }
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
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let written = (|| {
        let mut f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
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

/// Whether `name` is a stored program's: 64 hex digits and `.bpf`.
fn is_program_name(name: &str) -> bool {
    name.strip_suffix(".bpf")
        .is_some_and(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the oldest programs beyond [`MAX_ENTRIES`], and temporary files a killed writer left (an hour old).
fn trim(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(modified) = e.metadata().ok().and_then(|m| m.modified().ok()) else {
            continue;
        };
        if is_program_name(&name) {
            files.push((modified, e.path()));
        } else if name.starts_with('.')
            && name.ends_with(".tmp")
            && modified
                .elapsed()
                .is_ok_and(|age| age > std::time::Duration::from_secs(3600))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
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
    fn a_cache_others_can_write_to_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c");
        let filter = default_filter();
        assert_eq!(prepare(&filter, &cache), Prepared::Compiled);
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "made private");
        // A program file others may write to (planted, say) is not read.
        let stored = std::fs::read_dir(&cache).unwrap().flatten().next().unwrap().path();
        std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(prepare(&filter, &cache), Prepared::Compiled, "rewritten, not trusted");
        // Nor is anything in a directory others may write to; nothing is stored there either.
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(prepare(&filter, &cache), Prepared::Compiled);
        assert_eq!(prepare(&filter, &cache), Prepared::Compiled);
        // Through a symlink to a private directory: not used either.
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&cache, &link).unwrap();
        assert_eq!(prepare(&filter, &link), Prepared::Compiled);
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_programs() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MAX_ENTRIES + 3 {
            std::fs::write(dir.path().join(format!("{i:064x}.bpf")), b"x").unwrap();
        }
        // Not the cache's: left alone.
        std::fs::write(dir.path().join("notes.bpf"), b"x").unwrap();
        trim(dir.path());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), MAX_ENTRIES + 1);
        assert!(dir.path().join("notes.bpf").exists());
    }
}
