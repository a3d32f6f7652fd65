//! `crashtrace symbolize` and `crashtrace probes` on real binaries: stripped
//! Go builds answered from `.gopclntab` exactly as the Go toolchain's own
//! `go tool addr2line` answers, and the debug-info source shown.

mod common;

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use common::*;
use object::{Object as _, ObjectSection as _};
use serde_json::Value;

fn crashtrace(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(crashtrace_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let feed = stdin.to_owned();
    let writer = std::thread::spawn(move || pipe.write_all(feed.as_bytes()));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

/// `crashtrace probes --format ndjson --exe BIN`'s report.
fn probes_ndjson(bin: &std::path::Path) -> Value {
    let out = crashtrace(
        &[
            "probes",
            "--format",
            "ndjson",
            "--exe",
            bin.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Ground truth from the Go toolchain: `go tool addr2line` reads the same
/// table (no DWARF in the binary): the physical function, and the file and
/// line at the pc (which are the innermost inlined call's).
#[test]
fn stripped_go_symbolizes_like_go_tool_addr2line() {
    for &version in GO_VERSIONS {
        let bin = build_go_flags("crashy", version, Some("-s -w"));
        let data = std::fs::read(&bin).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        let text = obj.section_by_name(".text").unwrap();
        let addrs: Vec<String> = (text.address()..text.address() + text.size())
            .step_by(61)
            .map(|a| format!("{a:#x}"))
            .collect();
        let input = addrs.join("\n") + "\n";

        let ours = crashtrace(
            &[
                "symbolize",
                "--format",
                "ndjson",
                "--exe",
                bin.to_str().unwrap(),
                "-",
            ],
            &input,
        );
        assert!(
            ours.status.success(),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let ours: Vec<Value> = String::from_utf8_lossy(&ours.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ours.len(), addrs.len());

        let mut go = Command::new(go_tool(version))
            .args(["tool", "addr2line"])
            .arg(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // It answers line by line: feed it from another thread, or both
        // pipes fill up.
        let mut stdin = go.stdin.take().unwrap();
        let feed = input.clone();
        let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()));
        let theirs = go.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(theirs.status.success());
        let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
        let theirs: Vec<&str> = theirs.lines().collect();
        assert_eq!(theirs.len(), 2 * addrs.len());

        let mut inlined = 0;
        for (i, rec) in ours.iter().enumerate() {
            let (func, file_line) = (theirs[2 * i], theirs[2 * i + 1]);
            let frames = rec["frames"].as_array().unwrap();
            assert_eq!(rec["debuginfo"], "gopclntab");
            if func == "?" {
                assert!(
                    frames.is_empty() || frames[0]["function"].is_null(),
                    "{rec}"
                );
                continue;
            }
            let ctx = format!("Go {version} {}", addrs[i]);
            let physical = frames.last().unwrap_or_else(|| panic!("{ctx}: nothing"));
            assert_eq!(physical["function"], func, "{ctx}");
            assert_eq!(physical["inlined"], false, "{ctx}");
            let innermost = &frames[0];
            if file_line.starts_with(":-") {
                // No position at this pc (padding after the code, marker
                // symbols): go tool prints a negative line, we say unknown.
                assert!(innermost["line"].is_null(), "{ctx}: {rec}");
                continue;
            }
            let ours_file_line = format!(
                "{}:{}",
                innermost["file"].as_str().unwrap_or("?"),
                innermost["line"]
            );
            assert_eq!(ours_file_line, file_line, "{ctx}: {rec}");
            if frames.len() > 1 {
                inlined += 1;
            }
        }
        // The table's inline trees are read, not only its function table.
        assert!(
            inlined > 50,
            "Go {version}: {inlined} addresses in inlined code"
        );
    }
}

/// A Go binary as a distribution ships it: Debian's fzf, built by Go 1.19
/// (the 1.18–1.19 table format), externally linked (C code before the Go
/// text), stripped. `go tool addr2line` takes the .text section's start as
/// the table's base, which is wrong when C code comes first: its answer for
/// A is the location of A + (textStart - .text). We use the table's own
/// textStart; the test checks our answer there against its answer.
#[test]
fn distro_go119_binary_symbolizes_like_go_tool_addr2line() {
    let bin = "/usr/bin/fzf";
    let data = std::fs::read(bin).expect("fzf is installed by ./xtask.sh setup");
    let obj = object::File::parse(&*data).unwrap();
    let text = obj.section_by_name(".text").unwrap();
    let table = obj.section_by_name(".gopclntab").unwrap().data().unwrap();
    assert_eq!(
        &table[..4],
        &0xffff_fff0u32.to_le_bytes(),
        "Go 1.18-1.19 format"
    );
    let text_start = u64::from_le_bytes(table[24..32].try_into().unwrap());
    let shift = text_start - text.address();
    let theirs_at: Vec<u64> = (text.address()..text.address() + text.size() - shift)
        .step_by(53)
        .collect();
    let ours_at: Vec<String> = theirs_at
        .iter()
        .map(|a| format!("{:#x}", a + shift))
        .collect();

    let ours = crashtrace(
        &["symbolize", "--format", "ndjson", "--exe", bin, "-"],
        &(ours_at.join("\n") + "\n"),
    );
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours: Vec<Value> = String::from_utf8_lossy(&ours.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input: String = theirs_at.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut go = Command::new(go_tool(GO_VERSIONS[GO_VERSIONS.len() - 1]))
        .args(["tool", "addr2line", bin])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = go.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let theirs = go.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
    let theirs: Vec<&str> = theirs.lines().collect();
    assert_eq!(theirs.len(), 2 * ours.len());
    let (mut compared, mut inlined) = (0, 0);
    for (i, rec) in ours.iter().enumerate() {
        let (func, file_line) = (theirs[2 * i], theirs[2 * i + 1]);
        if func == "?" || file_line.starts_with(":-") {
            continue;
        }
        let frames = rec["frames"].as_array().unwrap();
        let ctx = format!("fzf {}", ours_at[i]);
        assert_eq!(frames.last().unwrap()["function"], func, "{ctx}");
        let ours_file_line = format!(
            "{}:{}",
            frames[0]["file"].as_str().unwrap_or("?"),
            frames[0]["line"]
        );
        assert_eq!(ours_file_line, file_line, "{ctx}: {rec}");
        compared += 1;
        if frames.len() > 1 {
            inlined += 1;
        }
    }
    assert!(compared > 10_000, "{compared}");
    assert!(inlined > 100, "{inlined} addresses in inlined code");
}

#[test]
fn probes_names_the_debug_info_source() {
    let version = GO_VERSIONS[GO_VERSIONS.len() - 1];
    for (bin, debuginfo, layout) in [
        (build_go("crashy", version), "dwarf", "dwarf"),
        (
            build_go_flags("crashy", version, Some("-s -w")),
            "gopclntab",
            "version table",
        ),
    ] {
        let r = probes_ndjson(&bin);
        assert_eq!(r["runtime"], "go");
        assert_eq!(r["runtime_version"], format!("go{version}"));
        assert_eq!(r["debuginfo"], debuginfo, "{r:#}");
        assert_eq!(r["layout"], layout, "{r:#}");
        // Go 1.22+: the rate limit's panic site at recovery, from gopanic's
        // frame size (16 above nextDefer's frame pointer, then the frame).
        assert!(
            r["recovery_site_offset"].as_u64().is_some_and(|o| o > 16),
            "{r:#}"
        );
        for p in r["probes"].as_array().unwrap() {
            // runtime.deferCallSave only exists in Go 1.19–1.21.
            let expected = p["name"] != "runtime.deferCallSave";
            assert_eq!(p["found"], expected, "{p}");
            assert_eq!(p["instruction"] == "push rbp", expected, "{p}");
        }
    }
    // Debian 12's fzf (Go 1.19.8, stripped): its layout from the version
    // table, its probes on the stack checks' jumps (on `sub rsp` where
    // there is none); runtime.Goexit is not linked into fzf.
    let debian = crashtrace(
        &["probes", "--format", "ndjson", "--exe", "/usr/bin/fzf"],
        "",
    );
    let r: Value = serde_json::from_slice(&debian.stdout).unwrap();
    assert_eq!(r["runtime"], "go");
    assert_eq!(r["runtime_version"], "go1.19.8");
    assert_eq!(r["debuginfo"], "gopclntab");
    assert_eq!(r["layout"], "version table");
    assert!(r["runtime_layout"].is_object(), "{r:#}");
    assert!(r["recovery_site_offset"].is_null(), "{r:#}");
    for p in r["probes"].as_array().unwrap() {
        let expected = match p["name"].as_str().unwrap() {
            "runtime.Goexit" => None,
            "runtime.throw" | "runtime.fatal" => Some("sub rsp"),
            _ => Some("stack check jbe"),
        };
        assert_eq!(p["found"], expected.is_some(), "{p}");
        assert_eq!(p["instruction"].as_str(), expected, "{p}");
    }

    // Stripped of its section headers too (`-s -w` keeps them): the build
    // info found in the data segment, the table by its magic, as Go's own
    // debug/buildinfo and runtime do.
    let plain = build_go_flags("crashy", DEBIAN_GO.0, Some("-s -w"));
    let mut elf = std::fs::read(&plain).unwrap();
    elf[0x28..0x30].fill(0); // e_shoff
    elf[0x3a..0x40].fill(0); // e_shentsize, e_shnum, e_shstrndx
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("crashy-no-sections");
    std::fs::write(&bin, elf).unwrap();
    let r = probes_ndjson(&bin);
    assert_eq!(r["runtime"], "go", "{r:#}");
    assert_eq!(r["runtime_version"], format!("go{}", DEBIAN_GO.0));
    assert_eq!(r["layout"], "version table");
    assert!(
        r["gopclntab"]
            .as_str()
            .unwrap()
            .starts_with("found by scan"),
        "{r:#}"
    );
    assert!(
        r["probes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["found"] == true)
    );

    let native = crashtrace(
        &["probes", "--format", "ndjson", "--exe", "/usr/bin/true"],
        "",
    );
    let r: Value = serde_json::from_slice(&native.stdout).unwrap();
    assert_eq!(r["runtime"], "native");
    assert_eq!(r["probes"].as_array().unwrap().len(), 0);

    // Not ELF: one line, status 1.
    let bad = crashtrace(&["probes", "--exe", "/etc/passwd"], "");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a valid ELF file"), "{err}");
}

/// `probes --exe` lists the per-process probes a process of the file gets
/// (C++ throws in the libstdc++ it loads, Rust panics, dlopen), the same
/// ones its `attach` record lists when it runs; none for a plain C program.
#[test]
fn probes_lists_what_a_process_of_the_file_gets() {
    for bin in [build_cxx("uncaught"), build_c("null_deref")] {
        let r = probes_ndjson(&bin);
        let mut listed: Vec<String> = r["process_probes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let t = run_traced(&bin, &[]);
        let mut placed: Vec<String> = t.one("attach")["probes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .filter(|p| !p.starts_with("raw_tp/"))
            .map(str::to_owned)
            .collect();
        listed.sort();
        placed.sort();
        assert_eq!(listed, placed, "{}: {r:#}", bin.display());
        if bin.ends_with("uncaught-cxx") {
            assert!(listed.contains(&"uprobe/__cxa_throw".to_owned()), "{r:#}");
            let file = r["process_probes"][0]["file"].as_str().unwrap_or_default();
            assert!(file.contains("libstdc++.so.6"), "{r:#}");
        } else {
            assert!(listed.is_empty(), "{r:#}");
        }
    }
}

const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

/// Every 997th byte of libc's `.text` (over 1,000 addresses: answered on
/// several threads).
fn libc_text_every_997th_byte() -> Vec<u64> {
    let data = std::fs::read(LIBC).expect("libc");
    let obj = object::File::parse(&*data).expect("libc ELF");
    let text = obj.section_by_name(".text").expect(".text");
    let addrs: Vec<u64> = (text.address()..text.address() + text.size())
        .step_by(997)
        .collect();
    assert!(addrs.len() > 1000, "too few addresses");
    addrs
}

/// Many addresses are answered on several threads; where no thread can
/// start (a user at its process limit), all of them are answered on the
/// main one, the same answers (not a panic: the earlier code's
/// `thread::scope` spawn did that). libc's DWARF comes from libc6-dbg's
/// separate debug file, read by a user with no process to spare.
#[test]
fn symbolize_without_threads_answers_the_same() {
    let libc = LIBC;
    let addrs: String = libc_text_every_997th_byte()
        .iter()
        .map(|a| format!("{a:#x}\n"))
        .collect();
    let args = ["symbolize", "--format", "ndjson", "--exe", libc, "-"];
    let threaded = crashtrace(&args, &addrs);
    assert!(threaded.status.success(), "{threaded:?}");

    // RLIMIT_NPROC does not bind root: the same binary, readable by
    // nobody, run as nobody with a limit of one process (itself).
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("crashtrace");
    std::fs::copy(crashtrace_bin(), &bin).expect("copy crashtrace");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "prlimit",
            "--nproc=1",
        ])
        .arg(&bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv");
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || pipe.write_all(addrs.as_bytes()));
    let alone = child.wait_with_output().unwrap();
    let _ = writer.join();
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        String::from_utf8_lossy(&threaded.stdout)
    );
}

/// Answers come in the order the addresses were asked, whatever the order:
/// the threads take the addresses unit by unit (libc's 2,000 units), the
/// answers are put back in place. A scrambled order's answers are the
/// sorted order's, line for line.
#[test]
fn symbolize_answers_in_the_order_asked() {
    let libc = LIBC;
    let sorted = libc_text_every_997th_byte();
    let n = sorted.len();
    // A permutation (7919 is prime, n is not a multiple of it).
    assert_ne!(n % 7919, 0);
    let scrambled: Vec<u64> = (0..n).map(|i| sorted[i * 7919 % n]).collect();
    let ask = |addrs: &[u64]| -> Vec<Value> {
        let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
        let out = crashtrace(
            &["symbolize", "--format", "ndjson", "--exe", libc, "-"],
            &input,
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON"))
            .collect()
    };
    let in_order = ask(&sorted);
    let out_of_order = ask(&scrambled);
    assert_eq!(in_order.len(), n);
    assert_eq!(out_of_order.len(), n);
    let named = in_order
        .iter()
        .filter(|a| a["frames"][0]["function"].is_string())
        .count();
    assert!(named > n * 9 / 10, "{named} of {n} named");
    for (i, answer) in out_of_order.iter().enumerate() {
        assert_eq!(answer["addr"], format!("{:#x}", scrambled[i]), "line {i}");
        assert_eq!(*answer, in_order[i * 7919 % n], "line {i}");
    }
}
