//! Seccomp profiles: Berth's built-in default, profile files, and their evaluation into `linux.seccomp`.
//!
//! Profiles are read in Docker's schema, a superset of the runtime spec's `linux.seccomp`: besides `defaultAction`,
//! `architectures` and `syscalls[].{names, action, errnoRet, args}`, a profile may carry an `archMap` (the native
//! architecture and the ones it can also execute) and per-rule `includes`/`excludes` conditions on capabilities,
//! architectures and the kernel version. [`evaluate`] resolves those for one container (its capability set, the
//! host's architecture and kernel) into a plain runtime-spec filter, so `seccomp=FILE` accepts both Docker's
//! profiles and runtime-spec ones. Berth's default profile (`default.json`, written for Berth) uses the same schema.

use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

use crate::SandboxError;

/// Berth's default profile, in Docker's schema.
pub const DEFAULT_PROFILE: &str = include_str!("default.json");

/// Largest profile file read.
const MAX_PROFILE_BYTES: u64 = 4 << 20;

/// A profile in Docker's schema (which includes the runtime spec's).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// The singular spelling of old Docker profiles.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// What a profile is evaluated against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The container's capabilities, `CAP_X` names.
    pub caps: BTreeSet<String>,
    /// The architecture in Go's spelling (`amd64`, `arm64`, …), as image platforms spell it.
    pub arch: String,
    /// The kernel version `(major, minor)`.
    pub kernel: (u32, u32),
}

impl Target {
    /// The host's architecture and kernel with the given capabilities.
    pub fn host(caps: BTreeSet<String>) -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Target {
            caps,
            arch: berth_spec::platform::Platform::host().architecture,
            kernel: kernel_version(&release).unwrap_or((0, 0)),
        }
    }
}

/// `(major, minor)` of a release string such as `6.1.0-18-amd64` or `4.8`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The libseccomp name of the native architecture for a Go architecture name.
fn native_arch(go_arch: &str) -> Option<Arch> {
    Some(match go_arch {
        "amd64" => Arch::ScmpArchX86_64,
        "386" => Arch::ScmpArchX86,
        "arm64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "riscv64" => Arch::ScmpArchRiscv64,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "s390x" => Arch::ScmpArchS390x,
        "loong64" => Arch::ScmpArchLoongarch64,
        _ => return None,
    })
}

impl Profile {
    /// Parses a profile; `source` names it in errors.
    pub fn parse(bytes: &[u8], source: &Path) -> Result<Profile, SandboxError> {
        serde_json::from_slice(bytes).map_err(|e| SandboxError::SeccompProfile {
            path: source.to_owned(),
            reason: format!("{e}; expected a JSON seccomp profile (Docker's format or the runtime spec's)"),
        })
    }

    /// Reads a profile file (at most 4 MiB).
    pub fn load(path: &Path) -> Result<Profile, SandboxError> {
        use std::io::Read;
        let fail = |reason: String| SandboxError::SeccompProfile {
            path: path.to_owned(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
        let mut bytes = Vec::new();
        file.take(MAX_PROFILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        if bytes.len() as u64 > MAX_PROFILE_BYTES {
            return Err(fail(format!("it is larger than {MAX_PROFILE_BYTES} bytes")));
        }
        Profile::parse(&bytes, path)
    }

    /// Berth's built-in default.
    pub fn builtin() -> Profile {
        Profile::parse(DEFAULT_PROFILE.as_bytes(), Path::new("<built-in>")).expect("the built-in profile parses")
    }
}

impl Condition {
    /// Whether every condition given holds (`includes`).
    fn all_hold(&self, target: &Target) -> bool {
        self.caps.iter().all(|c| target.caps.contains(c))
            && (self.arches.is_empty() || self.arches.contains(&target.arch))
            && self
                .min_kernel
                .as_deref()
                .is_none_or(|k| kernel_version(k).is_some_and(|v| target.kernel >= v))
    }

    /// Whether any condition given holds (`excludes`).
    fn any_holds(&self, target: &Target) -> bool {
        self.caps.iter().any(|c| target.caps.contains(c))
            || self.arches.contains(&target.arch)
            || self
                .min_kernel
                .as_deref()
                .is_some_and(|k| kernel_version(k).is_some_and(|v| target.kernel >= v))
    }
}

/// Resolves a profile for one container into the runtime spec's filter.
pub fn evaluate(profile: &Profile, target: &Target) -> LinuxSeccomp {
    let architectures = match (&profile.arch_map, native_arch(&target.arch)) {
        (Some(map), Some(native)) => map.iter().find(|e| e.architecture == native).map(|e| {
            std::iter::once(e.architecture)
                .chain(e.sub_architectures.iter().copied())
                .collect()
        }),
        _ => None,
    }
    .or_else(|| profile.architectures.clone());
    let syscalls: Vec<LinuxSyscall> = profile
        .syscalls
        .iter()
        .filter(|r| r.includes.all_hold(target) && !r.excludes.any_holds(target))
        .filter_map(|r| {
            let mut names = r.names.clone();
            names.extend(r.name.clone());
            if names.is_empty() {
                return None;
            }
            let mut call = LinuxSyscall::default();
            call.set_names(names);
            call.set_action(r.action);
            call.set_errno_ret(r.errno_ret);
            call.set_args(r.args.clone());
            Some(call)
        })
        .collect();
    let mut out = LinuxSeccomp::default();
    out.set_default_action(profile.default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures(architectures);
    out.set_flags(profile.flags.clone());
    out.set_syscalls(Some(syscalls));
    out
}

pub mod precompiled;
#[cfg(test)]
mod tests;
