//! Ring-buffer records as the BPF side writes them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::fuzzing::records(data));
