//! `cargo xtask bench`: what tracing costs, one part per [`BenchPart`].
//! The Go part (probe hits per panic, panic/recover loop, net/http) runs
//! in [`bench`] itself; the other parts have a module each.

mod churn;
mod events;
mod footprint;
mod go;
mod latency;
mod startup;
mod symbolize;
mod throughput;
mod unwind;

use std::process::Command;

use anyhow::{Context as _, Result, bail};

pub(crate) use self::go::build_go_bench;
use self::{
    churn::bench_churn,
    events::bench_events,
    footprint::bench_footprint,
    latency::bench_latency,
    startup::bench_startup,
    symbolize::{bench_symbolize, bench_symbolize_native},
    throughput::bench_throughput,
    unwind::bench_unwind,
};
use crate::{
    release::build_release,
    setup::{GO_VERSIONS, go_binary, go_cache_dir},
    util::{is_root, median, step},
};

/// Runs `cmd` and returns the number after `label` on its stdout, and its stderr.
fn figure(cmd: &mut Command, label: &str) -> Result<(f64, String)> {
    let (values, stderr) = figures(cmd, &[label])?;
    Ok((values[0], stderr))
}

/// The figures a bench workload prints on stdout as "label value" lines,
/// in the order of `labels`, and its stderr.
fn figures(cmd: &mut Command, labels: &[&str]) -> Result<(Vec<f64>, String)> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let values = labels
        .iter()
        .map(|label| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(label)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("no {label:?} in {stdout:?}"))
        })
        .collect::<Result<_>>()?;
    Ok((values, String::from_utf8_lossy(&out.stderr).into_owned()))
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchPart {
    Go,
    Symbolize,
    Unwind,
    Footprint,
    /// Cost per event: C++ throw/catch and Go panic/recover loops, untraced
    /// vs crashtrace vs a bpftrace one-liner counting the same entry point.
    Events,
    /// Event throughput: signals from 4 processes at rising rates, recorded
    /// + counted lost = generated, the highest rate with nothing lost.
    Throughput,
    /// Crash-to-incident latency under attach --exe: a C and a Go program,
    /// 50 crashing processes each, warmed at attach.
    Latency,
    /// Start-up: `crashtrace -q run -- /bin/true` against bpftrace starting
    /// a tracepoint program (wall, CPU, peak RSS).
    Startup,
    /// The daemon's RSS over 1,000 processes of 50 different binaries.
    Churn,
}

pub(crate) fn bench(runs: usize, only: &[BenchPart]) -> Result<()> {
    if !is_root() {
        bail!("the benchmarks load eBPF programs: run them as root");
    }
    let wanted = |p: BenchPart| only.is_empty() || only.contains(&p);
    let crashtrace = build_release()?;
    if wanted(BenchPart::Events) {
        bench_events(&crashtrace, runs)?;
    }
    if wanted(BenchPart::Throughput) {
        bench_throughput(&crashtrace)?;
    }
    if wanted(BenchPart::Latency) {
        bench_latency(&crashtrace)?;
    }
    if wanted(BenchPart::Startup) {
        bench_startup(&crashtrace, runs)?;
    }
    if wanted(BenchPart::Churn) {
        bench_churn(&crashtrace)?;
    }
    if !wanted(BenchPart::Go) && !wanted(BenchPart::Symbolize) {
        if wanted(BenchPart::Unwind) {
            bench_unwind(&crashtrace, runs)?;
        }
        if wanted(BenchPart::Footprint) {
            bench_footprint(&crashtrace, runs)?;
        }
        return Ok(());
    }
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let go = go_binary(&go_cache_dir().join(format!("venv-{version}"))).context("Go toolchain")?;
    let go = go.as_path();
    let bin = build_go_bench(go, version)?;

    let traced = |args: &[&str]| {
        let mut c = Command::new(&crashtrace);
        c.args(["-v", "--format", "ndjson", "-o", "/dev/null", "run", "--"])
            .arg(&bin)
            .args(args);
        c
    };
    let plain = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args);
        c
    };

    const PANICS: usize = 20_000;
    let loop_args = ["panicloop", "20000"];
    // 100,000 requests (~2.5 s): 20,000 gave ratios from 0.95 to 1.10 on
    // this VM with no probe hit at all.
    const REQUESTS: usize = 100_000;
    let requests = REQUESTS.to_string();
    let http_args = ["http", requests.as_str(), "8"];
    let (mut loop_plain, mut loop_traced, mut http_plain, mut http_traced) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Per alternating pair: traced/untraced req/s, and untraced/traced CPU
    // a request (the server's own user+sys: what tracing would add to it,
    // steadier than req/s when the VM's neighbours come and go).
    let (mut http_pairs, mut cpu_plain, mut cpu_traced, mut cpu_pairs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut hits_per_panic = Vec::new();
    for i in 0..if wanted(BenchPart::Go) { runs } else { 0 } {
        step(&format!("run {}/{runs}", i + 1));
        loop_plain.push(figure(&mut plain(&loop_args), "ns/op")?.0);
        let (ns, stderr) = figure(&mut traced(&loop_args), "ns/op")?;
        loop_traced.push(ns);
        let hits: f64 = stderr
            .lines()
            .find_map(|l| l.split(", ").find_map(|p| p.strip_suffix(" Go probe hits")))
            .and_then(|n| n.trim().parse().ok())
            .context("no probe hit count in crashtrace's summary")?;
        hits_per_panic.push(hits / PANICS as f64);
        let labels = ["req/s", "cpu-us/req"];
        let (p, _) = figures(&mut plain(&http_args), &labels)?;
        let (t, _) = figures(&mut traced(&http_args), &labels)?;
        http_pairs.push(t[0] / p[0]);
        cpu_pairs.push(p[1] / t[1]);
        http_plain.push(p[0]);
        http_traced.push(t[0]);
        cpu_plain.push(p[1]);
        cpu_traced.push(t[1]);
    }
    if wanted(BenchPart::Go) {
        let (lp, lt) = (median(loop_plain), median(loop_traced));
        let (hp, ht) = (median(http_plain), median(http_traced));
        println!();
        println!("Go {version}, {runs} alternating runs each, medians:");
        println!("| workload | untraced | traced | ratio |");
        println!("|---|---|---|---|");
        println!(
            "| panic/recover loop ({PANICS} panics) | {lp:.0} ns/op | {lt:.0} ns/op | {:.2}x slower |",
            lt / lp
        );
        println!(
            "| net/http + recovery middleware, {REQUESTS} req, 8 clients | {hp:.0} req/s | {ht:.0} req/s | {:.3} of untraced (paired: {:.3}) |",
            ht / hp,
            median(http_pairs)
        );
        println!(
            "| the same, server's CPU (user+sys) a request | {:.2} µs | {:.2} µs | {:.3} of untraced's speed (paired: {:.3}) |",
            median(cpu_plain.clone()),
            median(cpu_traced.clone()),
            median(cpu_plain) / median(cpu_traced),
            median(cpu_pairs)
        );
        println!(
            "| Go probe hits per recovered panic | - | {:.2} | - |",
            median(hits_per_panic)
        );
    }
    if wanted(BenchPart::Symbolize) {
        bench_symbolize(&crashtrace, go, runs)?;
        bench_symbolize_native(&crashtrace, runs)?;
    }
    if wanted(BenchPart::Unwind) {
        bench_unwind(&crashtrace, runs)?;
    }
    if wanted(BenchPart::Footprint) {
        bench_footprint(&crashtrace, runs)?;
    }
    Ok(())
}
