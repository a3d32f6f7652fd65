//! A module's DWARF, unit by unit. What addr2line does not answer (gdb's
//! statement rows, call sites for tail calls) we read ourselves, and only
//! from the compilation units a crash stack passes through: a full pass
//! over libc's debug info costs more than the rest of a crash.

use std::{borrow::Cow, collections::HashMap, fs::File, ops::Range, path::Path, sync::Arc};

use anyhow::{Context as _, Result};
use gimli::{EndianSlice, LittleEndian};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

pub type Reader<'a> = EndianSlice<'a, LittleEndian>;

/// Where a section's bytes are: in the mapped file, or decompressed.
enum Section {
    Mapped(Range<usize>),
    Owned(Vec<u8>),
}

pub struct DwarfFile {
    map: Arc<memmap2::Mmap>,
    sections: gimli::DwarfSections<Section>,
    /// Address ranges of units: (begin, end, unit offset in .debug_info),
    /// sorted by begin.
    ranges: Vec<(u64, u64, usize)>,
    /// Function symbols by name (aliases included), for call targets
    /// DWARF only declares.
    by_name: HashMap<String, u64>,
}

impl DwarfFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: read-only mapping (see ElfModule::open).
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        Self::from_map(Arc::new(map))
    }

    pub fn from_map(map: Arc<memmap2::Mmap>) -> Result<Self> {
        let obj = object::File::parse(&**map)?;
        let base = map.as_ptr() as usize;
        let sections = gimli::DwarfSections::load(|id: gimli::SectionId| {
            // Only what units, lines and call sites need: location lists and
            // macros are large, and separate debug files are compressed.
            use gimli::SectionId::*;
            let wanted = matches!(
                id,
                DebugAbbrev
                    | DebugAddr
                    | DebugAranges
                    | DebugInfo
                    | DebugLine
                    | DebugLineStr
                    | DebugStr
                    | DebugStrOffsets
                    | DebugRanges
                    | DebugRngLists
            );
            let data = wanted
                .then(|| obj.section_by_name(id.name()))
                .flatten()
                .and_then(|s| s.uncompressed_data().ok())
                .unwrap_or(Cow::Borrowed(&[]));
            Ok::<_, gimli::Error>(match data {
                Cow::Borrowed([]) => Section::Owned(Vec::new()),
                Cow::Borrowed(b) => {
                    let start = b.as_ptr() as usize - base;
                    Section::Mapped(start..start + b.len())
                }
                Cow::Owned(v) => Section::Owned(v),
            })
        })?;
        let mut by_name = HashMap::new();
        for sym in obj.symbols().chain(obj.dynamic_symbols()) {
            if sym.kind() == object::SymbolKind::Text
                && sym.is_definition()
                && let Ok(name) = sym.name()
            {
                by_name.entry(name.to_owned()).or_insert(sym.address());
            }
        }
        drop(obj);
        let mut file = Self {
            map,
            sections,
            ranges: Vec::new(),
            by_name,
        };
        file.ranges = file.unit_ranges().unwrap_or_default();
        Ok(file)
    }

    pub fn dwarf(&self) -> gimli::Dwarf<Reader<'_>> {
        self.sections.borrow(|s| {
            let bytes: &[u8] = match s {
                Section::Mapped(r) => self.map.get(r.clone()).unwrap_or(&[]),
                Section::Owned(v) => v,
            };
            EndianSlice::new(bytes, LittleEndian)
        })
    }

    /// Units by address: from `.debug_aranges` when the producer wrote it,
    /// else from each unit's root DIE (its ranges; no other DIE is read).
    fn unit_ranges(&self) -> Result<Vec<(u64, u64, usize)>> {
        let dwarf = self.dwarf();
        let mut out = Vec::new();
        let mut headers = dwarf.debug_aranges.headers();
        while let Some(header) = headers.next()? {
            let unit = header.debug_info_offset().0;
            let mut entries = header.entries();
            while let Some(e) = entries.next()? {
                let r = e.range();
                if r.end > r.begin {
                    out.push((r.begin, r.end, unit));
                }
            }
        }
        if out.is_empty() {
            let mut units = dwarf.units();
            while let Some(header) = units.next()? {
                let offset = header.offset().0;
                let Ok(unit) = dwarf.unit(header) else {
                    continue;
                };
                let mut ranges = dwarf.unit_ranges(&unit)?;
                while let Some(r) = ranges.next()? {
                    if r.end > r.begin {
                        out.push((r.begin, r.end, offset));
                    }
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The unit (offset in .debug_info) whose code holds `addr`.
    pub fn unit_at(&self, addr: u64) -> Option<usize> {
        let idx = self.ranges.partition_point(|&(b, _, _)| b <= addr);
        self.ranges[..idx]
            .iter()
            .rev()
            .take(16)
            .find(|&&(_, e, _)| addr < e)
            .map(|&(_, _, u)| u)
    }

    pub fn unit<'a>(
        &self,
        dwarf: &gimli::Dwarf<Reader<'a>>,
        offset: usize,
    ) -> Result<gimli::Unit<Reader<'a>>> {
        let header = dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(offset))?;
        Ok(dwarf.unit(header)?)
    }

    pub fn function_named(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied()
    }
}
