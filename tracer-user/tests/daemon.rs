//! The daemon on a churning host: 200 short-lived crashing processes of 3
//! programs (two picked by an exe glob, one by its comm), some in their own
//! pid namespace, started over 20 s. Every incident arrives exactly once,
//! with the right pid, in the NDJSON file (moved away halfway by a
//! logrotate-style rename + SIGHUP), in a real rsyslogd's output, and in
//! the metrics; `crashtrace report` renders the files; memory stays
//! bounded.

mod common;

use std::{
    collections::{HashMap, HashSet},
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// rsyslogd in the foreground, receiving RFC 5424 over TCP (octet
/// counting) and writing each message in RFC 5424 form to `out`.
fn start_rsyslog(dir: &Path, port: u16, out: &Path) -> KillOnDrop {
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
action(type="omfile" file="{out}" template="RSYSLOG_SyslogProtocol23Format")
"#,
            dir = dir.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (Debian package rsyslog, installed by xtask setup)");
    // Listening once a connection succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "rsyslogd did not start");
        thread::sleep(Duration::from_millis(50));
    }
    KillOnDrop(child)
}

#[test]
fn daemon_follows_churn_and_exports_every_incident_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let built = build_c("crash_after");
    std::fs::create_dir(dir.join("bin")).unwrap();
    // The comm selector is host-wide: a name of this run's own (another
    // run of this test at the same time must not feed this daemon).
    let comm = format!("churny{}", std::process::id() % 1_000_000_000);
    let programs = [dir.join("bin/alpha"), dir.join("bin/beta"), dir.join(&comm)];
    for p in &programs {
        std::fs::copy(&built, p).unwrap();
    }
    let syslog_port = free_port();
    let syslog_out = dir.join("syslog.out");
    let _rsyslog = start_rsyslog(dir, syslog_port, &syslog_out);
    let metrics_port = free_port();
    let events = dir.join("events.ndjson");
    let config = dir.join("crashtrace.toml");
    std::fs::write(
        &config,
        format!(
            r#"[select]
exe = ["{bin}/*"]
comm = ["{comm}"]

[limits]
max_records_per_sec = 1000

[[output]]
type = "file"
path = "{events}"

[[output]]
type = "syslog"
address = "tcp://127.0.0.1:{syslog_port}"
records = ["incident"]

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
            bin = dir.join("bin").display(),
            events = events.display(),
        ),
    )
    .unwrap();
    let mut daemon = KillOnDrop(
        Command::new(crashtrace_bin())
            .arg("daemon")
            .arg("--config")
            .arg(&config)
            .arg("-v")
            .stderr(std::fs::File::create(dir.join("daemon.stderr")).unwrap())
            .spawn()
            .unwrap(),
    );
    let daemon_pid = daemon.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(metrics_port, "/metrics").is_none() {
        assert!(Instant::now() < deadline, "daemon did not start");
        thread::sleep(Duration::from_millis(50));
    }

    // 200 processes over 20 s; every 10th in its own pid namespace.
    const N: usize = 200;
    let mut children: Vec<(Child, bool)> = Vec::new();
    let mut rss_early = 0;
    for i in 0..N {
        let program = &programs[i % 3];
        let delay = ((i * 7) % 40).to_string();
        let in_namespace = i % 10 == 9;
        let child = if in_namespace {
            Command::new("unshare")
                .args(["--pid", "--fork", "--mount-proc"])
                .arg(program)
                .arg(&delay)
                .stderr(Stdio::null())
                .spawn()
        } else {
            Command::new(program)
                .arg(&delay)
                .stderr(Stdio::null())
                .spawn()
        }
        .unwrap();
        children.push((child, in_namespace));
        if i == 20 {
            rss_early = rss_kib(daemon_pid);
        }
        if i == N / 2 {
            // logrotate: move the file away, then tell the daemon.
            std::fs::rename(&events, dir.join("events.ndjson.1")).unwrap();
            Command::new("kill")
                .args(["-HUP", &daemon_pid.to_string()])
                .status()
                .unwrap();
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut direct_pids = HashSet::new();
    for (mut c, ns) in children {
        if !ns {
            direct_pids.insert(u64::from(c.id()));
        }
        let _ = c.wait();
    }
    thread::sleep(Duration::from_secs(1));
    let rss_late = rss_kib(daemon_pid);
    let metrics = http_get(metrics_port, "/metrics").unwrap_or_else(|| {
        panic!(
            "/metrics unreachable at the end; daemon alive: {}; its stderr:\n{}",
            std::fs::metadata(format!("/proc/{daemon_pid}")).is_ok(),
            std::fs::read_to_string(dir.join("daemon.stderr")).unwrap_or_default()
        )
    });
    Command::new("kill")
        .args(["-TERM", &daemon_pid.to_string()])
        .status()
        .unwrap();
    assert_eq!(daemon.0.wait().unwrap().code(), Some(0));
    eprintln!("daemon RSS: {rss_early} KiB after 20 processes, {rss_late} KiB after {N}");

    // The NDJSON files: each process's incident exactly once.
    let mut records = read_records(&dir.join("events.ndjson.1"));
    let second = read_records(&events);
    assert!(
        !second.is_empty(),
        "records after the SIGHUP went to the new file"
    );
    records.extend(second);
    let incidents = of_type(&records, "incident");
    let mut per_pid: HashMap<u64, usize> = HashMap::new();
    for inc in &incidents {
        *per_pid.entry(inc["pid"].as_u64().unwrap()).or_default() += 1;
        assert_eq!(inc["outcome"], "crashed");
        // Named from DWARF, with its line: a process that exits while its
        // binary is opened must not leave the file without DWARF.
        assert_eq!(
            (&inc["frames"][0]["function"], &inc["frames"][0]["line"]),
            (&Value::from("handle_job"), &Value::from(10)),
            "{inc:#}\ndaemon's stderr:\n{}",
            std::fs::read_to_string(dir.join("daemon.stderr")).unwrap_or_default()
        );
    }
    assert_eq!(
        incidents.len(),
        N,
        "lost or duplicated: {per_pid:?}; daemon's stderr:\n{}",
        std::fs::read_to_string(dir.join("daemon.stderr")).unwrap_or_default()
    );
    assert!(per_pid.values().all(|&n| n == 1), "{per_pid:?}");
    for pid in &direct_pids {
        assert!(per_pid.contains_key(pid), "no incident for pid {pid}");
    }
    // The namespaced ones: the host pid, and the pid they had inside.
    let namespaced: Vec<&&Value> = incidents.iter().filter(|i| i["ns_pid"] == 1).collect();
    assert_eq!(
        namespaced.len(),
        N / 10,
        "ns_pid on namespaced processes; the others:\n{:#?}",
        incidents
            .iter()
            .filter(|i| !direct_pids.contains(&i["pid"].as_u64().unwrap_or(0)) && i["ns_pid"] != 1)
            .collect::<Vec<_>>()
    );
    assert!(namespaced.iter().all(|i| i["pid"] != 1));
    assert!(
        incidents.iter().all(|i| i["cgroup"].is_string()),
        "cgroup on every record"
    );
    assert!(
        of_type(&records, "lost").is_empty(),
        "{:#?}",
        of_type(&records, "lost")
    );

    // rsyslogd got one RFC 5424 message per incident, with our data.
    let deadline = Instant::now() + Duration::from_secs(10);
    let syslog = loop {
        let text = std::fs::read_to_string(&syslog_out).unwrap_or_default();
        if text.lines().count() >= N || Instant::now() > deadline {
            break text;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = syslog
        .lines()
        .filter(|l| l.contains(" incident "))
        .collect();
    assert_eq!(lines.len(), N, "{syslog}");
    let some_pid = incidents[0]["pid"].as_u64().unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("<26>1 ")
            && l.contains(&format!("[crashtrace@32473 pid=\"{some_pid}\""))
            && l.contains("outcome=\"crashed\"")
            && l.contains("handle_job")),
        "{}",
        lines[0]
    );

    // The metrics saw them too.
    assert!(
        metrics.contains(&format!(
            "crashtrace_incidents_total{{outcome=\"crashed\"}} {N}\n"
        )),
        "{metrics}"
    );

    // `report` renders both files as the human timeline.
    let report = Command::new(crashtrace_bin())
        .arg("report")
        .arg(dir.join("events.ndjson.1"))
        .arg(&events)
        .output()
        .unwrap();
    assert!(report.status.success());
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("CRASHED: ")).count(),
        N
    );
    assert!(text.contains("in handle_job (crash_after.c:10)"), "{text}");

    // Memory stays bounded: 180 more processes add little.
    assert!(
        rss_late < rss_early + 32 * 1024,
        "RSS grew from {rss_early} KiB to {rss_late} KiB"
    );
}

/// The systemd unit's capability set (not full root) is enough: tracing a
/// crash works with exactly the capabilities packaging/crashtrace.service
/// grants, read from the unit itself.
#[test]
fn the_units_capabilities_are_enough_without_full_root() {
    let unit =
        std::fs::read_to_string(workspace_root().join("packaging/crashtrace.service")).unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap()
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    assert!(caps.contains(&"+bpf".to_owned()), "{caps:?}");
    let bin = build_c("crash_after");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let output = Command::new("setpriv")
        .arg(format!("--bounding-set=-all,{}", caps.join(",")))
        .arg(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .args(["run", "--"])
        .arg(&bin)
        .arg("0")
        .output()
        .unwrap();
    assert_eq!(shell_status(&output), 139, "{output:?}");
    let records = read_records(&out);
    let inc = of_type(&records, "incident");
    assert_eq!(inc.len(), 1, "{records:#?}");
    assert_eq!(inc[0]["frames"][0]["function"], "handle_job");

    // One capability fewer: the error names it, exit status 77.
    let without_bpf: Vec<&str> = caps
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "+bpf")
        .collect();
    let output = Command::new("setpriv")
        .arg(format!("--bounding-set=-all,{}", without_bpf.join(",")))
        .arg(crashtrace_bin())
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&output.stderr).contains("CAP_BPF"));
}

fn start_daemon(config_text: &str, dir: &Path) -> (KillOnDrop, std::path::PathBuf) {
    start_daemon_logging_to(config_text, dir, None)
}

/// As [`start_daemon`], its stderr (the log) to `log` when given.
fn start_daemon_logging_to(
    config_text: &str,
    dir: &Path,
    log: Option<&Path>,
) -> (KillOnDrop, std::path::PathBuf) {
    let events = dir.join("events.ndjson");
    let config = dir.join("crashtrace.toml");
    std::fs::write(
        &config,
        format!(
            "{config_text}\n[[output]]\ntype = \"file\"\npath = \"{}\"\n",
            events.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(crashtrace_bin());
    cmd.args(["-q", "daemon", "--config"]).arg(&config);
    if let Some(log) = log {
        cmd.stderr(std::fs::File::create(log).unwrap());
    }
    let daemon = KillOnDrop(cmd.spawn().unwrap());
    // Ready once the file exists (opened after the config is applied).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !events.exists() {
        assert!(Instant::now() < deadline, "daemon did not start");
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(300));
    (daemon, events)
}

/// A copy of the C test program `program` as `dir`/bin/`name` (a
/// directory of its own for the daemon's exe selector): (bin dir, copy).
fn program_copy(dir: &Path, program: &str, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let copy = bin_dir.join(name);
    std::fs::copy(build_c(program), &copy).unwrap();
    (bin_dir, copy)
}

/// Runs `program` (a crashing one) to its end: its pid.
fn crash_once(program: &Path) -> u64 {
    let child = Command::new(program)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = u64::from(child.id());
    let status = KillOnDrop(child).0.wait().unwrap();
    assert_eq!(status.code(), None, "it dies of a signal");
    pid
}

fn stop(mut daemon: KillOnDrop) {
    Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(daemon.0.wait().unwrap().code(), Some(0));
}

/// `go = true`: a Go program the daemon never heard of is recognised at
/// its exec, its probes placed, and its panic recorded as Go tells it.
#[test]
fn daemon_selects_every_go_program() {
    use std::io::{BufRead as _, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let (daemon, events) = start_daemon("[select]\ngo = true\n", dir.path());
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let bin = build_go("crashy", version);
    let mut child = KillOnDrop(
        Command::new(&bin)
            .arg("panic-on-input")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u64 = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_records(&events)
        .iter()
        .any(|r| r["type"] == "attach" && r["pid"] == pid)
    {
        assert!(
            Instant::now() < deadline,
            "not attached: {:#?}",
            read_records(&events)
        );
        thread::sleep(Duration::from_millis(50));
    }
    child.0.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let _ = child.0.wait();
    thread::sleep(Duration::from_millis(500));
    stop(daemon);
    let records = read_records(&events);
    let attach = records
        .iter()
        .find(|r| r["type"] == "attach" && r["pid"] == pid)
        .unwrap();
    assert_eq!(attach["runtime"], "go");
    // Every Go program on the host is selected: only this one's count.
    let inc: Vec<_> = of_type(&records, "incident")
        .into_iter()
        .filter(|r| r["pid"] == pid)
        .collect();
    assert_eq!(inc.len(), 1, "{records:#?}");
    assert_eq!(inc[0]["cause"]["type"], "panic");
    assert_eq!(inc[0]["cause"]["message"], "bad input: x");
}

/// `max_records_per_sec`: a process flooding signals gets that many
/// records a second; the rest are counted in `lost` records, exactly.
#[test]
fn daemon_rate_limit_sheds_and_counts_exactly() {
    const N: u64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let (_, storm) = program_copy(dir.path(), "signal_storm", "storm");
    let (daemon, events) = start_daemon(
        &format!(
            "[select]\nexe = [\"{}\"]\n[limits]\nmax_records_per_sec = 50\n",
            storm.display()
        ),
        dir.path(),
    );
    let out = Command::new(&storm).arg(N.to_string()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("handled {N}")));
    thread::sleep(Duration::from_millis(500));
    stop(daemon);
    let records = read_records(&events);
    let kept = of_type(&records, "signal").len() as u64;
    let shed: u64 = of_type(&records, "lost")
        .iter()
        .filter(|l| l["event"] == "rate_limit")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    let ring_lost: u64 = of_type(&records, "lost")
        .iter()
        .filter(|l| l["event"] != "rate_limit")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert!((50..=150).contains(&kept), "kept {kept}");
    assert_eq!(
        kept + shed + ring_lost,
        N,
        "kept {kept} shed {shed} ring {ring_lost}"
    );
    assert!(shed > 0);
}

/// `cgroup = [...]`: processes started in a selected cgroup (or below it)
/// are traced, others running the same program are not.
#[test]
fn daemon_selects_by_cgroup() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let root = mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_owned())
        })
        .expect("cgroup v2 mounted");
    let name = format!("crashtrace-test-{}", std::process::id());
    let cg = Path::new(&root).join(&name);
    std::fs::create_dir(&cg).unwrap();
    struct RemoveCgroup(std::path::PathBuf);
    impl Drop for RemoveCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cleanup = RemoveCgroup(cg.clone());

    let dir = tempfile::tempdir().unwrap();
    let (daemon, events) =
        start_daemon("[select]\ncgroup = [\"/crashtrace-test-*\"]\n", dir.path());
    let bin = build_c("crash_after");
    // One inside the cgroup, one outside, same program.
    let inside = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} 100",
            cg.display(),
            bin.display()
        ))
        .spawn()
        .unwrap();
    let inside_pid = u64::from(inside.id());
    let outside = Command::new(&bin).arg("100").spawn().unwrap();
    let outside_pid = u64::from(outside.id());
    for mut c in [inside, outside] {
        let _ = c.wait();
    }
    thread::sleep(Duration::from_millis(500));
    stop(daemon);
    let records = read_records(&events);
    let inc = of_type(&records, "incident");
    assert_eq!(inc.len(), 1, "{records:#?}");
    assert_eq!(inc[0]["pid"], inside_pid);
    assert_eq!(inc[0]["cgroup"], format!("/{name}").as_str());
    assert!(!records.iter().any(|r| r["pid"] == outside_pid));
}

/// `[crashloop]`: a program that dies `deaths` times within the window
/// (a supervisor restarting it) is reported once as a crash loop: a
/// `crashloop` record with its pids and crash fingerprints, and the
/// metric `crashtrace_crashloops_total{program=…}`. A program that died
/// fewer times is not.
#[test]
fn daemon_reports_a_program_in_a_crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let looping = bin_dir.join("looping");
    let once = bin_dir.join("once");
    for p in [&looping, &once] {
        std::fs::copy(build_c("null_deref"), p).unwrap();
    }
    let port = free_port();
    let (daemon, events) = start_daemon(
        &format!(
            "[select]\nexe = [\"{}/*\"]\n[crashloop]\ndeaths = 3\nwithin_seconds = 60\n\
             [metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            bin_dir.display()
        ),
        dir.path(),
    );
    // Ready when /metrics answers: the selection is applied by then (the
    // output file is opened before).
    let ready = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/metrics").is_none() {
        assert!(Instant::now() < ready, "/metrics never answered");
        thread::sleep(Duration::from_millis(50));
    }
    let pids: Vec<u64> = (0..3).map(|_| crash_once(&looping)).collect();
    let _ = Command::new(&once)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let metric = format!(
        "crashtrace_crashloops_total{{program=\"{}\"}} 1",
        looping.display()
    );
    let mut text = String::new();
    while !text.contains(&metric) {
        assert!(
            Instant::now() < deadline,
            "no {metric} in {text}\npids {pids:?}, records: {:#?}",
            read_records(&events)
                .iter()
                .map(|r| format!("{} {} {} {}", r["type"], r["pid"], r["exe"], r["reason"]))
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(100));
        text = http_get(port, "/metrics").unwrap_or_default();
    }
    stop(daemon);
    let records = read_records(&events);
    let loops = of_type(&records, "crashloop");
    assert_eq!(loops.len(), 1, "{loops:#?}");
    let l = loops[0];
    assert_eq!(l["program"], looping.display().to_string());
    assert_eq!(l["deaths"], 3);
    assert_eq!(l["window_seconds"], 60);
    assert_eq!(l["pids"].as_array().unwrap(), &pids);
    // The same bug each time: one fingerprint, the incidents'.
    let fp = of_type(&records, "incident")
        .iter()
        .find(|i| i["pid"] == pids[0])
        .map(|i| i["fingerprint"].clone())
        .unwrap();
    assert_eq!(l["fingerprints"], serde_json::json!([fp]));
    assert!(
        !text.contains(&format!("program=\"{}\"", once.display())),
        "{text}"
    );
}

/// SIGHUP with an edited config: `/metrics` keeps answering with its
/// counters (it went dark for good when the listener was rebound on the
/// same address), the log says what changed, an unchanged config says so,
/// and a new `[metrics]` address is served from the reload on.
#[test]
fn sighup_reload_keeps_metrics_and_says_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let app = bin_dir.join("app");
    std::fs::copy(build_c("null_deref"), &app).unwrap();
    let events = dir.path().join("events.ndjson");
    let config = dir.path().join("crashtrace.toml");
    let log = dir.path().join("daemon.log");
    let write_config = |port: u16, deaths: u32| {
        std::fs::write(
            &config,
            format!(
                "[select]\nexe = [\"{}/*\"]\n[crashloop]\ndeaths = {deaths}\n\
                 [metrics]\nlisten = \"127.0.0.1:{port}\"\n\
                 [[output]]\ntype = \"file\"\npath = \"{}\"\n",
                bin_dir.display(),
                events.display()
            ),
        )
        .unwrap();
    };
    let wait_for = |what: &dyn Fn() -> bool, ctx: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !what() {
            assert!(Instant::now() < deadline, "{ctx}");
            thread::sleep(Duration::from_millis(50));
        }
    };
    let port = free_port();
    write_config(port, 5);
    let daemon = KillOnDrop(
        Command::new(crashtrace_bin())
            .args(["daemon", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let crashed = "crashtrace_incidents_total{outcome=\"crashed\"} 1\n";
    wait_for(
        &|| http_get(port, "/metrics").is_some(),
        "/metrics never answered",
    );
    let status = Command::new(&app).stderr(Stdio::null()).status().unwrap();
    assert_eq!(status.code(), None);
    wait_for(
        &|| http_get(port, "/metrics").is_some_and(|m| m.contains(crashed)),
        "the crash never counted",
    );
    // By executable, cause and signal; the build; liveness.
    let m = http_get(port, "/metrics").unwrap_or_default();
    assert!(
        m.contains(&format!(
            "crashtrace_incidents_by_cause_total{{exe=\"{}\",outcome=\"crashed\",cause=\"signal\",signal=\"SIGSEGV\"}} 1\n",
            app.display()
        )),
        "{m}"
    );
    assert!(m.contains("crashtrace_build_info{version=\""), "{m}");
    let health = http_get(port, "/healthz").unwrap_or_default();
    assert!(
        health.starts_with("HTTP/1.1 200 OK") && health.ends_with("\r\n\r\nok\n"),
        "{health:?}"
    );
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &daemon.0.id().to_string()])
            .status()
            .unwrap();
    };
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // An edited section, the same metrics address.
    write_config(port, 4);
    hup();
    wait_for(&|| log_text().contains("reloaded"), "no reload line");
    assert!(
        log_text().contains("([crashloop] changed)"),
        "{}",
        log_text()
    );
    for _ in 0..5 {
        let m = http_get(port, "/metrics").unwrap_or_default();
        assert!(
            m.contains(crashed),
            "after the reload: {m:?}\n{}",
            log_text()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Unchanged.
    hup();
    wait_for(
        &|| log_text().contains("unchanged"),
        "no line for an unchanged config",
    );
    // A new address: served, with the counters.
    let port2 = free_port();
    write_config(port2, 4);
    hup();
    wait_for(
        &|| http_get(port2, "/metrics").is_some_and(|m| m.contains(crashed)),
        "the new address never answered with the counters",
    );
    // (The log line comes once the reload is done, after the rebind.)
    wait_for(
        &|| log_text().contains("([metrics] changed)"),
        "no reload line for [metrics]",
    );
    assert!(!log_text().contains("cannot listen"), "{}", log_text());
    stop(daemon);
}

/// An unreachable syslog socket is said once when sending starts to fail
/// (was silent until the shutdown summary), and once when it works again,
/// with how many records were lost in between.
#[test]
fn an_unreachable_sink_is_logged_when_it_fails_and_when_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (bin_dir, crasher) = program_copy(dir.path(), "null_deref", "crasher");
    let socket = dir.path().join("log.sock");
    let log = dir.path().join("daemon.log");
    let (daemon, events) = start_daemon_logging_to(
        &format!(
            "[select]\nexe = [\"{}/*\"]\n[[output]]\ntype = \"syslog\"\naddress = \"{}\"\nrecords = [\"incident\"]\n",
            bin_dir.display(),
            socket.display()
        ),
        dir.path(),
        Some(&log),
    );
    let crash = || crash_once(&crasher);
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
    };
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    // Nothing listens at the socket: the first incident cannot be sent.
    let first = crash();
    wait_for("the first incident", &|| {
        of_type(&read_records(&events), "incident")
            .iter()
            .any(|i| i["pid"] == first)
    });
    wait_for("a line saying the sink fails", &|| {
        log_text().contains("cannot send")
    });
    // A second one while it is still down: no second line.
    let second = crash();
    wait_for("the second incident", &|| {
        of_type(&read_records(&events), "incident")
            .iter()
            .any(|i| i["pid"] == second)
    });
    // Both dropped after their retries (1.5 s each).
    thread::sleep(Duration::from_secs(6));
    // The socket comes up: the next incident goes through.
    let listener = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let third = crash();
    let mut buf = vec![0u8; 65536];
    let got = loop {
        let n = listener.recv(&mut buf).expect("a syslog message");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.contains(&third.to_string()) {
            break msg;
        }
    };
    assert!(got.contains("SIGSEGV"), "{got}");
    wait_for("a line saying the sink works again", &|| {
        log_text().contains("sending again")
    });
    stop(daemon);
    let text = log_text();
    let failing: Vec<&str> = text.lines().filter(|l| l.contains("cannot send")).collect();
    assert_eq!(failing.len(), 1, "{text}");
    assert!(failing[0].contains(&socket.display().to_string()), "{text}");
    let again: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("sending again"))
        .collect();
    assert_eq!(again.len(), 1, "{text}");
    assert!(
        again[0].contains("(2 records lost while it failed)"),
        "{text}"
    );
}

/// The journald output: a real systemd-journald (a journal namespace of
/// the test's own, so the host's journal is left alone) receives each
/// incident in the native protocol; `journalctl -t crashtrace` and a match
/// on `CRASHTRACE_EXE` find it, with the verdict, the priority of a crash
/// and the incident's facts as fields.
#[test]
fn journald_output_is_read_back_by_journalctl() {
    let namespace = format!("crashtrace-test-{}", std::process::id());
    let socket = std::path::PathBuf::from(format!("/run/systemd/journal.{namespace}/socket"));
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let journals = [
        format!("/var/log/journal/{}.{namespace}", machine_id.trim()),
        format!("/run/log/journal/{}.{namespace}", machine_id.trim()),
        format!("/run/systemd/journal.{namespace}"),
    ];
    struct Cleanup(Vec<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for d in &self.0 {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
    let _cleanup = Cleanup(journals.to_vec());
    let journald = KillOnDrop(
        Command::new("/lib/systemd/systemd-journald")
            .arg(&namespace)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-journald (Debian package systemd, installed by xtask setup)"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "journald did not start");
        thread::sleep(Duration::from_millis(50));
    }
    let dir = tempfile::tempdir().unwrap();
    let (bin_dir, crasher) = program_copy(dir.path(), "null_deref", "crasher");
    let (daemon, events) = start_daemon(
        &format!(
            "[select]\nexe = [\"{}/*\"]\n[[output]]\ntype = \"journald\"\nnamespace = \"{namespace}\"\n",
            bin_dir.display()
        ),
        dir.path(),
    );
    let pid = crash_once(&crasher);
    let journal = |matches: &[&str]| -> Vec<Value> {
        let out = Command::new("journalctl")
            .arg(format!("--namespace={namespace}"))
            .args(["-o", "json", "--no-pager"])
            .args(matches)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let pid_text = pid.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let found = journal(&["-t", "crashtrace"]).into_iter().find(|e| {
            e["CRASHTRACE_PID"] == pid_text.as_str() && e["CRASHTRACE_TYPE"] == "incident"
        });
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no incident of pid {pid} in the journal: {:#?}",
            journal(&[])
        );
        thread::sleep(Duration::from_millis(200));
    };
    stop(daemon);
    drop(journald);
    let records = read_records(&events);
    let incident = of_type(&records, "incident")
        .into_iter()
        .find(|i| i["pid"] == pid)
        .cloned()
        .unwrap();
    let message = entry["MESSAGE"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("crashed: ") && message.contains("SIGSEGV"),
        "{entry:#}"
    );
    assert_eq!(entry["PRIORITY"], "2", "a crash is critical: {entry:#}");
    assert_eq!(entry["MESSAGE_ID"], "5d0c1e6f3b7a4c2e9a1f08b6c4d2e7a1");
    assert_eq!(entry["CRASHTRACE_OUTCOME"], "crashed");
    assert_eq!(entry["CRASHTRACE_SIGNAL"], "SIGSEGV");
    assert_eq!(entry["CRASHTRACE_EXE"], crasher.display().to_string());
    assert_eq!(entry["CRASHTRACE_FINGERPRINT"], incident["fingerprint"]);
    let record: Value =
        serde_json::from_str(entry["CRASHTRACE_RECORD"].as_str().unwrap_or_default()).unwrap();
    assert_eq!(record["fingerprint"], incident["fingerprint"]);
    assert_eq!(record["frames"], incident["frames"]);
    // Matched on a field, as an SRE would ask for one program's crashes.
    let by_exe = journal(&[&format!("CRASHTRACE_EXE={}", crasher.display())]);
    assert_eq!(by_exe.len(), 1, "{by_exe:#?}");
}
