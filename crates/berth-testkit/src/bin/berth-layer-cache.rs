//! Extracts a layer file into a layer cache and prints the cached path.
//! Used by the cache-concurrency test, which runs several of these at once.
//!
//! Usage: berth-layer-cache CACHE_DIR LAYER_FILE DIFF_ID

use anyhow::{Context, Result};
use berth_layer::apply::{ApplyOptions, LayerCache};
use berth_spec::Digest;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cache, layer, diff_id] = args.as_slice() else {
        anyhow::bail!("usage: berth-layer-cache CACHE_DIR LAYER_FILE DIFF_ID");
    };
    let cache = LayerCache::new(cache).context("opening the cache")?;
    let diff_id = Digest::parse(diff_id)?;
    let path = cache.ensure(&diff_id, || std::fs::File::open(layer), &ApplyOptions::default())?;
    println!("{}", path.display());
    Ok(())
}
