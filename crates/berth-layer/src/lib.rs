//! berth-layer: the OCI layer codec shared by the builder and the runner.
pub mod whiteout;
pub mod apply;
pub mod compress;
