//! One module's call frame information: the FDEs of `.eh_frame` (or
//! `.debug_frame`), sorted by address, and the step from a frame to its
//! caller that their rows describe.

use std::sync::Arc;

use anyhow::Result;
use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, DebugFrameOffset, EhFrame, EhFrameOffset,
    EndianArcSlice, FrameDescriptionEntry, LittleEndian, RegisterRule, UnwindContext,
    UnwindSection,
};
use object::{Object as _, ObjectSection as _};

use super::{RA, RSP, Regs, StackCopy, Step};

type R = EndianArcSlice<LittleEndian>;

enum Section {
    Eh(EhFrame<R>),
    Debug(DebugFrame<R>),
}

pub struct Cfi {
    section: Section,
    bases: BaseAddresses,
    /// (start, end, the FDE's offset in the section), sorted by start. The
    /// FDE itself is parsed again at each step: kept parsed, with its CIE,
    /// an FDE took ~250 bytes, and a large binary has 60,000 of them
    /// (15 MB of a tracer attached to a 142 MB Rust binary, heaptrack).
    fdes: Vec<(u64, u64, usize)>,
}

impl Cfi {
    /// The CFI of an ELF file, `None` when it has none.
    pub fn parse(obj: &object::File<'_>) -> Option<Self> {
        let section_data = |name: &str| -> Option<(u64, Arc<[u8]>)> {
            let s = obj.section_by_name(name)?;
            let data = s.uncompressed_data().ok()?;
            (!data.is_empty()).then(|| (s.address(), Arc::from(&*data)))
        };
        let text = obj.section_by_name(".text").map_or(0, |s| s.address());
        let got = obj.section_by_name(".got").map_or(0, |s| s.address());
        if let Some((addr, data)) = section_data(".eh_frame") {
            let mut eh = EhFrame::from(R::new(data, LittleEndian));
            eh.set_address_size(8);
            let bases = BaseAddresses::default()
                .set_eh_frame(addr)
                .set_text(text)
                .set_got(got);
            let fdes = index(&eh, &bases).ok()?;
            return Some(Self {
                section: Section::Eh(eh),
                bases,
                fdes,
            });
        }
        let (_, data) = section_data(".debug_frame")?;
        let mut df = DebugFrame::from(R::new(data, LittleEndian));
        df.set_address_size(8);
        let bases = BaseAddresses::default().set_text(text);
        let fdes = index(&df, &bases).ok()?;
        Some(Self {
            section: Section::Debug(df),
            bases,
            fdes,
        })
    }

    fn fde(&self, vaddr: u64) -> Option<FrameDescriptionEntry<R>> {
        let i = self.fdes.partition_point(|(start, _, _)| *start <= vaddr);
        let &(start, end, offset) = self.fdes.get(i.checked_sub(1)?)?;
        if vaddr < start || vaddr >= end {
            return None;
        }
        match &self.section {
            Section::Eh(s) => s.fde_from_offset(&self.bases, EhFrameOffset(offset), |s, b, o| {
                s.cie_from_offset(b, o)
            }),
            Section::Debug(s) => {
                s.fde_from_offset(&self.bases, DebugFrameOffset(offset), |s, b, o| {
                    s.cie_from_offset(b, o)
                })
            }
        }
        .ok()
    }

    /// The caller of the frame at `vaddr` (the module's address of the pc
    /// looked up), or `None` when this module has no rule for it.
    pub(super) fn step(&self, vaddr: u64, regs: &Regs, stack: &StackCopy<'_>) -> Option<Step> {
        let fde = self.fde(vaddr)?;
        let mut ctx = Box::new(UnwindContext::new());
        let row = match &self.section {
            Section::Eh(s) => fde.unwind_info_for_address(s, &self.bases, &mut ctx, vaddr),
            Section::Debug(s) => fde.unwind_info_for_address(s, &self.bases, &mut ctx, vaddr),
        }
        .ok()?;
        let cfa = match row.cfa().clone() {
            CfaRule::RegisterAndOffset { register, offset } => {
                regs.get(register.0)?.checked_add_signed(offset)?
            }
            // DWARF expressions (PLT stubs, signal trampolines): not here.
            CfaRule::Expression(_) => return None,
        };
        let restore = |reg: u16, current: u64| -> Option<Option<u64>> {
            // No rule: the register is preserved.
            let rule = row
                .register(gimli::Register(reg))
                .unwrap_or(RegisterRule::SameValue);
            Some(match rule {
                RegisterRule::Undefined => None,
                RegisterRule::SameValue => Some(current),
                RegisterRule::Offset(o) => Some(stack.read(cfa.checked_add_signed(o)?)?),
                RegisterRule::ValOffset(o) => Some(cfa.checked_add_signed(o)?),
                RegisterRule::Register(r) => Some(regs.get(r.0)?),
                _ => Some(current),
            })
        };
        // The return address: undefined marks the outermost frame.
        let ra = match row.register(gimli::Register(RA)) {
            Some(RegisterRule::Undefined) => return Some(Step::Outermost),
            _ => match restore(RA, 0) {
                Some(Some(ra)) => ra,
                _ => return Some(Step::Stuck),
            },
        };
        let mut caller = *regs;
        for reg in [3u16, 6, 12, 13, 14, 15] {
            let current = regs.get(reg).unwrap_or(0);
            // A callee-saved register whose save slot is outside the copy
            // keeps its value: only rbp matters for a later fallback.
            if let Some(Some(v)) = restore(reg, current) {
                caller.set(reg, v);
            }
        }
        caller.set(RSP, cfa);
        caller.rip = ra;
        Some(Step::Caller(caller))
    }
}

fn index<S: UnwindSection<R>>(
    section: &S,
    bases: &BaseAddresses,
) -> Result<Vec<(u64, u64, usize)>> {
    let mut out = Vec::new();
    let mut entries = section.entries(bases);
    while let Some(entry) = entries.next()? {
        if let CieOrFde::Fde(partial) = entry
            && let Ok(fde) = partial.parse(|s, b, o| s.cie_from_offset(b, o))
        {
            let start = fde.initial_address();
            out.push((start, start.saturating_add(fde.len()), fde.offset()));
        }
    }
    out.sort_by_key(|(start, _, _)| *start);
    out.shrink_to_fit();
    Ok(out)
}
