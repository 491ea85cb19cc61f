//! A thin command over berth-layer for benchmarks and black-box tests.
//!
//! Usage:
//!   berth-layer-tool create DIR OUT [gzip|zstd|none [LEVEL]] — prints `digest size diffID`
//!   berth-layer-tool apply LAYER DIR                    — prints `entries diffID`
//!
//! `create` honors `SOURCE_DATE_EPOCH` (seconds since the epoch), as a builder does.

use anyhow::{Context, Result, bail};
use berth_layer::apply::{ApplyOptions, apply_layer};
use berth_layer::create::{CreateOptions, create_from_dir};
use berth_spec::media_type::Compression;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["create", dir, out, rest @ ..] => {
            let compression = match rest.first().copied().unwrap_or("gzip") {
                "gzip" => Compression::Gzip,
                "zstd" => Compression::Zstd,
                "none" => Compression::None,
                other => bail!("unknown compression {other:?} (gzip, zstd, none)"),
            };
            let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
            let level = rest
                .get(1)
                .map(|l| l.parse())
                .transpose()
                .context("LEVEL must be a number")?;
            let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) if !v.is_empty() => Some(
                    v.trim()
                        .parse::<i64>()
                        .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
                ),
                _ => None,
            };
            let opts = CreateOptions {
                compression,
                level,
                source_date_epoch,
                ..Default::default()
            };
            let d = create_from_dir(
                std::path::Path::new(dir),
                std::io::BufWriter::with_capacity(1 << 20, file),
                &opts,
            )?;
            println!("{} {} {}", d.digest, d.size, d.diff_id);
        }
        ["apply", layer, dir] => {
            std::fs::create_dir_all(dir)?;
            let file = std::fs::File::open(layer).with_context(|| format!("opening {layer}"))?;
            let r = apply_layer(file, std::path::Path::new(dir), &ApplyOptions::default())?;
            println!("{} {}", r.entries, r.diff_id);
        }
        _ => bail!("usage: berth-layer-tool create DIR OUT [gzip|zstd|none [LEVEL]] | apply LAYER DIR"),
    }
    Ok(())
}
