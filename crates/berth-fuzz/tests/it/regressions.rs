//! Inputs the fuzzer found, minimized, each in a test named after the bug it pins.
