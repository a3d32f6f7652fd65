//! One ELF binary: its load segments (to turn file offsets into the
//! addresses DWARF and symbols use), DWARF through addr2line (inlined frames
//! included) and its symbol tables as the fallback.

use std::{
    collections::HashMap,
    fs::File,
    path::Path,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
};

use anyhow::{Context as _, Result, bail};
use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _, SymbolKind};

use super::{
    DebugInfo, PcKind, SourceLocation,
    dwarf_units::{DwarfFile, SharedReader},
};

struct Segment {
    file_offset: u64,
    file_size: u64,
    vaddr: u64,
    exec: bool,
}

impl Segment {
    /// The file offset of the `len` bytes at `vaddr`, when the segment's
    /// file bytes hold them all (hostile headers: no overflow).
    fn offset_of(&self, vaddr: u64, len: u64) -> Option<u64> {
        let rel = vaddr.checked_sub(self.vaddr)?;
        (rel.checked_add(len)? <= self.file_size)
            .then(|| self.file_offset.checked_add(rel))
            .flatten()
    }

    /// The address of the byte at `file_offset`, when the segment has it.
    fn vaddr_of(&self, file_offset: u64) -> Option<u64> {
        let rel = file_offset.checked_sub(self.file_offset)?;
        (rel < self.file_size).then(|| self.vaddr.wrapping_add(rel))
    }
}

struct Symbol {
    address: u64,
    size: u64,
    name: NameAt,
    /// Its place in the list before sorting (see [`Symbols::finish`]).
    seq: u32,
}

/// Where a symbol's name is: in the module's own mapped file (its symbol
/// table's strings), or copied into [`Symbols::names`] (a separate debug
/// file's, which is not kept mapped).
#[derive(Clone, Copy)]
enum NameAt {
    File {
        offset: u32,
        len: u32,
    },
    /// A NUL-terminated name at `offset` in the file, its length not read
    /// yet: indexing a binary's symbols reads no name (a C++ program's
    /// 2.9 MB of names are a quarter of its first lookup's time).
    FileNul {
        offset: u32,
    },
    Copied {
        start: u32,
        len: u32,
    },
}

/// Longest name read where a file's string table holds it.
const MAX_SYMBOL_NAME: usize = 1 << 16;

/// Defined functions with a size, sorted by address. Their names stay in
/// the mapped file: a large binary has 60,000 of them, and a `String` each
/// was 10 MB of a tracer attached to a 142 MB Rust binary (heaptrack).
struct Symbols {
    list: Vec<Symbol>,
    /// The module's file, which holds the names of its own symbols.
    file: std::sync::Arc<memmap2::Mmap>,
    /// Names from a separate debug file.
    names: String,
}

impl Symbols {
    fn new(file: std::sync::Arc<memmap2::Mmap>) -> Self {
        Self {
            list: Vec::new(),
            file,
            names: String::new(),
        }
    }

    fn name(&self, s: &Symbol) -> &str {
        match s.name {
            NameAt::File { offset, len } => {
                let (start, len) = (offset as usize, len as usize);
                self.file
                    .get(start..start + len)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .unwrap_or_default()
            }
            NameAt::FileNul { offset } => {
                let start = offset as usize;
                let bytes = self
                    .file
                    .get(start..self.file.len().min(start + MAX_SYMBOL_NAME))
                    .unwrap_or_default();
                let len = bytes.iter().position(|&b| b == 0).unwrap_or(0);
                std::str::from_utf8(&bytes[..len]).unwrap_or_default()
            }
            NameAt::Copied { start, len } => {
                let (start, len) = (start as usize, len as usize);
                self.names.get(start..start + len).unwrap_or_default()
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&Symbol, &str)> {
        self.list.iter().map(|s| (s, self.name(s)))
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds `obj`'s text symbols (see [`text_symbols`]): `obj` is the
    /// module's own file (names referred to) or another (names copied).
    fn add(&mut self, obj: &object::File<'_>) {
        let file = self.file.as_ptr() as usize..self.file.as_ptr() as usize + self.file.len();
        for (address, size, name) in text_symbols(obj) {
            let at = name.as_ptr() as usize;
            let name_at = if file.contains(&at) && at + name.len() <= file.end {
                u32::try_from(at - file.start)
                    .ok()
                    .zip(u32::try_from(name.len()).ok())
                    .map(|(offset, len)| NameAt::File { offset, len })
            } else {
                let start = u32::try_from(self.names.len()).ok();
                let len = u32::try_from(name.len()).ok();
                self.names.push_str(name);
                start
                    .zip(len)
                    .map(|(start, len)| NameAt::Copied { start, len })
            };
            let Some(name) = name_at else {
                continue; // past 4 GiB: not a binary anyone built
            };
            self.list.push(Symbol {
                address,
                size,
                name,
                seq: 0,
            });
        }
        self.finish();
    }

    /// Adds the text symbols of the module's own file (parsed as `obj`),
    /// their names located in its string tables but not read; as
    /// [`Self::add`] for a file that is not 64-bit ELF.
    fn add_own(&mut self, obj: &object::File<'_>) {
        use object::read::elf::{SectionHeader as _, Sym as _};
        let file = std::sync::Arc::clone(&self.file);
        let Ok(elf) = object::read::elf::ElfFile64::<object::Endianness>::parse(&**file) else {
            self.add(obj);
            return;
        };
        let endian = elf.endian();
        // The raw entries, filtered as `is_text_symbol` filters object's
        // view of them: that view's per-symbol calls were a tenth of a
        // 146 MB C++ program's first lookup.
        for table in [elf.elf_symbol_table(), elf.elf_dynamic_symbol_table()] {
            let Some(strings) = elf
                .elf_section_table()
                .section(table.string_section())
                .ok()
                .and_then(|s| s.file_range(endian))
                .map(|(offset, _)| offset)
            else {
                continue;
            };
            self.list.reserve(table.len());
            for raw in table.iter() {
                let shndx = raw.st_shndx(endian);
                let (address, size) = (raw.st_value(endian), raw.st_size(endian));
                // object's Text kind and definition: a function (not an
                // ifunc), in a section, with a size.
                if raw.st_type() != object::elf::STT_FUNC
                    || (shndx.is_special() && shndx != object::elf::SHN_XINDEX)
                    || size == 0
                    || address == u64::MAX
                {
                    continue;
                }
                let Ok(offset) = u32::try_from(strings + u64::from(raw.st_name(endian))) else {
                    continue; // past 4 GiB: not a binary anyone built
                };
                self.list.push(Symbol {
                    address,
                    size,
                    name: NameAt::FileNul { offset },
                    seq: 0,
                });
            }
        }
        self.finish();
    }

    /// One symbol per address, the largest (aliases of different sizes).
    /// Aliases of the same address and size keep the order they came in
    /// (the symbol table's, then the dynamic one's): a stable sort's
    /// result, from an unstable sort (a third of the time on a C++
    /// program's 100,000 symbols) with the order as the last key.
    fn finish(&mut self) {
        for (i, s) in self.list.iter_mut().enumerate() {
            s.seq = i as u32;
        }
        self.list
            .sort_unstable_by_key(|s| (s.address, std::cmp::Reverse(s.size), s.seq));
        self.list.dedup_by_key(|s| s.address);
        self.list.shrink_to_fit();
        self.names.shrink_to_fit();
    }
}

pub struct ElfModule {
    /// The file, open for as long as the module lives.
    file: File,
    /// (device, inode) of the file.
    pub identity: (u64, u64),
    /// ELF address of its dynamic section (PT_DYNAMIC), if it has one.
    dynamic_vaddr: Option<u64>,
    /// Its DT_NEEDED libraries and DT_RUNPATH/DT_RPATH directories, and
    /// its program interpreter (PT_INTERP: ld.so).
    needed: Vec<String>,
    interp: Option<String>,
    runpath: Vec<String>,
    pub debuginfo: DebugInfo,
    /// GNU build id, else Go's (`.note.go.buildid`), tagged by kind: the
    /// same build in two places (containers, copies) is one module.
    pub build_id: Option<Vec<u8>>,
    segments: Vec<Segment>,
    symbols: Symbols,
    /// addr2line's context of the whole file, for the units a context of
    /// their own cannot answer (see `unit_contexts`). It caches parsed units
    /// in cells (not `Sync`): one lookup at a time, which is all the
    /// analysis thread does. Opened on first use: addr2line reads every
    /// unit's header, abbreviations and ranges when it opens (libc's debug
    /// file: ~20 MiB, tens of ms). It reads the sections of
    /// [`Self::dwarf_file`] (decompressed once for all).
    dwarf: OnceLock<Option<Mutex<addr2line::Context<SharedReader>>>>,
    /// addr2line contexts of single units (see `DwarfFile::unit_dwarf`), by
    /// unit offset: the usual way in, so a lookup parses the units stacks
    /// pass through, not every unit of the file (None: a unit only the
    /// whole file's context can answer). Bounded: emptied when full.
    unit_contexts: Mutex<UnitContexts>,
    /// Go's own table: Go frames are walked with it, and it names them in
    /// Go binaries without DWARF (`-ldflags=-w`).
    gopclntab: Option<gosym::Table<memmap2::Mmap>>,
    /// The file, mapped: its CFI is indexed on the first unwind through it.
    map: std::sync::Arc<memmap2::Mmap>,
    cfi: OnceLock<Option<crate::unwind::cfi::Cfi>>,
    /// A Go binary (its line tables follow the Go runtime, not gdb).
    is_go: bool,
    /// Its dynamic symbols import `dlopen`: a process whose modules do
    /// not cannot load a library later, and needs no dlopen probe.
    pub imports_dlopen: bool,
    /// Addresses where the last line row is not a statement but an earlier
    /// one at the same address is: the (file, line) gdb reports there.
    /// Read from the units crash stacks pass through.
    stmt_rows: Mutex<HashMap<usize, Arc<OnceLock<UnitStmtRows>>>>,
    /// Demangled function names by their DWARF name ([`frames_at`]).
    demangled: Mutex<Demangled>,
    /// Answers of [`Self::lookup_cached`] by probe address, for the
    /// addresses a process's stacks pass through again and again (a crash
    /// loop, a signal storm): the same program counters are symbolized once.
    /// Bounded: emptied when full.
    recent: Mutex<std::collections::HashMap<u64, Vec<SourceLocation>>>,
    /// DWARF call sites, for the frames tail calls removed (read unit by
    /// unit as stacks pass through).
    call_sites: Mutex<super::callsites::CallSites>,
    /// Answers of [`Self::function_offset_memo`], by key.
    offsets_found: Mutex<std::collections::HashMap<&'static str, Option<u64>>>,
    /// The DWARF file: its sections (for addr2line too) and units (for
    /// statement rows and call sites), opened on first use.
    dwarf_file: OnceLock<Option<DwarfFile>>,
    /// The file holding the DWARF (the binary or its separate debug file).
    dwarf_path: Option<std::path::PathBuf>,
    dwarf_in_binary: bool,
}

impl ElfModule {
    pub fn open(path: &Path, display: &str) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::from_file(file, display)
    }

    /// The binary in `file` (kept open: its DWARF is read through it, and
    /// probes are placed through [`Self::fd_path`], even once the process
    /// that mapped it, or the file's name, is gone). `display` is the path
    /// the process knows it by (separate debug files are looked up by it).
    pub fn from_file(file: File, display: &str) -> Result<Self> {
        use std::os::fd::AsRawFd as _;
        // Said in words before mmap says "No such device" or "Invalid
        // argument".
        match file.metadata() {
            Ok(m) if m.is_dir() => bail!("{display} is a directory, not an ELF file"),
            Ok(m) if !m.is_file() => bail!("{display} is not a regular file"),
            Ok(m) if m.len() == 0 => bail!("{display} is empty, not an ELF file"),
            _ => {}
        }
        let path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let path = path.as_path();
        // SAFETY: the mapping is read-only; a binary truncated under us can
        // still SIGBUS, as for every debugger. Executables in use cannot be
        // written (ETXTBSY), which covers the common case.
        let map = std::sync::Arc::new(
            unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {display}"))?,
        );
        let obj = object::File::parse(&**map)
            .with_context(|| format!("{display} is not a valid ELF file"))?;
        if !matches!(obj.format(), object::BinaryFormat::Elf) {
            bail!("{display} is not an ELF file");
        }

        let (dynamic_vaddr, interp) = match &obj {
            object::File::Elf64(elf) => {
                use object::read::elf::ProgramHeader as _;
                let endian = elf.endian();
                let headers = elf.elf_program_headers();
                let dynamic = headers
                    .iter()
                    .find(|p| p.p_type(endian) == object::elf::PT_DYNAMIC)
                    .map(|p| p.p_vaddr(endian));
                let interp = headers
                    .iter()
                    .find(|p| p.p_type(endian) == object::elf::PT_INTERP)
                    .and_then(|p| p.data(endian, elf.data()).ok())
                    .map(|b| {
                        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                        String::from_utf8_lossy(&b[..end]).into_owned()
                    });
                (dynamic, interp)
            }
            _ => (None, None),
        };
        let (needed, runpath) = dynamic_entries(&obj);
        let segments = obj
            .segments()
            .map(|s| {
                let (file_offset, file_size) = s.file_range();
                let exec = matches!(s.flags(), object::SegmentFlags::Elf { p_flags, .. } if p_flags.0 & object::elf::PF_X.0 != 0);
                Segment {
                    file_offset,
                    file_size,
                    vaddr: s.address(),
                    exec,
                }
            })
            .collect();

        let mut symbols = Symbols::new(std::sync::Arc::clone(&map));
        symbols.add_own(&obj);

        // DWARF in the file itself, else in a separate debug file (Debian's
        // -dbg packages, or `objcopy --only-keep-debug` next to the binary),
        // which also carries the symbol table the binary was stripped of.
        // Opened on first lookup (or by the warm-up); units are parsed on
        // first lookup and cached.
        let debug_file = if has_dwarf(&obj) {
            None
        } else {
            separate_debug_file(&obj, Path::new(display))
        };
        // addr2line opens the file by path (on first use): through our own
        // open descriptor, since `display` may be /proc/PID/map_files/… of
        // a process that exits meanwhile (a module opened then without
        // DWARF would stay so for every later process of the file).
        let dwarf_path = match &debug_file {
            None if has_dwarf(&obj) => Some(path.to_path_buf()),
            None => None,
            Some(debug_file) => {
                add_symbols_of_file(&mut symbols, debug_file);
                Some(debug_file.clone())
            }
        };
        // A Go binary has its own table: frame sizes for the unwinder, and
        // without DWARF its lines and inlined calls (the runtime's
        // tracebacks need it).
        let gopclntab = if obj.section_by_name(".go.buildinfo").is_some()
            || obj.section_by_name(".gopclntab").is_some()
            || obj.sections().next().is_none()
        {
            // SAFETY: as above; a second read-only mapping the table owns.
            unsafe { memmap2::Mmap::map(&file) }
                .ok()
                .and_then(|m| gosym::Table::parse(m).ok())
        } else {
            None
        };
        let debuginfo = if dwarf_path.is_some() {
            DebugInfo::Dwarf
        } else if gopclntab.is_some() {
            DebugInfo::Gopclntab
        } else if !symbols.is_empty() {
            DebugInfo::Symtab
        } else {
            DebugInfo::None
        };
        let build_id = build_id(&obj);
        let imports_dlopen = obj
            .dynamic_symbols()
            .any(|s| s.is_undefined() && s.name().is_ok_and(|n| n == "dlopen"));
        let is_go = obj.section_by_name(".go.buildinfo").is_some();
        drop(obj);
        let identity = {
            use std::os::unix::fs::MetadataExt as _;
            let m = file.metadata().with_context(|| format!("stat {display}"))?;
            (m.dev(), m.ino())
        };
        Ok(Self {
            file,
            identity,
            dynamic_vaddr,
            needed,
            interp,
            runpath,
            is_go,
            imports_dlopen,
            stmt_rows: Mutex::default(),
            demangled: Mutex::default(),
            recent: Mutex::default(),
            call_sites: Mutex::default(),
            offsets_found: Mutex::default(),
            dwarf_file: OnceLock::new(),
            unit_contexts: Mutex::new(UnitContexts::default()),
            dwarf_in_binary: debug_file.is_none(),
            dwarf_path,
            debuginfo,
            build_id,
            map,
            cfi: OnceLock::new(),
            segments,
            symbols,
            dwarf: OnceLock::new(),
            gopclntab,
        })
    }

    /// A path to the file that works while the module lives, whatever
    /// became of its name (deleted, replaced, another mount namespace):
    /// for readers that take a path (uprobe placement, Go's tables).
    pub fn fd_path(&self) -> std::path::PathBuf {
        use std::os::fd::AsRawFd as _;
        std::path::PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// addr2line's view of the DWARF, opened on first use.
    fn dwarf(&self) -> Option<&Mutex<addr2line::Context<SharedReader>>> {
        self.dwarf
            .get_or_init(|| {
                let file = self.dwarf_file()?;
                addr2line::Context::from_dwarf(file.shared_dwarf())
                    .ok()
                    .map(Mutex::new)
            })
            .as_ref()
    }

    /// The file holding the DWARF: the binary itself through its mapping
    /// (its /proc path may be gone with the process), a separate debug
    /// file by path.
    fn dwarf_file(&self) -> Option<&DwarfFile> {
        self.dwarf_file
            .get_or_init(|| match self.dwarf_path.as_deref() {
                None => None,
                Some(_) if self.dwarf_in_binary => {
                    DwarfFile::from_map(std::sync::Arc::clone(&self.map)).ok()
                }
                Some(p) => DwarfFile::open(p).ok(),
            })
            .as_ref()
    }

    /// The DWARF by units, for gdb's statement rows and call sites. None
    /// for Go (its tables follow the Go runtime, not gdb).
    fn dwarf_units(&self) -> Option<&DwarfFile> {
        if self.is_go {
            return None;
        }
        self.dwarf_file()
    }

    /// gdb's (file, line) at `probe` where it differs from addr2line's.
    fn stmt_row(&self, probe: u64) -> Option<(String, u32)> {
        let file = self.dwarf_units()?;
        let unit = file.unit_at(probe)?;
        // Read once, outside the lock: another thread's lookups in other
        // units go on meanwhile.
        let cell = lock(&self.stmt_rows).entry(unit).or_default().clone();
        // A unit whose lines cannot be read keeps addr2line's answers.
        let rows = cell.get_or_init(|| stmt_rows_of(file, unit).unwrap_or_default());
        rows.at(probe)
    }

    /// The frames tail calls removed between the function holding `callee`
    /// (an address in this module) and the call that returns to `ret`:
    /// addresses after each jump, innermost first. See [`super::callsites`].
    pub fn tail_calls_between(&self, ret: u64, callee: u64) -> Vec<u64> {
        if self.dwarf_path.is_none() || self.is_go {
            return Vec::new();
        }
        let (Some(entry), Some(file)) = (self.symbol_entry(callee), self.dwarf_units()) else {
            return Vec::new();
        };
        let mut sites = lock(&self.call_sites);
        sites.load_for(file, ret);
        sites.between(ret, entry)
    }

    /// File offset of the function whose demangled name satisfies `pred`.
    pub fn function_offset(&self, pred: impl Fn(&str) -> bool) -> Option<u64> {
        let (sym, _) = self.symbols.iter().find(|(_, name)| {
            let name = addr2line::demangle_auto((*name).into(), None);
            pred(&name)
        })?;
        self.segments
            .iter()
            .find_map(|g| g.offset_of(sym.address, 1))
    }

    /// [`Self::function_offset`], remembered under `key` (one predicate
    /// per key): the scan demangles every name (~90 ms for a 142 MB Rust
    /// binary), and each process of the binary asks again at its probe
    /// placement, on the thread that must keep up with execs.
    pub fn function_offset_memo(
        &self,
        key: &'static str,
        pred: impl Fn(&str) -> bool,
    ) -> Option<u64> {
        if let Some(&known) = lock(&self.offsets_found).get(key) {
            return known;
        }
        let found = self.function_offset(pred);
        // The scan read every name in the mapped symbol table (10 MB of a
        // 142 MB Rust binary): pages a tracer that keeps the module does
        // not need resident.
        release_pages(&self.map);
        lock(&self.offsets_found).insert(key, found);
        found
    }

    /// The first `len` bytes of the function named `name` (its symbol's
    /// exact name, not demangled), from the mapped file.
    pub fn function_bytes(&self, name: &str, len: usize) -> Option<&[u8]> {
        let (sym, _) = self.symbols.iter().find(|&(_, n)| n == name)?;
        self.read_vaddr(sym.address, len)
    }

    /// The module's call frame information (parsed on first use).
    pub fn cfi(&self) -> Option<&crate::unwind::cfi::Cfi> {
        self.cfi
            .get_or_init(|| {
                object::File::parse(&**self.map)
                    .ok()
                    .and_then(|obj| crate::unwind::cfi::Cfi::parse(&obj))
            })
            .as_ref()
    }

    /// addr2line's frames at `probe` from the context of the unit holding
    /// it; None when no unit is known to hold it or only the whole file's
    /// context can answer.
    fn frames_from_unit(&self, probe: u64) -> Option<Vec<SourceLocation>> {
        let file = self.dwarf_file()?;
        let unit = file.unit_at(probe)?;
        let mut contexts = lock(&self.unit_contexts);
        if !contexts.by_unit.contains_key(&unit) {
            // Many lookups across a binary whose units refer into each
            // other (a bulk `symbolize` of a Rust binary): each context
            // would parse the same shared units again; past a few, the
            // whole file's context costs less (5,789 addresses of a 71 MB
            // Rust binary: 0.40 s with it alone, 0.54 s by units).
            if contexts.linked >= LINKED_CONTEXTS {
                // Theirs are the whole file's units too: given back.
                if !contexts.by_unit.is_empty() {
                    contexts.by_unit.clear();
                }
                return None;
            }
            if contexts.by_unit.len() >= UNIT_CONTEXTS {
                contexts.by_unit.clear();
            }
            let dwarf = file.unit_dwarf(unit);
            if dwarf.as_ref().is_some_and(|&(_, units)| units > 1) {
                contexts.linked += 1;
            }
            let context = dwarf.and_then(|(dwarf, _)| addr2line::Context::from_dwarf(dwarf).ok());
            contexts.by_unit.insert(unit, context);
        }
        frames_at(
            contexts.by_unit.get(&unit)?.as_ref()?,
            probe,
            &self.demangled,
        )
    }

    /// addr2line's frames at `probe` from the whole file's context.
    fn frames_from_file(&self, probe: u64) -> Option<Vec<SourceLocation>> {
        let dwarf = lock(self.dwarf()?);
        frames_at(&dwarf, probe, &self.demangled)
    }

    /// Opens what the first crash through this module would otherwise
    /// wait for: its CFI index, its DWARF sections (decompressed) with the
    /// index of units by address, and the units of the functions most
    /// crash stacks pass through ([`WARM_FUNCTIONS`]). Other units are
    /// parsed on their first lookup (well under a millisecond each for
    /// libc's): parsing every unit ahead held ~30 MiB more for libc alone,
    /// for code few crashes pass through. Meant for idle time.
    pub fn warm(&self) {
        // A Go binary answers from `.gopclntab` (symbols, lines, inlining)
        // and unwinds with its pcsp tables: its DWARF and CFI only serve
        // cgo's C code, opened on the first frame there. Warming them held
        // ~1.6 MB a binary (Go compresses its DWARF): 10 Go programs under
        // one daemon, 41 → 60 MB.
        if self.gopclntab.is_some() {
            return;
        }
        // The CFI index first: every native crash unwinds through it.
        let _ = self.cfi();
        let Some(file) = self.dwarf_file() else {
            return;
        };
        // Only functions `.debug_aranges` lists a unit for: one it does not
        // (`_start` of a Rust or C++ binary: crt1.o has no DWARF) has a
        // lookup read the root of every unit it leaves out, to find
        // nothing (the pages touched took a 142 MB Rust binary's peak from
        // 41 to 74 MB; before that index, the whole file's context: 11 MB
        // of heap, heaptrack).
        for (symbol, _) in self
            .symbols
            .iter()
            .filter(|(_, name)| WARM_FUNCTIONS.contains(name))
            .filter(|(s, _)| file.listed_unit_at(s.address).is_some())
        {
            let _ = self.lookup(symbol.address, PcKind::Exact);
        }
        // The unit index gdb-style lines and tail calls read from.
        let _ = self.dwarf_units();
        // The pages read for the indexes (aranges, every unit's header,
        // the CFI): what a lookup needs again faults back in.
        release_pages(&self.map);
    }

    /// `len` bytes at ELF address `vaddr`, from the file (read-only data
    /// such as string literals); None outside the file's loaded segments.
    pub fn read_vaddr(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let at = self
            .segments
            .iter()
            .find_map(|s| s.offset_of(vaddr, len as u64))?;
        let at = usize::try_from(at).ok()?;
        self.map.get(at..at.checked_add(len)?)
    }

    /// Up to `max` bytes at ELF address `vaddr`, as far as its segment's
    /// file bytes go.
    pub fn read_vaddr_upto(&self, vaddr: u64, max: usize) -> Option<&[u8]> {
        let available = self.segments.iter().find_map(|s| {
            s.offset_of(vaddr, 1)?;
            s.vaddr.checked_add(s.file_size)?.checked_sub(vaddr)
        })?;
        let len = usize::try_from(available).map_or(max, |a| a.min(max));
        self.read_vaddr(vaddr, len)
    }

    /// The mapping the kernel made of this program's code when it put its
    /// lowest executable segment at runtime address `start_code` (what
    /// `mm->start_code` holds after exec): (start, end, file offset), page
    /// aligned, as /proc/PID/maps would list it.
    pub fn code_mapping(&self, start_code: u64, end_code: u64) -> Option<(u64, u64, u64)> {
        const PAGE: u64 = 4096;
        let seg = self
            .segments
            .iter()
            .filter(|s| s.exec)
            .min_by_key(|s| s.vaddr)?;
        start_code.checked_sub(seg.vaddr)?;
        let start = start_code & !(PAGE - 1);
        let end = end_code.max(start + 1).div_ceil(PAGE).checked_mul(PAGE)?;
        Some((start, end, seg.file_offset & !(PAGE - 1)))
    }

    /// Its interpreter (ld.so) and the libraries ld.so will load for it
    /// (DT_NEEDED), found as ld.so finds them: its RUNPATH (`$ORIGIN` is
    /// the directory of `path`), then the system's library directories.
    /// Missing ones are left out. (Their own dependencies are not followed.)
    pub fn needed_paths(&self, path: &Path) -> Vec<std::path::PathBuf> {
        const SYSTEM: [&str; 4] = [
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib",
        ];
        let origin = path.parent().map(|p| p.to_string_lossy().into_owned());
        let dirs: Vec<String> = self
            .runpath
            .iter()
            .flat_map(|r| r.split(':'))
            .map(|d| match &origin {
                Some(o) => d.replace("$ORIGIN", o).replace("${ORIGIN}", o),
                None => d.to_owned(),
            })
            .chain(SYSTEM.iter().map(|s| (*s).to_owned()))
            .collect();
        let interp = self
            .interp
            .as_ref()
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_file());
        interp
            .into_iter()
            .chain(self.needed.iter().filter_map(|lib| {
                if lib.contains('/') {
                    let p = std::path::PathBuf::from(lib);
                    return p.is_file().then_some(p);
                }
                dirs.iter()
                    .map(|d| Path::new(d).join(lib))
                    .find(|p| p.is_file())
            }))
            .collect()
    }

    /// ELF address of the dynamic section (where ld.so's `l_ld` points,
    /// less the load bias).
    pub fn dynamic_vaddr(&self) -> Option<u64> {
        self.dynamic_vaddr
    }

    /// The executable segments: (file offset, ELF address, size).
    pub fn exec_segments(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.segments
            .iter()
            .filter(|s| s.exec)
            .map(|s| (s.file_offset, s.vaddr, s.file_size))
    }

    /// The address in the ELF's own address space (what DWARF and symbols
    /// use) of the byte at `file_offset`.
    pub fn file_offset_to_vaddr(&self, file_offset: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| s.vaddr_of(file_offset))
    }

    /// The file offset of the byte at ELF address `vaddr` (uprobes are
    /// placed by file offset).
    pub fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| s.offset_of(vaddr, 1))
    }

    /// The binary's SystemTap SDT probes (`.note.stapsdt`), if it has any.
    pub fn usdt_probes(&self) -> Vec<crate::probes::usdt::Usdt> {
        let Ok(obj) = object::File::parse(&**self.map) else {
            return Vec::new();
        };
        let Some(notes) = obj.section_by_name(".note.stapsdt") else {
            return Vec::new();
        };
        let base = obj.section_by_name(".stapsdt.base").map(|s| s.address());
        notes
            .data()
            .map(|data| crate::probes::usdt::parse_notes(data, base))
            .unwrap_or_default()
    }

    /// As [`Self::lookup`], remembering the answer: for stacks, whose
    /// addresses repeat (a batch of distinct addresses, `crashtrace
    /// symbolize`, calls `lookup`).
    pub fn lookup_cached(&self, vaddr: u64, kind: PcKind) -> Vec<SourceLocation> {
        /// Answers kept per module at most (a few hundred KiB).
        const RECENT_MAX: usize = 4096;
        let probe = probe_address(vaddr, kind);
        if let Some(hit) = lock(&self.recent).get(&probe) {
            return hit.clone();
        }
        let found = self.lookup(vaddr, kind);
        let mut recent = lock(&self.recent);
        if recent.len() >= RECENT_MAX {
            recent.clear();
        }
        recent.insert(probe, found.clone());
        found
    }

    /// Gives back the pages of the file's mapping read so far (to open it:
    /// headers, the symbol table, 12 MB of a 142 MB Rust binary): what
    /// was needed was copied out or is read again when needed, so for a
    /// tracer that keeps the module the pages only count against its RSS.
    /// (Not for a one-shot command: it reads them again at once.)
    pub fn release_pages(&self) {
        release_pages(&self.map);
        if let Some(table) = &self.gopclntab {
            release_pages(table.data());
        }
    }

    /// Whether lookups on several threads at once run in parallel: Go code
    /// answered from `.gopclntab` takes no lock (measured: 81,470 addresses
    /// of cmd/go in 0.078 s on two threads, 0.107 s on one), while DWARF
    /// lookups share one unit cache behind a lock and only slow each other
    /// down (5,760 addresses of a Rust binary: 0.42 s on one thread, 0.52 s
    /// on two).
    pub fn parallel_lookups(&self) -> bool {
        self.gopclntab.is_some()
    }

    /// The DWARF unit holding `vaddr` (its offset), for a module whose
    /// lookups parse DWARF: lookups in one unit share what it parsed (its
    /// lines, functions, statement rows), so a bulk symbolization keeps a
    /// unit's addresses on one thread. None for Go code and outside units.
    pub fn unit_of(&self, vaddr: u64) -> Option<usize> {
        if self.parallel_lookups() {
            return None;
        }
        self.dwarf_file()?
            .unit_at(probe_address(vaddr, PcKind::Exact))
    }

    /// Source locations for `vaddr`, innermost (most inlined) first; the last
    /// one is the physical function. Empty when nothing is known.
    pub fn lookup(&self, vaddr: u64, kind: PcKind) -> Vec<SourceLocation> {
        let probe = probe_address(vaddr, kind);
        // Go code: Go's own table, the runtime's truth (DWARF of cgo's
        // rewritten files can disagree with what the runtime prints); C
        // code of a cgo binary is not in it and goes on to DWARF.
        if let Some(table) = self.gopclntab.as_ref() {
            let found: Vec<SourceLocation> = table
                .locations(probe)
                .into_iter()
                .map(|l| SourceLocation {
                    function: Some(l.function),
                    file: l.file,
                    line: l.line,
                })
                .collect();
            if !found.is_empty() || self.dwarf_path.is_none() {
                return found;
            }
        }
        // No code at the last address: addr2line looks up [pc, pc+1).
        // No unit holds code there (`_start`, libgcc's objects): only the
        // symbol tables can name it, below.
        let found = (probe != u64::MAX && !self.dwarf_file().is_some_and(|f| f.no_unit_at(probe)))
            .then(|| {
                self.frames_from_unit(probe)
                    .filter(|frames| !frames.is_empty())
                    .or_else(|| self.frames_from_file(probe))
            })
            .flatten();
        let answered = found.is_some();
        let mut out = found.unwrap_or_default();
        // Several line rows can start at one address (a function's first
        // instruction is often also its inlined callee's first line).
        // addr2line keeps the last row; gdb the last that is a statement
        // (is_stmt). Follow gdb, the ground truth for native code. (Go's
        // tables follow its own rules: left alone.)
        if answered
            && !self.is_go
            && let Some(innermost) = out.first_mut()
            && let Some((file, line)) = self.stmt_row(probe)
        {
            innermost.file = Some(file);
            innermost.line = Some(line);
        }
        // GCC gives members of types local to a function (a lambda's
        // std::function manager, say) no linkage name: DWARF names them
        // bare ("_M_manager"). The symbol table has the qualified name, as
        // gdb shows it: take it for the physical function when it is that
        // name's qualified form.
        if let Some(last) = out.last_mut()
            && let Some(bare) = last.function.as_deref()
            && !bare.contains("::")
            && let Some(sym) = self.symbol_at(probe)
        {
            let qualified = addr2line::demangle_auto(sym.into(), None);
            if qualified.contains(&format!("::{bare}("))
                || qualified.ends_with(&format!("::{bare}"))
            {
                last.function = Some(qualified.into_owned());
            }
        }
        if !self.is_go {
            for l in &mut out {
                if let Some(file) = &mut l.file
                    && let Some(named) = gdb_file_name(file)
                {
                    *file = named.to_owned();
                }
            }
        }
        // No DWARF for this address (or its function has no name in DWARF):
        // the symbol tables still name the physical function.
        let physical_unnamed = out.last().is_none_or(|l| l.function.is_none());
        if physical_unnamed && let Some(name) = self.symbol_at(probe) {
            let name = addr2line::demangle_auto(name.into(), None).into_owned();
            match out.last_mut() {
                Some(last) => last.function = Some(name),
                None => out.push(SourceLocation {
                    function: Some(name),
                    ..Default::default()
                }),
            }
        }
        out
    }

    /// Start of the symbol holding `vaddr` (see [`Self::symbol_holding`]).
    fn symbol_entry(&self, vaddr: u64) -> Option<u64> {
        self.symbol_holding(vaddr).map(|s| s.address)
    }

    /// The name of the symbol holding `vaddr`.
    fn symbol_at(&self, vaddr: u64) -> Option<&str> {
        self.symbol_holding(vaddr).map(|s| self.symbols.name(s))
    }

    /// The symbol whose [address, address + size) holds `vaddr`; never the
    /// nearest preceding one (that would be a guess).
    fn symbol_holding(&self, vaddr: u64) -> Option<&Symbol> {
        let idx = self.symbols.list.partition_point(|s| s.address <= vaddr);
        self.symbols.list[..idx]
            .iter()
            .rev()
            .take(8) // a few overlapping symbols (aliases of different sizes)
            // address <= vaddr here; no overflow on a hostile size.
            .find(|s| vaddr - s.address < s.size)
    }
}

impl crate::unwind::UnwindInfo for ElfModule {
    fn cfi(&self) -> Option<&crate::unwind::cfi::Cfi> {
        ElfModule::cfi(self)
    }

    fn is_sigreturn(&self, vaddr: u64) -> bool {
        // x86-64 Linux's signal return trampoline (glibc's __restore_rt, a
        // local symbol gone from stripped libraries): `mov $15, %rax;
        // syscall` — gdb recognises it by these bytes too.
        const RT_SIGRETURN: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05];
        self.segments
            .iter()
            .filter(|s| s.exec)
            .find_map(|s| s.offset_of(vaddr, RT_SIGRETURN.len() as u64))
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| self.map.get(off..off.checked_add(RT_SIGRETURN.len())?))
            .is_some_and(|code| code == RT_SIGRETURN)
    }

    fn go_frame(&self, vaddr: u64) -> Option<crate::unwind::GoFrame> {
        use crate::unwind::GoFrame;
        let table = self.gopclntab.as_ref()?;
        let f = table.find(vaddr)?;
        // mcall switched to the thread's system stack for good (its fn
        // never returns): the runtime's traceback of that stack ends here;
        // the goroutine above is parked, not running on this thread.
        if f.flag & gosym::FUNC_FLAG_TOP_FRAME != 0 || f.name == "runtime.mcall" {
            return Some(GoFrame::Top);
        }
        if f.flag & gosym::FUNC_FLAG_SP_WRITE != 0 {
            return Some(GoFrame::SpWrite);
        }
        let sp_delta = u64::try_from(table.sp_delta(&f, vaddr)?).ok()?;
        Some(GoFrame::Sized { sp_delta })
    }
}

/// A lock that a panic elsewhere (a bug) does not make unusable: the
/// guarded caches are rebuilt on demand, never left half-written.
/// addr2line contexts of single units, by unit offset.
/// Contexts of single units (with the units they refer into), by unit
/// offset; how many of those opened held more than their own unit.
#[derive(Default)]
struct UnitContexts {
    by_unit: std::collections::HashMap<usize, Option<addr2line::Context<SharedReader>>>,
    linked: usize,
}

/// Contexts of units that refer into others opened per module before its
/// lookups go to the whole file's context (a crash stack passes through
/// ~10 units).
const LINKED_CONTEXTS: usize = 16;

/// Single-unit contexts kept per module (a crash loop's stacks pass
/// through far fewer; libc has 2,063 units).
const UNIT_CONTEXTS: usize = 256;

/// addr2line's frames at `probe`, innermost first; None when the lookup
/// fails.
fn frames_at(
    context: &addr2line::Context<SharedReader>,
    probe: u64,
    demangled: &Mutex<Demangled>,
) -> Option<Vec<SourceLocation>> {
    let mut frames = context.find_frames(probe).skip_all_loads().ok()?;
    let mut out = Vec::new();
    while let Ok(Some(frame)) = frames.next() {
        let function = frame.function.as_ref().and_then(|f| {
            let raw = f.raw_name().ok()?;
            let mut cache = lock(demangled);
            if let Some(name) = cache.get(&*raw) {
                return Some(name.to_string());
            }
            let name = addr2line::demangle_auto(raw.clone(), f.language).into_owned();
            if cache.len() >= DEMANGLED_NAMES {
                cache.clear();
            }
            cache.insert(raw.into(), name.as_str().into());
            Some(name)
        });
        let (file, line) = frame
            .location
            .map(|l| (l.file.map(str::to_owned), l.line))
            .unwrap_or((None, None));
        out.push(SourceLocation {
            function,
            file,
            line,
        });
    }
    Some(out)
}

/// Demangled function names by their name in DWARF: the frames of many
/// addresses name the same functions (inlined `std::` helpers above all),
/// and demangling them again was a tenth of symbolizing a large C++
/// program's every 997th byte (perf). Bounded by [`DEMANGLED_NAMES`].
type Demangled = HashMap<Box<str>, Box<str>>;

/// Names kept in a module's [`Demangled`] before it is emptied.
const DEMANGLED_NAMES: usize = 1 << 16;

/// Functions whose units [`ElfModule::warm`] parses ahead: where crash
/// stacks of C and C++ programs start and end (program start, abort,
/// assertions, fortify and stack-protector failures, raise and kill, C++'s
/// terminate and throw).
const WARM_FUNCTIONS: &[&str] = &[
    "_start",
    "main",
    "__libc_start_call_main",
    "__libc_start_main",
    "__libc_start_main_impl",
    "abort",
    "raise",
    "__pthread_kill_implementation",
    "__pthread_kill_internal",
    "kill",
    "__assert_fail",
    "__assert_fail_base",
    "__libc_message",
    "__fortify_fail",
    "__stack_chk_fail",
    "__chk_fail",
    "_ZSt9terminatev",
    "__cxa_throw",
    "_ZN10__cxxabiv111__terminateEPFvvE",
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// DT_NEEDED names and DT_RUNPATH/DT_RPATH entries of a dynamic ELF file.
fn dynamic_entries(obj: &object::File<'_>) -> (Vec<String>, Vec<String>) {
    use object::read::elf::{Dyn as _, FileHeader as _};
    let object::File::Elf64(elf) = obj else {
        return (Vec::new(), Vec::new());
    };
    let endian = elf.endian();
    let data = elf.data();
    let sections = match elf.elf_header().sections(endian, data) {
        Ok(s) => s,
        Err(_) => return (Vec::new(), Vec::new()),
    };
    let Ok(Some((dyns, link))) = sections.dynamic(endian, data) else {
        return (Vec::new(), Vec::new());
    };
    let Ok(strings) = sections.strings(endian, data, link) else {
        return (Vec::new(), Vec::new());
    };
    let text = |d: &object::elf::Dyn64<object::Endianness>| {
        let at = u32::try_from(d.d_val(endian)).ok()?;
        let bytes = strings.get(at).ok()?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    };
    let (mut needed, mut runpath) = (Vec::new(), Vec::new());
    for d in dyns {
        let tag = d.d_tag(endian);
        if tag == object::elf::DT_NEEDED {
            needed.extend(text(d));
        } else if tag == object::elf::DT_RUNPATH || tag == object::elf::DT_RPATH {
            runpath.extend(text(d));
        }
    }
    (needed, runpath)
}

/// The GNU build id, or the Go toolchain's (Go links internally without a
/// GNU note): `gnu:`/`go:` prefixed so the two never compare equal.
fn build_id(obj: &object::File<'_>) -> Option<Vec<u8>> {
    if let Ok(Some(id)) = obj.build_id()
        && !id.is_empty()
    {
        return Some([b"gnu:".as_slice(), id].concat());
    }
    // A note: namesz, descsz, type, "Go\0\0", then the id string.
    let note = obj.section_by_name(".note.go.buildid")?.data().ok()?;
    let desc_len = u32::from_le_bytes(note.get(4..8)?.try_into().ok()?) as usize;
    let desc = note.get(16..16 + desc_len)?;
    (!desc.is_empty()).then(|| [b"go:".as_slice(), desc].concat())
}

/// An ELF file's DWARF sections (decompressed where needed; absent ones
/// empty), for gimli.
pub fn dwarf_sections<'a>(
    obj: &'a object::File<'a>,
) -> Result<gimli::DwarfSections<std::borrow::Cow<'a, [u8]>>, gimli::Error> {
    gimli::DwarfSections::load(|id: gimli::SectionId| {
        Ok(obj
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(std::borrow::Cow::Borrowed(&[])))
    })
}

/// The rows at one address: (address, the last statement row's (file
/// index, line), whether the last row is a statement, the last row's
/// (file index, line)).
type RowsAt = (u64, Option<(u64, u64)>, bool, (u64, u64));

/// See [`ElfModule::stmt_row`]: one unit's rows where gdb's line differs
/// from addr2line's, by start address, and the unit's file names they
/// use. File names are built once per file, not per row: a String per row
/// (with its directory's string read again each time) was a quarter of
/// symbolizing a large C++ program's every 997th byte (perf).
#[derive(Default)]
struct UnitStmtRows {
    rows: Vec<StmtRow>,
    files: Vec<Arc<str>>,
}

struct StmtRow {
    start: u64,
    end: u64,
    /// Index into [`UnitStmtRows::files`].
    file: u32,
    line: u32,
}

impl UnitStmtRows {
    /// gdb's (file, line) at `probe`, where it differs from addr2line's.
    fn at(&self, probe: u64) -> Option<(String, u32)> {
        // The last row starting at or before `probe` (of rows starting at
        // one address, the one read last).
        let i = self.rows.partition_point(|r| r.start <= probe);
        let row = self.rows.get(i.checked_sub(1)?)?;
        let file = self.files.get(row.file as usize)?;
        (probe < row.end).then(|| (file.to_string(), row.line))
    }
}

/// One unit's line program: the rows where gdb's line differs.
fn stmt_rows_of(file: &DwarfFile, unit_offset: usize) -> Result<UnitStmtRows> {
    let dwarf = file.dwarf();
    let unit = file.unit(&dwarf, unit_offset)?;
    let mut out = UnitStmtRows::default();
    let Some(program) = unit.line_program.clone() else {
        return Ok(out);
    };
    // A file index of the line program → its index in `out.files`.
    let mut file_slots: HashMap<u64, Option<u32>> = HashMap::new();
    let file_name = |header: &gimli::LineProgramHeader<_>, file_index: u64| -> Option<String> {
        let f = header.file(file_index)?;
        let mut name = String::new();
        if let Some(dir) = f.directory(header)
            && let Ok(d) = dwarf.attr_string(&unit, dir)
        {
            name.push_str(&d.to_string_lossy());
            name.push('/');
        }
        if let Ok(n) = dwarf.attr_string(&unit, f.path_name()) {
            let n = n.to_string_lossy();
            if n.starts_with('/') {
                name.clear();
            }
            name.push_str(&n);
        }
        if !name.starts_with('/')
            && let Some(dir) = &unit.comp_dir
        {
            name = format!("{}/{name}", dir.to_string_lossy());
        }
        Some(name)
    };
    let mut rows = program.rows();
    let mut at: Option<RowsAt> = None;
    // gdb's (file index, line) at the previous address of the sequence.
    let mut previous: Option<(u64, u64)> = None;
    // Where gdb's answer differs from the last row's, records it; returns
    // gdb's answer at this address.
    let mut flush = |at: Option<RowsAt>,
                     previous: Option<(u64, u64)>,
                     end: u64,
                     header: &gimli::LineProgramHeader<_>|
     -> Option<(u64, u64)> {
        let (addr, stmt, last_is_stmt, last) = at?;
        let answer = match (stmt, last_is_stmt) {
            // The last row is not a statement: gdb takes the last
            // statement row at the address.
            (Some(stmt), false) => stmt,
            // Only line-0 rows that are not statements (code the
            // compiler attributes to no line): gdb ignores them and
            // the previous address's line goes on.
            (None, false) if last.1 == 0 => previous?,
            _ => return (last.1 != 0).then_some(last),
        };
        let (file_index, line) = answer;
        let slot = *file_slots.entry(file_index).or_insert_with(|| {
            let name = file_name(header, file_index)?;
            out.files.push(name.into());
            u32::try_from(out.files.len() - 1).ok()
        });
        if let Some(file) = slot {
            out.rows.push(StmtRow {
                start: addr,
                end,
                file,
                line: line as u32,
            });
        }
        Some(answer)
    };
    while let Some((header, row)) = rows.next_row()? {
        let addr = row.address();
        let line = row.line().map_or(0, |l| l.get());
        if at.is_some_and(|(a, _, _, _)| a != addr) || row.end_sequence() {
            previous = flush(at.take(), previous, addr, header);
        }
        if row.end_sequence() {
            previous = None;
            continue;
        }
        let entry = at.get_or_insert((addr, None, true, (0, 0)));
        if row.is_stmt() && line != 0 {
            entry.1 = Some((row.file_index(), line));
        }
        entry.2 = row.is_stmt();
        entry.3 = (row.file_index(), line);
    }
    drop(flush);
    // Stable: of rows starting at one address, the last read stays last.
    out.rows.sort_by_key(|r| r.start);
    out.rows.shrink_to_fit();
    Ok(out)
}

fn has_dwarf(obj: &object::File<'_>) -> bool {
    obj.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0)
}

/// Defined functions with a size (a symbol without one cannot bound a lookup).
fn text_symbols<'a>(obj: &'a object::File<'_>) -> impl Iterator<Item = (u64, u64, &'a str)> {
    obj.symbols()
        .chain(obj.dynamic_symbols())
        .filter(is_text_symbol)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?)))
}

/// A defined function with a size. No code sits at the last address
/// (addr2line looks up [pc, pc+1)).
fn is_text_symbol(s: &object::Symbol<'_, '_>) -> bool {
    s.kind() == SymbolKind::Text && s.is_definition() && s.size() > 0 && s.address() != u64::MAX
}

/// Drops a file mapping's pages from our resident set: they stay in the
/// page cache, and what is read again faults back in from there.
pub(crate) fn release_pages(map: &memmap2::Mmap) {
    // SAFETY: a read-only private file mapping has no pages of its own to
    // lose: MADV_DONTNEED only unmaps pages the file backs.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}

/// Adds the text symbols of the (separate debug) file at `path`.
fn add_symbols_of_file(symbols: &mut Symbols, path: &Path) {
    let Ok(file) = File::open(path) else {
        return;
    };
    // SAFETY: read-only mapping of a debug file, dropped before returning.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return;
    };
    if let Ok(obj) = object::File::parse(&*map) {
        symbols.add(&obj);
    }
}

/// Where gdb looks for the debug info of a stripped binary: by build id under
/// /usr/lib/debug/.build-id, then by `.gnu_debuglink` name next to the
/// binary, in its .debug/ directory and under /usr/lib/debug.
fn separate_debug_file(obj: &object::File<'_>, binary: &Path) -> Option<std::path::PathBuf> {
    const DEBUG_ROOT: &str = "/usr/lib/debug";
    if let Ok(Some(id)) = obj.build_id()
        && id.len() >= 2
    {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let p = Path::new(DEBUG_ROOT)
            .join(".build-id")
            .join(&hex[..2])
            .join(format!("{}.debug", &hex[2..]));
        if p.is_file() {
            return Some(p);
        }
    }
    if let Ok(Some((name, _crc))) = obj.gnu_debuglink() {
        let name = std::str::from_utf8(name).ok()?;
        let dir = binary.parent()?;
        let candidates = [
            dir.join(name),
            dir.join(".debug").join(name),
            Path::new(DEBUG_ROOT)
                .join(dir.strip_prefix("/").unwrap_or(dir))
                .join(name),
        ];
        return candidates.into_iter().find(|p| p.is_file() && p != binary);
    }
    None
}

/// A source file as gdb names it, where that differs from addr2line's
/// join of the unit's directory and the line table's name. Debian builds
/// with relative, prefix-mapped compilation directories ("./nptl") and
/// names relative to the source root ("./nptl/pthread_create.c",
/// "../sysdeps/…/clone3.S"): gdb shows the line table's name for a file
/// of the unit's own directory, addr2line prefixes the directory again
/// ("./nptl/./nptl/pthread_create.c", "./misc/../sysdeps/…").
fn gdb_file_name(joined: &str) -> Option<&str> {
    let rest = joined.strip_prefix("./")?;
    let (dir, name) = rest.split_once('/')?;
    (!dir.is_empty()
        && !dir.starts_with('.')
        && (name.starts_with("./") || name.starts_with("../")))
    .then_some(name)
}

/// The address whose line answers for `vaddr`: a return address belongs to
/// the call before it.
fn probe_address(vaddr: u64, kind: PcKind) -> u64 {
    match kind {
        PcKind::Exact | PcKind::SigReturn => vaddr,
        PcKind::ReturnAddress | PcKind::TailCall | PcKind::Wrapper => vaddr.saturating_sub(1),
    }
}

#[cfg(test)]
mod gdb_file_name_tests {
    use super::gdb_file_name;

    #[test]
    fn relative_unit_directories_are_not_repeated() {
        assert_eq!(
            gdb_file_name("./nptl/./nptl/pthread_create.c"),
            Some("./nptl/pthread_create.c")
        );
        assert_eq!(
            gdb_file_name("./misc/../sysdeps/unix/sysv/linux/x86_64/clone3.S"),
            Some("../sysdeps/unix/sysv/linux/x86_64/clone3.S")
        );
        assert_eq!(
            gdb_file_name("./csu/../sysdeps/nptl/libc_start_call_main.h"),
            Some("../sysdeps/nptl/libc_start_call_main.h")
        );
        // Already as gdb prints them.
        assert_eq!(gdb_file_name("/work/src/main.c"), None);
        assert_eq!(gdb_file_name("./nptl/pthread_create.c"), None);
        assert_eq!(gdb_file_name("src/./main.c"), None);
    }
}

#[cfg(test)]
mod unit_context_tests {
    /// A context of one unit answers as the whole file's does: every frame
    /// (function, file, line, inlined ones included) at the start of and
    /// inside every `step`th function of `path`. Returns (addresses
    /// compared, answered by a unit's own context).
    fn unit_contexts_answer_as_the_whole_file(
        path: &std::path::Path,
        step: usize,
    ) -> (usize, usize) {
        let module = super::ElfModule::open(path, "module").expect("open");
        let (mut compared, mut by_unit) = (0, 0);
        for (symbol, name) in module.symbols.iter().step_by(step) {
            for probe in [symbol.address, symbol.address + symbol.size / 2] {
                let whole = module.frames_from_file(probe).expect("DWARF");
                compared += 1;
                // Compare every unit's context, past the bulk limit too.
                super::lock(&module.unit_contexts).linked = 0;
                match module.frames_from_unit(probe) {
                    Some(unit) => {
                        by_unit += 1;
                        assert_eq!(unit, whole, "frames at {probe:#x} ({name})");
                    }
                    // libgcc's objects linked in (__divtf3 …) have no DWARF.
                    None => assert!(
                        whole.is_empty()
                            || module.dwarf_file().and_then(|f| f.unit_at(probe)).is_some(),
                        "{probe:#x} ({name}): no unit, but the file says {whole:?}"
                    ),
                }
            }
        }
        (compared, by_unit)
    }

    /// Debian's libc, whose DWARF comes from libc6-dbg's separate debug
    /// file (`xtask setup` installs it).
    #[test]
    fn one_units_context_answers_as_the_whole_files() {
        let path = std::path::Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
        let (compared, by_unit) = unit_contexts_answer_as_the_whole_file(path, 4);
        assert!(compared > 500, "only {compared} addresses compared");
        // Debian builds libc without LTO or dwz: every unit has a context
        // of its own (1,848 of 1,854 addresses; the rest have no DWARF).
        assert!(
            by_unit * 100 >= compared * 99,
            "{by_unit} of {compared} addresses answered by a unit's own context"
        );
    }

    /// A Rust binary: its units refer into each other (functions inlined
    /// from another codegen unit keep their abstract origin there), so a
    /// unit's context holds the units it reaches, at their own offsets.
    /// This test binary is one (~100,000 such references).
    #[test]
    fn a_rust_units_context_holds_the_units_it_refers_into() {
        let exe = std::env::current_exe().expect("test binary");
        let (compared, by_unit) = unit_contexts_answer_as_the_whole_file(&exe, 97);
        assert!(compared > 500, "only {compared} addresses compared");
        assert!(
            by_unit * 100 >= compared * 95,
            "{by_unit} of {compared} addresses answered by a unit's own context"
        );
    }

    /// An address no unit holds (`_start`: crt1.o has no DWARF) is named
    /// from the symbol table, without opening the whole file's context
    /// (which reads every unit to find nothing).
    #[test]
    fn an_address_in_no_unit_is_named_without_the_whole_files_context() {
        let exe = std::env::current_exe().expect("test binary");
        let module = super::ElfModule::open(&exe, "test binary").expect("open");
        let (start, _) = module
            .symbols
            .iter()
            .find(|(_, name)| *name == "_start")
            .expect("_start");
        let frames = module.lookup(start.address, super::PcKind::Exact);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0].function.as_deref(), Some("_start"));
        assert!(
            module.dwarf.get().is_none(),
            "the whole file's context was opened"
        );
        // A unit's address still answers from DWARF, with a line.
        let (sym, _) = module
            .symbols
            .iter()
            .find(|(s, _)| {
                module
                    .dwarf_file()
                    .is_some_and(|f| f.unit_at(s.address).is_some())
            })
            .expect("a function with DWARF");
        let frames = module.lookup(sym.address, super::PcKind::Exact);
        assert!(
            frames.first().is_some_and(|f| f.line.is_some()),
            "{frames:?}"
        );
    }
}

#[cfg(test)]
mod stmt_row_tests {
    use super::{StmtRow, UnitStmtRows};

    #[test]
    fn a_row_answers_from_its_start_up_to_its_end() {
        let rows = UnitStmtRows {
            // As stmt_rows_of leaves them: sorted by start, stably (the
            // second row at 0x20 was read after the first).
            rows: vec![
                StmtRow {
                    start: 0x10,
                    end: 0x18,
                    file: 0,
                    line: 7,
                },
                StmtRow {
                    start: 0x20,
                    end: 0x28,
                    file: 0,
                    line: 8,
                },
                StmtRow {
                    start: 0x20,
                    end: 0x30,
                    file: 1,
                    line: 9,
                },
            ],
            files: vec!["/src/a.cc".into(), "/src/b.h".into()],
        };
        assert_eq!(rows.at(0x0f), None);
        assert_eq!(rows.at(0x10), Some(("/src/a.cc".to_owned(), 7)));
        assert_eq!(rows.at(0x17), Some(("/src/a.cc".to_owned(), 7)));
        // Past a row's end: addr2line's answer stands.
        assert_eq!(rows.at(0x18), None);
        assert_eq!(rows.at(0x2c), Some(("/src/b.h".to_owned(), 9)));
        assert_eq!(rows.at(0x30), None);
        assert_eq!(UnitStmtRows::default().at(0x10), None);
    }
}

#[cfg(test)]
mod symbol_tests {
    use super::{NameAt, Symbol, Symbols};

    fn symbols(entries: &[(u64, u64, u32)]) -> Symbols {
        let mut s = Symbols::new(std::sync::Arc::new(
            memmap2::MmapMut::map_anon(1)
                .and_then(|m| m.make_read_only())
                .expect("an anonymous page"),
        ));
        for &(address, size, start) in entries {
            s.list.push(Symbol {
                address,
                size,
                name: NameAt::Copied { start, len: 0 },
                seq: 0,
            });
        }
        s
    }

    fn kept(s: &Symbols) -> Vec<(u64, u32)> {
        s.list
            .iter()
            .map(|sym| match sym.name {
                NameAt::Copied { start, .. } => (sym.address, start),
                _ => (sym.address, u32::MAX),
            })
            .collect()
    }

    /// One symbol per address: the largest alias, and among aliases of one
    /// size the first that came (as a stable sort keeps them: the symbol
    /// table's order, e.g. `__libc_malloc` before `malloc`).
    #[test]
    fn the_largest_then_the_first_alias_stays() {
        let mut s = symbols(&[
            (0x30, 8, 1),
            (0x10, 4, 2),
            (0x10, 16, 3), // larger: kept
            (0x20, 8, 4),  // first of the same size: kept
            (0x20, 8, 5),
            (0x10, 16, 6),
            (0x20, 8, 7),
        ]);
        s.finish();
        assert_eq!(kept(&s), vec![(0x10, 3), (0x20, 4), (0x30, 1)]);
        // Symbols added later (a debug file's) come after those kept.
        s.list.push(Symbol {
            address: 0x20,
            size: 8,
            name: NameAt::Copied { start: 8, len: 0 },
            seq: 0,
        });
        s.list.push(Symbol {
            address: 0x40,
            size: 8,
            name: NameAt::Copied { start: 9, len: 0 },
            seq: 0,
        });
        s.finish();
        assert_eq!(kept(&s), vec![(0x10, 3), (0x20, 4), (0x30, 1), (0x40, 9)]);
    }

    /// The same among thousands, where the sort is no longer an insertion
    /// sort: every address has 8 aliases of one size, scattered.
    #[test]
    fn the_first_alias_stays_among_thousands() {
        let n = 4096u32;
        let entries: Vec<(u64, u64, u32)> = (0..8 * n)
            .map(|i| (u64::from(i.wrapping_mul(2_654_435_761) % n) * 16, 8, i))
            .collect();
        let mut s = symbols(&entries);
        s.finish();
        let first: std::collections::BTreeMap<u64, u32> =
            entries.iter().rev().map(|&(a, _, i)| (a, i)).collect();
        assert_eq!(kept(&s), first.into_iter().collect::<Vec<_>>());
    }
}
