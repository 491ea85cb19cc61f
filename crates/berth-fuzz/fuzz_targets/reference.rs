//! libFuzzer entry point of the `reference` target (see `berth_fuzz::reference`); built by `cargo xtask fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: berth_fuzz::corpus::seed_from_args("reference"), |data: &[u8]| {
    berth_fuzz::reference::run(data)
});
