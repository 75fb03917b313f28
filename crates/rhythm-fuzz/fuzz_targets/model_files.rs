//! libFuzzer entry point of [`rhythm_fuzz::model_files`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rhythm_fuzz::model_files(data));
