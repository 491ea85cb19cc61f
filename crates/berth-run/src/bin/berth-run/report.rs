//! What the user sees besides a command's own output: log levels, error messages and exit codes.

use berth_run::RunError;

/// Logs on stderr: warnings by default, more with `--verbose`, or as `RUST_LOG` says.
pub(crate) fn init_logging(verbose: u8) {
    // libcontainer logs what it cannot do on this host (absent cgroup controllers, syscalls unknown to the kernel)
    // as warnings, and its failures again as errors that Berth reports itself: shown only with --verbose.
    let level = match verbose {
        0 => "warn,libcontainer=off,libcgroups=off",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// The error and its causes, each once: many messages already quote their cause, and `{:#}` would repeat it.
pub(crate) fn render(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    let mut previous = out.clone();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
    }
    out
}

/// As podman: 125 for Berth's own failures, 127 when the command is not there, 126 when it is there but cannot be
/// run (for `run` and `exec`); 1 for the other verbs.
pub(crate) fn exit_code(e: &anyhow::Error, run_like: bool) -> u8 {
    let command_error = e.chain().find_map(|c| {
        let sandbox = match c.downcast_ref::<RunError>() {
            Some(RunError::Sandbox(s)) => Some(s),
            _ => c.downcast_ref::<berth_sandbox::SandboxError>(),
        };
        match sandbox {
            Some(berth_sandbox::SandboxError::Command { not_found, .. }) => Some(*not_found),
            _ => None,
        }
    });
    match (run_like, command_error) {
        (true, Some(true)) => 127,
        (true, Some(false)) => 126,
        (true, None) => 125,
        _ => 1,
    }
}
