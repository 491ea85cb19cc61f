//! The names deletions and opaque directories are spelled with, in both forms Berth meets them: OCI layers
//! (image-spec `layer.md`) and overlayfs upper directories. Defined once here, for the layer codec, the sandbox's
//! tree copy and the tests; what each name means when a layer is read is `berth_layer::whiteout`'s business.
//!
//! - In a layer, `.wh.NAME` deletes NAME from the layers below and `.wh..wh..opq` hides every lower entry of its
//!   directory.
//! - In an overlayfs upper directory, a deletion is a character device with device number 0:0 and an opaque
//!   directory carries the xattr `trusted.overlay.opaque=y` (`user.overlay.opaque=y` for mounts with `userxattr`).

use rustix::fs::FileType;

/// Prefix of a whiteout file name in a layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker in a layer.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs opaque xattr (privileged overlay mounts).
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The overlayfs opaque xattr for unprivileged overlay mounts (`userxattr`).
pub const USER_OVERLAY_OPAQUE_XATTR: &str = "user.overlay.opaque";
/// Namespace of every overlayfs xattr (opaque, redirect, metacopy, origin, …) on privileged mounts.
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// Namespace of every overlayfs xattr on `userxattr` mounts.
pub const USER_OVERLAY_XATTR_PREFIX: &str = "user.overlay.";
/// The device number of an overlayfs whiteout (`makedev(0, 0)`), always on a character device.
pub const WHITEOUT_DEVICE: u64 = 0;

/// Whether an xattr name belongs to overlayfs (either namespace): metadata of an overlay mount, never of the file.
pub fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(OVERLAY_XATTR_PREFIX.as_bytes()) || name.starts_with(USER_OVERLAY_XATTR_PREFIX.as_bytes())
}

/// Whether a file of type `file_type` with device number `rdev` is an overlayfs whiteout.
pub fn is_whiteout_device(file_type: FileType, rdev: u64) -> bool {
    file_type == FileType::CharacterDevice && rdev == WHITEOUT_DEVICE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_names() {
        assert!(is_overlay_xattr(OVERLAY_OPAQUE_XATTR.as_bytes()));
        assert!(is_overlay_xattr(USER_OVERLAY_OPAQUE_XATTR.as_bytes()));
        assert!(is_overlay_xattr(b"trusted.overlay.redirect"));
        assert!(!is_overlay_xattr(b"user.overlayish"));
        assert!(!is_overlay_xattr(b"security.capability"));
        assert!(OPAQUE_MARKER.starts_with(WHITEOUT_PREFIX));
        assert!(is_whiteout_device(FileType::CharacterDevice, rustix::fs::makedev(0, 0)));
        assert!(!is_whiteout_device(
            FileType::CharacterDevice,
            rustix::fs::makedev(1, 3)
        ));
        assert!(!is_whiteout_device(FileType::BlockDevice, 0));
    }
}
