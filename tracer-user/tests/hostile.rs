//! Hostile input: truncated and corrupted copies of real binaries (a C
//! program with DWARF, a stripped Go program read through .gopclntab, a
//! Rust program) given to the parsers of outside data — ELF, DWARF, CFI,
//! .gopclntab — through `crashtrace symbolize` and `crashtrace probes`.
//! Each must answer or fail with one clear line (exit 0 or 1): never a
//! panic, never a signal, never a hang.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use common::*;

/// A small deterministic generator (no dependency, reproducible corpus).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Variants of `original`: truncated at spread-out lengths, and with bytes
/// overwritten — in the headers (first 4 KiB), anywhere, and in the last
/// quarter (where section headers and debug sections usually are).
fn variants(original: &[u8], dir: &Path, name: &str, count: usize) -> Vec<PathBuf> {
    let mut rng = Lcg(0x5eed ^ original.len() as u64);
    let mut out = Vec::new();
    for i in 0..count {
        let mut data = original.to_vec();
        match i % 4 {
            0 => {
                let len = (rng.next() as usize) % original.len();
                data.truncate(len);
            }
            1 => {
                for _ in 0..16 {
                    let at = (rng.next() as usize) % 4096.min(data.len());
                    data[at] = rng.next() as u8;
                }
            }
            2 => {
                for _ in 0..64 {
                    let at = (rng.next() as usize) % data.len();
                    data[at] = rng.next() as u8;
                }
            }
            _ => {
                let start = data.len() * 3 / 4;
                for _ in 0..64 {
                    let at = start + (rng.next() as usize) % (data.len() - start);
                    data[at] = rng.next() as u8;
                }
            }
        }
        let path = dir.join(format!("{name}-{i}"));
        std::fs::write(&path, &data).unwrap();
        out.push(path);
    }
    out
}

fn check(output: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "{what}: status {:?}\n{stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    if code == Some(1) {
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
    }
}

fn run_bounded(cmd: &mut Command, what: &str) -> Output {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{what}: took {:?}",
        started.elapsed()
    );
    out
}

#[test]
fn corrupted_binaries_get_a_clear_error_never_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    let originals = [
        ("c", build_c("null_deref")),
        (
            "go-stripped",
            build_go_flags("crashy", version, Some("-s -w")),
        ),
        ("cxx", build_cxx("uncaught")),
    ];
    // `cargo xtask stress` runs a larger corpus through the same check.
    let per_binary: usize = std::env::var("CRASHTRACE_HOSTILE_VARIANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut ok = 0;
    let mut errors = 0;
    for (name, path) in &originals {
        let original = std::fs::read(path).unwrap();
        for v in variants(&original, dir.path(), name, per_binary) {
            let what = v.display().to_string();
            let out = run_bounded(
                Command::new(crashtrace_bin())
                    .args(["symbolize", "--exe"])
                    .arg(&v)
                    .args(["0x1000", "0x401000", "0x1139", "0x4a0000"]),
                &what,
            );
            check(&out, &format!("symbolize {what}"));
            let out = run_bounded(
                Command::new(crashtrace_bin())
                    .args(["probes", "--exe"])
                    .arg(&v),
                &what,
            );
            check(&out, &format!("probes {what}"));
            if out.status.success() {
                ok += 1;
            } else {
                errors += 1;
            }
        }
    }
    eprintln!("{ok} corrupted binaries still inspected, {errors} refused with one line");
    assert!(errors > 0, "truncations must be refused");
}
