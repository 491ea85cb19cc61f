//! One module per verb: its options (clap) and a short function over the library.

pub(crate) mod build;
pub(crate) mod prune;

use std::path::PathBuf;

use crate::Cli;

/// The builder's working directory: `--cache`, else Berth's cache directory's `build/`.
pub(crate) fn work_dir(cli: &Cli) -> PathBuf {
    cli.cache
        .clone()
        .unwrap_or_else(|| berth_spec::dirs::default_path(berth_spec::dirs::Place::Cache).join("build"))
}
