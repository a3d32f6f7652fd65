//! Prometheus text exposition on `GET /metrics`: records by type,
//! incidents by outcome, lost records, traced processes, crash-stack
//! symbolization time, exporter counters.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::{Context as _, Result};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::sinks::SinkStats;
use crate::record::{Body, Record};

/// (exe, outcome, cause type, signal).
type IncidentLabels = (String, &'static str, &'static str, String);

/// Executables with their own label set in
/// `crashtrace_incidents_by_cause_total` (bounded cardinality).
const MAX_LABEL_SETS: usize = 200;

#[derive(Default)]
pub struct Metrics {
    records: Mutex<BTreeMap<&'static str, u64>>,
    incidents: Mutex<BTreeMap<&'static str, u64>>,
    /// Incidents by (executable, outcome, cause type, signal): at most
    /// [`MAX_LABEL_SETS`] executables, the rest counted as "other".
    incidents_by: Mutex<BTreeMap<IncidentLabels, u64>>,
    /// Crash loops reported, by program (executable or cgroup).
    crashloops: Mutex<BTreeMap<String, u64>>,
    lost: AtomicU64,
    pub traced_processes: AtomicU64,
    pub watched_files: AtomicU64,
    /// Crash stacks unwound and symbolized, and the microseconds it took.
    pub crash_stacks: AtomicU64,
    pub crash_stack_us: AtomicU64,
    sinks: Mutex<Vec<(String, Arc<SinkStats>)>>,
}

impl Metrics {
    pub fn observe(&self, record: &Record) {
        match &record.body {
            Body::Lost { count, .. } => {
                self.lost.fetch_add(*count, Ordering::Relaxed);
            }
            Body::Incident(inc) => {
                if let Ok(mut m) = self.incidents.lock() {
                    *m.entry(inc.outcome.word()).or_default() += 1;
                }
                if let Ok(mut m) = self.incidents_by.lock() {
                    let signal = match inc.exit {
                        Some(crate::record::ExitStatus::Signal { signal_name, .. }) => {
                            signal_name.to_owned()
                        }
                        _ => inc
                            .cause
                            .signal
                            .as_ref()
                            .map(|s| s.name.clone())
                            .unwrap_or_default(),
                    };
                    let mut exe = record.exe.clone().unwrap_or_default();
                    let known = m.keys().any(|(e, ..)| *e == exe);
                    if !known
                        && m.keys()
                            .map(|(e, ..)| e)
                            .collect::<std::collections::BTreeSet<_>>()
                            .len()
                            >= MAX_LABEL_SETS
                    {
                        exe = "other".to_owned();
                    }
                    *m.entry((exe, inc.outcome.word(), inc.cause.kind, signal))
                        .or_default() += 1;
                }
            }
            Body::CrashLoop(c) => {
                if let Ok(mut m) = self.crashloops.lock()
                    && (m.len() < 1000 || m.contains_key(&c.program))
                {
                    *m.entry(c.program.clone()).or_default() += 1;
                }
            }
            _ => {}
        }
        if let Ok(mut m) = self.records.lock() {
            *m.entry(record.kind).or_default() += 1;
        }
    }

    pub fn set_sinks(&self, sinks: Vec<(String, Arc<SinkStats>)>) {
        if let Ok(mut s) = self.sinks.lock() {
            *s = sinks;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "crashtrace_records_total",
            "counter",
            "Records emitted, by type.",
        );
        if let Ok(m) = self.records.lock() {
            for (k, v) in m.iter() {
                out.push_str(&format!(
                    "crashtrace_records_total{{type=\"{}\"}} {v}\n",
                    esc(k)
                ));
            }
        }
        family(
            &mut out,
            "crashtrace_incidents_total",
            "counter",
            "Crash stories closed, by outcome.",
        );
        if let Ok(m) = self.incidents.lock() {
            for (k, v) in m.iter() {
                out.push_str(&format!(
                    "crashtrace_incidents_total{{outcome=\"{}\"}} {v}\n",
                    esc(k)
                ));
            }
        }
        family(
            &mut out,
            "crashtrace_incidents_by_cause_total",
            "counter",
            "Crash stories closed, by executable, outcome, cause type and signal.",
        );
        if let Ok(m) = self.incidents_by.lock() {
            for ((exe, outcome, cause, signal), v) in m.iter() {
                out.push_str(&format!(
                    "crashtrace_incidents_by_cause_total{{exe=\"{}\",outcome=\"{}\",cause=\"{}\",signal=\"{}\"}} {v}\n",
                    esc(exe),
                    esc(outcome),
                    esc(cause),
                    esc(signal)
                ));
            }
        }
        family(
            &mut out,
            "crashtrace_build_info",
            "gauge",
            "The crashtrace build serving these metrics.",
        );
        out.push_str(&format!(
            "crashtrace_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ));
        family(
            &mut out,
            "crashtrace_crashloops_total",
            "counter",
            "Crash loops reported (a program died N times in M seconds), by program.",
        );
        if let Ok(m) = self.crashloops.lock() {
            for (k, v) in m.iter() {
                out.push_str(&format!(
                    "crashtrace_crashloops_total{{program=\"{}\"}} {v}\n",
                    esc(k)
                ));
            }
        }
        family(
            &mut out,
            "crashtrace_lost_events_total",
            "counter",
            "Events dropped (ring buffer full, rate limits, exporter queues).",
        );
        out.push_str(&format!(
            "crashtrace_lost_events_total {}\n",
            self.lost.load(Ordering::Relaxed)
        ));
        family(
            &mut out,
            "crashtrace_traced_processes",
            "gauge",
            "Processes traced now.",
        );
        out.push_str(&format!(
            "crashtrace_traced_processes {}\n",
            self.traced_processes.load(Ordering::Relaxed)
        ));
        family(
            &mut out,
            "crashtrace_watched_files",
            "gauge",
            "Executables whose processes are traced from exec.",
        );
        out.push_str(&format!(
            "crashtrace_watched_files {}\n",
            self.watched_files.load(Ordering::Relaxed)
        ));
        family(
            &mut out,
            "crashtrace_crash_stack_symbolize_seconds",
            "summary",
            "Time to unwind and symbolize a crash stack.",
        );
        out.push_str(&format!(
            "crashtrace_crash_stack_symbolize_seconds_sum {:.6}\ncrashtrace_crash_stack_symbolize_seconds_count {}\n",
            self.crash_stack_us.load(Ordering::Relaxed) as f64 / 1e6,
            self.crash_stacks.load(Ordering::Relaxed)
        ));
        family(
            &mut out,
            "crashtrace_exported_records_total",
            "counter",
            "Records handed to an exporter's destination, by exporter and result.",
        );
        if let Ok(s) = self.sinks.lock() {
            for (name, st) in s.iter() {
                out.push_str(&format!(
                    "crashtrace_exported_records_total{{exporter=\"{0}\",result=\"sent\"}} {1}\ncrashtrace_exported_records_total{{exporter=\"{0}\",result=\"dropped\"}} {2}\n",
                    esc(name),
                    st.sent.load(Ordering::Relaxed),
                    st.dropped.load(Ordering::Relaxed)
                ));
            }
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

/// Label values: backslash, quote and newline escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listen` until the runtime ends.
pub async fn serve(listen: &str, metrics: Arc<Metrics>) -> Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("metrics: cannot listen on {listen}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors, say: wait instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let Ok(Some(head)) =
                    tokio::time::timeout(std::time::Duration::from_secs(5), read_head(&mut stream))
                        .await
                else {
                    return;
                };
                let request = String::from_utf8_lossy(&head);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/metrics" => ("200 OK", metrics.render()),
                    // Liveness for supervisors: answered by the same task
                    // that serves /metrics, once the config is applied.
                    "/healthz" => ("200 OK", "ok\n".to_owned()),
                    _ => (
                        "404 Not Found",
                        "not found: try /metrics or /healthz\n".to_owned(),
                    ),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }))
}

/// The request's head, up to its blank line. A client may send it in
/// several segments; answering after the first one would close the
/// connection on unread bytes, which resets it and loses the reply.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    const MAX_HEAD: usize = 8192;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scraper that writes its request in pieces still gets its reply
    /// (answering the first piece used to reset the connection).
    #[tokio::test]
    async fn a_request_in_several_segments_is_answered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let task = serve(&format!("127.0.0.1:{port}"), Arc::new(Metrics::default()))
            .await
            .expect("listening");
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.set_nodelay(true).expect("nodelay");
        for piece in ["GET ", "/metrics", " HTTP/1.1\r\nHost: x\r\n", "\r\n"] {
            s.write_all(piece.as_bytes()).await.expect("write");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .await
            .expect("a reply, not a reset");
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.contains("crashtrace_incidents_total"), "{reply}");
        task.abort();
    }

    #[test]
    fn counts_render_as_prometheus_text() {
        let m = Metrics::default();
        let crashed = crate::export::fixture(serde_json::json!({"type": "incident",
            "outcome": "crashed", "cause": {"type": "signal", "message": "SIGSEGV"}}));
        m.observe(&crashed);
        m.observe(&crashed);
        m.observe(&crate::export::fixture(
            serde_json::json!({"type": "lost", "count": 7,
            "reason": "ring buffer full", "event": "signal"}),
        ));
        let text = m.render();
        assert!(
            text.contains("crashtrace_records_total{type=\"incident\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("crashtrace_incidents_total{outcome=\"crashed\"} 2\n"));
        assert!(text.contains("crashtrace_lost_events_total 7\n"));
        assert!(text.contains("# TYPE crashtrace_traced_processes gauge\n"));
    }
}
