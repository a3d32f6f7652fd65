//! Ctrl-C, SIGTERM and SIGKILL of crashtrace: it detaches, leaves no program,
//! link or probe behind, and the traced process runs on unharmed. One test
//! in its own binary: it counts kernel objects, so nothing may run beside it.

mod common;

use std::{
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use common::*;
use serde_json::Value;

/// Our tracepoint programs loaded in the kernel, per bpftool.
fn our_programs() -> Vec<Value> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .expect("bpftool");
    assert!(out.status.success(), "bpftool failed: {out:?}");
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    progs
        .into_iter()
        .filter(|p| {
            p["type"] == "tracing"
                && p["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("signal_") || n.starts_with("sched_process"))
        })
        .collect()
}

fn uprobe_events() -> String {
    std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

#[test]
fn tracer_stops_cleanly_on_sigint_sigterm_and_sigkill() {
    let before = our_programs().len();
    let uprobes_before = uprobe_events();
    let bin = build_c("wait_for_term");
    let mut target = Command::new(&bin).stdout(Stdio::piped()).spawn().unwrap();
    let pid = read_ready_pid(&mut target);

    for (signal, expect_clean_exit) in [("INT", true), ("TERM", true), ("KILL", false)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.ndjson");
        let ct = Command::new(crashtrace_bin())
            .args(["--format", "ndjson", "-o"])
            .arg(&out)
            .args(["attach", "--pid", &pid.to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_record(&out, "attach");
        let loaded = our_programs();
        assert_eq!(
            loaded.len(),
            before + 5,
            "five tracepoint programs while attached"
        );
        if loaded.iter().any(|p| p.get("pids").is_some()) {
            let ours = loaded
                .iter()
                .filter(|p| {
                    p["pids"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["pid"] == ct.id()))
                })
                .count();
            assert_eq!(ours, 5, "held by crashtrace's own fds");
        }

        kill_from_other_process(signal, ct.id());
        let result = ct.wait_with_output().unwrap();
        if expect_clean_exit {
            assert_eq!(result.status.code(), Some(0), "SIG{signal}: {result:?}");
            let stderr = String::from_utf8_lossy(&result.stderr);
            let summary = stderr.lines().last().unwrap_or_default();
            assert!(
                summary.starts_with("crashtrace: ") && summary.ends_with(" lost events"),
                "one-line summary on SIG{signal}: {stderr:?}"
            );
        }
        // Links and programs are file descriptors: the kernel drops them
        // with the last reference, which can take an RCU grace period.
        let mut left = our_programs().len();
        for _ in 0..100 {
            if left == before {
                break;
            }
            thread::sleep(Duration::from_millis(50));
            left = our_programs().len();
        }
        assert_eq!(left, before, "no program left after SIG{signal}");
        assert_eq!(
            uprobe_events(),
            uprobes_before,
            "no uprobe left after SIG{signal}"
        );
        assert!(
            alive(pid),
            "the traced process runs on after SIG{signal} of the tracer"
        );
    }
    target.kill().unwrap();
    let _ = target.wait();
}
