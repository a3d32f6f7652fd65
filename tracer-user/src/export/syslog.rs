//! Records as RFC 5424 syslog messages, for rsyslog/syslog-ng/journald
//! pipelines: the verdict as MSG, the facts as structured data that
//! collectors parse into fields. Framing and transport are the sink's;
//! `frame_octet_counting` is the RFC 6587 framing for TCP.

use super::traceback::{self, cause_event};
use crate::record::{Body, ExitStatus, Outcome, Record};

/// RFC 5424's NILVALUE, for a header field or structured data we lack.
const NIL: &str = "-";

/// The SD-ID of crashtrace's structured data. 32473 is the enterprise
/// number RFC 5612 reserves for documentation and examples, as RFC 5424's
/// own examples use it; crashtrace has no registered one.
const SD_ID: &str = "crashtrace@32473";

/// Header field limits (RFC 5424 §6.2).
const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const PROCID_MAX: usize = 128;
const MSGID_MAX: usize = 32;

/// Syslog severities (RFC 5424 §6.2.1).
const CRITICAL: u8 = 2;
const ERROR: u8 = 3;
const WARNING: u8 = 4;
const INFORMATIONAL: u8 = 6;

#[derive(Clone, Debug)]
pub struct Syslog {
    /// 0–23; e.g. 1 = user, 3 = daemon, 16–23 = local0–local7.
    pub facility: u8,
    pub app_name: String,
    pub hostname: String,
}

impl Syslog {
    /// One RFC 5424 message, without framing and without a BOM:
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`.
    pub fn format(&self, record: &Record) -> String {
        // A facility past 23 cannot be encoded; local7 is the nearest.
        let pri = u16::from(self.facility.min(23)) * 8 + u16::from(severity(record));
        let timestamp = timestamp(&record.time).unwrap_or_else(|| NIL.to_owned());
        // PROCID is the traced process's: the message is about it, not
        // about crashtrace.
        let procid = record.pid.map(|p| p.to_string());
        let mut msg = format!(
            "<{pri}>1 {timestamp} {} {} {} {} {}",
            header_field(Some(&self.hostname), HOSTNAME_MAX),
            header_field(Some(&self.app_name), APP_NAME_MAX),
            header_field(procid.as_deref(), PROCID_MAX),
            header_field(Some(record.kind), MSGID_MAX),
            structured_data(record),
        );
        let summary = traceback::summary(record);
        if !summary.is_empty() {
            msg.push(' ');
            msg.push_str(&summary);
        }
        msg
    }
}

/// RFC 6587 octet counting (§3.4.1), for syslog over TCP/TLS: `LEN MSG`,
/// LEN in bytes, so that a message may contain newlines.
pub fn frame_octet_counting(msg: &[u8]) -> Vec<u8> {
    let mut framed = format!("{} ", msg.len()).into_bytes();
    framed.extend_from_slice(msg);
    framed
}

/// A crash that killed the process is critical; a recovery or an external
/// kill an error; exiting mid-story and dropped events warnings.
pub(crate) fn severity(r: &Record) -> u8 {
    match &r.body {
        Body::Incident(inc) => match inc.outcome {
            Outcome::Crashed => CRITICAL,
            Outcome::Exited => WARNING,
            Outcome::Recovered | Outcome::Killed => ERROR,
        },
        Body::Lost { .. } => WARNING,
        _ => INFORMATIONAL,
    }
}

/// The record's time as RFC 5424 allows it: RFC 3339 with at most six
/// fractional digits (§6.2.3), so nanoseconds are truncated to µs. A time
/// that does not parse becomes NILVALUE rather than an invalid header.
fn timestamp(time: &str) -> Option<String> {
    let t = humantime::parse_rfc3339(time).ok()?;
    Some(humantime::format_rfc3339_micros(t).to_string())
}

/// A header field: PRINTUSASCII only (§6), at most `max` of them,
/// NILVALUE when empty or missing.
fn header_field(value: Option<&str>, max: usize) -> String {
    let s: String = value
        .unwrap_or_default()
        .chars()
        .filter(|c| matches!(c, '!'..='~'))
        .take(max)
        .collect();
    if s.is_empty() { NIL.to_owned() } else { s }
}

/// `[crashtrace@32473 pid="42" …]`, or NILVALUE when the record has none
/// of the parameters. Missing values are left out, not sent empty.
fn structured_data(r: &Record) -> String {
    let params = facts(r);
    if params.is_empty() {
        return NIL.to_owned();
    }
    let mut sd = format!("[{SD_ID}");
    for (name, value) in params {
        sd.push_str(&format!(" {}=\"{}\"", sd_name(name), escape_param(&value)));
    }
    sd.push(']');
    sd
}

/// The record's facts a log pipeline indexes (syslog's structured data,
/// journald's fields): pid, tid, comm, exe, outcome, cause type,
/// fingerprint, goroutine, exit code or signal, the story's signal.
/// Missing values are left out.
pub(crate) fn facts(r: &Record) -> Vec<(&'static str, String)> {
    let incident = match &r.body {
        Body::Incident(inc) => Some(inc.as_ref()),
        _ => None,
    };
    let mut params: Vec<(&str, String)> = Vec::new();
    let mut push = |name: &'static str, value: Option<String>| {
        if let Some(v) = value {
            params.push((name, v));
        }
    };
    let tid = incident.and_then(|i| i.thread.tid).or(r.tid);
    let goid = incident.and_then(|i| i.thread.goid).or(r.goid);
    push("pid", r.pid.map(|p| p.to_string()));
    push("tid", tid.map(|t| t.to_string()));
    push("comm", r.comm.clone());
    push("exe", r.exe.clone());
    push("outcome", incident.map(|i| i.outcome.word().to_owned()));
    push("cause_type", incident.map(|i| i.cause.kind.to_owned()));
    push(
        "fingerprint",
        incident
            .map(|i| i.fingerprint.clone())
            .filter(|f| !f.is_empty()),
    );
    push("goid", goid.map(|g| g.to_string()));
    let exit = r.body.exit();
    push(
        "exit_code",
        match exit {
            Some(ExitStatus::Code { code }) => Some(code.to_string()),
            _ => None,
        },
    );
    push(
        "exit_signal",
        match exit {
            Some(ExitStatus::Signal { signal, .. }) => Some(signal.to_string()),
            _ => None,
        },
    );
    // The signal the story (or this signal record) is about.
    let signal_source = match incident {
        Some(inc) => cause_event(inc),
        None => Some(r),
    };
    push(
        "signal",
        signal_source
            .and_then(|e| e.body.signal())
            .map(|s| s.name.clone()),
    );
    params
}

/// An SD-NAME: 1–32 PRINTUSASCII except `=`, space, `]` and `"` (§6.3.2).
fn sd_name(name: &str) -> String {
    name.chars()
        .filter(|c| matches!(c, '!'..='~') && !matches!(c, '=' | ']' | '"'))
        .take(32)
        .collect()
}

/// A PARAM-VALUE: UTF-8 with `"`, `\` and `]` escaped by a backslash
/// (§6.3.3).
fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::export::fixture;

    fn syslog() -> Syslog {
        Syslog {
            facility: 3,
            app_name: "crashtrace".into(),
            hostname: "web-1".into(),
        }
    }

    fn incident() -> Value {
        json!({
            "schema": "crashtrace.v1", "type": "incident",
            "time": "2026-11-22T23:12:21.123456789Z", "ts_ns": 1,
            "pid": 4242, "tid": 4243, "comm": "app", "exe": "/usr/local/bin/app",
            "outcome": "crashed",
            "cause": {"type": "panic", "message": "runtime error: index out of range [5] with length 3"},
            "recovered_by": null,
            "exit": {"code": 2},
            "frames": [
                {"pc": "0x4a1b2c", "function": "runtime.gopanic", "file": "/go/src/runtime/panic.go", "line": 770, "inlined": false, "module": "/usr/local/bin/app"},
                {"pc": "0x4a1c00", "function": "main.parse", "file": "/src/app/parse.go", "line": 42, "inlined": false, "module": "/usr/local/bin/app"}
            ],
            "events": [{"type": "panic", "goid": 7, "message": "runtime error: index out of range [5] with length 3", "value_type": "runtime.boundsError"}],
            "thread": {"tid": 4243, "goid": 7}
        })
    }

    #[test]
    fn incident_message() {
        let m = syslog().format(&fixture(incident()));
        assert_eq!(
            m,
            "<26>1 2026-11-22T23:12:21.123456Z web-1 crashtrace 4242 incident \
             [crashtrace@32473 pid=\"4242\" tid=\"4243\" comm=\"app\" exe=\"/usr/local/bin/app\" \
             outcome=\"crashed\" cause_type=\"panic\" goid=\"7\" exit_code=\"2\"] \
             crashed: panic: runtime error: index out of range [5] with length 3 \
             in main.parse (parse.go:42)"
        );
    }

    #[test]
    fn pri_from_facility_and_severity() {
        let s = syslog(); // daemon: 3 * 8 = 24
        let mut r = incident();
        let pri = |s: &Syslog, r: &Value| {
            let m = s.format(&fixture(r.clone()));
            m[1..m.find('>').unwrap()].parse::<u16>().unwrap()
        };
        assert_eq!(pri(&s, &r), 24 + 2);
        r["outcome"] = json!("killed");
        assert_eq!(pri(&s, &r), 24 + 3);
        r["outcome"] = json!("recovered");
        assert_eq!(pri(&s, &r), 24 + 3);
        r["outcome"] = json!("exited");
        assert_eq!(pri(&s, &r), 24 + 4);
        let lost =
            json!({"type": "lost", "count": 3, "reason": "ring buffer full", "event": "signal"});
        assert_eq!(pri(&s, &lost), 24 + 4);
        let attach = json!({"type": "attach", "runtime": "native", "debuginfo": "dwarf",
            "probes": [], "reason": "run"});
        assert_eq!(pri(&s, &attach), 24 + 6);
        let exit = json!({"type": "exit", "exit": {"code": 0}});
        let user = Syslog {
            facility: 1,
            ..syslog()
        };
        assert_eq!(pri(&user, &exit), 8 + 6);
        // Out-of-range facilities are clamped to local7 (23).
        let bad = Syslog {
            facility: 200,
            ..syslog()
        };
        assert_eq!(pri(&bad, &exit), 23 * 8 + 6);
    }

    #[test]
    fn param_values_are_escaped() {
        let r = json!({"type": "signal", "pid": 1, "comm": "a\"b\\c]d",
            "exe": "/x/[y]", "signal": {"name": "SIGSEGV", "number": 11, "disposition": "default"}});
        let m = syslog().format(&fixture(r));
        assert!(
            m.contains(r#"comm="a\"b\\c\]d" exe="/x/[y\]" signal="SIGSEGV"]"#),
            "{m}"
        );
    }

    #[test]
    fn missing_fields_are_nilvalue() {
        let s = Syslog {
            facility: 1,
            app_name: String::new(),
            hostname: "bad host\u{e9}".into(),
        };
        let r = json!({"type": "exception", "time": "yesterday", "language": "c++"});
        let m = s.format(&fixture(r));
        // Timestamp unparsable, hostname stripped of non-PRINTUSASCII,
        // app name empty, no pid, no structured data.
        assert_eq!(m, "<14>1 - badhost - - exception - exception");
    }

    #[test]
    fn header_fields_are_truncated() {
        let s = Syslog {
            facility: 1,
            app_name: "a".repeat(60),
            hostname: "h".repeat(300),
        };
        let mut r = fixture(json!({"type": "exit", "exit": {"code": 0}}));
        r.kind = "x".repeat(40).leak();
        let m = s.format(&r);
        let fields: Vec<&str> = m.split(' ').collect();
        assert_eq!(fields[2].len(), 255);
        assert_eq!(fields[3].len(), 48);
        assert_eq!(fields[5].len(), 32);
    }

    #[test]
    fn timestamp_truncated_to_microseconds() {
        assert_eq!(
            timestamp("2026-11-22T23:12:21.123456789Z").as_deref(),
            Some("2026-11-22T23:12:21.123456Z")
        );
        // Truncated, not rounded: .9999999 stays in the same second.
        assert_eq!(
            timestamp("2026-11-22T23:12:21.999999999Z").as_deref(),
            Some("2026-11-22T23:12:21.999999Z")
        );
        assert_eq!(
            timestamp("2026-11-22T23:12:21Z").as_deref(),
            Some("2026-11-22T23:12:21.000000Z")
        );
        assert_eq!(timestamp("not a time"), None);
    }

    #[test]
    fn octet_counting_counts_bytes() {
        assert_eq!(
            frame_octet_counting(b"<14>1 - - - - - -"),
            b"17 <14>1 - - - - - -"
        );
        // "é" is two bytes in UTF-8.
        assert_eq!(frame_octet_counting("é".as_bytes()), "2 é".as_bytes());
    }

    #[test]
    fn sd_names_are_printusascii() {
        assert_eq!(sd_name("exit code=\"]"), "exitcode");
        for name in [
            "pid",
            "tid",
            "comm",
            "exe",
            "outcome",
            "cause_type",
            "goid",
            "exit_code",
            "exit_signal",
            "signal",
        ] {
            assert_eq!(sd_name(name), name);
        }
    }

    #[test]
    fn signal_incident_names_signal_and_exit_signal() {
        let r = json!({"type": "incident", "pid": 9, "outcome": "crashed",
            "cause": {"type": "signal", "message": "SIGSEGV"},
            "exit": {"signal": 11, "signal_name": "SIGSEGV", "core_dumped": false},
            "events": [{"type": "signal", "signal": {"number": 11, "name": "SIGSEGV", "code": "SEGV_MAPERR",
                "addr": "0x0", "disposition": "default"}}],
            "frames": [], "thread": {"tid": 9, "goid": null}});
        let m = syslog().format(&fixture(r));
        assert!(
            m.contains(
                r#"exit_signal="11" signal="SIGSEGV"] crashed: SIGSEGV (SEGV_MAPERR) at 0x0"#
            ),
            "{m}"
        );
        assert!(!m.contains("goid"), "{m}");
    }
}
