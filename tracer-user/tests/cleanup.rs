//! Ctrl-C, SIGTERM and SIGKILL of crashtrace: it detaches, leaves no
//! program, link or uprobe behind, and the traced process runs on unharmed.
//! The kernel objects checked are exactly those crashtrace's own file
//! descriptors held, so other tracers running meanwhile do not matter.

mod common;

use std::{
    collections::BTreeSet,
    fs,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use common::*;

/// ("prog_id" | "link_id") values in /proc/PID/fdinfo: the BPF programs and
/// links the process holds.
fn held_ids(pid: u32, key: &str) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for entry in dir.flatten() {
        let Ok(info) = fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in info.lines() {
            if let Some(v) = line.strip_prefix(key).and_then(|l| l.strip_prefix(':'))
                && let Ok(id) = v.trim().parse()
            {
                ids.insert(id);
            }
        }
    }
    ids
}

/// Whether the kernel still has BPF object `kind` ("prog" | "link") `id`.
fn exists(kind: &str, id: u64) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bpftool")
        .success()
}

fn uprobe_events() -> String {
    fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

#[test]
fn tracer_stops_cleanly_on_sigint_sigterm_and_sigkill() {
    let uprobes_before = uprobe_events();
    // A Go target: crashtrace places its tracepoints and Go uprobes.
    let bin = build_go("crashy", GO_VERSIONS[GO_VERSIONS.len() - 1]);
    let mut target = KillOnDrop(
        Command::new(&bin)
            .arg("wait")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = read_ready_pid(&mut target.0);

    for (signal, expect_clean_exit) in [("INT", true), ("TERM", true), ("KILL", false)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.ndjson");
        let mut ct = KillOnDrop(
            Command::new(crashtrace_bin())
                .args(["--format", "ndjson", "-o"])
                .arg(&out)
                .args(["attach", "--pid", &pid.to_string()])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let records = wait_for_record(&out, "attach");
        let attach = of_type(&records, "attach")[0].clone();
        assert_eq!(attach["runtime"], "go");
        let ct_pid = ct.0.id();
        let progs = held_ids(ct_pid, "prog_id");
        let links = held_ids(ct_pid, "link_id");
        assert!(
            progs.len() >= 6,
            "5 tracepoint programs and the Go probe: {progs:?}"
        );
        assert!(
            links.len() >= 5,
            "a link per tracepoint, and the uprobes: {links:?}"
        );

        kill_from_other_process(signal, ct_pid);
        let result = ct.take().wait_with_output().unwrap();
        if expect_clean_exit {
            assert_eq!(result.status.code(), Some(0), "SIG{signal}: {result:?}");
            let stderr = String::from_utf8_lossy(&result.stderr);
            let summary = stderr.lines().last().unwrap_or_default();
            assert!(
                summary.starts_with("crashtrace: ") && summary.contains(" lost event"),
                "one-line summary on SIG{signal}: {stderr:?}"
            );
        }
        // The kernel frees them with the last reference, which can take an
        // RCU grace period or two.
        let mut left: Vec<String> = Vec::new();
        for _ in 0..100 {
            left = progs
                .iter()
                .filter(|&&id| exists("prog", id))
                .map(|id| format!("prog {id}"))
                .chain(
                    links
                        .iter()
                        .filter(|&&id| exists("link", id))
                        .map(|id| format!("link {id}")),
                )
                .collect();
            if left.is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        assert!(left.is_empty(), "left behind after SIG{signal}: {left:?}");
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
}
