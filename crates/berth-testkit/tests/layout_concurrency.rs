//! Eight processes add different images to one layout at once: no index entry is lost.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use berth_spec::layout::Layout;
use berth_spec::platform::Platform;

const WRITERS: usize = 8;
const IMAGES_EACH: usize = 20;

#[test]
fn eight_writers_lose_no_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout");
    Layout::create(&path).unwrap();
    let children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_berth-layout-writer"))
                .arg(&path)
                .arg(format!("w{w}"))
                .arg(IMAGES_EACH.to_string())
                .arg("65536")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut printed = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.extend(String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned));
    }
    assert_eq!(printed.len(), WRITERS * IMAGES_EACH);
    let layout = Layout::open(&path).unwrap();
    let names: BTreeSet<String> = layout.refs().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, printed, "every committed image is named in index.json");
    for name in &names {
        let image = layout.load_image(Some(name), &Platform::host()).unwrap();
        layout.verify_diff_ids(&image).unwrap();
    }
    let report = layout.fsck().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.dangling.is_empty(), "{:?}", report.dangling);
    assert_eq!(report.stale_temp_files, 0);
}
