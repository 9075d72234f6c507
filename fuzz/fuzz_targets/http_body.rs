//! cargo-fuzz target: see `flashsale_fuzz::http_body` for the input layout and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| flashsale_fuzz::http_body::check(data));
