//! Records as an OTLP/HTTP logs request (`ExportLogsServiceRequest`, binary
//! protobuf, POSTed to `/v1/logs` by the sink): one log record per
//! crashtrace record, with OpenTelemetry's semantic-convention attributes
//! (`exception.*`, `process.*`, `thread.id`) so that a collector's or a
//! backend's exception views work without crashtrace-specific parsing.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;

use super::traceback::{self, Language, cause_event, signal_description};
use crate::record::{Body, ExitStatus, Outcome, Record};
use proto::{
    AnyValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, LogRecord, ResourceLogs,
    ScopeLogs, any_value,
};

/// What the resource (the emitting entity) is: crashtrace on this host.
#[derive(Clone, Debug, Default)]
pub struct Resource {
    pub service_name: String,
    pub host_name: Option<String>,
    /// More resource attributes (deployment.environment, k8s.pod.name …);
    /// they replace the defaults of the same key.
    pub extra: Vec<(String, String)>,
}

/// OTLP severity numbers (logs.proto SeverityNumber) and their texts.
const SEVERITY_INFO: (i32, &str) = (9, "INFO");
const SEVERITY_WARN: (i32, &str) = (13, "WARN");
const SEVERITY_ERROR: (i32, &str) = (17, "ERROR");
const SEVERITY_FATAL: (i32, &str) = (21, "FATAL");

/// The serialized `ExportLogsServiceRequest` for `records`: one
/// ResourceLogs, one ScopeLogs, one LogRecord per record, in order.
pub fn encode_request(records: &[&Record], resource: &Resource) -> Vec<u8> {
    request(records, resource, now_unix_nanos()).encode_to_vec()
}

fn request(records: &[&Record], resource: &Resource, observed: u64) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(proto::Resource {
                attributes: resource_attributes(resource),
                dropped_attributes_count: 0,
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "crashtrace".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                log_records: records.iter().map(|r| log_record(r, observed)).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn resource_attributes(resource: &Resource) -> Vec<KeyValue> {
    let mut attrs = vec![kv_str("service.name", &resource.service_name)];
    if let Some(host) = &resource.host_name {
        attrs.push(kv_str("host.name", host));
    }
    attrs.push(kv_str("telemetry.sdk.name", "crashtrace"));
    attrs.push(kv_str("telemetry.sdk.language", "rust"));
    attrs.push(kv_str("telemetry.sdk.version", env!("CARGO_PKG_VERSION")));
    // Keys must be unique in a resource (resource.proto): a configured
    // value wins over ours.
    for (key, value) in &resource.extra {
        let new = kv_str(key, value);
        match attrs.iter_mut().find(|a| a.key == *key) {
            Some(existing) => *existing = new,
            None => attrs.push(new),
        }
    }
    attrs
}

fn log_record(r: &Record, observed: u64) -> LogRecord {
    let (severity_number, severity_text) = severity(r);
    LogRecord {
        // 0 is the protocol's "unknown" for a time that does not parse.
        time_unix_nano: unix_nanos(&r.time).unwrap_or(0),
        observed_time_unix_nano: observed,
        severity_number,
        severity_text: severity_text.to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(traceback::summary(r))),
        }),
        attributes: attributes(r),
        dropped_attributes_count: 0,
        flags: 0,
        trace_id: Vec::new(),
        span_id: Vec::new(),
        event_name: format!("crashtrace.{}", r.kind),
    }
}

/// An incident by how it ended (a crash is fatal to the process; a
/// recovery or an external kill is an error worth a look; exiting on its
/// own mid-story a warning), dropped events a warning, the rest info.
fn severity(r: &Record) -> (i32, &'static str) {
    match &r.body {
        Body::Incident(inc) => match inc.outcome {
            Outcome::Crashed => SEVERITY_FATAL,
            Outcome::Exited => SEVERITY_WARN,
            Outcome::Recovered | Outcome::Killed => SEVERITY_ERROR,
        },
        Body::Lost { .. } => SEVERITY_WARN,
        _ => SEVERITY_INFO,
    }
}

fn attributes(r: &Record) -> Vec<KeyValue> {
    let mut attrs = Vec::new();
    let incident = match &r.body {
        Body::Incident(inc) => Some(inc.as_ref()),
        _ => None,
    };

    if let Some(ex) = exception(r) {
        if let Some(ty) = ex.ty {
            attrs.push(kv_str("exception.type", &ty));
        }
        if let Some(message) = ex.message {
            attrs.push(kv_str("exception.message", &message));
        }
    }
    let frames = r.body.frames();
    let goid = incident.and_then(|i| i.thread.goid).or(r.goid);
    if !frames.is_empty() {
        let language = traceback::language_of(r);
        attrs.push(kv_str(
            "exception.stacktrace",
            &traceback::format(language, frames, goid.filter(|_| language == Language::Go)),
        ));
    }

    let tid = incident.and_then(|i| i.thread.tid).or(r.tid);
    push_int(&mut attrs, "thread.id", tid.map(u64::from));
    push_int(&mut attrs, "process.pid", r.pid.map(u64::from));
    if let Some(exe) = &r.exe {
        attrs.push(kv_str("process.executable.path", exe));
        let name = exe.rsplit('/').next().unwrap_or(exe);
        if !name.is_empty() {
            attrs.push(kv_str("process.executable.name", name));
        }
    }
    if let Some(comm) = &r.comm {
        attrs.push(kv_str("process.command", comm));
    }
    if let Some(inc) = incident {
        attrs.push(kv_str("crashtrace.outcome", inc.outcome.word()));
        attrs.push(kv_str("crashtrace.cause.type", inc.cause.kind));
        if !inc.fingerprint.is_empty() {
            attrs.push(kv_str("crashtrace.fingerprint", &inc.fingerprint));
        }
    }
    push_int(&mut attrs, "crashtrace.goroutine.id", goid);
    let recovered_by = match &r.body {
        Body::Recover(rec) => rec.recovered_by.as_ref(),
        _ => incident.and_then(|i| i.recovered_by.as_ref()),
    };
    if let Some(by) = recovered_by.and_then(|f| f.function.as_deref()) {
        attrs.push(kv_str("crashtrace.recovered_by", by));
    }
    match r.body.exit() {
        Some(ExitStatus::Code { code }) => attrs.push(kv_int("process.exit.code", code.into())),
        Some(ExitStatus::Signal {
            signal,
            core_dumped,
            ..
        }) => {
            attrs.push(kv_int("crashtrace.exit.signal", signal.into()));
            attrs.push(kv_bool("crashtrace.exit.core_dumped", core_dumped));
        }
        None => {}
    }
    if let Body::Lost { count, reason, .. } = &r.body {
        push_int(&mut attrs, "crashtrace.lost.count", Some(*count));
        attrs.push(kv_str("crashtrace.lost.reason", reason));
    }
    attrs
}

/// `exception.type` and `exception.message` of a record that is (or whose
/// story starts with) a crash; None for records that are not.
struct Exception {
    ty: Option<String>,
    message: Option<String>,
}

fn exception(r: &Record) -> Option<Exception> {
    let (kind, event, cause_message, story) = match &r.body {
        Body::Incident(inc) => (
            inc.cause.kind,
            cause_event(inc),
            Some(inc.cause.message.as_str()),
            inc.events.as_slice(),
        ),
        body => (r.kind, Some(r), message(body), std::slice::from_ref(r)),
    };
    let event_value_type = event.and_then(|e| value_type(&e.body));
    let signal = event.and_then(|e| e.body.signal());
    let signal_name = signal.map(|s| s.name.as_str());
    let ty = match kind {
        "panic" => event_value_type.map(str::to_owned),
        "fatal" => Some("fatal error".to_owned()),
        "signal" => signal_name.or(cause_message).map(str::to_owned),
        // The runtime turns the fault into a panic: its type is the Go
        // error's when the panic record is in the story.
        "sigpanic" => story
            .iter()
            .find_map(|e| match &e.body {
                Body::Panic(p) => p.value_type.as_deref(),
                _ => None,
            })
            .or(signal_name)
            .map(str::to_owned),
        "exception" => event_value_type.map(str::to_owned),
        "goexit" => Some("runtime.Goexit".to_owned()),
        // An incident the exit alone opened (killed without a signal record).
        "exit" => None,
        _ => return None,
    };
    let message = match (kind, signal) {
        ("signal" | "sigpanic", Some(signal)) => Some(signal_description(signal, r.pid)),
        ("exception", _) => event
            .and_then(|e| message(&e.body))
            .or(cause_message)
            .map(str::to_owned),
        _ => cause_message.map(str::to_owned),
    };
    Some(Exception { ty, message })
}

/// The message of a record that carries one (panic value, fatal error,
/// exception `what()`).
fn message(body: &Body) -> Option<&str> {
    match body {
        Body::Panic(p) => Some(&p.message),
        Body::Fatal(f) => Some(&f.message),
        Body::Exception(e) => e.message.as_deref(),
        _ => None,
    }
}

/// The type of a panic's value or of a thrown exception.
fn value_type(body: &Body) -> Option<&str> {
    match body {
        Body::Panic(p) => p.value_type.as_deref(),
        Body::Exception(e) => e.value_type.as_deref(),
        _ => None,
    }
}

fn unix_nanos(time: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(time).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

fn push_int(attrs: &mut Vec<KeyValue>, key: &str, value: Option<u64>) {
    // int64 on the wire; a value past i64::MAX is not a real pid/tid/goid.
    if let Some(v) = value.and_then(|v| i64::try_from(v).ok()) {
        attrs.push(kv_int(key, v));
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn kv_bool(key: &str, value: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(value))
}

/// The OTLP messages crashtrace sends, declared by hand with the field
/// numbers and wire types of opentelemetry-proto (collector/logs/v1,
/// logs/v1, common/v1, resource/v1), so the build needs no protoc. Fields
/// still in development upstream (Resource.entity_refs, the profiles
/// dictionary's `*_strindex`) are left out: a decoder skips what it does
/// not know, and crashtrace never sets them.
#[allow(dead_code)] // the full value model, not all of which is sent
pub mod proto {
    /// collector/logs/v1/logs_service.proto
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    /// logs/v1/logs.proto
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
        /// The SeverityNumber enum: an enum is a varint int32 on the wire.
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        #[prost(string, tag = "3")]
        pub severity_text: String,
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "7")]
        pub dropped_attributes_count: u32,
        #[prost(fixed32, tag = "8")]
        pub flags: u32,
        #[prost(bytes = "vec", tag = "9")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "10")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "12")]
        pub event_name: String,
    }

    /// common/v1/common.proto
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    pub mod any_value {
        /// Variant names as prost-build would generate them from the oneof.
        #[allow(clippy::enum_variant_names)]
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes = "vec", tag = "7")]
            BytesValue(Vec<u8>),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "4")]
        pub dropped_attributes_count: u32,
    }

    /// resource/v1/resource.proto
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::proto::{ExportLogsServiceRequest, KeyValue, any_value::Value as V};
    use super::*;
    use crate::export::fixture;

    fn go_incident() -> Value {
        json!({
            "schema": "crashtrace.v1", "type": "incident",
            "time": "2026-11-22T23:12:21.123456789Z", "ts_ns": 5,
            "pid": 4242, "tid": 4243, "comm": "app", "exe": "/usr/local/bin/app",
            "outcome": "crashed",
            "cause": {"type": "panic", "message": "runtime error: index out of range [5] with length 3"},
            "recovered_by": null,
            "exit": {"code": 2},
            "frames": [
                {"pc": "0x4a1b2c", "function": "runtime.gopanic", "file": "/usr/local/go/src/runtime/panic.go",
                 "line": 770, "inlined": false, "module": "/usr/local/bin/app"},
                {"pc": "0x4a1c00", "function": "main.parse", "file": "/src/app/parse.go",
                 "line": 42, "inlined": false, "module": "/usr/local/bin/app"}
            ],
            "events": [{"schema": "crashtrace.v1", "type": "panic", "goid": 7, "pid": 4242, "tid": 4243,
                "message": "runtime error: index out of range [5] with length 3",
                "value_type": "runtime.boundsError", "frames": []}],
            "thread": {"tid": 4243, "goid": 7}
        })
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a V> {
        attrs
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn s(v: &str) -> V {
        V::StringValue(v.to_owned())
    }

    fn decode(records: &[&Value], resource: &Resource) -> ExportLogsServiceRequest {
        let records: Vec<Record> = records.iter().map(|&r| fixture(r.clone())).collect();
        let refs: Vec<&Record> = records.iter().collect();
        let bytes = encode_request(&refs, resource);
        ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap()
    }

    #[test]
    fn go_incident_round_trip() {
        let incident = go_incident();
        let resource = Resource {
            service_name: "checkout".into(),
            host_name: Some("web-1".into()),
            extra: vec![
                ("deployment.environment".into(), "prod".into()),
                ("service.name".into(), "checkout-eu".into()),
            ],
        };
        let before = now_unix_nanos();
        let req = decode(&[&incident], &resource);
        assert_eq!(req.resource_logs.len(), 1);
        let rl = &req.resource_logs[0];

        let res = rl.resource.as_ref().unwrap();
        // A configured key replaces ours in place: keys stay unique.
        assert_eq!(
            attr(&res.attributes, "service.name"),
            Some(&s("checkout-eu"))
        );
        assert_eq!(
            res.attributes
                .iter()
                .filter(|a| a.key == "service.name")
                .count(),
            1
        );
        assert_eq!(attr(&res.attributes, "host.name"), Some(&s("web-1")));
        assert_eq!(
            attr(&res.attributes, "telemetry.sdk.name"),
            Some(&s("crashtrace"))
        );
        assert_eq!(
            attr(&res.attributes, "telemetry.sdk.language"),
            Some(&s("rust"))
        );
        assert_eq!(
            attr(&res.attributes, "deployment.environment"),
            Some(&s("prod"))
        );

        assert_eq!(rl.scope_logs.len(), 1);
        let scope = rl.scope_logs[0].scope.as_ref().unwrap();
        assert_eq!(scope.name, "crashtrace");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));

        let logs = &rl.scope_logs[0].log_records;
        assert_eq!(logs.len(), 1);
        let log = &logs[0];
        // 2026-11-22T23:12:21Z = 1795389141 s since the epoch.
        assert_eq!(log.time_unix_nano, 1_795_389_141_123_456_789);
        assert!(log.observed_time_unix_nano >= before);
        assert_eq!(
            (log.severity_number, log.severity_text.as_str()),
            (21, "FATAL")
        );
        assert_eq!(log.event_name, "crashtrace.incident");
        assert_eq!(
            log.body.as_ref().and_then(|b| b.value.as_ref()),
            Some(&s(
                "crashed: panic: runtime error: index out of range [5] with length 3 \
                     in main.parse (parse.go:42)"
            ))
        );

        let a = &log.attributes;
        assert_eq!(attr(a, "exception.type"), Some(&s("runtime.boundsError")));
        assert_eq!(
            attr(a, "exception.message"),
            Some(&s("runtime error: index out of range [5] with length 3"))
        );
        assert_eq!(
            attr(a, "exception.stacktrace"),
            Some(&s("goroutine 7 [running]:\n\
                     panic(...)\n\
                     \t/usr/local/go/src/runtime/panic.go:770\n\
                     main.parse(...)\n\
                     \t/src/app/parse.go:42"))
        );
        assert_eq!(attr(a, "thread.id"), Some(&V::IntValue(4243)));
        assert_eq!(attr(a, "process.pid"), Some(&V::IntValue(4242)));
        assert_eq!(
            attr(a, "process.executable.path"),
            Some(&s("/usr/local/bin/app"))
        );
        assert_eq!(attr(a, "process.executable.name"), Some(&s("app")));
        assert_eq!(attr(a, "process.command"), Some(&s("app")));
        assert_eq!(attr(a, "crashtrace.outcome"), Some(&s("crashed")));
        assert_eq!(attr(a, "crashtrace.cause.type"), Some(&s("panic")));
        assert_eq!(attr(a, "crashtrace.goroutine.id"), Some(&V::IntValue(7)));
        assert_eq!(attr(a, "process.exit.code"), Some(&V::IntValue(2)));
        // Unknown or not applicable: left out, never sent empty.
        for key in [
            "crashtrace.recovered_by",
            "crashtrace.exit.signal",
            "crashtrace.lost.count",
        ] {
            assert_eq!(attr(a, key), None, "{key}");
        }
        let mut keys: Vec<&str> = a.iter().map(|a| a.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), a.len(), "duplicate attribute keys");
    }

    #[test]
    fn native_signal_incident() {
        let incident = json!({
            "type": "incident", "time": "2026-01-01T00:00:00Z", "pid": 10, "tid": 10,
            "comm": "faults", "exe": "/opt/faults", "outcome": "crashed",
            "cause": {"type": "signal", "message": "SIGSEGV"},
            "recovered_by": null, "exit": {"signal": 11, "signal_name": "SIGSEGV", "core_dumped": false},
            "frames": [{"pc": "0x5555555551c8", "function": "deref", "file": "/src/faults.c",
                        "line": 8, "inlined": false, "module": "/opt/faults"}],
            "events": [{"type": "signal", "pid": 10, "tid": 10,
                "signal": {"number": 11, "name": "SIGSEGV", "code": "SEGV_MAPERR", "addr": "0x0",
                    "disposition": "default"}}],
            "thread": {"tid": 10, "goid": null}
        });
        let req = decode(&[&incident], &Resource::default());
        let log = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(log.time_unix_nano, 1_767_225_600_000_000_000);
        let a = &log.attributes;
        assert_eq!(attr(a, "exception.type"), Some(&s("SIGSEGV")));
        assert_eq!(
            attr(a, "exception.message"),
            Some(&s("SIGSEGV (SEGV_MAPERR) at 0x0"))
        );
        assert_eq!(
            attr(a, "exception.stacktrace"),
            Some(&s("#0  0x00005555555551c8 in deref () at /src/faults.c:8"))
        );
        assert_eq!(attr(a, "crashtrace.exit.signal"), Some(&V::IntValue(11)));
        assert_eq!(
            attr(a, "crashtrace.exit.core_dumped"),
            Some(&V::BoolValue(false))
        );
        assert_eq!(attr(a, "process.exit.code"), None);
        assert_eq!(attr(a, "crashtrace.goroutine.id"), None);
        // No host name configured: none sent.
        let res = req.resource_logs[0].resource.as_ref().unwrap();
        assert_eq!(attr(&res.attributes, "host.name"), None);
    }

    #[test]
    fn severities_and_other_records() {
        let mut recovered = go_incident();
        recovered["outcome"] = json!("recovered");
        recovered["exit"] = Value::Null;
        recovered["recovered_by"] =
            json!({"pc": "0x1", "function": "main.safe.func1", "inlined": false});
        let mut killed = go_incident();
        killed["outcome"] = json!("killed");
        let mut exited = go_incident();
        exited["outcome"] = json!("exited");
        let lost = json!({"type": "lost", "count": 12, "reason": "ring buffer full",
            "event": "signal", "time": "garbage", "pid": null});
        let attach = json!({"type": "attach", "pid": 3, "exe": "/bin/x", "runtime": "native",
            "debuginfo": "dwarf", "probes": [], "reason": "run"});
        let fatal = json!({"type": "fatal", "goid": 1, "message": "concurrent map writes",
            "source": "throw", "frames": []});
        let records = [&recovered, &killed, &exited, &lost, &attach, &fatal];
        let req = decode(&records, &Resource::default());
        let logs = &req.resource_logs[0].scope_logs[0].log_records;
        let sev: Vec<(i32, &str)> = logs
            .iter()
            .map(|l| (l.severity_number, l.severity_text.as_str()))
            .collect();
        assert_eq!(
            sev,
            [
                (17, "ERROR"),
                (17, "ERROR"),
                (13, "WARN"),
                (13, "WARN"),
                (9, "INFO"),
                (9, "INFO")
            ]
        );
        assert_eq!(
            attr(&logs[0].attributes, "crashtrace.recovered_by"),
            Some(&s("main.safe.func1"))
        );
        assert_eq!(attr(&logs[0].attributes, "process.exit.code"), None);

        // A time that does not parse is sent as 0, the protocol's "unknown".
        assert_eq!(logs[3].time_unix_nano, 0);
        assert_eq!(logs[3].event_name, "crashtrace.lost");
        assert_eq!(
            attr(&logs[3].attributes, "crashtrace.lost.count"),
            Some(&V::IntValue(12))
        );
        assert_eq!(
            attr(&logs[3].attributes, "crashtrace.lost.reason"),
            Some(&s("ring buffer full"))
        );
        assert_eq!(attr(&logs[3].attributes, "process.pid"), None);
        assert_eq!(attr(&logs[3].attributes, "exception.type"), None);

        assert_eq!(attr(&logs[4].attributes, "exception.type"), None);
        assert_eq!(
            attr(&logs[4].attributes, "process.executable.name"),
            Some(&s("x"))
        );

        assert_eq!(
            attr(&logs[5].attributes, "exception.type"),
            Some(&s("fatal error"))
        );
        assert_eq!(
            attr(&logs[5].attributes, "exception.message"),
            Some(&s("concurrent map writes"))
        );
        // No frames: no stack trace attribute.
        assert_eq!(attr(&logs[5].attributes, "exception.stacktrace"), None);
        assert_eq!(
            logs[5].body.as_ref().and_then(|b| b.value.as_ref()),
            Some(&s("fatal: concurrent map writes"))
        );
    }

    /// The hand-declared messages put each field where the .proto files do:
    /// checked on the raw bytes of a small LogRecord.
    #[test]
    fn wire_tags_match_the_proto_files() {
        let rec = LogRecord {
            time_unix_nano: 1,
            observed_time_unix_nano: 2,
            severity_number: 21,
            severity_text: "F".into(),
            body: None,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: Vec::new(),
            span_id: Vec::new(),
            event_name: "e".into(),
        };
        let bytes = rec.encode_to_vec();
        let expect: Vec<u8> = [
            vec![(1 << 3) | 1],
            1u64.to_le_bytes().to_vec(), // time_unix_nano: fixed64, field 1
            vec![(2 << 3), 21],          // severity_number: varint, field 2
            vec![(3 << 3) | 2, 1, b'F'], // severity_text: string, field 3
            vec![(11 << 3) | 1],
            2u64.to_le_bytes().to_vec(), // observed_time_unix_nano: fixed64, field 11
            vec![(12 << 3) | 2, 1, b'e'], // event_name: string, field 12
        ]
        .concat();
        assert_eq!(bytes, expect);
    }
}
