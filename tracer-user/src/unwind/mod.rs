//! Unwinding a crashed thread from a copy of its stack: with the DWARF CFI
//! (`.eh_frame`, else `.debug_frame`) of the module each pc is in, and with
//! frame pointers where a module has no CFI for a pc. Release builds of C,
//! C++ and Rust omit frame pointers, so the kernel's frame-pointer walk
//! stops after a frame or two; the CFI the compiler emits for exceptions
//! describes every frame. Go code is walked with Go's own tables (the
//! pcsp table of `.gopclntab`), as the Go runtime's traceback walks it: a
//! frameless leaf keeps its caller, and stripped Go binaries unwind too.

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
    /// Why it stopped there, when it did.
    pub cut: Option<Cut>,
    /// Frames whose caller came from CFI.
    pub cfi_frames: usize,
    /// Indexes in `pcs` of signal return trampolines: the handler above
    /// returns there; the pc after it is where the signal interrupted the
    /// thread (exact, not a return address), from the kernel's signal
    /// frame (gdb's `<signal handler called>`).
    pub signal_frames: Vec<usize>,
    /// Frames whose caller came from Go's pcsp table (the rest from frame
    /// pointers).
    pub go_frames: usize,
}

/// Why a walk stopped before the outermost frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// As many frames as a record holds.
    Depth(usize),
    /// The caller's frame lies above the copied stack bytes.
    CopyEnd { bytes: usize },
    /// The stack page the caller's frame is on could not be read.
    Unreadable,
    /// No CFI for this pc, and no frame-pointer chain to follow.
    NoRule { pc: u64 },
    /// A caller's frame below its callee's: a corrupt stack.
    Backwards,
    /// A return address in no mapped file.
    Unmapped,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Depth(n) => write!(f, "the {n}-frame limit"),
            Cut::CopyEnd { bytes } => {
                write!(f, "the end of the {} KiB stack copy", bytes / 1024)
            }
            Cut::Unreadable => write!(f, "an unreadable stack page"),
            Cut::NoRule { pc } => write!(f, "no unwind information for {pc:#x}"),
            Cut::Backwards => write!(f, "a frame below its callee's (corrupt stack?)"),
            Cut::Unmapped => write!(f, "a return address in no mapped file"),
        }
    }
}

/// Why the walk got no further at `regs`.
fn why_stuck(regs: &Regs, stack: &StackCopy<'_>) -> Cut {
    // The frame being left is at sp: unreadable if sp is in the hole; its
    // caller's part past the copy if sp is within a frame's reach of the
    // end (frames are rarely larger than a page).
    const FRAME_REACH: u64 = 4096;
    let end = stack.sp.saturating_add(stack.data.len() as u64);
    let hole_end = stack.sp.saturating_add(stack.hole as u64);
    if stack.hole > 0 && regs.rsp < hole_end {
        Cut::Unreadable
    } else if regs.rsp.saturating_add(FRAME_REACH) > end {
        Cut::CopyEnd {
            bytes: stack.data.len(),
        }
    } else {
        Cut::NoRule { pc: regs.rip }
    }
}

/// What one step learnt: the caller's registers, or that this frame is the
/// outermost (CFI marks the return address undefined in `_start`, thread
/// entry points).
enum Step {
    Caller(Regs),
    Outermost,
    Stuck,
}

/// What the walk needs of a module: its call frame information, and for
/// Go code the frame the Go runtime's tables describe.
/// (`symbolize::ElfModule` has them; the unwinder knows nothing else of it.)
pub trait UnwindInfo {
    fn cfi(&self) -> Option<&cfi::Cfi>;
    /// Whether `vaddr` is the signal return trampoline a handler returns
    /// to (the kernel's signal frame is on the stack above it).
    fn is_sigreturn(&self, _vaddr: u64) -> bool {
        false
    }
    /// The Go function frame at `vaddr`, when it is Go code.
    fn go_frame(&self, vaddr: u64) -> Option<GoFrame>;
}

/// A Go function's frame at one pc, from `.gopclntab`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoFrame {
    /// `sp_delta` bytes between sp and the return address.
    Sized { sp_delta: u64 },
    /// The outermost frame of a stack (goexit, mstart, rt0_go).
    Top,
    /// A function that switches stacks (systemstack, mcall, morestack …)
    /// or otherwise writes sp: the runtime's traceback stops there too.
    SpWrite,
}

/// The walk, given where each pc's module is and the pc's address in it.
pub fn walk<M: UnwindInfo>(
    module_at: impl Fn(u64) -> Option<(Arc<M>, u64)>,
    start: Regs,
    stack: &StackCopy<'_>,
    max: usize,
) -> Unwound {
    let mut out = Unwound::default();
    let mut regs = start;
    for depth in 0..max {
        out.pcs.push(regs.rip);
        // Go code: looked up at the pc itself, return addresses included,
        // as the runtime's traceback does (Go never ends a function with a
        // call, and the frame above sigpanic is at the faulting pc).
        let at_pc = module_at(regs.rip);
        let go = at_pc
            .as_ref()
            .and_then(|(module, vaddr)| module.go_frame(*vaddr));
        let sigreturn = depth > 0
            && go.is_none()
            && at_pc
                .as_ref()
                .is_some_and(|(module, vaddr)| module.is_sigreturn(*vaddr));
        let step = if sigreturn {
            out.signal_frames.push(out.pcs.len() - 1);
            signal_frame_step(&regs, stack)
        } else if let Some(frame) = go {
            out.go_frames += 1;
            go_step(frame, &regs, stack)
        } else {
            // A return address points after the call: look up the call itself.
            // The pc a signal interrupted (after a signal frame) is exact.
            let exact = depth == 0 || out.signal_frames.last() == Some(&(depth - 1));
            let lookup = if exact {
                regs.rip
            } else {
                regs.rip.wrapping_sub(1)
            };
            let by_cfi = module_at(lookup)
                .and_then(|(module, vaddr)| module.cfi()?.step(vaddr, &regs, stack));
            match by_cfi {
                Some(step) => {
                    out.cfi_frames += 1;
                    step
                }
                None => frame_pointer_step(&regs, stack),
            }
        };
        match step {
            Step::Outermost => return out,
            Step::Stuck => {
                out.cut = Some(why_stuck(&regs, stack));
                break;
            }
            Step::Caller(caller) => {
                // Each caller's frame is above its callee's; a return
                // address 0 ends the chain.
                if caller.rip == 0 {
                    return out;
                }
                if caller.rsp <= regs.rsp {
                    out.cut = Some(Cut::Backwards);
                    break;
                }
                regs = caller;
            }
        }
    }
    out.truncated = true;
    out.cut.get_or_insert(Cut::Depth(max));
    out
}

/// The caller of a Go frame: the return address sits `sp_delta` above sp
/// (the runtime's `frame.fp = sp + funcspdelta + PtrSize`); a frame that
/// has a size saved its caller's rbp just below it.
fn go_step(frame: GoFrame, regs: &Regs, stack: &StackCopy<'_>) -> Step {
    let sp_delta = match frame {
        GoFrame::Top => return Step::Outermost,
        GoFrame::SpWrite => return Step::Stuck,
        GoFrame::Sized { sp_delta } => sp_delta,
    };
    let Some(ra_at) = regs.rsp.checked_add(sp_delta) else {
        return Step::Stuck;
    };
    let Some(ra) = stack.read(ra_at) else {
        return Step::Stuck;
    };
    let rbp = if sp_delta >= 8 {
        stack.read(ra_at - 8).unwrap_or(regs.rbp)
    } else {
        regs.rbp
    };
    Step::Caller(Regs {
        rip: ra,
        rsp: ra_at.wrapping_add(8),
        rbp,
        ..*regs
    })
}

/// Out of a signal handler: at the trampoline it returns to, sp is the
/// kernel's `ucontext` (x86-64 `rt_sigframe` after its return address);
/// its `uc_mcontext` holds the interrupted thread's registers.
fn signal_frame_step(regs: &Regs, stack: &StackCopy<'_>) -> Step {
    // offsetof(struct ucontext, uc_mcontext), then struct sigcontext's
    // r12…r15, rbp, rbx, rsp, rip.
    const MCONTEXT: u64 = 40;
    let sc = regs.rsp.wrapping_add(MCONTEXT);
    let reg = |off: u64| stack.read(sc.wrapping_add(off));
    let (Some(rip), Some(rsp), Some(rbp), Some(rbx)) = (reg(128), reg(120), reg(80), reg(88))
    else {
        return Step::Stuck;
    };
    let (Some(r12), Some(r13), Some(r14), Some(r15)) = (reg(32), reg(40), reg(48), reg(56)) else {
        return Step::Stuck;
    };
    Step::Caller(Regs {
        rip,
        rsp,
        rbp,
        rbx,
        r12_15: [r12, r13, r14, r15],
    })
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
    fn a_cut_stack_says_why() {
        let data = vec![0u8; 32 * 1024];
        let regs = |rsp: u64| Regs {
            rip: 0x401000,
            rsp,
            rbp: 0,
            rbx: 0,
            r12_15: [0; 4],
        };
        let copy = |hole: usize| StackCopy {
            sp: 0x10000,
            hole,
            data: &data,
        };
        assert_eq!(
            why_stuck(&regs(0x10000 + 31 * 1024), &copy(0)),
            Cut::CopyEnd { bytes: 32 * 1024 }
        );
        assert_eq!(
            why_stuck(&regs(0x10000 + 1024), &copy(0)),
            Cut::NoRule { pc: 0x401000 }
        );
        assert_eq!(
            why_stuck(&regs(0x10000 + 1024), &copy(4096)),
            Cut::Unreadable
        );
        assert_eq!(
            Cut::CopyEnd { bytes: 32 * 1024 }.to_string(),
            "the end of the 32 KiB stack copy"
        );
    }

    /// A module whose code is all Go: frame sizes by pc.
    struct GoModule(Vec<(u64, GoFrame)>);

    impl UnwindInfo for GoModule {
        fn cfi(&self) -> Option<&cfi::Cfi> {
            None
        }
        fn go_frame(&self, vaddr: u64) -> Option<GoFrame> {
            self.0.iter().find(|(pc, _)| *pc == vaddr).map(|(_, f)| *f)
        }
    }

    #[test]
    fn go_frames_walk_by_frame_size_through_a_frameless_leaf() {
        // leaf (pc 0x10, no frame, rbp not its own) → caller (pc 0x20,
        // 0x18-byte frame, saved rbp below its return address) → goexit.
        let mut data = vec![0u8; 64];
        let put = |d: &mut Vec<u8>, off: usize, v: u64| {
            d[off..off + 8].copy_from_slice(&v.to_le_bytes());
        };
        put(&mut data, 0, 0x20); // leaf's return address, at sp
        put(&mut data, 8 + 0x10, 0x5555); // caller's saved rbp
        put(&mut data, 8 + 0x18, 0x30); // caller's return address
        let module = Arc::new(GoModule(vec![
            (0x10, GoFrame::Sized { sp_delta: 0 }),
            (0x20, GoFrame::Sized { sp_delta: 0x18 }),
            (0x30, GoFrame::Top),
        ]));
        let stack = StackCopy {
            sp: 0x1000,
            hole: 0,
            data: &data,
        };
        let start = Regs {
            rip: 0x10,
            rsp: 0x1000,
            // The leaf did not set up a frame: rbp is its caller's caller's.
            rbp: 0x9999,
            ..Default::default()
        };
        let u = walk(|pc| Some((Arc::clone(&module), pc)), start, &stack, 16);
        assert_eq!(u.pcs, vec![0x10, 0x20, 0x30]);
        assert!(!u.truncated);
        assert_eq!(u.go_frames, 3);
    }

    #[test]
    fn go_walk_stops_at_a_stack_switch() {
        let data = 0x20u64.to_le_bytes().to_vec();
        let module = Arc::new(GoModule(vec![(0x10, GoFrame::SpWrite)]));
        let stack = StackCopy {
            sp: 0x1000,
            hole: 0,
            data: &data,
        };
        let start = Regs {
            rip: 0x10,
            rsp: 0x1000,
            ..Default::default()
        };
        let u = walk(|pc| Some((Arc::clone(&module), pc)), start, &stack, 16);
        assert_eq!(u.pcs, vec![0x10]);
        assert!(u.truncated);
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
