#![no_main]
#[path = "../drivers/pop3.rs"]
mod driver;
libfuzzer_sys::fuzz_target!(|data: &[u8]| driver::fuzz_pop3(data));
