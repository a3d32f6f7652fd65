//! Unwinding a crashed thread from a copy of its stack: with the DWARF CFI
//! (`.eh_frame`, else `.debug_frame`) of the module each pc is in, and with
//! frame pointers where a module has no CFI for a pc. Release builds of C,
//! C++ and Rust omit frame pointers, so the kernel's frame-pointer walk
//! stops after a frame or two; the CFI the compiler emits for exceptions
//! describes every frame.

pub mod cfi;

use std::sync::Arc;

/// x86_64 DWARF register numbers.
const RBX: u16 = 3;
const RBP: u16 = 6;
const RSP: u16 = 7;
const R12: u16 = 12;
const R15: u16 = 15;
const RA: u16 = 16;

/// The callee-saved registers CFI restores, plus pc and sp.
#[derive(Clone, Copy, Debug, Default)]
pub struct Regs {
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rbx: u64,
    /// r12..r15
    pub r12_15: [u64; 4],
}

impl Regs {
    fn get(&self, reg: u16) -> Option<u64> {
        Some(match reg {
            RBX => self.rbx,
            RBP => self.rbp,
            RSP => self.rsp,
            R12..=R15 => self.r12_15[(reg - R12) as usize],
            RA => self.rip,
            _ => return None,
        })
    }

    fn set(&mut self, reg: u16, v: u64) {
        match reg {
            RBX => self.rbx = v,
            RBP => self.rbp = v,
            RSP => self.rsp = v,
            R12..=R15 => self.r12_15[(reg - R12) as usize] = v,
            _ => {}
        }
    }
}

/// The copied stack bytes: `data` starts at `sp`; its first `hole` bytes
/// could not be read.
pub struct StackCopy<'a> {
    pub sp: u64,
    pub hole: usize,
    pub data: &'a [u8],
}

impl StackCopy<'_> {
    pub fn read(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.sp)?).ok()?;
        if off < self.hole {
            return None;
        }
        let bytes = self.data.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

/// Return addresses found, innermost first (`pcs[0]` is the pc itself).
#[derive(Debug, Default)]
pub struct Unwound {
    pub pcs: Vec<u64>,
    /// The walk stopped before the outermost frame (copy too short, no
    /// rule for a pc, depth limit).
    pub truncated: bool,
    /// Frames whose caller came from CFI (the rest from frame pointers).
    pub cfi_frames: usize,
}

/// What one step learnt: the caller's registers, or that this frame is the
/// outermost (CFI marks the return address undefined in `_start`, thread
/// entry points).
enum Step {
    Caller(Regs),
    Outermost,
    Stuck,
}

/// What the walk needs of a module: its call frame information.
/// (`symbolize::ElfModule` has it; the unwinder knows nothing else of it.)
pub trait CfiSource {
    fn cfi(&self) -> Option<&cfi::Cfi>;
}

/// The walk, given where each pc's module is and the pc's address in it.
pub fn walk<M: CfiSource>(
    module_at: impl Fn(u64) -> Option<(Arc<M>, u64)>,
    start: Regs,
    stack: &StackCopy<'_>,
    max: usize,
) -> Unwound {
    let mut out = Unwound::default();
    let mut regs = start;
    for depth in 0..max {
        out.pcs.push(regs.rip);
        // A return address points after the call: look up the call itself.
        let lookup = if depth == 0 {
            regs.rip
        } else {
            regs.rip.wrapping_sub(1)
        };
        let by_cfi =
            module_at(lookup).and_then(|(module, vaddr)| module.cfi()?.step(vaddr, &regs, stack));
        let step = match by_cfi {
            Some(step) => {
                out.cfi_frames += 1;
                step
            }
            None => frame_pointer_step(&regs, stack),
        };
        match step {
            Step::Outermost => return out,
            Step::Stuck => break,
            Step::Caller(caller) => {
                // Each caller's frame is above its callee's; a return
                // address 0 ends the chain.
                if caller.rip == 0 {
                    return out;
                }
                if caller.rsp <= regs.rsp {
                    break;
                }
                regs = caller;
            }
        }
    }
    out.truncated = true;
    out
}

/// The caller by the frame-pointer chain: [rbp] = caller's rbp, [rbp+8] =
/// return address.
fn frame_pointer_step(regs: &Regs, stack: &StackCopy<'_>) -> Step {
    if regs.rbp == 0 {
        return Step::Stuck;
    }
    match (stack.read(regs.rbp), stack.read(regs.rbp.wrapping_add(8))) {
        (Some(rbp), Some(ra)) => Step::Caller(Regs {
            rip: ra,
            rsp: regs.rbp.wrapping_add(16),
            rbp,
            ..*regs
        }),
        _ => Step::Stuck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_copy_reads_inside_only() {
        let data: Vec<u8> = (0u8..32).collect();
        let s = StackCopy {
            sp: 0x1000,
            hole: 0,
            data: &data,
        };
        assert_eq!(
            s.read(0x1000),
            Some(u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]))
        );
        assert_eq!(
            s.read(0x1018),
            Some(u64::from_le_bytes([24, 25, 26, 27, 28, 29, 30, 31]))
        );
        assert_eq!(s.read(0x1019), None);
        assert_eq!(s.read(0xfff), None);
    }

    #[test]
    fn frame_pointer_step_follows_the_chain() {
        // rbp = 0x1008: [0x1008] = saved rbp 0x1020, [0x1010] = ra 0x4242.
        let mut data = vec![0u8; 64];
        data[8..16].copy_from_slice(&0x1020u64.to_le_bytes());
        data[16..24].copy_from_slice(&0x4242u64.to_le_bytes());
        let s = StackCopy {
            sp: 0x1000,
            hole: 0,
            data: &data,
        };
        let regs = Regs {
            rip: 1,
            rsp: 0x1000,
            rbp: 0x1008,
            ..Default::default()
        };
        match frame_pointer_step(&regs, &s) {
            Step::Caller(c) => {
                assert_eq!((c.rip, c.rsp, c.rbp), (0x4242, 0x1018, 0x1020));
            }
            _ => panic!("no caller"),
        }
    }
}
