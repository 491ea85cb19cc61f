//! OCI whiteouts (image-spec `layer.md`): `.wh.NAME` deletes NAME from lower layers, `.wh..wh..opq` hides every
//! lower entry of its directory. In overlayfs form (for stacking extracted layers with overlayfs), a deletion is a
//! 0:0 character device named NAME and an opaque directory carries the xattr `trusted.overlay.opaque=y`.
//!
//! The names themselves are defined in [`berth_spec::whiteout`] (re-exported here), which crates that do not
//! depend on the layer codec share; this module says what a tar entry's name means.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub use berth_spec::whiteout::{
    OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, USER_OVERLAY_OPAQUE_XATTR, USER_OVERLAY_XATTR_PREFIX,
    WHITEOUT_DEVICE, WHITEOUT_PREFIX, is_overlay_xattr, is_whiteout_device,
};

/// What a tar entry's base name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// An ordinary entry.
    None,
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.NAME`: delete NAME.
    Delete(&'a OsStr),
    /// A name in the reserved `.wh.` namespace that is neither (e.g. `.wh.`, `.wh..`, `.wh...`, `.wh..wh.x`):
    /// refused, since no well-formed layer contains one.
    Invalid,
}

/// Classifies a base name.
pub fn classify(name: &OsStr) -> Whiteout<'_> {
    let b = name.as_bytes();
    if b == OPAQUE_MARKER.as_bytes() {
        return Whiteout::Opaque;
    }
    let Some(rest) = b.strip_prefix(WHITEOUT_PREFIX.as_bytes()) else {
        return Whiteout::None;
    };
    if rest.is_empty() || rest == b"." || rest == b".." || rest.starts_with(WHITEOUT_PREFIX.as_bytes()) {
        return Whiteout::Invalid;
    }
    if rest.contains(&b'/') || rest.contains(&0) {
        return Whiteout::Invalid;
    }
    Whiteout::Delete(OsStr::from_bytes(rest))
}

/// The whiteout name for deleting `name`.
pub fn whiteout_name(name: &OsStr) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(WHITEOUT_PREFIX);
    s.push(name);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names() {
        assert_eq!(classify(OsStr::new("etc")), Whiteout::None);
        assert_eq!(classify(OsStr::new(".wh..wh..opq")), Whiteout::Opaque);
        assert_eq!(
            classify(OsStr::new(".wh.passwd")),
            Whiteout::Delete(OsStr::new("passwd"))
        );
        assert_eq!(
            classify(OsStr::new(".wh..hidden")),
            Whiteout::Delete(OsStr::new(".hidden"))
        );
        for bad in [".wh.", ".wh..", ".wh...", ".wh..wh.x", ".wh..wh..opqx"] {
            assert_eq!(classify(OsStr::new(bad)), Whiteout::Invalid, "{bad}");
        }
        assert_eq!(whiteout_name(OsStr::new("a")), ".wh.a");
    }
}
