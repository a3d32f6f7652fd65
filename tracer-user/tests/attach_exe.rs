//! `attach --exe`: every process running a file, those running it already
//! and those started later (from their first instruction), each crash once
//! with its own pid; a process that execs another program is let go.

mod common;

use std::{process::Command, thread, time::Duration};

use common::*;
use serde_json::Value;

#[test]
fn attach_by_exe_follows_processes_started_later() {
    let built = build_c("crash_after");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("worker");
    std::fs::copy(&built, &bin).unwrap();

    // Running before crashtrace starts: crashes when told (start-up time
    // varies with the host's load).
    let mut early = KillOnDrop(
        Command::new(&bin)
            .arg("stdin")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let early_pid = early.0.id();

    let out = dir.path().join("events.ndjson");
    let mut ct = KillOnDrop(
        Command::new(crashtrace_bin())
            .args(["--format", "ndjson", "-q", "-o"])
            .arg(&out)
            .args(["attach", "--exe"])
            .arg(&bin)
            .spawn()
            .unwrap(),
    );
    let records = wait_for_record(&out, "attach");
    assert_eq!(
        of_type(&records, "attach")[0]["pid"],
        early_pid,
        "the process running it already"
    );
    drop(early.0.stdin.take());

    // Started later: directly, through a shell (exec'd by an untraced
    // process), twice in a row as a restart loop would; and one that
    // execs another program.
    let mut later = Vec::new();
    // "0": it crashes at once, before its maps can be read: the exec
    // record's code range places the program's code.
    for delay in ["0", "50", "100"] {
        let mut c = Command::new(&bin).arg(delay).spawn().unwrap();
        later.push(c.id());
        let _ = c.wait();
    }
    let shell = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {} 80", bin.display()))
        .status()
        .unwrap();
    assert_eq!(shell.code(), None, "killed by SIGSEGV");
    let mut execer = Command::new(&bin).arg("exec").spawn().unwrap();
    let execer_pid = execer.id();
    let _ = execer.wait();
    let _ = early.0.wait();
    thread::sleep(Duration::from_millis(500));
    // SIGINT: detach, flush, exit 0.
    let ct_pid = ct.0.id().to_string();
    Command::new("kill")
        .args(["-INT", &ct_pid])
        .status()
        .unwrap();
    let status = ct.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    let records = read_records(&out);
    let incidents = of_type(&records, "incident");
    let crashed: Vec<u64> = incidents
        .iter()
        .map(|i| i["pid"].as_u64().unwrap())
        .collect();
    // Every crash once, each with its own pid; the shell's child included.
    assert_eq!(crashed.len(), 5, "{incidents:#?}");
    let mut unique = crashed.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 5, "one incident per process: {crashed:?}");
    for pid in later.iter().chain([&early_pid]) {
        assert!(crashed.contains(&u64::from(*pid)), "{pid}: {crashed:?}");
    }
    for inc in &incidents {
        assert_eq!(inc["outcome"], "crashed");
        let frames: &Vec<Value> = inc["frames"].as_array().unwrap();
        assert!(!frames.is_empty(), "{inc:#}");
        assert_eq!(frames[0]["function"], "handle_job", "{inc:#}");
        assert_eq!(frames[0]["line"], 10);
        assert_eq!(frames[1]["function"], "main");
    }
    // The one that exec'd `sleep` was attached, then let go: no exit or
    // incident of it.
    let attached: Vec<u64> = of_type(&records, "attach")
        .iter()
        .map(|a| a["pid"].as_u64().unwrap())
        .collect();
    assert!(attached.contains(&u64::from(execer_pid)), "{attached:?}");
    assert!(
        !records
            .iter()
            .any(|r| r["pid"] == execer_pid && r["type"] == "exit"),
        "no longer traced after exec'ing another program"
    );
}
