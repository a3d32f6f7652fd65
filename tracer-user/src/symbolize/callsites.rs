//! Tail calls, as gdb shows them. An optimizing compiler turns `return f(x)`
//! into a jump: the caller's frame is gone from the stack, and an unwinder
//! goes from `f` straight to the caller's caller. gdb puts the missing
//! frames back from DWARF call-site information (`DW_TAG_call_site`): the
//! call at the caller's return address names its target, and when that
//! target is not the function we came from, the tail calls (call sites
//! marked `DW_AT_call_tail_call`) leading from the target to it name the
//! frames in between. We do the same, so our stacks equal gdb's.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use gimli::{AttributeValue, DwTag, constants};

use super::dwarf_units::{DwarfFile, Reader};

/// A bound on the search: chains of tail calls are short in practice, and
/// an ambiguous graph must not cost more than a crash is worth.
const MAX_CHAIN: usize = 8;
const MAX_CHAINS: usize = 16;
/// Functions whose units a search may read.
const MAX_FUNCTIONS: usize = 64;

/// The call sites of one module read so far (unit by unit), by address in
/// its ELF address space.
#[derive(Default)]
pub struct CallSites {
    /// Return address of a call → entry of the function it calls (when
    /// DWARF names it: indirect calls do not).
    targets: HashMap<u64, u64>,
    /// Function entry → its tail calls: (address after the jump, entry of
    /// the function jumped to).
    tails: HashMap<u64, Vec<(u64, u64)>>,
    /// Units read (offsets in .debug_info).
    units: HashSet<usize>,
}

impl CallSites {
    /// Reads the call sites of the units a tail-call search from `ret`
    /// needs: the caller's, then those of every function the chain may go
    /// through.
    pub fn load_for(&mut self, file: &DwarfFile, ret: u64) {
        self.load_unit_at(file, ret);
        let Some(&target) = self.targets.get(&ret) else {
            return;
        };
        let mut seen: HashSet<u64> = HashSet::new();
        let mut frontier = vec![target];
        for _ in 0..MAX_CHAIN {
            let mut next = Vec::new();
            for f in frontier {
                if seen.len() >= MAX_FUNCTIONS || !seen.insert(f) {
                    continue;
                }
                self.load_unit_at(file, f);
                next.extend(self.tails.get(&f).into_iter().flatten().map(|&(_, t)| t));
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
    }

    fn load_unit_at(&mut self, file: &DwarfFile, addr: u64) {
        if let Some(unit) = file.unit_at(addr)
            && self.units.insert(unit)
        {
            // A unit that cannot be read adds nothing: no frames restored.
            let _ = self.add_unit(file, unit);
        }
    }

    /// The call sites of one compilation unit. Targets DWARF only declares
    /// (defined in another unit) are found by name in the symbol table.
    fn add_unit(&mut self, file: &DwarfFile, unit_offset: usize) -> Result<()> {
        let dwarf = file.dwarf();
        let unit = file.unit(&dwarf, unit_offset)?;
        let unit_base = unit_offset;
        let die_offset = |r: &AttributeValue<Reader<'_>>| -> Option<usize> {
            match *r {
                AttributeValue::UnitRef(o) => Some(unit_base + o.0),
                AttributeValue::DebugInfoRef(o) => Some(o.0),
                _ => None,
            }
        };
        // Subprogram DIEs (by offset in .debug_info): concrete entry, the
        // DIE they are an instance of, and their name.
        let mut entry: HashMap<usize, u64> = HashMap::new();
        let mut origin: HashMap<usize, usize> = HashMap::new();
        let mut names: HashMap<usize, String> = HashMap::new();
        // (return address, tail call, enclosing function's entry, target DIE).
        let mut sites: Vec<(u64, bool, Option<u64>, usize)> = Vec::new();
        // Entry of the physical function being walked, per depth.
        let mut functions: Vec<(isize, Option<u64>)> = Vec::new();
        let mut cursor = unit.entries();
        while let Some(die) = cursor.next_dfs()? {
            let depth = die.depth();
            while functions.last().is_some_and(|&(d, _)| d >= depth) {
                functions.pop();
            }
            let offset = unit_base + die.offset().0;
            let tag = die.tag();
            if tag == constants::DW_TAG_subprogram {
                let low = low_pc(&dwarf, &unit, die)?;
                if let Some(low) = low {
                    entry.insert(offset, low);
                    functions.push((depth, Some(low)));
                }
                for at in [
                    constants::DW_AT_abstract_origin,
                    constants::DW_AT_specification,
                ] {
                    if let Some(v) = die.attr_value(at)
                        && let Some(o) = die_offset(&v)
                    {
                        origin.insert(offset, o);
                    }
                }
                for at in [
                    constants::DW_AT_linkage_name,
                    constants::DW_AT_MIPS_linkage_name,
                    constants::DW_AT_name,
                ] {
                    if let Some(v) = die.attr_value(at)
                        && let Ok(s) = dwarf.attr_string(&unit, v)
                    {
                        names.insert(offset, s.to_string_lossy().into_owned());
                        break;
                    }
                }
            } else if is_call_site(tag) {
                // DWARF 4's GNU call sites: low_pc is the return address.
                let ret = match die
                    .attr_value(constants::DW_AT_call_return_pc)
                    .or_else(|| die.attr_value(constants::DW_AT_low_pc))
                {
                    Some(v) => dwarf.attr_address(&unit, v)?,
                    None => None,
                };
                let tail = die.has_attr(constants::DW_AT_call_tail_call)
                    || die.has_attr(constants::DW_AT_GNU_tail_call);
                let target = [
                    constants::DW_AT_call_origin,
                    constants::DW_AT_abstract_origin,
                ]
                .into_iter()
                .find_map(|at| die.attr_value(at))
                .and_then(|v| die_offset(&v));
                if let (Some(ret), Some(target)) = (ret, target) {
                    let caller = functions.last().and_then(|&(_, e)| e);
                    sites.push((ret, tail, caller, target));
                }
            }
        }

        // A target DIE → an entry: its own, its concrete instance's (an
        // inlined-and-also-emitted function's abstract DIE), the
        // definition's (a declaration's), or the symbol of its name.
        let mut concrete: HashMap<usize, u64> = HashMap::new();
        for (&die, &e) in &entry {
            let mut o = die;
            for _ in 0..4 {
                match origin.get(&o) {
                    Some(&next) => {
                        concrete.entry(next).or_insert(e);
                        o = next;
                    }
                    None => break,
                }
            }
        }
        let resolve = |die: usize| -> Option<u64> {
            let mut o = die;
            for _ in 0..4 {
                if let Some(&e) = entry.get(&o).or_else(|| concrete.get(&o)) {
                    return Some(e);
                }
                match origin.get(&o) {
                    Some(&next) => o = next,
                    None => break,
                }
            }
            names
                .get(&o)
                .or_else(|| names.get(&die))
                .and_then(|n| file.function_named(n))
        };
        for (ret, tail, caller, die) in sites {
            let Some(target) = resolve(die) else { continue };
            if tail {
                if let Some(caller) = caller {
                    self.tails.entry(caller).or_default().push((ret, target));
                }
            } else {
                self.targets.insert(ret, target);
            }
        }
        Ok(())
    }

    /// The frames a chain of tail calls removed between a function entered
    /// at `callee` and the call returning to `ret`: the addresses after
    /// each jump, innermost first (as a stack lists frames). Empty when the
    /// call went straight to `callee`, or DWARF cannot tell. As gdb, when
    /// several chains are possible only the part they share is kept.
    pub fn between(&self, ret: u64, callee: u64) -> Vec<u64> {
        let Some(&target) = self.targets.get(&ret) else {
            return Vec::new();
        };
        if target == callee {
            return Vec::new();
        }
        let mut chains: Vec<Vec<u64>> = Vec::new();
        let mut path: Vec<u64> = Vec::new();
        self.search(target, callee, &mut path, &mut chains);
        let Some(first) = chains.first() else {
            return Vec::new();
        };
        // Caller-side prefix all chains share, then callee-side suffix.
        let prefix = (0..first.len())
            .take_while(|&i| chains.iter().all(|c| c.get(i) == first.get(i)))
            .count();
        let suffix = (0..first.len() - prefix)
            .take_while(|&i| {
                chains.iter().all(|c| {
                    c.len() > i
                        && c.len() - 1 - i >= prefix
                        && c[c.len() - 1 - i] == first[first.len() - 1 - i]
                })
            })
            .count();
        let mut out: Vec<u64> = first[..prefix].to_vec();
        out.extend_from_slice(&first[first.len() - suffix..]);
        out.reverse();
        out
    }

    fn search(&self, from: u64, to: u64, path: &mut Vec<u64>, chains: &mut Vec<Vec<u64>>) {
        if path.len() >= MAX_CHAIN || chains.len() >= MAX_CHAINS {
            return;
        }
        for &(ret, next) in self.tails.get(&from).map(Vec::as_slice).unwrap_or(&[]) {
            if path.contains(&ret) {
                continue;
            }
            path.push(ret);
            if next == to {
                chains.push(path.clone());
            } else {
                self.search(next, to, path, chains);
            }
            path.pop();
        }
    }
}

fn is_call_site(tag: DwTag) -> bool {
    tag == constants::DW_TAG_call_site || tag == constants::DW_TAG_GNU_call_site
}

/// A subprogram's entry: `DW_AT_entry_pc`, else `DW_AT_low_pc`, else the
/// start of its first range.
fn low_pc(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    die: &gimli::DebuggingInformationEntry<Reader<'_>>,
) -> Result<Option<u64>> {
    for at in [constants::DW_AT_entry_pc, constants::DW_AT_low_pc] {
        if let Some(v) = die.attr_value(at)
            && let Some(a) = dwarf.attr_address(unit, v)?
        {
            return Ok(Some(a));
        }
    }
    if let Some(v) = die.attr_value(constants::DW_AT_ranges)
        && let Some(offset) = dwarf.attr_ranges_offset(unit, v)?
    {
        let mut ranges = dwarf.ranges(unit, offset)?;
        if let Some(r) = ranges.next()? {
            return Ok(Some(r.begin));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(targets: &[(u64, u64)], tails: &[(u64, &[(u64, u64)])]) -> CallSites {
        CallSites {
            targets: targets.iter().copied().collect(),
            tails: tails.iter().map(|&(f, t)| (f, t.to_vec())).collect(),
            units: HashSet::new(),
        }
    }

    #[test]
    fn direct_call_adds_nothing() {
        let s = sites(&[(0x105, 0x200)], &[]);
        assert!(s.between(0x105, 0x200).is_empty());
    }

    #[test]
    fn one_chain_is_restored_innermost_first() {
        // G calls A (returns to 0x105); A jumps to B (after: 0x210); B
        // jumps to F (after: 0x310).
        let s = sites(
            &[(0x105, 0x200)],
            &[(0x200, &[(0x210, 0x300)]), (0x300, &[(0x310, 0x400)])],
        );
        assert_eq!(s.between(0x105, 0x400), vec![0x310, 0x210]);
    }

    #[test]
    fn ambiguous_middle_keeps_the_shared_ends() {
        // A jumps to B or C, both jump to D, D jumps to F.
        let s = sites(
            &[(0x105, 0xa00)],
            &[
                (0xa00, &[(0xa10, 0xb00), (0xa20, 0xc00)]),
                (0xb00, &[(0xb10, 0xd00)]),
                (0xc00, &[(0xc10, 0xd00)]),
                (0xd00, &[(0xd10, 0xf00)]),
            ],
        );
        assert_eq!(s.between(0x105, 0xf00), vec![0xd10]);
    }

    #[test]
    fn unknown_target_or_no_path_adds_nothing() {
        let s = sites(&[(0x105, 0x200)], &[(0x200, &[(0x210, 0x300)])]);
        assert!(s.between(0x999, 0x400).is_empty());
        assert!(s.between(0x105, 0x400).is_empty());
    }

    #[test]
    fn cycles_end() {
        let s = sites(
            &[(0x105, 0x200)],
            &[(0x200, &[(0x210, 0x300)]), (0x300, &[(0x310, 0x200)])],
        );
        assert!(s.between(0x105, 0x400).is_empty());
    }
}
