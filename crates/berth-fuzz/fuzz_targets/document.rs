//! libFuzzer entry point of the `document` target (see `berth_fuzz::document`); built by `cargo xtask fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: berth_fuzz::corpus::seed_from_args("document"), |data: &[u8]| {
    berth_fuzz::document::run(data)
});
