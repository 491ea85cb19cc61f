//! Where Berth keeps things on a host: one rule for the store, the cache and the container state.
//!
//! Each place is, in order: its `BERTH_*` variable (or the tool's flag, which the binaries map onto it); for
//! root, a fixed system directory; else under `$XDG_DATA_HOME` / `$XDG_CACHE_HOME`; else under `$HOME`.
//!
//! Root ignores `XDG_*` and `HOME`, as podman does: they belong to a user's session and reach root through
//! `sudo -E`, and root must not take images, layers or containers from places that user controls (HOSTILE-INPUTS
//! 38). An explicit `BERTH_*` is the caller's own word and is used as given; [`crate::private_dir`] then refuses
//! a cache or state directory another user controls.
//!
//! ```
//! use std::path::PathBuf;
//! use berth_spec::dirs::{Place, path_from};
//! let env = |k: &str| (k == "XDG_CACHE_HOME").then(|| "/home/u/.cache".into());
//! assert_eq!(path_from(Place::Cache, env, true), PathBuf::from("/var/cache/berth"));
//! assert_eq!(path_from(Place::Cache, env, false), PathBuf::from("/home/u/.cache/berth"));
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

/// One of Berth's places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The default image store (a plain OCI image layout).
    Store,
    /// Extracted layers (berth-run) and remembered registry blob locations (berth-copy).
    Cache,
    /// Containers (berth-run).
    State,
}

impl Place {
    /// (variable, root's directory, XDG variable, below it, below `$HOME` without it)
    fn rule(self) -> (&'static str, &'static str, &'static str, &'static str, &'static str) {
        match self {
            Place::Store => (
                "BERTH_STORE",
                "/var/lib/berth/store",
                "XDG_DATA_HOME",
                "berth/store",
                ".local/share",
            ),
            Place::Cache => ("BERTH_CACHE", "/var/cache/berth", "XDG_CACHE_HOME", "berth", ".cache"),
            Place::State => (
                "BERTH_STATE",
                "/var/lib/berth/state",
                "XDG_DATA_HOME",
                "berth/state",
                ".local/share",
            ),
        }
    }
}

/// The place's path over an arbitrary environment (see the module docs).
pub fn path_from(place: Place, env: impl Fn(&str) -> Option<OsString>, is_root: bool) -> PathBuf {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (var, system, xdg, below, home_base) = place.rule();
    if let Some(p) = non_empty(var) {
        return p;
    }
    if is_root {
        return PathBuf::from(system);
    }
    if let Some(p) = non_empty(xdg) {
        return p.join(below);
    }
    non_empty("HOME")
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(home_base)
        .join(below)
}

/// The place's path from this process's environment and effective uid.
pub fn default_path(place: Place) -> PathBuf {
    path_from(place, |k| std::env::var_os(k), rustix::process::geteuid().is_root())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn path(place: Place, vars: &[(&str, &str)], root: bool) -> PathBuf {
        let m: HashMap<&str, &str> = vars.iter().copied().collect();
        path_from(place, |k| m.get(k).map(Into::into), root)
    }

    #[test]
    fn explicit_variables_win_even_for_root() {
        for (place, var) in [
            (Place::Store, "BERTH_STORE"),
            (Place::Cache, "BERTH_CACHE"),
            (Place::State, "BERTH_STATE"),
        ] {
            let vars = [(var, "/mine"), ("XDG_DATA_HOME", "/x"), ("XDG_CACHE_HOME", "/y")];
            assert_eq!(path(place, &vars, true), PathBuf::from("/mine"));
            assert_eq!(path(place, &vars, false), PathBuf::from("/mine"));
            // Empty means unset.
            assert_ne!(path(place, &[(var, "")], false), PathBuf::from(""));
        }
    }

    #[test]
    fn hostile_38_root_ignores_xdg_and_home() {
        let user = [
            ("XDG_DATA_HOME", "/home/u/.local/share"),
            ("XDG_CACHE_HOME", "/home/u/.cache"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(path(Place::Store, &user, true), PathBuf::from("/var/lib/berth/store"));
        assert_eq!(path(Place::Cache, &user, true), PathBuf::from("/var/cache/berth"));
        assert_eq!(path(Place::State, &user, true), PathBuf::from("/var/lib/berth/state"));
    }

    #[test]
    fn users_get_xdg_then_home() {
        let xdg = [("XDG_DATA_HOME", "/x"), ("XDG_CACHE_HOME", "/c"), ("HOME", "/h")];
        assert_eq!(path(Place::Store, &xdg, false), PathBuf::from("/x/berth/store"));
        assert_eq!(path(Place::Cache, &xdg, false), PathBuf::from("/c/berth"));
        assert_eq!(path(Place::State, &xdg, false), PathBuf::from("/x/berth/state"));
        let home = [("HOME", "/h")];
        assert_eq!(
            path(Place::Store, &home, false),
            PathBuf::from("/h/.local/share/berth/store")
        );
        assert_eq!(path(Place::Cache, &home, false), PathBuf::from("/h/.cache/berth"));
        assert_eq!(
            path(Place::State, &home, false),
            PathBuf::from("/h/.local/share/berth/state")
        );
        assert_eq!(path(Place::Cache, &[], false), PathBuf::from("/.cache/berth"));
    }
}
