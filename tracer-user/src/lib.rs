//! crashtrace as a library: the modules the `crashtrace` binary is a thin
//! CLI over (see ARCHITECTURE.md for how a probe hit becomes a line). A
//! library so that the fuzz targets (`fuzz/`) reach the parsers of outside
//! data: ELF, DWARF, CFI, .gopclntab, ring-buffer records, /proc/PID/maps,
//! the daemon's config, NDJSON reports.

pub mod cli;
pub mod commands;
pub mod crashloop;
pub mod daemon;
pub mod diag;
pub mod export;
pub mod fuzzing;
pub mod golang;
#[cfg(test)]
mod hostile_tests;
pub mod incident;
pub mod inspect;
pub mod maps;
pub mod oom;
pub mod output;
pub mod pipeline;
pub mod privilege;
pub mod probes;
pub mod procfs;
pub mod record;
pub mod report;
pub mod runtimes;
pub mod selection;
pub mod signals;
pub mod symbolize;
pub mod unwind;

/// Why crashtrace stops early; each maps to one exit status and one line.
#[derive(Debug)]
pub enum Failure {
    Usage(String),
    Privilege(String),
    Other(anyhow::Error),
}

impl Failure {
    /// Loading BPF fails with EPERM when a capability is missing even though
    /// the up-front check passed (e.g. a lockdown or a user namespace).
    pub(crate) fn from_load(err: anyhow::Error) -> Self {
        let eperm = err.chain().any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.raw_os_error() == Some(libc::EPERM))
        });
        if eperm {
            Failure::Privilege(format!(
                "{err:#}: operation not permitted (needs CAP_BPF and CAP_PERFMON)"
            ))
        } else {
            Failure::Other(err)
        }
    }
}
