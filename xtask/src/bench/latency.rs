//! Bench part `latency`: crash-to-incident latency under `attach --exe`,
//! for a C program and a Go program, 50 crashing processes each, started
//! one after another. crashtrace opens the watched binaries and the
//! libraries they need at attach and parses their DWARF in idle time; the
//! bench waits until it says so (`-v`: "warm: …"), so the first crash is
//! measured like the others.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::go::build_go_program;
use crate::{
    release::compile_c,
    setup::{GO_VERSIONS, go_binary, go_cache_dir},
    util::{step, workspace_root},
};

const PROCESSES: usize = 50;

pub(crate) fn bench_latency(crashtrace: &Path) -> Result<()> {
    let root = workspace_root();
    let bin = root.join("target/bench");
    let c_program = bin.join("latency-c");
    compile_c(&root.join("testdata/native/crash_after.c"), &c_program)?;
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let go = go_binary(&go_cache_dir().join(format!("venv-{version}"))).context("Go toolchain")?;
    let go_program = build_go_program(&go, version, "crashy")?;
    println!();
    println!(
        "Crash-to-incident latency, attach --exe, {PROCESSES} crashing processes one after another (kernel timestamp of the story's first event → incident handed to output):"
    );
    println!("| program | incidents | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (label, program, args) in [
        ("C, SIGSEGV (-O0, libc with debug info)", &c_program, ["0"]),
        (
            &*format!("Go {version}, nil dereference → panic"),
            &go_program,
            ["nilptr"],
        ),
    ] {
        step(&format!("latency: {label}"));
        let (incidents, p50, p99, max) = measure(crashtrace, program, &args)?;
        println!("| {label} | {incidents} | {p50} µs | {p99} µs | {max} µs |");
    }
    Ok(())
}

/// (incidents, p50, p99, max) in µs for one program.
fn measure(crashtrace: &Path, program: &Path, args: &[&str]) -> Result<(usize, u64, u64, u64)> {
    let dir = program.with_extension("latency");
    fs::create_dir_all(&dir)?;
    let out = dir.join("events.ndjson");
    let err = dir.join("stderr");
    let _ = fs::remove_file(&out);
    let mut ct = Command::new(crashtrace)
        .args(["-v", "--format", "ndjson", "-o"])
        .arg(&out)
        .args(["attach", "--exe"])
        .arg(program)
        .stderr(fs::File::create(&err)?)
        .spawn()?;
    // Warm: the last "warm:" notice is a second old.
    let started = Instant::now();
    let mut last = (0, Instant::now());
    while started.elapsed() < Duration::from_secs(30) {
        let notices = fs::read_to_string(&err)?.matches("warm:").count();
        if notices != last.0 {
            last = (notices, Instant::now());
        } else if notices > 0 && last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..PROCESSES {
        let _ = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &ct.id().to_string()])
        .status();
    ct.wait()?;
    let incidents = fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"type\":\"incident\""))
        .count();
    let stderr = fs::read_to_string(&err)?;
    let figure = |label: &str| -> u64 {
        stderr
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        incidents,
        figure("latency p50 "),
        figure(" p99 "),
        figure(" max "),
    ))
}
