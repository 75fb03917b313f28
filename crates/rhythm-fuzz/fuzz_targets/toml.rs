//! libFuzzer entry point of [`rhythm_fuzz::toml`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhythm_fuzz::toml(data));
