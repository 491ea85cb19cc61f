//! `berth-run run` through libcontainer, and the life of detached containers: ps, logs, kill, stop, rm, exec.

use crate::support::Env;

#[test]
fn smoke_run() {
    let env = Env::new();
    let image = env.busybox();
    let ran = env.run_berth(&[], image, &["sh", "-c", "echo hello; echo oops >&2; exit 3"]);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert_eq!(ran.stdout, "hello\n", "{ran:?}");
}

/// A container starts with every signal at its default action and none blocked, whatever berth-run inherited
/// (Rust ignores SIGPIPE; shells ignore SIGINT and SIGQUIT in background jobs).
#[test]
fn signals_start_at_their_defaults() {
    let env = Env::new();
    let image = env.busybox();
    let mut cmd = env.berth(&[
        "run",
        "--rm",
        image,
        "/bin/busybox",
        "grep",
        "-E",
        "^Sig(Ign|Blk)",
        "/proc/self/status",
    ]);
    // sh -c with '&' runs the child with SIGINT and SIGQUIT ignored, as a non-interactive shell does.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{:?} \"$@\" & wait $!", cmd.get_program()))
        .arg("sh")
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .unwrap();
    let _ = &mut cmd;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}
