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
