//! ELF files: segments, symbols, DWARF (lines, inlined frames, statement rows, call sites), .gopclntab without DWARF, CFI, Go build info, layouts and type names.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_user::fuzzing::elf(data));
