//! Black-box tests of `berth-run`: bundles made from test images, run by the real `runc`.
//!
//! These need root (runc, device nodes, overlay mounts), `runc` and Debian's busybox-static; each container gets a
//! unique id, a private runc state directory, and is deleted whatever the outcome.

mod hostile;
mod lifecycle;
mod overlay;
mod pull;
mod rootless;
mod run_basic;
mod run_cache;
mod run_mounts;
mod security;
mod snapshots;
mod support;

/// docs/cli/berth-run.md is the reference the command line gives (regenerate it with `cargo xtask docs`).
#[test]
fn the_cli_reference_is_current() {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli/berth-run.md");
    if let Err(e) = berth_cli::docs::check_reference(std::path::Path::new(env!("CARGO_BIN_EXE_berth-run")), &doc) {
        panic!("{e}");
    }
}
