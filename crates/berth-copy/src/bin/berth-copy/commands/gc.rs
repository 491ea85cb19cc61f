//! `berth-copy gc`: blobs of a layout no image refers to, deleted.

use std::path::PathBuf;

use anyhow::Result;

use super::{LayoutArgs, OutputFormat, open_layout};

pub(crate) fn gc(store: &Option<PathBuf>, a: LayoutArgs) -> Result<()> {
    let layout = open_layout(store, a.layout.as_deref())?;
    let r = layout.gc()?;
    if a.format == Some(OutputFormat::Json) {
        let removed: Vec<String> = r.removed.iter().map(ToString::to_string).collect();
        println!(
            "{}",
            serde_json::json!({"removed": removed, "bytes_freed": r.bytes_freed,
                "temp_files_removed": r.temp_files_removed})
        );
    } else {
        eprintln!(
            "removed {} blob(s), {} bytes, {} stale temp file(s)",
            r.removed.len(),
            r.bytes_freed,
            r.temp_files_removed
        );
    }
    Ok(())
}
