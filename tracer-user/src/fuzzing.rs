//! The fuzz targets' entry points, one per parser of outside data: each
//! takes arbitrary bytes and must return without panicking, whatever they
//! are. `fuzz/fuzz_targets/*.rs` (cargo fuzz) call them; `cargo test`
//! replays the inputs kept in `fuzz/regressions/` (those that once made a
//! target fail) through them.

use std::{io::Write as _, path::PathBuf, sync::Arc};

use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};

use crate::{
    symbolize::{PcKind, elf::ElfModule},
    unwind::{Regs, StackCopy},
};

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// The targets, by the names `cargo fuzz run` and `fuzz/regressions/` use.
pub const TARGETS: [(&str, Target); 7] = [
    ("elf", elf),
    ("gopclntab", gopclntab),
    ("unwind", unwind),
    ("records", records),
    ("maps", maps),
    ("config", config),
    ("report", report),
];

/// Addresses worth asking a binary about: its symbols, sections and
/// segments (where parsers find structure), at most `max`.
fn interesting_addresses(data: &[u8], max: usize) -> Vec<u64> {
    let Ok(obj) = object::File::parse(data) else {
        return Vec::new();
    };
    let mut out: Vec<u64> = obj.symbols().map(|s| s.address()).take(max).collect();
    out.extend(obj.sections().map(|s| s.address()).take(max));
    out.extend(obj.segments().map(|s| s.address()).take(max));
    out.sort_unstable();
    out.dedup();
    out.truncate(max);
    out
}

/// The input written where `ElfModule::open` can map it (a file per
/// process and thread: libFuzzer may run workers in one directory).
struct TempBinary(PathBuf);

impl TempBinary {
    fn new(data: &[u8]) -> Option<Self> {
        let path = std::env::temp_dir().join(format!(
            "crashtrace-fuzz-{}-{:?}.bin",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut f = std::fs::File::create(&path).ok()?;
        f.write_all(data).ok()?;
        Some(Self(path))
    }
}

impl Drop for TempBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An ELF file: segments, symbol tables, DWARF (lines, inlined frames,
/// gdb's statement rows, call sites for tail calls), .gopclntab when there
/// is no DWARF, CFI, Go build info, runtime layout and type names.
pub fn elf(data: &[u8]) {
    let Some(file) = TempBinary::new(data) else {
        return;
    };
    let addrs = interesting_addresses(data, 64);
    if let Ok(module) = ElfModule::open(&file.0, "fuzz") {
        for (i, &a) in addrs.iter().enumerate() {
            let kind = [PcKind::Exact, PcKind::ReturnAddress, PcKind::TailCall][i % 3];
            let _ = module.lookup(a, kind);
            let _ = module.lookup(a.wrapping_add(1), PcKind::ReturnAddress);
            let _ = module.read_vaddr(a, 16);
            let _ = module.file_offset_to_vaddr(a);
            if let Some(&next) = addrs.get(i + 1) {
                let _ = module.tail_calls_between(next, a);
            }
        }
        let _ = module.function_offset(|n| n == "main");
        let _ = module.code_mapping(0x5555_5555_4000, 0x5555_5555_9000);
        let _ = module.code_mapping(u64::MAX - 4096, u64::MAX);
        let _ = module.cfi();
    }
    if let Ok(Some(go)) = crate::golang::GoBinary::inspect(&file.0) {
        let _ = go.layout_notice();
        for &a in &addrs {
            let _ = go.type_name(a);
            let _ = go.type_kind(a);
            let _ = go.frame_pointer_set(a, a.wrapping_add(8));
            let _ = go.returns_from_morestack(a);
        }
    }
}

/// Go's function table, found in whatever the bytes are (an ELF file, or
/// a bare table found by its magic), and every query the tracer makes.
pub fn gopclntab(data: &[u8]) {
    let Ok(table) = gosym::Table::parse(data.to_vec()) else {
        return;
    };
    let _ = table.format();
    let _ = table.types_base();
    let _ = table.has_inline_trees();
    let _ = table.wrapper_func_id();
    for f in table.functions().take(256) {
        let _ = table.find_by_name(&f.name);
        for pc in [f.entry, f.entry.wrapping_add(1), f.end.wrapping_sub(1)] {
            let _ = table.find(pc);
            let _ = table.locations(pc);
        }
    }
    let _ = table.locations(0);
    let _ = table.locations(u64::MAX);
}

/// A stack snapshot unwound with an ELF file's CFI: the first 4 bytes
/// give the ELF's length, then the ELF, then registers and stack bytes
/// (what a BPF record would carry).
pub fn unwind(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (elf_bytes, snapshot) = rest.split_at(len);
    let Some(file) = TempBinary::new(elf_bytes) else {
        return;
    };
    let Ok(module) = ElfModule::open(&file.0, "fuzz") else {
        return;
    };
    let module = Arc::new(module);
    let word = |i: usize| {
        snapshot
            .get(i * 8..i * 8 + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let regs = Regs {
        rip: word(0),
        rsp: word(1),
        rbp: word(2),
        rbx: word(3),
        r12_15: [word(4), word(5), word(6), word(7)],
    };
    let stack = StackCopy {
        sp: regs.rsp,
        hole: (word(8) % 64) as usize,
        data: snapshot.get(72..).unwrap_or_default(),
    };
    // The snapshot's pc, and every function start: rows of many FDEs.
    let mut starts = interesting_addresses(elf_bytes, 32);
    starts.insert(0, regs.rip);
    for rip in starts {
        let _ = crate::unwind::walk(
            |pc| Some((Arc::clone(&module), pc)),
            Regs { rip, ..regs },
            &stack,
            64,
        );
    }
}

/// A ring-buffer record as the BPF side writes it.
pub fn records(data: &[u8]) {
    if let Ok(record) = crate::probes::records::decode(data) {
        let _ = crate::probes::records::comm(record.header());
        if let crate::probes::records::KernelRecord::Stack(snap) = &record {
            let copy = StackCopy {
                sp: snap.sp,
                hole: snap.hole,
                data: &snap.data,
            };
            for i in 0..8u64 {
                let _ = copy.read(snap.sp.wrapping_add(i * 8));
            }
        }
    }
}

/// /proc/PID/maps text, and cgroup paths (container ids are read from
/// them).
pub fn maps(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for e in crate::maps::parse(&text) {
        let _ = e.executable();
        let _ = e.is_file();
        let _ = e.file_path();
    }
    for line in text.lines() {
        let _ = crate::record::container_id(line);
    }
}

/// The daemon's TOML config, parsed and checked as `daemon --config` and
/// SIGHUP do.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = toml::from_str::<crate::daemon::Config>(&text) {
        let _ = c.check();
    }
}

/// NDJSON lines as `crashtrace report` renders them.
pub fn report(data: &[u8]) {
    for line in String::from_utf8_lossy(data).lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && let Ok(record) = crate::record::Record::from_value(v)
        {
            let _ = crate::output::render_human(&mut Vec::new(), &record);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every input in `fuzz/regressions/TARGET/` (inputs that once made a
    /// target panic, and seeds) still passes through its target.
    #[test]
    fn fuzz_regressions_replay() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
        let mut replayed = 0;
        for (name, target) in super::TARGETS {
            let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
                continue;
            };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).unwrap();
                eprintln!("{name}: {}", entry.path().display());
                target(&data);
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no regression inputs under {}", dir.display());
    }
}
