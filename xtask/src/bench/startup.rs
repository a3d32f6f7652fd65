//! Start-up: `crashtrace -q run -- /bin/true` (load and verify every
//! program, attach the tracepoints, trace one process to its exit) side by
//! side with bpftrace starting one tracepoint program around the same
//! command: wall time, CPU (user + system) and peak RSS of each run, as
//! GNU time measures them; medians of alternating runs. crashtrace's first
//! start of a boot also reads the kernel's struct offsets from BTF (then
//! cached in /run/crashtrace): measured apart, cache removed before.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use super::events::ensure_bpftrace;
use crate::util::{median, output, run, step};

pub(crate) fn bench_startup(crashtrace: &Path, runs: usize) -> Result<()> {
    ensure_bpftrace()?;
    if !Path::new("/usr/bin/time").exists() {
        step("installing GNU time (Debian) for the start-up comparison");
        run(Command::new("apt-get").args(["install", "-y", "-qq", "time"]))?;
    }
    let ours: Vec<String> = [
        crashtrace.to_string_lossy().as_ref(),
        "-q",
        "run",
        "--",
        "/bin/true",
    ]
    .map(str::to_owned)
    .to_vec();
    let bpftrace: Vec<String> = [
        "bpftrace",
        "-q",
        "-e",
        "tracepoint:sched:sched_process_exit { }",
        "-c",
        "/bin/true",
    ]
    .map(str::to_owned)
    .to_vec();
    // First start of the boot (no offsets cached): a few runs apart.
    let mut cold = Vec::new();
    for _ in 0..runs.min(3) {
        let _ = std::fs::remove_dir_all("/run/crashtrace");
        cold.push(timed(&ours)?);
    }
    let (mut warm, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        step(&format!("start-up run {}/{runs}", i + 1));
        warm.push(timed(&ours)?);
        theirs.push(timed(&bpftrace)?);
    }
    let version = output(Command::new("bpftrace").arg("--version")).unwrap_or_default();
    println!();
    println!(
        "Start-up, {runs} alternating runs, medians (GNU time; {}):",
        version.trim()
    );
    println!("| command | wall | CPU (user+sys) | peak RSS |");
    println!("|---|---|---|---|");
    for (name, samples) in [
        ("`crashtrace -q run -- /bin/true`", &warm),
        (
            "the same, first start of the boot (offsets read from BTF)",
            &cold,
        ),
        (
            "`bpftrace -e 'tracepoint:sched:sched_process_exit { }' -c /bin/true`",
            &theirs,
        ),
    ] {
        let pick = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.1} MiB |",
            pick(|s| s.wall) * 1000.0,
            pick(|s| s.cpu) * 1000.0,
            pick(|s| s.rss_kib) / 1024.0
        );
    }
    Ok(())
}

struct Sample {
    wall: f64,
    cpu: f64,
    rss_kib: f64,
}

/// One run of `argv` under GNU time: wall and CPU seconds, peak RSS.
fn timed(argv: &[String]) -> Result<Sample> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S %M"])
        .args(argv)
        .stdout(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {argv:?}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [wall, user, sys, rss] = f[..] else {
        anyhow::bail!("{argv:?}: no GNU time figures in {stderr:?}");
    };
    Ok(Sample {
        wall,
        cpu: user + sys,
        rss_kib: rss,
    })
}
