//! How much of the verifier's 512-byte stack each program's deepest call
//! chain takes, read from the eBPF object itself.
//!
//! Without a private stack (raw tracepoints and uprobes do not get one on
//! every kernel) the verifier adds up the frames of a call chain — the
//! program, the functions it calls, a `bpf_loop` callback and what that
//! calls — and rejects the program when the sum passes 512 bytes. One
//! machine's kernel rejected `sched_process_exit` at 528 bytes while
//! another loaded the same object, and then nothing at all was traced
//! (RELIABILITY.md). The test below fails while there is still margin,
//! on any kernel, instead of on the machine whose kernel is strictest.
//!
//! A frame's depth is what the verifier computes: the deepest stack slot
//! the function reaches through r10, directly (`*(u64 *)(r10 - 24)`) or
//! through a pointer made from it (`r1 = r10; r1 += -64`, passed to a
//! helper), rounded up to 16 bytes as the verifier does for JIT-ed
//! programs. Calls are bpf-to-bpf calls and callbacks whose address a
//! program loads (`bpf_loop`'s).

use std::collections::{BTreeMap, HashMap};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

/// A function of the object: its section and byte range.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct FuncId {
    section: usize,
    start: u64,
}

struct Func {
    name: String,
    end: u64,
    /// Its own frame, in bytes (before rounding).
    depth: u64,
    callees: Vec<FuncId>,
}

/// Per program (a global function of a program section): the deepest call
/// chain's stack bytes and the chain, program first.
pub fn deepest_chains(object_bytes: &[u8]) -> anyhow::Result<BTreeMap<String, (u64, Vec<String>)>> {
    let file = object::File::parse(object_bytes)?;
    let code: HashMap<usize, &[u8]> = file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
        .filter_map(|s| Some((s.index().0, s.data().ok()?)))
        .collect();
    // Functions by section and start.
    let mut funcs: BTreeMap<FuncId, Func> = BTreeMap::new();
    let mut programs = Vec::new();
    for sym in file.symbols() {
        let Some(section) = sym.section_index() else {
            continue;
        };
        if sym.kind() != object::SymbolKind::Text || !code.contains_key(&section.0) {
            continue;
        }
        let id = FuncId {
            section: section.0,
            start: sym.address(),
        };
        let name = sym.name().unwrap_or("?").to_owned();
        let is_program = sym.is_global()
            && file
                .section_by_index(section)
                .ok()
                .and_then(|s| s.name().ok().map(|n| n != ".text"))
                .unwrap_or(false);
        if is_program {
            programs.push(id);
        }
        funcs.insert(
            id,
            Func {
                name,
                end: sym.address() + sym.size(),
                depth: 0,
                callees: Vec::new(),
            },
        );
    }
    let containing = |funcs: &BTreeMap<FuncId, Func>, section: usize, at: u64| {
        funcs
            .range(..=FuncId { section, start: at })
            .next_back()
            .filter(|(id, f)| id.section == section && at < f.end)
            .map(|(id, _)| *id)
    };
    // Relocations: instruction byte offset -> target symbol's (section,
    // address), per section.
    let mut relocs: HashMap<(usize, u64), (usize, u64)> = HashMap::new();
    for section in file.sections() {
        for (offset, r) in section.relocations() {
            let RelocationTarget::Symbol(sym) = r.target() else {
                continue;
            };
            let Ok(sym) = file.symbol_by_index(sym) else {
                continue;
            };
            if let Some(target_section) = sym.section_index()
                && code.contains_key(&target_section.0)
            {
                relocs.insert(
                    (section.index().0, offset),
                    (target_section.0, sym.address()),
                );
            }
        }
    }
    let ids: Vec<FuncId> = funcs.keys().copied().collect();
    for id in ids {
        let Some(f) = funcs.get(&id) else { continue };
        let bytes = code
            .get(&id.section)
            .and_then(|c| c.get(id.start as usize..f.end as usize))
            .unwrap_or_default();
        let (depth, targets) = scan(bytes, id, &relocs);
        let callees: Vec<FuncId> = targets
            .into_iter()
            .filter_map(|(section, at)| containing(&funcs, section, at))
            .collect();
        if let Some(f) = funcs.get_mut(&id) {
            f.depth = depth;
            f.callees = callees;
        }
    }
    let mut out = BTreeMap::new();
    for p in programs {
        let (bytes, chain) = deepest(&funcs, p, 0);
        let names = chain
            .iter()
            .filter_map(|id| {
                funcs
                    .get(id)
                    .map(|f| format!("{} {}", f.name, frame(f.depth)))
            })
            .collect();
        if let Some(f) = funcs.get(&p) {
            out.insert(f.name.clone(), (bytes, names));
        }
    }
    Ok(out)
}

/// A frame as the verifier counts it for a JIT-ed program.
fn frame(depth: u64) -> u64 {
    depth.div_ceil(16) * 16
}

/// The deepest chain from `f`: (bytes, functions).
fn deepest(funcs: &BTreeMap<FuncId, Func>, f: FuncId, level: usize) -> (u64, Vec<FuncId>) {
    let Some(func) = funcs.get(&f) else {
        return (0, Vec::new());
    };
    // The verifier allows 8 frames; recursion is rejected outright.
    let below = if level < 8 {
        func.callees
            .iter()
            .filter(|&&c| c != f)
            .map(|&c| deepest(funcs, c, level + 1))
            .max_by_key(|(bytes, _)| *bytes)
            .unwrap_or_default()
    } else {
        (0, Vec::new())
    };
    let mut chain = vec![f];
    chain.extend(below.1);
    (frame(func.depth) + below.0, chain)
}

/// One function's frame depth and the code addresses it calls or loads
/// (section, byte address).
fn scan(
    bytes: &[u8],
    id: FuncId,
    relocs: &HashMap<(usize, u64), (usize, u64)>,
) -> (u64, Vec<(usize, u64)>) {
    let mut depth: i64 = 0;
    let mut targets = Vec::new();
    // Registers known to hold r10 + k.
    let mut fp: [Option<i64>; 11] = [None; 11];
    let mut i = 0usize;
    while i + 8 <= bytes.len() {
        let insn = &bytes[i..i + 8];
        let code = insn[0];
        let dst = usize::from(insn[1] & 0x0f);
        let src = usize::from(insn[1] >> 4);
        let off = i64::from(i16::from_le_bytes([insn[2], insn[3]]));
        let imm = i64::from(i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]));
        let at = id.start + i as u64;
        let reach = |base: usize, fp: &[Option<i64>; 11]| -> Option<i64> {
            if base == 10 {
                Some(off)
            } else {
                fp.get(base).copied().flatten().map(|k| k + off)
            }
        };
        match code & 0x07 {
            // LDX: loads from [src + off].
            0x01 => {
                if let Some(o) = reach(src, &fp) {
                    depth = depth.max(-o);
                }
                if let Some(r) = fp.get_mut(dst) {
                    *r = None;
                }
            }
            // ST/STX: stores (and atomics) to [dst + off].
            0x02 | 0x03 => {
                if let Some(o) = reach(dst, &fp) {
                    depth = depth.max(-o);
                }
                // An atomic fetch writes its source register.
                if (code == 0xdb || code == 0xc3)
                    && let Some(r) = fp.get_mut(src)
                {
                    *r = None;
                }
            }
            // ALU64: track r10 copies and their offsets.
            0x07 => {
                let is_reg = code & 0x08 != 0;
                let new = match (code & 0xf0, is_reg) {
                    (0xb0, true) if src == 10 => Some(0),
                    (0xb0, true) => fp.get(src).copied().flatten(),
                    (0x00, false) => fp.get(dst).copied().flatten().map(|k| k + imm),
                    (0x10, false) => fp.get(dst).copied().flatten().map(|k| k - imm),
                    _ => None,
                };
                if let Some(k) = new {
                    depth = depth.max(-k);
                }
                if let Some(r) = fp.get_mut(dst) {
                    *r = new;
                }
            }
            // JMP: bpf-to-bpf calls (src 1); a call clobbers r0–r5.
            0x05 => {
                if code == 0x85 {
                    if src == 1 {
                        match relocs.get(&(id.section, at)) {
                            // REL: a function symbol with imm -1, or a section
                            // symbol with the target's slot in imm.
                            Some(&(s, base)) => {
                                targets.push((s, (base as i64 + (imm + 1) * 8) as u64))
                            }
                            None => targets.push((id.section, (at as i64 + (imm + 1) * 8) as u64)),
                        }
                    }
                    for r in fp.iter_mut().take(6) {
                        *r = None;
                    }
                }
            }
            // ld_imm64 (two slots): a callback's address when relocated to code.
            0x00 if code == 0x18 => {
                if let Some(&(s, base)) = relocs.get(&(id.section, at)) {
                    targets.push((s, (base as i64 + imm) as u64));
                }
                if let Some(r) = fp.get_mut(dst) {
                    *r = None;
                }
                i += 16;
                continue;
            }
            // ALU32 and the rest write dst (32-bit ops clear r10 copies).
            _ => {
                if let Some(r) = fp.get_mut(dst) {
                    *r = None;
                }
            }
        }
        i += 8;
    }
    (depth.max(0) as u64, targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier's limit without a private stack.
    const LIMIT: u64 = 512;
    /// Kept free: kernels differ (see the module's comment).
    const MARGIN: u64 = 64;

    #[test]
    fn every_programs_deepest_call_chain_leaves_margin_under_512_bytes() {
        let chains = deepest_chains(crate::probes::kernel::ebpf_object()).unwrap();
        // Every program of the object was found, with its frame.
        assert!(chains.len() >= 20, "{chains:#?}");
        let mut report = String::new();
        for (program, (bytes, chain)) in &chains {
            report.push_str(&format!(
                "{program}: {bytes} bytes: {}\n",
                chain.join(" -> ")
            ));
        }
        eprintln!("{report}");
        for (program, (bytes, _)) in &chains {
            assert!(
                *bytes + MARGIN <= LIMIT,
                "{program} needs {bytes} of the verifier's {LIMIT} stack bytes \
                 (keep {MARGIN} free):\n{report}"
            );
        }
        // The scan sees frames at all: the exit program's chain goes through
        // its Go exit path, whose record fields live on the stack.
        let (bytes, chain) = &chains["sched_process_exit"];
        assert!(*bytes >= 64 && chain.len() >= 2, "{report}");
    }
}
