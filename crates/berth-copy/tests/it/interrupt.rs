//! Interruption (HOSTILE-INPUTS.md item 27): `berth-copy` killed with SIGKILL at random points of a copy leaves a
//! destination that verifies and names nothing incomplete, and a rerun finishes the job.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_spec::layout::Layout;
use berth_testkit::image::write_image;
use berth_testkit::registry::TestRegistry;
use berth_testkit::rng::Rng;

use crate::{Env, layout_digest, random_image, registry_digest};

/// Runs `cmd` and SIGKILLs it after `delay` (if it is still running); true if it was killed.
fn run_and_kill(mut cmd: std::process::Command, delay: Duration) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Child::kill sends SIGKILL: no destructor, no cleanup handler runs.
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// After an interruption: either no layout yet, or one that verifies and whose names resolve to complete images.
fn assert_consistent(env: &Env, dir: &Path, context: &str) {
    if !dir.join("oci-layout").exists() {
        return;
    }
    let out = env.run(&["fsck", &format!("oci:{}", dir.display())]);
    assert!(
        out.status.success(),
        "{context}: fsck failed:\n{}{}",
        crate::text(&out.stdout),
        crate::text(&out.stderr)
    );
    let layout = Layout::open(dir).unwrap();
    for (name, _) in layout.refs().unwrap() {
        let image = layout
            .load_image(Some(&name), &berth_spec::platform::Platform::host())
            .unwrap();
        layout
            .verify_diff_ids(&image)
            .unwrap_or_else(|e| panic!("{context}: {name}: {e}"));
    }
}

#[test]
fn sigkill_mid_copy_leaves_a_valid_layout_and_a_rerun_finishes() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let layout = Layout::create(env.path("src")).unwrap();
    // ~30 MB in 6 layers of incompressible data.
    let img = write_image(
        &layout,
        Some("big:1"),
        &random_image(81, 6, 5 << 20, &berth_spec::platform::Platform::host().architecture),
    )
    .unwrap();
    let want = img.manifest_digest.to_string();
    let mut rng = Rng::from_env_or_clock("sigkill_mid_copy");

    // Pushes to new repositories killed at random points (a private $HOME per round, so no blob-location cache
    // turns them into mounts), each then finished by a rerun.
    let started = Instant::now();
    env.ok(&[
        "copy",
        "-q",
        &env.oci("src", Some("big:1")),
        &format!("docker://{}/interrupt/calibrate:1", reg.host()),
    ]);
    let push_time = started.elapsed().as_millis() as u64;
    for round in 0..3 {
        let remote = format!("docker://{}/interrupt/push{round}:1", reg.host());
        let home = env.path(&format!("home-push{round}"));
        let delay = Duration::from_millis(rng.range(0, push_time.max(20)));
        let mut cmd = env.cmd(&["copy", "-q", &env.oci("src", Some("big:1")), &remote]);
        cmd.env("HOME", &home);
        let killed = run_and_kill(cmd, delay);
        eprintln!("push round {round}: killed after {delay:?}: {killed}");
        let out = env
            .cmd(&["copy", "-q", &env.oci("src", Some("big:1")), &remote])
            .env("HOME", &home)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "push round {round}: the rerun failed: {}",
            crate::text(&out.stderr)
        );
        assert_eq!(
            registry_digest(&reg.host(), &format!("interrupt/push{round}"), "1"),
            want
        );
    }

    // Pulls killed at random points, two per destination; each leaves a consistent layout, and a rerun finishes.
    let remote = format!("docker://{}/interrupt/push0:1", reg.host());
    let started = Instant::now();
    env.ok(&["copy", "-q", &remote, &env.oci("calibrate", None)]);
    let pull_time = started.elapsed().as_millis() as u64;
    let mut kills = 0;
    for dest in 0..4 {
        let rel = format!("dst{dest}");
        for attempt in 0..2 {
            let delay = Duration::from_millis(rng.range(0, pull_time.max(20)));
            let killed = run_and_kill(env.cmd(&["copy", "-q", &remote, &env.oci(&rel, Some("big"))]), delay);
            kills += usize::from(killed);
            let context = format!("{rel}, attempt {attempt}, killed after {delay:?}: {killed}");
            eprintln!("{context}");
            assert_consistent(&env, &env.path(&rel), &context);
        }
        env.ok(&["copy", "-q", &remote, &env.oci(&rel, Some("big"))]);
        assert_eq!(layout_digest(&env.path(&rel), Some("big")), want);
        assert_consistent(&env, &env.path(&rel), &format!("{rel} after the rerun"));
    }
    eprintln!("{kills} of 8 pulls killed mid-copy (a full pull takes {pull_time} ms)");
    // Killed writers leave temp files behind at worst: gc removes them, and the image is untouched.
    env.ok(&["gc", &env.oci("dst0", None)]);
    assert_consistent(&env, &env.path("dst0"), "after gc");
    assert_eq!(layout_digest(&env.path("dst0"), Some("big")), want);
}
