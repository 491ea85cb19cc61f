//! berth-layer: the OCI layer codec shared by the builder and the runner, and the capped tar reader
//! ([`tar_walk`]) every tar stream in Berth is read with.
pub mod apply;
pub mod compress;
pub mod create;
pub mod tar_walk;
pub mod whiteout;
