//! libFuzzer entry point of the `auth` target (see `berth_fuzz::auth`); built by `cargo xtask fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: berth_fuzz::corpus::seed_from_args("auth"), |data: &[u8]| {
    berth_fuzz::auth::run(data)
});
