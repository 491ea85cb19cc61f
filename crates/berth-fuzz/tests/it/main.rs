//! berth-fuzz's tests, in one binary: a short deterministic run of every target (`smoke`), and the inputs the
//! fuzzer found, each pinned by a test named after the bug (`regressions`).

mod regressions;
mod smoke;
