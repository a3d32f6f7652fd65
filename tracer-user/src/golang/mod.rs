//! What crashtrace needs to know about a Go binary: its build info (Go
//! version, module), where the runtime's crash entry points are (and the
//! cheap spot inside each to probe), the runtime's struct layout (from DWARF,
//! else a table keyed by Go version), and its type names (for panic values).

mod layouts;
pub mod pclntab;
pub mod value;

use std::{fs::File, path::Path};

use anyhow::{Context as _, Result, bail};
use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};
use tracer_common::{GO_NO_FIELD, GoConfig, GoProbe};

/// Runtime functions probed, by the probe they carry. None of them runs on a
/// healthy program's path (`runtime.gorecover`, called by every recover()
/// including those that find nothing, is deliberately absent).
pub const PROBE_POINTS: &[(&str, GoProbe)] = &[
    ("runtime.gopanic", GoProbe::Gopanic),
    ("runtime.throw", GoProbe::Throw),
    ("runtime.fatal", GoProbe::Fatal),
    ("runtime.recovery", GoProbe::Recovery),
    ("runtime.printpanics", GoProbe::Printpanics),
    ("runtime.sigpanic", GoProbe::Sigpanic),
    ("runtime.Goexit", GoProbe::Goexit),
    // Go 1.19–1.21 only (Go 1.22 rewrote panics; later versions have no
    // such function): runs each open-coded deferred call of a panic, never
    // on a healthy path.
    ("runtime.deferCallSave", GoProbe::DeferCall),
    // Prints a goroutine's `goroutine N [status]:` line. On a healthy path
    // only in runtime.Stack / debug.Stack, where the BPF side returns at
    // once: it records only while the process is dying.
    ("runtime.goroutineheader", GoProbe::GoroutineHeader),
    // Go 1.22+: called by gopanic once no deferred call is left, only for
    // a panic that will kill the process. Where the runtime's layout lets
    // panics be told when they end (`GoConfig::panics_told_at_their_end`),
    // it replaces the probe on runtime.gopanic: a recovered panic then
    // costs one hit (runtime.recovery), not two.
    ("runtime.preprintpanics", GoProbe::Preprintpanics),
];

/// Functions of the Go runtime itself, which the runtime's own traceback
/// prints as `panic` or hides behind the user frame that called them.
pub fn is_runtime_function(name: &str) -> bool {
    name.starts_with("runtime.") || name.starts_with("internal/runtime/") || name == "panic"
}

pub struct GoBinary {
    /// "go1.24.11"
    pub version: String,
    /// Main module path ("example.com/app"), if recorded.
    pub module: Option<String>,
    /// None: no DWARF and a Go version the table does not know (Go probes
    /// cannot be attached; the binary is still symbolized).
    pub layout: Option<GoConfig>,
    /// Where the layout came from: "dwarf" or "version table".
    pub layout_source: &'static str,
    /// The version table's layout for this version, if it has one.
    pub table_layout: Option<GoConfig>,
    /// (probe, function name, file offset of the instruction to probe,
    /// which instruction that is)
    pub points: Vec<(GoProbe, &'static str, u64, ProbeSpot)>,
    /// Go 1.22+ with the layout for it: panics are told when they end
    /// (`runtime.preprintpanics` probed, not `runtime.gopanic`).
    pub panics_told_at_end: bool,
    /// Go 1.22+: where a recovered panic's site is above `g.sched.bp` at
    /// runtime.recovery ([`GoBinary::recovery_site_offset`]).
    pub recovery_site: Option<u32>,
    /// Go's function table, for the runtime's frame elision rules.
    pub pclntab: Option<pclntab::Pclntab>,
    /// ELF address of `runtime.types` (base of type-name offsets).
    types_base: Option<u64>,
    /// The runtime's `waitReasonStrings` (what a waiting goroutine's header
    /// says: "chan receive", "select" …), read from the binary: the list
    /// changes with every Go version. Read at the first goroutine dump
    /// (without symbols it is searched for: not while probes wait).
    wait_reasons: std::sync::OnceLock<Vec<String>>,
    /// (address, size) of its symbol.
    wait_reasons_at: Option<(u64, u64)>,
    map: memmap2::Mmap,
    segments: Vec<(u64, u64, u64)>, // (vaddr, file offset, file size)
}

/// Where [`GoBinary::inspect_with`] takes the runtime's layout from first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LayoutFirst {
    /// The binary's DWARF (the truth), the version table without it.
    Dwarf,
    /// The version table when it has the binary's version (no DWARF to
    /// decompress: probes are placed within milliseconds of an exec;
    /// [`GoBinary::dwarf_layout`] checks it afterwards), else DWARF.
    Table,
}

impl GoBinary {
    /// `Ok(None)` for a binary that is not Go. The layout from DWARF.
    pub fn inspect(path: &Path) -> Result<Option<Self>> {
        Self::inspect_with(path, LayoutFirst::Dwarf)
    }

    /// The runtime layout the version table has for the Go binary at
    /// `path`, from its build info alone (tens of µs: no symbols, no
    /// function table): enough to read at its exit a panic the process
    /// dies of before the rest of the binary is read and its probes are
    /// placed. `Ok(None)`: not Go, or a version the table lacks.
    pub fn table_layout(path: &Path) -> Result<Option<GoConfig>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: read-only mapping; see symbolize::elf.
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        let obj = object::File::parse(&*map).context("not an ELF file")?;
        Ok(build_info(&obj)?.and_then(|(version, _)| layout_for_version(&version)))
    }

    pub fn inspect_with(path: &Path, first: LayoutFirst) -> Result<Option<Self>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: read-only mapping; see symbolize::elf.
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        let obj = object::File::parse(&*map).context("not an ELF file")?;
        let Some((version, module)) = build_info(&obj)? else {
            return Ok(None);
        };
        let table = layout_for_version(&version);
        let (layout, layout_source) = match (first, table) {
            (LayoutFirst::Table, Some(t)) => (Some(t), "version table"),
            _ => match layout_from_dwarf(&obj) {
                Ok(Some(l)) => (Some(l), "dwarf"),
                _ if table.is_some() => (table, "version table"),
                _ => (None, "unknown"),
            },
        };
        let segments = obj
            .segments()
            .map(|s| (s.address(), s.file_range().0, s.file_range().1))
            .collect::<Vec<_>>();
        let mut points = Vec::new();
        let mut types_base = None;
        let mut wait_reasons_at = None;
        for sym in obj.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name == "runtime.types" {
                types_base = Some(sym.address());
            }
            if name == "runtime.waitReasonStrings" {
                wait_reasons_at = Some((sym.address(), sym.size()));
            }
            if let Some((_, probe)) = PROBE_POINTS.iter().find(|(n, _)| *n == name)
                && let Some(off) = vaddr_to_offset(&segments, sym.address())
                && let Some((at, spot)) = probe_spot(&map, off)
            {
                let static_name = PROBE_POINTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(n, _)| *n);
                points.push((*probe, static_name.unwrap_or("?"), at, spot));
            }
        }
        drop(obj);
        let pclntab = pclntab::Pclntab::open(path).ok();
        // Stripped (`-s -w`): entry points and the type base from Go's own
        // table and the moduledata that points at it.
        if let Some(t) = &pclntab {
            types_base = types_base.or(t.table().types_base());
            for &(name, probe) in PROBE_POINTS {
                if points.iter().any(|&(p, _, _, _)| p == probe) {
                    continue;
                }
                if let Some(f) = t.find_by_name(name)
                    && let Some(off) = vaddr_to_offset(&segments, f.entry)
                    && let Some((at, spot)) = probe_spot(&map, off)
                {
                    points.push((probe, name, at, spot));
                }
            }
        }
        // One of gopanic (a panic told at its start) and preprintpanics (a
        // panic told at its end, from the `_panic` chain), never both.
        let at_end = layout.is_some_and(|l| l.panics_told_at_their_end())
            && points.iter().any(|&(p, ..)| p == GoProbe::Preprintpanics);
        points.retain(|&(p, ..)| match p {
            GoProbe::Gopanic => !at_end,
            GoProbe::Preprintpanics => at_end,
            _ => true,
        });
        let binary = Self {
            pclntab,
            version,
            module,
            layout,
            layout_source,
            table_layout: table,
            points,
            panics_told_at_end: at_end,
            recovery_site: None,
            types_base,
            wait_reasons: std::sync::OnceLock::new(),
            wait_reasons_at,
            map,
            segments,
        };
        let mut binary = binary;
        if at_end {
            binary.recovery_site = binary.recovery_site_offset();
        }
        binary.release_pages();
        Ok(Some(binary))
    }

    /// Gives back the pages of the file read to inspect it (symbol names,
    /// the table's names, DWARF for the layout): the binary is kept for
    /// the life of its processes, and each of its two mappings would hold
    /// them (~1.2 MB a binary in the daemon, measured on 10 Go programs).
    /// What a lookup reads again faults back in from the page cache.
    pub fn release_pages(&self) {
        crate::symbolize::elf::release_pages(&self.map);
        if let Some(t) = &self.pclntab {
            crate::symbolize::elf::release_pages(t.table().data());
        }
    }

    /// What the runtime's goroutine header says for `status` (with the
    /// `_Gscan` bit) and `wait_reason`, as `goroutineheader` prints it:
    /// "chan receive", "running", "select (no cases)"…
    pub fn goroutine_status(&self, status: u32, wait_reason: u32) -> String {
        const G_SCAN: u32 = 0x1000;
        const G_WAITING: u32 = 4;
        const G_LEAKED: u32 = 10;
        // gStatusStrings: the same indices in every supported version
        // (Go 1.26 added "leaked" and "waiting for cgo callback").
        const STATUS: [&str; 12] = [
            "idle",
            "runnable",
            "running",
            "syscall",
            "waiting",
            "???",
            "dead",
            "???",
            "copystack",
            "preempted",
            "leaked",
            "waiting for cgo callback",
        ];
        let plain = status & !G_SCAN;
        let mut text = STATUS
            .get(plain as usize)
            .copied()
            .unwrap_or("???")
            .to_owned();
        if (plain == G_WAITING || plain == G_LEAKED)
            && wait_reason != 0
            && let Some(reason) = self
                .wait_reasons
                .get_or_init(|| {
                    wait_reason_strings(&self.map, &self.segments, self.wait_reasons_at)
                })
                .get(wait_reason as usize)
        {
            text.clone_from(reason);
        }
        if plain == G_LEAKED {
            text.push_str(" (leaked)");
        }
        if status & G_SCAN != 0 {
            text.push_str(" (scan)");
        }
        text
    }

    /// The runtime layout the binary's own DWARF gives (None without
    /// DWARF): the check of a layout taken from the version table.
    pub fn dwarf_layout(&self) -> Option<GoConfig> {
        let obj = object::File::parse(&*self.map).ok()?;
        let layout = layout_from_dwarf(&obj).ok().flatten();
        self.release_pages();
        layout
    }

    /// Whether the function starting at ELF address `entry` has set up its
    /// frame pointer by the time it executes
    /// `pc`. Go leaves it out of small leaf functions, which then do not
    /// appear on the frame-pointer chain.
    pub fn frame_pointer_set(&self, entry: u64, pc: u64) -> bool {
        let Some(len) = pc.checked_sub(entry).and_then(|l| usize::try_from(l).ok()) else {
            return false;
        };
        // `push rbp; mov rbp, rsp` (Go 1.21+) or `lea rbp, [rsp+disp]`
        // (Go 1.17–1.20, after `sub rsp, N; mov [rsp+N-8], rbp`).
        self.bytes_at(entry, len.min(64)).is_some_and(|code| {
            code.windows(4).any(|w| {
                w == [0x55, 0x48, 0x89, 0xe5]
                    || (w[..2] == [0x48, 0x8d]
                        && matches!(w[2], 0x2c | 0x6c | 0xac)
                        && w[3] == 0x24)
            })
        })
    }

    /// Whether the instruction before `ret` (an ELF address) is a call of
    /// runtime.morestack*: the goroutine stopped in a function's prologue,
    /// before its frame exists, so its caller's return address is at sp.
    pub fn returns_from_morestack(&self, ret: u64) -> bool {
        let Some(call) = ret.checked_sub(5).and_then(|at| self.bytes_at(at, 5)) else {
            return false;
        };
        if call[0] != 0xe8 {
            return false;
        }
        let rel = i32::from_le_bytes([call[1], call[2], call[3], call[4]]);
        let target = ret.wrapping_add_signed(i64::from(rel));
        self.pclntab
            .as_ref()
            .and_then(|t| t.find(target))
            .is_some_and(|f| f.name.starts_with("runtime.morestack"))
    }

    /// Whether ELF address `pc` is the first instruction of a function.
    pub fn is_function_entry(&self, pc: u64) -> bool {
        self.pclntab
            .as_ref()
            .and_then(|t| t.find(pc))
            .is_some_and(|f| f.entry == pc)
    }

    /// One line for `-v`: where the runtime layout came from, and whether
    /// the version table agrees with DWARF (it must, for binaries without).
    pub fn layout_notice(&self) -> String {
        let minor = self
            .version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        match (self.layout_source, self.table_layout) {
            ("dwarf", Some(t)) if Some(t) == self.layout => {
                format!(
                    "{}: runtime layout from DWARF matches the {minor} table",
                    self.version
                )
            }
            ("dwarf", Some(t)) => format!(
                "{}: runtime layout from DWARF {:?} differs from the {minor} table {:?}",
                self.version,
                self.layout.unwrap_or_default(),
                t
            ),
            ("dwarf", None) => format!(
                "{}: runtime layout from DWARF (no table entry)",
                self.version
            ),
            _ => format!(
                "{}: runtime layout from the {minor} table (no DWARF)",
                self.version
            ),
        }
    }

    /// Go 1.22+: how far above `g.sched.bp` at `runtime.recovery` the
    /// recovered panic's site is (gopanic's return address). recovery runs
    /// through `mcall` from `_panic.nextDefer`, which saves nextDefer's
    /// frame pointer: nextDefer's return address into gopanic is 8 above
    /// it, gopanic's stack pointer at that call 16 above, and gopanic's
    /// own return address its frame size (pcsp at that call) further up.
    /// One read at runtime instead of two down the frame-pointer chain.
    pub fn recovery_site_offset(&self) -> Option<u32> {
        let t = self.pclntab.as_ref()?;
        let gopanic = t.find_by_name("runtime.gopanic")?;
        let next_defer = t.find_by_name("runtime.(*_panic).nextDefer")?;
        let len = usize::try_from(gopanic.end.checked_sub(gopanic.entry)?).ok()?;
        let code = self.bytes_at(gopanic.entry, len)?;
        let ret = (0..len.saturating_sub(4)).find_map(|i| {
            if code[i] != 0xE8 {
                return None;
            }
            let rel = i32::from_le_bytes(code.get(i + 1..i + 5)?.try_into().ok()?);
            let ret = gopanic.entry + i as u64 + 5;
            (ret.checked_add_signed(i64::from(rel))? == next_defer.entry).then_some(ret)
        })?;
        let frame = t.table().sp_delta(&gopanic, ret)?;
        u32::try_from(frame)
            .ok()?
            .checked_add(16)
            .filter(|&off| off <= tracer_common::GO_COOKIE_SITE_MASK)
    }

    /// The deferred function of a `defer` statement kept in a `_defer`
    /// record, from `retpc` (ELF address): the return address of its
    /// `runtime.deferproc`/`deferprocStack` call, which Go 1.22+ keeps in
    /// `_panic.retpc` when it runs that deferred call (the record itself is
    /// freed, its `fn` cleared, by the time the panic is recovered). The
    /// compiler loads the closure just before that call: the nearest
    /// rip-relative `lea` before `retpc` whose target is the entry of a
    /// closure of the deferring function (`F.func1`, `F.deferwrap1`) or a
    /// static funcval (a top-level function deferred without arguments)
    /// whose first word is a function's entry. None when neither is found
    /// (a function value from a variable).
    pub fn deferred_function_at(&self, retpc: u64) -> Option<u64> {
        const SCAN: u64 = 256;
        let table = self.pclntab.as_ref()?;
        let caller = table.find(retpc.checked_sub(1)?)?;
        let start = retpc.saturating_sub(SCAN).max(caller.entry);
        let len = usize::try_from(retpc.checked_sub(start)?).ok()?;
        let code = self.bytes_at(start, len)?;
        let closure_prefix = format!("{}.", caller.name);
        find_lea_targets(code, start).find_map(|target| {
            if let Some(f) = table.find(target)
                && f.entry == target
            {
                return f.name.starts_with(&closure_prefix).then_some(target);
            }
            let word = self.bytes_at(target, 8)?;
            let code_ptr = u64::from_le_bytes(word.try_into().ok()?);
            table
                .find(code_ptr)
                .is_some_and(|f| f.entry == code_ptr)
                .then_some(code_ptr)
        })
    }

    fn bytes_at(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let off = vaddr_to_offset(&self.segments, vaddr)? as usize;
        self.map.get(off..off.checked_add(len)?)
    }

    /// The name of the type whose descriptor (`internal/abi.Type`) is at
    /// ELF address `type_vaddr`, as the runtime prints it ("*errors.errorString").
    pub fn type_name(&self, type_vaddr: u64) -> Option<String> {
        let t = self.bytes_at(type_vaddr, 48)?;
        let tflag = t[20];
        let name_off = i32::from_le_bytes(t[40..44].try_into().ok()?);
        let base = self.types_base?;
        let name_addr = base.checked_add_signed(i64::from(name_off))?;
        let head = self.bytes_at(name_addr, 12)?;
        // A name: one flag byte, a uvarint length, the bytes.
        let (len, used) = uvarint(&head[1..])?;
        let bytes = self.bytes_at(name_addr + 1 + used as u64, usize::try_from(len).ok()?)?;
        let name = String::from_utf8_lossy(bytes);
        const TFLAG_EXTRA_STAR: u8 = 2;
        Some(if tflag & TFLAG_EXTRA_STAR != 0 {
            name.strip_prefix('*').unwrap_or(&name).to_owned()
        } else {
            name.into_owned()
        })
    }

    /// `Kind_ & 0x1f` of the type at `type_vaddr`.
    pub fn type_kind(&self, type_vaddr: u64) -> Option<u8> {
        self.bytes_at(type_vaddr, 24).map(|t| t[23] & 0x1f)
    }
}

/// The runtime's `waitReasonStrings` array of Go strings ({ptr, len}
/// each): at its symbol, or, in a binary without symbols, found by its
/// second entry, "GC assist marking" in every supported version, right
/// after the empty first one. Empty when neither is found (PIE binaries,
/// whose data holds relocations, not addresses): headers then say
/// "waiting".
fn wait_reason_strings(
    map: &[u8],
    segments: &[(u64, u64, u64)],
    at: Option<(u64, u64)>,
) -> Vec<String> {
    const SECOND: &[u8] = b"GC assist marking";
    const MAX: usize = 128;
    let bytes_at = |vaddr: u64, len: u64| -> Option<&[u8]> {
        let off = usize::try_from(vaddr_to_offset(segments, vaddr)?).ok()?;
        map.get(off..off.checked_add(usize::try_from(len).ok()?)?)
    };
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let start = at.map(|(a, size)| (a, usize::try_from(size / 16).unwrap_or(0).min(MAX)));
    let start = start.or_else(|| {
        // The string's address, then a {ptr, 17} entry pointing at it.
        let text_at = map.windows(SECOND.len()).position(|w| w == SECOND)?;
        let text_vaddr = segments.iter().find_map(|(va, off, size)| {
            let rel = u64::try_from(text_at).ok()?.checked_sub(*off)?;
            (rel < *size).then_some(va + rel)
        })?;
        let mut entry = [0u8; 16];
        entry[..8].copy_from_slice(&text_vaddr.to_le_bytes());
        entry[8..].copy_from_slice(&(SECOND.len() as u64).to_le_bytes());
        // Go's data is 8-byte aligned in the file as in memory.
        let hit = (0..map.len() / 8).find(|i| map.get(i * 8..i * 8 + 16) == Some(&entry[..]))?;
        let first = (hit * 8).checked_sub(16)?;
        if map.get(first..first + 16)? != [0u8; 16] {
            return None;
        }
        let vaddr = segments.iter().find_map(|(va, off, size)| {
            let rel = u64::try_from(first).ok()?.checked_sub(*off)?;
            (rel < *size).then_some(va + rel)
        })?;
        Some((vaddr, MAX))
    });
    let Some((vaddr, count)) = start else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..count as u64 {
        let Some(entry) = bytes_at(vaddr + 16 * i, 16) else {
            break;
        };
        let (ptr, len) = (word(&entry[..8]), word(&entry[8..]));
        if i == 0 {
            if ptr != 0 || len != 0 {
                return Vec::new();
            }
            out.push(String::new());
            continue;
        }
        // Past the array's end (found without its symbol): not a string.
        let Some(text) = (len > 0 && len < 80).then(|| bytes_at(ptr, len)).flatten() else {
            break;
        };
        if !text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            break;
        }
        out.push(String::from_utf8_lossy(text).into_owned());
    }
    out
}

fn vaddr_to_offset(segments: &[(u64, u64, u64)], vaddr: u64) -> Option<u64> {
    segments.iter().find_map(|(va, off, size)| {
        let rel = vaddr.checked_sub(*va)?;
        (rel < *size).then(|| off.checked_add(rel)).flatten()
    })
}

/// Which instruction of a runtime function carries its probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeSpot {
    /// Go 1.21+'s `push rbp` after the stack check (emulated by the kernel).
    PushRbp,
    /// Go 1.17–1.20's stack check `jbe` to the morestack block, right
    /// before `sub rsp` (a conditional jump, emulated by the kernel; the
    /// BPF side skips the hit that goes to morestack, which re-enters the
    /// function: see `GO_PROBE_AT_STACK_CHECK`).
    StackCheckJump,
    /// Go 1.17–1.20's `sub rsp, N` of a function without a stack check
    /// (nosplit: runtime.throw, runtime.fatal), single-stepped by the
    /// kernel (dearer, and only on the way to a fatal error).
    SubRsp,
}

impl ProbeSpot {
    /// The instruction, as `crashtrace probes` names it.
    pub fn instruction(self) -> &'static str {
        match self {
            Self::PushRbp => "push rbp",
            Self::StackCheckJump => "stack check jbe",
            Self::SubRsp => "sub rsp",
        }
    }
}

/// Where to probe the function at file offset `func_offset`: see
/// [`ProbeSpot`]. All three run once per call, with the registers
/// (arguments, R14 = g) and rsp (the return address at [rsp]) as at entry.
fn probe_spot(map: &[u8], func_offset: u64) -> Option<(u64, ProbeSpot)> {
    let at = after_stack_check(map, func_offset)?;
    if map.get(usize::try_from(at).ok()?) == Some(&0x55) {
        return Some((at, ProbeSpot::PushRbp));
    }
    let before = |n: u64| {
        let from = usize::try_from(at.checked_sub(n)?).ok()?;
        map.get(from..usize::try_from(at).ok()?)
    };
    // jbe rel32 / jbe rel8, ending right where the frame setup starts.
    let jump = match (before(6), before(2)) {
        (Some([0x0f, 0x86, a, b, c, d]), _) if at - 6 >= func_offset => {
            Some((at - 6, i64::from(i32::from_le_bytes([*a, *b, *c, *d]))))
        }
        (_, Some([0x76, r])) if at - 2 >= func_offset => Some((at - 2, i64::from(*r as i8))),
        _ => None,
    };
    match jump {
        Some((jbe, rel))
            if at
                .checked_add_signed(rel)
                .is_some_and(|target| reenters(map, target, func_offset)) =>
        {
            Some((jbe, ProbeSpot::StackCheckJump))
        }
        _ => Some((at, ProbeSpot::SubRsp)),
    }
}

/// Whether the code at file offset `block` is a stack check's morestack
/// block: within its first bytes, a `jmp` back to the function's entry
/// (`call runtime.morestack_noctxt; jmp entry`, arguments spilled around).
fn reenters(map: &[u8], block: u64, entry: u64) -> bool {
    const WINDOW: u64 = 64;
    (0..WINDOW).any(|i| {
        let at = block + i;
        let Some(code) = usize::try_from(at)
            .ok()
            .and_then(|a| map.get(a..a.checked_add(5)?))
        else {
            return false;
        };
        match code {
            [0xe9, a, b, c, d] => {
                (at + 5).checked_add_signed(i64::from(i32::from_le_bytes([*a, *b, *c, *d])))
                    == Some(entry)
            }
            [0xeb, r, ..] => (at + 2).checked_add_signed(i64::from(*r as i8)) == Some(entry),
            _ => false,
        }
    })
}

/// Where a function sets up its frame, right after Go's stack-bound check,
/// within the first bytes of the function: Go 1.21+ `push rbp; mov rbp,
/// rsp` (the kernel emulates `push rbp`: cheap), Go 1.17–1.20 `sub rsp, N;
/// mov [rsp+N-8], rbp` (the `sub` is single-stepped out of line: dearer,
/// still only on crash paths). Either way a call that first grows its stack
/// through morestack passes it once, and registers (arguments, R14 = g)
/// and rsp (the return address at [rsp]) are still as at entry.
fn after_stack_check(map: &[u8], func_offset: u64) -> Option<u64> {
    const WINDOW: usize = 40;
    let start = usize::try_from(func_offset).ok()?;
    let code = map.get(start..start.checked_add(WINDOW)?)?;
    (0..code.len())
        .find(|&i| {
            code[i..].starts_with(&[0x55, 0x48, 0x89, 0xe5])
                || sub_rsp_saving_rbp(&code[i..]).is_some()
        })
        .map(|i| func_offset + i as u64)
}

/// Go 1.17–1.20's frame setup at the start of `code`: `sub rsp, N` then
/// `mov [rsp+N-8], rbp` (then `lea rbp, [rsp+N-8]`). Returns N.
fn sub_rsp_saving_rbp(code: &[u8]) -> Option<u32> {
    let (frame, rest) = match code {
        // sub rsp, imm8 / imm32
        [0x48, 0x83, 0xec, n, rest @ ..] => (u32::from(*n), rest),
        [0x48, 0x81, 0xec, a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]), rest),
        _ => return None,
    };
    // mov [rsp], rbp / [rsp+disp8] / [rsp+disp32]
    let saved_at = match rest {
        [0x48, 0x89, 0x2c, 0x24, ..] => 0,
        [0x48, 0x89, 0x6c, 0x24, d, ..] => u32::from(*d),
        [0x48, 0x89, 0xac, 0x24, a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => return None,
    };
    (frame >= 8 && saved_at == frame - 8).then_some(frame)
}

fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Go version and main module from `.go.buildinfo` (Go 1.18+ layout, where
/// both strings are stored inline after the 32-byte header). `-s -w` keeps
/// section headers; a binary stripped of them too has the blob found as Go's
/// own debug/buildinfo finds it: in the first 64 KiB of the first writable,
/// non-executable PT_LOAD segment, at a 16-byte boundary.
pub fn build_info(obj: &object::File<'_>) -> Result<Option<(String, Option<String>)>> {
    let data = match obj.section_by_name(".go.buildinfo") {
        Some(section) => section.data().context("reading .go.buildinfo")?,
        None => match buildinfo_in_data_segment(obj) {
            Some(data) => data,
            None => return Ok(None),
        },
    };
    const MAGIC: &[u8] = BUILDINFO_MAGIC;
    if data.len() < 32 || !data.starts_with(MAGIC) {
        bail!(".go.buildinfo without its magic");
    }
    let flags = data[15];
    if flags & 2 == 0 {
        bail!("Go build info from before Go 1.18 is not supported");
    }
    let rest = &data[32..];
    let (vlen, used) = uvarint(rest).context("truncated build info")?;
    let vlen = usize::try_from(vlen)?;
    let version = rest
        .get(used..used + vlen)
        .context("truncated build info version")?;
    let version = String::from_utf8_lossy(version).into_owned();
    let rest = &rest[used + vlen..];
    let module = uvarint(rest).and_then(|(mlen, used)| {
        let info = rest.get(used..used + usize::try_from(mlen).ok()?)?;
        let info = String::from_utf8_lossy(info);
        let field = |key: &str| {
            info.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.split('\t').next().unwrap_or(v).to_owned())
            })
        };
        field("mod\t").or_else(|| field("path\t"))
    });
    Ok(Some((version, module)))
}

/// The build info blob of a binary without section headers (see
/// [`build_info`]); None for a binary without sections that is not Go.
fn buildinfo_in_data_segment<'a>(obj: &object::File<'a>) -> Option<&'a [u8]> {
    if obj.sections().next().is_some() {
        return None;
    }
    const PF_X: u32 = 1;
    const PF_W: u32 = 2;
    let segment = obj.segments().find(|s| {
        matches!(s.flags(), object::SegmentFlags::Elf { p_flags, .. } if p_flags.0 & (PF_X | PF_W) == PF_W)
    })?;
    let data = segment.data().ok()?;
    let data = &data[..data.len().min(64 * 1024)];
    let at = data
        .windows(BUILDINFO_MAGIC.len())
        .enumerate()
        .find(|&(i, w)| i % 16 == 0 && w == BUILDINFO_MAGIC)
        .map(|(i, _)| i)?;
    Some(&data[at..])
}

/// Member offsets of runtime.g and runtime.m from the binary's DWARF.
pub fn layout_from_dwarf(obj: &object::File<'_>) -> Result<Option<GoConfig>> {
    use addr2line::gimli;
    let endian = gimli::RunTimeEndian::Little;
    let sections = crate::symbolize::elf::dwarf_sections(obj)?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, endian));
    let mut g = std::collections::HashMap::new();
    let mut m = std::collections::HashMap::new();
    let mut panic = std::collections::HashMap::new();
    let mut defer = std::collections::HashMap::new();
    let mut gobuf = std::collections::HashMap::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut entries = unit.entries();
        // Depth-first walk: remember which struct we are inside.
        let mut current: Option<&str> = None;
        let mut struct_depth = 0isize;
        while let Some(entry) = entries.next_dfs()? {
            let depth = entry.depth();
            if current.is_some() && depth <= struct_depth {
                current = None;
            }
            let name = entry
                .attr_value(gimli::DW_AT_name)
                .and_then(|v| dwarf.attr_string(&unit, v).ok())
                .map(|s| s.to_string_lossy().into_owned());
            match entry.tag() {
                gimli::DW_TAG_structure_type => {
                    current = match name.as_deref() {
                        Some("runtime.g") => Some("g"),
                        Some("runtime.m") => Some("m"),
                        Some("runtime._panic") => Some("_panic"),
                        Some("runtime._defer") => Some("_defer"),
                        Some("runtime.gobuf") => Some("gobuf"),
                        _ => None,
                    };
                    struct_depth = depth;
                }
                gimli::DW_TAG_member if current.is_some() && depth == struct_depth + 1 => {
                    if let (Some(name), Some(gimli::AttributeValue::Udata(off))) =
                        (name, entry.attr_value(gimli::DW_AT_data_member_location))
                    {
                        let target = match current {
                            Some("g") => &mut g,
                            Some("m") => &mut m,
                            Some("_defer") => &mut defer,
                            Some("gobuf") => &mut gobuf,
                            _ => &mut panic,
                        };
                        target.insert(name, off as u32);
                    }
                }
                _ => {}
            }
        }
        if !g.is_empty()
            && !m.is_empty()
            && !panic.is_empty()
            && !defer.is_empty()
            && !gobuf.is_empty()
        {
            break;
        }
    }
    let get = |map: &std::collections::HashMap<String, u32>, k: &str| map.get(k).copied();
    let layout = (|| {
        Some(GoConfig {
            g_goid: get(&g, "goid")?,
            g_m: get(&g, "m")?,
            m_g0: get(&m, "g0")?,
            m_gsignal: get(&m, "gsignal")?,
            m_curg: get(&m, "curg")?,
            panic_arg: get(&panic, "arg")?,
            panic_recovered: get(&panic, "recovered")?,
            panic_repanicked: get(&panic, "repanicked").unwrap_or(GO_NO_FIELD),
            panic_goexit: get(&panic, "goexit")?,
            g_panic: get(&g, "_panic")?,
            panic_defer_bits: get(&panic, "deferBitsPtr").unwrap_or(GO_NO_FIELD),
            panic_slots: get(&panic, "slotsPtr").unwrap_or(GO_NO_FIELD),
            g_defer: get(&g, "_defer")?,
            defer_fn: get(&defer, "fn")?,
            defer_link: get(&defer, "link")?,
            defer_started: get(&defer, "started").unwrap_or(GO_NO_FIELD),
            g_sched: get(&g, "sched")?,
            gobuf_bp: get(&gobuf, "bp")?,
            g_sig: get(&g, "sig")?,
            g_sigcode0: get(&g, "sigcode0")?,
            g_atomicstatus: get(&g, "atomicstatus")?,
            g_waitreason: get(&g, "waitreason")?,
            g_waitsince: get(&g, "waitsince")?,
            g_gopc: get(&g, "gopc")?,
            g_startpc: get(&g, "startpc")?,
            g_parent_goid: get(&g, "parentGoid").unwrap_or(GO_NO_FIELD),
            g_lockedm: get(&g, "lockedm")?,
            panic_link: get(&panic, "link").unwrap_or(GO_NO_FIELD),
            panic_start_sp: get(&panic, "startSP").unwrap_or(GO_NO_FIELD),
            panic_sp: get(&panic, "sp").unwrap_or(GO_NO_FIELD),
            panic_retpc: get(&panic, "retpc").unwrap_or(GO_NO_FIELD),
        })
    })();
    Ok(layout)
}

/// The targets of the rip-relative `lea r64, [rip+disp32]` instructions
/// (`REX.W 8D /r`, mod 00 r/m 101) in `code` (at ELF address `start`),
/// nearest to its end first. Found by pattern, not decoded from an
/// instruction boundary: the caller checks each target (a function entry
/// or a funcval), which a stray match does not pass.
pub fn find_lea_targets(code: &[u8], start: u64) -> impl Iterator<Item = u64> + '_ {
    (0..code.len().saturating_sub(6))
        .rev()
        .filter_map(move |j| {
            let rex = code[j];
            let modrm = code[j + 2];
            if (rex & 0xFB) != 0x48 || code[j + 1] != 0x8D || (modrm & 0xC7) != 0x05 {
                return None;
            }
            let disp = i32::from_le_bytes(code.get(j + 3..j + 7)?.try_into().ok()?);
            let next = start.checked_add(j as u64 + 7)?;
            next.checked_add_signed(i64::from(disp))
        })
}

/// Every field of a runtime layout by name (for `crashtrace probes` and the
/// generator of the version table, `./xtask.sh go-layouts`).
pub fn layout_fields(c: &GoConfig) -> Vec<(&'static str, u32)> {
    vec![
        ("g_goid", c.g_goid),
        ("g_m", c.g_m),
        ("m_g0", c.m_g0),
        ("m_gsignal", c.m_gsignal),
        ("m_curg", c.m_curg),
        ("panic_arg", c.panic_arg),
        ("panic_recovered", c.panic_recovered),
        ("panic_repanicked", c.panic_repanicked),
        ("panic_goexit", c.panic_goexit),
        ("g_panic", c.g_panic),
        ("panic_defer_bits", c.panic_defer_bits),
        ("panic_slots", c.panic_slots),
        ("g_defer", c.g_defer),
        ("defer_fn", c.defer_fn),
        ("defer_link", c.defer_link),
        ("defer_started", c.defer_started),
        ("g_sched", c.g_sched),
        ("gobuf_bp", c.gobuf_bp),
        ("g_sig", c.g_sig),
        ("g_sigcode0", c.g_sigcode0),
        ("g_atomicstatus", c.g_atomicstatus),
        ("g_waitreason", c.g_waitreason),
        ("g_waitsince", c.g_waitsince),
        ("g_gopc", c.g_gopc),
        ("g_startpc", c.g_startpc),
        ("g_parent_goid", c.g_parent_goid),
        ("g_lockedm", c.g_lockedm),
        ("panic_link", c.panic_link),
        ("panic_start_sp", c.panic_start_sp),
        ("panic_sp", c.panic_sp),
        ("panic_retpc", c.panic_retpc),
    ]
}

/// The minor version of a Go version string: 19 for "go1.19.8".
pub fn go_minor(version: &str) -> Option<u32> {
    version
        .strip_prefix("go1.")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The runtime layout by Go version, for binaries without DWARF: the
/// generated table (`layouts.rs`, from each version's DWARF). Struct
/// layouts do not change within a minor version.
pub fn layout_for_version(version: &str) -> Option<GoConfig> {
    let minor = go_minor(version)?;
    layouts::LAYOUTS
        .iter()
        .find(|(m, _, _)| *m == minor)
        .map(|&(_, _, layout)| layout)
}

/// GOTRACEBACK's level as the Go runtime reads the variable at its start
/// (`setTraceback` in runtime1.go, the same from Go 1.19 to 1.27): 0
/// prints no stacks, 1 a goroutine's own frames, 2 and up the runtime's
/// frames and wrappers too.
pub fn traceback_level(value: &str) -> u32 {
    match value {
        "none" => 0,
        "single" | "" | "all" => 1,
        "system" | "crash" => 2,
        n => n
            .parse::<i64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn rip_relative_leas_are_found_nearest_first() {
        // lea rdx, [rip+0x10]; nop; lea r9, [rip-0x10]; call rel32
        let code = [
            0x48, 0x8d, 0x15, 0x10, 0x00, 0x00, 0x00, 0x90, 0x4c, 0x8d, 0x0d, 0xf0, 0xff, 0xff,
            0xff, 0xe8, 0x00, 0x00, 0x00, 0x00,
        ];
        let found: Vec<u64> = find_lea_targets(&code, 0x1000).collect();
        assert_eq!(found, vec![0x1000 + 15 - 0x10, 0x1000 + 7 + 0x10]);
        // lea rax, [rsp+8] (a stack address, SIB) is no rip-relative lea.
        assert_eq!(
            find_lea_targets(&[0x48, 0x8d, 0x44, 0x24, 0x08, 0x90, 0x90], 0).count(),
            0
        );
    }

    use super::*;

    #[test]
    fn gotraceback_levels_are_read_as_the_runtime_reads_them() {
        for (value, level) in [
            ("", 1),
            ("none", 0),
            ("single", 1),
            ("all", 1),
            ("system", 2),
            ("crash", 2),
            ("2", 2),
            ("3", 3),
            ("0", 0),
            ("wer", 0),
            ("System", 0),
            ("-1", 0),
        ] {
            assert_eq!(traceback_level(value), level, "{value:?}");
        }
    }

    #[test]
    fn uvarint_decodes() {
        assert_eq!(uvarint(&[0x05]), Some((5, 1)));
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80]), None);
    }

    #[test]
    fn wait_reasons_are_read_at_their_symbol_or_found_without_it() {
        // One segment: ELF address 0x1000 + file offset.
        let mut file = vec![0xffu8; 0x300];
        file[0x100..0x111].copy_from_slice(b"GC assist marking");
        file[0x120..0x127].copy_from_slice(b"IO wait");
        let entries: [(u64, u64); 3] = [(0, 0), (0x1100, 17), (0x1120, 7)];
        for (i, (ptr, len)) in entries.iter().enumerate() {
            let at = 0x200 + 16 * i;
            file[at..at + 8].copy_from_slice(&ptr.to_le_bytes());
            file[at + 8..at + 16].copy_from_slice(&len.to_le_bytes());
        }
        let segments = [(0x1000, 0, 0x300)];
        let expected = ["", "GC assist marking", "IO wait"];
        assert_eq!(
            wait_reason_strings(&file, &segments, Some((0x1200, 48))),
            expected
        );
        // Without the symbol: found by its second entry, ended by the
        // first word that is not a string.
        assert_eq!(wait_reason_strings(&file, &segments, None), expected);
        // A first entry that is not the empty string: not the array.
        file[0x200] = 1;
        assert!(wait_reason_strings(&file, &segments, None).is_empty());
    }

    #[test]
    fn version_table() {
        assert_eq!(layout_for_version("go1.24.11").unwrap().g_goid, 160);
        assert_eq!(layout_for_version("go1.27.3").unwrap().m_curg, 184);
        assert!(layout_for_version("go1.12").is_none());
        assert!(layout_for_version("devel").is_none());
    }

    #[test]
    fn probe_spot_is_push_rbp_after_the_stack_check() {
        // lea r12,[rsp-0x28]; cmp r12,[r14+0x10]; jbe …; push rbp; mov rbp,rsp
        let code = [
            0x4c, 0x8d, 0x64, 0x24, 0xd8, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x2d, 0x03, 0x00,
            0x00, 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(after_stack_check(&code, 0), Some(15));
        assert_eq!(after_stack_check(&[0u8; 40], 0), None);
        // Go 1.19: lea r12,[rsp-0x38]; cmp r12,[r14+0x10]; jbe …;
        // sub rsp,0xb8; mov [rsp+0xb0],rbp; lea rbp,[rsp+0xb0]
        let mut code = vec![
            0x4c, 0x8d, 0x64, 0x24, 0xc8, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x02, 0x07, 0x00,
            0x00, 0x48, 0x81, 0xec, 0xb8, 0x00, 0x00, 0x00, 0x48, 0x89, 0xac, 0x24, 0xb0, 0x00,
            0x00, 0x00, 0x48, 0x8d, 0xac, 0x24, 0xb0, 0x00, 0x00, 0x00,
        ];
        code.resize(40, 0);
        assert_eq!(after_stack_check(&code, 0), Some(15));
        // Go 1.19, nosplit (no stack check): sub rsp,0x28; mov [rsp+0x20],rbp
        let mut code = vec![0x48, 0x83, 0xec, 0x28, 0x48, 0x89, 0x6c, 0x24, 0x20];
        code.resize(40, 0);
        assert_eq!(after_stack_check(&code, 0), Some(0));
        // Go 1.19, an 8-byte frame: sub rsp,8; mov [rsp],rbp
        let mut code = vec![0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xb7, 0, 0, 0];
        code.extend([0x48, 0x83, 0xec, 0x08, 0x48, 0x89, 0x2c, 0x24]);
        code.resize(40, 0);
        assert_eq!(after_stack_check(&code, 0), Some(10));
        // … whose stack check jumps to a morestack block that re-enters:
        // the probe goes on the jbe.
        let mut code = vec![0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x16, 0, 0, 0];
        code.extend([0x48, 0x83, 0xec, 0x08, 0x48, 0x89, 0x2c, 0x24]);
        code.resize(0x20, 0xcc);
        // at 0x20: call morestack_noctxt; jmp 0 (e9, rel32 = -0x2a)
        code.extend([0xe8, 0, 0, 0, 0, 0xe9]);
        code.extend((-0x2ai32).to_le_bytes());
        code.resize(0x80, 0xcc);
        assert_eq!(probe_spot(&code, 0), Some((4, ProbeSpot::StackCheckJump)));
        // Without the jump back to the entry it is not the stack check.
        code[0x25] = 0xcc;
        assert_eq!(probe_spot(&code, 0), Some((10, ProbeSpot::SubRsp)));
        // A `sub rsp` that does not save rbp is not a frame setup.
        let mut code = vec![0x48, 0x83, 0xec, 0x28, 0x48, 0x89, 0x6c, 0x24, 0x18];
        code.resize(40, 0);
        assert_eq!(after_stack_check(&code, 0), None);
    }
}
