//! Phone numbers and identities, as request fields are read.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    number_management::api::fuzzing::phone_number(data);
});
