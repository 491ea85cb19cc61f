//! The default local store: a plain OCI image layout that skopeo, umoci and buildah read with `oci:PATH`.
//!
//! Its place is `$BERTH_STORE`; else, for root, `/var/lib/berth/store`; else `$XDG_DATA_HOME/berth/store`; else
//! `$HOME/.local/share/berth/store`. Root ignores the `XDG_*` variables, as podman does: they belong to a user's
//! session and reach root through `sudo -E`, and root must not take its images from a place that user controls. An
//! explicit `$BERTH_STORE` (or `--store`) is the caller's own word and is used as given.

use std::path::PathBuf;

use crate::layout::{Layout, Result};

/// Where the default store lives, from the environment of this process.
pub fn default_store_path() -> PathBuf {
    store_path_from(|k| std::env::var_os(k), rustix::process::geteuid().is_root())
}

/// The store path rule over an arbitrary environment (for tests and callers with their own environment).
pub fn store_path_from(env: impl Fn(&str) -> Option<std::ffi::OsString>, is_root: bool) -> PathBuf {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = non_empty("BERTH_STORE") {
        return p;
    }
    if is_root {
        return PathBuf::from("/var/lib/berth/store");
    }
    if let Some(p) = non_empty("XDG_DATA_HOME") {
        return p.join("berth").join("store");
    }
    let home = non_empty("HOME").unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/berth/store")
}

/// The default store's path, refused when it exists and another user controls it (see
/// [`crate::private_dir::check_trusted_dir`]): the tools would otherwise take root's images from that user. The
/// store need not be private (it holds only compressed, digest-checked blobs), only trusted.
pub fn trusted_default_store_path() -> std::result::Result<PathBuf, crate::private_dir::UntrustedDir> {
    let path = default_store_path();
    if path.exists() {
        crate::private_dir::check_trusted_dir(&path)?;
    }
    Ok(path)
}

/// Opens the default store, creating it on first use.
pub fn open_default_store() -> Result<Layout> {
    Layout::create(default_store_path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn path(vars: &[(&str, &str)], root: bool) -> PathBuf {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        store_path_from(|k| m.get(k).map(Into::into), root)
    }

    #[test]
    fn berth_store_wins() {
        assert_eq!(
            path(&[("BERTH_STORE", "/s"), ("XDG_DATA_HOME", "/x")], true),
            PathBuf::from("/s")
        );
    }

    #[test]
    fn hostile_38_root_ignores_xdg_data_home() {
        assert_eq!(
            path(&[("XDG_DATA_HOME", "/home/u/.local/share"), ("HOME", "/h")], true),
            PathBuf::from("/var/lib/berth/store")
        );
    }

    #[test]
    fn xdg_data_home_next() {
        assert_eq!(
            path(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")], false),
            PathBuf::from("/x/berth/store")
        );
        assert_eq!(
            path(&[("BERTH_STORE", ""), ("XDG_DATA_HOME", "/x")], false),
            PathBuf::from("/x/berth/store")
        );
    }

    #[test]
    fn root_without_xdg_uses_var_lib() {
        assert_eq!(path(&[("HOME", "/root")], true), PathBuf::from("/var/lib/berth/store"));
    }

    #[test]
    fn user_without_xdg_uses_home() {
        assert_eq!(
            path(&[("HOME", "/home/u")], false),
            PathBuf::from("/home/u/.local/share/berth/store")
        );
    }
}
