//! Records as systemd-journald entries, in the journal's native protocol
//! (one datagram per entry to `/run/systemd/journal/socket`): the verdict
//! as MESSAGE, syslog's severity as PRIORITY, `SYSLOG_IDENTIFIER=crashtrace`
//! (so `journalctl -t crashtrace` finds them), a MESSAGE_ID per record type
//! for incidents, and the facts as `CRASHTRACE_*` fields that journalctl
//! matches on (`journalctl CRASHTRACE_EXE=/usr/bin/api`,
//! `CRASHTRACE_FINGERPRINT=…`), with the whole record as JSON in
//! `CRASHTRACE_RECORD`. The transport is the sink's.

use std::path::PathBuf;

use super::{syslog, traceback};
use crate::record::{Body, Record};

/// MESSAGE_ID of crashtrace's incident entries (a 128-bit id made for
/// crashtrace, as systemd-coredump has its own), so that
/// `journalctl MESSAGE_ID=…` lists every crash story.
pub const INCIDENT_MESSAGE_ID: &str = "5d0c1e6f3b7a4c2e9a1f08b6c4d2e7a1";

/// An entry larger than this is sent without its `CRASHTRACE_RECORD`
/// (the kernel's datagram limit is near 208 KiB by default; journald takes
/// bigger ones only through a memfd, not worth it for a copy of what the
/// other fields and the NDJSON outputs already hold).
const MAX_ENTRY: usize = 128 * 1024;

/// journald's socket: the system's, or a journal namespace's
/// (`systemd-journald@NAME`, read with `journalctl --namespace=NAME`).
pub fn socket_path(namespace: Option<&str>) -> PathBuf {
    match namespace {
        Some(ns) => PathBuf::from(format!("/run/systemd/journal.{ns}/socket")),
        None => PathBuf::from("/run/systemd/journal/socket"),
    }
}

/// One entry in the native protocol.
pub fn entry(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let summary = traceback::summary(record);
    field(
        &mut out,
        "MESSAGE",
        if summary.is_empty() {
            record.kind
        } else {
            &summary
        },
    );
    field(&mut out, "PRIORITY", &syslog::severity(record).to_string());
    field(&mut out, "SYSLOG_IDENTIFIER", "crashtrace");
    if matches!(record.body, Body::Incident(_)) {
        field(&mut out, "MESSAGE_ID", INCIDENT_MESSAGE_ID);
    }
    field(&mut out, "CRASHTRACE_TYPE", record.kind);
    for (name, value) in syslog::facts(record) {
        field(
            &mut out,
            &format!("CRASHTRACE_{}", name.to_ascii_uppercase()),
            &value,
        );
    }
    // The time it happened (journald stamps the time it was received).
    if let Ok(at) = humantime::parse_rfc3339(&record.time)
        && let Ok(since) = at.duration_since(std::time::UNIX_EPOCH)
    {
        field(
            &mut out,
            "CRASHTRACE_TIME_USEC",
            &since.as_micros().to_string(),
        );
    }
    if let Ok(json) = serde_json::to_string(record)
        && out.len() + json.len() < MAX_ENTRY
    {
        field(&mut out, "CRASHTRACE_RECORD", &json);
    }
    out
}

/// `NAME=value\n`; a value with a newline as `NAME\n`, its length as a
/// little-endian u64, the bytes, `\n` (the protocol's binary-safe form).
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    if value.contains('\n') {
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    } else {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry read back as journald parses the native protocol.
    fn parse(mut data: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n').unwrap();
            let line = &data[..end];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                fields.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
                ));
                data = &data[end + 1..];
            } else {
                let name = String::from_utf8(line.to_vec()).unwrap();
                let rest = &data[end + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                let value = String::from_utf8(rest[8..8 + len].to_vec()).unwrap();
                assert_eq!(rest[8 + len], b'\n');
                fields.push((name, value));
                data = &rest[8 + len + 1..];
            }
        }
        fields
    }

    #[test]
    fn an_incident_is_an_entry_with_its_facts_as_fields() {
        let record = crate::export::fixture(serde_json::json!({
            "type": "incident", "time": "2026-11-22T23:12:21.123456789Z",
            "pid": 4242, "tid": 4243, "comm": "app", "exe": "/usr/local/bin/app",
            "outcome": "crashed",
            "cause": {"type": "panic", "message": "index out of range [5] with length 3"},
            "recovered_by": null, "exit": {"code": 2}, "fingerprint": "0123456789abcdef",
            "events": [{"type": "panic", "goid": 7,
                        "message": "index out of range [5] with length 3",
                        "value_type": "runtime.boundsError"}],
            "thread": {"tid": 4243, "goid": 7}
        }));
        let fields = parse(&entry(&record));
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert!(
            get("MESSAGE").unwrap().starts_with("crashed: "),
            "{fields:?}"
        );
        assert_eq!(get("PRIORITY"), Some("2"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("crashtrace"));
        assert_eq!(get("MESSAGE_ID"), Some(INCIDENT_MESSAGE_ID));
        assert_eq!(get("CRASHTRACE_TYPE"), Some("incident"));
        assert_eq!(
            get("CRASHTRACE_PID"),
            record.pid.map(|p| p.to_string()).as_deref()
        );
        assert_eq!(get("CRASHTRACE_OUTCOME"), Some("crashed"));
        assert_eq!(get("CRASHTRACE_FINGERPRINT"), Some("0123456789abcdef"));
        assert_eq!(get("CRASHTRACE_EXE"), Some("/usr/local/bin/app"));
        assert_eq!(get("CRASHTRACE_TIME_USEC"), Some("1795389141123456"));
        let json: serde_json::Value =
            serde_json::from_str(get("CRASHTRACE_RECORD").unwrap()).unwrap();
        assert_eq!(json["type"], "incident");
    }

    #[test]
    fn a_value_with_a_newline_is_sent_binary_safe() {
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", "two\nlines");
        field(&mut out, "X", "y");
        assert_eq!(
            parse(&out),
            [
                ("MESSAGE".to_owned(), "two\nlines".to_owned()),
                ("X".to_owned(), "y".to_owned())
            ]
        );
    }
}
