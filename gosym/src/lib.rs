//! Go's own symbol table, `.gopclntab`: which function a pc is in, its file
//! and line, and the calls inlined there, read exactly as the Go runtime's
//! traceback reads them. Every Go binary carries it, also when it was built
//! with `-ldflags="-s -w"` (no DWARF, no ELF symbol table), because the
//! runtime needs it to print its own stack traces.
//!
//! Supported: the table formats of Go 1.18–1.19 and 1.20+ (magic
//! `0xfffffff0` / `0xfffffff1`), 64-bit little-endian ELF. The table is
//! found through its section, or by its header's magic when section headers
//! are gone; the runtime's `moduledata` (found by its pointer to the table)
//! supplies what the table itself does not hold: the text base (Go 1.27
//! stopped storing it in the header), the base of funcdata (`go:func.*`,
//! where the inline trees live) and the base of type metadata.
//!
//! Everything read from the binary is bounds-checked: a corrupt table gives
//! `None` or an [`Error`], never a panic.

mod format;
mod locate;
mod pcvalue;

use std::ops::Deref;

pub use format::Format;

/// What can go wrong reading a Go binary's table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an ELF file: {0}")]
    Elf(#[from] object::Error),
    #[error("no .gopclntab (not a Go binary?)")]
    NoTable,
    #[error("unsupported .gopclntab magic {0:#x} (Go before 1.18?)")]
    Unsupported(u32),
    #[error("only 64-bit little-endian Go binaries are supported")]
    NotLe64,
    #[error("corrupt .gopclntab: {0}")]
    Corrupt(&'static str),
}

/// How the table was found (shown by `crashtrace probes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// The `.gopclntab` section.
    Section,
    /// Its header's magic, in a read-only segment (no section headers).
    Scan,
}

/// One function of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Func {
    /// ELF address of its first instruction.
    pub entry: u64,
    /// ELF address just past it (the next function's entry).
    pub end: u64,
    pub name: String,
    /// The runtime's `abi.FuncID` (wrappers, runtime entry points …).
    pub func_id: u8,
    /// The runtime's `abi.FuncFlag` bits ([`FUNC_FLAG_TOP_FRAME`] …).
    pub flag: u8,
    /// Offset of its `_func` record from the start of the table.
    off: usize,
}

/// One frame of a pc's answer: inlined calls first, the physical function
/// last, as the runtime's traceback prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
}

/// A Go binary's `.gopclntab`, over the file's bytes `D` (a `Vec<u8>`, a
/// memory map …).
pub struct Table<D> {
    data: D,
    format: Format,
    found: Found,
    /// File offset of the pcHeader and the table's length in the file.
    base: usize,
    size: usize,
    nfunc: usize,
    /// ELF address function entry offsets are relative to.
    text: u64,
    /// Offsets from `base`.
    funcnametab: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    /// The function table (`ftab` then the `_func` records).
    pclntab: usize,
    /// File offset of `go:func.*`, the base of funcdata offsets.
    gofunc: Option<usize>,
    /// ELF address of the runtime's type metadata (`runtime.types`).
    types: Option<u64>,
    min_lc: u64,
    /// Pc-value tables decoded by recent lookups.
    pc_cache: pcvalue::PcValueCache,
}

/// `abi.FuncFlagTopFrame`: the outermost frame of a stack (goexit,
/// mstart, rt0_go): a traceback ends there. Same bit since Go 1.17.
pub const FUNC_FLAG_TOP_FRAME: u8 = 1 << 0;
/// `abi.FuncFlagSPWrite`: the function writes SP in a way its pcsp table
/// cannot describe (stack switches): a traceback cannot go past it.
pub const FUNC_FLAG_SP_WRITE: u8 = 1 << 1;

const FUNCDATA_INL_TREE: u8 = 3;
const PCDATA_INL_TREE_INDEX: u32 = 2;
/// Inlined frames followed at most (the runtime itself has no limit, but a
/// cycle in a corrupt tree must end).
const MAX_INLINE_DEPTH: usize = 64;

impl<D: Deref<Target = [u8]>> Table<D> {
    /// Finds and checks the table in the ELF file `data`.
    pub fn parse(data: D) -> Result<Self, Error> {
        locate::table(data)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The file's bytes the table reads from (to advise a mapping's pages
    /// away once a burst of lookups is over).
    pub fn data(&self) -> &D {
        &self.data
    }

    pub fn found(&self) -> Found {
        self.found
    }

    /// ELF address of the runtime's type metadata (`runtime.types`), from
    /// moduledata: type names of panic values without a symbol table.
    pub fn types_base(&self) -> Option<u64> {
        self.types
    }

    /// Whether inline trees can be read (funcdata base found).
    pub fn has_inline_trees(&self) -> bool {
        self.gofunc.is_some()
    }

    /// Number of functions.
    pub fn func_count(&self) -> usize {
        self.nfunc
    }

    fn table(&self) -> &[u8] {
        // `locate` checked base + len against the file.
        &self.data[self.base..self.base + self.size]
    }

    fn u32_at(&self, off: usize) -> Option<u32> {
        let b = self.table().get(off..off.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    fn cstr_at(&self, off: usize) -> Option<&str> {
        let bytes = self.table().get(off..)?;
        let end = bytes.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&bytes[..end]).ok()
    }

    /// (entry offset from text, `_func` offset from the function table).
    fn ftab(&self, i: usize) -> Option<(u64, usize)> {
        let at = self.pclntab.checked_add(i.checked_mul(8)?)?;
        Some((
            u64::from(self.u32_at(at)?),
            usize::try_from(self.u32_at(at + 4)?).ok()?,
        ))
    }

    fn func(&self, i: usize) -> Option<Func> {
        let (entry_off, funcoff) = self.ftab(i)?;
        let (end_off, _) = self.ftab(i + 1)?;
        let off = self.pclntab.checked_add(funcoff)?;
        let name_off = self.u32_at(off + 4)? as i32;
        let name = self
            .cstr_at(
                self.funcnametab
                    .checked_add(usize::try_from(name_off).ok()?)?,
            )?
            .to_owned();
        Some(Func {
            entry: self.text.wrapping_add(entry_off),
            end: self.text.wrapping_add(end_off),
            name,
            func_id: *self.table().get(off + self.format.func_id_offset())?,
            flag: *self.table().get(off + self.format.func_flag_offset())?,
            off,
        })
    }

    /// Every function, in address order.
    pub fn functions(&self) -> impl Iterator<Item = Func> + '_ {
        (0..self.nfunc).filter_map(|i| self.func(i))
    }

    /// The function whose name is `name` (a linear scan).
    pub fn find_by_name(&self, name: &str) -> Option<Func> {
        self.functions_named(name).next()
    }

    /// The functions named `name`, in address order (an autogenerated ABI
    /// wrapper may share a name with the function it wraps). A linear scan
    /// that compares names in place: building every `Func` (a `String` a
    /// name) made finding the runtime's entry points at an exec cost ~2.5
    /// ms a name in the debug build, while an early panic's probes wait.
    pub fn functions_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Func> + 'a {
        (0..self.nfunc)
            .filter(move |&i| self.name_is(i, name.as_bytes()))
            .filter_map(|i| self.func(i))
    }

    /// Whether function `i`'s name is `name` (its bytes then a NUL).
    fn name_is(&self, i: usize, name: &[u8]) -> bool {
        let at = || -> Option<&[u8]> {
            let (_, funcoff) = self.ftab(i)?;
            let off = self.pclntab.checked_add(funcoff)?;
            let name_off = usize::try_from(self.u32_at(off + 4)? as i32).ok()?;
            let start = self.funcnametab.checked_add(name_off)?;
            self.table().get(start..start.checked_add(name.len() + 1)?)
        };
        at().is_some_and(|b| b[..name.len()] == *name && b[name.len()] == 0)
    }

    /// The function containing `pc` (an ELF address).
    pub fn find(&self, pc: u64) -> Option<Func> {
        let rel = pc.checked_sub(self.text)?;
        let (last, _) = self.ftab(self.nfunc)?;
        if self.nfunc == 0 || rel >= last || rel < self.ftab(0)?.0 {
            return None;
        }
        // The last entry starting at or before rel.
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.ftab(mid)?.0 <= rel {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.func(lo)
    }

    /// `_func` fields after entryOff/nameOff, by word index.
    fn field(&self, f: &Func, word: usize) -> Option<u32> {
        self.u32_at(f.off.checked_add(word * 4)?)
    }

    /// The value of the pc-value table at `table_off` (from pctab) for `pc`
    /// in `f`: the runtime's `pcvalue`.
    fn pcvalue(&self, f: &Func, table_off: u32, pc: u64) -> Option<i32> {
        if table_off == 0 {
            return None;
        }
        let pctab = self.table().get(self.pctab..)?;
        self.pc_cache
            .value(pctab, self.min_lc, table_off, f.entry, pc)
    }

    /// How far above the stack pointer `f`'s frame ends at `pc`, not
    /// counting the return address: the runtime's `funcspdelta`, from the
    /// pcsp table. At a call's return address, pass the address itself
    /// (the runtime does: a call never ends a Go function).
    pub fn sp_delta(&self, f: &Func, pc: u64) -> Option<i32> {
        let table = self.field(f, format::PCSP)?;
        self.pcvalue(f, table, pc)
    }

    /// The source position of `pc` in `f`'s tables (file and line of the
    /// innermost inlined body at that pc): the runtime's `funcline1`.
    fn file_line(&self, f: &Func, pc: u64) -> (Option<String>, Option<u32>) {
        let (pcfile, pcln, cu) = match (
            self.field(f, format::PCFILE),
            self.field(f, format::PCLN),
            self.field(f, format::CU_OFFSET),
        ) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => return (None, None),
        };
        let line = self
            .pcvalue(f, pcln, pc)
            .and_then(|l| u32::try_from(l).ok());
        let file = self.pcvalue(f, pcfile, pc).and_then(|fileno| {
            let idx = (cu as usize).checked_add(usize::try_from(fileno).ok()?)?;
            let off = self.u32_at(self.cutab.checked_add(idx.checked_mul(4)?)?)?;
            if off == u32::MAX {
                return None;
            }
            self.cstr_at(self.filetab.checked_add(off as usize)?)
                .map(str::to_owned)
        });
        (file, line)
    }

    fn npcdata(&self, f: &Func) -> Option<u32> {
        self.field(f, format::NPCDATA)
    }

    /// Offset (from pctab) of pc-data table `i` of `f`.
    fn pcdata_table(&self, f: &Func, i: u32) -> Option<u32> {
        if i >= self.npcdata(f)? {
            return None;
        }
        let at = f.off + self.format.func_size() + i as usize * 4;
        self.u32_at(at)
    }

    /// File offset of funcdata `i` of `f`.
    fn funcdata(&self, f: &Func, i: u8) -> Option<usize> {
        let nfuncdata = *self.table().get(f.off + self.format.func_size() - 1)?;
        if i >= nfuncdata {
            return None;
        }
        let at = f.off + self.format.func_size() + self.npcdata(f)? as usize * 4 + i as usize * 4;
        let off = self.u32_at(at)?;
        if off == u32::MAX {
            return None;
        }
        self.gofunc?.checked_add(off as usize)
    }

    /// One entry of `f`'s inline tree: (name, parentPc).
    fn inlined_call(&self, tree: usize, index: i32) -> Option<(&str, u32)> {
        let size = self.format.inlined_call_size();
        let at = tree.checked_add(usize::try_from(index).ok()?.checked_mul(size)?)?;
        let rec = self.data.get(at..at.checked_add(size)?)?;
        let word = |o: usize| -> Option<u32> {
            Some(u32::from_le_bytes(rec.get(o..o + 4)?.try_into().ok()?))
        };
        let (name_off, parent_pc) = self.format.inlined_call_fields();
        let name = self.cstr_at(self.funcnametab.checked_add(word(name_off)? as usize)?)?;
        Some((name, word(parent_pc)?))
    }

    /// Function, file and line for `pc` (an ELF address; for a return
    /// address pass `pc - 1`, as the runtime's traceback does), with the
    /// calls inlined at that pc first: the runtime's inlineUnwinder.
    pub fn locations(&self, pc: u64) -> Vec<Location> {
        let Some(mut f) = self.find(pc) else {
            return Vec::new();
        };
        let tree = self.funcdata(&f, FUNCDATA_INL_TREE);
        let index_table = self.pcdata_table(&f, PCDATA_INL_TREE_INDEX);
        let mut out = Vec::new();
        let mut at = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let index = match (tree, index_table) {
                (Some(_), Some(t)) => self.pcvalue(&f, t, at).unwrap_or(-1),
                _ => -1,
            };
            let (file, line) = self.file_line(&f, at);
            let inlined = tree.and_then(|t| (index >= 0).then(|| self.inlined_call(t, index))?);
            match inlined {
                Some((name, parent_pc)) => {
                    out.push(Location {
                        function: name.to_owned(),
                        file,
                        line,
                        inlined: true,
                    });
                    at = f.entry.wrapping_add(u64::from(parent_pc));
                }
                None => {
                    out.push(Location {
                        function: std::mem::take(&mut f.name),
                        file,
                        line,
                        inlined: false,
                    });
                    return out;
                }
            }
        }
        out
    }

    /// The funcID the runtime gives autogenerated wrappers in this binary's
    /// Go version: one more than `runtime.systemstack_switch`'s (the enum's
    /// last two entries in every supported version, while the value itself
    /// moves: 21 in 1.21, 22 in 1.24, 23 in 1.27).
    pub fn wrapper_func_id(&self) -> Option<u8> {
        self.find_by_name("runtime.systemstack_switch")
            .and_then(|f| f.func_id.checked_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_go_binary() {
        assert!(matches!(Table::parse(vec![0u8; 10]), Err(Error::Elf(_))));
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert!(matches!(Table::parse(me), Err(Error::NoTable)));
    }
}
