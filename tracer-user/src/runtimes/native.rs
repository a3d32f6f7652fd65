//! Every process, whatever its language: fatal and fault signals (with the
//! sender the kernel saw generate them), the crashing thread's stack
//! unwound from the copy the kernel took, and libraries loaded later
//! (libc's dlopen, followed by a return probe).

use std::collections::{HashMap, HashSet};

use tracer_common::{SIGINFO_KERNEL, SIGINFO_NONE, SignalGenerateRecord, SignalRecord};

const SIGKILL: i32 = 9;

use super::{Procs, Stacks, kernel_record};
use crate::unwind::Cut;
use crate::{
    probes::{kernel::KernelProbes, records},
    record::{Body, Clock, Record, Registers, SignalEvent, SignalInfo},
    signals,
    symbolize::{Frame, process::ProcessImage},
};

/// Senders remembered while their signal is pending; bounded so a signal
/// storm at a process that never dequeues cannot grow it without end.
const MAX_PENDING_SENDERS: usize = 4096;
/// Frames unwound from a stack copy at most.
const MAX_UNWIND_DEPTH: usize = 256;

/// Process side: the return probe on libc's dlopen, for a process that can
/// call it (placing a uprobe on a library every process maps costs the
/// kernel a walk over all of them: only where needed).
pub fn place_probes(probes: &mut KernelProbes, pid: u32, image: &ProcessImage) {
    if !image.may_dlopen() {
        return;
    }
    if let Some(libc) = image.libc()
        && let Err(err) = probes.follow_dlopen(pid, &libc)
        // (A failure because the process exec'd or died meanwhile is no news.)
        && crate::procfs::comm(pid).is_some()
    {
        log::warn!("pid {pid}: dlopen not followed: {err:#}");
    }
}

struct Sender {
    pid: u32,
    comm: String,
    code: i32,
}

/// Analysis side: signal records → `signal` records.
#[derive(Default)]
pub struct Signals {
    senders: HashMap<(u32, i32), Sender>,
    /// Processes whose fatal signal has been recorded: the kernel's
    /// per-thread group-exit deliveries that follow are the same news.
    fatal_seen: HashSet<u32>,
    /// Crash stacks unwound and symbolized, and the time it took.
    pub crash_stacks: u64,
    pub crash_stack_time: std::time::Duration,
}

impl Signals {
    /// Who sent a signal to a traced process (matched at delivery).
    pub fn on_generate(&mut self, r: &SignalGenerateRecord) {
        if self.senders.len() >= MAX_PENDING_SENDERS {
            self.senders.clear();
        }
        self.senders.insert(
            (r.target_pid, r.signo),
            Sender {
                pid: r.header.pid,
                comm: records::comm(&r.header),
                code: r.code,
            },
        );
    }

    /// The process is gone: its fatal signal is history.
    pub fn forget(&mut self, pid: u32) {
        self.fatal_seen.remove(&pid);
    }

    pub fn on_deliver(
        &mut self,
        r: &SignalRecord,
        procs: &mut Procs,
        stacks: &mut Stacks,
        clock: &Clock,
    ) -> Option<Record> {
        let pid = r.header.pid;
        // An exec ends the process's other threads with a SIGKILL the
        // kernel sets itself (de_thread): no siginfo, no group exit
        // (get_signal reports it for `signal->group_exec_task`). Nobody
        // killed them: the process goes on as the new program. (A SIGKILL
        // sent from elsewhere has made the process a group exit before
        // any thread dequeues it.) Told apart here, not in the kernel: the
        // test there doubled what the verifier checks of signal_deliver.
        if r.signo == SIGKILL && r.code == SIGINFO_NONE && r.group_exiting == 0 {
            return None;
        }
        let group_exit = r.group_exiting != 0 && r.code == SIGINFO_NONE;
        if group_exit && self.fatal_seen.contains(&pid) {
            return None;
        }
        if group_exit || r.handler == 0 {
            self.fatal_seen.insert(pid);
        }
        let pending = self.senders.remove(&(pid, r.signo));
        // SIGKILL (and signals in an exiting process) arrive without siginfo:
        // the sender recorded at generation time fills in.
        let code = match (r.code, &pending) {
            (SIGINFO_NONE, Some(s)) => Some(s.code),
            (SIGINFO_NONE, None) => None,
            (c, _) => Some(c),
        };
        let (sender_pid, sender_comm) = match code {
            Some(c) if signals::sent_by_process(c) => {
                let pid_from_info =
                    (r.code != SIGINFO_NONE && r.sender_pid != 0).then_some(r.sender_pid);
                let sender_pid = pid_from_info.or(pending.as_ref().map(|s| s.pid));
                let comm = pending
                    .as_ref()
                    .filter(|s| Some(s.pid) == sender_pid)
                    .map(|s| s.comm.clone());
                (sender_pid, comm)
            }
            Some(SIGINFO_KERNEL) => (None, None),
            _ => (None, None),
        };
        let addr = match code {
            Some(c) if signals::is_fault(r.signo) && c > 0 && c != SIGINFO_KERNEL => {
                Some(format!("{:#x}", r.fault_addr))
            }
            _ => None,
        };
        let started = std::time::Instant::now();
        let had_copy = stacks.contains(pid, r.header.tid);
        let (stack, signal_frames, walk_cut) = signal_pcs(r, procs, stacks);
        procs.ensure_image(pid, &stack);
        let image = procs.image(pid);
        let (frames, unmapped) = image
            .map(|i| i.symbolize_unwound(&stack, &signal_frames))
            .unwrap_or_else(|| (Vec::new(), true));
        if had_copy {
            self.crash_stacks += 1;
            self.crash_stack_time += started.elapsed();
        }
        let cut = walk_cut.or(unmapped.then_some(Cut::Unmapped));
        let frames_truncated = cut.is_some();
        Some(kernel_record(
            clock,
            &r.header,
            image.and_then(|i| i.exe.clone()),
            None,
            Body::Signal(Box::new(SignalEvent {
                signal: SignalInfo {
                    number: r.signo,
                    name: signals::display_name(r.signo),
                    code: code.and_then(|c| signals::code_name(r.signo, c).map(str::to_owned)),
                    addr,
                    sender_pid,
                    sender_comm,
                    disposition: match r.handler {
                        0 => "default",
                        1 => "ignored",
                        _ => "handler",
                    },
                },
                registers: Registers::from(&r.regs),
                frames,
                frames_truncated,
                truncated_by: cut.map(|c| c.to_string()),
            })),
        ))
    }
}

/// The crashing thread's frames: unwound with CFI from its stack copy
/// when there is one, else the kernel's frame-pointer walk.
/// The pcs, which of them are signal trampolines, and why the walk
/// stopped short.
fn signal_pcs(
    r: &SignalRecord,
    procs: &mut Procs,
    stacks: &mut Stacks,
) -> (Vec<u64>, Vec<usize>, Option<Cut>) {
    let depth = (r.stack_bytes as usize / 8).min(tracer_common::MAX_STACK_DEPTH);
    let fp: Vec<u64> = if depth > 0 {
        r.stack[..depth].to_vec()
    } else {
        vec![r.regs.ip]
    };
    let fp_cut = (depth == tracer_common::MAX_STACK_DEPTH)
        .then_some(Cut::Depth(tracer_common::MAX_STACK_DEPTH));
    let pid = r.header.pid;
    let switched = stacks.take_switched(pid, r.header.tid);
    match unwind_copy(procs, stacks, pid, r.header.tid, &r.regs, &fp) {
        // Stopped where a Go thread's system stack was entered from a
        // goroutine (`systemstack`): the runtime's traceback jumps to that
        // goroutine's stack, at the return address its saved sp holds,
        // and so does this walk.
        Some(u)
            if u.go_frames > 0 && u.truncated && switched.is_some() && {
                let bias = procs.exe_load_bias(pid);
                let last = u.pcs.last().map(|pc| pc.wrapping_sub(bias));
                procs
                    .go(pid)
                    .and_then(|b| b.pclntab.as_ref()?.find(last?))
                    .is_some_and(|f| f.name == "runtime.systemstack")
            } =>
        {
            let walked = switched.unwrap_or_default();
            let full = walked.len() == tracer_common::GO_GOROUTINE_FRAMES;
            // Its saved pc is systemstack_switch's, a stand-in for
            // systemstack itself: the frames above it follow.
            let goroutine = super::go::sched_stack(procs, pid, &walked);
            let mut pcs = u.pcs;
            pcs.extend(goroutine.iter().skip(1));
            let cut = full.then_some(Cut::Depth(pcs.len()));
            (pcs, u.signal_frames, cut)
        }
        // Go code always keeps frame pointers: past the end of the copy
        // (deep recursion), the kernel's walk goes further, from where
        // this walk stopped.
        Some(u) if u.go_frames > 0 && u.truncated && fp.len() > u.pcs.len() => {
            match continued_at(&u.pcs, &fp) {
                Some(k) => {
                    let mut pcs = u.pcs;
                    pcs.extend_from_slice(&fp[k..]);
                    (pcs, u.signal_frames, fp_cut)
                }
                None => (fp, Vec::new(), fp_cut),
            }
        }
        // The kernel's walk follows rbp even where it holds data, so
        // its length means nothing once CFI or Go's tables were used.
        Some(u) if u.cfi_frames > 0 || u.go_frames > 0 || u.pcs.len() >= fp.len() => {
            (u.pcs, u.signal_frames, u.cut)
        }
        _ => (fp, Vec::new(), fp_cut),
    }
}

/// Where the frame-pointer walk `fp` goes on past the last pc of a walk
/// that stopped (`walked`): just after the same return address, at the
/// depth nearest to the walk's own (the frame-pointer walk can only have
/// fewer frames above it: it skips frameless leaves). `None` when it
/// never passed there or has nothing more.
fn continued_at(walked: &[u64], fp: &[u64]) -> Option<usize> {
    let last = *walked.last()?;
    let depth = walked.len() - 1;
    let at: Vec<usize> = (0..fp.len()).filter(|&k| fp[k] == last).collect();
    let k = at
        .iter()
        .rev()
        .find(|&&k| k <= depth)
        .or(at.first())
        .copied()?;
    (k + 1 < fp.len()).then_some(k + 1)
}

/// A thread's frames from the stack copy the kernel sent for it (CFI,
/// frame pointers where there is none); `None` without a copy.
pub fn unwind_copy(
    procs: &mut Procs,
    stacks: &mut Stacks,
    pid: u32,
    tid: u32,
    regs: &tracer_common::Registers,
    known: &[u64],
) -> Option<crate::unwind::Unwound> {
    let copy = stacks.take(pid, tid)?;
    procs.ensure_image(pid, known);
    let image = procs.image(pid)?;
    let start = crate::unwind::Regs {
        rip: regs.ip,
        rsp: regs.sp,
        rbp: regs.bp,
        rbx: regs.bx,
        r12_15: [regs.r12, regs.r13, regs.r14, regs.r15],
    };
    let stack = crate::unwind::StackCopy {
        sp: copy.sp,
        hole: copy.hole,
        data: &copy.data,
    };
    Some(image.unwind(start, &stack, MAX_UNWIND_DEPTH))
}

/// Frames of a thread stopped at a probe (C++ throw, Rust panic), from
/// the stack copy sent with it, and whether they are cut short.
pub fn probe_stack(
    procs: &mut Procs,
    stacks: &mut Stacks,
    pid: u32,
    tid: u32,
    regs: &tracer_common::Registers,
) -> (Vec<Frame>, Option<Cut>) {
    let (pcs, signal_frames, walk_cut) = unwind_copy(procs, stacks, pid, tid, regs, &[regs.ip])
        .map_or(
            (vec![regs.ip], Vec::new(), Some(Cut::CopyEnd { bytes: 0 })),
            |u| (u.pcs, u.signal_frames, u.cut),
        );
    let (frames, unmapped) = procs
        .image(pid)
        .map(|i| i.symbolize_unwound(&pcs, &signal_frames))
        .unwrap_or_else(|| (Vec::new(), true));
    (frames, walk_cut.or(unmapped.then_some(Cut::Unmapped)))
}

#[cfg(test)]
mod tests {
    use super::continued_at;

    #[test]
    fn a_stopped_walk_goes_on_where_the_frame_pointer_walk_passed_its_last_pc() {
        // The frame-pointer walk lost a frameless leaf (0x20) and goes on
        // past the walk's last pc (0x40).
        assert_eq!(
            continued_at(&[0x10, 0x20, 0x30, 0x40], &[0x10, 0x30, 0x40, 0x50, 0x60]),
            Some(3)
        );
        // Recursion: the same return address at every depth; the one at
        // the walk's own depth (or the nearest above) is where it stopped.
        let deep = [0x10, 0x77, 0x77, 0x77];
        let fp = [0x10, 0x77, 0x77, 0x77, 0x77, 0x77, 0x90];
        assert_eq!(continued_at(&deep, &fp), Some(4));
        // Never passed there, or nothing after it.
        assert_eq!(continued_at(&[0x10, 0x20], &[0x10, 0x30]), None);
        assert_eq!(continued_at(&[0x10, 0x20], &[0x10, 0x20]), None);
        assert_eq!(continued_at(&[], &[0x10]), None);
    }
}
