//! Where records go can fail — a reader that closed the pipe (`| head`), a
//! full disk, an unwritable device — and tracing goes on: the loss is
//! counted and said, the traced program runs untouched, `run` still returns
//! the program's own status, and crashtrace never panics.

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::*;

fn no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
}

/// The reader of crashtrace's output is gone before the first line.
#[test]
fn closed_stdout_keeps_tracing_and_the_programs_status() {
    let bin = build_c("crash_after");
    let mut child = Command::new(crashtrace_bin())
        .args(["-v", "-o", "-", "run", "--"])
        .arg(&bin)
        .arg("200")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(shell_status(&out), 139, "the program's status: {stderr}");
    no_panic(&stderr);
    assert!(stderr.contains("output closed"), "{stderr}");
    // The crash was still traced: its incident counted in the summary.
    assert!(stderr.contains(" 1 incident,"), "{stderr}");
}

/// `crashtrace run -- prog | jq`: the program's stdout is its own; the
/// timeline goes to stderr (CONTRACT.md, as strace and time do).
#[test]
fn run_leaves_the_programs_stdout_to_the_program() {
    let bin = build_c("crash_after");
    let script = format!("echo out; echo err >&2; exec {} 0", bin.display());
    let script = script.as_str();
    let plain = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = Command::new(crashtrace_bin())
        .args(["run", "--", "sh", "-c", script])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, plain.stdout, "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(shell_status(&out), 139, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.contains(&"err"), "{stderr}");
    // (The program may write before crashtrace's header comes out.)
    assert!(
        lines.iter().any(|l| l.starts_with("==> attached to pid")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CRASHED: SIGSEGV (SEGV_MAPERR)")),
        "{stderr}"
    );
    no_panic(&stderr);
}

/// `crashtrace -o - run -- prog | head -1`: the pipe closes after one line.
#[test]
fn head_closing_the_pipe_after_one_line() {
    let bin = build_c("crash_after");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} -o - run -- {} 200 | head -1; echo \"status=${{PIPESTATUS[0]}}\" >&2",
            crashtrace_bin(),
            bin.display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("==> attached to pid"), "{stdout}");
    assert!(stderr.contains("status=139"), "{stderr}");
    no_panic(&stderr);
}

/// Every write to the output fails (ENOSPC): the program's output and
/// status are its own, the failure is said once.
#[test]
fn output_to_a_full_device() {
    let bin = build_c("crash_after");
    let plain = run_plain(&bin, &["100"]);
    let out = Command::new(crashtrace_bin())
        .args(["-o", "/dev/full", "run", "--"])
        .arg(&bin)
        .arg("100")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(shell_status(&out), 139, "{stderr}");
    assert_eq!(out.stdout, plain.stdout);
    no_panic(&stderr);
    assert_eq!(
        stderr.matches("No space left on device").count(),
        1,
        "said once: {stderr}"
    );
}

/// A daemon whose NDJSON file sits on a full filesystem (a 64 KiB tmpfs,
/// filled): tracing goes on, the records that file could not take are
/// reported as `lost` in the other output, and writing resumes once space
/// is freed.
#[test]
fn daemon_file_output_on_a_full_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "none"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    // A copy of its own: the daemon watches the file, and other tests run
    // crash_after at the same time.
    let bin = dir.path().join("crash_after");
    std::fs::copy(build_c("crash_after"), &bin).unwrap();
    let full_file = small.join("events.ndjson");
    let good_file = dir.path().join("events.ndjson");
    let config = dir.path().join("crashtrace.toml");
    std::fs::write(
        &config,
        format!(
            "[select]\nexe = [\"{}\"]\n\n[[output]]\ntype = \"file\"\npath = \"{}\"\n\n[[output]]\ntype = \"file\"\npath = \"{}\"\n",
            bin.display(),
            full_file.display(),
            good_file.display()
        ),
    )
    .unwrap();
    let mut daemon = KillOnDrop(
        Command::new(crashtrace_bin())
            .args(["daemon", "--config"])
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !good_file.exists() {
        assert!(Instant::now() < deadline, "daemon did not start");
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(300));
    // Fill the small filesystem.
    let filler = small.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let crash = |n: usize| {
        for _ in 0..n {
            let _ = Command::new(&bin).arg("10").status();
        }
    };
    crash(3);
    let incidents_in = |path: &Path| {
        of_type(&read_records(path), "incident")
            .iter()
            .map(|r| r["pid"].clone())
            .collect::<Vec<_>>()
    };
    // The good file has the three crashes and, soon, the report of what the
    // full one lost.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = read_records(&good_file);
        let lost: u64 = of_type(&records, "lost")
            .iter()
            .filter(|l| {
                l["event"] == "export"
                    && l["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains(&*full_file.to_string_lossy()))
            })
            .map(|l| l["count"].as_u64().unwrap_or(0))
            .sum();
        // (A record may still have fit in the file's last block.)
        if incidents_in(&good_file).len() == 3
            && lost > 0
            && lost + incidents_in(&full_file).len() as u64 >= 3
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "good file: {records:#?}\nfull file: {:?}",
            std::fs::read_to_string(&full_file)
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Space again: the full file takes the next crash.
    let before = incidents_in(&full_file).len();
    std::fs::remove_file(&filler).unwrap();
    crash(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while incidents_in(&full_file).len() == before {
        assert!(Instant::now() < deadline, "writing did not resume");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(incidents_in(&good_file).len(), 4);
    Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    let out = daemon.take().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    no_panic(&stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("writing again"), "{stderr}");
}

/// A script's healthy children do not bury the crash: the human view
/// shows the processes asked for and what happened to the others (a
/// signal, an incident, a non-zero exit); `-v` shows every fork, exec and
/// exit. NDJSON keeps every record either way.
#[test]
fn healthy_children_of_a_script_stay_quiet() {
    let bin = build_c("crash_after");
    let script = format!(
        "for i in 1 2 3; do /bin/echo $i; done; sh -c 'exit 3'; exec {} 0",
        bin.display()
    );
    let run = |verbose: bool| {
        let mut cmd = Command::new(crashtrace_bin());
        if verbose {
            cmd.arg("-v");
        }
        let out = cmd
            .args(["run", "--", "sh", "-c", &script])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(shell_status(&out), 139);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n3\n");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let quiet = run(false);
    let headers: Vec<&str> = quiet
        .lines()
        .filter(|l| l.starts_with("==> attached"))
        .collect();
    // The shell, and what it exec'd at the end (same process).
    assert_eq!(headers.len(), 2, "{quiet}");
    assert!(headers[0].ends_with(", run]"), "{quiet}");
    assert!(
        headers[1].contains("crash_after") && headers[1].ends_with(", exec]"),
        "{quiet}"
    );
    assert!(!quiet.contains("exited with status 0"), "{quiet}");
    assert_eq!(quiet.matches("exited with status 3").count(), 1, "{quiet}");
    assert!(quiet.contains("CRASHED: SIGSEGV (SEGV_MAPERR)"), "{quiet}");

    let all = run(true);
    // Four children (three echo, one sh), each a fork and an exec header.
    assert_eq!(all.matches(", fork]").count(), 4, "{all}");
    assert_eq!(all.matches("exited with status 0").count(), 3, "{all}");
}

/// A program that throws as control flow: the human view shows the throw
/// nobody caught (before the abort it caused), not the thousand caught
/// ones; `-v` shows them. A throw carried to another thread and rethrown
/// there shows with its first throw. NDJSON keeps every record.
#[test]
fn caught_cxx_throws_stay_quiet_in_the_human_view() {
    let run = |bin: &std::path::Path, args: &[&str], verbose: bool| {
        let mut cmd = Command::new(crashtrace_bin());
        if verbose {
            cmd.arg("-v");
        }
        let out = cmd
            .args(["run", "--"])
            .arg(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(shell_status(&out), 134);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let uncaught = build_cxx("uncaught");
    let quiet = run(&uncaught, &[], false);
    assert!(
        !quiet.contains("c++ exception std::invalid_argument"),
        "{quiet}"
    );
    let lines: Vec<&str> = quiet.lines().collect();
    let throw = lines
        .iter()
        .position(|l| l.contains("c++ exception std::runtime_error: config file missing"))
        .unwrap_or_else(|| panic!("no uncaught throw in {quiet}"));
    let abort = lines
        .iter()
        .position(|l| l.contains(" SIGABRT "))
        .unwrap_or_else(|| panic!("no abort in {quiet}"));
    assert!(throw < abort, "{quiet}");
    assert!(
        quiet.contains("CRASHED: uncaught c++ exception std::runtime_error"),
        "{quiet}"
    );
    let all = run(&uncaught, &[], true);
    assert!(
        all.contains("c++ exception std::invalid_argument: not a number: x"),
        "{all}"
    );

    // std::async's thread threw; main rethrew it (std::rethrow_exception).
    let rethrow = build_cxx("rethrow");
    let quiet = run(&rethrow, &["future"], false);
    let first = quiet
        .find("c++ exception std::invalid_argument: empty config key")
        .unwrap_or_else(|| panic!("no first throw in {quiet}"));
    let again = quiet
        .find("rethrown by std::rethrow_exception")
        .unwrap_or_else(|| panic!("no rethrow in {quiet}"));
    assert!(first < again, "{quiet}");
}
