//! CFI unwinding: an ELF file's .eh_frame/.debug_frame rows applied to registers and stack bytes as a BPF record carries them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::fuzzing::unwind(data));
