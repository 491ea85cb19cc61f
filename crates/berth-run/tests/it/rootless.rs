//! Rootless containers: berth-run run by an unprivileged user (`nobody`, through `setpriv`), in a user namespace
//! of its own, with its store, cache and state under that user's home.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::{Env, Ran};

const NOBODY: u32 = 65534;

/// The environment, opened up for `nobody`: the test directory traversable, a home it owns.
fn rootless_env() -> (Env, PathBuf) {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.path("home");
    std::fs::create_dir(&home).unwrap();
    rustix::fs::chown(
        &home,
        Some(rustix::fs::Uid::from_raw(NOBODY)),
        Some(rustix::fs::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    (env, home)
}

fn as_nobody(env: &Env, home: &std::path::Path, args: &[&str]) -> Ran {
    let out = Command::new("setpriv")
        .current_dir(home)
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_berth-run"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home)
        .env("BERTH_STORE", env.layout.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Removes the user's containers whatever the test did (they live in the user's state, not the Env's).
struct Cleanup<'a>(&'a Env, &'a std::path::Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = as_nobody(self.0, self.1, &["ps", "-a", "-q", "--no-trunc"]).stdout;
        for id in ids.split_whitespace() {
            as_nobody(self.0, self.1, &["rm", "-f", id]);
        }
    }
}

#[test]
fn an_unprivileged_user_runs_containers() {
    let (env, home) = rootless_env();
    let _cleanup = Cleanup(&env, &home);
    let image = env.busybox();
    let ran = as_nobody(
        &env,
        &home,
        &[
            "run",
            "--rm",
            image,
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; echo x > /written; exit 3",
        ],
    );
    assert_eq!(ran.code, 3, "{ran:?}");
    let mut lines = ran.stdout.lines();
    assert_eq!(lines.next(), Some("0"), "root in the container: {ran:?}");
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "65534", "1"], "container root is the user outside: {ran:?}");

    // Everything it made belongs to the user, under the user's home.
    let state = home.join(".local/share/berth/state");
    assert!(state.join("containers").is_dir(), "{ran:?}");
    assert_eq!(
        std::fs::read_dir(state.join("containers")).unwrap().count(),
        0,
        "--rm removed it"
    );
    let cache = home.join(".cache/berth/overlay-userxattr/layers/sha256");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "the layer is cached with user.overlay xattrs"
    );
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), NOBODY);

    // Rootless containers have no cgroup here (cgroup v1 cannot be delegated): limits are refused, not ignored,
    // and a note says so once.
    assert!(ran.stderr.contains("note:") && ran.stderr.contains("cgroup"), "{ran:?}");
    let ran = as_nobody(&env, &home, &["run", "--rm", "--memory", "64m", image, "true"]);
    assert_eq!(ran.code, 125, "{ran:?}");
    assert!(
        ran.stderr.contains("--memory") && ran.stderr.contains("cgroup"),
        "{ran:?}"
    );
    assert!(state.join("rootless-cgroup-noted").exists());
    let again = as_nobody(
        &env,
        &home,
        &["run", "--rm", image, "sh", "-c", "cat /sys/class/net/lo/flags; umask"],
    );
    assert_eq!(again.code, 0, "{again:?}");
    assert!(!again.stderr.contains("note:"), "said once only: {again:?}");
    // The process defaults hold rootless too (umask 0022), without warnings. (lo stays down rootless: the
    // container's network namespace cannot be entered from outside yet.)
    assert!(again.stdout.ends_with("0022\n"), "{again:?}");
    assert_eq!(again.stderr, "", "{again:?}");
}

#[test]
fn an_unprivileged_user_manages_detached_containers() {
    let (env, home) = rootless_env();
    let _cleanup = Cleanup(&env, &home);
    let image = env.busybox();
    let ran = as_nobody(
        &env,
        &home,
        &[
            "run",
            "-d",
            "--name",
            "bg",
            image,
            "sh",
            "-c",
            "trap 'echo bye; exit 4' TERM; echo up; while :; do sleep 0.05; done",
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let start = std::time::Instant::now();
    while !as_nobody(&env, &home, &["logs", "bg"]).stdout.contains("up") {
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ps = as_nobody(&env, &home, &["ps"]);
    assert!(ps.stdout.contains("bg") && ps.stdout.contains("Up"), "{ps:?}");
    let ran = as_nobody(&env, &home, &["exec", "bg", "sh", "-c", "echo in; id -u"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "in\n0\n"), "{ran:?}");
    assert_eq!(as_nobody(&env, &home, &["stop", "bg"]).code, 0);
    let ps = as_nobody(&env, &home, &["ps", "-a"]);
    assert!(ps.stdout.contains("Exited (4)"), "{ps:?}");
    assert_eq!(as_nobody(&env, &home, &["logs", "bg"]).stdout, "up\nbye\n");
    let ran = as_nobody(&env, &home, &["rm", "bg"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let containers = home.join(".local/share/berth/state/containers");
    assert_eq!(std::fs::read_dir(containers).unwrap().count(), 0);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !info.contains(env.dir.path().to_str().unwrap()),
        "no mount is left on the host"
    );
}

/// A relative `--state` means the same directory for every command, including those that enter a running
/// container's namespaces (which moves the working directory).
#[test]
fn a_relative_state_directory_works_for_commands_on_running_containers() {
    let (env, home) = rootless_env();
    let image = env.busybox();
    let rel = |args: &[&str]| {
        let mut all = vec!["--state", "rel-state"];
        all.extend(args);
        as_nobody(&env, &home, &all)
    };
    struct RelCleanup<'a>(&'a dyn Fn(&[&str]) -> Ran);
    impl Drop for RelCleanup<'_> {
        fn drop(&mut self) {
            (self.0)(&["rm", "-f", "r"]);
        }
    }
    let _cleanup = RelCleanup(&rel);
    let ran = rel(&["run", "-d", "--name", "r", image, "sleep", "1000"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(home.join("rel-state/containers").is_dir());
    let ran = rel(&["exec", "r", "echo", "inside"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "inside\n"), "{ran:?}");
    let ran = rel(&["rm", "-f", "r"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "r\n"), "{ran:?}");
    assert_eq!(std::fs::read_dir(home.join("rel-state/containers")).unwrap().count(), 0);
}

/// `stop`, `kill` and `rm` given several running containers act on each, in each one's own namespaces; an unknown
/// name among them is reported and fails the command without keeping the others from being handled.
#[test]
fn one_command_handles_several_rootless_containers() {
    let (env, home) = rootless_env();
    let _cleanup = Cleanup(&env, &home);
    let image = env.busybox();
    let script = "trap 'exit 7' TERM; echo up; while :; do sleep 0.05; done";
    for name in ["c1", "c2", "c3", "c4"] {
        let ran = as_nobody(&env, &home, &["run", "-d", "--name", name, image, "sh", "-c", script]);
        assert_eq!(ran.code, 0, "{ran:?}");
    }
    for name in ["c1", "c2", "c3", "c4"] {
        let start = std::time::Instant::now();
        while !as_nobody(&env, &home, &["logs", name]).stdout.contains("up") {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "{name} never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let ran = as_nobody(&env, &home, &["stop", "c1", "c2"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "c1\nc2\n"), "{ran:?}");
    let ps = as_nobody(&env, &home, &["ps", "-a", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    let status = |name: &str| {
        let c = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Names"][0] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {ps:?}"));
        (c["State"].as_str().unwrap().to_owned(), c["ExitCode"].as_i64())
    };
    assert_eq!(status("c1"), ("exited".to_owned(), Some(7)), "{ps:?}");
    assert_eq!(status("c2"), ("exited".to_owned(), Some(7)), "{ps:?}");
    assert_eq!(status("c3").0, "running", "{ps:?}");
    let ran = as_nobody(&env, &home, &["kill", "-s", "TERM", "c3", "no-such-container", "c4"]);
    assert_ne!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("no-such-container"), "{ran:?}");
    assert_eq!(ran.stdout, "c3\nc4\n", "{ran:?}");
    for name in ["c3", "c4"] {
        let waited = as_nobody(&env, &home, &["wait", name]);
        assert_eq!(waited.stdout.trim(), "7", "{name}: {waited:?}");
    }
    for name in ["c5", "c6"] {
        let ran = as_nobody(&env, &home, &["run", "-d", "--name", name, image, "sleep", "1000"]);
        assert_eq!(ran.code, 0, "{ran:?}");
    }
    // Running containers removed together: each one's mounts are in its own namespace.
    let ran = as_nobody(&env, &home, &["rm", "-f", "c5", "c6"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "c5\nc6\n"), "{ran:?}");
    let ran = as_nobody(&env, &home, &["rm", "c1", "c2", "c3", "c4"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let containers = home.join(".local/share/berth/state/containers");
    assert_eq!(std::fs::read_dir(containers).unwrap().count(), 0);
}
