//! libFuzzer entry point of the `layer` target (see `berth_fuzz::layer`); built by `cargo xtask fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: berth_fuzz::corpus::seed_from_args("layer"), |data: &[u8]| {
    berth_fuzz::layer::run(data)
});
