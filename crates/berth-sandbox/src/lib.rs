//! berth-sandbox: "run this process in this root filesystem with this OCI runtime config", shared by the runner
//! and the builder's `RUN`.
//!
//! This crate turns an image config and its unpacked root filesystem into a runtime spec that runc, crun or
//! libcontainer run with the defaults Docker and podman users expect:
//!
//! - [`prepare_container`] does the whole job for one container: it converts the image config with the user's
//!   overrides ([`berth_spec::runtime_config`]), refuses hostile root filesystems ([`rootfs::RootFs`]: `/proc` as a
//!   symlink, `/etc/passwd` linked out of the root, …), resolves the user from the image's own `/etc/passwd` and
//!   `/etc/group` read in-root, checks the command can run ([`SandboxError::Command`]), writes `/etc/hosts`,
//!   `/etc/resolv.conf` and `/etc/hostname` ([`etc_files`]), seeds the image's volumes, and calls
//!   [`default_spec`].
//! - [`default_spec`] builds the spec field by field: Docker's capability set ([`caps`]), namespaces, default
//!   mounts ([`mounts`]), masked and read-only paths, device rules ([`devices`]), `RLIMIT_NOFILE`, resource limits
//!   and Berth's default seccomp profile ([`seccomp`]).
//! - [`tree_copy`] copies root filesystems with owners, modes, xattrs, hardlinks and devices, and merges layers
//!   extracted in overlayfs form.
//!
//! - [`overlay`] stacks cached layers with an overlay mount (writes to an upper directory), or copies them.
//! - [`runtime`] runs a bundle through youki's libcontainer: create, start, exec, kill, delete, wait.
//!
//! ```no_run
//! use berth_sandbox::{ContainerSetup, SpecOptions, prepare_container};
//! use std::path::Path;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let image = oci_spec::image::ImageConfiguration::from_file("image-config.json")?;
//! let options = SpecOptions { hostname: Some("box".into()), ..SpecOptions::default() };
//! let spec = prepare_container(&ContainerSetup {
//!     image_name: "busybox:1",
//!     image: &image,
//!     rootfs: Path::new("/tmp/bundle/rootfs"),
//!     root_path: Path::new("rootfs"),
//!     container_dir: Path::new("/tmp/bundle"),
//!     container_id: "0123456789abcdef",
//!     options: &options,
//! })?;
//! spec.save("/tmp/bundle/config.json")?;
//! # Ok(()) }
//! ```

pub mod caps;
pub mod devices;
mod error;
pub mod etc_files;
mod exec_check;
pub mod mount_dest;
pub mod mounts;
pub mod options;
pub mod overlay;
mod prepare;
pub mod rootfs;
pub mod runtime;
pub mod sealed_exe;
pub mod seccomp;
pub mod spec;
pub mod tree_copy;

pub use error::SandboxError;
pub use exec_check::check_args;
pub use options::{MountRequest, NetMode, SeccompChoice, SpecOptions, VolumeBacking};
pub use prepare::{
    ContainerSetup, HOME_COMPUTED_ANNOTATION, RUNTIME_ANNOTATION_PREFIXES, is_runtime_annotation, prepare_container,
};
pub use spec::{SpecParts, default_spec};
