//! Programs started the way production starts them — through `sh -c`, a
//! shell that runs them and goes on, `env` — that crash in their first
//! milliseconds, before a tracer reading /proc could have looked at them.
//! Every frame must be named as gdb (C) or the Go runtime (Go) names it, in
//! every run: the capture thread holds the program's files from its exec,
//! and the kernel sends ld.so's list of loaded objects at the crash.
//!
//! `CRASHTRACE_REPEAT=N` runs each case N times (default: native 2, Go 1;
//! the acceptance loop uses 20 with both cores busy).

mod common;

use std::{path::Path, process::Command, process::Stdio};

use common::*;
use serde_json::Value;

/// How each case is started, as `crashtrace run -- …` sees it.
const WRAPPERS: &[&str] = &["sh -c 'exec {}'", "sh -c '{}; echo done'", "env {}"];

/// The argv of `wrapper` around `command` ("PROGRAM ARGS").
fn wrapped(wrapper: &str, command: &str) -> Vec<String> {
    match wrapper.split_once(" -c ") {
        Some((shell, script)) => vec![
            shell.to_owned(),
            "-c".to_owned(),
            script.trim_matches('\'').replace("{}", command),
        ],
        None => wrapper
            .replace("{}", command)
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    }
}

fn repeat(default: usize) -> usize {
    std::env::var("CRASHTRACE_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `crashtrace run` of `command` through the shell form of `wrapper`.
fn traced_through(wrapper: &str, command: &str) -> (std::process::Output, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let output = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .args(["run", "--"])
        .args(wrapped(wrapper, command))
        .stdin(Stdio::null())
        .output()
        .expect("running crashtrace");
    (output, read_records(&out))
}

fn program_pid(records: &[Value], program: &Path) -> Option<u64> {
    let name = program.to_string_lossy();
    of_type(records, "attach")
        .into_iter()
        .rev()
        .find(|a| a["exe"].as_str() == Some(&*name))
        .and_then(|a| a["pid"].as_u64())
}

#[test]
fn early_native_crashes_through_wrappers_are_named_like_gdb() {
    let bin = build_c("early_crash");
    for place in ["worker", "libc"] {
        let gdb = gdb_frames_args(&bin, &["0", place]);
        assert!(gdb.len() >= 3, "{place}: gdb: {gdb:#?}");
        for delay in ["0", "20", "200"] {
            for wrapper in WRAPPERS {
                for run in 0..repeat(2) {
                    let ctx = format!("{place}, {delay} ms, {wrapper}, run {run}");
                    let command = format!("{} {delay} {place}", bin.display());
                    let (output, records) = traced_through(wrapper, &command);
                    let status = shell_status(&output);
                    assert!(status == 139 || status == 0, "{ctx}: status {status}");
                    let sig = of_type(&records, "signal")
                        .into_iter()
                        .find(|s| s["signal"]["name"] == "SIGSEGV")
                        .unwrap_or_else(|| panic!("{ctx}: no SIGSEGV in {records:#?}"));
                    assert_eq!(
                        sig["pid"].as_u64(),
                        program_pid(&records, &bin),
                        "{ctx}: the crash is the program's ({records:#?})"
                    );
                    assert_frames_like_gdb(&ctx, &sig["frames"], &gdb);
                    let incident = of_type(&records, "incident")
                        .into_iter()
                        .find(|i| i["pid"] == sig["pid"])
                        .unwrap_or_else(|| panic!("{ctx}: no incident"));
                    assert_eq!(incident["outcome"], "crashed", "{ctx}");
                }
            }
        }
    }
}

/// A dlopen'ed library whose dependency (pulled in by ld.so, announced by
/// nothing else) crashes: frames equal gdb's, the dependency's included.
#[test]
fn crash_in_a_dependency_of_a_dlopened_library_is_named_like_gdb() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("native/dlopen-deps");
    std::fs::create_dir_all(&dir).unwrap();
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = workspace_root().join("testdata/native");
    let gcc = |args: &[&str]| {
        let status = Command::new("gcc").args(args).status().expect("gcc");
        assert!(status.success(), "gcc {args:?}");
    };
    let codec = dir.join("libcodec.so");
    let frontend = dir.join("libfrontend.so");
    let host = dir.join("host");
    const LIBRARY: [&str; 5] = ["-g", "-O2", "-fomit-frame-pointer", "-shared", "-fPIC"];
    gcc(&[
        &LIBRARY[..],
        &[
            "-o",
            codec.to_str().unwrap(),
            src.join("codec.c").to_str().unwrap(),
        ],
    ]
    .concat());
    gcc(&[
        &LIBRARY[..],
        &[
            "-o",
            frontend.to_str().unwrap(),
            src.join("frontend.c").to_str().unwrap(),
            "-Wl,--no-as-needed",
            &format!("-L{}", dir.display()),
            "-lcodec",
            "-Wl,-rpath,$ORIGIN",
        ],
    ]
    .concat());
    gcc(&[
        "-g",
        "-O2",
        "-o",
        host.to_str().unwrap(),
        src.join("dlopen_host.c").to_str().unwrap(),
    ]);
    drop(_guard);
    let gdb = gdb_frames_args(&host, &[frontend.to_str().unwrap()]);
    assert!(gdb.len() >= 3, "gdb: {gdb:#?}");
    assert_eq!(gdb[0].function, "codec_decode", "gdb: {gdb:#?}");
    for run in 0..repeat(2) {
        let t = run_traced(&host, &[frontend.to_str().unwrap()]);
        assert_eq!(shell_status(&t.output), 139, "run {run}");
        let sig = t.one("signal");
        let frames = sig["frames"].as_array().unwrap();
        assert_eq!(
            frames[0]["module"].as_str(),
            codec.to_str(),
            "run {run}: the fault is in the dependency: {sig:#}"
        );
        let ours: Vec<GdbFrame> = frames.iter().map(frame_key).collect();
        for (o, g) in ours.iter().zip(&gdb) {
            assert_eq!(
                o.function, g.function,
                "run {run}: ours {ours:#?}\ngdb {gdb:#?}"
            );
            assert_eq!(o.line, g.line, "run {run}: line of {}", o.function);
        }
    }
}

/// Go programs through the same wrappers, panicking or dereferencing nil
/// 20 ms and 200 ms after they start: recognised as Go (their probes in
/// place in time), the panic recorded with the runtime's message, and the
/// panicking goroutine's frames equal to the runtime's own traceback.
#[test]
fn early_go_panics_through_wrappers_are_go_stories() {
    for build in go_builds("crashy").filter(|b| !b.stripped) {
        for scenario in ["panic-after", "nilptr-after"] {
            for delay in ["20", "200"] {
                for wrapper in WRAPPERS {
                    for run in 0..repeat(1) {
                        let ctx =
                            format!("{}, {scenario} {delay}, {wrapper}, run {run}", build.label);
                        let command = format!("{} {scenario} {delay}", build.path.display());
                        let (output, records) = traced_through(wrapper, &command);
                        let stderr = String::from_utf8_lossy(&output.stderr);
                        let attach = of_type(&records, "attach")
                            .into_iter()
                            .rev()
                            .find(|a| a["exe"].as_str() == build.path.to_str())
                            .unwrap_or_else(|| panic!("{ctx}: no attach: {records:#?}"));
                        assert_eq!(attach["runtime"], "go", "{ctx}: {attach:#}");
                        let pid = attach["pid"].clone();
                        // What the runtime printed: read at its printpanics by
                        // the probes, or at its exit(2) when the probes came
                        // too late for a panic in its first milliseconds.
                        let panic = of_type(&records, "fatal")
                            .into_iter()
                            .find(|p| p["pid"] == pid && p["source"] == "panic")
                            .unwrap_or_else(|| {
                                panic!("{ctx}: no printed panic: {records:#?}\n{stderr}")
                            });
                        let first_line = stderr
                            .lines()
                            .find(|l| l.starts_with("panic: "))
                            .unwrap_or_default();
                        let message = panic["message"].as_str().unwrap_or_default();
                        assert!(
                            first_line.starts_with(&format!("panic: {message}")),
                            "{ctx}: {message:?} vs {first_line:?}"
                        );
                        let incident = of_type(&records, "incident")
                            .into_iter()
                            .find(|i| i["pid"] == pid)
                            .unwrap_or_else(|| panic!("{ctx}: no incident"));
                        assert_eq!(incident["outcome"], "crashed", "{ctx}: {records:#?}");
                        let (_, runtime) = go_traceback(&stderr);
                        let runtime: Vec<_> = runtime
                            .into_iter()
                            .filter(|f| !is_go_runtime(&f.function))
                            .collect();
                        let ours: Vec<GoFrame> = panic["frames"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(|f| {
                                Some(GoFrame {
                                    function: f["function"].as_str()?.to_owned(),
                                    file: f["file"].as_str()?.to_owned(),
                                    line: f["line"].as_u64()? as u32,
                                })
                            })
                            .filter(|f| !is_go_runtime(&f.function))
                            .collect();
                        assert_eq!(ours, runtime, "{ctx}");
                    }
                }
            }
        }
    }
}

/// The same early crashes with the program selected by file instead of
/// started by crashtrace: `attach --exe` and the daemon's `exe` selector
/// trace it from its exec; a crash at 0 ms, in a worker thread and in
/// libc, is named like gdb names it, every run.
#[test]
fn early_crashes_under_attach_exe_and_the_daemon_are_named_like_gdb() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of its own: other tests run early_crash at the same time.
    let bin = dir.path().join("early_crash");
    std::fs::copy(build_c("early_crash"), &bin).unwrap();
    let gdb: Vec<(&str, Vec<GdbFrame>)> = ["worker", "libc"]
        .into_iter()
        .map(|place| (place, gdb_frames_args(&bin, &["0", place])))
        .collect();
    let config = dir.path().join("crashtrace.toml");
    std::fs::write(
        &config,
        format!("[select]\nexe = [\"{}\"]\n", bin.display()),
    )
    .unwrap();
    let modes: [(&str, Vec<String>); 2] = [
        (
            "attach --exe",
            vec![
                "attach".into(),
                "--exe".into(),
                bin.to_string_lossy().into(),
            ],
        ),
        (
            "daemon",
            vec![
                "daemon".into(),
                "--config".into(),
                config.to_string_lossy().into(),
            ],
        ),
    ];
    for (mode, args) in modes {
        let name = mode.replace(' ', "_");
        let out = dir.path().join(format!("{name}.ndjson"));
        let err = dir.path().join(format!("{name}.stderr"));
        let mut tracer = KillOnDrop(
            Command::new(crashtrace_bin())
                .args(["-v", "--format", "ndjson", "-o"])
                .arg(&out)
                .args(&args)
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap(),
        );
        // Ready once the watched file's DWARF is parsed ahead ("warm:").
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("warm:")
        {
            assert!(std::time::Instant::now() < deadline, "{mode} did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let runs = repeat(3);
        let mut pids = Vec::new();
        for (place, _) in &gdb {
            for _ in 0..runs {
                let child = Command::new(&bin)
                    .args(["0", place])
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                pids.push((child.id(), *place));
                let _ = { child }.wait();
            }
        }
        // Every crash's signal record, then stop the tracer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let records = loop {
            let records = read_records(&out);
            let crashes = of_type(&records, "signal")
                .iter()
                .filter(|s| s["signal"]["name"] == "SIGSEGV")
                .count();
            if crashes >= pids.len() || std::time::Instant::now() > deadline {
                break records;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        Command::new("kill")
            .args(["-INT", &tracer.0.id().to_string()])
            .status()
            .unwrap();
        let _ = tracer.take().wait();
        for (pid, place) in &pids {
            let ctx = format!("{mode}, {place}, pid {pid}");
            let sig = of_type(&records, "signal")
                .into_iter()
                .find(|s| s["pid"] == *pid && s["signal"]["name"] == "SIGSEGV")
                .unwrap_or_else(|| panic!("{ctx}: no SIGSEGV in {records:#?}"));
            let gdb = &gdb.iter().find(|(p, _)| p == place).unwrap().1;
            assert_frames_like_gdb(&ctx, &sig["frames"], gdb);
        }
    }
}

/// A Go program that panics at once, run again and again by a shell (a
/// crash loop at start-up): once its file is known to be Go, the kernel
/// marks each of its processes at the exec, and every panic is told, even
/// one in the program's first millisecond, before userspace has read the
/// exec (without the kernel's mark, ~1 run in 15 lost its panic at idle).
#[test]
fn every_panic_of_a_crash_loop_is_told() {
    const RESTARTS: usize = 6;
    for build in go_builds("crashy").filter(|b| !b.stripped) {
        let ctx = &build.label;
        let bin = build.path.display();
        // The first run lives long enough for its file to be read.
        let script = format!(
            "{bin} panic-after 500 2>/dev/null; \
             for i in $(seq {RESTARTS}); do {bin} panic-after 0 2>/dev/null; done; true"
        );
        let t = run_traced(std::path::Path::new("/bin/sh"), &["-c", &script]);
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        let messages: Vec<&str> = t
            .of_type("fatal")
            .into_iter()
            .filter(|p| p["source"] == "panic")
            .filter_map(|p| p["message"].as_str())
            .collect();
        let mut expected = vec!["late panic: 500 ms"];
        expected.extend(std::iter::repeat_n("late panic: 0 ms", RESTARTS));
        assert_eq!(messages, expected, "{ctx}: {:#?}", t.records);
        let exits = t
            .of_type("exit")
            .into_iter()
            .filter(|e| e["exit"]["code"] == 2)
            .count();
        assert_eq!(exits, RESTARTS + 1, "{ctx}");
    }
}
