//! A busybox base image made from Debian's `busybox-static` (`/bin/busybox`), since no image can be pulled here.

use anyhow::{Context, Result};
use berth_spec::layout::Layout;
use serde_json::json;

use crate::image::{self, ImageSpec, TarBuilder, WrittenImage};

/// Where Debian's busybox-static installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Applets linked in the image's `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "true", "false", "id", "env", "sleep", "mkdir", "rm",
];

/// The busybox binary's bytes (panics with a set-up hint when busybox-static is absent).
pub fn busybox_bytes() -> Result<Vec<u8>> {
    std::fs::read(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} is missing: run `cargo xtask ci`, which installs busybox-static"))
}

/// A minimal root filesystem as an uncompressed tar: /bin with busybox and applet links, /etc/passwd and group.
pub fn rootfs_tar() -> Result<Vec<u8>> {
    let busybox = busybox_bytes()?;
    let mut t = TarBuilder::new();
    t.dir("bin", 0o755).file("bin/busybox", 0o755, &busybox);
    for a in APPLETS {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
        .dir("root", 0o700)
        .dir("tmp", 0o1777);
    Ok(t.finish())
}

/// The spec of the busybox image: one layer, `Cmd ["/bin/sh"]`, a PATH.
pub fn spec() -> Result<ImageSpec> {
    Ok(ImageSpec {
        layers: vec![rootfs_tar()?],
        config: json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]}),
        architecture: berth_spec::platform::Platform::host().architecture,
    })
}

/// Writes the busybox image into `layout` as `name`.
pub fn write_image(layout: &Layout, name: &str) -> Result<WrittenImage> {
    image::write_image(layout, Some(name), &spec()?)
}
