//! The warm-up thread: opens the DWARF of every binary the file cache
//! opens (its unit index, CFI, and the units crash stacks usually pass
//! through: see `ElfModule::warm`) ahead of the first crash that needs
//! it, a module at a time, at a lower priority than the stages. Analysis
//! never waits behind it, except for the module a step is opening at that
//! moment.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::symbolize::FileCache;

/// How much lower than the stages the warm-up runs (nice).
const NICENESS: i32 = 10;

pub fn spawn(
    cache: Arc<FileCache>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("warm-up".into())
        .spawn(move || {
            super::set_niceness(NICENESS);
            while !stop.load(Ordering::Relaxed) {
                if cache.has_cold_modules() {
                    cache.warm_step();
                } else {
                    cache.wait_for_cold(Duration::from_millis(100));
                }
            }
        })
}
