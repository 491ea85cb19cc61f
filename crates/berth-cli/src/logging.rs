//! `tracing` on stderr: warnings by default, more with `-v`, or whatever `RUST_LOG` says.

use std::io::IsTerminal;

/// How loud the logs are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Level<'a> {
    /// `-v` count: 1 info, 2 or more debug.
    pub verbose: u8,
    /// `-q`: only errors.
    pub quiet: bool,
    /// Directives added to the default filter (e.g. `libcontainer=off` to hide a library's own warnings).
    pub quiet_targets: &'a str,
}

/// Installs the global subscriber. Without `-v` or `RUST_LOG`, lines are plain (no time, no target): they are
/// for people, not log collectors. Colour only on a terminal.
pub fn init(level: Level<'_>) {
    let base = match level.verbose {
        0 if level.quiet => "error",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let directives = if level.verbose == 0 && !level.quiet_targets.is_empty() {
        format!("{base},{}", level.quiet_targets)
    } else {
        base.to_owned()
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if level.verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        logs.without_time().with_target(false).init();
    } else {
        logs.init();
    }
}
