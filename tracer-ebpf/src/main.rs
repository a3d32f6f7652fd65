//! crashtrace's kernel side.
//!
//! Tracepoints on the kernel's signal and process-lifetime paths. Every
//! program first checks that the process is in `TRACED` (a hash lookup), so
//! untraced processes pay one map lookup on these already-slow paths and
//! nothing else. Records go to one ring buffer; a reservation that fails is
//! counted in `LOST` so userspace can report exact drop counts.
//!
//! One module per probe family: `signals` (signal_deliver, signal_generate
//! and the crash stack copy), `process` (exit, fork, exec), `oom` (the OOM
//! killer's victims), `go`, `modules` (ld.so's list of loaded objects, at a
//! crash and at dlopen's return), `cxx` and `rust`; `maps` holds every map
//! and the `OFFSETS` global, `util` the helpers they share.
#![no_std]
#![no_main]

mod cxx;
mod go;
mod maps;
mod modules;
mod oom;
mod process;
mod rust;
mod signals;
mod util;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
