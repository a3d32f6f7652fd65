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
    // Go 1.21 only (later versions have no such function): runs each
    // open-coded deferred call of a panic, never on a healthy path.
    ("runtime.deferCallSave", GoProbe::DeferCall),
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
    /// (probe, function name, file offset of the instruction to probe)
    pub points: Vec<(GoProbe, &'static str, u64)>,
    /// Go's function table, for the runtime's frame elision rules.
    pub pclntab: Option<pclntab::Pclntab>,
    /// ELF address of `runtime.types` (base of type-name offsets).
    types_base: Option<u64>,
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
        for sym in obj.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name == "runtime.types" {
                types_base = Some(sym.address());
            }
            if let Some((_, probe)) = PROBE_POINTS.iter().find(|(n, _)| *n == name)
                && let Some(off) = vaddr_to_offset(&segments, sym.address())
                && let Some(at) = after_stack_check(&map, off)
            {
                let static_name = PROBE_POINTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(n, _)| *n);
                points.push((*probe, static_name.unwrap_or("?"), at));
            }
        }
        drop(obj);
        let pclntab = pclntab::Pclntab::open(path).ok();
        // Stripped (`-s -w`): entry points and the type base from Go's own
        // table and the moduledata that points at it.
        if let Some(t) = &pclntab {
            types_base = types_base.or(t.table().types_base());
            for &(name, probe) in PROBE_POINTS {
                if points.iter().any(|&(p, _, _)| p == probe) {
                    continue;
                }
                if let Some(f) = t.find_by_name(name)
                    && let Some(off) = vaddr_to_offset(&segments, f.entry)
                    && let Some(at) = after_stack_check(&map, off)
                {
                    points.push((probe, name, at));
                }
            }
        }
        Ok(Some(Self {
            pclntab,
            version,
            module,
            layout,
            layout_source,
            table_layout: table,
            points,
            types_base,
            map,
            segments,
        }))
    }

    /// The runtime layout the binary's own DWARF gives (None without
    /// DWARF): the check of a layout taken from the version table.
    pub fn dwarf_layout(&self) -> Option<GoConfig> {
        let obj = object::File::parse(&*self.map).ok()?;
        layout_from_dwarf(&obj).ok().flatten()
    }

    /// Whether the function starting at ELF address `entry` has set up its
    /// frame pointer (`push rbp; mov rbp, rsp`) by the time it executes
    /// `pc`. Go leaves it out of small leaf functions, which then do not
    /// appear on the frame-pointer chain.
    pub fn frame_pointer_set(&self, entry: u64, pc: u64) -> bool {
        let Some(len) = pc.checked_sub(entry).and_then(|l| usize::try_from(l).ok()) else {
            return false;
        };
        self.bytes_at(entry, len.min(64))
            .is_some_and(|code| code.windows(4).any(|w| w == [0x55, 0x48, 0x89, 0xe5]))
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

    /// The minor version ("go1.24.11" → 24; 0 if it cannot be read).
    pub fn minor_version(&self) -> u32 {
        self.version
            .strip_prefix("go1.")
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
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

fn vaddr_to_offset(segments: &[(u64, u64, u64)], vaddr: u64) -> Option<u64> {
    segments.iter().find_map(|(va, off, size)| {
        let rel = vaddr.checked_sub(*va)?;
        (rel < *size).then(|| off.checked_add(rel)).flatten()
    })
}

/// The `push rbp; mov rbp, rsp` that follows Go's stack-bound check, within
/// the first bytes of the function: the kernel emulates `push rbp` (cheap),
/// and a call that first grows its stack through morestack passes it once.
/// Registers (arguments, R14 = g) are still as at entry.
fn after_stack_check(map: &[u8], func_offset: u64) -> Option<u64> {
    const WINDOW: usize = 40;
    let start = usize::try_from(func_offset).ok()?;
    let code = map.get(start..start.checked_add(WINDOW)?)?;
    code.windows(4)
        .position(|w| w == [0x55, 0x48, 0x89, 0xe5])
        .map(|i| func_offset + i as u64)
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

/// Go version and main module from `.go.buildinfo` (Go 1.18+ layout, where
/// both strings are stored inline after the 32-byte header).
pub fn build_info(obj: &object::File<'_>) -> Result<Option<(String, Option<String>)>> {
    let Some(section) = obj.section_by_name(".go.buildinfo") else {
        return Ok(None);
    };
    let data = section.data().context("reading .go.buildinfo")?;
    const MAGIC: &[u8] = b"\xff Go buildinf:";
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
            g_sched: get(&g, "sched")?,
            gobuf_bp: get(&gobuf, "bp")?,
            g_sig: get(&g, "sig")?,
            g_sigcode0: get(&g, "sigcode0")?,
        })
    })();
    Ok(layout)
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
        ("g_sched", c.g_sched),
        ("gobuf_bp", c.gobuf_bp),
        ("g_sig", c.g_sig),
        ("g_sigcode0", c.g_sigcode0),
    ]
}

/// The runtime layout by Go version, for binaries without DWARF: the
/// generated table (`layouts.rs`, from each version's DWARF). Struct
/// layouts do not change within a minor version.
pub fn layout_for_version(version: &str) -> Option<GoConfig> {
    let minor: u32 = version
        .strip_prefix("go1.")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    layouts::LAYOUTS
        .iter()
        .find(|(m, _, _)| *m == minor)
        .map(|&(_, _, layout)| layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_decodes() {
        assert_eq!(uvarint(&[0x05]), Some((5, 1)));
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80]), None);
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
    }
}
