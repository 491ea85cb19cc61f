//! I/O errors with the action and path they happened on: one type and one helper for every crate, so that every
//! message reads `ACTION PATH: OS ERROR` (`create /var/lib/berth/store: Permission denied (os error 13)`).
//!
//! ```
//! use berth_spec::io_context::IoContext;
//! let e = std::fs::read("/nonexistent/file").at("read", "/nonexistent/file").unwrap_err();
//! assert_eq!(e.to_string(), "read /nonexistent/file");
//! assert_eq!(berth_spec::error_chain(&e), "read /nonexistent/file: No such file or directory (os error 2)");
//! ```

use std::io;
use std::path::PathBuf;

/// An I/O error on a named path; the OS error is its `source()`.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}", path.display())]
pub struct PathError {
    /// What was being done (`create`, `read`, `rename`, …).
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// What the system said.
    pub source: io::Error,
}

impl PathError {
    /// A `PathError`.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        PathError {
            action,
            path: path.into(),
            source: source.into(),
        }
    }

    /// The OS error kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// Attaches an action and a path to I/O errors (`std::io` and `rustix` alike).
pub trait IoContext<T> {
    /// `Err(e)` becomes a [`PathError`] saying `action path`.
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, PathError>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, PathError> {
        self.map_err(|e| PathError::new(action, path, e))
    }
}
