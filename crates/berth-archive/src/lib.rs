//! berth-archive: oci-archive and docker-archive images, in and out.
