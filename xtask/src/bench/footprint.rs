//! Bench part `footprint`: crashtrace's attach time, RSS, CPU and
//! crash-to-incident latency.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    release::compile_c,
    util::{median, rss_cpu, step, workspace_root},
};

/// crashtrace's own footprint: attach time (to a running process, until
/// its `attach` record is written), RSS and CPU idle and under a load of
/// 200 crashing processes (attach --exe), and crash-to-record latency.
pub(crate) fn bench_footprint(crashtrace: &Path, runs: usize) -> Result<()> {
    let root = workspace_root();
    let bin = root.join("target/bench");
    for name in ["wait_for_term", "crash_after"] {
        compile_c(
            &root.join(format!("testdata/native/{name}.c")),
            &bin.join(name),
        )?;
    }
    let out = bin.join("footprint.ndjson");
    let mut attach_ms = Vec::new();
    for i in 0..runs {
        step(&format!("attach run {}/{runs}", i + 1));
        let mut target = Command::new(bin.join("wait_for_term"))
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let _ = fs::remove_file(&out);
        let started = std::time::Instant::now();
        let mut ct = attach_and_wait(crashtrace, target.id(), &out)?;
        attach_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = target.kill();
        let _ = target.wait();
        let _ = ct.wait();
    }

    step("idle and load");
    let _ = fs::remove_file(&out);
    let ct = Command::new(crashtrace)
        .args(["-v", "--format", "ndjson", "-o"])
        .arg(&out)
        .args(["attach", "--exe"])
        .arg(bin.join("crash_after"))
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = ct.id();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (rss_start, cpu_start) = rss_cpu(pid);
    std::thread::sleep(std::time::Duration::from_secs(10));
    let (rss_idle, cpu_idle_end) = rss_cpu(pid);
    let load_started = std::time::Instant::now();
    const CRASHES: usize = 200;
    for i in 0..CRASHES {
        let _ = Command::new(bin.join("crash_after"))
            .arg((i % 30).to_string())
            .stderr(std::process::Stdio::null())
            .status();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let load_secs = load_started.elapsed().as_secs_f64();
    let (rss_load, cpu_load_end) = rss_cpu(pid);
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let done = ct.wait_with_output()?;
    let (latency, incidents) = latency_and_incidents(&done.stderr, &out);
    println!();
    println!("crashtrace's own footprint (attach: median of {runs} runs):");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| attach --pid to a running C program, until its attach record | {:.1} ms |",
        median(attach_ms)
    );
    println!("| RSS after attach --exe, idle | {rss_start} KiB → {rss_idle} KiB after 10 s |");
    println!(
        "| CPU idle | {:.2} s over 10 s ({:.1} %) |",
        cpu_idle_end - cpu_start,
        (cpu_idle_end - cpu_start) * 10.0
    );
    println!("| RSS after {CRASHES} crashing processes ({incidents} incidents) | {rss_load} KiB |");
    println!(
        "| CPU under that load | {:.2} s over {load_secs:.1} s ({:.1} %) |",
        cpu_load_end - cpu_idle_end,
        (cpu_load_end - cpu_idle_end) / load_secs * 100.0
    );
    println!("| {latency} | (kernel timestamp of the first event → incident written) |");
    let (several, several_incidents) = latency_several_programs(crashtrace, &bin)?;
    println!(
        "| with 4 programs crashing at once, 4 × 50 processes ({several_incidents} incidents): {several} | (same) |"
    );
    footprint_large_targets(crashtrace)
}

/// RSS of `attach --pid` to large programs (#17: ≤ 50 MB attached to any
/// one process): a Go net/http server, and crashtrace's own release and
/// debug builds (71 and 142 MB, DWARF) waiting in `report -`.
fn footprint_large_targets(crashtrace: &Path) -> Result<()> {
    let root = workspace_root();
    let version = crate::setup::GO_VERSIONS[crate::setup::GO_VERSIONS.len() - 1];
    let go = crate::setup::go_binary(&crate::setup::go_cache_dir().join(format!("venv-{version}")))
        .context("Go toolchain")?;
    let httpd = super::go::build_go_program(&go, version, "httpd")?;
    let mut targets: Vec<(String, Vec<std::ffi::OsString>)> = vec![(
        format!("Go {version} net/http server (httpd serve)"),
        vec![httpd.into_os_string(), "serve".into()],
    )];
    for (label, bin) in [
        ("crashtrace's release build", crashtrace.to_path_buf()),
        (
            "crashtrace's debug build",
            root.join("target/debug/crashtrace"),
        ),
    ] {
        if let Ok(m) = fs::metadata(&bin) {
            targets.push((
                format!("{label} ({} MB, DWARF) in `report -`", m.len() / 1_000_000),
                vec![bin.into_os_string(), "report".into(), "-".into()],
            ));
        }
    }
    println!();
    println!("attach --pid to one process: crashtrace's RSS (KiB)");
    println!("| target | at the attach record | 10 s later (anon + file) | peak |");
    println!("|---|---|---|---|");
    for (label, argv) in targets {
        step(&format!("attached to {label}"));
        let (program, args) = argv.split_first().context("empty command")?;
        let mut target = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        let out = root.join("target/bench/large.ndjson");
        let _ = fs::remove_file(&out);
        let ct = attach_and_wait(crashtrace, target.id(), &out)
            .with_context(|| format!("attached to {label}"))?;
        let (at_attach, _) = rss_cpu(ct.id());
        std::thread::sleep(std::time::Duration::from_secs(10));
        let status = fs::read_to_string(format!("/proc/{}/status", ct.id())).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        println!(
            "| {label} | {at_attach} | {} ({} + {}) | {} |",
            field("VmRSS:"),
            field("RssAnon:"),
            field("RssFile:"),
            field("VmHWM:")
        );
        let _ = Command::new("kill")
            .args(["-INT", &ct.id().to_string()])
            .status();
        let _ = ct.wait_with_output();
        let _ = target.kill();
        let _ = target.wait();
    }
    Ok(())
}

/// `crashtrace attach --pid PID` writing NDJSON to `out`, once its
/// `attach` record is there (30 s at most).
fn attach_and_wait(crashtrace: &Path, pid: u32, out: &Path) -> Result<std::process::Child> {
    let started = std::time::Instant::now();
    let mut ct = Command::new(crashtrace)
        .args(["-q", "--format", "ndjson", "-o"])
        .arg(out)
        .args(["attach", "--pid"])
        .arg(pid.to_string())
        .spawn()?;
    while !fs::read_to_string(out)
        .unwrap_or_default()
        .contains("\"attach\"")
    {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = ct.kill();
            let _ = ct.wait();
            bail!("no attach record");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(ct)
}

/// Crash-to-incident latency when 4 programs (4 watched files) crash
/// concurrently, 50 processes each, from 4 threads: (crashtrace's latency
/// summary, incidents written).
fn latency_several_programs(crashtrace: &Path, bin: &Path) -> Result<(String, usize)> {
    step("latency with several programs at once");
    let programs: Vec<PathBuf> = (0..4).map(|i| bin.join(format!("app{i}"))).collect();
    for p in &programs {
        fs::copy(bin.join("crash_after"), p)?;
    }
    let out = bin.join("several.ndjson");
    let _ = fs::remove_file(&out);
    let mut cmd = Command::new(crashtrace);
    cmd.args(["-v", "--format", "ndjson", "-o"])
        .arg(&out)
        .arg("attach");
    for p in &programs {
        cmd.arg("--exe").arg(p);
    }
    let ct = cmd.stderr(std::process::Stdio::piped()).spawn()?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    std::thread::scope(|s| {
        for p in &programs {
            s.spawn(move || {
                for i in 0..50 {
                    let _ = Command::new(p)
                        .arg((i % 30).to_string())
                        .stderr(std::process::Stdio::null())
                        .status();
                }
            });
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &ct.id().to_string()])
        .status();
    let done = ct.wait_with_output()?;
    Ok(latency_and_incidents(&done.stderr, &out))
}

/// The latency part of crashtrace's `-v` summary, and the incidents in
/// its NDJSON output.
fn latency_and_incidents(stderr: &[u8], out: &Path) -> (String, usize) {
    let summary = String::from_utf8_lossy(stderr);
    let latency = summary
        .split(", ")
        .find(|p| p.starts_with("crash-to-incident latency"))
        .unwrap_or("latency: not reported")
        .to_owned();
    let incidents = fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"type\":\"incident\""))
        .count();
    (latency, incidents)
}
