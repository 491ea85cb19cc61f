//! Test support for Berth's black-box tests: base images made from Debian's static busybox, runners for the
//! peer tools (skopeo, umoci, buildah, …) with private state, and a deterministic random source.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! let layout = berth_spec::layout::Layout::create(dir.path()).unwrap();
//! let image = berth_testkit::busybox::write_image(&layout, "busybox:latest").unwrap();
//! assert_eq!(image.layers.len(), 1);
//! ```

pub mod busybox;
pub mod containerd;
pub mod faultproxy;
pub mod image;
pub mod registry;
pub mod rng;
pub mod tools;
pub mod tree;
