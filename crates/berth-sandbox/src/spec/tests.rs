use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde_json::Value;

use super::*;
use crate::caps::CapName;
use crate::options::MountRequest;

fn parts() -> SpecParts {
    let mut process = Process::default();
    process.set_args(Some(vec!["/bin/sh".into()]));
    SpecParts {
        process,
        hostname: "box".into(),
        annotations: [("a".to_string(), "b".to_string())].into(),
        extra_mounts: vec![mounts::mount("/etc/hosts", "bind", "/x/hosts", &["rbind", "rprivate"])],
        root_path: "rootfs".into(),
    }
}

fn spec(opts: &SpecOptions) -> Spec {
    default_spec(opts, parts()).unwrap()
}

fn json(spec: &Spec) -> Value {
    serde_json::to_value(spec).unwrap()
}

fn ns_types(spec: &Spec) -> Vec<LinuxNamespaceType> {
    let ns = spec.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
    ns.iter().map(|n| n.typ()).collect()
}

fn mount_dests(spec: &Spec) -> Vec<String> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect()
}

#[test]
fn docker_defaults() {
    let s = spec(&SpecOptions::default());
    let text = serde_json::to_string(&s).unwrap();
    assert!(!text.contains("youki"), "{text}");
    let v = json(&s);
    assert_eq!(v["ociVersion"], "1.0.2");
    assert_eq!(v["hostname"], "box");
    assert_eq!(v["root"], serde_json::json!({"path": "rootfs", "readonly": false}));
    let process = &v["process"];
    // Absent (the same as false), not `false`: see the comment in spec.rs on libcontainer.
    assert_eq!(process.get("noNewPrivileges"), None);
    assert_eq!(process["rlimits"][0]["type"], "RLIMIT_NOFILE");
    let bounding = process["capabilities"]["bounding"].as_array().unwrap();
    assert_eq!(bounding.len(), 14);
    assert!(bounding.contains(&Value::from("CAP_NET_BIND_SERVICE")));
    assert!(process["capabilities"]["inheritable"].as_array().unwrap().is_empty());
    assert_eq!(
        ns_types(&s),
        [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Network
        ]
    );
    assert_eq!(
        mount_dests(&s),
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/etc/hosts"
        ]
    );
    let linux = &v["linux"];
    assert_eq!(linux["maskedPaths"].as_array().unwrap().len(), MASKED_PATHS.len());
    assert_eq!(linux["readonlyPaths"][3], "/proc/sys");
    assert_eq!(linux["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(
        linux["resources"]["devices"][0],
        serde_json::json!({"allow": false, "type": "a", "access": "rwm"})
    );
    assert!(linux.get("resources").unwrap().get("memory").is_none());
    assert!(linux.get("devices").is_none());
    assert!(v.get("hooks").is_none());
}

#[test]
fn host_network_and_read_only() {
    let s = spec(&SpecOptions {
        net: NetMode::Host,
        read_only: true,
        no_new_privileges: true,
        ..SpecOptions::default()
    });
    assert!(!ns_types(&s).contains(&LinuxNamespaceType::Network));
    assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    assert_eq!(s.process().as_ref().unwrap().no_new_privileges(), Some(true));
}

#[test]
fn privileged_and_unconfined() {
    let s = spec(&SpecOptions {
        privileged: true,
        ..SpecOptions::default()
    });
    let v = json(&s);
    let bounding = v["process"]["capabilities"]["bounding"].as_array().unwrap().len();
    assert_eq!(bounding, caps::host_bounding_set().len());
    assert!(v["linux"].get("seccomp").is_none());
    assert!(v["linux"].get("maskedPaths").is_none());
    assert!(v["linux"]["devices"].as_array().unwrap().len() > 3);
    let sys = &s.mounts().as_ref().unwrap()[5];
    assert!(!sys.options().as_ref().unwrap().contains(&"ro".to_string()));

    let s = spec(&SpecOptions {
        seccomp: SeccompChoice::Unconfined,
        cap_drop: vec![CapName::All],
        cap_add: vec!["NET_ADMIN".parse().unwrap()],
        ..SpecOptions::default()
    });
    let v = json(&s);
    assert!(v["linux"].get("seccomp").is_none());
    assert_eq!(
        v["process"]["capabilities"]["effective"],
        serde_json::json!(["CAP_NET_ADMIN"])
    );
}

#[test]
fn resources_and_their_validation() {
    let s = spec(&SpecOptions {
        memory: Some(64 << 20),
        cpus: Some(0.5),
        pids_limit: Some(64),
        ..SpecOptions::default()
    });
    let r = &json(&s)["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["cpu"], serde_json::json!({"quota": 50000, "period": 100000}));
    assert_eq!(r["pids"]["limit"], 64);
    let unlimited = spec(&SpecOptions {
        pids_limit: Some(-1),
        ..SpecOptions::default()
    });
    assert!(json(&unlimited)["linux"]["resources"].get("pids").is_none());
    for bad in [
        SpecOptions {
            memory: Some(1 << 20),
            ..SpecOptions::default()
        },
        SpecOptions {
            cpus: Some(0.0),
            ..SpecOptions::default()
        },
        SpecOptions {
            cpus: Some(f64::NAN),
            ..SpecOptions::default()
        },
        SpecOptions {
            cpus: Some(100_000.0),
            ..SpecOptions::default()
        },
    ] {
        assert!(default_spec(&bad, parts()).is_err(), "{bad:?}");
    }
}

#[test]
fn user_mounts_replace_defaults_and_come_parents_first() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpecOptions {
        mounts: vec![
            MountRequest::Bind {
                source: dir.path().to_owned(),
                destination: "/data/sub".into(),
                read_only: true,
            },
            MountRequest::Tmpfs {
                destination: "/dev/shm".into(),
                size: None,
                mode: None,
                read_only: false,
            },
            MountRequest::Bind {
                source: dir.path().to_owned(),
                destination: "/etc/hosts".into(),
                read_only: false,
            },
            MountRequest::Tmpfs {
                destination: "/data".into(),
                size: None,
                mode: None,
                read_only: false,
            },
        ],
        ..SpecOptions::default()
    };
    let s = spec(&opts);
    let dests = mount_dests(&s);
    assert_eq!(dests.iter().filter(|d| *d == "/dev/shm").count(), 1);
    assert_eq!(dests.iter().filter(|d| *d == "/etc/hosts").count(), 1);
    let pos = |d: &str| dests.iter().position(|x| x == d).unwrap();
    assert!(pos("/data") < pos("/data/sub"));
    let hosts = &s.mounts().as_ref().unwrap()[pos("/etc/hosts")];
    assert_eq!(hosts.source().as_ref(), Some(&PathBuf::from(dir.path())));

    let missing = SpecOptions {
        mounts: vec![MountRequest::Bind {
            source: "/nonexistent/berth".into(),
            destination: "/x".into(),
            read_only: false,
        }],
        ..SpecOptions::default()
    };
    let err = default_spec(&missing, parts()).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/berth"), "{err}");
}

#[test]
fn cgroup_file_systems_are_listed_read_only() {
    let mountinfo = "\
25 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
40 1 0:40 / /mnt/cgroup rw - cgroup cgroup rw,pids
";
    assert_eq!(
        cgroup_mount_points(mountinfo),
        [
            "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/unified"
        ]
    );
    let v = serde_json::to_value(default_spec(&SpecOptions::default(), parts()).unwrap()).unwrap();
    let readonly: Vec<&str> = v["linux"]["readonlyPaths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(readonly.contains(&"/sys/fs/cgroup"), "{readonly:?}");
}
