//! Why an image config (plus the user's overrides) could not be turned into a process.

/// Longest value quoted in full inside an error message; longer values are cut (the variant keeps all of it).
const SHOWN_CHARS: usize = 120;

/// Quotes `value` for an error message, escaping control bytes (a NUL shows as `\0`) and cutting very long values
/// so a 1 MiB environment entry does not become a 1 MiB error line.
fn show(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// A refusal from [`convert`](super::convert) or [`resolve_user`](super::resolve_user).
///
/// Every variant carries the offending value. Messages say which part of the image config (or of the user's
/// overrides) is wrong and what to change; callers add the image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConversionError {
    /// Entrypoint and Cmd are both empty after overrides, so there is nothing to execute.
    #[error(
        "the image has neither Entrypoint nor Cmd, so there is nothing to run; give a command \
         (COMMAND after the image name, or an entrypoint override)"
    )]
    NoCommand,
    /// An argument of the final command line contains a NUL byte, which `execve` cannot pass.
    #[error("argument {index} of the command is {}, which contains a NUL byte; remove it", show(.arg))]
    ArgNul {
        /// Position in the final argument vector (0 is the executable).
        index: usize,
        /// The argument.
        arg: String,
    },
    /// An image `Env` entry is not `KEY=VALUE`.
    #[error("image config Env entry {} has no '='; entries must be KEY=VALUE (fix the ENV that set it)", show(.entry))]
    EnvMissingEquals {
        /// The entry.
        entry: String,
    },
    /// An environment entry (image or override) has an empty variable name.
    #[error("environment entry {} has an empty variable name; write KEY=VALUE", show(.entry))]
    EnvEmptyKey {
        /// The entry.
        entry: String,
    },
    /// An environment entry (image, override or host value) contains a NUL byte.
    #[error("environment entry {} contains a NUL byte, which no process can receive; remove it", show(.entry))]
    EnvNul {
        /// The entry.
        entry: String,
    },
    /// A bare `KEY` override was given but the caller provided no host environment to take its value from.
    #[error(
        "environment override {} has no value and no host environment was provided to take it from; \
         write {}=VALUE",
        show(.key),
        .key
    )]
    EnvNeedsValue {
        /// The variable name.
        key: String,
    },
    /// Arguments plus environment exceed what the kernel accepts for `execve` (ARG_MAX).
    #[error(
        "the command line ({args_bytes} bytes) and environment ({env_bytes} bytes) together exceed the \
         {limit}-byte limit; shorten the environment or the arguments"
    )]
    TooLarge {
        /// Bytes taken by the arguments (each counted with its terminating NUL).
        args_bytes: usize,
        /// Bytes taken by the environment (each entry counted with its terminating NUL).
        env_bytes: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The working directory contains a NUL byte.
    #[error("working directory {} contains a NUL byte; give a plain absolute path", show(.workdir))]
    WorkdirNul {
        /// The working directory as given.
        workdir: String,
    },
    /// A working-directory override is relative (Docker refuses these too).
    #[error("working directory override {} is not absolute; give an absolute path such as /app", show(.workdir))]
    WorkdirNotAbsolute {
        /// The working directory as given.
        workdir: String,
    },
    /// The working directory is under `/proc/<pid>/fd`, where it could name a file descriptor leaked from the
    /// runtime and give the process a foothold outside the rootfs (runc CVE-2024-21626).
    #[error(
        "working directory {} (normalized to {normalized:?}) is under /proc/<pid>/fd, which can expose host file \
         descriptors (runc CVE-2024-21626); use a directory of the image instead",
        show(.workdir)
    )]
    WorkdirProcFd {
        /// The working directory as given.
        workdir: String,
        /// After lexical normalization.
        normalized: String,
    },
    /// `User` is not `USER[:GROUP]` with each part a name or numeric id.
    #[error("invalid user {}: {reason}; expected USER[:GROUP], each a name or a numeric id", show(.input))]
    InvalidUser {
        /// The whole user string.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A numeric uid/gid is negative or above 4294967294 (containerd CVE-2024-40635: an overflowing id must not
    /// silently become root or `(uid_t)-1`).
    #[error(
        "invalid user {}: id {} is outside 0..=4294967294 (4294967295 is reserved as (uid_t)-1); \
         give an id in range",
        show(.input),
        show(.id)
    )]
    IdOutOfRange {
        /// The whole user string.
        input: String,
        /// The numeric part that is out of range.
        id: String,
    },
    /// A user name has no entry in the image's `/etc/passwd`.
    #[error(
        "user {} does not exist in the image's /etc/passwd; create it in the image or give a numeric UID[:GID]",
        show(.name)
    )]
    UnknownUser {
        /// The user name.
        name: String,
    },
    /// A group name has no entry in the image's `/etc/group`.
    #[error(
        "group {} does not exist in the image's /etc/group; create it in the image or give a numeric GID",
        show(.name)
    )]
    UnknownGroup {
        /// The group name.
        name: String,
    },
    /// A `Volumes` key is the empty string.
    #[error("image config Volumes has an empty path; every volume must be an absolute path (fix the VOLUME)")]
    VolumeEmpty,
    /// A `Volumes` key contains a NUL byte.
    #[error("image config volume {} contains a NUL byte; fix the VOLUME", show(.volume))]
    VolumeNul {
        /// The volume as written in the image config.
        volume: String,
    },
    /// A `Volumes` key is not an absolute path.
    #[error("image config volume {} is not an absolute path; write it as /path (fix the VOLUME)", show(.volume))]
    VolumeNotAbsolute {
        /// The volume as written in the image config.
        volume: String,
    },
    /// A `Volumes` key normalizes to `/`, which would mask the whole root filesystem.
    #[error("image config volume {} resolves to \"/\", which would hide the whole root filesystem; fix the VOLUME", show(.volume))]
    VolumeIsRoot {
        /// The volume as written in the image config.
        volume: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_in_messages() {
        let entry = format!("A={}", "x".repeat(10_000));
        let message = ConversionError::EnvNul { entry }.to_string();
        assert!(message.len() < 400, "{message}");
        assert!(message.contains("10002 bytes"), "{message}");
    }

    #[test]
    fn nul_is_visible_in_messages() {
        let message = ConversionError::EnvNul { entry: "A=b\0c".into() }.to_string();
        assert!(message.contains(r"\0"), "{message}");
    }
}
