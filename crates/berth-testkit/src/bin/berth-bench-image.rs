//! Writes a benchmark image: LAYERS layers of MIB MiB of incompressible data each (gzip level 1), into a layout.
//!
//! Usage: berth-bench-image LAYOUT NAME LAYERS MIB

use std::io::Write;

use anyhow::{Context, Result};
use berth_layer::compress::LayerWriter;
use berth_spec::layout::Layout;
use berth_spec::media_type::Compression;
use berth_testkit::image::{TarBuilder, write_layers_image};
use berth_testkit::rng::Rng;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layout, name, layers, mib] = args.as_slice() else {
        anyhow::bail!("usage: berth-bench-image LAYOUT NAME LAYERS MIB");
    };
    let (layers, mib): (usize, usize) = (layers.parse().context("LAYERS")?, mib.parse().context("MIB")?);
    let layout = Layout::create(layout)?;
    let mut blobs = Vec::new();
    for i in 0..layers {
        let mut data = vec![0u8; mib << 20];
        Rng::new(0xbe27_0000 + i as u64).fill(&mut data);
        let tar = TarBuilder::new()
            .dir("data", 0o755)
            .file(&format!("data/blob-{i}"), 0o644, &data)
            .finish();
        let mut out = Vec::with_capacity(tar.len() + (tar.len() >> 6));
        let mut w = LayerWriter::new(&mut out, Compression::Gzip, Some(1), 0)?;
        w.write_all(&tar)?;
        let d = w.finish()?;
        blobs.push((out, d));
    }
    let config = serde_json::json!({"Cmd": ["/bin/true"]});
    let written = write_layers_image(&layout, name, &blobs, &config)?;
    println!("{}", written.manifest_digest);
    Ok(())
}
