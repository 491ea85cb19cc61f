//! Process configuration under runc: command, environment, user, working directory, hostname, capabilities,
//! network and seccomp.

use serde_json::json;

use crate::support::{Env, config, layer};

#[test]
fn exit_code_propagates() {
    let env = Env::new();
    let ran = env.run(&[], env.busybox(), &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(
        (ran.code, ran.stdout.as_str(), ran.stderr.as_str()),
        (7, "out\n", "err\n")
    );
    assert_eq!(env.run(&[], env.busybox(), &["false"]).code, 1);
}

#[test]
fn environment_from_image_flags_and_files() {
    let env = Env::new();
    let image = env.image(
        "env:1",
        json!({"Env": ["FOO=image", "KEEP=kept"], "Cmd": ["sh"]}),
        vec![],
    );
    let env_file = env.path("env-file");
    std::fs::write(&env_file, "# comment\nFROM_FILE=file\nFOO=file\n").unwrap();
    let out = env.run_ok(
        &[
            "-e",
            "FOO=flag",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "HOSTVAR",
        ],
        &image,
        &["sh", "-c", "echo $FOO $KEEP $FROM_FILE ${HOSTVAR-unset}; echo $PATH"],
    );
    assert_eq!(
        out,
        "flag kept file unset\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[test]
fn users_and_groups() {
    let env = Env::new();
    let ids = ["sh", "-c", "id -u; id -g; id -G"];
    assert_eq!(env.run_ok(&[], env.busybox(), &ids), "0\n0\n0\n");
    assert_eq!(
        env.run_ok(&["-u", "nobody"], env.busybox(), &ids),
        "65534\n65534\n65534\n"
    );
    assert_eq!(
        env.run_ok(&["-u", "1234:5678"], env.busybox(), &ids),
        "1234\n5678\n5678\n"
    );
    assert_eq!(env.run_ok(&["-u", "nobody:root"], env.busybox(), &ids), "65534\n0\n0\n");

    let accounts = layer(&[
        ("etc/", 0o755, ""),
        (
            "etc/passwd",
            0o644,
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        ),
        (
            "etc/group",
            0o644,
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\nstaff:x:50:\n",
        ),
    ]);
    let image = env.image("app:1", json!({"User": "app", "Cmd": ["sh"]}), vec![accounts]);
    assert_eq!(env.run_ok(&[], &image, &ids), "1000\n1000\n1000 10 29\n");
    assert_eq!(env.run_ok(&["-u", "1000"], &image, &ids), "1000\n1000\n1000 10 29\n");
    assert_eq!(env.run_ok(&["-u", "0"], &image, &["id", "-u"]), "0\n");

    // HOME: the passwd entry's, `/` for a uid without one (as runc and Docker), the image's or the user's if set.
    let home = ["sh", "-c", "echo $HOME"];
    assert_eq!(env.run_ok(&[], &image, &home), "/home/app\n");
    assert_eq!(env.run_ok(&["-u", "4242"], &image, &home), "/\n");
    assert_eq!(env.run_ok(&["-u", "0"], &image, &home), "/root\n");
    assert_eq!(env.run_ok(&["-e", "HOME=/given"], &image, &home), "/given\n");
    let with_home = env.image("home:1", json!({"Env": ["HOME=/img"], "Cmd": ["sh"]}), vec![]);
    assert_eq!(env.run_ok(&["-u", "4242"], &with_home, &home), "/img\n");
}

#[test]
fn working_directory() {
    let env = Env::new();
    let image = env.image(
        "wd:1",
        json!({"WorkingDir": "/srv/app", "Cmd": ["sh", "-c", "pwd"]}),
        vec![],
    );
    assert_eq!(env.run_ok(&[], &image, &[]), "/srv/app\n");
    assert_eq!(env.run_ok(&["-w", "/tmp"], &image, &["sh", "-c", "pwd"]), "/tmp\n");
    assert_eq!(
        env.run_ok(&["-w", "/new/dir"], &image, &["sh", "-c", "pwd"]),
        "/new/dir\n"
    );
    let err = env.bundle_err(&["-w", "relative"], &image, &[]);
    assert!(err.contains("not absolute"), "{err}");
}

#[test]
fn entrypoint_and_cmd_combinations() {
    let env = Env::new();
    let image = env.image(
        "ep:1",
        json!({"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["cmd"]}),
        vec![],
    );
    assert_eq!(env.run_ok(&[], &image, &[]), "ep cmd\n");
    assert_eq!(env.run_ok(&[], &image, &["arg1", "arg2"]), "ep arg1 arg2\n");
    assert_eq!(env.run_ok(&["--entrypoint", "/bin/echo"], &image, &[]), "\n");
    assert_eq!(env.run_ok(&["--entrypoint", "/bin/echo"], &image, &["x"]), "x\n");
    assert_eq!(
        env.run_ok(&["--entrypoint", r#"["/bin/echo","-n"]"#], &image, &["y"]),
        "y"
    );
    assert_eq!(env.run_ok(&["--entrypoint", ""], &image, &["echo", "z"]), "z\n");
    let cmd_only = env.image("cmd:1", json!({"Cmd": ["echo", "from-cmd"]}), vec![]);
    assert_eq!(env.run_ok(&[], &cmd_only, &[]), "from-cmd\n");
    assert_eq!(env.run_ok(&[], &cmd_only, &["echo", "replaced"]), "replaced\n");
}

#[test]
fn hostname_and_etc_files() {
    let env = Env::new();
    let out = env.run_ok(
        &["--hostname", "box"],
        env.busybox(),
        &[
            "sh",
            "-c",
            "/bin/busybox hostname; cat /etc/hostname; /bin/busybox grep -c box /etc/hosts; cat /etc/resolv.conf",
        ],
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("box"));
    assert_eq!(lines.next(), Some("box"));
    assert_eq!(lines.next(), Some("2"));
    let resolv: Vec<&str> = lines.collect();
    assert!(resolv.iter().any(|l| l.starts_with("nameserver ")), "{out}");
    assert!(!resolv.iter().any(|l| l.starts_with("nameserver 127.")), "{out}");

    let default = env.run_ok(
        &[],
        env.busybox(),
        &["sh", "-c", "/bin/busybox hostname | /bin/busybox wc -c"],
    );
    assert_eq!(
        default.trim(),
        "13",
        "the default hostname is the container id's first 12 characters"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        env.run_ok(&["--net", "host"], env.busybox(), &["/bin/busybox", "hostname"]),
        host
    );
}

/// Capability bits by name, from `include/uapi/linux/capability.h`, independent of the code under test.
fn mask(names: &[&str]) -> u64 {
    let bit = |n: &str| match n {
        "CHOWN" => 0,
        "DAC_OVERRIDE" => 1,
        "FOWNER" => 3,
        "FSETID" => 4,
        "KILL" => 5,
        "SETGID" => 6,
        "SETUID" => 7,
        "SETPCAP" => 8,
        "NET_BIND_SERVICE" => 10,
        "NET_ADMIN" => 12,
        "NET_RAW" => 13,
        "SYS_CHROOT" => 18,
        "MKNOD" => 27,
        "AUDIT_WRITE" => 29,
        "SETFCAP" => 31,
        other => panic!("no bit for {other}"),
    };
    names.iter().fold(0, |m, n| m | 1 << bit(n))
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn capabilities_and_seccomp() {
    let env = Env::new();
    let docker = [
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
    let expected = format!("{:016x}", mask(&docker));
    let status = env.run_ok(
        &[],
        env.busybox(),
        &[
            "/bin/busybox",
            "grep",
            "-E",
            "^(Cap|Seccomp:|NoNewPrivs)",
            "/proc/self/status",
        ],
    );
    assert_eq!(status_field(&status, "CapBnd:"), expected);
    assert_eq!(status_field(&status, "CapEff:"), expected);
    assert_eq!(status_field(&status, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(&status, "Seccomp:"), "2", "the default profile is loaded");
    assert_eq!(status_field(&status, "NoNewPrivs:"), "0");

    let status = env.run_ok(
        &[
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "MKNOD",
            "--security-opt",
            "seccomp=unconfined",
        ],
        env.busybox(),
        &[
            "/bin/busybox",
            "grep",
            "-E",
            "^(Cap|Seccomp:|NoNewPrivs)",
            "/proc/self/status",
        ],
    );
    let changed = mask(&docker) & !mask(&["MKNOD"]) | mask(&["NET_ADMIN"]);
    assert_eq!(status_field(&status, "CapBnd:"), format!("{changed:016x}"));
    assert_eq!(status_field(&status, "Seccomp:"), "0");

    // ALL added and one dropped: everything the host allows but that one.
    let status = env.run_ok(
        &["--cap-add", "ALL", "--cap-drop", "CHOWN"],
        env.busybox(),
        &["/bin/busybox", "grep", "^Cap", "/proc/self/status"],
    );
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bounding = u64::from_str_radix(status_field(&host, "CapBnd:").as_str(), 16).unwrap();
    let eff = u64::from_str_radix(status_field(&status, "CapEff:").as_str(), 16).unwrap();
    assert_eq!(eff, host_bounding & !mask(&["CHOWN"]), "{status}");
    let err = env.bundle_err(&["--cap-add", "ALL", "--cap-drop", "ALL"], env.busybox(), &[]);
    assert!(err.contains("contradict"), "{err}");

    let status = env.run_ok(
        &["-u", "nobody", "--security-opt", "no-new-privileges"],
        env.busybox(),
        &[
            "/bin/busybox",
            "grep",
            "-E",
            "^(Cap|Seccomp:|NoNewPrivs)",
            "/proc/self/status",
        ],
    );
    assert_eq!(
        status_field(&status, "CapEff:"),
        "0000000000000000",
        "a non-root user has no effective caps"
    );
    assert_eq!(status_field(&status, "NoNewPrivs:"), "1");

    // The default profile denies what Docker's denies: unshare without CAP_SYS_ADMIN.
    let ran = env.run(&[], env.busybox(), &["/bin/busybox", "unshare", "-U", "true"]);
    assert_ne!(ran.code, 0, "{ran:?}");
}

/// Docker's process defaults: umask 0022 whatever berth-run's own is, and HOSTNAME in the environment.
#[test]
fn umask_and_hostname_variable() {
    let env = Env::new();
    let out = env.run_ok(
        &["--hostname", "box1"],
        env.busybox(),
        &["sh", "-c", "umask; echo $HOSTNAME"],
    );
    assert_eq!(out, "0022\nbox1\n");
    let bundle = env.bundle_ok(&[], env.busybox(), &["true"]);
    assert_eq!(config(&bundle)["process"]["user"]["umask"], 0o022);
    let out = env.run_ok(&["-e", "HOSTNAME=mine"], env.busybox(), &["sh", "-c", "echo $HOSTNAME"]);
    assert_eq!(out, "mine\n");
}

#[test]
fn network_modes() {
    let env = Env::new();
    let interfaces = |flags: &[&str]| -> Vec<String> {
        let out = env.run_ok(flags, env.busybox(), &["cat", "/proc/net/dev"]);
        out.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(name, _)| name.trim().to_owned())
            .collect()
    };
    assert_eq!(interfaces(&["--net", "none"]), ["lo"]);
    assert_eq!(interfaces(&[]), ["lo"]);
    let host: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .collect();
    assert_eq!(interfaces(&["--net", "host"]), host);
    // In a namespace of its own, lo is up (IFF_UP|IFF_LOOPBACK = 0x9), as runc leaves it: 127.0.0.1 answers.
    for flags in [&["--net", "none"][..], &[]] {
        let out = env.run_ok(
            flags,
            env.busybox(),
            &[
                "sh",
                "-c",
                "cat /sys/class/net/lo/flags; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo reachable",
            ],
        );
        assert_eq!(out, "0x9\nreachable\n", "{flags:?}");
    }
}

/// `seccomp=FILE` for a profile file holding `json`.
fn seccomp_option(env: &Env, json: &str) -> String {
    let profile = env.path("profile.json");
    std::fs::write(&profile, json).unwrap();
    format!("seccomp={}", profile.display())
}

#[test]
fn seccomp_profile_from_a_file() {
    let env = Env::new();
    let opt = seccomp_option(
        &env,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                         {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                          "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#,
    );
    let ran = env.run(&["--security-opt", &opt], env.busybox(), &["sh", "-c", "mkdir /tmp/d"]);
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("Permission denied"), "{ran:?}");
    // The rmdir rule applies only with CAP_SYS_ADMIN, which the container does not have.
    let out = env.run_ok(
        &["--security-opt", &opt],
        env.busybox(),
        &["sh", "-c", "rmdir /tmp && echo removed"],
    );
    assert_eq!(out, "removed\n");
    let err = env.bundle_err(&["--security-opt", "seccomp=/nonexistent.json"], env.busybox(), &[]);
    assert!(err.contains("/nonexistent.json"), "{err}");
}

/// The seccomp filter is compiled once per profile and kept beside the containers' state; later containers load the
/// stored program. Each run's filter is checked by what it does (mkdir refused with the profile's errno), and a
/// damaged stored program is compiled again rather than loaded.
#[test]
fn seccomp_filters_are_compiled_once_and_loaded_from_the_cache() {
    let env = Env::new();
    let opt = seccomp_option(
        &env,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    );
    let run = || {
        let mut cmd = env.berth(&[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            env.busybox(),
            "sh",
            "-c",
            "mkdir /tmp/d",
        ]);
        cmd.env("RUST_LOG", "berth_sandbox::runtime=debug,libcontainer::seccomp=debug");
        let out = cmd.output().unwrap();
        assert_ne!(out.status.code(), Some(0), "mkdir must be refused");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("Permission denied"), "{stderr}");
        assert!(
            stderr.contains("loaded the precompiled seccomp filter"),
            "the container loads the stored program: {stderr}"
        );
        stderr
    };
    assert!(run().contains("how=Compiled"), "first use compiles");
    assert!(run().contains("how=Cached"), "then the stored program is used");
    let cache = env.path("state").join("seccomp");
    let stored: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    // One instruction's byte flipped (it could turn the refusal into an allow): not loaded, compiled again.
    let mut bytes = std::fs::read(&stored[0]).unwrap();
    bytes[20] ^= 0x10;
    std::fs::write(&stored[0], &bytes).unwrap();
    assert!(run().contains("how=Compiled"), "a damaged program is compiled again");
    assert!(run().contains("how=Cached"));
}

#[test]
fn privileged_containers() {
    let env = Env::new();
    let out = env.run_ok(
        &["--privileged"],
        env.busybox(),
        &[
            "sh",
            "-c",
            "/bin/busybox grep -E '^(CapBnd|Seccomp):' /proc/self/status; ls /dev/null /dev/zero; \
         /bin/busybox mount -o remount,rw /sys && echo sys-rw",
        ],
    );
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        out.contains(&format!("CapBnd:\t{}", status_field(&host, "CapBnd:"))),
        "{out}"
    );
    assert!(out.contains("Seccomp:\t0"), "{out}");
    assert!(out.contains("sys-rw"), "{out}");
}

#[test]
fn terminal_flag_reaches_the_config() {
    let env = Env::new();
    let bundle = env.bundle_ok(&["-t"], env.busybox(), &[]);
    let config = crate::support::config(&bundle);
    assert_eq!(config["process"]["terminal"], true);
    assert_eq!(config["process"]["args"], json!(["/bin/sh"]));
    assert_eq!(config["root"], json!({"path": "rootfs", "readonly": false}));
    assert_eq!(config["annotations"]["org.opencontainers.image.os"], "linux");
}
