//! libFuzzer entry point of [`rhythm_fuzz::config_json`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhythm_fuzz::config_json(data));
