//! Exporters with real receivers: an OTLP/HTTP receiver that decodes
//! crashtrace's requests with the official OpenTelemetry protobuf
//! definitions (PyPI opentelemetry-proto), rsyslogd, NDJSON files moved
//! away by a logrotate-style rename + SIGHUP.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
};

use common::*;
use serde_json::Value;

/// The Python that has opentelemetry-proto (installed by `xtask setup`).
fn otlp_python() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or("/root".into());
    home.join(".cache/crashtrace/otlp-venv/bin/python")
}

/// A log record's attributes as key → JSON value (MessageToDict's AnyValue).
fn attributes(list: &Value) -> std::collections::HashMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|kv| {
            let v = &kv["value"];
            let value = v
                .get("stringValue")
                .cloned()
                .or_else(|| {
                    v.get("intValue")
                        .and_then(|i| i.as_str().and_then(|s| s.parse::<i64>().ok()))
                        .map(Value::from)
                })
                .unwrap_or_else(|| v.clone());
            (kv["key"].as_str().unwrap_or("").to_owned(), value)
        })
        .collect()
}

#[test]
fn otlp_logs_decode_with_the_official_protobuf_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let received = dir.path().join("received.jsonl");
    let mut receiver = KillOnDrop(
        Command::new(otlp_python())
            .arg(workspace_root().join("testdata/export/otlp_receiver.py"))
            .arg(&received)
            .stdout(Stdio::piped())
            .spawn()
            .expect("OTLP receiver (run `./xtask.sh setup`)"),
    );
    let mut line = String::new();
    BufReader::new(receiver.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().strip_prefix("port ").unwrap().parse().unwrap();

    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let bin = build_go("crashy", version);
    let out = dir.path().join("events.ndjson");
    let output = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port}/v1/logs"))
        .args(["run", "--"])
        .arg(&bin)
        .arg("index")
        .env("OTEL_SERVICE_NAME", "checkout")
        .output()
        .unwrap();
    assert_eq!(shell_status(&output), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let panic_line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("panic: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let message = panic_line.trim_end_matches(" [recovered]").to_owned();
    let records = read_records(&out);
    let incident = of_type(&records, "incident")[0].clone();

    let requests: Vec<Value> = std::fs::read_to_string(&received)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!requests.is_empty(), "the receiver got no request");
    assert!(
        requests.iter().all(|r| r.get("error").is_none()),
        "{requests:#?}"
    );
    assert_eq!(requests[0]["path"], "/v1/logs");
    assert_eq!(requests[0]["content_type"], "application/x-protobuf");
    let resource_logs = &requests[0]["request"]["resourceLogs"][0];
    let resource = attributes(&resource_logs["resource"]["attributes"]);
    assert_eq!(resource["service.name"], "checkout");
    let logs: Vec<&Value> = requests
        .iter()
        .flat_map(|r| {
            r["request"]["resourceLogs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|rl| rl["scopeLogs"].as_array().cloned().unwrap_or_default())
        .flat_map(|sl| sl["logRecords"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<Value>>()
        .leak()
        .iter()
        .collect();
    assert_eq!(logs.len(), 1, "one crash story, one log record: {logs:#?}");
    let log = logs[0];
    assert_eq!(log["severityNumber"], "SEVERITY_NUMBER_FATAL");
    assert_eq!(log["severityText"], "FATAL");
    let attrs = attributes(&log["attributes"]);
    assert_eq!(attrs["exception.type"], "runtime.boundsError");
    assert_eq!(attrs["exception.message"], message.as_str());
    assert_eq!(attrs["process.pid"], incident["pid"]);
    assert_eq!(attrs["thread.id"], incident["tid"]);
    assert_eq!(attrs["process.executable.path"], bin.to_str().unwrap());
    // The Go runtime's own traceback format, with the same functions.
    let trace = attrs["exception.stacktrace"].as_str().unwrap();
    assert!(trace.starts_with("goroutine 1 [running]:\n"), "{trace}");
    assert!(trace.contains("main.field("), "{trace}");
    assert!(
        trace.contains("\n\t") && trace.contains("main.go:"),
        "{trace}"
    );
    assert_eq!(
        log["timeUnixNano"].as_str().unwrap().len(),
        19,
        "nanoseconds since the epoch"
    );
}

/// `report` renders a recorded file as the human timeline, and names the
/// frames the traced host could not: the program ran stripped (no symbols,
/// no DWARF), and the analysis machine has the unstripped build at the
/// frames' module path (same code, same file offsets).
#[test]
fn report_renders_ndjson_and_resymbolizes_from_the_build_at_hand() {
    let built = build_c("crash_after");
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::copy(&built, &app).unwrap();
    assert!(
        Command::new("strip")
            .arg("-s")
            .arg(&app)
            .status()
            .unwrap()
            .success()
    );
    let out = dir.path().join("events.ndjson");
    let output = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .args(["run", "--"])
        .arg(&app)
        .arg("0")
        .output()
        .unwrap();
    assert_eq!(shell_status(&output), 139);
    let records = read_records(&out);
    let sig = of_type(&records, "signal")[0].clone();
    assert!(sig["frames"][0]["function"].is_null(), "stripped: {sig:#}");
    assert!(sig["frames"][0]["file_offset"].is_string());

    // Unnamed as recorded.
    let plain = Command::new(crashtrace_bin())
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert!(plain.status.success());
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.contains("CRASHED: SIGSEGV (SEGV_MAPERR) at 0x0"),
        "{text}"
    );
    assert!(!text.contains("handle_job"), "{text}");

    // The debug build at the module's path: named, with file and line.
    std::fs::copy(&built, &app).unwrap();
    let mut child = Command::new(crashtrace_bin())
        .args(["report", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&std::fs::read(&out).unwrap()).unwrap();
        stdin.write_all(b"not a record\n").unwrap();
    }
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success());
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(text.contains(" handle_job ("), "{text}");
    assert!(text.contains("crash_after.c:10)"), "{text}");
    assert!(
        text.contains(
            "CRASHED: SIGSEGV (SEGV_MAPERR) at 0x0 in handle_job (crash_after.c:10) — pid"
        ),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&done.stderr).contains("1 lines were not crashtrace records"));
}

/// A collector that is down costs the traced program nothing and loses
/// nothing silently: crashtrace retries briefly, then reports what it
/// could not deliver as a `lost` record, and exits on time.
#[test]
fn unreachable_collector_is_reported_as_lost_not_waited_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again: nothing listens there
    let bin = build_c("crash_after");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let started = std::time::Instant::now();
    let output = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port}/v1/logs"))
        .args(["run", "--"])
        .arg(&bin)
        .arg("0")
        .output()
        .unwrap();
    assert_eq!(shell_status(&output), 139);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let records = read_records(&out);
    assert_eq!(of_type(&records, "incident").len(), 1);
    let lost = of_type(&records, "lost");
    assert_eq!(lost.len(), 1, "{records:#?}");
    assert_eq!(lost[0]["event"], "export");
    assert_eq!(lost[0]["count"], 1, "the incident");
    assert!(
        lost[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not exported: otlp")
    );
    // Said once, when it started to fail, with why.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot send"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains(&format!("OTLP endpoint http://127.0.0.1:{port}/v1/logs"))
            && said[0].contains("refused"),
        "{stderr}"
    );
}

/// `--redact REGEX`: user data in messages is masked in every record and
/// the verdict before it is written (the program's own stderr is its own).
#[test]
fn redact_masks_messages_before_any_output() {
    let bin = build_cxx("uncaught");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let output = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .args(["--redact", r"/etc/\S+", "run", "--"])
        .arg(&bin)
        .output()
        .unwrap();
    assert_eq!(shell_status(&output), 134);
    assert!(String::from_utf8_lossy(&output.stderr).contains("/etc/app.conf"));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("/etc/app.conf"), "{text}");
    let records = read_records(&out);
    let exc = of_type(&records, "exception");
    let last = exc.last().unwrap();
    assert_eq!(last["message"], "config file missing: [redacted]");
    let inc = of_type(&records, "incident");
    assert_eq!(
        inc[0]["cause"]["message"],
        "config file missing: [redacted]"
    );
    // Bad patterns are usage errors.
    let bad = Command::new(crashtrace_bin())
        .args(["--redact", "(", "run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
