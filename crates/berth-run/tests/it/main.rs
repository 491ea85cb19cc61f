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
mod support;
