//! A clear refusal, before any runtime starts, of a command that cannot run (HOSTILE-INPUTS 29): missing, a
//! directory, not executable, or built for another architecture. Otherwise these surface as a terse
//! `exec format error` or `permission denied` from inside the runtime.

use std::io::Read;

use berth_spec::runtime_config::ImageRuntimeConfig;
use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use crate::SandboxError;
use crate::rootfs::RootFs;
use berth_spec::io_context::IoContext;

/// ELF machines a host of each Go architecture executes natively.
fn native_machines(arch: &str) -> Option<&'static [u16]> {
    Some(match arch {
        "amd64" => &[62, 3],
        "386" => &[3],
        "arm64" => &[183, 40],
        "arm" => &[40],
        "riscv64" => &[243],
        "ppc64le" => &[21],
        "s390x" => &[22],
        "loong64" => &[258],
        _ => return None,
    })
}

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86 (32-bit)".into(),
        62 => "x86-64".into(),
        40 => "32-bit ARM".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        21 => "PowerPC64".into(),
        22 => "s390x".into(),
        258 => "LoongArch".into(),
        other => format!("ELF machine {other}"),
    }
}

/// The ELF machine of a file's header, if it is an ELF file.
fn elf_machine(head: &[u8]) -> Option<u16> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let bytes = [head[18], head[19]];
    Some(if head[5] == 2 {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    })
}

/// Whether the host has binfmt_misc handlers registered (which may run foreign binaries through an emulator).
fn has_binfmt_handlers() -> bool {
    std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.flatten()
                .any(|e| !matches!(e.file_name().to_str(), Some("register" | "status")))
        })
        .unwrap_or(false)
}

/// What one candidate path holds.
enum Found {
    Missing,
    Unusable(&'static str),
    /// An ELF program (with its machine), or a program this host runs through binfmt_misc (`None`).
    Runnable(Option<u16>),
    /// A `#!` script, with its interpreter.
    Script(String),
}

fn probe(rootfs: &RootFs, path: &str) -> Result<Found, SandboxError> {
    let fd = match rootfs.open_in_root(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(Found::Missing),
        Err(Errno::ACCESS | Errno::PERM) => return Ok(Found::Runnable(None)),
        Err(e) => {
            return Err(e)
                .at("open", rootfs.path().join(path.trim_start_matches('/')))
                .map_err(Into::into);
        }
    };
    let stat = rustix::fs::fstat(&fd).at("inspect", rootfs.path().join(path.trim_start_matches('/')))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => return Ok(Found::Unusable("is a directory")),
        FileType::RegularFile => {}
        _ => return Ok(Found::Unusable("is not a regular file")),
    }
    if stat.st_mode & 0o111 == 0 {
        return Ok(Found::Unusable("is not executable (no x permission bit)"));
    }
    let mut head = [0u8; 256];
    let mut file = std::fs::File::from(fd);
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        // The interpreter: the first word of the line (the kernel's rule), if the line fits in what was read.
        let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
        let interpreter = line
            .split(|b| *b == b' ' || *b == b'\t')
            .find(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned());
        return Ok(match interpreter {
            Some(i) => Found::Script(i),
            None => Found::Unusable("starts with #! but names no interpreter"),
        });
    }
    match elf_machine(head) {
        Some(machine) => Ok(Found::Runnable(Some(machine))),
        None if has_binfmt_handlers() => Ok(Found::Runnable(None)),
        None => Ok(Found::Unusable(
            "is neither a program (ELF) nor a script starting with #! (exec format error)",
        )),
    }
}

/// Checks that the process's command exists in the root filesystem (looked up in the process's `PATH` when it has
/// no `/`), is an executable regular file, and, when it is an ELF binary, is built for this host. Commands under a
/// user's mount are not checked: their content is not in the image.
pub(crate) fn check_command(
    rootfs: &RootFs,
    converted: &ImageRuntimeConfig,
    user_mounts: &[&str],
) -> Result<(), SandboxError> {
    check_sizes(rootfs.image(), &converted.args, &converted.env)?;
    check_args(rootfs, &converted.args[0], &converted.cwd, &converted.env, user_mounts)
}

/// The kernel refuses to start a program with any argument or environment string of 128 KiB or more
/// (`MAX_ARG_STRLEN`), or with more than a quarter of the stack limit of them in all: checked here, so the user
/// gets a reason rather than a bare exit code from inside the container.
pub fn check_sizes(image: &str, args: &[String], env: &[String]) -> Result<(), SandboxError> {
    const MAX_ARG_STRLEN: usize = 32 * 4096;
    let refuse = |reason: String| SandboxError::Command {
        image: image.to_owned(),
        command: args.first().cloned().unwrap_or_default(),
        reason,
        not_found: false,
    };
    for (what, list) in [("argument", args), ("environment variable", env)] {
        if let Some(long) = list.iter().find(|s| s.len() + 1 > MAX_ARG_STRLEN) {
            let name: String = long.split('=').next().unwrap_or_default().chars().take(40).collect();
            let name = if what == "argument" {
                String::new()
            } else {
                format!(" {name}")
            };
            return Err(refuse(format!(
                "the {what}{name} is {} bytes; the kernel refuses any over 128 KiB (pass large data in a file)",
                long.len()
            )));
        }
    }
    let stack = rustix::process::getrlimit(rustix::process::Resource::Stack)
        .current
        .unwrap_or(u64::MAX);
    // A quarter of the stack limit, at least 32 pages, and never more than 6 MiB (3/4 of the kernel's 8 MiB
    // default stack limit) whatever the limit says.
    let limit = usize::try_from(stack / 4)
        .unwrap_or(usize::MAX)
        .clamp(MAX_ARG_STRLEN, 6 << 20);
    let total: usize = args
        .iter()
        .chain(env)
        .map(|s| s.len() + 1 + std::mem::size_of::<usize>())
        .sum();
    if total > limit {
        return Err(refuse(format!(
            "the arguments and environment take {total} bytes; the kernel allows {limit} (a quarter of the stack \
             limit)"
        )));
    }
    Ok(())
}

/// [`check_command`] for a process of a running container (`exec`): `command` looked up in `env`'s `PATH`,
/// relative to `cwd`, inside `rootfs`; paths under `user_mounts` are not checked.
pub fn check_args(
    rootfs: &RootFs,
    command: &str,
    cwd: &str,
    env: &[String],
    user_mounts: &[&str],
) -> Result<(), SandboxError> {
    let command = &command.to_owned();
    let refuse_as = |reason: String, not_found: bool| SandboxError::Command {
        image: rootfs.image().to_owned(),
        command: command.clone(),
        reason,
        not_found,
    };
    let refuse = |reason: String| refuse_as(reason, false);
    let candidates: Vec<String> = if command.contains('/') {
        let absolute = if command.starts_with('/') {
            command.clone()
        } else {
            format!("{}/{command}", cwd.trim_end_matches('/'))
        };
        vec![absolute]
    } else {
        let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or_default();
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{command}", d.trim_end_matches('/')))
            .collect()
    };
    let mut unusable = None;
    for candidate in &candidates {
        // First: `/proc` is itself a mount, and what is under it must never run.
        if let Some(reason) = in_runtime_fs(rootfs, candidate)? {
            return Err(refuse(reason));
        }
        let mounted = user_mounts
            .iter()
            .any(|m| candidate == m || candidate.strip_prefix(m).is_some_and(|rest| rest.starts_with('/')));
        if mounted {
            return Ok(());
        }
        match probe(rootfs, candidate)? {
            Found::Missing => {}
            Found::Unusable(why) => {
                unusable.get_or_insert((candidate.clone(), why));
            }
            Found::Runnable(machine) => return check_machine(machine, candidate).map_err(refuse),
            Found::Script(interpreter) => return check_interpreter(rootfs, candidate, &interpreter, user_mounts),
        }
    }
    Err(match unusable {
        Some((path, why)) => refuse(format!("{path} {why}")),
        None if command.contains('/') => refuse_as("it does not exist in the image".into(), true),
        None => refuse_as(
            format!(
                "it was not found in the image's PATH ({})",
                candidates_dirs(&candidates, command)
            ),
            true,
        ),
    })
}

/// A script's interpreter must be there too: the kernel looks it up by absolute path (no `PATH`), and without it
/// the exec fails with a bare "no such file or directory" about the script.
fn check_interpreter(
    rootfs: &RootFs,
    script: &str,
    interpreter: &str,
    user_mounts: &[&str],
) -> Result<(), SandboxError> {
    check_interpreter_at(rootfs, script, interpreter, user_mounts, 1)
}

fn check_interpreter_at(
    rootfs: &RootFs,
    script: &str,
    interpreter: &str,
    user_mounts: &[&str],
    depth: u32,
) -> Result<(), SandboxError> {
    let refuse = |reason: String, not_found: bool| SandboxError::Command {
        image: rootfs.image().to_owned(),
        command: script.to_owned(),
        reason,
        not_found,
    };
    if !interpreter.starts_with('/') {
        // The kernel resolves a relative interpreter against the working directory; rare, left to the kernel.
        return Ok(());
    }
    if let Some(reason) = in_runtime_fs(rootfs, interpreter)? {
        return Err(refuse(
            format!("{script} is a script for {interpreter}: {reason}"),
            false,
        ));
    }
    let mounted = user_mounts
        .iter()
        .any(|m| interpreter == *m || interpreter.strip_prefix(m).is_some_and(|rest| rest.starts_with('/')));
    if mounted {
        return Ok(());
    }
    match probe(rootfs, interpreter)? {
        Found::Missing => Err(refuse(
            format!("{script} is a script for {interpreter}, which does not exist in the image"),
            true,
        )),
        Found::Unusable(why) => Err(refuse(
            format!("{script} is a script for {interpreter}, which {why}"),
            false,
        )),
        Found::Runnable(machine) => check_machine(machine, interpreter).map_err(|r| refuse(r, false)),
        // An interpreter that is itself a script: followed as the kernel does (it allows 4 levels in all), so an
        // interpreter chain cannot hide a magic link (`#!/bin/mid`, `/bin/mid` being `#!/proc/self/exe`).
        Found::Script(next) if depth < 4 => check_interpreter_at(rootfs, interpreter, &next, user_mounts, depth + 1)
            .map_err(|e| match e {
                SandboxError::Command { reason, not_found, .. } => refuse(reason, not_found),
                other => other,
            }),
        Found::Script(_) => Err(refuse(
            format!("{script} is a script for {interpreter}, a chain of scripts deeper than the kernel runs"),
            false,
        )),
    }
}

/// Why a program path may not run: it is, or leads through the image's symlinks, under `/proc`, `/sys` or `/dev`,
/// which the runtime mounts over the image. What the image has there is not what would run, and in the container
/// `/proc/self/exe` (or `/proc/PID/exe`, `/dev/fd/N`) is a magic link to the runtime's own binary or to a host
/// file (HOSTILE-INPUTS 40, runc's CVE-2019-5736).
pub(crate) fn in_runtime_fs(rootfs: &RootFs, path: &str) -> Result<Option<String>, SandboxError> {
    let real = match rootfs.resolve(path) {
        Ok(real) => real,
        // A symlink loop: the probe reports the path as missing.
        Err(SandboxError::InvalidOption { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(crate::mount_dest::runtime_dir_of(&real).map(|base| {
        let through = if real == path {
            String::new()
        } else {
            format!(" (through the image's symlinks it is {real})")
        };
        format!(
            "{path} is under {base}{through}, which the runtime mounts over the image; programs there are the \
             runtime's magic links (such as /proc/self/exe, the runtime's own binary), never the image's, so \
             they are not run"
        )
    }))
}

fn candidates_dirs(candidates: &[String], command: &str) -> String {
    let dirs: Vec<&str> = candidates.iter().filter_map(|c| c.strip_suffix(command)).collect();
    if dirs.is_empty() {
        "PATH is empty".into()
    } else {
        dirs.join(" ")
    }
}

fn check_machine(machine: Option<u16>, path: &str) -> Result<(), String> {
    let host = berth_spec::platform::Platform::host().architecture;
    let (Some(machine), Some(native)) = (machine, native_machines(&host)) else {
        return Ok(());
    };
    if native.contains(&machine) {
        return Ok(());
    }
    if has_binfmt_handlers() {
        tracing::warn!(
            path,
            "the command is a {} program on a {host} host; relying on binfmt_misc",
            machine_name(machine)
        );
        return Ok(());
    }
    Err(format!(
        "{path} is a {} program, but this host runs {host} programs; use an image built for linux/{host}",
        machine_name(machine)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_headers() {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[5] = 1;
        h[18] = 62;
        assert_eq!(elf_machine(&h), Some(62));
        h[5] = 2;
        h[18] = 0;
        h[19] = 22;
        assert_eq!(elf_machine(&h), Some(22));
        assert_eq!(elf_machine(b"#!/bin/sh\n"), None);
        assert_eq!(machine_name(183), "AArch64");
    }
}
