//! Merging the image's `Env` with the user's overrides, and the `execve` size guard.

use std::collections::HashMap;

use super::ConversionError;

/// The `PATH` Docker gives a Linux container whose image does not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Upper bound on arguments plus environment (each string counted with its NUL), kept well under the kernel's
/// limits so a hostile image fails here with a clear message instead of as `E2BIG` from `execve`.
pub const MAX_ARGS_AND_ENV_BYTES: usize = 1 << 20;

/// Host environment lookup for bare `KEY` overrides.
pub(super) type HostEnv<'a> = Option<&'a dyn Fn(&str) -> Option<String>>;

/// An ordered environment where setting an existing key replaces its value in place.
#[derive(Default)]
struct Environment {
    entries: Vec<String>,
    positions: HashMap<String, usize>,
}

impl Environment {
    /// Sets `entry` (already validated as `KEY=VALUE` with a non-empty key).
    fn set(&mut self, key: &str, entry: String) {
        match self.positions.get(key) {
            Some(&at) => self.entries[at] = entry,
            None => {
                self.positions.insert(key.to_owned(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }
}

/// Splits a `KEY=VALUE` entry, checking for NUL bytes and an empty key. `Ok(None)` means there is no `=`.
fn split_entry(entry: &str) -> Result<Option<&str>, ConversionError> {
    if entry.contains('\0') {
        return Err(ConversionError::EnvNul {
            entry: entry.to_owned(),
        });
    }
    match entry.split_once('=') {
        Some(("", _)) => Err(ConversionError::EnvEmptyKey {
            entry: entry.to_owned(),
        }),
        Some((key, _)) => Ok(Some(key)),
        None => Ok(None),
    }
}

/// The process environment: the image's `Env`, then the overrides, a later entry replacing an earlier one with the
/// same key at the earlier one's position. A bare `KEY` override takes the value from `host_env`, and is dropped
/// when the host does not have it (Docker's `-e KEY`). `PATH` is added first when neither side sets it.
pub(super) fn merge(
    image: &[String],
    overrides: &[String],
    host_env: HostEnv<'_>,
) -> Result<Vec<String>, ConversionError> {
    let mut env = Environment::default();
    for entry in image {
        match split_entry(entry)? {
            Some(key) => env.set(key, entry.clone()),
            None => return Err(ConversionError::EnvMissingEquals { entry: entry.clone() }),
        }
    }
    for entry in overrides {
        if let Some(key) = split_entry(entry)? {
            env.set(key, entry.clone());
            continue;
        }
        if entry.is_empty() {
            return Err(ConversionError::EnvEmptyKey { entry: entry.clone() });
        }
        let Some(lookup) = host_env else {
            return Err(ConversionError::EnvNeedsValue { key: entry.clone() });
        };
        if let Some(value) = lookup(entry) {
            let resolved = format!("{entry}={value}");
            if value.contains('\0') {
                return Err(ConversionError::EnvNul { entry: resolved });
            }
            env.set(entry, resolved);
        }
    }
    let mut entries = env.entries;
    if !env.positions.contains_key("PATH") {
        entries.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    Ok(entries)
}

/// Bytes `strings` take in an `execve` argument or environment block: each string plus its terminating NUL.
fn block_size(strings: &[String]) -> usize {
    strings.iter().map(|s| s.len() + 1).sum()
}

/// Refuses an argument vector containing NUL bytes, or arguments plus environment beyond
/// [`MAX_ARGS_AND_ENV_BYTES`].
pub(super) fn check_exec_block(args: &[String], env: &[String]) -> Result<(), ConversionError> {
    if let Some((index, arg)) = args.iter().enumerate().find(|(_, a)| a.contains('\0')) {
        return Err(ConversionError::ArgNul {
            index,
            arg: arg.clone(),
        });
    }
    let args_bytes = block_size(args);
    let env_bytes = block_size(env);
    if args_bytes + env_bytes > MAX_ARGS_AND_ENV_BYTES {
        return Err(ConversionError::TooLarge {
            args_bytes,
            env_bytes,
            limit: MAX_ARGS_AND_ENV_BYTES,
        });
    }
    Ok(())
}
