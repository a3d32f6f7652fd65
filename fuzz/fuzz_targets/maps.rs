//! /proc/PID/maps text and cgroup paths.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::fuzzing::maps(data));
