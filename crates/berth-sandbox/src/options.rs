//! What the user asked for on top of the image, in Docker/podman terms, parsed and validated.

use std::path::PathBuf;

use berth_spec::runtime_config::Overrides;

use crate::SandboxError;
use crate::caps::CapName;

/// The network namespace of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetMode {
    /// A new network namespace. Berth does not connect it to anything yet, so it holds only `lo`.
    #[default]
    Private,
    /// `--net none`: a new network namespace with only `lo`.
    None,
    /// `--net host`: the host's network namespace, `/etc/hosts` and `/etc/resolv.conf`.
    Host,
}

impl std::str::FromStr for NetMode {
    type Err = SandboxError;

    fn from_str(s: &str) -> Result<Self, SandboxError> {
        match s {
            "host" => Ok(NetMode::Host),
            "none" => Ok(NetMode::None),
            "private" | "default" => Ok(NetMode::Private),
            "bridge" | "slirp4netns" | "pasta" => Err(SandboxError::option(
                format!("--net {s}"),
                "Berth sets up no container networks (no bridge, slirp4netns or pasta): use --net host for \
                 network access, or private (the default) / none for loopback only",
            )),
            _ => Err(SandboxError::option(
                format!("--net {s}"),
                "unknown network mode; use host, none or private",
            )),
        }
    }
}

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeccompChoice {
    /// Berth's built-in default profile (modeled on Docker's).
    #[default]
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=FILE`: a profile in Docker's format or the runtime spec's `linux.seccomp` format.
    File(PathBuf),
}

/// How the image's `Volumes` are backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VolumeBacking {
    /// A directory per volume under the container's directory, bind-mounted, with the image's content at that
    /// path copied in first (Docker's anonymous volumes).
    #[default]
    Directory,
    /// An empty tmpfs per volume (nothing survives the container, and the image's content there is hidden).
    Tmpfs,
}

/// A mount the user asked for (`-v`, `--mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// A bind mount of a host path.
    Bind {
        /// The host path, absolute.
        source: PathBuf,
        /// Where it appears in the container: absolute and normalized.
        destination: String,
        /// Mounted read-only.
        read_only: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Where it appears in the container: absolute and normalized.
        destination: String,
        /// `size=` in bytes.
        size: Option<u64>,
        /// `mode=`, octal permission bits.
        mode: Option<u32>,
        /// Mounted read-only (`readonly`/`ro`).
        read_only: bool,
    },
}

impl MountRequest {
    /// The container path.
    pub fn destination(&self) -> &str {
        match self {
            MountRequest::Bind { destination, .. } | MountRequest::Tmpfs { destination, .. } => destination,
        }
    }

    /// Replaces the container path (with its in-root resolution).
    pub fn set_destination(&mut self, to: String) {
        match self {
            MountRequest::Bind { destination, .. } | MountRequest::Tmpfs { destination, .. } => *destination = to,
        }
    }

    /// The mount as the user spelled it, for messages: `-v SRC:DST` or `--tmpfs DST`.
    pub fn describe(&self) -> String {
        match self {
            MountRequest::Bind {
                source, destination, ..
            } => format!("-v {}:{destination}", source.display()),
            MountRequest::Tmpfs { destination, .. } => format!("--tmpfs {destination}"),
        }
    }
}

/// Everything about a container that is not in the image. The defaults are Docker's.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// `--hostname`; `None` means the container id (or the host's name with `--net host`).
    pub hostname: Option<String>,
    /// `--net`.
    pub net: NetMode,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only: bool,
    /// `--privileged`: every capability, no seccomp, no masked or read-only paths, every host device.
    pub privileged: bool,
    /// `--cap-add`, applied after `cap_drop`.
    pub cap_add: Vec<CapName>,
    /// `--cap-drop`.
    pub cap_drop: Vec<CapName>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--security-opt seccomp=…`.
    pub seccomp: SeccompChoice,
    /// `-v` and `--mount`, in order.
    pub mounts: Vec<MountRequest>,
    /// How image volumes are backed.
    pub volumes: VolumeBacking,
    /// `--memory` in bytes.
    pub memory: Option<u64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`; zero or negative means unlimited.
    pub pids_limit: Option<i64>,
    /// `-t`: the process gets a terminal.
    pub terminal: bool,
    /// `-e`/`--env-file`, `-u`, `-w`, `--entrypoint` and the command, applied to the image config.
    pub overrides: Overrides,
    /// `--annotation`: the user's own annotations, set after the image's (and, unlike the image's, allowed in the
    /// namespaces runtimes act on; see [`crate::RUNTIME_ANNOTATION_PREFIXES`]).
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Lexically normalizes an absolute container path (`..` cannot climb above `/`); refuses relative paths, NUL
/// bytes and `/` itself.
pub fn container_path(option: &str, path: &str) -> Result<String, SandboxError> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(SandboxError::option(
            option,
            format!("the container path {path:?} must be absolute, such as /data"),
        ));
    }
    let normalized = berth_spec::runtime_config::clean_absolute(path);
    if normalized == "/" {
        return Err(SandboxError::option(
            option,
            "cannot mount over the container's root directory; choose a path below /",
        ));
    }
    Ok(normalized)
}

/// A size with an optional unit, as Docker reads `--memory`: `1024`, `512k`, `64m`, `1.5g`, `1GiB`, `2 kb`
/// (powers of 1024; `b` is bytes; a fraction of a byte is dropped).
pub fn parse_size(option: &str, text: &str) -> Result<u64, SandboxError> {
    let bad = || {
        SandboxError::option(
            format!("{option} {text}"),
            "not a size; write a number of bytes with an optional unit b, k, m, g or t, such as 512m or 1.5g",
        )
    };
    let t = text.trim().to_ascii_lowercase();
    let number_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(number_end);
    let shift = match unit.trim_start() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut value = whole.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if !fraction.is_empty() {
        // Exact for the fraction's first 18 digits: fraction × 2^shift, in integers.
        let digits = &fraction[..fraction.len().min(18)];
        let scale = 10u128.pow(digits.len() as u32);
        let part = (digits.parse::<u128>().map_err(|_| bad())? << shift) / scale;
        value = value
            .checked_add(u64::try_from(part).map_err(|_| bad())?)
            .ok_or_else(bad)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("--memory", "1024").unwrap(), 1024);
        assert_eq!(parse_size("--memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("--memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("--memory", "2kb").unwrap(), 2048);
        assert_eq!(parse_size("--memory", "7b").unwrap(), 7);
        assert_eq!(parse_size("--memory", "1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("--memory", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("--memory", "2 kb").unwrap(), 2048);
        assert_eq!(parse_size("--memory", "0.5k").unwrap(), 512);
        for bad in [
            "",
            "m",
            "-1m",
            ".5g",
            "1..5g",
            "1.5.2g",
            "99999999999999999999t",
            "12x",
            "1gg",
            "1e9",
        ] {
            assert!(parse_size("--memory", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn container_paths_are_normalized() {
        assert_eq!(container_path("-v", "/a/./b/../c/").unwrap(), "/a/c");
        assert_eq!(container_path("-v", "/../../etc").unwrap(), "/etc");
        assert!(container_path("-v", "rel").is_err());
        assert!(container_path("-v", "/a/..").is_err());
        assert!(container_path("-v", "/a\0b").is_err());
    }

    #[test]
    fn net_modes() {
        assert_eq!("host".parse::<NetMode>().unwrap(), NetMode::Host);
        assert_eq!("none".parse::<NetMode>().unwrap(), NetMode::None);
        assert!("weird".parse::<NetMode>().is_err());
        let err = "bridge".parse::<NetMode>().unwrap_err().to_string();
        assert!(err.contains("--net host"), "{err}");
    }
}
