#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svoct_formats::arl::fuzz_arl(data));
