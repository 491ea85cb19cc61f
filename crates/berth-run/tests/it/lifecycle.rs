//! `berth-run run` through libcontainer, and the life of detached containers: ps, logs, kill, stop, rm, exec.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::Env;

/// A shell loop that prints `ready`, then waits for signals; SIGTERM makes it print `term` and exit 3.
/// Says "ready" once its TERM trap is set (a container's first process ignores a TERM it has no handler for, so a
/// signal sent between "ready" and the trap would be lost).
const TRAP_TERM: &str = "trap 'echo term; exit 3' TERM; echo ready; echo to-err >&2; while :; do sleep 0.05; done";

fn ps_json(env: &Env) -> Vec<Value> {
    serde_json::from_str(&env.berth_ok(&["ps", "-a", "--format", "json"])).unwrap()
}

fn find<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["Names"][0] == name)
}

/// Polls until the container's log holds `text`.
fn wait_for_log(env: &Env, name: &str, text: &str) {
    let start = Instant::now();
    loop {
        let ran = env.berth_out(&["logs", name]);
        if ran.stdout.contains(text) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no {text:?} in the log of {name}: {ran:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mounted_under(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_string_lossy();
    info.lines().any(|l| l.contains(dir.as_ref()))
}

#[test]
fn foreground_exit_codes_and_streams() {
    let env = Env::new();
    let image = env.busybox();
    let ran = env.run_berth(&[], image, &["sh", "-c", "echo hello; echo oops >&2; exit 3"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (3, "hello\n"), "{ran:?}");
    assert!(ran.stderr.contains("oops\n"), "{ran:?}");
    // A command that is not in the image: 127, as podman.
    let ran = env.run_berth(&[], image, &["no-such-command"]);
    assert_eq!(ran.code, 127, "{ran:?}");
    assert!(ran.stderr.contains("no-such-command"), "{ran:?}");
    // A usage error: 125, as podman (not clap's 2, which a container's own exit code could be).
    let ran = env.berth_out(&["run", "--no-such-option", image]);
    assert!(ran.code == 125 && ran.stderr.contains("--no-such-option"), "{ran:?}");
    assert_eq!(env.berth_out(&["--help"]).code, 0);
    // --rm left nothing.
    assert!(ps_json(&env).is_empty());
    let state = env.path("state");
    assert!(!mounted_under(&state), "a --rm container left a mount");
    assert_eq!(std::fs::read_dir(state.join("containers")).unwrap().count(), 0);
}

/// A `--rm` container's directory leaves the state as the command returns (moved to the trash), and is deleted
/// in the background soon after; `gc` deletes whatever a background deletion left behind.
#[test]
fn removed_containers_are_deleted_in_the_background_and_gc_sweeps_the_rest() {
    let env = Env::new();
    let state = env.path("state");
    let ran = env.run_berth(
        &[],
        env.busybox(),
        &["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null"],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(std::fs::read_dir(state.join("containers")).unwrap().count(), 0);
    let trash = state.join("trash");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&trash).is_ok_and(|mut d| d.next().is_some()) {
        assert!(Instant::now() < deadline, "the trash was not emptied");
        std::thread::sleep(Duration::from_millis(20));
    }
    // What a deletion cut short leaves: gc finishes it, directories that deny access included.
    let left = trash.join("0123abcd");
    std::fs::create_dir_all(left.join("upper/locked/deep")).unwrap();
    std::fs::write(left.join("upper/locked/deep/file"), b"x").unwrap();
    let locked = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o000);
    std::fs::set_permissions(left.join("upper/locked"), locked).unwrap();
    env.berth_ok(&["gc"]);
    assert!(!left.exists(), "gc swept the trash");
}

#[test]
fn stdin_is_passed_only_with_interactive() {
    let env = Env::new();
    let image = env.busybox();
    for (flag, expected) in [(Some("-i"), "typed\n"), (None, "")] {
        let mut args = vec!["run", "--rm"];
        args.extend(flag);
        args.extend([image, "cat"]);
        let mut child = env
            .berth(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"typed\n").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{args:?}");
    }
}

#[test]
fn signals_are_forwarded_in_the_foreground() {
    let env = Env::new();
    let image = env.busybox();
    let mut child = env
        .berth(&["run", "--rm", image, "sh", "-c", TRAP_TERM])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "term");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
}

#[test]
fn a_terminal_with_tty() {
    let env = Env::new();
    let image = env.busybox();
    let cmd = env.berth(&[
        "run",
        "--rm",
        "-t",
        image,
        "sh",
        "-c",
        "tty; stty size; echo T=$TERM; exit 6",
    ]);
    let line = shell_line(&cmd);
    // script(1) gives berth-run a terminal of its own (40 rows, 100 columns); -e returns the child's exit code.
    let out = std::process::Command::new("script")
        .args(["-qe", "-c", &format!("stty rows 40 cols 100; {line}"), "/dev/null"])
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(!text.contains("not a tty"), "{text}");
    assert!(text.contains("/dev/"), "{text}");
    assert!(text.contains("40 100"), "the window size is passed on: {text}");
    assert!(
        text.contains("T=xterm"),
        "a terminal gets TERM, as under Docker: {text}"
    );
}

/// `cmd` as one quoted shell line (its environment is not part of it).
fn shell_line(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `berth` as a line of `sh -c SCRIPT`, where SCRIPT is `format` with `{}` replaced by that line; the environment
/// comes along.
fn through_shell(berth: &std::process::Command, format: &str) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &format.replace("{}", &shell_line(berth))])
        .envs(berth.get_envs().filter_map(|(k, v)| Some((k, v?))));
    sh
}

/// `-it` with input that is not a terminal: its end reaches the container's terminal as an end of input, so
/// programs reading it finish (instead of hanging until killed).
#[test]
fn piped_input_to_a_terminal_ends() {
    let env = Env::new();
    let image = env.busybox();
    let ran = env.berth_out(&["run", "--rm", "-i", "-t", image, "cat"]);
    assert_eq!(ran.code, 0, "empty input: {ran:?}");
    let berth = env.berth(&["run", "--rm", "-i", "-t", image, "sh", "-c", "cat; echo done"]);
    let mut sh = through_shell(&berth, "printf 'one\\ntwo' | {}");
    let ran = crate::support::capture(&mut sh, || panic!("piped input to -it never ended"));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.contains("one") && ran.stdout.contains("two") && ran.stdout.contains("done"),
        "{ran:?}"
    );
    // An interactive shell (its line editor keeps the terminal raw) reading commands from the pipe ends too.
    let berth = env.berth(&["run", "--rm", "-i", "-t", image, "sh"]);
    let mut sh = through_shell(&berth, "printf 'echo from-the-pipe\\n' | {}");
    let ran = crate::support::capture(&mut sh, || panic!("an interactive shell fed by a pipe never ended"));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("from-the-pipe"), "{ran:?}");
}

/// `run -d` in a pipeline returns with the pipeline: the monitor keeps none of the caller's descriptors open (here
/// a shell's `7>&1`, which would hold `cat` until the container ended).
#[test]
fn a_detached_container_keeps_no_inherited_descriptor() {
    let env = Env::new();
    let berth = env.berth(&["run", "-d", "--name", "fds", env.busybox(), "sleep", "1000"]);
    let mut sh = through_shell(&berth, "{} 7>&1 | cat");
    let ran = crate::support::capture(&mut sh, || panic!("the pipeline waited for the container"));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout.trim().len(), 64, "the id: {ran:?}");
    env.berth_ok(&["rm", "-f", "fds"]);
}

#[test]
fn detached_lifecycle_ps_logs_exec_stop_rm() {
    let env = Env::new();
    let image = env.busybox();
    let id = env.berth_ok(&["run", "-d", "--name", "web", image, "sh", "-c", TRAP_TERM]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d prints the id: {id}");
    wait_for_log(&env, "web", "ready");

    let list = ps_json(&env);
    let web = find(&list, "web").expect("ps lists it");
    assert_eq!(web["Id"], id);
    assert_eq!(web["State"], "running");
    assert_eq!(web["ExitCode"], 0, "0 while running, as podman");
    let table = env.berth_ok(&["ps"]);
    assert!(table.lines().nth(1).unwrap().starts_with(&id[..12]), "{table}");
    assert!(table.contains("Up "), "{table}");
    assert_eq!(env.berth_ok(&["ps", "-q"]).trim(), &id[..12]);

    // The default hostname is the id's first 12 characters.
    assert_eq!(
        env.berth_ok(&["exec", "web", "/bin/busybox", "hostname"]).trim(),
        &id[..12]
    );
    let ran = env.berth_out(&["exec", &id[..8], "sh", "-c", "echo $((20+22)); exit 4"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (4, "42\n"), "{ran:?}");
    assert_eq!(env.berth_ok(&["exec", "-u", "nobody", "web", "id", "-u"]), "65534\n");
    // An exec'd process gets the container's seccomp filter (as under runc): mode 2, and what the default profile
    // denies (a user namespace without CAP_SYS_ADMIN) is denied.
    let status = env.berth_ok(&["exec", "web", "/bin/busybox", "grep", "^Seccomp:", "/proc/self/status"]);
    assert_eq!(status.split_whitespace().nth(1), Some("2"), "{status}");
    let ran = env.berth_out(&["exec", "web", "/bin/busybox", "unshare", "-U", "true"]);
    assert_ne!(ran.code, 0, "unshare -U must be denied in exec: {ran:?}");
    let ran = env.berth_out(&["exec", "-w", "/nonexistent", "web", "pwd"]);
    assert!(
        ran.code == 125 && ran.stderr.contains("-w /nonexistent: no such directory"),
        "{ran:?}"
    );
    // HOME follows the exec's user, as it would for a container started as that user.
    let home = |user: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(user);
        args.extend_from_slice(&["web", "sh", "-c", "echo $HOME"]);
        env.berth_ok(&args)
    };
    assert_eq!(home(&[]), "/root\n");
    assert_eq!(home(&["-u", "nobody"]), "/nonexistent\n");
    assert_eq!(home(&["-u", "4242"]), "/\n");
    assert_eq!(home(&["-u", "4242", "-e", "HOME=/mine"]), "/mine\n");
    assert_eq!(
        env.berth_ok(&["exec", "-u", "4242", "web", "sh", "-c", "umask"]),
        "0022\n",
        "exec -u keeps the container's umask"
    );
    assert_eq!(
        env.berth_ok(&["exec", "-e", "X=1", "-w", "/tmp", "web", "sh", "-c", "echo $X; pwd"]),
        "1\n/tmp\n"
    );
    let ran = env.berth_out(&["exec", "web", "no-such-command"]);
    assert_eq!(ran.code, 127, "{ran:?}");
    assert!(ran.stderr.contains("no-such-command"), "{ran:?}");

    let logs = env.berth_out(&["logs", "web"]);
    assert_eq!(logs.stdout, "ready\n", "{logs:?}");
    assert_eq!(logs.stderr, "to-err\n", "each stream to its own: {logs:?}");
    let stamped = env.berth_ok(&["logs", "-t", "web"]);
    assert!(stamped.starts_with("20") && stamped.contains("Z ready"), "{stamped}");

    let ran = env.berth_out(&["rm", "web"]);
    assert_ne!(ran.code, 0, "rm of a running container needs -f: {ran:?}");
    assert!(ran.stderr.contains("-f"), "{ran:?}");

    assert_eq!(env.berth_ok(&["stop", "web"]), "web\n");
    let list = ps_json(&env);
    let web = find(&list, "web").unwrap();
    assert_eq!(
        (web["State"].as_str(), web["ExitCode"].as_i64()),
        (Some("exited"), Some(3)),
        "{web}"
    );
    assert_eq!(env.berth_ok(&["logs", "web"]), "ready\nterm\n");
    assert!(
        env.berth_ok(&["ps"]).lines().count() == 1,
        "ps without -a shows running containers only"
    );
    assert!(env.berth_ok(&["ps", "-a"]).contains("Exited (3)"));
    let ran = env.berth_out(&["exec", "web", "true"]);
    assert_ne!(ran.code, 0, "exec needs a running container");

    let dir = env.path("state").join("containers").join(id);
    assert!(dir.exists());
    assert!(
        !mounted_under(&dir),
        "the root filesystem of an exited container is unmounted"
    );
    assert_eq!(env.berth_ok(&["rm", "web"]), "web\n");
    assert!(!dir.exists());
    for controller in ["memory", "pids", "cpu", "freezer", "devices", "unified"] {
        let cgroup = std::path::Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("berth")
            .join(id);
        assert!(!cgroup.exists(), "rm leaves no cgroup behind: {}", cgroup.display());
    }
    assert!(ps_json(&env).is_empty());
    let ran = env.berth_out(&["rm", "web"]);
    assert!(ran.code != 0 && ran.stderr.contains("no such container"), "{ran:?}");
}

#[test]
fn kill_stop_timeout_and_forced_removal() {
    let env = Env::new();
    let image = env.busybox();
    // sh as PID 1 without a trap ignores SIGTERM: stop falls back to SIGKILL after its timeout.
    env.berth_ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        image,
        "sh",
        "-c",
        "echo ready; while :; do sleep 0.05; done",
    ]);
    wait_for_log(&env, "stubborn", "ready");
    let start = Instant::now();
    assert_eq!(env.berth_ok(&["stop", "-t", "1", "stubborn"]), "stubborn\n");
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(find(&ps_json(&env), "stubborn").unwrap()["ExitCode"], 137);

    env.berth_ok(&[
        "run",
        "-d",
        "--name",
        "k",
        image,
        "sh",
        "-c",
        "trap 'exit 10' USR1; echo ready; while :; do sleep 0.05; done",
    ]);
    wait_for_log(&env, "k", "ready");
    assert_eq!(env.berth_ok(&["kill", "-s", "USR1", "k"]), "k\n");
    let start = Instant::now();
    while find(&ps_json(&env), "k").unwrap()["State"] == "running" {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(find(&ps_json(&env), "k").unwrap()["ExitCode"], 10);
    let ran = env.berth_out(&["kill", "k"]);
    assert!(ran.code != 0 && ran.stderr.contains("not running"), "{ran:?}");
    let ran = env.berth_out(&["kill", "-s", "NOPE", "k"]);
    assert!(ran.code != 0 && ran.stderr.contains("NOPE"), "{ran:?}");

    env.berth_ok(&["run", "-d", "--name", "busy", image, "sleep", "1000"]);
    assert_eq!(
        env.berth_ok(&["rm", "-f", "busy", "k", "stubborn"]),
        "busy\nk\nstubborn\n"
    );
    assert!(ps_json(&env).is_empty());
    assert!(!mounted_under(&env.path("state")));
}

#[test]
fn names_are_unique_and_rm_frees_them() {
    let env = Env::new();
    let image = env.busybox();
    let ran = env.berth_out(&["run", "--name", "one", image, "true"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let ran = env.berth_out(&["run", "--name", "one", image, "true"]);
    assert!(ran.code == 125 && ran.stderr.contains("in use"), "{ran:?}");
    let ran = env.berth_out(&["run", "--name", "bad/name", image, "true"]);
    assert!(ran.code == 125 && ran.stderr.contains("--name"), "{ran:?}");
    // Without --rm an exited foreground container stays, with its exit code.
    assert_eq!(find(&ps_json(&env), "one").unwrap()["ExitCode"], 0);
    env.berth_ok(&["rm", "one"]);
    assert_eq!(env.berth_out(&["run", "--rm", "--name", "one", image, "true"]).code, 0);
}

#[test]
fn logs_follow_until_the_container_exits() {
    let env = Env::new();
    let image = env.busybox();
    env.berth_ok(&[
        "run",
        "-d",
        "--name",
        "f",
        image,
        "sh",
        "-c",
        "echo a; sleep 1; printf b; echo c >&2; exit 0",
    ]);
    let ran = env.berth_out(&["logs", "-f", "f"]);
    assert_eq!(
        (ran.code, ran.stdout.as_str(), ran.stderr.as_str()),
        (0, "a\nb", "c\n"),
        "{ran:?}"
    );
    assert_eq!(env.berth_ok(&["logs", "--tail", "1", "f"]), "b");
    // A detached container with a terminal logs what the terminal shows.
    env.berth_ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "t",
        image,
        "sh",
        "-c",
        "tty >/dev/null && echo on-a-tty",
    ]);
    let ran = env.berth_out(&["logs", "-f", "t"]);
    assert_eq!(ran.stdout, "on-a-tty\r\n", "{ran:?}");
}

#[test]
fn a_killed_monitor_leaves_a_container_that_ps_and_rm_handle() {
    let env = Env::new();
    let image = env.busybox();
    env.berth_ok(&["run", "-d", "--name", "m", image, "sleep", "1000"]);
    let record: Value = {
        let list = ps_json(&env);
        find(&list, "m").unwrap().clone()
    };
    let id = record["Id"].as_str().unwrap();
    let file = env.path("state").join("containers").join(id).join("container.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let monitor = saved["monitor_pid"].as_i64().unwrap() as i32;
    let pid = saved["pid"].as_i64().unwrap() as i32;
    for p in [monitor, pid] {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(p).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
    }
    let start = Instant::now();
    while find(&ps_json(&env), "m").unwrap()["State"] == "running" {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(env.berth_ok(&["rm", "m"]), "m\n");
    assert!(!mounted_under(&env.path("state")));
    assert!(!env.path("state").join("containers").join(id).exists());
}

/// A container starts with every signal at its default action and none blocked, whatever berth-run inherited
/// (Rust ignores SIGPIPE; shells ignore SIGINT and SIGQUIT in background jobs).
#[test]
fn signals_start_at_their_defaults() {
    let env = Env::new();
    let image = env.busybox();
    let cmd = env.berth(&[
        "run",
        "--rm",
        image,
        "/bin/busybox",
        "grep",
        "-E",
        "^Sig(Ign|Blk)",
        "/proc/self/status",
    ]);
    // A background job of a non-interactive shell runs with SIGINT and SIGQUIT ignored.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("\"$@\" & wait $!")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

/// `stop` of a `--rm` container (which removes itself as it exits), and `rm` right after `stop`, both succeed and
/// leave nothing behind: the monitor cleans up before it records the exit.
#[test]
fn stop_then_rm_leaves_nothing_and_rm_containers_stop_cleanly() {
    let env = Env::new();
    let image = env.busybox();
    let containers = env.path("state").join("containers");
    for round in 0..3 {
        let name = format!("r{round}");
        env.berth_ok(&["run", "-d", "--rm", "--name", &name, image, "sleep", "1000"]);
        assert_eq!(env.berth_ok(&["stop", "-t", "0", &name]), format!("{name}\n"));
        let name = format!("s{round}");
        env.berth_ok(&["run", "-d", "--name", &name, image, "sleep", "1000"]);
        assert_eq!(env.berth_ok(&["stop", "-t", "0", &name]), format!("{name}\n"));
        assert_eq!(env.berth_ok(&["rm", &name]), format!("{name}\n"));
    }
    assert!(ps_json(&env).is_empty());
    assert_eq!(std::fs::read_dir(&containers).unwrap().count(), 0);
    assert!(!mounted_under(&env.path("state")));
}

#[test]
fn run_bundle_refuses_options_it_cannot_apply() {
    let env = Env::new();
    let image = env.busybox();
    let bundle = env.bundle_ok(&[], image, &["true"]);
    let ran = env.berth_out(&["run", "-e", "A=1", "--bundle", bundle.to_str().unwrap()]);
    assert!(ran.code == 125 && ran.stderr.contains("config.json"), "{ran:?}");
    assert_eq!(
        env.berth_out(&["run", "--rm", "--bundle", bundle.to_str().unwrap()])
            .code,
        0
    );
}

#[test]
fn wait_prints_exit_codes_and_inspect_describes_containers() {
    let env = Env::new();
    let image = env.busybox();
    env.berth_ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "-e",
        "K=v",
        "-w",
        "/tmp",
        image,
        "sh",
        "-c",
        "sleep 0.3; exit 12",
    ]);
    let inspected: Value = serde_json::from_str(&env.berth_ok(&["inspect", "w"])).unwrap();
    let c = &inspected[0];
    assert_eq!(c["Name"], "w");
    assert_eq!(c["State"]["Status"], "running", "{c}");
    assert!(c["State"]["Pid"].as_i64().unwrap() > 0);
    assert_eq!(c["Config"]["WorkingDir"], "/tmp");
    assert!(
        c["Config"]["Env"].as_array().unwrap().contains(&Value::from("K=v")),
        "{c}"
    );
    assert_eq!(c["Config"]["StopSignal"], "SIGTERM");
    assert!(
        c["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Destination"] == "/etc/hosts"),
        "{c}"
    );
    assert_eq!(env.berth_ok(&["wait", "w"]), "12\n");
    let inspected: Value = serde_json::from_str(&env.berth_ok(&["inspect", "w"])).unwrap();
    assert_eq!(inspected[0]["State"]["ExitCode"], 12);
    assert_eq!(inspected[0]["State"]["Running"], false);
    // Waiting on an exited container returns at once.
    assert_eq!(env.berth_ok(&["wait", "w"]), "12\n");
    let ran = env.berth_out(&["inspect", "nope"]);
    assert!(ran.code != 0 && ran.stderr.contains("nope"), "{ran:?}");
    // An image's StopSignal that is no signal: a warning, and SIGTERM.
    let bogus = env.image(
        "bogus-stop:1",
        json!({"StopSignal": "BOGUS", "Cmd": ["sleep", "100"]}),
        vec![],
    );
    let ran = env.berth_out(&["run", "-d", "--name", "bogus", &bogus]);
    assert!(ran.code == 0 && ran.stderr.contains("StopSignal \"BOGUS\""), "{ran:?}");
    let inspected: Value = serde_json::from_str(&env.berth_ok(&["inspect", "bogus"])).unwrap();
    assert_eq!(inspected[0]["Config"]["StopSignal"], "SIGTERM");
    env.berth_ok(&["rm", "-f", "bogus"]);
    // A container removed as it ends (--rm) still gives its exit code to a wait that was waiting for it.
    let id = env.berth_ok(&["run", "-d", "--rm", image, "sh", "-c", "sleep 2; exit 4"]);
    assert_eq!(env.berth_ok(&["wait", id.trim()]), "4\n");
    assert!(
        env.berth_ok(&["ps", "-a", "-q"]).lines().all(|l| !id.starts_with(l)),
        "it was removed"
    );
}

/// `exec` checks that the command can run, but not under a mount: a script the container wrote into a bind-mounted
/// directory runs.
#[test]
fn exec_runs_commands_under_mounts() {
    let env = Env::new();
    let image = env.busybox();
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/w", shared.display());
    env.berth_ok(&[
        "run",
        "-d",
        "--name",
        "m",
        "-v",
        &volume,
        image,
        "sh",
        "-c",
        "printf '#!/bin/sh\\necho from-mount\\n' > /w/s; chmod +x /w/s; echo ready; sleep 1000",
    ]);
    wait_for_log(&env, "m", "ready");
    assert_eq!(env.berth_ok(&["exec", "m", "/w/s"]), "from-mount\n");
    let ran = env.berth_out(&["exec", "m", "/w/missing"]);
    assert_ne!(ran.code, 0, "{ran:?}");
}
