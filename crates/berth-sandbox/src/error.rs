//! Why a container's runtime spec or root filesystem could not be prepared.

use std::path::PathBuf;

use berth_spec::runtime_config::ConversionError;

/// A refusal or failure from this crate. Every variant names the image, file, path or option involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The image config (with the user's overrides) cannot become a process.
    #[error("image {image}")]
    Image {
        /// The image as the user named it.
        image: String,
        /// What is wrong.
        #[source]
        source: ConversionError,
    },
    /// `/dev`, `/proc` or `/sys` of the root filesystem is a symlink or not a directory; the runtime would mount
    /// over wherever it points (HOSTILE-INPUTS 32).
    #[error(
        "image {image}: /{name} in its root filesystem is {what}; the runtime mounts over /{name}, so it must be a \
         directory (or absent) — the image is malformed or hostile"
    )]
    SpecialDir {
        /// The image as the user named it.
        image: String,
        /// `dev`, `proc` or `sys`.
        name: &'static str,
        /// "a symbolic link to \"...\"" or "not a directory".
        what: String,
    },
    /// A mount destination (an image volume, `/etc/hosts` and friends, `-v`, `--tmpfs`) resolves, through the image's
    /// symlinks, onto the root or the runtime's own `/proc`, `/sys` or `/dev` (HOSTILE-INPUTS 41).
    #[error("image {image}: cannot mount at {destination} ({origin}): {reason}")]
    MountDestination {
        /// The image as the user named it.
        image: String,
        /// The destination as written.
        destination: String,
        /// Where it came from: "a VOLUME of the image", "-v …", …
        origin: String,
        /// What it resolves to and why that is refused.
        reason: String,
    },
    /// A file read from inside the root filesystem is larger than allowed.
    #[error("image {image}: {path} is {size} bytes or more, above the {limit}-byte limit for this file")]
    FileTooLarge {
        /// The image as the user named it.
        image: String,
        /// The path inside the root filesystem.
        path: String,
        /// Bytes read before giving up.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file read from inside the root filesystem is not a regular file (a FIFO or device would block or lie).
    #[error("image {image}: {path} is not a regular file; replace it with a plain file")]
    NotRegular {
        /// The image as the user named it.
        image: String,
        /// The path inside the root filesystem.
        path: String,
    },
    /// The working directory exists in the image but is not a directory.
    #[error("image {image}: working directory {path} is not a directory in the image; choose another with -w")]
    WorkdirNotDir {
        /// The image as the user named it.
        image: String,
        /// The working directory.
        path: String,
    },
    /// The command cannot run: missing, a directory, not executable, or built for another architecture.
    #[error("image {image}: cannot run {command:?}: {reason}")]
    Command {
        /// The image as the user named it.
        image: String,
        /// The command (`process.args[0]`).
        command: String,
        /// Why, and what to do.
        reason: String,
        /// The command (or a script's interpreter) is not there at all, rather than there but not runnable:
        /// exit code 127 rather than 126, as podman.
        not_found: bool,
    },
    /// An option the user gave is invalid.
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The option as spelled on the command line (`--memory`, `-v /a:/b:x`, …).
        option: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A seccomp profile file could not be read or understood.
    #[error("seccomp profile {path}: {reason}")]
    SeccompProfile {
        /// The profile file (`<built-in>` for Berth's default).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An overlay mount failed.
    #[error("overlay mount at {}: {reason}", target.display())]
    Overlay {
        /// The mount point.
        target: std::path::PathBuf,
        /// What went wrong, with the kernel's message when it gave one.
        reason: String,
    },
    /// libcontainer refused or failed an operation on a container.
    #[error("container {container}: cannot {action}: {reason}")]
    Runtime {
        /// The container id.
        container: String,
        /// What was being done (`create`, `start`, `kill`, …).
        action: &'static str,
        /// libcontainer's error, with its causes.
        reason: String,
    },
    /// A file system operation failed.
    #[error(transparent)]
    Io(#[from] berth_spec::io_context::PathError),
}

impl SandboxError {
    /// An [`SandboxError::InvalidOption`].
    pub fn option(option: impl Into<String>, reason: impl Into<String>) -> Self {
        SandboxError::InvalidOption {
            option: option.into(),
            reason: reason.into(),
        }
    }
}
