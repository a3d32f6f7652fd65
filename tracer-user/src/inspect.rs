//! Commands that look at a binary without running anything:
//! `crashtrace symbolize --exe BIN ADDR…` and `crashtrace probes --exe BIN`.
//! They go through the same code as tracing (symbolize::ElfModule,
//! golang::GoBinary), so what they print is what a crash would show.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use tracer_common::GoProbe;

use crate::{
    Failure,
    cli::{ProbesArgs, Settings, SymbolizeArgs},
    golang::{self, GoBinary},
    output::{Format, Output},
    record::SCHEMA,
    symbolize::{ElfModule, PcKind},
};

fn parse_addr(s: &str) -> Result<u64, Failure> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(hex, 16).map_err(|_| Failure::Usage(format!("not a hex address: {s:?}")))
}

fn open_module(exe: &Path) -> Result<ElfModule, Failure> {
    if !exe.exists() {
        return Err(Failure::Other(anyhow::anyhow!(
            "{}: no such file",
            exe.display()
        )));
    }
    ElfModule::open(exe, &exe.to_string_lossy()).map_err(Failure::Other)
}

#[derive(Serialize)]
struct Symbolized<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    exe: &'a str,
    addr: &'a str,
    debuginfo: &'static str,
    frames: Vec<SymbolizedFrame<'a>>,
}

/// A [`crate::record::Frame`] as NDJSON spells it (the same fields, in the same order),
/// borrowed from the lookup's answer: `symbolize` answers many addresses
/// and each owned copy was an allocation.
#[derive(Serialize)]
struct SymbolizedFrame<'a> {
    pc: &'a str,
    function: Option<&'a str>,
    file: Option<&'a str>,
    line: Option<u32>,
    inlined: bool,
    module: &'a str,
}

pub fn symbolize(common: &Settings, args: &SymbolizeArgs) -> Result<i32, Failure> {
    // `-`: addresses on stdin, whitespace-separated (as addr2line reads them).
    let from_stdin = args.addrs.iter().any(|a| a == "-");
    let stdin_text = if from_stdin {
        std::io::read_to_string(std::io::stdin()).map_err(|e| Failure::Other(e.into()))?
    } else {
        String::new()
    };
    let addrs = args
        .addrs
        .iter()
        .filter(|a| *a != "-")
        .map(String::as_str)
        .chain(stdin_text.split_whitespace())
        .map(parse_addr)
        .collect::<Result<Vec<_>, _>>()?;
    let module = open_module(&args.exe)?;
    let exe = args.exe.to_string_lossy();
    let mut out = Output::new(common.format, common.output.as_deref()).map_err(Failure::Other)?;
    let format = common.format;
    let answer = |module: &ElfModule, part: &[u64]| -> Vec<Result<String, Failure>> {
        part.iter()
            .map(|&addr| render_symbolized(module, &exe, format, addr))
            .collect()
    };
    // Every address is known before the first answer: a block is answered
    // on every core at once, its lines written in order, one write per
    // 64 KiB. Go code answered from `.gopclntab` takes no lock (the lookups
    // read the mapped file and cache per thread): the threads share the
    // module. DWARF lookups share one cache of parsed units behind a lock:
    // each further thread opens the file again and keeps units of its own
    // (a 71 MB Rust binary, 5,789 addresses: 0.46 s on one thread, 0.28 s
    // on two).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let own_modules: Vec<ElfModule> =
        if cores > 1 && !module.parallel_lookups() && addrs.len() >= PARALLEL_FROM {
            (1..cores)
                .filter_map(|_| open_module(&args.exe).ok())
                .collect()
        } else {
            Vec::new()
        };
    let modules: Vec<&ElfModule> = std::iter::once(&module).chain(&own_modules).collect();
    let threads = if module.parallel_lookups() {
        cores
    } else {
        modules.len()
    };
    for block in addrs.chunks(SYMBOLIZE_BLOCK) {
        let lines: Vec<Result<String, Failure>> = if threads > 1 && block.len() >= PARALLEL_FROM {
            answer_in_parallel(&modules, threads, block, &answer)
        } else {
            answer(&module, block)
        };
        for line in lines {
            out.line_batched(&line?).map_err(Failure::Other)?;
        }
    }
    out.flush().map_err(Failure::Other)?;
    Ok(0)
}

/// The answers to some addresses by one module.
type Answerer<'a> = dyn Fn(&ElfModule, &[u64]) -> Vec<Result<String, Failure>> + Sync + 'a;

/// A block's answers, in its order, from `threads` threads: the
/// addresses are grouped by the DWARF unit holding them (what a lookup
/// parses is its unit's: lines, functions, statement rows), and each
/// thread takes the next group, the largest first, until none is left.
/// Contiguous shares instead kept threads waiting for each other (the
/// 146 MiB C++ program's 8 units: 0.58 s against 0.78 s on its two
/// threads). Go code and addresses outside units go in groups of
/// neighbours. On threads of their own, the main thread waiting: measured
/// faster (0.078 s against 0.104 s for 81,470 addresses) than the main
/// thread answering a part itself.
fn answer_in_parallel(
    modules: &[&ElfModule],
    threads: usize,
    block: &[u64],
    answer: &Answerer<'_>,
) -> Vec<Result<String, Failure>> {
    const NEIGHBOURS: usize = 256;
    let Some(&first) = modules.first() else {
        return Vec::new();
    };
    // (group key, positions in the block): a unit's offset, or past every
    // offset a run of neighbours.
    let mut groups: std::collections::HashMap<u128, Vec<usize>> = std::collections::HashMap::new();
    for (i, &addr) in block.iter().enumerate() {
        let key = match first.unit_of(addr) {
            Some(unit) => unit as u128,
            None => (1u128 << 64) | (i / NEIGHBOURS) as u128,
        };
        groups.entry(key).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = |module: &ElfModule| -> Vec<(usize, Result<String, Failure>)> {
        let mut done = Vec::new();
        loop {
            let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(group) = groups.get(g) else {
                return done;
            };
            let addrs: Vec<u64> = group.iter().map(|&i| block[i]).collect();
            done.extend(group.iter().copied().zip(answer(module, &addrs)));
        }
    };
    let answered: Vec<(usize, Result<String, Failure>)> = std::thread::scope(|scope| {
        // Thread i on module i, or on the first when the lookups share
        // one (Go's table).
        let threads: Vec<_> = (0..threads)
            .map(|i| {
                let module = modules.get(i).copied().unwrap_or(first);
                std::thread::Builder::new()
                    .spawn_scoped(scope, || work(module))
                    .ok()
            })
            .collect();
        // A thread that could not start leaves its groups to the others;
        // none started: answered here.
        let mut answered: Vec<_> = threads
            .into_iter()
            .flatten()
            .flat_map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        answered.extend(work(first));
        answered
    });
    let mut lines: Vec<Option<Result<String, Failure>>> = (0..block.len()).map(|_| None).collect();
    for (i, line) in answered {
        if let Some(slot) = lines.get_mut(i) {
            *slot = Some(line);
        }
    }
    lines
        .into_iter()
        .map(|l| l.unwrap_or_else(|| Err(Failure::Other(anyhow::anyhow!("address not answered")))))
        .collect()
}

/// Addresses answered per block (bounds the answers held before writing:
/// ~200 bytes an answer): a unit's addresses in one block are answered by
/// one thread, which reads the unit once.
const SYMBOLIZE_BLOCK: usize = 65_536;
/// Fewer addresses than this are answered on one thread: starting threads
/// would cost more than it saves (and one address answers cold, at once).
const PARALLEL_FROM: usize = 512;

/// One address's answer as a line of `format`.
fn render_symbolized(
    module: &ElfModule,
    exe: &str,
    format: Format,
    addr: u64,
) -> Result<String, Failure> {
    let locations = module.lookup(addr, PcKind::Exact);
    let last = locations.len().saturating_sub(1);
    let pc = format!("{addr:#x}");
    let frames: Vec<SymbolizedFrame> = locations
        .iter()
        .enumerate()
        .map(|(i, l)| SymbolizedFrame {
            pc: &pc,
            function: l.function.as_deref(),
            file: l.file.as_deref(),
            line: l.line,
            inlined: i != last,
            module: exe,
        })
        .collect();
    Ok(match format {
        Format::Ndjson => {
            // Sized for the line at once (~360 bytes an address of cmd/go,
            // inlined frames included): growing from serde_json's 128
            // bytes reallocated each line twice or more.
            let mut line = Vec::with_capacity(160 + 200 * frames.len());
            serde_json::to_writer(
                &mut line,
                &Symbolized {
                    schema: SCHEMA,
                    kind: "symbolized",
                    exe,
                    addr: &pc,
                    debuginfo: module.debuginfo.as_str(),
                    frames,
                },
            )
            .map_err(|e| Failure::Other(e.into()))?;
            String::from_utf8(line).map_err(|e| Failure::Other(e.into()))?
        }
        Format::Human if frames.is_empty() => format!("{pc} ??"),
        Format::Human => frames
            .iter()
            .map(|f| {
                let loc = match (f.file, f.line) {
                    (Some(file), Some(line)) => format!(" at {file}:{line}"),
                    _ => String::new(),
                };
                let inl = if f.inlined { " [inlined]" } else { "" };
                format!("{pc} {}{loc}{inl}", f.function.unwrap_or("??"))
            })
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

#[derive(Serialize)]
struct ProbePoint {
    name: String,
    /// ELF address of the function, when found.
    address: Option<String>,
    /// File offset the uprobe is placed at: the `push rbp` after the stack
    /// check, or on Go 1.17–1.20 the stack check's `jbe` (`sub rsp` where
    /// there is no stack check).
    file_offset: Option<String>,
    /// That instruction: "push rbp", "stack check jbe", "sub rsp".
    instruction: Option<&'static str>,
    found: bool,
}

#[derive(Serialize)]
struct Probes<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    exe: &'a str,
    runtime: &'static str,
    runtime_version: Option<String>,
    module: Option<String>,
    debuginfo: &'static str,
    /// Go: where the runtime's struct offsets come from ("dwarf", "version table").
    #[serde(skip_serializing_if = "Option::is_none")]
    layout: Option<&'static str>,
    /// Go: how `.gopclntab` was found ("section", "scan") and whether its
    /// inline trees can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    gopclntab: Option<String>,
    /// Go: the runtime's struct offsets in use (null: no such field in
    /// this version).
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_layout: Option<serde_json::Map<String, serde_json::Value>>,
    /// Go 1.22+: where a recovered panic's site (gopanic's return
    /// address) is above the goroutine's saved frame pointer at
    /// runtime.recovery, from the binary's pcsp table (the rate limit's key).
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_site_offset: Option<u32>,
    kernel_probes: Vec<&'static str>,
    probes: Vec<ProbePoint>,
    /// Probes placed per process that runs this file, in it or in the
    /// libraries it loads (C++ throws in libstdc++, Rust panics, dlopen in
    /// libc), as its `attach` record will list them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    process_probes: Vec<ProcessProbe>,
}

#[derive(Serialize)]
struct ProcessProbe {
    name: &'static str,
    /// The file it sits in.
    file: String,
}

/// The per-process probes a process of `exe` gets: in the executable and
/// in the libraries ld.so loads for it (found as ld.so finds them; their
/// own dependencies and dlopen'ed ones are not followed).
fn process_probes(exe: &Path, module: &ElfModule) -> Vec<ProcessProbe> {
    let mut out: Vec<ProcessProbe> = crate::runtimes::rust::probe_names(module)
        .into_iter()
        .map(|name| ProcessProbe {
            name,
            file: exe.display().to_string(),
        })
        .collect();
    let libs: Vec<(std::path::PathBuf, ElfModule)> = module
        .needed_paths(exe)
        .into_iter()
        .filter_map(|p| {
            let lib = ElfModule::open(&p, &p.to_string_lossy()).ok()?;
            Some((p, lib))
        })
        .collect();
    let named = |p: &Path, soname: &str| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == soname || n.starts_with(&format!("{soname}.")))
    };
    if let Some((path, lib)) = libs.iter().find(|(p, _)| named(p, "libstdc++.so.6")) {
        out.extend(
            crate::probes::kernel::cxx_probe_names(lib)
                .into_iter()
                .map(|name| ProcessProbe {
                    name,
                    file: path.display().to_string(),
                }),
        );
    }
    let may_dlopen = module.imports_dlopen || libs.iter().any(|(_, l)| l.imports_dlopen);
    if may_dlopen && let Some((path, _)) = libs.iter().find(|(p, _)| named(p, "libc.so.6")) {
        out.push(ProcessProbe {
            name: "uretprobe/dlopen",
            file: path.display().to_string(),
        });
    }
    out
}

pub fn probes(common: &Settings, args: &ProbesArgs) -> Result<i32, Failure> {
    let module = open_module(&args.exe)?;
    let exe = args.exe.to_string_lossy();
    let go = GoBinary::inspect(&args.exe).map_err(Failure::Other)?;
    let (runtime, version, main_module, layout, table, probes) = match &go {
        Some(b) => {
            // One of gopanic and preprintpanics applies to a binary: the
            // other is left out, not listed as missing.
            let probes = golang::PROBE_POINTS
                .iter()
                .filter(|&&(_, probe)| match probe {
                    GoProbe::Gopanic => !b.panics_told_at_end,
                    GoProbe::Preprintpanics => b.panics_told_at_end,
                    _ => true,
                })
                .map(|&(name, probe)| {
                    let hit = b.points.iter().find(|&&(p, _, _, _)| p == probe);
                    let func = b.pclntab.as_ref().and_then(|t| t.find_by_name(name));
                    ProbePoint {
                        name: name.to_owned(),
                        address: func.map(|f| format!("{:#x}", f.entry)),
                        file_offset: hit.map(|&(_, _, off, _)| format!("{off:#x}")),
                        instruction: hit.map(|&(_, _, _, spot)| spot.instruction()),
                        found: hit.is_some(),
                    }
                })
                .collect();
            let table = b.pclntab.as_ref().map(|t| {
                let t = t.table();
                format!(
                    "{} ({} functions, inline trees {})",
                    match t.found() {
                        gosym::Found::Section => "section",
                        gosym::Found::Scan => "found by scan",
                    },
                    t.func_count(),
                    if t.has_inline_trees() {
                        "readable"
                    } else {
                        "not found"
                    }
                )
            });
            (
                "go",
                Some(b.version.clone()),
                b.module.clone(),
                Some(b.layout_source),
                table,
                probes,
            )
        }
        None => ("native", None, None, None, None, Vec::new()),
    };
    let report = Probes {
        schema: SCHEMA,
        kind: "probes",
        exe: &exe,
        runtime,
        runtime_version: version,
        module: main_module,
        debuginfo: module.debuginfo.as_str(),
        layout,
        gopclntab: table,
        runtime_layout: go.as_ref().and_then(|b| b.layout).map(|layout| {
            golang::layout_fields(&layout)
                .into_iter()
                .map(|(k, v)| {
                    let v = if v == tracer_common::GO_NO_FIELD {
                        serde_json::Value::Null
                    } else {
                        v.into()
                    };
                    (k.to_owned(), v)
                })
                .collect()
        }),
        recovery_site_offset: go.as_ref().and_then(|b| b.recovery_site),
        kernel_probes: crate::pipeline::process::PROBES.to_vec(),
        probes,
        process_probes: process_probes(&args.exe, &module),
    };
    let mut out = Output::new(common.format, common.output.as_deref()).map_err(Failure::Other)?;
    let text = match common.format {
        Format::Ndjson => serde_json::to_string(&report).map_err(|e| Failure::Other(e.into()))?,
        Format::Human => human_probes(&report),
    };
    out.line(&text).map_err(Failure::Other)?;
    Ok(0)
}

fn human_probes(r: &Probes<'_>) -> String {
    let mut s = format!(
        "{}: {}{}{}, debug info: {}",
        r.exe,
        r.runtime_version.as_deref().unwrap_or(r.runtime),
        r.module
            .as_deref()
            .map(|m| format!(" (module {m})"))
            .unwrap_or_default(),
        r.layout
            .map(|l| format!(", runtime layout: {l}"))
            .unwrap_or_default(),
        r.debuginfo,
    );
    if let Some(t) = &r.gopclntab {
        s.push_str(&format!(", .gopclntab: {t}"));
    }
    for k in &r.kernel_probes {
        s.push_str(&format!("\n  {k}"));
    }
    for p in &r.probes {
        s.push_str(&format!(
            "\n  uprobe/{:<24} {}",
            p.name,
            match (&p.address, &p.file_offset) {
                (Some(a), Some(o)) =>
                    format!("at {a} (file offset {o}, {})", p.instruction.unwrap_or("?")),
                (Some(a), None) => format!("at {a}: no probe spot found"),
                _ => "missing (not in this binary)".to_owned(),
            }
        ));
    }
    for p in &r.process_probes {
        s.push_str(&format!("\n  {:<31} in {} (per process)", p.name, p.file));
    }
    s
}
