//! Bad input gets one clear line and the documented exit status, never a
//! Rust backtrace.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;

fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("crashtrace: "), "{stderr:?}");
    assert!(
        stderr.contains(needle),
        "{stderr:?} should mention {needle:?}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr:?}"
    );
}

#[test]
fn attach_to_missing_pid() {
    let out = Command::new(crashtrace_bin())
        .args(["attach", "--pid", "4194305"]) // above pid_max's ceiling: never exists
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out, "no such process: 4194305");
}

#[test]
fn run_missing_program() {
    let out = Command::new(crashtrace_bin())
        .args(["run", "--", "/nonexistent/program"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(127),
        "like a shell: 127 for not found"
    );
    assert_one_line_error(&out, "cannot start /nonexistent/program");
}

#[test]
fn run_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "not a program\n").unwrap();
    let out = Command::new(crashtrace_bin())
        .args(["run", "--"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(126),
        "like a shell: 126 for not executable"
    );
    assert_one_line_error(&out, &format!("cannot start {}", file.display()));
}

#[test]
fn usage_error_is_status_2() {
    let out = Command::new(crashtrace_bin()).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(crashtrace_bin())
        .args(["attach"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Without capabilities (root's bounding set emptied by setpriv): exit 77
/// naming what is missing.
#[test]
fn no_privilege_is_status_77_naming_the_capability() {
    let out = Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
        .arg(crashtrace_bin())
        .args(["run", "--", "/bin/true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert_one_line_error(&out, "CAP_BPF");

    let out = Command::new("setpriv")
        .args(["--bounding-set=-sys_ptrace", "--inh-caps=-all", "--"])
        .arg(crashtrace_bin())
        .args(["attach", "--pid", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert_one_line_error(&out, "missing capability CAP_SYS_PTRACE:");
}

/// A file that is not an ELF binary is a failure (1) for every command
/// that takes one, said in words; a bad flag stays a usage error (2).
#[test]
fn bad_files_are_status_1_in_words_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let empty = empty.to_string_lossy().into_owned();
    let cases: [(&str, &str); 4] = [
        ("/usr", "/usr is a directory, not an ELF file"),
        ("/dev/null", "/dev/null is not a regular file"),
        (&empty, "is empty, not an ELF file"),
        ("/etc/passwd", "/etc/passwd is not a valid ELF file"),
    ];
    for (file, says) in cases {
        for cmd in [
            vec!["symbolize", "--exe", file, "0x1000"],
            vec!["probes", "--exe", file],
            vec!["attach", "--exe", file],
        ] {
            let out = Command::new(crashtrace_bin())
                .args(&cmd)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{cmd:?}");
            assert_one_line_error(&out, says);
        }
    }
}

/// One rule for crashtrace's own exit statuses, every subcommand: 2 for
/// the command line (a bad or inapplicable flag, a missing argument), 1
/// for a bad file or process it was given (one line saying which and
/// what is wrong), 0 for success; `run` returns the program's status
/// (127/126 when it cannot be started, 128+N for signal N).
#[test]
fn exit_statuses_follow_one_rule_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "x = [\n").unwrap();
    let no_select = dir.path().join("no-select.toml");
    std::fs::write(
        &no_select,
        "[[output]]\ntype = \"file\"\npath = \"/tmp/x\"\n",
    )
    .unwrap();
    let bad_output = dir.path().join("bad-output.toml");
    std::fs::write(
        &bad_output,
        "[select]\nall = true\n[[output]]\ntype = \"file\"\npath = \"/nonexistent-dir/x.ndjson\"\n",
    )
    .unwrap();
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let (bad_toml, no_select, bad_output) = (path(&bad_toml), path(&no_select), path(&bad_output));
    let table: Vec<(Vec<&str>, i32, &str)> = vec![
        // The command line: 2.
        (vec!["run"], 2, "required"),
        (vec!["attach"], 2, "--pid"),
        (vec!["report"], 2, "required"),
        (vec!["symbolize"], 2, "required"),
        (vec!["probes"], 2, "required"),
        (vec!["--bogus", "run", "--", "/bin/true"], 2, "--bogus"),
        (vec!["attach", "--pid", "abc"], 2, "abc"),
        (vec!["--format", "xml", "report", "-"], 2, "xml"),
        (
            vec!["--ring-buffer-kib", "3", "run", "--", "/bin/true"],
            2,
            "power of two",
        ),
        (
            vec!["report", "--otlp", "http://127.0.0.1:1", "-"],
            2,
            "unexpected argument '--otlp'",
        ),
        (
            vec!["--otlp", "http://127.0.0.1:1", "report", "-"],
            2,
            "--otlp does not apply to `crashtrace report`",
        ),
        (
            vec!["symbolize", "--exe", "/bin/true", "zz"],
            2,
            "not a hex address",
        ),
        // A bad file or process: 1.
        (
            vec!["report", "/nonexistent.ndjson"],
            1,
            "/nonexistent.ndjson",
        ),
        (
            vec!["symbolize", "--exe", "/nonexistent", "0x1"],
            1,
            "/nonexistent: no such file",
        ),
        (
            vec!["probes", "--exe", "/etc/passwd"],
            1,
            "not a valid ELF file",
        ),
        (
            vec!["attach", "--pid", "4194305"],
            1,
            "no such process: 4194305",
        ),
        (vec!["attach", "--pid", "2"], 1, "pid 2 is a kernel thread"),
        (
            vec!["-o", "/nonexistent-dir/x", "run", "--", "/bin/true"],
            1,
            "/nonexistent-dir/x",
        ),
        (
            vec!["daemon", "--config", "/nonexistent.toml"],
            1,
            "/nonexistent.toml",
        ),
        (
            vec!["daemon", "--config", &bad_toml],
            1,
            "line 1, column 6: unclosed array",
        ),
        (
            vec!["daemon", "--config", &no_select],
            1,
            "[select] chooses no process",
        ),
        (
            vec!["daemon", "--config", &bad_output],
            1,
            "/nonexistent-dir/x.ndjson",
        ),
        // Success, and the program's own status.
        (vec!["--version"], 0, ""),
        (vec!["probes", "--exe", "/bin/true"], 0, ""),
        (vec!["-q", "run", "--", "/bin/false"], 1, ""),
        (vec!["-q", "run", "--", "sh", "-c", "exit 3"], 3, ""),
        (
            vec!["-q", "run", "--", "sh", "-c", "kill -TERM $$"],
            143,
            "",
        ),
        (
            vec!["run", "--", "/nonexistent/program"],
            127,
            "cannot start",
        ),
    ];
    for (args, status, says) in table {
        let out = Command::new(crashtrace_bin())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        if status == 1 && !says.is_empty() {
            assert_one_line_error(&out, says);
        }
    }
}
