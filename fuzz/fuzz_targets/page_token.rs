//! Page tokens of every listing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    number_management::api::fuzzing::page_token(data);
});
