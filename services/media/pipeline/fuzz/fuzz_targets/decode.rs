//! `cargo +nightly fuzz run decode` (from the crate directory).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portico_media_pipeline::fuzz_decode(data);
});
