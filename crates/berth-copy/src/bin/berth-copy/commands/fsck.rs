//! `berth-copy fsck`: every blob of a layout re-hashed; missing, corrupt and dangling content reported.

use std::path::PathBuf;

use anyhow::Result;

use super::{LayoutArgs, OutputFormat, open_layout};

pub(crate) fn fsck(store: &Option<PathBuf>, a: LayoutArgs) -> Result<()> {
    let layout = open_layout(store, a.layout.as_deref())?;
    let r = layout.fsck()?;
    if a.format == Some(OutputFormat::Json) {
        let problems: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        let dangling: Vec<String> = r.dangling.iter().map(|d| d.to_string()).collect();
        println!(
            "{}",
            serde_json::json!({"ok": r.is_ok(), "blobs_checked": r.blobs_checked, "bytes_checked": r.bytes_checked,
                "problems": problems, "dangling": dangling, "stale_temp_files": r.stale_temp_files})
        );
    } else {
        for p in &r.problems {
            println!("{p}");
        }
        eprintln!(
            "{}: {} blobs ({} bytes) checked, {} problem(s), {} dangling blob(s), {} stale temp file(s)",
            layout.root().display(),
            r.blobs_checked,
            r.bytes_checked,
            r.problems.len(),
            r.dangling.len(),
            r.stale_temp_files
        );
    }
    anyhow::ensure!(r.is_ok(), "the layout has problems");
    Ok(())
}
