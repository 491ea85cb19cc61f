//! Linux capabilities: Docker's default set, `--cap-add`/`--cap-drop` and `--privileged`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::SandboxError;

/// Every capability Linux defines, by bit number (`include/uapi/linux/capability.h`), without the `CAP_` prefix.
pub const ALL: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities Docker (and podman) give a container by default.
pub const DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// One capability by its bit number, or every capability (`ALL`), as `--cap-add`/`--cap-drop` take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CapName {
    /// `ALL`.
    All,
    /// A capability, as an index into [`ALL`].
    Bit(u8),
}

impl CapName {
    /// The name without `CAP_` (`SYS_ADMIN`), or `ALL`.
    pub fn name(self) -> &'static str {
        match self {
            CapName::All => "ALL",
            CapName::Bit(bit) => ALL[usize::from(bit)],
        }
    }
}

impl FromStr for CapName {
    type Err = SandboxError;

    /// Accepts `SYS_ADMIN`, `CAP_SYS_ADMIN`, `sys_admin` and `ALL`.
    fn from_str(s: &str) -> Result<Self, SandboxError> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if bare == "ALL" {
            return Ok(CapName::All);
        }
        match ALL.iter().position(|c| *c == bare) {
            Some(bit) => Ok(CapName::Bit(bit as u8)),
            None => Err(SandboxError::option(
                format!("capability {s:?}"),
                "unknown capability; use a name from capabilities(7) such as NET_ADMIN or CAP_SYS_PTRACE, or ALL",
            )),
        }
    }
}

impl fmt::Display for CapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapName::All => f.write_str("ALL"),
            CapName::Bit(_) => write!(f, "CAP_{}", self.name()),
        }
    }
}

/// Every capability, as bit numbers.
pub fn all() -> BTreeSet<u8> {
    (0..ALL.len() as u8).collect()
}

/// The capabilities this process can hand on: its bounding set (`CapBnd` in `/proc/self/status`). A runtime
/// started from here cannot give a container more.
pub fn host_bounding_set() -> BTreeSet<u8> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    match mask {
        Some(mask) => all().into_iter().filter(|b| mask & (1 << b) != 0).collect(),
        None => all(),
    }
}

/// The capability set of a container, as podman computes it: Docker's default (every available capability when
/// privileged or with `--cap-add ALL`, none with `--cap-drop ALL`), plus `add`, minus `drop`. So
/// `--cap-drop ALL --cap-add NET_BIND_SERVICE` keeps just that one and `--cap-add ALL --cap-drop CHOWN` keeps all but
/// CHOWN. Adding and dropping the same capability, or ALL twice, contradict each other and are refused. Bit
/// numbers, sorted.
///
/// `available` is what the runtime can grant ([`host_bounding_set`]): like podman, a privileged container gets all
/// of those, defaults missing from it are left out, and asking for one outside it is an error.
pub fn effective_set(
    privileged: bool,
    add: &[CapName],
    drop: &[CapName],
    available: &BTreeSet<u8>,
) -> Result<BTreeSet<u8>, SandboxError> {
    let bit = |name: &str| ALL.iter().position(|c| *c == name).map(|b| b as u8);
    let (add_all, drop_all) = (add.contains(&CapName::All), drop.contains(&CapName::All));
    if add_all && drop_all {
        return Err(SandboxError::option(
            "--cap-add ALL --cap-drop ALL",
            "these contradict each other: drop ALL and add back what the container needs, or add ALL and drop \
             what it must not have",
        ));
    }
    if let Some(both) = add.iter().find(|c| matches!(c, CapName::Bit(_)) && drop.contains(c)) {
        return Err(SandboxError::option(
            format!("--cap-add {both} --cap-drop {both}"),
            "a capability cannot be both added and dropped; keep one of the two",
        ));
    }
    // Dropping ALL empties the set even for a privileged container: only what is added back stays.
    let mut set: BTreeSet<u8> = if drop_all {
        BTreeSet::new()
    } else if privileged || add_all {
        available.clone()
    } else {
        DEFAULT
            .iter()
            .filter_map(|c| bit(c))
            .filter(|b| available.contains(b))
            .collect()
    };
    for cap in add {
        match cap {
            CapName::All => {}
            CapName::Bit(b) if available.contains(b) => {
                set.insert(*b);
            }
            CapName::Bit(_) => {
                return Err(SandboxError::option(
                    format!("--cap-add {cap}"),
                    "this process does not hold that capability in its bounding set, so no container started \
                     from here can have it",
                ));
            }
        }
    }
    for cap in drop {
        if let CapName::Bit(b) = cap {
            set.remove(b);
        }
    }
    Ok(set)
}

/// The bitmask `/proc/PID/status` shows for a set (`CapBnd: 00000000a80425fb` for Docker's default).
pub fn mask(set: &BTreeSet<u8>) -> u64 {
    set.iter().fold(0, |m, b| m | (1u64 << b))
}

/// `CAP_X` names of a set, as seccomp profiles spell them.
pub fn names(set: &BTreeSet<u8>) -> Vec<String> {
    set.iter().map(|b| format!("CAP_{}", ALL[usize::from(*b)])).collect()
}

/// The runtime spec's capabilities: the set in bounding, effective and permitted; inheritable and ambient empty
/// (Docker's choice since CVE-2022-24769).
pub fn linux_capabilities(set: &BTreeSet<u8>) -> LinuxCapabilities {
    let caps: Capabilities = names(set)
        .iter()
        .filter_map(|n| serde_json::from_value::<Capability>(serde_json::Value::String(n.clone())).ok())
        .collect();
    let mut out = LinuxCapabilities::default();
    out.set_bounding(Some(caps.clone()));
    out.set_effective(Some(caps.clone()));
    out.set_permitted(Some(caps));
    out.set_inheritable(Some(Capabilities::new()));
    out.set_ambient(Some(Capabilities::new()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(names: &[&str]) -> Vec<CapName> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn docker_default_mask() {
        assert_eq!(mask(&effective_set(false, &[], &[], &all()).unwrap()), 0xa804_25fb);
    }

    #[test]
    fn names_parse_in_every_spelling() {
        assert_eq!(
            parse(&["cap_sys_admin", "SYS_ADMIN", " Net_Raw "]),
            [CapName::Bit(21), CapName::Bit(21), CapName::Bit(13)]
        );
        assert_eq!("all".parse::<CapName>().unwrap(), CapName::All);
        let err = "CAP_NOPE".parse::<CapName>().unwrap_err().to_string();
        assert!(err.contains("CAP_NOPE") && err.contains("unknown capability"), "{err}");
    }

    #[test]
    fn drop_then_add() {
        let set = effective_set(false, &parse(&["NET_BIND_SERVICE"]), &parse(&["ALL"]), &all()).unwrap();
        assert_eq!(names(&set), ["CAP_NET_BIND_SERVICE"]);
        let set = effective_set(false, &parse(&["SYS_ADMIN"]), &parse(&["NET_RAW"]), &all()).unwrap();
        assert!(set.contains(&21) && !set.contains(&13));
        assert_eq!(effective_set(true, &[], &[], &all()).unwrap().len(), ALL.len());
        // ALL added, one dropped: everything but that one (the drop is not lost).
        let set = effective_set(false, &parse(&["ALL"]), &parse(&["CHOWN"]), &all()).unwrap();
        assert_eq!(set.len(), ALL.len() - 1);
        assert!(!set.contains(&0), "CAP_CHOWN is bit 0");
        let set = effective_set(true, &[], &parse(&["CHOWN", "NET_RAW"]), &all()).unwrap();
        assert_eq!(set.len(), ALL.len() - 2);
        let set = effective_set(true, &parse(&["NET_BIND_SERVICE"]), &parse(&["ALL"]), &all()).unwrap();
        assert_eq!(
            names(&set),
            ["CAP_NET_BIND_SERVICE"],
            "privileged, ALL dropped: only what is added"
        );
        // Contradictions are refused.
        let err = effective_set(false, &parse(&["ALL"]), &parse(&["ALL"]), &all()).unwrap_err();
        assert!(err.to_string().contains("contradict"), "{err}");
        let err = effective_set(false, &parse(&["NET_RAW"]), &parse(&["net_raw"]), &all()).unwrap_err();
        assert!(err.to_string().contains("both added and dropped"), "{err}");
        let limited: BTreeSet<u8> = all().into_iter().filter(|b| *b != 24).collect();
        assert_eq!(effective_set(true, &[], &[], &limited).unwrap().len(), ALL.len() - 1);
        let err = effective_set(false, &parse(&["SYS_RESOURCE"]), &[], &limited)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CAP_SYS_RESOURCE") && err.contains("bounding set"),
            "{err}"
        );
    }

    #[test]
    fn every_name_is_known_to_oci_spec() {
        let caps = linux_capabilities(&all());
        assert_eq!(caps.bounding().as_ref().unwrap().len(), ALL.len());
        assert!(caps.inheritable().as_ref().unwrap().is_empty());
        assert!(caps.ambient().as_ref().unwrap().is_empty());
    }
}
