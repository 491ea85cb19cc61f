//! What the user sees besides a command's own output: log levels and exit codes.

use berth_run::RunError;

/// Logs on stderr: warnings by default, more with `--verbose`, or as `RUST_LOG` says.
pub(crate) fn init_logging(verbose: u8) {
    // libcontainer logs what it cannot do on this host (absent cgroup controllers, syscalls unknown to the kernel)
    // as warnings, and its failures again as errors that Berth reports itself: shown only with --verbose.
    berth_cli::logging::init(berth_cli::logging::Level {
        verbose,
        quiet: false,
        quiet_targets: "libcontainer=off,libcgroups=off",
    });
}

/// As podman: 125 for Berth's own failures, 127 when the command is not there, 126 when it is there but cannot be
/// run (for `run` and `exec`); 125 for a failed `pull` too; 1 for the other verbs.
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

/// Restores SIGPIPE's default action. Rust programs start with SIGPIPE ignored, and an ignored signal stays
/// ignored across `exec`: containers would inherit it (`yes | head` would then never end by SIGPIPE).
#[allow(unsafe_code)]
pub(crate) fn default_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL needs no handler to stay valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The exit status of a verb's outcome: its code, or the error printed (with a hint for 429) and its exit code.
pub(crate) fn finish(result: anyhow::Result<u8>, run_like: bool) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("berth-run: {}", berth_cli::errors::render(&e));
            if berth_cli::errors::registry_error(&e).is_some_and(|r| r.status() == Some(429)) {
                eprintln!("berth-run: hint: wait, or raise --retry-times");
            }
            std::process::ExitCode::from(exit_code(&e, run_like))
        }
    }
}
