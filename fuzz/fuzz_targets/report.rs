//! NDJSON lines given to `crashtrace report`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::fuzzing::report(data));
