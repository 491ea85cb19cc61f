//! HOSTILE-INPUTS 37–41 and the audit's smaller findings (issue #12), against the real `berth-run`: private cache
//! and state, trust of directories root did not make, the runtime's own binary out of containers' reach, mount
//! destinations resolved in the image, gc racing bundle and run, and labels that would steer the runtime.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{Env, config, layer};

const NOBODY: u32 = 65534;

/// Runs `sh -c SCRIPT` as `nobody`; returns (exit code, stdout + stderr).
fn as_nobody(script: &str) -> (i32, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

/// An image whose layer holds a setuid-root program and a readable secret.
fn setuid_image(env: &Env, name: &str) -> String {
    let extra = layer(&[
        ("opt/", 0o755, ""),
        ("opt/secret", 0o644, "secret\n"),
        ("opt/suid", 0o4755, "#!/bin/sh\nid\n"),
    ]);
    env.image(name, json!({"Cmd": ["sleep", "60"]}), vec![extra])
}

/// 37 (Docker CVE-2021-41091): with the test directory itself open to everyone, `nobody` can neither read nor
/// run anything in the layer cache, a container's tree or a bundle; older 0755 roots are tightened on first use.
#[test]
fn hostile_37_cache_state_and_bundles_are_out_of_other_users_reach() {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // As an older Berth left them.
    for d in [env.cache(), env.path("state")] {
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let image = setuid_image(&env, "private:1");
    let id = env.berth_ok(&["run", "-d", &image]).trim().to_owned();
    let bundle = env.bundle_ok(&[], &image, &[]);
    assert_eq!(mode(&env.cache()), 0o700, "cache tightened");
    assert_eq!(mode(&env.path("state")), 0o700, "state tightened");
    assert_eq!(mode(&bundle), 0o700, "bundle directory private");

    let container = env.path("state").join("containers").join(&id);
    let mut targets = vec![
        container.join("rootfs/opt/secret"),
        container.join("rootfs/opt/suid"),
        container.join("upper"),
        bundle.join("rootfs/opt/secret"),
        bundle.join("rootfs/opt/suid"),
        env.cache().join("overlay/tmp"),
    ];
    let layers = env.cache().join("overlay/layers/sha256");
    for entry in std::fs::read_dir(&layers).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("opt/secret").exists() {
            targets.push(dir.join("opt/secret"));
            targets.push(dir.join("opt/suid"));
        }
    }
    assert!(
        targets.len() > 7,
        "the layer with the setuid file is cached: {targets:?}"
    );
    for t in &targets {
        assert!(t.exists(), "{}", t.display());
        let p = t.display();
        let (code, out) = as_nobody(&format!("cat {p} >/dev/null || ls {p} || exec {p}"));
        assert_ne!(code, 0, "nobody reached {p}: {out}");
        assert!(out.contains("Permission denied"), "{p}: {out}");
    }
    env.berth_ok(&["rm", "-f", &id]);

    // New roots, and their missing parents, made under umask 0: still private.
    let (cache, state) = (env.path("u0/a/cache"), env.path("u0/b/state"));
    let script = format!("umask 0; exec \"$0\" run --rm {image} true");
    let out = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_berth-run")])
        .env("BERTH_STORE", env.layout.root())
        .env("BERTH_CACHE", &cache)
        .env("BERTH_STATE", &state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((mode(&cache), mode(&state)), (0o700, 0o700));
    for parent in [env.path("u0"), env.path("u0/a"), env.path("u0/b")] {
        assert_eq!(mode(&parent) & 0o022, 0, "{}", parent.display());
    }
}

/// 38: a cache or state directory another user owns, or that others may write, is refused before anything is
/// read from it, with the directory named and what to do.
#[test]
fn hostile_38_cache_and_state_of_another_user_are_refused() {
    let env = Env::new();
    let image = env.busybox();
    let planted = env.path("planted");
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
    rustix::fs::chown(&planted, Some(rustix::fs::Uid::from_raw(NOBODY)), None).unwrap();
    for var in ["BERTH_CACHE", "BERTH_STATE"] {
        let out = env
            .berth(&["run", "--rm", image, "true"])
            .env(var, &planted)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{var}: {err}");
        assert!(
            err.contains(&planted.display().to_string()) && err.contains("belongs to uid 65534"),
            "{var}: {err}"
        );
    }
    let open = env.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = env
        .berth(&["run", "--rm", image, "true"])
        .env("BERTH_CACHE", &open)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("writable by other users"), "{err}");
    assert_eq!(
        std::fs::read_dir(&open).unwrap().count(),
        0,
        "nothing written to a refused cache"
    );
}

/// A process's executable: its link text and whether it can be written through the link.
fn exe_of(pid: u32) -> (String, std::io::Result<()>) {
    use std::io::Write;
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let write = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/{pid}/exe"))
        .and_then(|mut f| f.write_all(b"overwritten"));
    (link.display().to_string(), write)
}

fn sha256_of(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// 40 (runc CVE-2019-5736): every berth-run process that owns or enters a container (the foreground `run`, a
/// detached container's monitor, `exec`) runs from a sealed copy (a read-only overlay's file, or a sealed memfd),
/// so nothing reached through `/proc/PID/exe` can be written, now or later, and the binary on disk is untouched.
#[test]
fn hostile_40_processes_that_own_or_enter_containers_run_from_a_sealed_copy() {
    let env = Env::new();
    let image = env.busybox();
    let binary = env!("CARGO_BIN_EXE_berth-run");
    let before = sha256_of(binary);
    let mut foreground = env
        .berth(&["run", "--rm", "--name", "fg", image, "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let id = env
        .berth_ok(&["run", "-d", "--name", "bg", image, "sleep", "30"])
        .trim()
        .to_owned();
    let mut exec = env
        .berth(&["exec", "bg", "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The monitor is recorded once the container runs; `exec` has entered it once it shows in the container.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let record = loop {
        let path = env.path("state").join("containers").join(&id).join("container.json");
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let ps = env.berth_ok(&[
            "exec",
            "bg",
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do cat $p/cmdline; echo; done",
        ]);
        if ps.lines().filter(|l| l.starts_with("sleep")).count() >= 2 && record["monitor_pid"].is_number() {
            break record;
        }
        assert!(std::time::Instant::now() < deadline, "exec did not start: {ps}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let monitor = record["monitor_pid"].as_u64().unwrap() as u32;
    let mut held = Vec::new();
    for (what, pid) in [("run", foreground.id()), ("monitor", monitor), ("exec", exec.id())] {
        let (link, write) = exe_of(pid);
        let e = write.expect_err(&format!("{what}: writing through /proc/{pid}/exe succeeded"));
        let exe = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
        // Either a sealed memfd (EPERM from the seals, or ETXTBSY while it runs) or a file of a read-only overlay
        // that is not the host's (EROFS).
        if link.starts_with("/memfd:berth-run") {
            assert!(
                matches!(e.raw_os_error(), Some(libc::EPERM | libc::ETXTBSY)),
                "{what}: {e}"
            );
            let seals = rustix::fs::fcntl_get_seals(&exe).unwrap();
            assert!(
                seals.contains(rustix::fs::SealFlags::WRITE | rustix::fs::SealFlags::SEAL),
                "{what}: {seals:?}"
            );
        } else {
            assert!(
                matches!(e.raw_os_error(), Some(libc::EROFS | libc::ETXTBSY)),
                "{what}: {e}"
            );
            let fs = rustix::fs::fstatfs(&exe).unwrap();
            assert_eq!(
                fs.f_type as i64, 0x794c_7630,
                "{what} runs from {link}: neither a memfd nor an overlay"
            );
            let vfs = rustix::fs::fstatvfs(&exe).unwrap();
            assert!(
                vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
                "{what}: the overlay is writable"
            );
            use std::os::unix::fs::MetadataExt;
            let host = std::fs::metadata(binary).unwrap();
            let seen = exe.metadata().unwrap();
            assert!(
                (seen.dev(), seen.ino()) != (host.dev(), host.ino()),
                "{what}: the overlay's file is the host's inode"
            );
        }
        // A descriptor kept past the process's end: still no way to write (reopened through /proc/self/fd).
        held.push((what, exe));
    }
    env.berth_ok(&["rm", "-f", "bg", "fg"]);
    let _ = foreground.wait();
    let _ = exec.wait();
    for (what, exe) in &held {
        use std::os::fd::AsRawFd;
        let reopened = std::fs::OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{}", exe.as_raw_fd()));
        assert!(
            reopened.is_err(),
            "{what}: the binary became writable once the process ended"
        );
    }
    assert_eq!(sha256_of(binary), before, "the binary on disk is unchanged");
}

/// 40: commands that are magic links into the runtime are refused before any container starts, whatever decoy
/// the image ships at that path: `/proc/self/exe` itself, a symlink to it, and a script whose interpreter it is.
#[test]
fn hostile_40_proc_self_exe_entrypoints_and_interpreters_are_refused() {
    let env = Env::new();
    let decoy = layer(&[
        ("proc/", 0o555, ""),
        ("proc/self/", 0o755, ""),
        ("proc/self/exe", 0o755, "#!/bin/sh\necho decoy\n"),
        ("bin/evil", 0o755, "#!/proc/self/exe\n"),
        ("bin/link", 0o777, "->/proc/self/exe"),
        ("bin/mid", 0o755, "#!/proc/self/exe\n"),
        ("bin/chain", 0o755, "#!/bin/mid\n"),
    ]);
    let image = env.image(
        "hostile:exe",
        json!({"Entrypoint": ["/proc/self/exe", "--version"]}),
        vec![decoy],
    );
    for command in [&[][..], &["/bin/evil"][..], &["/bin/link"][..], &["/bin/chain"][..]] {
        let flags: &[&str] = if command.is_empty() { &[] } else { &["--entrypoint", ""] };
        let ran = env.run_berth(flags, &image, command);
        assert_eq!(ran.code, 126, "{command:?}: {ran:?}");
        assert!(
            ran.stderr.contains("/proc/self/exe") && ran.stderr.contains("runtime's magic links"),
            "{command:?}: {ran:?}"
        );
        assert!(!ran.stdout.contains("decoy"), "{ran:?}");
    }
    // The same for a process entering a running container.
    let id = env
        .berth_ok(&["run", "-d", "--entrypoint", "", &image, "sleep", "30"])
        .trim()
        .to_owned();
    let ran = env.berth_out(&["exec", &id, "/bin/evil"]);
    assert_eq!(ran.code, 126, "{ran:?}");
    assert!(ran.stderr.contains("runtime's magic links"), "{ran:?}");
    env.berth_ok(&["rm", "-f", &id]);
}

/// 41 (runc CVE-2019-16884's precondition): volumes and the user's mounts whose destinations lead, through the
/// image's symlinks, onto /proc, /sys, /dev or the root are refused; a symlinked destination elsewhere is mounted
/// where the link really leads.
#[test]
fn hostile_41_mount_destinations_through_symlinks() {
    let env = Env::new();
    let links = layer(&[
        ("v", 0o777, "->/proc"),
        ("s", 0o777, "->../sys/kernel"),
        ("d", 0o777, "->/dev"),
        ("data", 0o777, "->/"),
        ("srv/", 0o755, ""),
        ("srv/real/", 0o755, ""),
        ("srv/real/seed", 0o644, "seeded\n"),
        ("good", 0o777, "->srv/real"),
    ]);
    for (volume, lands) in [
        ("/v", "/proc"),
        ("/s/x", "/sys/kernel/x"),
        ("/d", "/dev"),
        ("/data", "container's root"),
    ] {
        let tag = format!("hostile:vol{}", volume.replace('/', "-"));
        let image = env.image(
            &tag,
            json!({"Volumes": {volume: {}}, "Cmd": ["true"]}),
            vec![links.clone()],
        );
        let err = env.bundle_err(&[], &image, &[]);
        assert!(
            err.contains(&tag) && err.contains(volume) && err.contains(lands),
            "{volume}: {err}"
        );
        let ran = env.run_berth(&[], &image, &[]);
        assert_eq!(ran.code, 125, "{volume}: {ran:?}");
        assert!(ran.stderr.contains("a VOLUME of the image"), "{ran:?}");
    }
    let plain = env.image("hostile:links", json!({"Cmd": ["true"]}), vec![links.clone()]);
    let host = env.path("hostdir");
    std::fs::create_dir(&host).unwrap();
    for flags in [
        vec!["-v".to_owned(), format!("{}:/v", host.display())],
        vec!["-v".to_owned(), format!("{}:/s/fs", host.display())],
        vec!["--mount".to_owned(), "type=tmpfs,target=/d/x".to_owned()],
        vec!["--mount".to_owned(), "type=tmpfs,target=/data".to_owned()],
        vec!["-v".to_owned(), format!("{}:/proc/sys", host.display())],
    ] {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let ran = env.run_berth(&flags, &plain, &[]);
        assert_eq!(ran.code, 125, "{flags:?}: {ran:?}");
        assert!(ran.stderr.contains("cannot mount at"), "{flags:?}: {ran:?}");
    }
    // A volume through a symlink that stays in the image: mounted at the real place, seeded from it.
    let good = env.image(
        "hostile:goodvol",
        json!({"Volumes": {"/good": {}}, "Cmd": ["cat", "/good/seed"]}),
        vec![links],
    );
    let bundle = env.bundle_ok(&[], &good, &[]);
    let mounts = config(&bundle)["mounts"].as_array().unwrap().clone();
    assert!(mounts.iter().any(|m| m["destination"] == "/srv/real"), "{mounts:?}");
    assert_eq!(env.run_ok(&[], &good, &[]), "seeded\n");
}

/// 7: image labels in namespaces that runtimes act on do not become annotations; the user's `--annotation` does.
#[test]
fn runtime_annotations_come_only_from_the_user() {
    let env = Env::new();
    let image = env.image(
        "labels:1",
        json!({"Cmd": ["true"], "Labels": {
            "run.oci.handler": "krun",
            "org.systemd.property.CPUQuota": "1%",
            "io.katacontainers.config.hypervisor.path": "/tmp/x",
            "dev.berth.home-computed": "false",
            "com.example.kept": "yes"
        }}),
        vec![],
    );
    let bundle = env.bundle_ok(&["--annotation", "run.oci.keep_original_groups=1"], &image, &[]);
    let annotations = config(&bundle)["annotations"].clone();
    assert_eq!(annotations["com.example.kept"], "yes", "{annotations}");
    assert_eq!(annotations["run.oci.keep_original_groups"], "1", "{annotations}");
    for dropped in [
        "run.oci.handler",
        "org.systemd.property.CPUQuota",
        "io.katacontainers.config.hypervisor.path",
    ] {
        assert!(annotations.get(dropped).is_none(), "{dropped}: {annotations}");
    }
    assert_eq!(
        annotations["dev.berth.home-computed"], "true",
        "Berth's own, not the label's"
    );
}

/// 7: `gc --all` racing `bundle` and `run` never takes a layer from under them: every bundle and container has
/// every file of the image.
#[test]
fn gc_racing_bundle_and_run_leaves_them_whole() {
    let env = Env::new();
    let files: Vec<(String, u32, String)> = (0..1500)
        .map(|i| (format!("many/f{i}"), 0o644, format!("{i}\n")))
        .collect();
    let mut entries: Vec<(&str, u32, &str)> = vec![("many/", 0o755, "")];
    entries.extend(files.iter().map(|(p, m, c)| (p.as_str(), *m, c.as_str())));
    let image = env.image(
        "many:1",
        json!({"Cmd": ["sh", "-c", "ls /many | wc -l"]}),
        vec![layer(&entries)],
    );
    for round in 0..4 {
        let gc = std::thread::scope(|s| {
            let gc = s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20 * round));
                env.berth_out(&["gc", "--all"])
            });
            let bundle = env.bundle_ok(&[], &image, &[]);
            let count = std::fs::read_dir(bundle.join("rootfs/many")).unwrap().count();
            assert_eq!(count, 1500, "round {round}: the bundle lost files to gc");
            let ran = env.berth_out(&["run", "--rm", &image]);
            assert_eq!((ran.code, ran.stdout.trim()), (0, "1500"), "round {round}: {ran:?}");
            gc.join().unwrap()
        });
        assert_eq!(gc.code, 0, "{gc:?}");
    }
}

/// 30 through symlinks: a working directory that leads into /proc (runc CVE-2024-21626) is refused, and nothing is
/// created in the image tree by following it.
#[test]
fn hostile_30_workdir_through_a_symlink_into_proc_is_refused() {
    let env = Env::new();
    let image = env.image(
        "hostile:wd",
        json!({"WorkingDir": "/w/7", "Cmd": ["true"]}),
        vec![layer(&[("w", 0o777, "->/proc/self/fd")])],
    );
    let err = env.bundle_err(&[], &image, &[]);
    assert!(err.contains("/w/7") && err.contains("/proc"), "{err}");
    let ran = env.run_berth(&[], &image, &[]);
    assert_eq!(ran.code, 125, "{ran:?}");
}

/// 37: a bundle written into an existing empty directory makes it private too.
#[test]
fn hostile_37_an_existing_bundle_directory_is_made_private() {
    let env = Env::new();
    let dir = env.path("given");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.bundle(&[], env.busybox(), &dir, &["true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        mode(&dir.join("rootfs")) & 0o005,
        0o005,
        "the container's / stays traversable inside"
    );
}

/// 38: a default store another user controls is refused (here: `nobody`'s default store, owned by root).
#[test]
fn hostile_38_a_default_store_of_another_user_is_refused() {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.path("home");
    let store = home.join(".local/share/berth/store");
    std::fs::create_dir_all(&store).unwrap();
    rustix::fs::chown(&home, Some(rustix::fs::Uid::from_raw(NOBODY)), None).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_berth-run"))
        .args(["run", "--rm", "busybox:1", "true"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&store.display().to_string()) && err.contains("belongs to uid 0"),
        "{err}"
    );
}
