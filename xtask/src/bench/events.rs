//! Bench part `events`: cost per event (C++ throw, Go and Rust panics),
//! untraced vs crashtrace vs a bpftrace one-liner.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use super::{build_go_bench, figure};
use crate::{
    setup::{GO_VERSIONS, go_binary, go_cache_dir},
    util::{median, output, run, step, workspace_root},
};

/// Per event: a loop that throws and catches (C++) or panics and recovers
/// (Go), untraced, traced by crashtrace, and under a bpftrace one-liner
/// that only counts the same entry point (`__cxa_throw`, `runtime.gopanic`):
/// ns per event side by side, alternating, medians.
pub(crate) fn bench_events(crashtrace: &Path, runs: usize) -> Result<()> {
    let root = workspace_root();
    let bin = root.join("target/bench");
    fs::create_dir_all(&bin)?;
    ensure_bpftrace()?;
    let throwloop = bin.join("throwloop");
    run(Command::new("g++")
        .args(["-O2", "-g", "-o"])
        .arg(&throwloop)
        .arg(root.join("testdata/bench/throwloop.cpp")))?;
    let panicloop = bin.join("panicloop");
    run(Command::new("rustc")
        .args(["--edition", "2024", "-O", "-g", "-o"])
        .arg(&panicloop)
        .arg(root.join("testdata/bench/panicloop.rs")))?;
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let go = go_binary(&go_cache_dir().join(format!("venv-{version}"))).context("Go toolchain")?;
    let gobench = build_go_bench(&go, version)?;
    let libstdcxx = output(Command::new("g++").arg("-print-file-name=libstdc++.so.6"))
        .map(|s| s.trim().to_owned())
        .context("no libstdc++")?;
    let libstdcxx = fs::canonicalize(&libstdcxx)?;

    struct Loop {
        name: &'static str,
        program: PathBuf,
        args: Vec<String>,
        bpftrace_probe: String,
    }
    let loops = [
        Loop {
            name: "C++ throw/catch (100000 throws)",
            program: throwloop.clone(),
            args: vec!["100000".into()],
            bpftrace_probe: format!("uprobe:\"{}\":__cxa_throw", libstdcxx.display()),
        },
        Loop {
            name: "Go panic/recover (20000 panics)",
            program: gobench.clone(),
            args: vec!["panicloop".into(), "20000".into()],
            bpftrace_probe: format!("uprobe:\"{}\":\"runtime.gopanic\"", gobench.display()),
        },
        Loop {
            name: "Rust panic/catch_unwind (20000 panics)",
            program: panicloop.clone(),
            args: vec!["20000".into()],
            bpftrace_probe: format!("uprobe:\"{}\":*panic_with_hook*", panicloop.display()),
        },
    ];
    println!();
    println!("Per event, {runs} alternating runs, medians (ns per throw / per panic):");
    println!("| loop | untraced | crashtrace | bpftrace counting the entry point |");
    println!("|---|---|---|---|");
    for l in &loops {
        let (mut plain, mut traced, mut bt) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            step(&format!("{} run {}/{runs}", l.name, i + 1));
            plain.push(figure(Command::new(&l.program).args(&l.args), "ns/op")?.0);
            traced.push(
                figure(
                    Command::new(crashtrace)
                        .args(["-q", "--format", "ndjson", "-o", "/dev/null", "run", "--"])
                        .arg(&l.program)
                        .args(&l.args),
                    "ns/op",
                )?
                .0,
            );
            let command = std::iter::once(l.program.display().to_string())
                .chain(l.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            bt.push(
                figure(
                    Command::new("bpftrace")
                        .args(["-q", "-e"])
                        .arg(format!("{} {{ @n = count(); }}", l.bpftrace_probe))
                        .arg("-c")
                        .arg(&command),
                    "ns/op",
                )?
                .0,
            );
        }
        let (p, t, b) = (median(plain), median(traced), median(bt));
        println!(
            "| {} | {p:.0} ns | {t:.0} ns ({:.2}x) | {b:.0} ns ({:.2}x) |",
            l.name,
            t / p,
            b / p
        );
    }
    Ok(())
}

/// bpftrace, the tool the comparisons are made against (Debian's package,
/// installed when missing: the benchmarks need it, the tests do not).
pub(crate) fn ensure_bpftrace() -> Result<()> {
    if output(Command::new("bpftrace").arg("--version")).is_none() {
        step("installing bpftrace (Debian) for the comparisons");
        run(Command::new("apt-get").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "bpftrace",
        ]))?;
    }
    Ok(())
}
