//! Diagnostics: crashtrace's own notices and warnings, and those of the
//! libraries it uses (aya says why a map or program could not be created),
//! through the `log` facade to stderr, one line each, prefixed with the
//! tool's name. Warnings always show; `-v` adds notices and the libraries'
//! warnings.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr {
    verbose: bool,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        let ours = m.target().starts_with("tracer_user") || m.target().starts_with("crashtrace");
        match (ours, self.verbose) {
            (true, true) => m.level() <= Level::Info,
            (true, false) => m.level() <= Level::Warn,
            (false, true) => m.level() <= Level::Warn,
            (false, false) => m.level() <= Level::Error,
        }
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("crashtrace: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (once; later calls do nothing).
pub fn init(verbose: bool) {
    static VERBOSE: Stderr = Stderr { verbose: true };
    static QUIET: Stderr = Stderr { verbose: false };
    let logger: &'static Stderr = if verbose { &VERBOSE } else { &QUIET };
    if log::set_logger(logger).is_ok() {
        log::set_max_level(if verbose {
            LevelFilter::Info
        } else {
            LevelFilter::Warn
        });
    }
}
