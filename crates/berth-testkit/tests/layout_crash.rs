//! A writer SIGKILLed at random points leaves a layout that fsck passes and skopeo and umoci read.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use berth_testkit::rng::Rng;
use berth_testkit::tools;

#[test]
fn sigkill_at_random_points_leaves_a_valid_layout() {
    let mut rng = Rng::from_env_or_clock("sigkill_at_random_points_leaves_a_valid_layout");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout");
    Layout::create(&path).unwrap();
    let mut committed = Vec::new();
    for round in 0..15 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth-layout-writer"))
            .arg(&path)
            .arg(format!("r{round}"))
            .arg("0")
            .arg(rng.range(4096, 3 << 20).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader =
            std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(rng.range(1, 400)));
        // SIGKILL: no destructor, no cleanup.
        child.kill().unwrap();
        child.wait().unwrap();
        committed.extend(reader.join().unwrap());

        let layout = Layout::open(&path).unwrap_or_else(|e| panic!("round {round}: layout unreadable: {e}"));
        let report = layout.fsck().unwrap();
        assert!(report.is_ok(), "round {round}: {:?}", report.problems);
        for name in &committed {
            layout
                .load_image(Some(name), &Platform::host())
                .unwrap_or_else(|e| panic!("round {round}: {name}: {e}"));
        }
    }
    assert!(!committed.is_empty(), "at least one image was committed before a kill");
    let layout = Layout::open(&path).unwrap();
    // Temp files of the killed writers are recognized as stale and removed; gc then leaves a clean layout.
    layout.clean_temp().unwrap();
    layout.gc().unwrap();
    let report = layout.fsck().unwrap();
    assert!(
        report.is_ok() && report.dangling.is_empty() && report.stale_temp_files == 0,
        "{report:?}"
    );

    // Peers read what survived.
    let layout_arg = path.to_str().unwrap();
    for name in committed.iter().rev().take(3) {
        let out = tools::stdout(
            tools::skopeo()
                .unwrap()
                .args(["inspect", &format!("oci:{layout_arg}:{name}")]),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let expected = layout.resolve(Some(name)).unwrap();
        assert_eq!(v["Digest"].as_str().unwrap(), expected.digest().to_string());
    }
    let last = committed.last().unwrap();
    let bundle = dir.path().join("bundle");
    tools::run(
        tools::umoci()
            .unwrap()
            .args(["unpack", "--image", &format!("{layout_arg}:{last}")])
            .arg(&bundle),
    )
    .unwrap();
    assert!(bundle.join("rootfs/data").join(last).is_file());
}
