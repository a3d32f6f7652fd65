//! Bench part `symbolize`: `crashtrace symbolize` against go tool
//! addr2line, binutils addr2line, llvm-symbolizer and eu-addr2line on large
//! Go, Rust and C++ binaries, time and answers (and gdb's lines).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util::{median, output, run, step, workspace_root};

/// Symbolization speed on a large Go binary (the toolchain's own `cmd/go`),
/// side by side: `crashtrace symbolize` against `go tool addr2line` on a
/// `-s -w` build (both read .gopclntab), and against binutils `addr2line
/// -f -i` on the plain build (both read DWARF). Same addresses, same runs.
pub(crate) fn bench_symbolize(crashtrace: &Path, go: &Path, runs: usize) -> Result<()> {
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
    // The answers: go tool addr2line's (the physical function, the
    // innermost file:line) against crashtrace's outermost function and
    // innermost frame, on both builds.
    for (label, bin, addrs) in [
        ("cmd/go -s -w", &stripped_bin, &stripped_addrs),
        ("cmd/go (DWARF present)", &plain_bin, &plain_addrs),
    ] {
        let (_, ours) = run_with_stdin(
            Command::new(crashtrace)
                .args(["symbolize", "--format", "ndjson", "--exe"])
                .arg(bin)
                .arg("-"),
            addrs,
        )?;
        let (_, theirs) =
            run_with_stdin(Command::new(go).args(["tool", "addr2line"]).arg(bin), addrs)?;
        let (same, total, differences) = go_tool_agreement(addrs, &ours, &theirs);
        println!(
            "| {label}: same (physical function, innermost file:line) as go tool addr2line | {same} of {total} ({:.2} %) |",
            100.0 * same as f64 / total.max(1) as f64
        );
        for d in differences.iter().take(5) {
            println!("|   differs: {d} | |");
        }
    }
    // The plain build against every native tool too, cold and warm, with
    // the answers compared.
    compare_native_symbolizers(crashtrace, &plain_bin, "cmd/go (Go", runs)
}

/// Compares `crashtrace symbolize --format ndjson` output (`ours`) with go
/// tool addr2line's (`theirs`: two lines per address, function and
/// file:line) for the addresses in `addrs`: (same, compared, the first
/// differences in words). crashtrace's answer is its outermost frame's
/// function (the physical one, which go tool names) and its innermost
/// frame's file:line (the inlined position, which go tool gives).
fn go_tool_agreement(addrs: &str, ours: &str, theirs: &str) -> (usize, usize, Vec<String>) {
    let theirs: Vec<&str> = theirs.lines().collect();
    let ours: Vec<serde_json::Value> = ours
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let (mut same, mut total, mut differences) = (0, 0, Vec::new());
    for (i, addr) in addrs.lines().enumerate() {
        let (Some(function), Some(place), Some(record)) =
            (theirs.get(2 * i), theirs.get(2 * i + 1), ours.get(i))
        else {
            break;
        };
        total += 1;
        let frames = record["frames"].as_array().cloned().unwrap_or_default();
        let outer = frames
            .last()
            .and_then(|f| f["function"].as_str())
            .unwrap_or("?");
        // No line on either side: crashtrace leaves file and line out, go
        // tool prints ":-1" or "?:0".
        let ours_place = frames
            .first()
            .and_then(|f| Some(format!("{}:{}", f["file"].as_str()?, f["line"].as_u64()?)));
        let theirs_place = (!matches!(*place, ":-1" | "?:0")).then_some(*place);
        if outer == *function && ours_place.as_deref() == theirs_place {
            same += 1;
        } else if differences.len() < 20 {
            differences.push(format!(
                "{addr}: crashtrace {outer} at {}, go tool {function} at {place}",
                ours_place.as_deref().unwrap_or("(no line)")
            ));
        }
    }
    (same, total, differences)
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
pub(crate) fn bench_symbolize_native(crashtrace: &Path, runs: usize) -> Result<()> {
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
