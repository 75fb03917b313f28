//! libFuzzer entry point of [`rhythm_fuzz::maps`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhythm_fuzz::maps(data));
