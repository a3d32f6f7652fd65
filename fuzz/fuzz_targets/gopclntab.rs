//! Go's .gopclntab, in an ELF file or found by its magic: functions, pc-value tables, inline trees.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::fuzzing::gopclntab(data));
