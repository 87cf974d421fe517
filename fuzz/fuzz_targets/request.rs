//! Every request message decoded from arbitrary bytes, through its limits and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    number_management::api::fuzzing::request(data);
});
