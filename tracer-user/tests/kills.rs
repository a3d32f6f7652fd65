//! Who killed it: a signal sent from elsewhere is a kill by its sender even
//! when the program's own handler takes it first — Go's runtime re-raising
//! SIGTERM, its SIGQUIT goroutine dump and exit 2, a C daemon that cleans
//! up and re-raises — and Ctrl-C in a terminal is a kill by the terminal,
//! not a crash. A signal handled and followed by a clean exit is no
//! incident.

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

/// `crashtrace run` of `program args` (NDJSON to `out`), once the program
/// printed "ready PID" and its attach record is out: (crashtrace, PID).
fn traced_and_ready(program: &Path, args: &[&str], out: &Path) -> (KillOnDrop, u32) {
    let mut ct = KillOnDrop(
        Command::new(crashtrace_bin())
            .args(["--format", "ndjson", "-o"])
            .arg(out)
            .args(["run", "--"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = read_ready_pid(&mut ct.0);
    // Its attach record is out: it is traced.
    wait_for_record(out, "attach");
    (ct, pid)
}

/// `run`'s status once `ct` ends, as a shell reports it (128 + signal).
fn status_of(mut ct: KillOnDrop) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    let status = ct.take().wait().unwrap();
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap()
}

/// `crashtrace run` of `program args`, killed with `sig` by `kill(1)` once
/// it printed "ready PID": (the run's status, kill's pid, records).
fn killed_by(program: &Path, args: &[&str], sig: &str) -> (i32, u32, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (ct, pid) = traced_and_ready(program, args, &out);
    let kill_pid = kill_from_other_process(sig, pid);
    (status_of(ct), kill_pid, read_records(&out))
}

fn the_incident(records: &[Value], ctx: &str) -> Value {
    let incidents = of_type(records, "incident");
    assert_eq!(incidents.len(), 1, "{ctx}: {records:#?}");
    incidents[0].clone()
}

fn original_sender(incident: &Value) -> (Option<u64>, Option<&str>) {
    let sig = &incident["events"][0]["signal"];
    (sig["sender_pid"].as_u64(), sig["sender_comm"].as_str())
}

/// Every Kubernetes pod shutdown: `kill -TERM` to a Go net/http server
/// without signal.Notify. The runtime's handler re-raises SIGTERM to itself;
/// the story is the kill, by `kill`, with the receiving thread's frames.
#[test]
fn go_server_stopped_by_sigterm_is_killed_by_kill() {
    for build in go_builds("httpd") {
        let ctx = build.label.clone();
        let (status, kill_pid, records) = killed_by(&build.path, &["serve"], "TERM");
        assert_eq!(status, 128 + 15, "{ctx}");
        let incident = the_incident(&records, &ctx);
        assert_eq!(incident["outcome"], "killed", "{ctx}: {incident:#}");
        assert_eq!(incident["cause"]["message"], "SIGTERM", "{ctx}");
        assert_eq!(
            original_sender(&incident),
            (Some(u64::from(kill_pid)), Some("kill")),
            "{ctx}: {incident:#}"
        );
    }
}

/// `kill -QUIT` to a Go program: the runtime prints every goroutine and
/// exits 2. A kill by `kill`.
#[test]
fn go_sigquit_dump_and_exit_is_a_kill() {
    for build in go_builds("crashy") {
        let ctx = build.label.clone();
        let (status, kill_pid, records) = killed_by(&build.path, &["wait"], "QUIT");
        assert_eq!(status, 2, "{ctx}: the runtime's exit status");
        let incident = the_incident(&records, &ctx);
        assert_eq!(incident["outcome"], "killed", "{ctx}: {incident:#}");
        assert_eq!(incident["cause"]["message"], "SIGQUIT", "{ctx}");
        assert_eq!(
            original_sender(&incident).0,
            Some(u64::from(kill_pid)),
            "{ctx}"
        );
    }
}

/// `kill -SEGV` from another process is a kill, though SIGSEGV is a fault
/// signal: the kernel says who sent it.
#[test]
fn a_fault_signal_sent_by_kill_is_a_kill() {
    let c_program = build_c("wait_for_term");
    let go_program = build_go("crashy", GO_VERSIONS[GO_VERSIONS.len() - 1]);
    for (program, args) in [(&c_program, &[][..]), (&go_program, &["wait"][..])] {
        let ctx = program.display().to_string();
        let (_, kill_pid, records) = killed_by(program, args, "SEGV");
        let incident = the_incident(&records, &ctx);
        assert_eq!(incident["outcome"], "killed", "{ctx}: {incident:#}");
        assert_eq!(
            original_sender(&incident).0,
            Some(u64::from(kill_pid)),
            "{ctx}"
        );
    }
}

/// A Go program that execs another (an entrypoint handing over: gosu,
/// su-exec, a re-exec on upgrade): the kernel ends the runtime's other
/// threads with a SIGKILL of its own (`de_thread`). Nobody killed
/// anything: no signal record, no incident; the new program attached,
/// and the shell's exit 3 is `run`'s status. (Before: one SIGKILL record
/// and one "exited: SIGKILL" incident per runtime thread.)
#[test]
fn a_go_program_that_execs_another_is_not_killed() {
    for build in go_builds("crashy") {
        let ctx = build.label.clone();
        let t = run_traced(&build.path, &["exec-shell"]);
        assert_eq!(t.output.status.code(), Some(3), "{ctx}");
        let attaches = t.of_type("attach");
        assert_eq!(attaches[0]["runtime"], "go", "{ctx}: {attaches:#?}");
        assert!(
            attaches.iter().any(|a| a["comm"] == "sh"),
            "{ctx}: the shell attached after the exec: {attaches:#?}"
        );
        assert!(t.of_type("signal").is_empty(), "{ctx}: {:#?}", t.records);
        assert!(t.of_type("incident").is_empty(), "{ctx}: {:#?}", t.records);
    }
}

/// A C daemon that catches SIGTERM, cleans up and re-raises it.
#[test]
fn c_daemon_re_raising_sigterm_is_killed_by_its_sender() {
    let bin = build_c("reraise_term");
    let (status, kill_pid, records) = killed_by(&bin, &[], "TERM");
    assert_eq!(status, 128 + 15);
    let incident = the_incident(&records, "reraise_term");
    assert_eq!(incident["outcome"], "killed", "{incident:#}");
    assert_eq!(
        original_sender(&incident),
        (Some(u64::from(kill_pid)), Some("kill"))
    );
}

/// Ctrl-C typed into the program's terminal (a pseudo-terminal here): the
/// terminal sends SIGINT to the foreground process group. `run` waits for
/// the program as time(1) does; the program dies of it: killed, not
/// crashed.
#[test]
fn ctrl_c_in_a_terminal_is_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    // A pty through python's pty module: crashtrace runs in it as a
    // terminal session's foreground job, ^C is written to the master.
    let script = format!(
        r#"
import os, pty, signal, sys, time
pid, fd = pty.fork()
if pid == 0:
    # As an interactive shell starts a foreground job: SIGINT at its
    # default (a test run in the background inherits it ignored, and an
    # ignored signal stays ignored across exec: sleep would never see ^C).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv("{ct}", ["{ct}", "--format", "ndjson", "-o", "{out}", "run", "--", "sleep", "30"])
deadline = time.time() + 20
while time.time() < deadline:
    try:
        if '"attach"' in open("{out}").read():
            break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
time.sleep(0.2)
os.write(fd, b"\x03")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#,
        ct = crashtrace_bin(),
        out = out.display()
    );
    let started = Instant::now();
    let status = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "sleep was not interrupted"
    );
    assert_eq!(status.code(), Some(128 + 2), "run returns sleep's status");
    thread::sleep(Duration::from_millis(100));
    let records = read_records(&out);
    let incident = the_incident(&records, "ctrl-c");
    assert_eq!(incident["outcome"], "killed", "{incident:#}");
    assert_eq!(incident["cause"]["message"], "SIGINT");
    assert_eq!(incident["events"][0]["signal"]["code"], "SI_KERNEL");
}

/// `kill -TERM` finds a program asleep in libc's frameless syscall
/// wrappers, called from code built without frame pointers (as services
/// ship): the kill's `signal` record has the frames gdb shows for it,
/// attached just before the kill — a frame-pointer walk alone lost every
/// caller of `__GI___clock_nanosleep`.
#[test]
fn a_killed_program_is_found_where_gdb_finds_it() {
    let bin = build_c_flags("asleep_in_calls", &["-O2", "-fomit-frame-pointer"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (ct, pid) = traced_and_ready(&bin, &[], &out);
    // Asleep (clock_nanosleep, or its restart after gdb let it go).
    let asleep = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let syscall =
                std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            if syscall.starts_with("230 ") || syscall.starts_with("219 ") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pid {pid} never slept: {syscall:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    };
    asleep();
    let gdb = gdb_frames_of_pid(pid);
    assert!(
        gdb.iter().any(|f| f.function == "wait_for_work"),
        "gdb: {gdb:#?}"
    );
    asleep();
    let kill_pid = kill_from_other_process("TERM", pid);
    assert_eq!(status_of(ct), 128 + 15);
    let records = read_records(&out);
    let incident = the_incident(&records, "asleep_in_calls");
    assert_eq!(incident["outcome"], "killed", "{incident:#}");
    assert_eq!(
        original_sender(&incident),
        (Some(u64::from(kill_pid)), Some("kill"))
    );
    let signal = of_type(&records, "signal")
        .into_iter()
        .find(|s| s["pid"] == pid)
        .unwrap_or_else(|| panic!("no signal record: {records:#?}"));
    assert_eq!(signal["signal"]["name"], "SIGTERM", "{signal:#}");
    assert_frames_like_gdb("asleep_in_calls, killed", &signal["frames"], &gdb);
}
