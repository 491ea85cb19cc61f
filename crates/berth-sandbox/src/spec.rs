//! The runtime spec, built field by field with Docker's defaults.
//!
//! Nothing here starts from `Spec::default()`: oci-spec's (and libcontainer's) default is not Docker's (hostname
//! "youki", almost no capabilities, no seccomp, `noNewPrivileges` on, NOFILE 1024), so every field that matters is
//! set deliberately and the rest left out.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use oci_spec::runtime::{
    Linux, LinuxCpu, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, Mount,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec,
};

use crate::options::{NetMode, SeccompChoice, SpecOptions};
use crate::seccomp::{Profile, Target, evaluate};
use crate::{SandboxError, caps, devices, mounts};

/// The runtime-spec version written.
pub const OCI_VERSION: &str = "1.0.2";
/// `RLIMIT_NOFILE` given to the process (soft and hard), as podman does; lowered to the host's `fs.nr_open`.
pub const NOFILE: u64 = 1_048_576;
/// The CFS period used for `--cpus`, in microseconds (Docker's).
pub const CPU_PERIOD: u64 = 100_000;
/// The smallest `--memory` accepted (Docker's).
pub const MIN_MEMORY: u64 = 6 << 20;

/// Paths masked from the container (Docker's list).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in the container (Docker's list).
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// What the spec takes from the image and from the files prepared for this container.
#[derive(Debug, Clone)]
pub struct SpecParts {
    /// `process`, from the image config (args, env, cwd, user, terminal); capabilities, rlimits and
    /// `noNewPrivileges` are set here.
    pub process: Process,
    /// The container's hostname.
    pub hostname: String,
    /// Annotations (from the image).
    pub annotations: BTreeMap<String, String>,
    /// Mounts besides the defaults and the user's: image volumes, `/etc/hosts` and friends. One whose destination
    /// the user mounts something at is left out.
    pub extra_mounts: Vec<Mount>,
    /// The root filesystem, as `root.path` (relative to the bundle, or absolute).
    pub root_path: PathBuf,
}

/// The cgroup (v1 and v2) mount points below `/sys/fs/cgroup` in a `/proc/self/mountinfo` text, as a container
/// sees them (each hierarchy at the same place).
pub fn cgroup_mount_points(mountinfo: &str) -> Vec<String> {
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            let point = before.split_whitespace().nth(4)?;
            (matches!(fstype, "cgroup" | "cgroup2") && point.starts_with("/sys/fs/cgroup/")).then(|| point.to_owned())
        })
        .collect();
    points.sort();
    points.dedup();
    points
}

/// Builds the runtime spec of a container from its parts and the user's options, with Docker's defaults.
pub fn default_spec(opts: &SpecOptions, parts: SpecParts) -> Result<Spec, SandboxError> {
    let cap_set = caps::effective_set(
        opts.privileged,
        &opts.cap_add,
        &opts.cap_drop,
        &caps::host_bounding_set(),
    )?;
    let mut process = parts.process;
    process.set_capabilities(Some(caps::linux_capabilities(&cap_set)));
    // As Docker and podman: HOSTNAME always, TERM when there is a terminal, unless the image or the user set them.
    let mut env = process.env().clone().unwrap_or_default();
    let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={}", parts.hostname));
    }
    if opts.terminal && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    // 0022, as runc and Docker give every container, rather than whatever umask berth-run was started with.
    if process.user().umask().is_none() {
        process.user_mut().set_umask(Some(0o022));
    }
    let limit = nofile_limit();
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(limit)
        .hard(limit)
        .build()
        .expect("every field of the rlimit is set");
    process.set_rlimits(Some(vec![nofile]));
    // Absent rather than `false`: the same per the runtime spec, but libcontainer 0.7 treats any present value as
    // "set", and then loads the seccomp filter after dropping CAP_SYS_ADMIN, which the kernel refuses.
    process.set_no_new_privileges(opts.no_new_privileges.then_some(true));

    let mut root = Root::default();
    root.set_path(parts.root_path);
    root.set_readonly(Some(opts.read_only));

    let mut linux: Linux = empty();
    linux.set_namespaces(Some(namespaces(opts.net)));
    linux.set_resources(Some(resources(opts)?));
    if opts.privileged {
        linux.set_devices(Some(devices::host_devices()));
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        linux.set_seccomp(None);
    } else {
        linux.set_devices(None);
        linux.set_masked_paths(Some(MASKED_PATHS.map(String::from).to_vec()));
        // The cgroup file systems, each: libcontainer mounts cgroup v1 hierarchies writable whatever the mount's
        // options say, which would let a container lift its own limits. Remounted read-only as runc mounts them.
        let mut readonly: Vec<String> = READONLY_PATHS.map(String::from).to_vec();
        readonly.push("/sys/fs/cgroup".into());
        readonly.extend(cgroup_mount_points(
            &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        ));
        linux.set_readonly_paths(Some(readonly));
        let profile = match &opts.seccomp {
            SeccompChoice::Default => Some(Profile::builtin()),
            SeccompChoice::Unconfined => None,
            SeccompChoice::File(path) => Some(Profile::load(path)?),
        };
        let target = Target::host(caps::names(&cap_set).into_iter().collect());
        linux.set_seccomp(profile.map(|p| evaluate(&p, &target)));
    }

    let mut spec: Spec = empty();
    spec.set_version(OCI_VERSION.to_owned());
    spec.set_root(Some(root));
    spec.set_process(Some(process));
    spec.set_hostname(Some(parts.hostname));
    spec.set_mounts(Some(all_mounts(opts, parts.extra_mounts)?));
    spec.set_annotations(Some(parts.annotations.into_iter().collect()));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// A runtime-spec object with every optional field absent (unlike oci-spec's `Default`, which fills in youki's
/// choices).
fn empty<T: serde::de::DeserializeOwned>() -> T {
    serde_json::from_str("{}").expect("every field of this runtime-spec object is optional")
}

/// [`NOFILE`], lowered to the host's `fs.nr_open`; and, when this process cannot raise limits
/// (no `CAP_SYS_RESOURCE`, as rootless or inside a restricted container), to its own hard limit, which is the most
/// the runtime will be allowed to set.
fn nofile_limit() -> u64 {
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NOFILE);
    let mut limit = NOFILE.min(nr_open);
    if !has_effective_cap(24) {
        let current = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(hard) = current.maximum {
            limit = limit.min(hard);
        }
    }
    limit
}

/// Whether this process has capability `bit` effective (`CapEff` in `/proc/self/status`).
fn has_effective_cap(bit: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << bit) != 0)
}

/// pid, ipc, uts, mount, cgroup, and network unless the host's is shared.
fn namespaces(net: NetMode) -> Vec<LinuxNamespace> {
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    if net != NetMode::Host {
        kinds.push(LinuxNamespaceType::Network);
    }
    kinds
        .into_iter()
        .map(|k| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(k);
            ns.set_path(None);
            ns
        })
        .collect()
}

/// Device rules and the limits asked for.
fn resources(opts: &SpecOptions) -> Result<LinuxResources, SandboxError> {
    let mut r = LinuxResources::default();
    r.set_devices(Some(devices::cgroup_rules(opts.privileged)));
    if let Some(bytes) = opts.memory {
        if bytes < MIN_MEMORY {
            return Err(SandboxError::option(
                format!("--memory {bytes}"),
                "the minimum memory limit is 6m (6 MiB)",
            ));
        }
        let mut m = LinuxMemory::default();
        m.set_limit(Some(i64::try_from(bytes).unwrap_or(i64::MAX)));
        r.set_memory(Some(m));
    }
    if let Some(cpus) = opts.cpus {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if !cpus.is_finite() || cpus < 0.01 || cpus > available {
            return Err(SandboxError::option(
                format!("--cpus {cpus}"),
                format!("the range of CPUs is from 0.01 to {available} (the CPUs available)"),
            ));
        }
        let mut c = LinuxCpu::default();
        c.set_period(Some(CPU_PERIOD));
        c.set_quota(Some((cpus * CPU_PERIOD as f64).round() as i64));
        r.set_cpu(Some(c));
    }
    if let Some(limit) = opts.pids_limit.filter(|l| *l > 0) {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    Ok(r)
}

/// Defaults, then extras, then the user's mounts; a user mount replaces any default or extra at the same
/// destination, and everything after the defaults is ordered parents first.
fn all_mounts(opts: &SpecOptions, extra: Vec<Mount>) -> Result<Vec<Mount>, SandboxError> {
    let user: Vec<Mount> = opts.mounts.iter().map(mounts::user_mount).collect::<Result<_, _>>()?;
    let user_dests: HashSet<PathBuf> = user.iter().map(|m| m.destination().clone()).collect();
    let mut out: Vec<Mount> = mounts::default_mounts(opts.privileged)
        .into_iter()
        .filter(|m| !user_dests.contains(m.destination()))
        .collect();
    let mut rest: Vec<Mount> = extra
        .into_iter()
        .filter(|m| !user_dests.contains(m.destination()))
        .chain(user)
        .collect();
    mounts::sort_by_depth(&mut rest);
    out.extend(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
