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
