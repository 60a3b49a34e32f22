#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svoct_formats::b2::fuzz_parse(data));
