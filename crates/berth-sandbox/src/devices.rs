//! Devices: the device-cgroup rules Docker applies, and the host devices a privileged container gets.
//!
//! The runtime itself creates the standard nodes (`/dev/null`, `zero`, `full`, `random`, `urandom`, `tty`, `ptmx`
//! and the `/dev/fd` links), so an unprivileged spec lists no devices, only the rules that allow using them.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

/// `(type, major, minor)` of the devices every container may use, `None` meaning any; access is `rwm`.
const ALLOWED: [(LinuxDeviceType, Option<i64>, Option<i64>); 9] = [
    (LinuxDeviceType::C, Some(1), Some(3)), // null
    (LinuxDeviceType::C, Some(1), Some(5)), // zero
    (LinuxDeviceType::C, Some(1), Some(7)), // full
    (LinuxDeviceType::C, Some(1), Some(8)), // random
    (LinuxDeviceType::C, Some(1), Some(9)), // urandom
    (LinuxDeviceType::C, Some(5), Some(0)), // tty
    (LinuxDeviceType::C, Some(5), Some(1)), // console
    (LinuxDeviceType::C, Some(5), Some(2)), // ptmx
    (LinuxDeviceType::C, Some(136), None),  // pts/*
];

/// Directories of the host's `/dev` a privileged container does not get nodes from (they are mounted anew).
const SKIPPED: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

fn rule(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_owned()));
    r
}

/// The device-cgroup rules: deny everything, then allow `mknod` of any node and use of the standard ones (Docker's
/// list); a privileged container may use every device.
pub fn cgroup_rules(privileged: bool) -> Vec<LinuxDeviceCgroup> {
    if privileged {
        return vec![rule(true, LinuxDeviceType::A, None, None, "rwm")];
    }
    let mut rules = vec![
        rule(false, LinuxDeviceType::A, None, None, "rwm"),
        rule(true, LinuxDeviceType::C, None, None, "m"),
        rule(true, LinuxDeviceType::B, None, None, "m"),
    ];
    rules.extend(
        ALLOWED
            .iter()
            .map(|(t, major, minor)| rule(true, *t, *major, *minor, "rwm")),
    );
    rules
}

/// Every character and block device under the host's `/dev` (not following symlinks, skipping `pts`, `shm` and
/// the like, and `/dev/console`), as a privileged container gets them.
pub fn host_devices() -> Vec<LinuxDevice> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), 0, &mut out);
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<LinuxDevice>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            let name = entry.file_name();
            if depth < 4 && !(depth == 0 && SKIPPED.iter().any(|s| name == *s)) {
                walk(&path, depth + 1, out);
            }
            continue;
        }
        let typ = if kind.is_char_device() {
            LinuxDeviceType::C
        } else if kind.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        if path == Path::new("/dev/console") {
            continue;
        }
        let rdev = meta.rdev();
        let mut d = LinuxDevice::default();
        d.set_path(path);
        d.set_typ(typ);
        d.set_major(i64::from(rustix::fs::major(rdev)));
        d.set_minor(i64::from(rustix::fs::minor(rdev)));
        d.set_file_mode(Some(meta.mode() & 0o7777));
        d.set_uid(Some(meta.uid()));
        d.set_gid(Some(meta.gid()));
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_deny_first() {
        let rules = cgroup_rules(false);
        assert!(!rules[0].allow());
        assert_eq!(rules[0].typ(), Some(LinuxDeviceType::A));
        assert!(rules[1..].iter().all(|r| r.allow()));
        assert_eq!(rules.len(), 12);
        assert_eq!(cgroup_rules(true).len(), 1);
    }

    #[test]
    fn host_devices_include_null() {
        let devices = host_devices();
        let null = devices
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null");
        assert_eq!((null.major(), null.minor()), (1, 3));
        assert!(devices.iter().all(|d| !d.path().starts_with("/dev/pts")));
    }
}
