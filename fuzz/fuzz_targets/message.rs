#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| svoct_mail::profile::fuzz_message(data));
