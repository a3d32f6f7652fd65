//! Developer commands: `cargo xtask setup | build | demo | install | test`.
//!
//! `setup` installs everything the build and the tests need, idempotently (a
//! second run takes seconds): the pinned nightly with rust-src for the eBPF
//! crate, bpf-linker linked against that nightly's LLVM, and the Debian
//! packages the tests use. The recipe is ../shared/TOOLCHAIN.md's.

mod bench;
mod go_layouts;
mod install;
mod release;
mod setup;
mod stress;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{
    bench::{BenchPart, bench},
    go_layouts::go_layouts,
    install::install,
    release::{build_release, demo},
    setup::setup,
    stress::stress,
    test::test,
};

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
    /// setup + release build, then install: the binary, man page, shell
    /// completions, systemd unit and (unless present) the daemon config.
    Install {
        /// Where bin/, share/ and lib/systemd go.
        #[arg(long, default_value = "/usr/local")]
        prefix: std::path::PathBuf,
        /// Stage the files under this directory instead (for packaging).
        #[arg(long)]
        destdir: Option<std::path::PathBuf>,
    },
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
        Cmd::Install { prefix, destdir } => {
            setup().and_then(|()| install(&prefix, destdir.as_deref()))
        }
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
