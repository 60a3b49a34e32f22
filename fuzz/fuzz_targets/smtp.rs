#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svoct_oct::inbound::session::fuzz_session(data));
