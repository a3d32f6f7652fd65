//! Exporters: records to log pipelines and dashboards, any combination at
//! once. Encoders (`otlp`, `syslog`, `journald`, `traceback`) are pure; transports live
//! in `sinks` (tokio tasks behind bounded queues: the drain loop never
//! waits on a collector); `file` writes NDJSON files that logrotate and log
//! shippers can follow; `metrics` serves Prometheus text.

pub mod file;
pub mod journald;
pub mod metrics;
pub mod otlp;
pub mod sinks;
pub mod syslog;
pub mod traceback;

use std::{sync::Arc, time::Duration};

use crate::record::Record;
use anyhow::Result;

/// Every exporter of a session. Empty by default (`run`/`attach` without
/// `--otlp`): then it costs nothing.
#[derive(Default)]
pub struct Exporters {
    sinks: Vec<(sinks::SinkHandle, Option<tokio::task::JoinHandle<()>>)>,
    files: Vec<file::FileSink>,
    pub metrics: Option<Arc<metrics::Metrics>>,
    /// Drops already reported per sink (as `lost` records).
    reported_drops: Vec<u64>,
    /// The same per file.
    reported_file_drops: Vec<u64>,
}

impl Exporters {
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty() && self.files.is_empty() && self.metrics.is_none()
    }

    pub fn add_sink(&mut self, (sink, task): (sinks::SinkHandle, tokio::task::JoinHandle<()>)) {
        self.sinks.push((sink, Some(task)));
        self.reported_drops.push(0);
    }

    pub fn add_file(&mut self, f: file::FileSink) {
        self.files.push(f);
        self.reported_file_drops.push(0);
    }

    /// One record to every exporter (files written now, others queued).
    /// Nothing here stops tracing: what a sink cannot take is counted
    /// ([`Self::new_drops`]).
    pub fn export(&mut self, record: &Record) {
        if self.is_empty() {
            return;
        }
        if let Some(m) = &self.metrics {
            m.observe(record);
        }
        let about_exports = matches!(
            record.body,
            crate::record::Body::Lost {
                event: "export",
                ..
            }
        );
        for f in &mut self.files {
            f.offer(record, !about_exports);
        }
        if self.sinks.is_empty() {
            return;
        }
        // One copy for every sink's queue, which outlives the caller's.
        let shared = Arc::new(record.clone());
        for (sink, _) in &self.sinks {
            sink.offer(&shared);
        }
    }

    /// Drops since the last call, per sink: (sink name, count).
    pub fn new_drops(&mut self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (f, seen) in self.files.iter().zip(&mut self.reported_file_drops) {
            if f.dropped > *seen {
                out.push((
                    format!("file {} (could not be written)", f.path().display()),
                    f.dropped - *seen,
                ));
                *seen = f.dropped;
            }
        }
        for ((sink, _), seen) in self.sinks.iter().zip(&mut self.reported_drops) {
            let now = sink
                .stats
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed);
            if now > *seen {
                out.push((
                    format!("{} (queue full or unreachable)", sink.name),
                    now - *seen,
                ));
                *seen = now;
            }
        }
        out
    }

    /// SIGHUP: files are reopened (logrotate moved them away).
    pub fn reopen(&mut self) -> Result<()> {
        for f in &mut self.files {
            f.reopen()?;
        }
        Ok(())
    }

    /// Flushes the queues (at most `limit` in all) before exit; what was
    /// not delivered shows in [`Self::new_drops`] afterwards.
    pub async fn close(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        for (sink, task) in &mut self.sinks {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(task) = task.take() {
                sink.close(task, left).await;
            }
        }
    }

    /// Per-sink counters for the metrics endpoint.
    pub fn sink_stats(&self) -> Vec<(String, Arc<sinks::SinkStats>)> {
        self.sinks
            .iter()
            .map(|(s, _)| (s.name.clone(), Arc::clone(&s.stats)))
            .collect()
    }
}

/// A record for a unit test, from the contract's JSON with what the test
/// does not look at filled in where it is missing: the fields every record
/// has (no pid, no time), an empty stack and story, an incident's thread
/// and a signal record's registers; an incident's events likewise.
#[cfg(test)]
fn fixture(mut v: serde_json::Value) -> Record {
    fn fill(v: &mut serde_json::Value) {
        let Some(fields) = v.as_object_mut() else {
            return;
        };
        let registers = crate::record::Registers::from(&tracer_common::Registers::default());
        let defaults = serde_json::json!({
            "schema": crate::record::SCHEMA, "time": "", "ts_ns": 0,
            "pid": null, "tid": null, "comm": null, "exe": null,
            "frames": [], "events": [], "thread": {"tid": null, "goid": null},
            "registers": registers,
        });
        if let serde_json::Value::Object(defaults) = defaults {
            for (key, value) in defaults {
                fields.entry(key).or_insert(value);
            }
        }
        if let Some(events) = fields.get_mut("events").and_then(|e| e.as_array_mut()) {
            events.iter_mut().for_each(fill);
        }
    }
    fill(&mut v);
    Record::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v:#}"))
}

/// The host's name, for syslog and OTLP's `host.name`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `service.name`: the configured one, else OTEL_SERVICE_NAME, else
/// "crashtrace".
pub fn service_name(configured: Option<&str>) -> String {
    configured
        .map(str::to_owned)
        .or_else(|| {
            std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "crashtrace".to_owned())
}
