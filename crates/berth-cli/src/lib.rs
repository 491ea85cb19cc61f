//! berth-cli: what Berth's binaries share in front of the user, so every tool looks and speaks the same way.
//!
//! - [`progress::Bars`] draws the transfer engine's progress events: bars (indicatif) when stderr is a terminal,
//!   plain periodic lines otherwise; nothing on stdout, ever.
//! - [`logging::init`] sets up `tracing` on stderr from `-v` counts and `RUST_LOG`.
//! - [`errors::render`] prints an error and its causes on one line.
//! - [`args`] holds the flags every tool spells alike (clap), so the tools speak with one voice.
//! - [`memory::reuse_large_buffers`]: allocator thresholds for the tools that stream large data.
//! - [`docs`]: shell completions, man pages and the Markdown reference, made from each tool's clap definitions.
//!
//! Libraries never depend on this crate: only binaries do.
//!
//! ```
//! let e = anyhow::anyhow!("connection refused").context("localhost:5000: pulling app:1");
//! assert_eq!(berth_cli::errors::render(&e), "localhost:5000: pulling app:1: connection refused");
//! ```

pub mod args;
pub mod docs;
pub mod errors;
pub mod logging;
pub mod memory;
pub mod progress;
