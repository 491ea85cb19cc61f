//! The file system under runc: read-only root, bind and tmpfs mounts, image volumes, and resource limits.

use serde_json::json;

use crate::support::{Env, config, layer};

#[test]
fn read_only_root_filesystem() {
    let env = Env::new();
    let ran = env.run(&["--read-only"], env.busybox(), &["sh", "-c", "echo x > /file"]);
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("Read-only file system"), "{ran:?}");
    // /dev/shm and the /etc files stay writable, as in Docker.
    let out = env.run_ok(
        &["--read-only"],
        env.busybox(),
        &["sh", "-c", "echo ok > /dev/shm/f && cat /dev/shm/f"],
    );
    assert_eq!(out, "ok\n");
    assert_eq!(
        env.run_ok(&[], env.busybox(), &["sh", "-c", "echo x > /file && cat /file"]),
        "x\n"
    );
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let env = Env::new();
    let host = env.path("host-dir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello from the host\n").unwrap();
    let volume = format!("{}:/data", host.display());
    let out = env.run_ok(
        &["-v", &volume],
        env.busybox(),
        &["sh", "-c", "cat /data/from-host && echo written > /data/from-container"],
    );
    assert_eq!(out, "hello from the host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "written\n"
    );

    let ro = format!("{volume}:ro");
    let ran = env.run(
        &["-v", &ro],
        env.busybox(),
        &["sh", "-c", "cat /data/from-host; echo x > /data/nope"],
    );
    assert_ne!(ran.code, 0);
    assert_eq!(ran.stdout, "hello from the host\n");
    assert!(ran.stderr.contains("Read-only file system"), "{ran:?}");
    assert!(!host.join("nope").exists());

    let mount = format!("type=bind,source={},target=/m,readonly", host.display());
    let ran = env.run(&["--mount", &mount], env.busybox(), &["sh", "-c", "echo x > /m/nope"]);
    assert_ne!(ran.code, 0, "{ran:?}");

    let err = env.bundle_err(&["-v", "/nonexistent/berth-test:/x"], env.busybox(), &[]);
    assert!(err.contains("/nonexistent/berth-test"), "{err}");
    // Over a directory of the image too: the missing host path is what is reported.
    let err = env.bundle_err(&["-v", "/nonexistent/berth-test:/bin"], env.busybox(), &[]);
    assert!(
        err.contains("/nonexistent/berth-test") && err.contains("host path"),
        "{err}"
    );
}

#[test]
fn tmpfs_mounts() {
    let env = Env::new();
    let out = env.run_ok(
        &["--mount", "type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=750"],
        env.busybox(),
        &[
            "sh",
            "-c",
            "echo ok > /scratch/f && cat /scratch/f && /bin/busybox grep ' /scratch ' /proc/mounts",
        ],
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ok"));
    let mount = lines.next().unwrap();
    assert!(
        mount.starts_with("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec"),
        "{mount}"
    );
    assert!(mount.contains("size=1024k") && mount.contains("mode=750"), "{mount}");

    // A read-only tmpfs is read-only.
    let ran = env.run(
        &["--mount", "type=tmpfs,target=/ro,readonly"],
        env.busybox(),
        &["sh", "-c", "/bin/busybox grep ' /ro ' /proc/mounts; echo x > /ro/f"],
    );
    assert_ne!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.starts_with("tmpfs /ro tmpfs ro,"), "{ran:?}");
}

#[test]
fn image_volumes_are_seeded_from_the_image() {
    let env = Env::new();
    let content = layer(&[
        ("var/", 0o755, ""),
        ("var/lib/", 0o755, ""),
        ("var/lib/app/", 0o750, ""),
        ("var/lib/app/seed", 0o644, "seeded\n"),
    ]);
    let image = env.image(
        "vol:1",
        json!({"Volumes": {"/var/lib/app": {}, "/empty/../cache": {}}, "Cmd": ["sh"]}),
        vec![content],
    );
    let bundle = env.bundle_ok(
        &[],
        &image,
        &[
            "sh",
            "-c",
            "cat /var/lib/app/seed; echo new > /var/lib/app/new; ls -d /cache",
        ],
    );
    let ran = env.runc(&bundle);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "seeded\n/cache\n"), "{ran:?}");
    let dir = bundle.join("volumes/0-cache");
    assert!(dir.is_dir(), "volumes live in the bundle directory");
    assert_eq!(
        std::fs::read_to_string(bundle.join("volumes/1-var_lib_app/new")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/var/lib/app/seed")).unwrap(),
        "seeded\n",
        "the image's own copy is untouched"
    );
    assert!(!bundle.join("rootfs/var/lib/app/new").exists());

    // A user mount at the same place replaces the volume.
    let host = env.path("vol-host");
    std::fs::create_dir(&host).unwrap();
    let volume = format!("{}:/var/lib/app", host.display());
    assert_eq!(env.run_ok(&["-v", &volume], &image, &["ls", "/var/lib/app"]), "");
}

#[test]
fn resource_limits_reach_the_cgroup() {
    let env = Env::new();
    let bundle = env.bundle_ok(
        &["--pids-limit", "64", "--memory", "64m", "--cpus", "0.5"],
        env.busybox(),
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes \
         /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
        ],
    );
    let resources = &config(&bundle)["linux"]["resources"];
    assert_eq!(resources["pids"]["limit"], 64);
    assert_eq!(resources["memory"]["limit"], 64 << 20);
    assert_eq!(resources["cpu"]["quota"], 50_000);
    let ran = env.runc(&bundle);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout, "64\n67108864\n50000\n100000\n");
}

#[test]
fn resource_limits_reach_the_cgroup_under_berth_run() {
    let env = Env::new();
    let ran = env.run_berth(
        &["--pids-limit", "64", "--memory", "64m", "--cpus", "0.5"],
        env.busybox(),
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes \
         /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; \
         echo max > /sys/fs/cgroup/pids/pids.max && echo LIFTED; \
         echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes && echo LIFTED; \
         mkdir /sys/fs/cgroup/memory/sub && echo LIFTED; \
         cat /sys/fs/cgroup/pids/pids.max",
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    // The container cannot lift its own limits: the cgroup file systems are read-only inside, as under runc.
    assert_eq!(ran.stdout, "64\n67108864\n50000\n100000\n64\n", "{ran:?}");
    assert!(ran.stderr.contains("Read-only file system"), "{ran:?}");
}

/// Mount points reached through symlinks that dangle inside the image (a systemd-resolved `/etc/resolv.conf`, a
/// data directory linked to a path the image lacks) are created inside the root, as runc does, and the mounts work.
#[test]
fn mount_points_behind_dangling_symlinks_are_created_in_the_root() {
    let env = Env::new();
    let content = layer(&[
        ("etc/", 0o755, ""),
        ("etc/resolv.conf", 0o777, "->../run/systemd/resolve/stub-resolv.conf"),
        ("run/", 0o755, ""),
        ("data", 0o777, "->/srv/data"),
    ]);
    let image = env.image("dangle:1", json!({"Cmd": ["sh"]}), vec![content]);
    let host = env.path("hostdata");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "from the host\n").unwrap();
    let volume = format!("{}:/data", host.display());
    let out = env.run_ok(
        &["-v", &volume],
        &image,
        &[
            "sh",
            "-c",
            "/bin/busybox grep -q nameserver /etc/resolv.conf && echo resolv-ok; cat /data/f; ls -d /srv/data",
        ],
    );
    assert_eq!(out, "resolv-ok\nfrom the host\n/srv/data\n", "{out}");
}
