//! libFuzzer entry point of the `digest` target (see `berth_fuzz::digest`); built by `cargo xtask fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: berth_fuzz::corpus::seed_from_args("digest"), |data: &[u8]| {
    berth_fuzz::digest::run(data)
});
