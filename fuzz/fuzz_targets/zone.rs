//! Memory-zone decoder: never panics; a successful decode re-encodes to a stable model.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    svoct_formats::zone::fuzz_decode(data);
});
