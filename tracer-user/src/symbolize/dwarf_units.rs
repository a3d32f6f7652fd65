//! A module's DWARF, unit by unit. What addr2line does not answer (gdb's
//! statement rows, call sites for tail calls) we read ourselves, and only
//! from the compilation units a crash stack passes through: a full pass
//! over libc's debug info costs more than the rest of a crash.
//!
//! The sections are read once per file (compressed ones decompressed once:
//! libc's separate debug file holds ~9 MiB of them) and shared with
//! addr2line's context ([`DwarfFile::shared_dwarf`]), which reads them
//! through reference-counted handles.

use std::{
    borrow::Cow,
    collections::HashMap,
    fmt,
    fs::File,
    ops::Deref,
    ops::Range,
    path::Path,
    sync::{Arc, OnceLock},
};

use anyhow::{Context as _, Result};
use gimli::{EndianSlice, LittleEndian};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

pub type Reader<'a> = EndianSlice<'a, LittleEndian>;

/// A reader that owns a handle on its section: what addr2line's context
/// reads, so it can live next to the file it reads from.
pub type SharedReader = gimli::EndianReader<LittleEndian, Section>;

/// A section's bytes: a range of the mapped file, or decompressed (on the
/// heap). Cloning shares them; one pointer, as readers hold one for every
/// string and file name addr2line keeps.
#[derive(Clone)]
pub struct Section(Arc<SectionBytes>);

enum SectionBytes {
    Mapped(Arc<memmap2::Mmap>, Range<usize>),
    Owned(Vec<u8>),
}

impl Deref for Section {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &*self.0 {
            SectionBytes::Mapped(map, range) => map.get(range.clone()).unwrap_or(&[]),
            SectionBytes::Owned(bytes) => bytes,
        }
    }
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Section({} bytes)", self.len())
    }
}

// SAFETY: the bytes are in an `Arc`'d mapping or heap slice that neither
// moves nor changes while a clone lives: the address `deref` returns is
// the same for every clone and after a move.
unsafe impl gimli::StableDeref for Section {}
// SAFETY: as above; a clone derefs to the same bytes.
unsafe impl gimli::CloneStableDeref for Section {}

pub struct DwarfFile {
    sections: gimli::DwarfSections<Section>,
    /// Address ranges of units: (begin, end, unit offset in .debug_info),
    /// sorted by begin.
    ranges: Vec<UnitRange>,
    /// Function symbols by name (aliases included), for call targets
    /// DWARF only declares: read from the file on first use (only tail-call
    /// frames need them; tens of thousands of names in a large binary).
    by_name: OnceLock<HashMap<String, u64>>,
    /// Whether `ranges` could be read: an address outside them and
    /// `left_out` is then in no unit.
    indexed: bool,
    /// Ranges of the units `.debug_aranges` leaves out (see
    /// [`Self::left_out_ranges`]); None when they could not be read.
    left_out: OnceLock<Option<Vec<UnitRange>>>,
    /// Where each unit starts in `.debug_info` (read on first use: a
    /// unit's references into others name offsets, not units).
    unit_starts: OnceLock<Vec<usize>>,
    map: Arc<memmap2::Mmap>,
}

/// Whether the abbreviation table at `offset` of `.debug_abbrev` has an
/// attribute whose form refers out of its unit (`DW_FORM_ref_addr`, a type
/// signature, a supplementary or alternate file) or is chosen per entry
/// (`DW_FORM_indirect`); true when the table cannot be read.
fn may_refer_out(debug_abbrev: &[u8], offset: usize) -> bool {
    use gimli::Reader as _;
    const REF_ADDR: u64 = 0x10;
    const INDIRECT: u64 = 0x16;
    const REF_SUP4: u64 = 0x1c;
    const REF_SIG8: u64 = 0x20;
    const IMPLICIT_CONST: u64 = 0x21;
    const REF_SUP8: u64 = 0x24;
    const GNU_REF_ALT: u64 = 0x1f20;
    let Some(table) = debug_abbrev.get(offset..) else {
        return true;
    };
    let mut r = EndianSlice::new(table, LittleEndian);
    let mut scan = || -> gimli::Result<bool> {
        while r.read_uleb128()? != 0 {
            r.read_uleb128()?; // tag
            r.read_u8()?; // has children
            loop {
                let (name, form) = (r.read_uleb128()?, r.read_uleb128()?);
                match form {
                    0 if name == 0 => break,
                    REF_ADDR | INDIRECT | REF_SUP4 | REF_SIG8 | REF_SUP8 | GNU_REF_ALT => {
                        return Ok(true);
                    }
                    IMPLICIT_CONST => {
                        r.read_sleb128()?;
                    }
                    _ => {}
                }
            }
        }
        Ok(false)
    };
    scan().unwrap_or(true)
}

/// Code of a unit: (begin, end, the unit's offset in `.debug_info`).
type UnitRange = (u64, u64, usize);

/// The unit of `ranges` (sorted by begin) whose code holds `addr`.
fn holding(ranges: &[UnitRange], addr: u64) -> Option<usize> {
    let idx = ranges.partition_point(|&(b, _, _)| b <= addr);
    ranges[..idx]
        .iter()
        .rev()
        .take(16)
        .find(|&&(_, e, _)| addr < e)
        .map(|&(_, _, u)| u)
}

/// The sections units, lines and call sites need: location lists and
/// macros are large, and separate debug files are compressed.
const WANTED_SECTIONS: &[gimli::SectionId] = &[
    gimli::SectionId::DebugAbbrev,
    gimli::SectionId::DebugAddr,
    gimli::SectionId::DebugAranges,
    gimli::SectionId::DebugInfo,
    gimli::SectionId::DebugLine,
    gimli::SectionId::DebugLineStr,
    gimli::SectionId::DebugStr,
    gimli::SectionId::DebugStrOffsets,
    gimli::SectionId::DebugRanges,
    gimli::SectionId::DebugRngLists,
];

/// Units one context may hold (see [`DwarfFile::unit_dwarf`]): crashtrace's
/// own Rust units reach at most 15.
const MAX_UNITS_OF_A_CONTEXT: usize = 64;

/// A `.debug_info` as long as the last of `units` (offset → length), with
/// those units copied at their offsets and each gap between them one
/// placeholder: a DWARF 5 type unit header spanning the gap, which
/// addr2line passes over (it reads nothing from type units). Gaps too short
/// for that header (24 bytes) keep their own units. The rest of the
/// anonymous mapping is never written, so never backed by memory.
fn sparse_debug_info(
    section: &[u8],
    units: &std::collections::BTreeMap<usize, usize>,
) -> Option<Section> {
    const PLACEHOLDER: usize = 24;
    let end = units.iter().map(|(&o, &len)| o + len).max()?;
    let source = section.get(..end)?;
    let mut buf = memmap2::MmapMut::map_anon(end).ok()?;
    let mut pos = 0;
    for (&offset, &len) in units {
        let gap = offset - pos;
        if gap >= PLACEHOLDER && gap - 4 < 0xffff_fff0 {
            let header = &mut buf[pos..pos + PLACEHOLDER];
            header[..4].copy_from_slice(&((gap - 4) as u32).to_le_bytes());
            header[4..6].copy_from_slice(&5u16.to_le_bytes());
            header[6] = gimli::constants::DW_UT_type.0;
            header[7] = 8; // address size; the abbreviation offset, type
        // signature and type offset stay 0: nothing reads them.
        } else if gap > 0 {
            buf[pos..offset].copy_from_slice(&source[pos..offset]);
        }
        buf[offset..offset + len].copy_from_slice(&source[offset..offset + len]);
        pos = offset + len;
    }
    let map = buf.make_read_only().ok()?;
    Some(Section(Arc::new(SectionBytes::Mapped(
        Arc::new(map),
        0..end,
    ))))
}

impl DwarfFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: read-only mapping (see ElfModule::open).
        let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }?);
        let dwarf = Self::from_map(Arc::clone(&map))?;
        // A separate debug file's sections are mostly compressed: once they
        // are decompressed, the pages read for it only count against our
        // RSS (libc's: ~4 MiB). Dropped; what is read again (the symbol
        // table, sections stored as they are) faults back in from the page
        // cache.
        // SAFETY: a read-only private file mapping has no pages of its own
        // to lose: MADV_DONTNEED only unmaps pages the file backs.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        Ok(dwarf)
    }

    pub fn from_map(map: Arc<memmap2::Mmap>) -> Result<Self> {
        let obj = object::File::parse(&**map)?;
        let base = map.as_ptr() as usize;
        // Compressed sections inflate at once, each on a thread of its own:
        // libc's `.debug_info` is one zlib stream (2.3 MB), its other
        // sections 0.7 MB more, all on a crash's path when the crash comes
        // before the warm-up.
        let mut inflated: HashMap<gimli::SectionId, Vec<u8>> = std::thread::scope(|scope| {
            let inflating: Vec<_> = WANTED_SECTIONS
                .iter()
                .filter_map(|&id| {
                    let section = obj.section_by_name(id.name())?;
                    let compressed = section
                        .compressed_file_range()
                        .is_ok_and(|r| r.format != object::CompressionFormat::None);
                    if !compressed {
                        return None;
                    }
                    // A thread that cannot start (pids or memory
                    // exhausted on a loaded host) leaves its section to
                    // inflate below, on this thread.
                    let thread = std::thread::Builder::new()
                        .name("inflate".into())
                        .spawn_scoped(scope, move || {
                            section.uncompressed_data().ok().map(Cow::into_owned)
                        })
                        .ok()?;
                    Some((id, thread))
                })
                .collect();
            inflating
                .into_iter()
                .filter_map(|(id, t)| Some((id, t.join().ok()??)))
                .collect()
        });
        let sections = gimli::DwarfSections::load(|id: gimli::SectionId| {
            let data = if let Some(bytes) = inflated.remove(&id) {
                Cow::Owned(bytes)
            } else {
                WANTED_SECTIONS
                    .contains(&id)
                    .then(|| obj.section_by_name(id.name()))
                    .flatten()
                    .and_then(|s| s.uncompressed_data().ok())
                    .unwrap_or(Cow::Borrowed(&[]))
            };
            Ok::<_, gimli::Error>(Section(Arc::new(match data {
                Cow::Borrowed(b) if !b.is_empty() => {
                    let start = b.as_ptr() as usize - base;
                    SectionBytes::Mapped(Arc::clone(&map), start..start + b.len())
                }
                Cow::Borrowed(_) => SectionBytes::Owned(Vec::new()),
                Cow::Owned(v) => SectionBytes::Owned(v),
            })))
        })?;
        drop(obj);
        let mut file = Self {
            sections,
            ranges: Vec::new(),
            by_name: OnceLock::new(),
            unit_starts: OnceLock::new(),
            indexed: false,
            left_out: OnceLock::new(),
            map,
        };
        match file.unit_ranges() {
            Ok((ranges, every_unit)) => {
                file.ranges = ranges;
                file.indexed = true;
                if every_unit {
                    let _ = file.left_out.set(Some(Vec::new()));
                }
            }
            Err(_) => file.indexed = false,
        }
        Ok(file)
    }

    pub fn dwarf(&self) -> gimli::Dwarf<Reader<'_>> {
        self.sections.borrow(|s| EndianSlice::new(s, LittleEndian))
    }

    /// The same sections for a reader that owns its handles (addr2line's
    /// context), without copying them.
    pub fn shared_dwarf(&self) -> gimli::Dwarf<SharedReader> {
        let mut dwarf = self
            .sections
            .borrow(|s| gimli::EndianReader::new(s.clone(), LittleEndian));
        // Units that share an abbreviation table (most of a Rust binary's)
        // share its parse, as addr2line's own loader does: ~20 MiB less
        // for crashtrace's own binary.
        dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
        dwarf
    }

    /// The DWARF of the unit at `offset` in `.debug_info`, for an addr2line
    /// context of its own, so that opening it parses one unit's header,
    /// abbreviations and ranges instead of every unit's (libc: 1 of 2,063;
    /// a 71 MB Rust binary: 15 of 2,048, ~20 ms less for its first
    /// address). A unit whose entries refer into no other unit gets
    /// `.debug_info` cut down to itself. One that does (`DW_FORM_ref_addr`:
    /// Rust's functions inlined from other codegen units have their
    /// abstract origins there; LTO, dwz) gets a `.debug_info` in which the
    /// units it reaches, and the units those reach, sit at their own
    /// offsets and every gap between them is one placeholder type unit,
    /// which addr2line skips without parsing ([`sparse_debug_info`]).
    /// None when it reaches more than [`MAX_UNITS_OF_A_CONTEXT`] units or
    /// refers to type units (`DW_FORM_ref_sig8`), or to a supplementary
    /// file: the whole file's context answers those. With the DWARF, the
    /// number of units it holds.
    pub fn unit_dwarf(&self, offset: usize) -> Option<(gimli::Dwarf<SharedReader>, usize)> {
        let mut dwarf = self
            .sections
            .borrow(|s| gimli::EndianReader::new(s.clone(), LittleEndian));
        let needed = self.units_reached_from(offset)?;
        use gimli::{Reader as _, Section as _};
        if needed.len() == 1 {
            let len = *needed.get(&offset)?;
            let mut info = dwarf.debug_info.reader().clone();
            info.skip(offset).ok()?;
            info.truncate(len).ok()?;
            dwarf.debug_info = gimli::DebugInfo::from(info);
            // Its entries name units by their old offsets: addr2line finds
            // the unit from its own ranges instead.
            let mut empty = dwarf.debug_aranges.reader().clone();
            empty.empty();
            dwarf.debug_aranges = gimli::DebugAranges::from(empty);
            return Some((dwarf, 1));
        }
        let info = sparse_debug_info(dwarf.debug_info.reader().bytes(), &needed)?;
        dwarf.debug_info = gimli::DebugInfo::from(gimli::EndianReader::new(info, LittleEndian));
        Some((dwarf, needed.len()))
    }

    /// The units (offset → length in `.debug_info`) the unit at `offset`
    /// refers into, transitively, itself included; None past
    /// [`MAX_UNITS_OF_A_CONTEXT`], or for a reference no cut-down
    /// `.debug_info` can resolve.
    fn units_reached_from(
        &self,
        offset: usize,
    ) -> Option<std::collections::BTreeMap<usize, usize>> {
        use gimli::Section as _;
        let dwarf = self.dwarf();
        let mut needed = std::collections::BTreeMap::new();
        let mut todo = vec![offset];
        while let Some(at) = todo.pop() {
            if needed.contains_key(&at) {
                continue;
            }
            if needed.len() >= MAX_UNITS_OF_A_CONTEXT {
                return None;
            }
            let header = dwarf
                .debug_info
                .header_from_offset(gimli::DebugInfoOffset(at))
                .ok()?;
            needed.insert(at, header.length_including_self());
            // A unit whose abbreviations have no form that refers out of
            // it refers nowhere: its entries need no reading (C and C++
            // without LTO: a full pass over a large unit's entries was
            // ~13 % of symbolizing a 146 MiB C++ program).
            let abbrev = header.debug_abbrev_offset().0;
            if !may_refer_out(dwarf.debug_abbrev.reader().slice(), abbrev) {
                continue;
            }
            let unit = dwarf.unit(header).ok()?;
            let mut entries = unit.entries();
            while let Ok(Some(entry)) = entries.next_dfs() {
                for attr in entry.attrs() {
                    match attr.value() {
                        gimli::AttributeValue::DebugInfoRef(r) => {
                            let target = self.unit_holding(r.0)?;
                            if !needed.contains_key(&target) {
                                todo.push(target);
                            }
                        }
                        gimli::AttributeValue::DebugInfoRefSup(_)
                        | gimli::AttributeValue::DebugTypesRef(_) => return None,
                        _ => {}
                    }
                }
            }
        }
        Some(needed)
    }

    /// Offset of the unit holding `.debug_info` offset `at`.
    fn unit_holding(&self, at: usize) -> Option<usize> {
        let starts = self.unit_starts.get_or_init(|| {
            let dwarf = self.dwarf();
            let mut starts = Vec::new();
            let mut units = dwarf.units();
            while let Ok(Some(header)) = units.next() {
                if let Some(o) = header.debug_info_offset() {
                    starts.push(o.0);
                }
            }
            starts
        });
        let idx = starts.partition_point(|&s| s <= at);
        starts.get(idx.checked_sub(1)?).copied()
    }

    /// Units by address, as `.debug_aranges` lists them; the units it leaves
    /// out are indexed on the first lookup outside these ranges
    /// ([`Self::left_out_ranges`]). Without `.debug_aranges`, every unit's
    /// root ranges, and none is left out.
    fn unit_ranges(&self) -> Result<(Vec<UnitRange>, bool)> {
        let dwarf = self.dwarf();
        let mut out = Vec::new();
        let mut headers = dwarf.debug_aranges.headers();
        let mut any = false;
        while let Some(header) = headers.next()? {
            any = true;
            let unit = header.debug_info_offset().0;
            let mut entries = header.entries();
            while let Some(e) = entries.next()? {
                let r = e.range();
                if r.end > r.begin {
                    out.push((r.begin, r.end, unit));
                }
            }
        }
        if !any {
            out = self.root_ranges(&std::collections::HashSet::new())?;
        }
        out.sort_unstable();
        Ok((out, !any))
    }

    /// The root ranges of the units `.debug_aranges` leaves out, read on the
    /// first lookup outside its ranges. A unit whose root names no code
    /// (`DW_AT_low_pc`/`high_pc`/`ranges`) holds none: rustc lists in
    /// `.debug_aranges` only its units with code (321 of 2,048 in
    /// crashtrace's release build; the others hold types and generics),
    /// and gdb and llvm-symbolizer index units the same way. With these the
    /// index covers every unit with code, and an address outside it is in
    /// no unit: its lookup needs no context of the whole file, whose
    /// opening reads every unit (~25 ms of a Rust binary's first lookup at
    /// `_start`, for no answer). Reading them costs ~4 ms there, which an
    /// address `.debug_aranges` covers does not pay.
    fn left_out_ranges(&self) -> &[UnitRange] {
        self.left_out
            .get_or_init(|| {
                let dwarf = self.dwarf();
                let mut listed = std::collections::HashSet::new();
                let mut headers = dwarf.debug_aranges.headers();
                while let Ok(Some(header)) = headers.next() {
                    listed.insert(header.debug_info_offset().0);
                }
                let mut out = self.root_ranges(&listed).ok()?;
                out.sort_unstable();
                Some(out)
            })
            .as_deref()
            .unwrap_or(&[])
    }

    /// Every unit's root ranges but those of `skip` (offsets in
    /// `.debug_info`); a unit is parsed only if its root names code.
    fn root_ranges(&self, skip: &std::collections::HashSet<usize>) -> Result<Vec<UnitRange>> {
        let dwarf = self.dwarf();
        let mut out = Vec::new();
        let mut abbreviations: Option<(gimli::DebugAbbrevOffset, gimli::Abbreviations)> = None;
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let offset = header.offset().0;
            if skip.contains(&offset)
                || !matches!(
                    header.type_(),
                    gimli::UnitType::Compilation | gimli::UnitType::Skeleton(_)
                )
            {
                continue;
            }
            // The root's attribute names first: parsing the unit (its line
            // program header above all) only for one that names code. One
            // table kept: consecutive units often share theirs, and holding
            // every table at once cost 30 MB of peak for a 142 MB Rust
            // binary (612 tables).
            if abbreviations
                .as_ref()
                .is_none_or(|(at, _)| *at != header.debug_abbrev_offset())
            {
                abbreviations = Some((
                    header.debug_abbrev_offset(),
                    header.abbreviations(&dwarf.debug_abbrev)?,
                ));
            }
            let Some((_, abbrevs)) = abbreviations.as_ref() else {
                continue;
            };
            let mut root = header.entries_raw(abbrevs, None)?;
            let names_code = root.read_abbreviation()?.is_some_and(|a| {
                a.attributes().iter().any(|spec| {
                    matches!(
                        spec.name(),
                        gimli::DW_AT_low_pc | gimli::DW_AT_high_pc | gimli::DW_AT_ranges
                    )
                })
            });
            if !names_code {
                continue;
            }
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
        Ok(out)
    }

    /// Whether no unit holds code at `addr`, as far as the index can tell.
    pub fn no_unit_at(&self, addr: u64) -> bool {
        self.indexed
            && self.unit_at(addr).is_none()
            && self.left_out.get().is_some_and(|l| l.is_some())
    }

    /// The unit `.debug_aranges` (or, without it, the unit index) says holds
    /// `addr`, without reading the units it leaves out.
    pub fn listed_unit_at(&self, addr: u64) -> Option<usize> {
        holding(&self.ranges, addr)
    }

    /// The unit (offset in .debug_info) whose code holds `addr`.
    pub fn unit_at(&self, addr: u64) -> Option<usize> {
        holding(&self.ranges, addr).or_else(|| holding(self.left_out_ranges(), addr))
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
        self.by_name
            .get_or_init(|| {
                let mut by_name = HashMap::new();
                if let Ok(obj) = object::File::parse(&**self.map) {
                    for sym in obj.symbols().chain(obj.dynamic_symbols()) {
                        if sym.kind() == object::SymbolKind::Text
                            && sym.is_definition()
                            && let Ok(name) = sym.name()
                        {
                            by_name.entry(name.to_owned()).or_insert(sym.address());
                        }
                    }
                }
                by_name
            })
            .get(name)
            .copied()
    }
}
