#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svoct_oct::smtp::fuzz_session(data));
