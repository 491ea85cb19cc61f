//! Black-box tests of berth-archive: round trips, hostile archives, and interop with skopeo.

mod craft;
mod docker;
mod hostile_docker;
mod hostile_oci;
mod oci;
mod skopeo;
