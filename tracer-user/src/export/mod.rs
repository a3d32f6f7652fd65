//! Exporters: records to log pipelines (OTLP/HTTP, syslog), encoders here,
//! transports in the sinks.
pub mod otlp;
pub mod syslog;
pub mod traceback;
