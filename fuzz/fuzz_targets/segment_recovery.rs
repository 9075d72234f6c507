//! cargo-fuzz target: see `flashsale_fuzz::segment_recovery` for the input layout and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flashsale_fuzz::segment_recovery::check(data));
