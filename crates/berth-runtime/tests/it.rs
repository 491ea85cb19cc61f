//! berth-runtime driven as containerd drives runc (a private containerd, `ctr run --runc-binary`), and its
//! runtime-spec command line on a bundle directly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_spec::layout::Layout;
use berth_testkit::containerd::Containerd;

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A private containerd holding the busybox image as `localhost/bb:latest`.
fn containerd_with_busybox(dir: &Path) -> Containerd {
    let layout_dir = dir.join("layout");
    let layout = Layout::create(&layout_dir).unwrap();
    berth_testkit::busybox::write_image(&layout, "latest").unwrap();
    let archive = dir.join("bb.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&layout_dir)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let containerd = Containerd::start().unwrap();
    let out = containerd
        .ctr()
        .unwrap()
        .args(["images", "import", "--base-name", "localhost/bb"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    containerd
}

fn ctr(c: &Containerd, args: &[&str]) -> Output {
    c.ctr().unwrap().args(args).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn containerd_runs_execs_pauses_and_kills_through_berth_runtime() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = containerd_with_busybox(dir.path());
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--runc-binary", BIN];
        all.extend(args);
        ctr(&c, &all)
    };

    // Output and exit code pass through.
    let out = run(&[
        "--rm",
        "localhost/bb:latest",
        "r1",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");

    // A detached container: exec (with its own exit code), ps, pause/resume, kill, delete.
    let out = run(&["-d", "localhost/bb:latest", "r2", "sh", "-c", "sleep 600"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), c.log());
    let status = || {
        let ls = text(&ctr(&c, &["task", "ls"]).stdout);
        ls.lines()
            .find(|l| l.starts_with("r2 "))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(status(), "RUNNING");
    let out = ctr(
        &c,
        &[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "r2",
            "sh",
            "-c",
            "echo from exec; exit 5",
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from exec\n");
    let ps = text(&ctr(&c, &["task", "ps", "r2"]).stdout);
    assert!(ps.lines().count() >= 2, "ps lists the container's processes:\n{ps}");
    assert!(ctr(&c, &["task", "pause", "r2"]).status.success());
    assert_eq!(status(), "PAUSED");
    assert!(ctr(&c, &["task", "resume", "r2"]).status.success());
    assert_eq!(status(), "RUNNING");
    assert!(ctr(&c, &["task", "kill", "-s", "SIGKILL", "r2"]).status.success());
    let waited = ctr(&c, &["task", "wait", "r2"]);
    assert_eq!(text(&waited.stdout).trim(), "", "{}", text(&waited.stderr));
    assert_eq!(status(), "STOPPED");
    assert!(ctr(&c, &["task", "delete", "r2"]).status.success());
    assert!(ctr(&c, &["containers", "delete", "r2"]).status.success());

    // A terminal: the shim's console socket gets the pty (ctr run -t, under script(1) for a terminal of its own).
    let line = format!(
        "ctr --address {} run -t --runc-binary {BIN} --rm localhost/bb:latest r4 sh -c 'tty; echo in-tty; exit 4'",
        c.socket().display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let seen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{seen}\n{}", text(&out.stderr));
    assert!(seen.contains("/dev/pts/") && seen.contains("in-tty"), "{seen}");

    // berth-runtime's own error reaches the user through containerd (from the --log file).
    let out = run(&["--rm", "localhost/bb:latest", "r3", "/no/such/program"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("/no/such/program") && err.contains("container r3"),
        "{err}"
    );
}

/// A bundle: busybox's root filesystem and a config running `args`.
fn bundle(dir: &Path, args: &[&str]) -> PathBuf {
    let b = dir.join("bundle");
    std::fs::create_dir_all(b.join("rootfs")).unwrap();
    let tar = dir.join("rootfs.tar");
    std::fs::write(&tar, berth_testkit::busybox::rootfs_tar().unwrap()).unwrap();
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(b.join("rootfs"))
            .arg("-xf")
            .arg(&tar)
            .status()
            .unwrap()
            .success()
    );
    let out = Command::new(BIN).args(["spec", "--bundle"]).arg(&b).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = b.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["terminal"] = false.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    b
}

/// Runs a runtime's commands with their streams in files, not pipes: a created container keeps the streams it
/// inherited open, as under the shim, so a pipe would never end.
struct Calls {
    dir: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Calls {
    fn new(dir: &Path) -> Calls {
        Calls {
            dir: dir.to_owned(),
            n: std::cell::Cell::new(0),
        }
    }

    /// `bin --root ROOT ARGS…` with `stdin` as its input.
    fn run(&self, bin: &str, root: &Path, args: &[&str], stdin: &[u8]) -> Output {
        self.n.set(self.n.get() + 1);
        let file = |ext: &str| self.dir.join(format!("{}.{ext}", self.n.get()));
        let (out, err, inp) = (file("out"), file("err"), file("in"));
        std::fs::write(&inp, stdin).unwrap();
        let status = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(std::fs::File::open(&inp).unwrap())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&out).unwrap(),
            stderr: std::fs::read(&err).unwrap(),
        }
    }
}

#[test]
fn the_command_line_follows_the_runtime_spec_lifecycle() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let b = bundle(dir.path(), &["sleep", "600"]);
    let log = dir.path().join("log.json");
    let calls = Calls::new(dir.path());
    let rt = |args: &[&str]| {
        let mut all = vec!["--log", log.to_str().unwrap(), "--log-format", "json"];
        all.extend(args);
        calls.run(BIN, &root, &all, b"")
    };
    let state = |id: &str| -> serde_json::Value {
        let out = rt(&["state", id]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            out.stderr.is_empty(),
            "state prints nothing on stderr: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let pid_file = dir.path().join("init.pid");
    let b_s = b.to_str().unwrap();
    let out = rt(&[
        "create",
        "--bundle",
        b_s,
        "--pid-file",
        pid_file.to_str().unwrap(),
        "c1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid_text = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        pid_text.bytes().all(|b| b.is_ascii_digit()),
        "digits only: {pid_text:?}"
    );
    // The container's first process is berth-runtime until it executes the program: a sealed copy, never the file
    // on disk (CVE-2019-5736).
    let init_exe = format!("/proc/{}/exe", pid_text.trim());
    let link = std::fs::read_link(&init_exe).unwrap();
    assert_ne!(
        std::fs::canonicalize(BIN).unwrap(),
        link,
        "the container's process runs the host's binary"
    );
    let write = std::fs::OpenOptions::new().append(true).open(&init_exe);
    assert!(write.is_err(), "{} is writable", link.display());
    let s = state("c1");
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], "c1");
    assert_eq!(s["pid"].as_i64().unwrap().to_string(), pid_text);
    assert_eq!(
        Path::new(s["bundle"].as_str().unwrap()),
        std::fs::canonicalize(&b).unwrap()
    );
    assert!(s["ociVersion"].is_string());

    assert!(rt(&["start", "c1"]).status.success());
    assert_eq!(state("c1")["status"], "running");
    let list = rt(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], "c1");
    let ps = rt(&["ps", "--format", "json", "c1"]);
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&pid_text.parse().unwrap()), "{pids:?}");
    assert!(ps.stderr.is_empty());

    assert!(rt(&["kill", "c1", "KILL"]).status.success());
    for _ in 0..100 {
        if state("c1")["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(state("c1")["status"], "stopped");
    // A stopped container: kill says so, kill --all succeeds, delete removes it.
    let out = rt(&["kill", "c1", "TERM"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("container not running"),
        "{}",
        text(&out.stderr)
    );
    let last = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container not running");
    assert!(line["time"].is_string());
    assert!(rt(&["kill", "--all", "c1", "KILL"]).status.success());
    assert!(rt(&["delete", "c1"]).status.success());
    let out = rt(&["state", "c1"]);
    assert!(text(&out.stderr).contains("does not exist"), "{}", text(&out.stderr));
    let out = rt(&["kill", "c1", "KILL"]);
    assert!(text(&out.stderr).contains("does not exist"), "{}", text(&out.stderr));

    // `delete` of a created container kills and deletes it.
    assert!(rt(&["create", "--bundle", b_s, "c2"]).status.success());
    assert_eq!(state("c2")["status"], "created");
    assert!(rt(&["delete", "c2"]).status.success());
    assert!(text(&rt(&["state", "c2"]).stderr).contains("does not exist"));

    // `run` waits and gives the program's exit code; checkpoints are refused plainly.
    let b2 = bundle(&dir.path().join("two"), &["sh", "-c", "exit 3"]);
    assert_eq!(
        rt(&["run", "--bundle", b2.to_str().unwrap(), "c3"]).status.code(),
        Some(3)
    );
    assert!(
        text(&rt(&["state", "c3"]).stderr).contains("does not exist"),
        "run removes the container"
    );
    let out = rt(&["checkpoint", "c3"]);
    assert!(text(&out.stderr).contains("not supported"), "{}", text(&out.stderr));
}

/// What one runtime did at each step of a lifecycle script: (step, exit code, status afterwards, a fact).
type Seen = Vec<(String, Option<i32>, String, String)>;

/// The pids limit of a process's cgroup (v1 `pids` hierarchy, else the v2 unified one).
fn pids_max(pid: i64) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let base = match names {
            "pids" => "/sys/fs/cgroup/pids",
            "" if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => "/sys/fs/cgroup",
            _ => continue,
        };
        let file = Path::new(base).join(path.trim_start_matches('/')).join("pids.max");
        if let Ok(v) = std::fs::read_to_string(file) {
            return v.trim().to_owned();
        }
    }
    "no pids cgroup".into()
}

/// Runs one lifecycle script with `bin` (runc or berth-runtime) on a bundle of its own and records what it saw.
fn lifecycle(bin: &str, dir: &Path) -> Seen {
    let root = dir.join("state");
    let b = bundle(dir, &["sleep", "600"]);
    let b_s = b.to_str().unwrap().to_owned();
    let exit3 = bundle(&dir.join("exit3"), &["sh", "-c", "exit 3"]);
    let calls = Calls::new(dir);
    let rt = |args: &[&str], stdin: &[u8]| calls.run(bin, &root, args, stdin);
    let state = |id: &str| -> serde_json::Value {
        let out = rt(&["state", id], b"");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let seen = std::cell::RefCell::new(Seen::new());
    let step = |name: &str, args: &[&str], stdin: &[u8], id: &str| {
        let out = rt(args, stdin);
        let s = state(id);
        // The fields the runtime spec requires of `state`, with their types.
        let mut fact = String::new();
        if !s.is_null() {
            let required = s["ociVersion"].is_string()
                && s["id"] == id
                && s["status"].is_string()
                && s["bundle"].as_str().map(Path::new) == Some(std::fs::canonicalize(&b).unwrap().as_path());
            fact = format!("required fields: {required}");
            if matches!(s["status"].as_str(), Some("created" | "running" | "paused")) {
                fact.push_str(&format!(", pid > 0: {}", s["pid"].as_i64().is_some_and(|p| p > 0)));
            }
        }
        let status = s["status"].as_str().unwrap_or("(none)").to_owned();
        seen.borrow_mut()
            .push((name.to_owned(), out.status.code(), status, fact));
        (out, s)
    };
    step("create", &["create", "--bundle", &b_s, "c"], b"", "c");
    step("create again", &["create", "--bundle", &b_s, "c"], b"", "c");
    step("start", &["start", "c"], b"", "c");
    step("start again", &["start", "c"], b"", "c");
    step("pause", &["pause", "c"], b"", "c");
    step("pause again", &["pause", "c"], b"", "c");
    step("resume", &["resume", "c"], b"", "c");
    let (_, s) = step(
        "update --resources -",
        &["update", "--resources", "-", "c"],
        br#"{"pids": {"limit": 42}}"#,
        "c",
    );
    let pid = s["pid"].as_i64().unwrap_or(0);
    let fact = |name: &str, value: String| seen.borrow_mut().push((name.into(), None, value, String::new()));
    fact("pids.max after update", pids_max(pid));
    step("update --pids-limit", &["update", "--pids-limit", "64", "c"], b"", "c");
    fact("pids.max after --pids-limit", pids_max(pid));
    step("delete running", &["delete", "c"], b"", "c");
    step("kill KILL", &["kill", "c", "KILL"], b"", "c");
    for _ in 0..100 {
        if state("c")["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    step("kill stopped", &["kill", "c", "TERM"], b"", "c");
    step("kill --all stopped", &["kill", "--all", "c", "KILL"], b"", "c");
    step("start stopped", &["start", "c"], b"", "c");
    step("delete", &["delete", "c"], b"", "c");
    step("delete missing", &["delete", "c"], b"", "c");
    step("delete --force missing", &["delete", "--force", "c"], b"", "c");
    step("kill missing", &["kill", "c", "KILL"], b"", "c");
    step("create for delete", &["create", "--bundle", &b_s, "d"], b"", "d");
    step("delete created", &["delete", "d"], b"", "d");
    step(
        "run exit 3",
        &["run", "--bundle", exit3.to_str().unwrap(), "e"],
        b"",
        "e",
    );
    seen.into_inner()
}

/// The same lifecycle script through runc and berth-runtime, on identical bundles: the same exit codes (0 or
/// not, and a program's own), the same statuses after each step, the same required state fields, and the same
/// resource limits applied by `update`.
#[test]
fn berth_runtime_and_runc_agree_on_the_lifecycle() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runc = lifecycle("runc", &dir.path().join("runc"));
    let berth = lifecycle(BIN, &dir.path().join("berth"));
    // Exit codes: success and failure agree; a program's code is compared exactly.
    let norm = |s: &Seen| -> Seen {
        s.iter()
            .map(|(step, code, status, fact)| {
                let code = match (step.as_str(), code) {
                    ("run exit 3", c) => *c,
                    (_, Some(0)) => Some(0),
                    (_, None) => None,
                    (_, Some(_)) => Some(1),
                };
                (step.clone(), code, status.clone(), fact.clone())
            })
            .collect()
    };
    let (runc, berth) = (norm(&runc), norm(&berth));
    for (r, b) in runc.iter().zip(&berth) {
        assert_eq!(
            r, b,
            "runc (left) and berth-runtime (right) differ\nrunc: {runc:#?}\nberth: {berth:#?}"
        );
    }
    assert_eq!(runc.len(), berth.len());
    assert!(
        runc.iter()
            .any(|(s, _, v, _)| s == "pids.max after update" && v == "42"),
        "{runc:#?}"
    );
}

/// A bundle's seccomp profile is compiled once into the seccomp cache (never under `--root`, which after `delete`
/// is empty again), and later containers load the stored filter, which does what the profile says.
#[test]
fn seccomp_filters_are_kept_outside_the_state_directory() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), &["sh", "-c", "mkdir /tmp/made"]);
    let path = b.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let (root, berth_cache) = (dir.path().join("root"), dir.path().join("cache"));
    let cache = berth_cache.join("seccomp");
    for (i, how) in ["Compiled", "Cached"].into_iter().enumerate() {
        let out = Command::new(BIN)
            .env("BERTH_CACHE", &berth_cache)
            .env("RUST_LOG", "berth_sandbox::runtime=debug,libcontainer::seccomp=debug")
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(&b)
            .arg(format!("sc{i}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "mkdir is refused: {err}");
        assert!(err.contains("Permission denied"), "{err}");
        assert!(err.contains(&format!("how={how}")), "{how}: {err}");
        assert!(err.contains("loaded the precompiled seccomp filter"), "{err}");
        let stored = std::fs::read_dir(&cache).unwrap().count();
        assert_eq!(stored, 1, "one program for the one profile");
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.is_empty(),
            "--root holds nothing once the container is deleted: {left:?}"
        );
    }
}

/// `features` prints the runtime-spec features document, covering at least what runc's says where both speak of
/// the same thing.
#[test]
fn features_describes_the_runtime() {
    let ours: serde_json::Value =
        serde_json::from_slice(&Command::new(BIN).arg("features").output().unwrap().stdout).unwrap();
    assert_eq!(ours["ociVersionMin"], "1.0.0");
    assert!(ours["ociVersionMax"].as_str().unwrap().starts_with("1."));
    let namespaces: Vec<&str> = ours["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for ns in ["mount", "pid", "network", "ipc", "uts", "user", "cgroup"] {
        assert!(namespaces.contains(&ns), "{ns} missing from {namespaces:?}");
    }
    assert_eq!(ours["linux"]["seccomp"]["enabled"], true);
    assert!(ours["mountOptions"].as_array().unwrap().iter().any(|o| o == "rbind"));
    let runc = Command::new("runc").arg("features").output();
    if let Ok(out) = runc
        && out.status.success()
    {
        let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // Every namespace runc supports, berth-runtime supports (it adds `time`, which runc 1.1 lacks).
        for ns in theirs["linux"]["namespaces"].as_array().unwrap() {
            assert!(
                namespaces.contains(&ns.as_str().unwrap()),
                "{ns} is runc's, not berth-runtime's"
            );
        }
        for key in ["ociVersionMin", "hooks", "mountOptions", "linux"] {
            assert!(!theirs[key].is_null() && !ours[key].is_null(), "{key}");
        }
    }
}

/// docs/cli/berth-runtime.md is the reference the command line gives (regenerate it with `cargo xtask docs`).
#[test]
fn the_cli_reference_is_current() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli/berth-runtime.md");
    if let Err(e) = berth_cli::docs::check_reference(std::path::Path::new(env!("CARGO_BIN_EXE_berth-runtime")), &doc) {
        panic!("{e}");
    }
}
