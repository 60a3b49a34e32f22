#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svoct_formats::loi::fuzz_loi(data));
