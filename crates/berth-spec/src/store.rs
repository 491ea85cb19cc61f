//! The default local store: a plain OCI image layout that skopeo, umoci and buildah read with `oci:PATH`.
//!
//! Its place is `$BERTH_STORE`; else, for root, `/var/lib/berth/store`; else `$XDG_DATA_HOME/berth/store`; else
//! `$HOME/.local/share/berth/store`. Root ignores the `XDG_*` variables, as podman does: they belong to a user's
//! session and reach root through `sudo -E`, and root must not take its images from a place that user controls. An
//! explicit `$BERTH_STORE` (or `--store`) is the caller's own word and is used as given.

use std::path::PathBuf;

use crate::layout::{Layout, Result};

/// Where the default store lives, from the environment of this process ([`crate::dirs`]).
pub fn default_store_path() -> PathBuf {
    crate::dirs::default_path(crate::dirs::Place::Store)
}

/// The store path rule over an arbitrary environment (for tests and callers with their own environment).
pub fn store_path_from(env: impl Fn(&str) -> Option<std::ffi::OsString>, is_root: bool) -> PathBuf {
    crate::dirs::path_from(crate::dirs::Place::Store, env, is_root)
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
