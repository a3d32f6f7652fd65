//! SystemTap SDT probes (`.note.stapsdt`): libstdc++ marks its throw,
//! rethrow and catch points with them. A probe is a `nop` at a known
//! address, and its note says where each argument is at that point
//! (`8@%rdx`): the place to learn what `throw;` rethrows, which no
//! function argument carries.

/// One SDT probe of a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usdt {
    pub provider: String,
    pub name: String,
    /// ELF address of the probe's `nop` (already adjusted for prelinking).
    pub vaddr: u64,
    /// The operands as the note spells them (`8@%rdx`, `-4@-80(%rbx)` …).
    pub args: Vec<String>,
}

/// NT_STAPSDT.
const NT_STAPSDT: u32 = 3;

/// The probes of a `.note.stapsdt` section's bytes. `base_vaddr` is where
/// the file's `.stapsdt.base` section is now: a note records where it was
/// at link time, and a prelinked file moved both.
pub fn parse_notes(data: &[u8], base_vaddr: Option<u64>) -> Vec<Usdt> {
    let mut probes = Vec::new();
    let mut at = 0usize;
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(i..i + 4)?.try_into().ok()?))
    };
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (u32_at(at), u32_at(at + 4), u32_at(at + 8))
    {
        let name_start = at + 12;
        let Some(desc_start) = align4(name_start + namesz as usize) else {
            break;
        };
        let Some(next) = align4(desc_start + descsz as usize) else {
            break;
        };
        let name = data.get(name_start..name_start + namesz as usize);
        let desc = data.get(desc_start..desc_start + descsz as usize);
        if let (Some(name), Some(desc)) = (name, desc)
            && kind == NT_STAPSDT
            && name == b"stapsdt\0"
            && let Some(probe) = parse_desc(desc, base_vaddr)
        {
            probes.push(probe);
        }
        if next <= at {
            break;
        }
        at = next;
    }
    probes
}

/// One note's descriptor: pc, link-time base, semaphore (three u64), then
/// provider, name and arguments as NUL-terminated strings.
fn parse_desc(desc: &[u8], base_vaddr: Option<u64>) -> Option<Usdt> {
    let u64_at = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(desc.get(i..i + 8)?.try_into().ok()?))
    };
    let (pc, base) = (u64_at(0)?, u64_at(8)?);
    let mut strings = desc.get(24..)?.split(|&b| b == 0);
    let mut next = || {
        strings
            .next()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    };
    let (provider, name, args) = (next()?, next()?, next().unwrap_or_default());
    let vaddr = match base_vaddr {
        Some(now) if base != 0 => pc.wrapping_add(now.wrapping_sub(base)),
        _ => pc,
    };
    Some(Usdt {
        provider,
        name,
        vaddr,
        args: args.split_whitespace().map(str::to_owned).collect(),
    })
}

/// The byte offset in x86_64 `struct pt_regs` of the 64-bit register an
/// operand names (`8@%rdx` → 96); None for memory operands, constants and
/// narrower values.
pub fn register_operand_offset(arg: &str) -> Option<u64> {
    let (size, place) = arg.split_once('@')?;
    if !matches!(size, "8" | "-8") {
        return None;
    }
    Some(match place.strip_prefix('%')? {
        "r15" => 0,
        "r14" => 8,
        "r13" => 16,
        "r12" => 24,
        "rbp" => 32,
        "rbx" => 40,
        "r11" => 48,
        "r10" => 56,
        "r9" => 64,
        "r8" => 72,
        "rax" => 80,
        "rcx" => 88,
        "rdx" => 96,
        "rsi" => 104,
        "rdi" => 112,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(provider: &str, name: &str, pc: u64, base: u64, args: &str) -> Vec<u8> {
        let mut desc = Vec::new();
        desc.extend_from_slice(&pc.to_le_bytes());
        desc.extend_from_slice(&base.to_le_bytes());
        desc.extend_from_slice(&0u64.to_le_bytes());
        for s in [provider, name, args] {
            desc.extend_from_slice(s.as_bytes());
            desc.push(0);
        }
        let mut n = Vec::new();
        n.extend_from_slice(&8u32.to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&NT_STAPSDT.to_le_bytes());
        n.extend_from_slice(b"stapsdt\0");
        n.extend_from_slice(&desc);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n
    }

    #[test]
    fn notes_are_read_and_moved_with_their_base() {
        let mut data = note("libstdcxx", "throw", 0xa90a1, 0x1c5973, "8@%rdi 8@%rsi");
        data.extend(note(
            "libstdcxx",
            "rethrow",
            0xa9139,
            0x1c5973,
            "8@%rdx 8@%rax",
        ));
        let probes = parse_notes(&data, Some(0x1c5973));
        assert_eq!(probes.len(), 2);
        assert_eq!(probes[1].name, "rethrow");
        assert_eq!(probes[1].vaddr, 0xa9139);
        assert_eq!(probes[1].args, ["8@%rdx", "8@%rax"]);
        // Prelinked 0x1000 higher.
        let moved = parse_notes(&data, Some(0x1c6973));
        assert_eq!(moved[0].vaddr, 0xa90a1 + 0x1000);
        // Truncated or garbage input: what can be read, no panic.
        assert_eq!(parse_notes(&data[..data.len() - 5], None).len(), 1);
        assert!(parse_notes(&[0xff; 40], None).is_empty());
    }

    #[test]
    fn register_operands_map_to_pt_regs() {
        assert_eq!(register_operand_offset("8@%rdx"), Some(96));
        assert_eq!(register_operand_offset("8@%rax"), Some(80));
        assert_eq!(register_operand_offset("8@-80(%rbx)"), None);
        assert_eq!(register_operand_offset("4@%eax"), None);
        assert_eq!(register_operand_offset("-4@$5"), None);
    }
}
