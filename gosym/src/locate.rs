//! Finding the table, and the runtime's `moduledata` that points at it, in
//! an ELF file: by section when the section headers are there, else by
//! the table header's magic; moduledata by its first word (the table's
//! address) followed by the function name table's.

use std::ops::Deref;

use object::{
    Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _, SegmentFlags,
};

use crate::{Error, Found, Table, format::Format};

struct Segment {
    vaddr: u64,
    offset: usize,
    size: usize,
    writable: bool,
    executable: bool,
}

fn segments(obj: &object::File<'_>) -> Vec<Segment> {
    obj.segments()
        .filter_map(|s| {
            let (offset, size) = s.file_range();
            let flags = match s.flags() {
                SegmentFlags::Elf { p_flags, .. } => p_flags.0,
                _ => 0,
            };
            Some(Segment {
                vaddr: s.address(),
                offset: usize::try_from(offset).ok()?,
                size: usize::try_from(size).ok()?,
                writable: flags & object::elf::PF_W.0 != 0,
                executable: flags & object::elf::PF_X.0 != 0,
            })
        })
        .collect()
}

fn vaddr_to_offset(segs: &[Segment], vaddr: u64) -> Option<usize> {
    segs.iter().find_map(|s| {
        let rel = vaddr.checked_sub(s.vaddr)?;
        let rel = usize::try_from(rel).ok()?;
        (rel < s.size).then(|| s.offset.checked_add(rel)).flatten()
    })
}

fn word(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The pcHeader fields we use: (format, minLC, nfunc, textStart,
/// funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset).
struct Header {
    format: Format,
    min_lc: u8,
    nfunc: usize,
    text_start: u64,
    funcnametab: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    pclntab: usize,
}

fn header(t: &[u8]) -> Result<Header, Error> {
    let magic = u32::from_le_bytes(
        t.get(0..4)
            .ok_or(Error::Corrupt("too short"))?
            .try_into()
            .map_err(|_| Error::Corrupt("too short"))?,
    );
    let format = Format::from_magic(magic).ok_or(Error::Unsupported(magic))?;
    if t.get(7) != Some(&8) {
        return Err(Error::NotLe64);
    }
    let w = |i: usize| word(t, 8 + i * 8).ok_or(Error::Corrupt("truncated header"));
    let off = |i: usize| -> Result<usize, Error> {
        let v = usize::try_from(w(i)?).map_err(|_| Error::Corrupt("offset"))?;
        if v >= t.len() {
            return Err(Error::Corrupt("header offset past the end"));
        }
        Ok(v)
    };
    let nfunc = usize::try_from(w(0)?).map_err(|_| Error::Corrupt("nfunc"))?;
    let h = Header {
        format,
        min_lc: t[6],
        nfunc,
        text_start: w(2)?,
        funcnametab: off(3)?,
        cutab: off(4)?,
        filetab: off(5)?,
        pctab: off(6)?,
        pclntab: off(7)?,
    };
    if h.min_lc == 0 {
        return Err(Error::Corrupt("minLC 0"));
    }
    let ftab_end = nfunc
        .checked_add(1)
        .and_then(|n| n.checked_mul(8))
        .and_then(|n| n.checked_add(h.pclntab))
        .ok_or(Error::Corrupt("nfunc"))?;
    if ftab_end > t.len() {
        return Err(Error::Corrupt("function table past the end"));
    }
    Ok(h)
}

/// Where the table is: (file offset, length, ELF address, how found).
fn find_table(
    obj: &object::File<'_>,
    data: &[u8],
    segs: &[Segment],
) -> Option<(usize, usize, u64, Found)> {
    if let Some(s) = obj.section_by_name(".gopclntab") {
        let (off, size) = s.file_range()?;
        return Some((
            usize::try_from(off).ok()?,
            usize::try_from(size).ok()?,
            s.address(),
            Found::Section,
        ));
    }
    // No section headers: scan data segments for the header, read-only
    // ones first; a PIE build keeps the table in .data.rel.ro, in the
    // segment that is writable until the loader's relocations are done.
    let data_segs = segs.iter().filter(|s| !s.executable);
    for seg in data_segs
        .clone()
        .filter(|s| !s.writable)
        .chain(data_segs.filter(|s| s.writable))
    {
        let bytes = data.get(seg.offset..seg.offset.checked_add(seg.size)?)?;
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let w = &bytes[at..at + 8];
            if w[1..4] == [0xff, 0xff, 0xff]
                && matches!(w[0], 0xf0 | 0xf1)
                && w[4..6] == [0, 0]
                && w[7] == 8
                && header(&bytes[at..]).is_ok()
            {
                return Some((
                    seg.offset + at,
                    seg.size - at,
                    seg.vaddr.wrapping_add(at as u64),
                    Found::Scan,
                ));
            }
            at += 8;
        }
    }
    None
}

/// Words of the runtime's moduledata: the first writable-segment word equal
/// to the table's address and followed by the function name table's.
fn moduledata(
    data: &[u8],
    segs: &[Segment],
    table_vaddr: u64,
    funcnametab: usize,
) -> Option<Vec<u64>> {
    const WORDS: usize = 48;
    for seg in segs.iter().filter(|s| s.writable) {
        let bytes = data.get(seg.offset..seg.offset.checked_add(seg.size)?)?;
        let mut at = 0;
        while at + WORDS * 8 <= bytes.len() {
            if word(bytes, at) == Some(table_vaddr)
                && word(bytes, at + 8) == Some(table_vaddr.wrapping_add(funcnametab as u64))
            {
                return (0..WORDS).map(|i| word(bytes, at + i * 8)).collect();
            }
            at += 8;
        }
    }
    None
}

/// moduledata word indexes (Go 1.20+; 1.18–1.19 lack covctrs).
const MD_TEXT: usize = 22;
fn md_types(format: Format) -> usize {
    match format {
        Format::Go118 => 35,
        Format::Go120 => 37,
    }
}

pub fn table<D: Deref<Target = [u8]>>(data: D) -> Result<Table<D>, Error> {
    let (base, len, vaddr, found, h, symbols, text_section, md, segs) = {
        let obj = object::File::parse(&*data)?;
        if !obj.is_little_endian() || !obj.is_64() {
            return Err(Error::NotLe64);
        }
        let segs = segments(&obj);
        let (base, len, vaddr, found) = find_table(&obj, &data, &segs).ok_or(Error::NoTable)?;
        let t = data
            .get(base..base.checked_add(len).ok_or(Error::NoTable)?)
            .ok_or(Error::Corrupt("past the end of the file"))?;
        let h = header(t)?;
        let symbols: Vec<(String, u64)> = obj
            .symbols()
            .filter_map(|s| {
                let n = s.name().ok()?;
                matches!(
                    n,
                    "go:func.*" | "go.func.*" | "runtime.types" | "runtime.text"
                )
                .then(|| (n.to_owned(), s.address()))
            })
            .collect();
        let text_section = obj.section_by_name(".text").map(|s| s.address());
        let md = moduledata(&data, &segs, vaddr, h.funcnametab);
        (base, len, vaddr, found, h, symbols, text_section, md, segs)
    };
    let _ = vaddr;
    let sym = |n: &str| symbols.iter().find(|(s, _)| s == n).map(|&(_, a)| a);
    let md_word = |i: usize| {
        md.as_ref()
            .and_then(|m| m.get(i).copied())
            .filter(|&v| v != 0)
    };
    // Go 1.27 no longer stores textStart in the header.
    let text = [
        Some(h.text_start).filter(|&t| t != 0),
        md_word(MD_TEXT),
        sym("runtime.text"),
        text_section,
    ]
    .into_iter()
    .flatten()
    .next()
    .ok_or(Error::Corrupt("no text base"))?;
    let types = sym("runtime.types").or_else(|| md_word(md_types(h.format)));
    let mut table = Table {
        data,
        format: h.format,
        found,
        base,
        size: len,
        nfunc: h.nfunc,
        text,
        funcnametab: h.funcnametab,
        cutab: h.cutab,
        filetab: h.filetab,
        pctab: h.pctab,
        pclntab: h.pclntab,
        gofunc: None,
        types,
        min_lc: u64::from(h.min_lc),
        pc_cache: Default::default(),
    };
    // Funcdata base: the symbol, else the moduledata word (its index moved
    // between versions) whose inline trees make sense.
    let candidates: Vec<u64> = match sym("go:func.*").or_else(|| sym("go.func.*")) {
        Some(a) => vec![a],
        None => (md_types(h.format) + 1..md_types(h.format) + 10)
            .filter_map(md_word)
            .collect(),
    };
    table.gofunc = candidates
        .into_iter()
        .filter_map(|v| vaddr_to_offset(&segs, v))
        .find(|&off| table.inline_trees_plausible(off));
    Ok(table)
}

impl<D: Deref<Target = [u8]>> Table<D> {
    /// Whether `gofunc` (a file offset) as the funcdata base gives inline
    /// trees whose entries name functions and point inside their function.
    fn inline_trees_plausible(&mut self, gofunc: usize) -> bool {
        let saved = self.gofunc.replace(gofunc);
        let mut checked = 0;
        let mut ok = true;
        for f in self.functions() {
            let Some(tree) = self.funcdata(&f, crate::FUNCDATA_INL_TREE) else {
                continue;
            };
            let sane = self.inlined_call(tree, 0).is_some_and(|(name, parent_pc)| {
                !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80)
                    && u64::from(parent_pc) < f.end - f.entry
            });
            if !sane {
                ok = false;
                break;
            }
            checked += 1;
            if checked == 32 {
                break;
            }
        }
        self.gofunc = saved;
        ok && checked > 0
    }
}
