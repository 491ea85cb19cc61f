use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction};

use super::{Profile, Target, evaluate, kernel_version};
use crate::caps;

fn target(arch: &str, caps: &[&str]) -> Target {
    Target {
        caps: caps.iter().map(|c| (*c).to_owned()).collect(),
        arch: arch.into(),
        kernel: (6, 1),
    }
}

fn default_for(t: &Target) -> LinuxSeccomp {
    evaluate(&Profile::builtin(), t)
}

/// Every syscall name the filter allows without argument conditions.
fn allowed(filter: &LinuxSeccomp) -> BTreeSet<String> {
    filter
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
        .flat_map(|s| s.names().clone())
        .collect()
}

#[test]
fn default_denies_with_eperm_and_maps_architectures() {
    let docker_caps = caps::names(&caps::effective_set(false, &[], &[], &caps::all()).unwrap());
    let caps: Vec<&str> = docker_caps.iter().map(String::as_str).collect();
    let amd64 = default_for(&target("amd64", &caps));
    assert_eq!(amd64.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(amd64.default_errno_ret(), Some(1));
    assert_eq!(
        amd64.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
    );
    let arm64 = default_for(&target("arm64", &caps));
    assert_eq!(
        arm64.architectures().as_deref(),
        Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
    );
    let a = allowed(&amd64);
    for ok in [
        "read",
        "write",
        "execve",
        "openat",
        "chroot",
        "ptrace",
        "arch_prctl",
        "futex",
        "rseq",
    ] {
        assert!(a.contains(ok), "{ok} must be allowed");
    }
    for denied in [
        "mount",
        "unshare",
        "setns",
        "kexec_load",
        "init_module",
        "bpf",
        "reboot",
        "keyctl",
        "clock_settime",
    ] {
        assert!(!a.contains(denied), "{denied} must be denied");
    }
    assert!(!a.contains("set_tls"), "ARM-only syscalls are not added on amd64");
    assert!(allowed(&arm64).contains("set_tls"));
}

#[test]
fn capabilities_unlock_their_syscalls() {
    let plain = default_for(&target("amd64", &["CAP_CHOWN"]));
    let admin = default_for(&target("amd64", &["CAP_CHOWN", "CAP_SYS_ADMIN"]));
    assert!(!allowed(&plain).contains("mount"));
    assert!(allowed(&admin).contains("mount"));
    assert!(allowed(&admin).contains("clone"));
    assert!(!allowed(&plain).contains("chroot"), "chroot follows CAP_SYS_CHROOT");
    // Without CAP_SYS_ADMIN, clone is allowed only without namespace flags, and clone3 answers ENOSYS.
    let calls = plain.syscalls().as_ref().unwrap();
    let clone = calls.iter().find(|s| s.names().contains(&"clone".into())).unwrap();
    assert_eq!(clone.args().as_ref().unwrap()[0].value(), 0x7E02_0000);
    let clone3 = calls.iter().find(|s| s.names().contains(&"clone3".into())).unwrap();
    assert_eq!(clone3.errno_ret(), Some(38));
    assert!(
        !admin
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .any(|s| s.errno_ret() == Some(38))
    );
}

#[test]
fn min_kernel_conditions() {
    let mut old = target("amd64", &[]);
    old.kernel = (4, 4);
    assert!(!allowed(&default_for(&old)).contains("ptrace"));
    assert_eq!(kernel_version("6.18.44-fc-v657"), Some((6, 18)));
    assert_eq!(kernel_version("4.8"), Some((4, 8)));
    assert_eq!(kernel_version("x"), None);
}

#[test]
fn runtime_spec_profiles_are_accepted_too() {
    let json = br#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
        "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},{"name":"chmod","action":"SCMP_ACT_KILL"}]}"#;
    let p = Profile::parse(json, Path::new("p.json")).unwrap();
    let f = evaluate(&p, &target("amd64", &[]));
    assert_eq!(f.default_action(), LinuxSeccompAction::ScmpActAllow);
    assert_eq!(f.architectures().as_deref(), Some(&[Arch::ScmpArchX86_64][..]));
    let calls = f.syscalls().as_ref().unwrap();
    assert_eq!(calls[0].errno_ret(), Some(13));
    assert_eq!(calls[1].names(), &["chmod".to_string()]);
}

#[test]
fn bad_profiles_name_the_file() {
    let err = Profile::parse(b"{\"defaultAction\":\"NOPE\"}", Path::new("/p.json")).unwrap_err();
    assert!(err.to_string().contains("/p.json"), "{err}");
    let err = Profile::load(Path::new("/nonexistent/p.json")).unwrap_err();
    assert!(err.to_string().contains("cannot open"), "{err}");
}
