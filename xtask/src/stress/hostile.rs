//! Hostile input: the hostile test over a large corrupted corpus, and the
//! cargo-fuzz targets.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use super::Verdict;
use crate::{
    bench::build_go_bench,
    setup::{EBPF_TOOLCHAIN, GO_VERSIONS, cargo_bin_dir, go_binary, go_cache_dir},
    util::{run, step, workspace_root},
};

/// The hostile-input test with a larger corpus.
pub(crate) fn stress_hostile(corpus: usize) -> Result<Verdict> {
    step(&format!("stress: {corpus} corrupted binaries per original"));
    let out = Command::new("cargo")
        .current_dir(workspace_root())
        .args([
            "test",
            "-p",
            "tracer-user",
            "--test",
            "hostile",
            "--",
            "--nocapture",
        ])
        .env("CRASHTRACE_HOSTILE_VARIANTS", corpus.to_string())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stderr
        .lines()
        .find(|l| l.contains("corrupted binaries still inspected"))
        .unwrap_or("no summary")
        .to_owned();
    Ok(Verdict {
        scenario: "hostile input: truncated/corrupted C, stripped Go, C++ binaries",
        pass: out.status.success(),
        detail: format!("{} variants: {summary}", corpus * 3),
    })
}

/// The cargo-fuzz targets (fuzz/, one per parser of outside data), each
/// for `seconds`, from seeds made here (real binaries, records, maps, the
/// example config, an NDJSON run) plus `fuzz/regressions/`. The corpus
/// grows across runs in target/fuzz-corpus. A failing input is left in
/// fuzz/artifacts/TARGET/: add it to fuzz/regressions/TARGET/ once fixed
/// (`cargo test` replays those).
pub(crate) fn stress_fuzz(crashtrace: &Path, bin: &Path, seconds: u64) -> Result<Vec<Verdict>> {
    const TARGETS: [&str; 7] = [
        "elf",
        "gopclntab",
        "unwind",
        "records",
        "maps",
        "config",
        "report",
    ];
    let root = workspace_root();
    if !cargo_bin_dir().join("cargo-fuzz").is_file() {
        step("installing cargo-fuzz");
        run(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            "0.13.2",
        ]))?;
    }
    step("fuzz: seeds");
    let corpus = root.join("target/fuzz-corpus");
    let seeds = |t: &str| -> Result<PathBuf> {
        let d = corpus.join(t);
        fs::create_dir_all(&d)?;
        Ok(d)
    };
    let native = root.join("testdata/native");
    let elf = seeds("elf")?;
    run(Command::new("gcc")
        .args(["-g", "-O2", "-o"])
        .arg(elf.join("c-O2"))
        .arg(native.join("crash_after.c")))?;
    run(Command::new("gcc")
        .args(["-g", "-O0", "-o"])
        .arg(elf.join("c-O0"))
        .arg(native.join("crash_after.c")))?;
    run(Command::new("strip")
        .arg("-o")
        .arg(elf.join("c-stripped"))
        .arg(elf.join("c-O2")))?;
    run(Command::new("g++")
        .args(["-g", "-O2", "-o"])
        .arg(elf.join("cxx"))
        .arg(native.join("std_exceptions.cpp")))?;
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let go = go_binary(&go_cache_dir().join(format!("venv-{version}"))).context("Go toolchain")?;
    let go_bin = build_go_bench(&go, version)?;
    run(Command::new("strip")
        .arg("-o")
        .arg(seeds("gopclntab")?.join("go-stripped"))
        .arg(&go_bin))?;
    fs::copy(
        seeds("gopclntab")?.join("go-stripped"),
        elf.join("go-stripped"),
    )?;
    // unwind: [ELF length][ELF][rip rsp rbp rbx r12..r15 hole][stack bytes]
    let c = fs::read(elf.join("c-O2"))?;
    let mut unwind = (c.len() as u32).to_le_bytes().to_vec();
    unwind.extend(&c);
    for w in [0x1175u64, 0x7ffe_0000, 0x7ffe_0040, 0, 0, 0, 0, 0, 0] {
        unwind.extend(w.to_le_bytes());
    }
    unwind.extend((0..1024).map(|i| i as u8));
    fs::write(seeds("unwind")?.join("c-O2"), unwind)?;
    for kind in 1u32..=11 {
        let mut r = kind.to_le_bytes().to_vec();
        r.resize(2048, 0);
        fs::write(seeds("records")?.join(format!("kind{kind}")), r)?;
    }
    let mut maps = fs::read("/proc/self/maps")?;
    maps.extend(fs::read("/proc/self/cgroup")?);
    fs::write(seeds("maps")?.join("self"), maps)?;
    fs::copy(
        root.join("packaging/crashtrace.toml"),
        seeds("config")?.join("crashtrace.toml"),
    )?;
    let _ = Command::new(crashtrace)
        .args(["--format", "ndjson", "-o"])
        .arg(seeds("report")?.join("run.ndjson"))
        .args(["run", "--"])
        .arg(bin.join("crash_after"))
        .arg("0")
        .status()?;

    let mut verdicts = Vec::new();
    for t in TARGETS {
        step(&format!("fuzz: {t} for {seconds} s"));
        let out = Command::new("cargo")
            .current_dir(root.join("fuzz"))
            .args([&format!("+{EBPF_TOOLCHAIN}"), "fuzz", "run", "-a", t])
            .arg(corpus.join(t))
            .arg(root.join("fuzz/regressions").join(t))
            .args([
                "--".to_owned(),
                format!("-max_total_time={seconds}"),
                "-rss_limit_mb=4096".to_owned(),
                "-timeout=20".to_owned(),
            ])
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let done = stderr
            .lines()
            .find(|l| l.starts_with("Done "))
            .unwrap_or("")
            .to_owned();
        let panic = stderr
            .lines()
            .find(|l| l.contains("panicked at") || l.contains("ERROR: libFuzzer"))
            .unwrap_or("")
            .to_owned();
        if !out.status.success() {
            eprintln!("{stderr}");
        }
        verdicts.push(Verdict {
            scenario: match t {
                "elf" => "fuzz elf: ELF, DWARF, symbols, CFI, Go build info",
                "gopclntab" => "fuzz gopclntab: Go's function table",
                "unwind" => "fuzz unwind: CFI rows on registers and stack bytes",
                "records" => "fuzz records: ring-buffer records",
                "maps" => "fuzz maps: /proc/PID/maps lines, cgroup paths",
                "config" => "fuzz config: the daemon's TOML",
                _ => "fuzz report: NDJSON given to `crashtrace report`",
            },
            pass: out.status.success(),
            detail: if out.status.success() {
                format!("{seconds} s: {done}, no failure")
            } else {
                format!("{panic} (input in fuzz/artifacts/{t}/)")
            },
        });
    }
    Ok(verdicts)
}
