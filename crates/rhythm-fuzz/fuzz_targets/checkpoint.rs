//! libFuzzer entry point of [`rhythm_fuzz::checkpoint`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhythm_fuzz::checkpoint(data));
