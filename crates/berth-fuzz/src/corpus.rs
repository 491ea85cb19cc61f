//! Seeding libFuzzer's corpus directory from a target's [`seeds`](crate::Target::seeds).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Writes `target`'s seeds into the corpus directory named on the command line (libFuzzer's first argument that
/// is not a `-flag`). Called from each libFuzzer binary's `init`, which runs before libFuzzer reads the corpus,
/// so every run starts from the current seeds plus whatever earlier runs found.
pub fn seed_from_args(target: &str) {
    let Some(dir) = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
    else {
        return;
    };
    let t = crate::target(target).unwrap_or_else(|| panic!("no fuzz target named {target:?}"));
    if let Err(e) = write_seeds(&dir, &(t.seeds)()) {
        eprintln!("berth-fuzz: could not seed {}: {e}", dir.display());
    }
}

/// Writes `seeds` into `dir` as `seed-NNN`, replacing earlier versions of them.
pub fn write_seeds(dir: &Path, seeds: &[Vec<u8>]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:03}")), seed)?;
    }
    Ok(())
}
