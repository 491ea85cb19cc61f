//! berth-run: run OCI images as containers.
//!
//! It runs containers itself, through libcontainer ([`create`], [`lifecycle`], [`supervise`]), with the defaults
//! Docker and podman users expect, and it also writes OCI runtime bundles that runc or crun run unchanged.
//!
//! The pieces, in the order a container is made:
//!
//! 1. [`source::open_image`] finds the image a reference names: a bare name in the default store, `oci:PATH:REF`,
//!    `oci-archive:PATH[:REF]` or `docker-archive:PATH[:REF]`; a `docker://` image is first pulled into the store
//!    by [`pull::pull`].
//! 2. [`layers::ensure_image`] extracts each layer once into the cache [`layers::open_cache`] opens, keyed by
//!    diffID, in overlayfs form, verifying blob digests and diffIDs ([`layers::default_cache_path`] says where).
//! 3. [`berth_sandbox::overlay::build_rootfs_copy`] merges the cached layers into a self-contained root
//!    filesystem, or [`berth_sandbox::overlay::prepare_rootfs_overlay`] stacks them with an overlay mount.
//! 4. [`berth_sandbox::prepare_container`] writes the runtime spec ([`options::ContainerFlags`] translates the
//!    command line into its options).
//!
//! [`create_bundle`] does all four for `berth-run bundle IMAGE DIR`.
//!
//! ```no_run
//! use berth_run::{BundleRequest, create_bundle, layers::default_cache_path, options::ContainerFlags};
//! use berth_spec::{platform::Platform, reference::ImageRef, store::default_store_path};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let flags = ContainerFlags { hostname: Some("box".into()), ..ContainerFlags::default() };
//! let options = flags.to_spec_options(&["echo".into(), "hello".into()])?;
//! let report = create_bundle(
//!     &BundleRequest {
//!         image: &ImageRef::parse("busybox:1")?,
//!         store: &default_store_path(),
//!         cache: &default_cache_path(),
//!         platform: &Platform::host(),
//!         options: &options,
//!         progress: &(),
//!     },
//!     std::path::Path::new("/tmp/busybox-bundle"),
//! )?;
//! println!("runc run --bundle {} demo", report.dir.display());
//! # Ok(()) }
//! ```

mod bundle;
pub mod create;
mod error;
pub mod layers;
pub mod lifecycle;
pub mod logfile;
pub mod options;
pub mod pull;
pub mod rootless;
pub mod signals;
pub mod source;
pub mod state;
pub mod supervise;
pub mod tty;

pub use bundle::{BundleReport, BundleRequest, create_bundle, new_container_id};
pub use error::RunError;
