//! Rust programs that panic, built with the workspace's rustc: the panic's
//! message, location and thread as Rust's own panic hook prints them, and
//! the panicking thread's frames as Rust's own backtrace (RUST_BACKTRACE=1)
//! lists them — unwound with CFI, in a release build.

mod common;

use std::{path::PathBuf, process::Command};

use common::*;
use serde_json::Value;

fn build_rust(name: &str, panic: &str) -> PathBuf {
    build_rust_at(&format!("testdata/rust/{name}.rs"), name, panic, &[])
}

fn build_rust_at(source: &str, name: &str, panic: &str, extra: &[&str]) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = workspace_root().join(source);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}-{panic}"));
    let status = Command::new("rustc")
        .args(["-g", "-C", "opt-level=2", "-C"])
        .arg(format!("panic={panic}"))
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .current_dir(workspace_root())
        .status()
        .expect("rustc");
    assert!(status.success());
    out
}

/// Rust's own report of the first panic: (thread, location, message,
/// backtrace frames as (function, line)).
fn rust_report(stderr: &str) -> (String, String, String, Vec<(String, Option<u32>)>) {
    let mut lines = stderr.lines();
    let head = lines
        .find(|l| l.starts_with("thread '"))
        .unwrap_or_else(|| panic!("no panic report in {stderr}"));
    let thread = head.split('\'').nth(1).unwrap().to_owned();
    let location = head
        .split(" panicked at ")
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    let message = lines.next().unwrap().to_owned();
    let mut frames: Vec<(String, Option<u32>)> = Vec::new();
    for l in lines.by_ref() {
        let t = l.trim_start();
        if t.starts_with("note:") || t.is_empty() {
            break;
        }
        if let Some(at) = t.strip_prefix("at ") {
            let line = at.rsplit(':').nth(1).and_then(|n| n.parse().ok());
            if let Some(last) = frames.last_mut() {
                last.1 = line;
            }
        } else if let Some((_, name)) = t.split_once(": ") {
            frames.push((name.to_owned(), None));
        }
    }
    (thread, location, message, frames)
}

#[test]
fn rust_panic_in_a_thread_with_unwinding_and_with_abort() {
    for (panic, status) in [("unwind", 101), ("abort", 134)] {
        let bin = build_rust("panicky", panic);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.ndjson");
        let output = Command::new(crashtrace_bin())
            .args(["--format", "ndjson", "-o"])
            .arg(&out)
            .args(["run", "--"])
            .arg(&bin)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        assert_eq!(shell_status(&output), status, "panic={panic}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let (thread, location, message, theirs) = rust_report(&stderr);
        let records = read_records(&out);
        let panics: Vec<&Value> = of_type(&records, "exception");
        let first = panics
            .iter()
            .find(|e| e["comm"] == thread.as_str())
            .unwrap_or_else(|| panic!("no panic of thread {thread}: {records:#?}"));
        assert_eq!(first["language"], "rust");
        assert_eq!(first["location"], location.as_str(), "panic={panic}");
        assert_eq!(first["message"], message.as_str(), "panic={panic}");
        assert_ne!(first["tid"], first["pid"], "a worker thread");

        // Rust's short backtrace: from rust_begin_unwind to the frame
        // under __rust_begin_short_backtrace.
        let ours: Vec<(String, Option<u32>)> = first["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["function"].as_str().unwrap_or("??").to_owned(),
                    f["line"].as_u64().map(|l| l as u32),
                )
            })
            .skip_while(|(f, _)| f != "__rustc::rust_begin_unwind")
            .take_while(|(f, _)| {
                !f.starts_with("std::sys::backtrace::__rust_begin_short_backtrace")
            })
            .collect();
        assert!(theirs.len() >= 5, "{stderr}");
        assert_eq!(ours, theirs, "panic={panic}\n{stderr}");

        let incidents = of_type(&records, "incident");
        let inc = incidents
            .iter()
            .find(|i| i["thread"]["tid"] == first["tid"])
            .unwrap_or_else(|| panic!("{incidents:#?}"));
        assert_eq!(inc["cause"]["type"], "exception");
        assert_eq!(inc["cause"]["message"], message.as_str());
        if panic == "abort" {
            assert_eq!(inc["outcome"], "crashed", "panic={panic}");
        } else {
            // The worker's panic unwound its thread and main's join()
            // handled it: its own story, recovered; the process died of
            // main's panic (unwrap of the join result), exit 101.
            assert_eq!(inc["outcome"], "recovered", "panic={panic}: {inc:#}");
            let main_inc = incidents
                .iter()
                .find(|i| i["thread"]["tid"] == i["pid"])
                .unwrap_or_else(|| panic!("no incident of the main thread: {incidents:#?}"));
            assert_eq!(main_inc["outcome"], "crashed", "{main_inc:#}");
            assert_eq!(main_inc["exit"]["code"], 101);
            assert_eq!(incidents.len(), 2, "{incidents:#?}");
        }

        // Every panic Rust reported, in order, with its message: with
        // unwinding, main's `join().unwrap()` panics next with a message
        // std formats at run time (the Err's Debug output).
        let reports: Vec<(String, String, String)> = panic_heads(&stderr);
        assert_eq!(reports.len(), if panic == "unwind" { 2 } else { 1 });
        let ours: Vec<(String, String, String)> = panics
            .iter()
            .map(|e| {
                (
                    e["comm"].as_str().unwrap_or("").to_owned(),
                    e["location"].as_str().unwrap_or("").to_owned(),
                    e["message"].as_str().unwrap_or("<none>").to_owned(),
                )
            })
            .collect();
        // The comm of the main thread is the program's name.
        let theirs: Vec<(String, String, String)> = reports
            .iter()
            .cloned()
            .map(|(t, l, m)| (if t == "main" { comm_of(&bin) } else { t }, l, m))
            .collect();
        assert_eq!(ours, theirs, "panic={panic}\n{stderr}");
        // The thread as Rust names it: 'main', 'worker-7'.
        let names: Vec<&str> = panics
            .iter()
            .map(|e| e["thread_name"].as_str().unwrap_or(""))
            .collect();
        let rust_names: Vec<&str> = reports.iter().map(|(t, _, _)| t.as_str()).collect();
        assert_eq!(names, rust_names, "panic={panic}\n{stderr}");
        if panic == "unwind" {
            assert_eq!(panics[1]["value_type"], "String");
            assert_eq!(panics[0]["value_type"], "&str");
        }
    }
}

/// (thread, location, message) of each panic Rust's hook printed.
fn panic_heads(stderr: &str) -> Vec<(String, String, String)> {
    let lines: Vec<&str> = stderr.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("thread '") && l.contains(" panicked at "))
        .map(|(i, head)| {
            let thread = head.split('\'').nth(1).unwrap_or("").to_owned();
            let location = head
                .split(" panicked at ")
                .nth(1)
                .unwrap_or("")
                .trim_end_matches(':')
                .to_owned();
            let message = lines.get(i + 1).copied().unwrap_or("").to_owned();
            (thread, location, message)
        })
        .collect()
}

/// The kernel's comm of a program: its file name, cut to 15 bytes.
fn comm_of(bin: &std::path::Path) -> String {
    let name = bin.file_name().unwrap().to_string_lossy();
    name.chars().take(15).collect()
}

/// A worker pool isolating bad requests with `catch_unwind` panics 500
/// times from one site within a second: the first 100 are told (exception
/// records with their messages), the rest counted in `lost` records —
/// told + counted is exactly 500, and the program's output and status are
/// its own.
#[test]
fn caught_panics_past_the_sites_rate_are_counted_not_told() {
    const N: u64 = 500;
    // Edition 2021: `panic!("… {i}")` formats (the bench builds it so).
    let bin = build_rust_at(
        "testdata/bench/panicloop.rs",
        "panicloop",
        "unwind",
        &["--edition", "2021"],
    );
    let t = run_traced(&bin, &[&N.to_string()]);
    assert_eq!(t.output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&t.output.stdout);
    assert!(stdout.starts_with(&format!("caught {N}\n")), "{stdout}");
    let told = t.of_type("exception");
    // The first 100 of the window, in order (a slow run may open a second
    // window: later panics are told then, still in order).
    let numbers: Vec<u64> = told
        .iter()
        .map(|e| {
            assert_eq!(e["language"], "rust");
            e["message"]
                .as_str()
                .and_then(|m| m.strip_prefix("not a number: "))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{e:#}"))
        })
        .collect();
    assert!(numbers.iter().take(100).copied().eq(0..100), "{numbers:?}");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    let lost = t.of_type("lost");
    assert!(lost.iter().all(|l| l["event"] == "rust_panic"), "{lost:#?}");
    let untold: u64 = lost.iter().filter_map(|l| l["count"].as_u64()).sum();
    let told = told.len() as u64;
    assert!((100..=N).contains(&told), "told {told}");
    assert_eq!(told + untold, N, "told {told}, counted {untold}");
}
