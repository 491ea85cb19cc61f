//! `berth-copy images`: what a layout (by default the store) holds — one line per name, or JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_spec::layout::Layout;
use berth_spec::platform::Platform;
use clap::Args;

use super::OutputFormat;

#[derive(Args)]
pub(crate) struct ImagesArgs {
    /// oci:PATH, or nothing for the default store.
    pub(crate) layout: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, value_enum)]
    pub(crate) format: Option<OutputFormat>,
}

/// One named image of the layout.
#[derive(serde::Serialize)]
struct Row {
    name: String,
    digest: String,
    #[serde(rename = "mediaType")]
    media_type: String,
    /// The config's `created`, when the image (for this platform) has one.
    created: Option<String>,
    /// Config and layers, compressed, for this host's platform.
    size: Option<u64>,
}

pub(crate) fn images(store: &Option<PathBuf>, a: ImagesArgs) -> Result<()> {
    let path = match &a.layout {
        Some(l) => PathBuf::from(l.strip_prefix("oci:").unwrap_or(l)),
        None => match store {
            Some(s) => s.clone(),
            None => berth_spec::store::trusted_default_store_path()?,
        },
    };
    let layout = Layout::open(&path).with_context(|| format!("opening the layout {}", path.display()))?;
    let host = Platform::host();
    let mut rows = Vec::new();
    for (name, desc) in layout.refs()? {
        let mut row = Row {
            name,
            digest: desc.digest().to_string(),
            media_type: desc.media_type().to_string(),
            created: None,
            size: None,
        };
        if let Ok(img) = layout.load_image_from(desc, &host) {
            let manifest: serde_json::Value = serde_json::from_slice(img.manifest.bytes()).unwrap_or_default();
            let config: serde_json::Value = serde_json::from_slice(img.config.bytes()).unwrap_or_default();
            let layers: u64 = manifest["layers"]
                .as_array()
                .map(|l| l.iter().filter_map(|d| d["size"].as_u64()).sum())
                .unwrap_or(0);
            row.size = Some(layers + img.config.bytes().len() as u64);
            row.created = config["created"].as_str().map(str::to_owned);
        }
        rows.push(row);
    }
    rows.sort_by(|x, y| x.name.cmp(&y.name));
    if a.format == Some(OutputFormat::Json) {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<40} {:<19} {:<25} {:>10}", "NAME", "DIGEST", "CREATED", "SIZE");
    for r in rows {
        let digest = r.digest.strip_prefix("sha256:").unwrap_or(&r.digest);
        println!(
            "{:<40} {:<19} {:<25} {:>10}",
            r.name,
            &digest[..digest.len().min(12)],
            r.created.as_deref().unwrap_or("-"),
            r.size.map_or_else(|| "-".to_owned(), human)
        );
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}
