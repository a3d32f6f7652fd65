//! The signal programs: `signal_deliver` (with the crash stack snapshot,
//! also taken by the C++ and Rust probes) and `signal_generate`.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_USER_STACK,
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{
            bpf_get_current_task_btf, bpf_get_stack, bpf_loop,
            bpf_probe_read_user as raw_probe_read_user, bpf_task_pt_regs,
        },
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tracer_common::{
    EventKind, MAX_STACK_DEPTH, SEND_SIG_PRIV, SIGINFO_KERNEL, SIGINFO_NONE, STACK_CHUNK,
    STACK_SNAPSHOT_BYTES, SignalGenerateRecord, SignalRecord, StackRecord,
};

use crate::maps::EVENTS;
use crate::util::{
    copy_registers, count_lost, fill_header, is_traced, offsets, read_kernel, read_kernel_or_zero,
};

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;
const SIGALRM: i32 = 14;
const SIGVTALRM: i32 = 26;
const SIGPROF: i32 = 27;
const SIGIO: i32 = 29;
const SIGSYS: i32 = 31;
const SIGRTMIN: i32 = 32;

/// `signal_struct::flags` bit set once the whole process is exiting.
pub(crate) const SIGNAL_GROUP_EXIT: u32 = 0x4;

const fn bit(sig: i32) -> u64 {
    1u64 << sig
}

/// Signals that runtimes send themselves all the time (job control, child
/// status, Go's SIGURG preemption, profilers' timers, window size, I/O
/// readiness). Recorded only when they would kill the process.
const NOISY: u64 = bit(17) // SIGCHLD
    | bit(18) // SIGCONT
    | bit(19) // SIGSTOP
    | bit(20) // SIGTSTP
    | bit(21) // SIGTTIN
    | bit(22) // SIGTTOU
    | bit(23) // SIGURG
    | bit(28) // SIGWINCH
    | bit(SIGALRM)
    | bit(SIGVTALRM)
    | bit(SIGPROF)
    | bit(SIGIO);

/// Of the noisy ones, those whose default action terminates the process.
const NOISY_BUT_FATAL_BY_DEFAULT: u64 = bit(SIGALRM) | bit(SIGVTALRM) | bit(SIGPROF) | bit(SIGIO);

const SIG_DFL: u64 = 0;

/// Whether a delivery of `sig` with disposition `handler` belongs in a crash
/// timeline.
#[inline(always)]
fn is_interesting(sig: i32, handler: u64) -> bool {
    if sig <= 0 || sig > 64 {
        return false;
    }
    if sig >= SIGRTMIN {
        // Real-time signals: libc uses some internally; only a default
        // (fatal) disposition matters.
        return handler == SIG_DFL;
    }
    let b = bit(sig);
    if NOISY & b == 0 {
        return true;
    }
    handler == SIG_DFL && NOISY_BUT_FATAL_BY_DEFAULT & b != 0
}

#[inline(always)]
fn is_fault(sig: i32) -> bool {
    matches!(sig, SIGILL | SIGTRAP | SIGBUS | SIGFPE | SIGSEGV | SIGSYS)
}

// ---------------------------------------------------------------------------
// signal_deliver(int sig, struct kernel_siginfo *info, struct k_sigaction *ka)
// Runs in the receiving thread as it dequeues the signal, before the action.
// ---------------------------------------------------------------------------
#[raw_tracepoint(tracepoint = "signal_deliver")]
pub fn signal_deliver(ctx: RawTracePointContext) -> i32 {
    try_signal_deliver(&ctx);
    0
}

#[inline(always)]
fn try_signal_deliver(ctx: &RawTracePointContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    let sig: i32 = ctx.arg(0);
    let info: u64 = ctx.arg(1);
    let ka: u64 = ctx.arg(2);
    // struct k_sigaction { struct sigaction sa { __sighandler_t sa_handler; … } }
    let handler: u64 = read_kernel(ka, 0).unwrap_or(SIG_DFL);
    if !is_interesting(sig, handler) {
        return;
    }
    // Go's handler turns these into a crash that prints every goroutine
    // (SIGQUIT's dump): from now on the goroutines it prints are recorded.
    // A fault in Go code becomes a panic instead: the sigpanic probe takes
    // the mark back (a fault in C code of a cgo call, or sent by kill,
    // crashes with the dump).
    if matches!(
        sig,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGSYS | SIGSEGV | SIGBUS | SIGFPE
    ) && handler > 1
        && let Some(p) = crate::maps::GO_PROCESSES.get_ptr_mut(&tgid)
    {
        // SAFETY: a plain store into the map's value.
        unsafe { (*p).dumping = tracer_common::GO_DUMP_SYSTEM };
    }

    let off = offsets();
    // SAFETY: helper without preconditions in tracing programs.
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let signal: u64 = read_kernel_or_zero(task, off.task_signal);
    let flags: u32 = read_kernel_or_zero(signal, off.signal_flags);
    let group_exiting = flags & SIGNAL_GROUP_EXIT != 0;
    // Once a process is exiting, every thread dequeues a SIGKILL with no
    // siginfo. The exit's own code says why: 0 for exit_group(), else the
    // signal that is killing the process. That is news when nobody saw it
    // delivered: a fatal signal with default action (SIGTERM, SIGKILL …)
    // is turned into this group exit as it is sent. Userspace keeps the
    // first such record per process; exit_group() is not a signal at all.
    let mut sig = sig;
    let mut group_kill = false;
    if sig == SIGKILL && group_exiting {
        let code: u32 = read_kernel_or_zero(signal, off.signal_group_exit_code);
        let killer = (code & 0x7f) as i32;
        if killer == 0 {
            return;
        }
        sig = killer;
        group_kill = info == 0;
    }

    // SAFETY: the helper takes the current task; we only read through it.
    let regs_ptr = unsafe { bpf_task_pt_regs(task as *mut _) } as u64;
    // A crash (not the kernel's group-exit SIGKILL, not a request like
    // SIGTERM): copy the stack first, so userspace has it when the signal
    // record arrives, and can unwind code without frame pointers.
    // A process killed (SIGTERM, SIGINT, SIGKILL … with the default
    // action): where it was is half of its story, and the frame-pointer
    // walk alone loses the callers of frameless code (a syscall wrapper,
    // where a killed process usually sits): its first thread to dequeue
    // the kill gets a copy too.
    let copy = if group_kill {
        first_kill_copy(tgid, signal)
    } else {
        wants_stack(sig) && !(group_exiting && info == 0)
    };
    if copy {
        // What ld.so loaded, first: the process may be gone before /proc
        // could show it.
        crate::modules::send_modules(tracer_common::MODULES_AT_CRASH);
        let sp: u64 = read_kernel_or_zero(regs_ptr, PT_REGS_SP);
        if sp != 0 {
            snapshot_stack(sp);
        }
        // A Go thread on its system stack: the goroutine it left.
        let g: u64 = read_kernel_or_zero(regs_ptr, PT_REGS_R14);
        if g != 0 {
            crate::go::switched_goroutine(tgid, g);
        }
    }

    let Some(mut entry) = EVENTS.reserve::<SignalRecord>(0) else {
        count_lost(EventKind::SignalDeliver);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(
        unsafe { addr_of_mut!((*rec).header) },
        EventKind::SignalDeliver,
    );

    let (code, errno, sender_pid, fault_addr) = if info == 0 {
        (SIGINFO_NONE, 0, 0, 0)
    } else if info == SEND_SIG_PRIV {
        (SIGINFO_KERNEL, 0, 0, 0)
    } else {
        // kernel_siginfo: si_signo @0, si_errno @4, si_code @8, union @16:
        // _kill { si_pid @16, si_uid @20 }, _sigfault { si_addr @16 }.
        let errno: i32 = read_kernel_or_zero(info, 4);
        let code: i32 = read_kernel(info, 8).unwrap_or(SIGINFO_NONE);
        let (pid, addr) = if code <= 0 {
            (read_kernel_or_zero::<u32>(info, 16), 0)
        } else if is_fault(sig) {
            (0, read_kernel_or_zero::<u64>(info, 16))
        } else {
            (0, 0)
        };
        (code, errno, pid, addr)
    };

    // SAFETY: every field of the reservation is written below (the stack
    // array only up to `stack_bytes`, which is all userspace reads).
    unsafe {
        addr_of_mut!((*rec).signo).write(sig);
        addr_of_mut!((*rec).code).write(code);
        addr_of_mut!((*rec).errno).write(errno);
        addr_of_mut!((*rec).sender_pid).write(sender_pid);
        addr_of_mut!((*rec).fault_addr).write(fault_addr);
        addr_of_mut!((*rec).handler).write(handler);
        addr_of_mut!((*rec).group_exiting).write(group_exiting as u32);

        // Field by field into the record: a `pt_regs` on the stack was 168
        // of the 496 bytes of this program's deepest call chain (through
        // send_modules and its list walk), 16 under the verifier's limit.
        copy_registers(addr_of_mut!((*rec).regs), regs_ptr);

        let stack = addr_of_mut!((*rec).stack) as *mut core::ffi::c_void;
        let n = bpf_get_stack(
            ctx.as_ptr(),
            stack,
            (MAX_STACK_DEPTH * 8) as u32,
            BPF_F_USER_STACK as u64,
        );
        addr_of_mut!((*rec).stack_bytes).write(if n > 0 { n as u32 } else { 0 });
    }
    entry.submit(0);
}

/// `pt_regs.sp` on x86_64.
const PT_REGS_SP: u32 = 152;
/// `pt_regs.r14` on x86_64.
const PT_REGS_R14: u32 = 8;
const SIGQUIT: i32 = 3;
const SIGABRT: i32 = 6;

/// True for the first thread of a killed process to get here (see
/// [`KILL_SNAPSHOTS`](crate::maps::KILL_SNAPSHOTS)).
#[inline(always)]
fn first_kill_copy(tgid: u32, signal: u64) -> bool {
    // SAFETY: the value is copied out at once.
    if unsafe { crate::maps::KILL_SNAPSHOTS.get(&tgid) }.copied() == Some(signal) {
        return false;
    }
    crate::maps::KILL_SNAPSHOTS
        .insert(&tgid, &signal, 0)
        .is_ok()
}

/// Signals that mean the thread crashed where it stands.
#[inline(always)]
fn wants_stack(sig: i32) -> bool {
    is_fault(sig) || sig == SIGABRT || sig == SIGSYS || sig == SIGQUIT
}

/// Copies the user stack from `sp` up, a page at a time (the first chunk up
/// to sp's page end), until [`STACK_SNAPSHOT_BYTES`] or an unmapped page.
#[inline(always)]
pub(crate) fn snapshot_stack(sp: u64) {
    let Some(mut entry) = EVENTS.reserve::<StackRecord>(0) else {
        count_lost(EventKind::Stack);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Stack);
    let page = STACK_CHUNK as u64;
    let mut copy = StackCopy {
        data: unsafe { addr_of_mut!((*rec).data) } as *mut u8,
        copied: 0,
        hole: 0,
        addr: sp,
        len: page - (sp & (page - 1)),
    };
    // bpf_loop: the verifier checks one chunk's copy, not nine.
    // SAFETY: `copy_step` matches the callback signature bpf_loop calls;
    // `copy` outlives the call.
    unsafe {
        bpf_loop(
            (STACK_SNAPSHOT_BYTES / STACK_CHUNK + 1) as u32,
            copy_step as *mut core::ffi::c_void,
            addr_of_mut!(copy) as *mut core::ffi::c_void,
            0,
        );
    }
    let (copied, hole) = (copy.copied, copy.hole);
    // SAFETY: writes into our reservation.
    unsafe {
        addr_of_mut!((*rec).sp).write(sp);
        addr_of_mut!((*rec).len).write(copied as u32);
        addr_of_mut!((*rec).hole).write(hole as u32);
    }
    entry.submit(0);
}

/// The state of a stack copy: where the next chunk goes and comes from,
/// how long it is, how much is copied, how much could not be read first.
struct StackCopy {
    data: *mut u8,
    copied: u64,
    /// Bytes from sp that could not be read: a stack overflow faults with
    /// sp in the guard page, the frames above it are on the next page.
    hole: u64,
    addr: u64,
    len: u64,
}

/// One chunk (the first up to sp's page end, then a page at a time); 1
/// (stop) at [`STACK_SNAPSHOT_BYTES`] or an unmapped page past the first.
#[inline(never)]
extern "C" fn copy_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes the `StackCopy` given to it.
    let copy = unsafe { &mut *(ctx as *mut StackCopy) };
    let page = STACK_CHUNK as u64;
    let len = copy.len;
    if copy.copied >= STACK_SNAPSHOT_BYTES as u64 || len == 0 || len > page {
        return 1;
    }
    // The mask keeps the verifier's view of the offset inside the first
    // STACK_SNAPSHOT_BYTES; `data` has one chunk to spare.
    let off = (copy.copied & (STACK_SNAPSHOT_BYTES as u64 - 1)) as usize;
    // SAFETY: off < STACK_SNAPSHOT_BYTES and len <= STACK_CHUNK: inside the
    // reservation; the helper checks the user address.
    let ok = unsafe {
        raw_probe_read_user(
            copy.data.add(off) as *mut _,
            len as u32,
            copy.addr as *const _,
        )
    } >= 0;
    if !ok {
        if copy.copied != 0 {
            return 1;
        }
        copy.hole = len;
    }
    copy.copied += len;
    copy.addr += len;
    copy.len = page;
    0
}

// ---------------------------------------------------------------------------
// signal_generate(int sig, struct kernel_siginfo *info, struct task_struct
//                 *task, int group, int result)
// Runs in the sender. Gives "who sent it" for signals sent to traced processes.
// ---------------------------------------------------------------------------
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate(ctx: RawTracePointContext) -> i32 {
    try_signal_generate(&ctx);
    0
}

#[inline(always)]
fn try_signal_generate(ctx: &RawTracePointContext) {
    let sig: i32 = ctx.arg(0);
    let info: u64 = ctx.arg(1);
    let target: u64 = ctx.arg(2);
    let group: i32 = ctx.arg(3);
    let result: i32 = ctx.arg(4);
    let off = offsets();
    let Some(target_pid) = read_kernel::<u32>(target, off.task_tgid) else {
        return;
    };
    if is_traced(target_pid).is_none() {
        return;
    }
    if sig != SIGKILL && !is_interesting(sig, SIG_DFL) {
        return;
    }
    let code = if info == 0 {
        0 // SEND_SIG_NOINFO: sent by a process without siginfo (SI_USER)
    } else if info == SEND_SIG_PRIV {
        SIGINFO_KERNEL
    } else {
        read_kernel::<i32>(info, 8).unwrap_or(SIGINFO_NONE)
    };
    if code > 0 && code != SIGINFO_KERNEL {
        // A fault the kernel raises in the faulting thread itself: the
        // delivery record has everything, there is no sender to name.
        return;
    }
    let target_tid = read_kernel_or_zero::<u32>(target, off.task_pid);

    let Some(mut entry) = EVENTS.reserve::<SignalGenerateRecord>(0) else {
        count_lost(EventKind::SignalGenerate);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(
        unsafe { addr_of_mut!((*rec).header) },
        EventKind::SignalGenerate,
    );
    // SAFETY: writes into our reservation.
    unsafe {
        addr_of_mut!((*rec).signo).write(sig);
        addr_of_mut!((*rec).code).write(code);
        addr_of_mut!((*rec).target_pid).write(target_pid);
        addr_of_mut!((*rec).target_tid).write(target_tid);
        addr_of_mut!((*rec).result).write(result);
        addr_of_mut!((*rec).group).write(group as u32);
    }
    entry.submit(0);
}
