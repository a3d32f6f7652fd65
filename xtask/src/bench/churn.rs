//! Bench part `churn`: the daemon's memory while 1,000 processes of 50
//! different binaries (C, C++ and Go, each a distinct file with its own
//! DWARF) start, crash or recover, and exit (#17: RSS stays flat once every
//! binary has been seen: the caches are bounded).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    setup::{GO_VERSIONS, go_binary, go_cache_dir},
    util::{rss_cpu, run, step, workspace_root},
};

const C_BINARIES: usize = 30;
const CXX_BINARIES: usize = 10;
const GO_BINARIES: usize = 10;
const PROCESSES: usize = 1000;
/// After how many processes the daemon's RSS is read.
const CHECKPOINTS: [usize; 6] = [50, 100, 250, 500, 750, 1000];

/// One of the 50 programs: how to run it for the i-th process.
struct Program {
    path: PathBuf,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    /// crash_after: SIGSEGV after a few ms.
    C,
    /// uncaught: 1,000 caught throws, then std::terminate.
    Cxx,
    /// crashy: two recovered panics, or a nil dereference that kills it.
    Go,
}

pub(crate) fn bench_churn(crashtrace: &Path) -> Result<()> {
    let root = workspace_root();
    let dir = root.join("target/bench/churn");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("src"))?;
    fs::create_dir_all(dir.join("bin"))?;
    step("building 50 distinct binaries (30 C, 10 C++, 10 Go)");
    let programs = build_programs(&root, &dir)?;

    let events = dir.join("events.ndjson");
    let config = dir.join("crashtrace.toml");
    fs::write(
        &config,
        format!(
            "[select]\nexe = [\"{}/*\"]\n\n[[output]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.join("bin").display(),
            events.display()
        ),
    )?;
    let mut daemon = Command::new(crashtrace)
        .args(["daemon", "--config"])
        .arg(&config)
        .stderr(fs::File::create(dir.join("daemon.stderr"))?)
        .spawn()
        .context("starting the daemon")?;
    let pid = daemon.id();
    // Every binary watched (and warmed) before the first process starts.
    std::thread::sleep(Duration::from_secs(3));
    let (rss_start, _) = rss_cpu(pid);

    step(&format!("{PROCESSES} processes, one binary after another"));
    let mut rows = Vec::new();
    let mut expected_incidents = 0usize;
    for i in 0..PROCESSES {
        let p = &programs[i % programs.len()];
        let mut cmd = Command::new(&p.path);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        match p.kind {
            Kind::C => {
                cmd.arg((i % 7).to_string());
                expected_incidents += 1;
            }
            Kind::Cxx => {
                expected_incidents += 1;
            }
            Kind::Go if (i / programs.len()) % 2 == 0 => {
                cmd.arg("recovered");
                expected_incidents += 2;
            }
            Kind::Go => {
                cmd.arg("nilptr");
                expected_incidents += 1;
            }
        }
        cmd.status()
            .with_context(|| format!("running {}", p.path.display()))?;
        if CHECKPOINTS.contains(&(i + 1)) {
            // Let analysis finish the last stories before reading.
            std::thread::sleep(Duration::from_secs(1));
            let (rss, _) = rss_cpu(pid);
            rows.push((i + 1, rss, count_incidents(&events)));
        }
    }
    let (_, cpu) = rss_cpu(pid);
    let hwm = peak_rss(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = daemon.wait()?;
    if !status.success() {
        bail!("the daemon exited with {status}");
    }
    let incidents = count_incidents(&events);

    println!();
    println!(
        "daemon RSS over {PROCESSES} processes of {} binaries ({C_BINARIES} C, {CXX_BINARIES} C++, {GO_BINARIES} Go; exe glob selector):",
        programs.len()
    );
    println!("| processes | RSS | incidents written |");
    println!("|---|---|---|");
    println!("| 0 (binaries watched) | {:.1} MB | 0 |", mb(rss_start));
    for (n, rss, inc) in &rows {
        println!("| {n} | {:.1} MB | {inc} |", mb(*rss));
    }
    println!(
        "| peak (VmHWM) | {:.1} MB | {incidents} of {expected_incidents} expected; daemon CPU {cpu:.1} s |",
        mb(hwm)
    );
    Ok(())
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn peak_rss(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn count_incidents(events: &Path) -> usize {
    fs::read_to_string(events)
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("\"type\":\"incident\""))
                .count()
        })
        .unwrap_or(0)
}

/// 50 distinct files: each variant's source includes the test program and
/// adds a string of its own, so the files (and their build ids) differ
/// while the code and its line numbers stay the test program's.
fn build_programs(root: &Path, dir: &Path) -> Result<Vec<Program>> {
    let mut programs = Vec::new();
    let variants = [
        (Kind::C, C_BINARIES, "crash_after.c", "gcc", "c"),
        (Kind::Cxx, CXX_BINARIES, "uncaught.cpp", "g++", "cpp"),
    ];
    for (kind, n, source, compiler, ext) in variants {
        for v in 0..n {
            let src = dir.join(format!("src/{source}-{v}.{ext}"));
            fs::write(
                &src,
                format!(
                    "__attribute__((used)) static const char churn_variant[] = \"variant {v}\";\n#include \"{}\"\n",
                    root.join("testdata/native").join(source).display()
                ),
            )?;
            let path = dir.join(format!(
                "bin/{}{v:02}",
                if ext == "c" { "c" } else { "cxx" }
            ));
            run(Command::new(compiler)
                .args(["-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-o"])
                .arg(&path)
                .arg(&src))?;
            programs.push(Program { path, kind });
        }
    }
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let go = go_binary(&go_cache_dir().join(format!("venv-{version}"))).context("Go toolchain")?;
    for v in 0..GO_BINARIES {
        let path = dir.join(format!("bin/go{v:02}"));
        // -X of a variable the program lacks changes nothing but the build
        // id: a distinct file with the same code.
        run(Command::new(&go)
            .args([
                "build",
                "-ldflags",
                &format!("-X main.churnVariant={v}"),
                "-o",
            ])
            .arg(&path)
            .arg(root.join("testdata/go/crashy/main.go"))
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GO111MODULE", "off")
            .env("GOCACHE", root.join("target/bench/gocache"))
            .env("GOPATH", root.join("target/bench/gopath")))?;
        programs.push(Program {
            path,
            kind: Kind::Go,
        });
    }
    // Interleave the kinds so every stretch of processes mixes runtimes.
    let mut mixed = Vec::with_capacity(programs.len());
    let (mut c, mut rest): (Vec<Program>, Vec<Program>) = programs
        .into_iter()
        .partition(|p| matches!(p.kind, Kind::C));
    while !c.is_empty() || !rest.is_empty() {
        for _ in 0..3 {
            if !c.is_empty() {
                mixed.push(c.remove(0));
            }
        }
        for _ in 0..2 {
            if !rest.is_empty() {
                mixed.push(rest.remove(0));
            }
        }
    }
    Ok(mixed)
}
