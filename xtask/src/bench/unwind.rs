//! Bench part `unwind`: one crash stack of an -O2 C program, crashtrace
//! against gdb and perf.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use crate::util::{median, run, step, workspace_root};

/// Unwinding and symbolizing one crash stack of a release C program (-O2,
/// no frame pointers, crashing in a worker thread): crashtrace's own time
/// for it (reported by `-v`), gdb's `bt` two ways, and `perf script` over
/// a `perf record --call-graph dwarf` of the same crash. gdb reads the
/// program's and libc's debug info when it loads them, during `run`: run+bt
/// minus run alone leaves that reading out (the `bt` alone), run+bt minus
/// a run that reads no debug info (`--readnever`) counts it, as
/// crashtrace's figure counts its own opening of those files.
pub(crate) fn bench_unwind(crashtrace: &Path, runs: usize) -> Result<()> {
    let root = workspace_root();
    let dir = root.join("target/bench");
    let bin = dir.join("null_deref-O2");
    run(Command::new("gcc")
        .args(["-g", "-O2", "-fomit-frame-pointer", "-pthread", "-o"])
        .arg(&bin)
        .arg(root.join("testdata/native/null_deref.c")))?;
    // The same crash a second after the start: warm, as gdb's `bt` is.
    let late = dir.join("null_deref_late-O2");
    run(Command::new("gcc")
        .args(["-g", "-O2", "-fomit-frame-pointer", "-pthread", "-o"])
        .arg(&late)
        .arg(root.join("testdata/native/null_deref_late.c")))?;
    let wall = |cmd: &mut Command| -> Result<f64> {
        let started = std::time::Instant::now();
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
        Ok(started.elapsed().as_secs_f64())
    };
    let perf_data = dir.join("perf.data");
    let (mut ours, mut gdb_bt, mut perf) = (Vec::new(), Vec::new(), Vec::new());
    let mut ours_warm = Vec::new();
    let mut gdb_with_reading = Vec::new();
    for i in 0..runs {
        step(&format!("unwind run {}/{runs}", i + 1));
        ours.push(crash_stack_time(crashtrace, &bin)?);
        ours_warm.push(crash_stack_time(crashtrace, &late)?);
        let with_bt = wall(
            Command::new("gdb")
                .args(["-batch", "-nx", "-ex", "run", "-ex", "bt"])
                .arg(&bin),
        )?;
        let without = wall(
            Command::new("gdb")
                .args(["-batch", "-nx", "-ex", "run"])
                .arg(&bin),
        )?;
        gdb_bt.push((with_bt - without).max(0.0));
        let reading_nothing = wall(
            Command::new("gdb")
                .args(["-batch", "-nx", "--readnever", "-ex", "run"])
                .arg(&bin),
        )?;
        gdb_with_reading.push((with_bt - reading_nothing).max(0.0));
        wall(
            Command::new("perf")
                .args([
                    "record",
                    "-q",
                    "-e",
                    "signal:signal_deliver",
                    "--call-graph",
                    "dwarf",
                    "-o",
                ])
                .arg(&perf_data)
                .arg(&bin),
        )?;
        perf.push(wall(
            Command::new("perf").args(["script", "-i"]).arg(&perf_data),
        )?);
    }
    let (a, b, c) = (median(ours), median(gdb_bt), median(perf));
    let d = median(gdb_with_reading);
    println!();
    println!(
        "One crash stack of {} (worker thread, -O2, no frame pointers), cold caches, {runs} runs, medians:",
        bin.display()
    );
    println!("| tool | unwind + symbolize |");
    println!("|---|---|");
    println!(
        "| crashtrace, cold: the crash milliseconds after the start (stack copy + CFI + DWARF, inlined frames) | {:.1} ms |",
        a * 1e3
    );
    println!(
        "| crashtrace, the crash 1 s after the start (libc's debug info read ahead in idle time) | {:.1} ms |",
        median(ours_warm) * 1e3
    );
    println!("| gdb `bt` (run+bt minus run) | {:.1} ms |", b * 1e3);
    println!(
        "| gdb `bt` with its reading of the debug info (run+bt minus run --readnever) | {:.1} ms |",
        d * 1e3
    );
    println!("| perf script (--call-graph dwarf) | {:.1} ms |", c * 1e3);
    Ok(())
}

/// crashtrace's own time for the crash stack of `bin` (`-v`'s "crash
/// stacks unwound and symbolized in N us"), in seconds.
fn crash_stack_time(crashtrace: &Path, bin: &Path) -> Result<f64> {
    let out = Command::new(crashtrace)
        .args(["-v", "--format", "ndjson", "-o", "/dev/null", "run", "--"])
        .arg(bin)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let us: f64 = stderr
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" us"))
                .and_then(|p| p.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .context("no crash stack time in crashtrace's summary")?;
    Ok(us / 1e6)
}
