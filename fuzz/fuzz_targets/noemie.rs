#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svoct_formats::noemie::fuzz_noemie(data));
