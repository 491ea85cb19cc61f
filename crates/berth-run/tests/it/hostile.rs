//! HOSTILE-INPUTS 28–32 at the bundle step: every refusal names the image and the offending value, and leaves no
//! bundle behind.

use serde_json::{Value, json};

use crate::support::{Env, config, layer};

fn image_with(env: &Env, name: &str, config: Value, extra: Vec<Vec<u8>>) -> String {
    env.image(name, config, extra)
}

/// 28: ids that overflow or go negative (containerd CVE-2024-40635) and unknown names are refused.
#[test]
fn hostile_28_bad_users_are_refused() {
    let env = Env::new();
    for (user, expected) in [
        ("4294967296", "outside 0..=4294967294"),
        ("-1", "outside 0..=4294967294"),
        ("4294967295", "outside 0..=4294967294"),
        ("ghost", "does not exist in the image's /etc/passwd"),
        ("root:ghosts", "does not exist in the image's /etc/group"),
    ] {
        let image = image_with(&env, "hostile:user", json!({"User": user, "Cmd": ["id"]}), vec![]);
        let err = env.bundle_err(&[], &image, &[]);
        let named = user.rsplit(':').next().unwrap();
        assert!(
            err.contains("hostile:user") && err.contains(expected) && err.contains(named),
            "{user}: {err}"
        );
        let err = env.bundle_err(&["-u", user], env.busybox(), &[]);
        assert!(err.contains(expected), "-u {user}: {err}");
    }
}

/// 28: `/etc/passwd` and `/etc/group` linked out of the root filesystem resolve inside it.
#[test]
fn hostile_28_passwd_symlinked_out_of_the_rootfs_is_not_followed() {
    let env = Env::new();
    let outside = env.path("host-passwd");
    std::fs::write(&outside, "evil:x:4242:4242::/:/bin/sh\n").unwrap();
    std::fs::write(env.path("host-group"), "evilgroup:x:4343:evil\n").unwrap();
    let relative = format!("->../../../../../../../../..{}", outside.display());
    let absolute = format!("->{}", env.path("host-group").display());
    let links = layer(&[
        ("etc/", 0o755, ""),
        ("etc/passwd", 0o777, &relative),
        ("etc/group", 0o777, &absolute),
    ]);
    let image = image_with(
        &env,
        "hostile:passwd",
        json!({"User": "evil", "Cmd": ["id"]}),
        vec![links],
    );
    let err = env.bundle_err(&[], &image, &[]);
    assert!(err.contains("user \"evil\" does not exist"), "{err}");
    let err = env.bundle_err(&["-u", "0:evilgroup"], &image, &[]);
    assert!(err.contains("group \"evilgroup\" does not exist"), "{err}");
    // Numeric ids still work: the image simply has no accounts.
    assert_eq!(
        env.run_ok(&["-u", "4242"], &image, &["sh", "-c", "id -u; id -g"]),
        "4242\n0\n"
    );
}

/// 29: nothing to run, or something that cannot run.
#[test]
fn hostile_29_commands_that_cannot_run() {
    let env = Env::new();
    let empty = image_with(&env, "hostile:nocmd", json!({"Entrypoint": [], "Cmd": []}), vec![]);
    let err = env.bundle_err(&[], &empty, &[]);
    assert!(err.contains("neither Entrypoint nor Cmd"), "{err}");
    let mut foreign = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
    let other: u16 = if berth_spec::platform::Platform::host().architecture == "arm64" {
        62
    } else {
        183
    };
    foreign.extend(other.to_le_bytes());
    foreign.extend([0u8; 44]);
    let files = berth_testkit::image::TarBuilder::new()
        .dir("opt", 0o755)
        .file("opt/data.txt", 0o644, b"not a program")
        .file("opt/foreign", 0o755, &foreign)
        .file("opt/script", 0o755, b"#!/nonexistent/interp -x\necho hi\n")
        .file("opt/plain", 0o755, b"echo no shebang\n")
        .finish();
    let image = image_with(&env, "hostile:cmds", json!({"Cmd": ["sh"]}), vec![files]);
    for (command, expected) in [
        ("/bin/nope", "does not exist in the image"),
        ("nope", "not found in the image's PATH"),
        ("/opt", "is a directory"),
        ("/opt/data.txt", "is not executable"),
        (
            "/opt/script",
            "is a script for /nonexistent/interp, which does not exist in the image",
        ),
    ] {
        let err = env.bundle_err(&[], &image, &[command]);
        assert!(
            err.contains("hostile:cmds") && err.contains(expected),
            "{command}: {err}"
        );
    }
    let binfmt = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| d.count() > 2)
        .unwrap_or(false);
    if !binfmt {
        let err = env.bundle_err(&[], &image, &["/opt/foreign"]);
        assert!(err.contains("program, but this host runs"), "{err}");
        let err = env.bundle_err(&[], &image, &["/opt/plain"]);
        assert!(err.contains("exec format error"), "{err}");
    }
    // Exit codes as podman's: 127 when the command (or a script's interpreter) is not there, 126 when it is
    // there but cannot run; the message says which.
    for (command, code) in [
        ("/bin/nope", 127),
        ("/opt/script", 127),
        ("/opt", 126),
        ("/opt/data.txt", 126),
    ] {
        let ran = env.berth_out(&["run", "--rm", &image, command]);
        assert_eq!(ran.code, code, "{command}: {ran:?}");
        assert!(ran.stderr.contains(command), "{command}: {ran:?}");
    }
}

/// 30: the working directory cannot reach runtime file descriptors (runc CVE-2024-21626) nor escape by symlink.
#[test]
fn hostile_30_working_directories() {
    let env = Env::new();
    let image = image_with(
        &env,
        "hostile:wd",
        json!({"WorkingDir": "/proc/self/fd/7", "Cmd": ["pwd"]}),
        vec![],
    );
    let err = env.bundle_err(&[], &image, &[]);
    assert!(err.contains("hostile:wd") && err.contains("CVE-2024-21626"), "{err}");
    let err = env.bundle_err(&["-w", "/proc/1/task/1/fd/3"], env.busybox(), &[]);
    assert!(err.contains("CVE-2024-21626"), "{err}");

    let host = env.path("workdir-target");
    std::fs::create_dir(&host).unwrap();
    let link = format!("->../../../../../../../..{}", host.display());
    let escape = image_with(
        &env,
        "hostile:wdlink",
        json!({"WorkingDir": "/work/inside", "Cmd": ["sh", "-c", "pwd; echo x > here"]}),
        vec![layer(&[("work", 0o777, &link)])],
    );
    let bundle = env.bundle_ok(&[], &escape, &[]);
    let ran = env.runc(&bundle);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        !host.join("inside").exists(),
        "the working directory was created outside the rootfs"
    );
    let inside = bundle
        .join("rootfs")
        .join(host.strip_prefix("/").unwrap())
        .join("inside");
    assert!(inside.join("here").exists(), "{ran:?}");
}

/// 31: environment entries without `=`, with empty names or NUL bytes are refused; duplicates keep the last.
#[test]
fn hostile_31_environment() {
    let env = Env::new();
    let bad = image_with(
        &env,
        "hostile:env",
        json!({"Env": ["PATH=/bin", "JUSTAKEY"], "Cmd": ["env"]}),
        vec![],
    );
    let err = env.bundle_err(&[], &bad, &[]);
    assert!(
        err.contains("hostile:env") && err.contains("\"JUSTAKEY\" has no '='"),
        "{err}"
    );
    let nul = image_with(
        &env,
        "hostile:nul",
        json!({"Env": ["A=b\u{0}c"], "Cmd": ["env"]}),
        vec![],
    );
    assert!(env.bundle_err(&[], &nul, &[]).contains("NUL"));
    let err = env.bundle_err(&["-e", "=value"], env.busybox(), &[]);
    assert!(err.contains("empty variable name"), "{err}");
    let dup = image_with(
        &env,
        "hostile:dup",
        json!({"Env": ["A=1", "A=2"], "Cmd": ["sh", "-c", "echo $A"]}),
        vec![],
    );
    assert_eq!(env.run_ok(&[], &dup, &[]), "2\n");
    let huge = "x".repeat(2 << 20);
    let big = image_with(
        &env,
        "hostile:big",
        json!({"Env": [format!("A={huge}")], "Cmd": ["env"]}),
        vec![],
    );
    assert!(env.bundle_err(&[], &big, &[]).contains("exceed"));
    // One value over the kernel's 128 KiB per string: a reason, not a bare exit code from inside.
    let file = env.path("long.env");
    std::fs::write(&file, format!("LONG={}\n", "x".repeat(200_000))).unwrap();
    let ran = env.berth_out(&[
        "run",
        "--rm",
        "--env-file",
        file.to_str().unwrap(),
        env.busybox(),
        "true",
    ]);
    assert_eq!(ran.code, 126, "{ran:?}");
    assert!(ran.stderr.contains("LONG") && ran.stderr.contains("128 KiB"), "{ran:?}");
}

/// 32: volumes cannot climb out (containerd CVE-2022-23648); `/dev`, `/proc` and `/sys` must be directories.
#[test]
fn hostile_32_volumes_and_special_directories() {
    let env = Env::new();
    let relative = image_with(
        &env,
        "hostile:vol",
        json!({"Volumes": {"../../x": {}}, "Cmd": ["true"]}),
        vec![],
    );
    let err = env.bundle_err(&[], &relative, &[]);
    assert!(
        err.contains("hostile:vol") && err.contains("not an absolute path"),
        "{err}"
    );
    let root = image_with(
        &env,
        "hostile:volroot",
        json!({"Volumes": {"/a/..": {}}, "Cmd": ["true"]}),
        vec![],
    );
    assert!(env.bundle_err(&[], &root, &[]).contains("whole root filesystem"));

    let climbing = image_with(
        &env,
        "hostile:climb",
        json!({"Volumes": {"/../../../etc/x": {}}, "Cmd": ["true"]}),
        vec![],
    );
    let bundle = env.bundle_ok(&[], &climbing, &[]);
    let mounts = config(&bundle)["mounts"].as_array().unwrap().clone();
    let volume = mounts
        .iter()
        .find(|m| m["destination"] == "/etc/x")
        .expect("normalized to /etc/x");
    assert!(
        volume["source"].as_str().unwrap().starts_with(bundle.to_str().unwrap()),
        "{volume}"
    );
    assert_eq!(env.runc(&bundle).code, 0);

    for (name, entry) in [("proc", "->/"), ("dev", "->../../../dev"), ("sys", "")] {
        let tag = format!("hostile:{name}");
        let image = image_with(
            &env,
            &tag,
            json!({"Cmd": ["true"]}),
            vec![layer(&[(name, 0o755, entry)])],
        );
        let err = env.bundle_err(&[], &image, &[]);
        assert!(
            err.contains(&tag) && err.contains(&format!("/{name} in its root filesystem")),
            "{err}"
        );
    }
}

#[test]
fn bundle_directory_must_be_new_or_empty() {
    let env = Env::new();
    let dir = env.path("occupied");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep"), "").unwrap();
    let out = env.bundle(&[], env.busybox(), &dir, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert!(dir.join("keep").exists());
    let empty = env.path("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(env.bundle(&[], env.busybox(), &empty, &["true"]).status.success());
    let err = env.bundle_err(&[], "missing:1", &[]);
    assert!(err.contains("missing:1"), "{err}");
}
