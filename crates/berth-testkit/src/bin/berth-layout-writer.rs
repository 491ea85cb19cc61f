//! Writes test images into a layout in a loop, printing each name once it is committed.
//! Used by the concurrency and crash-safety tests, which run it as separate processes (and SIGKILL it).
//!
//! Usage: berth-layout-writer LAYOUT PREFIX COUNT LAYER_BYTES   (COUNT 0 = until killed)

use std::io::Write;

use anyhow::{Context, Result};
use berth_spec::layout::Layout;
use berth_testkit::image::{ImageSpec, TarBuilder, write_image};
use berth_testkit::rng::Rng;
use serde_json::json;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layout, prefix, count, size] = args.as_slice() else {
        anyhow::bail!("usage: berth-layout-writer LAYOUT PREFIX COUNT LAYER_BYTES");
    };
    let count: u64 = count.parse().context("COUNT")?;
    let size: usize = size.parse().context("LAYER_BYTES")?;
    let layout = Layout::create(layout)?;
    let mut i = 0u64;
    while count == 0 || i < count {
        let mut rng = Rng::new(
            prefix
                .bytes()
                .fold(i + 1, |a, b| a.wrapping_mul(31).wrapping_add(b as u64)),
        );
        let mut data = vec![0u8; size];
        rng.fill(&mut data);
        let tar = TarBuilder::new()
            .dir("data", 0o755)
            .file(&format!("data/{prefix}-{i}"), 0o644, &data)
            .finish();
        let spec = ImageSpec {
            layers: vec![tar],
            config: json!({"Cmd": ["/bin/true"], "Labels": {"writer": prefix, "n": i.to_string()}}),
            architecture: berth_spec::platform::Platform::host().architecture,
        };
        let name = format!("{prefix}-{i}");
        write_image(&layout, Some(&name), &spec)?;
        println!("{name}");
        std::io::stdout().flush()?;
        i += 1;
    }
    Ok(())
}
