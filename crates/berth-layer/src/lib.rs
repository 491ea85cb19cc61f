//! berth-layer: the OCI layer codec shared by the builder and the runner, and the capped tar reader
//! ([`tar_walk`]) every tar stream in Berth is read with.
//!
//! - [`create`]: deterministic layers from a directory, from the difference between two trees, or from an
//!   overlayfs upperdir, compressed in parallel ([`compress`]) with their digest and diffID computed on the way.
//! - [`apply`]: extraction with every path resolved inside the root, whiteouts applied (or kept in overlayfs
//!   form), and the diffID checked.
//! - [`whiteout`]: the whiteout names and overlayfs markers both sides agree on.
//!
//! Make a layer from a directory and list what it holds:
//!
//! ```
//! use berth_layer::create::{CreateOptions, create_from_dir};
//! use berth_layer::tar_walk::TarWalker;
//! use berth_spec::media_type::Compression;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rootfs = tempfile::tempdir()?;
//! std::fs::create_dir(rootfs.path().join("etc"))?;
//! std::fs::write(rootfs.path().join("etc/hostname"), "box\n")?;
//!
//! let opts = CreateOptions { compression: Compression::None, ..CreateOptions::default() };
//! let mut blob = Vec::new();
//! let layer = create_from_dir(rootfs.path(), &mut blob, &opts)?;
//! assert_eq!(layer.size, blob.len() as u64);
//!
//! let mut walker = TarWalker::new(blob.as_slice());
//! let mut names = Vec::new();
//! while let Some(entry) = walker.next_entry()? {
//!     names.push(entry.path_lossy().into_owned());
//! }
//! assert_eq!(names, ["etc/", "etc/hostname"]);
//! # Ok(()) }
//! ```
pub mod apply;
pub mod compress;
pub mod create;
pub mod tar_walk;
pub mod whiteout;
pub mod writer_thread;
