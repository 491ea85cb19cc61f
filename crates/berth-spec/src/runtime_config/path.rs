//! Lexical path handling for the working directory and volumes.
//!
//! Everything here is lexical: it never touches a filesystem. Symlinks inside the rootfs (a `WorkingDir` that is a
//! link to `/proc/self/fd/7`, say) are the runtime's job to resolve safely in-root.

use super::ConversionError;

/// Normalizes `path` as if it were absolute: drops empty and `.` components and resolves `..` against the
/// components before it, never climbing above `/` (so `../../x` and `/a/../../x` both become `/x`).
pub fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    let mut cleaned = String::with_capacity(path.len() + 1);
    for part in &parts {
        cleaned.push('/');
        cleaned.push_str(part);
    }
    if cleaned.is_empty() {
        cleaned.push('/');
    }
    cleaned
}

/// Whether a normalized absolute path is `/proc/<anything>/fd[/…]` or `/proc/<pid>/task/<tid>/fd[/…]`.
fn is_proc_fd(normalized: &str) -> bool {
    let parts: Vec<&str> = normalized.split('/').skip(1).take(5).collect();
    matches!(parts.as_slice(), ["proc", _, "fd", ..] | ["proc", _, "task", _, "fd"])
}

/// The process's working directory.
///
/// A non-empty override wins and must be absolute (Docker's `-w` rule). Otherwise the image's `WorkingDir` is used,
/// a relative one being taken relative to `/` (Docker's behavior), and an absent or empty one meaning `/`.
/// The result is lexically normalized and refused when it lands under `/proc/<pid>/fd`.
pub(super) fn working_dir(image: Option<&str>, user: Option<&str>) -> Result<String, ConversionError> {
    let workdir = match user.filter(|w| !w.is_empty()) {
        Some(w) if !w.starts_with('/') && !w.contains('\0') => {
            return Err(ConversionError::WorkdirNotAbsolute { workdir: w.to_owned() });
        }
        Some(w) => w,
        None => image.unwrap_or(""),
    };
    if workdir.contains('\0') {
        return Err(ConversionError::WorkdirNul {
            workdir: workdir.to_owned(),
        });
    }
    let normalized = clean_absolute(workdir);
    if is_proc_fd(&normalized) {
        return Err(ConversionError::WorkdirProcFd {
            workdir: workdir.to_owned(),
            normalized,
        });
    }
    Ok(normalized)
}

/// Validates and normalizes `Config.Volumes` keys; the result is sorted and free of duplicates.
///
/// `..` components are resolved lexically and can never climb above `/` (containerd CVE-2022-23648 let
/// `/../../../../x` reach host paths); the normalized form is what is reported.
pub(super) fn volumes(keys: &[String]) -> Result<Vec<String>, ConversionError> {
    let mut out = Vec::with_capacity(keys.len());
    for volume in keys {
        if volume.is_empty() {
            return Err(ConversionError::VolumeEmpty);
        }
        if volume.contains('\0') {
            return Err(ConversionError::VolumeNul { volume: volume.clone() });
        }
        if !volume.starts_with('/') {
            return Err(ConversionError::VolumeNotAbsolute { volume: volume.clone() });
        }
        let normalized = clean_absolute(volume);
        if normalized == "/" {
            return Err(ConversionError::VolumeIsRoot { volume: volume.clone() });
        }
        out.push(normalized);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_absolute_never_escapes_root() {
        for (input, expected) in [
            ("", "/"),
            ("/", "/"),
            (".", "/"),
            ("..", "/"),
            ("../../x", "/x"),
            ("/a/../../x", "/x"),
            ("/a/./b//c/", "/a/b/c"),
            ("a/b/../c", "/a/c"),
            ("/../../../../etc/passwd", "/etc/passwd"),
            ("/a/b/../../..", "/"),
            ("/...", "/..."),
        ] {
            assert_eq!(clean_absolute(input), expected, "{input:?}");
        }
    }

    #[test]
    fn proc_fd_detection() {
        for path in [
            "/proc/self/fd",
            "/proc/self/fd/7",
            "/proc/1/fd/3",
            "/proc/thread-self/fd",
            "/proc/1/task/1/fd",
        ] {
            assert!(is_proc_fd(path), "{path}");
        }
        for path in [
            "/proc",
            "/proc/self",
            "/proc/self/fdinfo",
            "/proc/1/task/1",
            "/srv/proc/self/fd",
            "/fd",
        ] {
            assert!(!is_proc_fd(path), "{path}");
        }
    }
}
