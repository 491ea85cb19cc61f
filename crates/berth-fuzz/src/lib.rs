//! berth-fuzz: fuzz targets for the parts of Berth that read what an attacker writes — layer tars, image
//! references, digests, manifests/indexes/configs, and registry authentication challenges.
//!
//! Each target is a plain function over bytes ([`Target::run`]) that panics when its oracle is violated: a
//! panic in the code under test, an invariant that does not hold, a write outside the temporary root, too much
//! time or memory. Each also has seed inputs ([`Target::seeds`]): real, well-formed inputs and the hostile ones
//! of `HOSTILE-INPUTS.md`.
//!
//! ```
//! for target in berth_fuzz::TARGETS {
//!     if target.name != "layer" {
//!         for seed in (target.seeds)() {
//!             (target.run)(&seed);
//!         }
//!     }
//! }
//! ```
//!
//! # How the targets are fuzzed, and why this way
//!
//! `cargo xtask fuzz [--time SECS] [TARGET]` runs them under **libFuzzer**, coverage-guided, on the stable
//! toolchain. libFuzzer's coverage comes from LLVM's SanitizerCoverage pass, which rustc runs when given
//! `-Cpasses=sancov-module` and the `-Cllvm-args=-sanitizer-coverage-*` options — all stable `-C` flags. Only
//! the sanitizers (`-Zsanitizer=address`, …) need nightly, and safe Rust needs them least: what they would add
//! here is already a panic. This is exactly cargo-fuzz's `--sanitizer none` mode, which was checked to build
//! and find a planted bug with rustc 1.95 stable; xtask passes the same flags itself, so a fresh machine needs
//! no `cargo install` and no nightly, only a C++ compiler for libFuzzer's runtime (`g++`, which xtask installs
//! when missing). Coverage guidance was preferred over a home-grown mutation engine because the formats here
//! are deep (a PAX record inside a tar header inside a gzip member; a digest inside a descriptor inside an
//! index): libFuzzer's comparison tracing learns magic strings, header fields and PAX keys from the code under
//! test, where blind mutation of seeds rarely gets past the first check. libFuzzer also does what a bounded
//! run needs: per-input time-outs and a resident-memory limit, saving the input that tripped them, and a
//! persistent corpus that makes every run start where the last one stopped.
//!
//! The binaries under `fuzz_targets/` are thin `fuzz_target!` wrappers over [`TARGETS`], built only with the
//! `libfuzzer` feature, so `cargo test --workspace` and clippy never compile libFuzzer. The crate keeps the
//! layout `cargo fuzz` expects, so `cargo fuzz run --fuzz-dir crates/berth-fuzz --sanitizer none --features
//! libfuzzer layer` works too for those who have it.
//!
//! The test suite runs every target over its seeds and a few hundred deterministic mutations of them
//! (`tests/it/smoke.rs`, a few seconds), and each finding is pinned by a named regression test
//! (`tests/it/regressions.rs`).
//!
//! # Running as root
//!
//! The layer target extracts as the user running it, like the runner: as root it creates devices, sets
//! ownership and xattrs, which is what should be fuzzed. Its oracle catches writes that leave the root through
//! the names its seeds use, but a broken extractor could in principle be steered elsewhere; run long campaigns
//! in a throwaway container or VM.

pub mod auth;
pub mod corpus;
pub mod digest;
pub mod document;
pub mod layer;
mod layer_sandbox;
pub mod layer_seeds;
pub mod reference;
pub mod tar_writer;

/// A fuzz target: its name (also its libFuzzer binary's), the function under test and its seed inputs.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name, as given to `cargo xtask fuzz`.
    pub name: &'static str,
    /// Runs one input; panics when the oracle is violated.
    pub run: fn(&[u8]),
    /// The seed inputs.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "layer",
        run: layer::run,
        seeds: layer_seeds::seeds,
    },
    Target {
        name: "digest",
        run: digest::run,
        seeds: digest::seeds,
    },
    Target {
        name: "reference",
        run: reference::run,
        seeds: reference::seeds,
    },
    Target {
        name: "document",
        run: document::run,
        seeds: document::seeds,
    },
    Target {
        name: "auth",
        run: auth::run,
        seeds: auth::seeds,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
