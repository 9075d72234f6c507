//! cargo-fuzz target: see `flashsale_fuzz::stream_frame` for the input layout and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flashsale_fuzz::stream_frame::check(data));
