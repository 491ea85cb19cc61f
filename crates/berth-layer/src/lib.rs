//! berth-layer: the OCI layer codec shared by the builder and the runner.
pub mod apply;
pub mod compress;
pub mod create;
pub mod whiteout;
