//! berth-registry: the OCI distribution client shared by the copier and anything that pulls.
