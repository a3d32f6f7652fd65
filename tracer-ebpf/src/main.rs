//! crashtrace's kernel side.
//!
//! Tracepoints on the kernel's signal and process-lifetime paths. Every
//! program first checks that the process is in `TRACED` (a hash lookup), so
//! untraced processes pay one map lookup on these already-slow paths and
//! nothing else. Records go to one ring buffer; a reservation that fails is
//! counted in `LOST` so userspace can report exact drop counts.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile};

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_F_USER_STACK, pt_regs},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_user,
        generated::{
            bpf_get_attach_cookie, bpf_get_current_task_btf, bpf_get_stack,
            bpf_probe_read_user as raw_probe_read_user, bpf_task_pt_regs,
        },
    },
    macros::{btf_tracepoint, map, uprobe, uretprobe},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, ProbeContext, RetProbeContext},
};
use tracer_common::{
    COMM_LEN, CXX_NAME_BYTES, CXX_TERMINATE, CXX_THROW, CXX_THROWS_PER_SEC, CXX_TYPES,
    CXX_WHAT_BYTES, CxxRecord, DLOPEN_PATH_BYTES, DlopenRecord, EXEC_CANDIDATE, EXEC_DROPPED,
    EXEC_FILENAME_BYTES, EXEC_WATCHED, EventKind, ExecRecord, ExitRecord, ForkRecord,
    GO_DEFER_BITS_VALID, GO_DEFER_CALL_VALID, GO_DEFER_RECORDS, GO_NO_FIELD, GO_PANIC_GOEXIT,
    GO_PANIC_RECOVERED, GO_PANIC_REPANICKED, GO_STACK_FROM_SCHED, GO_STACK_SNAPSHOT,
    GO_STRING_BYTES, GO_VALUE_BYTES, GoConfig, GoProbe, GoRecord, Header, KernelOffsets,
    LOST_COUNTERS, MAX_GO_BINARIES, MAX_STACK_DEPTH, RUST_FILE_BYTES, RUST_MSG_BYTES, Registers,
    RustPanicMessageRecord, RustPanicRecord, SEND_SIG_PRIV, SIGINFO_KERNEL, SIGINFO_NONE,
    STACK_CHUNK, STACK_SNAPSHOT_BYTES, SignalGenerateRecord, SignalRecord, StackRecord,
    TracedProcess, WatchedFile,
};

/// Filled in by userspace from the running kernel's BTF before loading.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_signal: 0,
    task_exit_code: 0,
    signal_flags: 0,
    signal_group_exit_code: 0,
    signal_live: 0,
    binprm_file: 0,
    file_inode: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    task_mm: 0,
    mm_start_code: 0,
    mm_end_code: 0,
    binprm_filename: 0,
    task_thread_pid: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
};

/// Files whose processes are traced from their exec on (value: follow
/// forks), keyed by (device, inode): `attach --exe`, the daemon.
#[map]
static WATCHED_FILES: HashMap<WatchedFile, u32> = HashMap::with_max_entries(1024, 0);

/// Process names (comm, NUL-padded) whose processes are traced from their
/// exec on (value: follow forks): the daemon's comm selector.
#[map]
static WATCHED_COMMS: HashMap<[u8; COMM_LEN], u32> = HashMap::with_max_entries(256, 0);

/// Slot 0 non-zero: send an exec record for every exec on the host (the
/// daemon's comm and "all Go programs" selectors look at each program).
#[map]
static EXEC_ALL: Array<u32> = Array::with_max_entries(1, 0);

/// Processes (tgid) being traced. Written by userspace at attach and by the
/// fork program for children of processes traced with `follow_forks`.
#[map]
static TRACED: HashMap<u32, TracedProcess> = HashMap::with_max_entries(16384, 0);

/// Userspace resizes this at load time (`--ring-buffer-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Go runtime layout per traced Go binary, indexed by the slot in the
/// high half of each Go uprobe's cookie.
#[map]
static GO_CONFIG: Array<GoConfig> = Array::with_max_entries(MAX_GO_BINARIES, 0);

/// Hits of the Go uprobes (per CPU), for `-v` and the benchmarks: what a
/// traced program pays is this count times the cost of one hit.
#[map]
static GO_PROBE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Go 1.21: the code pointer of the last open-coded deferred call a
/// goroutine ran while panicking (runtime.deferCallSave), keyed by
/// [`goroutine_key`]; read and removed at runtime.recovery.
#[map]
static GO_LAST_DEFER_CALL: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

/// Records that found the ring buffer full, per record kind, per CPU.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_COUNTERS, 0);

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
const SIGNAL_GROUP_EXIT: u32 = 0x4;

/// Frames walked by hand from a goroutine's saved context (a bounded loop).
const GO_SCHED_FRAMES: usize = 64;

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

#[inline(always)]
fn offsets() -> KernelOffsets {
    // SAFETY: a plain read of our own read-only global; volatile so the
    // compiler does not fold the zeros it was compiled with.
    unsafe { read_volatile(addr_of!(OFFSETS)) }
}

#[inline(always)]
fn read_kernel<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a fault is an Err.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

#[inline(always)]
fn is_traced(tgid: u32) -> Option<TracedProcess> {
    // SAFETY: the value is copied out before any map update.
    unsafe { TRACED.get(&tgid) }.copied()
}

#[inline(always)]
fn count_lost(kind: EventKind) {
    if let Some(counter) = LOST.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot; programs do not preempt each other on one CPU
        // for these tracepoint programs.
        unsafe { *counter += 1 };
    }
}

/// The record's copy of the user registers.
#[inline(always)]
fn registers(r: &pt_regs) -> Registers {
    Registers {
        ip: r.rip,
        sp: r.rsp,
        bp: r.rbp,
        flags: r.eflags,
        ax: r.rax,
        bx: r.rbx,
        cx: r.rcx,
        dx: r.rdx,
        si: r.rsi,
        di: r.rdi,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
    }
}

#[inline(always)]
fn fill_header(header: *mut Header, kind: EventKind) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
    // SAFETY: `header` points into a ring-buffer reservation of the record.
    unsafe {
        addr_of_mut!((*header).kind).write(kind as u32);
        addr_of_mut!((*header).pid).write((pid_tgid >> 32) as u32);
        addr_of_mut!((*header).tid).write(pid_tgid as u32);
        addr_of_mut!((*header)._pad).write(0);
        addr_of_mut!((*header).ts_ns).write(bpf_ktime_get_ns());
        addr_of_mut!((*header).comm).write(comm);
    }
}

// ---------------------------------------------------------------------------
// signal_deliver(int sig, struct kernel_siginfo *info, struct k_sigaction *ka)
// Runs in the receiving thread as it dequeues the signal, before the action.
// ---------------------------------------------------------------------------
#[btf_tracepoint(function = "signal_deliver")]
pub fn signal_deliver(ctx: BtfTracePointContext) -> i32 {
    try_signal_deliver(&ctx);
    0
}

#[inline(always)]
fn try_signal_deliver(ctx: &BtfTracePointContext) {
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

    let off = offsets();
    // SAFETY: helper without preconditions in tracing programs.
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let signal: u64 = read_kernel(task, off.task_signal).unwrap_or(0);
    let flags: u32 = read_kernel(signal, off.signal_flags).unwrap_or(0);
    let group_exiting = flags & SIGNAL_GROUP_EXIT != 0;
    // Once a process is exiting, every thread dequeues a SIGKILL with no
    // siginfo. The exit's own code says why: 0 for exit_group(), else the
    // signal that is killing the process. That is news when nobody saw it
    // delivered: a fatal signal with default action (SIGTERM, SIGKILL …)
    // is turned into this group exit as it is sent. Userspace keeps the
    // first such record per process; exit_group() is not a signal at all.
    let mut sig = sig;
    if sig == SIGKILL && group_exiting {
        let code: u32 = read_kernel(signal, off.signal_group_exit_code).unwrap_or(0);
        let killer = (code & 0x7f) as i32;
        if killer == 0 {
            return;
        }
        sig = killer;
    }

    // SAFETY: the helper takes the current task; we only read through it.
    let regs_ptr = unsafe { bpf_task_pt_regs(task as *mut _) } as u64;
    // A crash (not the kernel's group-exit SIGKILL, not a request like
    // SIGTERM): copy the stack first, so userspace has it when the signal
    // record arrives, and can unwind code without frame pointers.
    if wants_stack(sig) && !(group_exiting && info == 0) {
        let sp: u64 = read_kernel(regs_ptr, PT_REGS_SP).unwrap_or(0);
        if sp != 0 {
            snapshot_stack(sp);
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
        let errno: i32 = read_kernel(info, 4).unwrap_or(0);
        let code: i32 = read_kernel(info, 8).unwrap_or(SIGINFO_NONE);
        let (pid, addr) = if code <= 0 {
            (read_kernel::<u32>(info, 16).unwrap_or(0), 0)
        } else if is_fault(sig) {
            (0, read_kernel::<u64>(info, 16).unwrap_or(0))
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

        let r: pt_regs = read_kernel(regs_ptr, 0).unwrap_or(core::mem::zeroed());
        addr_of_mut!((*rec).regs).write(registers(&r));

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
const SIGQUIT: i32 = 3;
const SIGABRT: i32 = 6;

/// Signals that mean the thread crashed where it stands.
#[inline(always)]
fn wants_stack(sig: i32) -> bool {
    is_fault(sig) || sig == SIGABRT || sig == SIGSYS || sig == SIGQUIT
}

/// Copies the user stack from `sp` up, a page at a time (the first chunk up
/// to sp's page end), until [`STACK_SNAPSHOT_BYTES`] or an unmapped page.
#[inline(always)]
fn snapshot_stack(sp: u64) {
    let Some(mut entry) = EVENTS.reserve::<StackRecord>(0) else {
        count_lost(EventKind::Stack);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Stack);
    let data = unsafe { addr_of_mut!((*rec).data) } as *mut u8;
    let page = STACK_CHUNK as u64;
    let mut copied: u64 = 0;
    // Bytes from sp that could not be read: a stack overflow faults with sp
    // in the guard page, the frames above it are on the next page.
    let mut hole: u64 = 0;
    let mut addr = sp;
    let mut len = page - (sp & (page - 1));
    let mut i = 0;
    while i < STACK_SNAPSHOT_BYTES / STACK_CHUNK + 1 {
        if copied >= STACK_SNAPSHOT_BYTES as u64 || len == 0 || len > page {
            break;
        }
        // The mask keeps the verifier's view of the offset inside the
        // first STACK_SNAPSHOT_BYTES; `data` has one chunk to spare.
        let off = (copied & (STACK_SNAPSHOT_BYTES as u64 - 1)) as usize;
        // SAFETY: off < STACK_SNAPSHOT_BYTES and len <= STACK_CHUNK: inside
        // the reservation; the helper checks the user address.
        let ok =
            unsafe { raw_probe_read_user(data.add(off) as *mut _, len as u32, addr as *const _) }
                >= 0;
        if !ok {
            if copied != 0 {
                break;
            }
            hole = len;
        }
        copied += len;
        addr += len;
        len = page;
        i += 1;
    }
    // SAFETY: writes into our reservation.
    unsafe {
        addr_of_mut!((*rec).sp).write(sp);
        addr_of_mut!((*rec).len).write(copied as u32);
        addr_of_mut!((*rec).hole).write(hole as u32);
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// signal_generate(int sig, struct kernel_siginfo *info, struct task_struct
//                 *task, int group, int result)
// Runs in the sender. Gives "who sent it" for signals sent to traced processes.
// ---------------------------------------------------------------------------
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    try_signal_generate(&ctx);
    0
}

#[inline(always)]
fn try_signal_generate(ctx: &BtfTracePointContext) {
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
    let target_tid = read_kernel::<u32>(target, off.task_pid).unwrap_or(0);

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

// ---------------------------------------------------------------------------
// sched_process_exit(struct task_struct *p, bool group_dead)
// Runs in every exiting thread; only the last one (signal->live == 0) is an
// exit of the process. `live` rather than the newer `group_dead` argument so
// that older kernels work too.
// ---------------------------------------------------------------------------
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    try_sched_process_exit(&ctx);
    0
}

#[inline(always)]
fn try_sched_process_exit(ctx: &BtfTracePointContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    let task: u64 = ctx.arg(0);
    let off = offsets();
    let signal: u64 = read_kernel(task, off.task_signal).unwrap_or(0);
    let live: i32 = read_kernel(signal, off.signal_live).unwrap_or(0);
    if live != 0 {
        return;
    }
    let flags: u32 = read_kernel(signal, off.signal_flags).unwrap_or(0);
    // As wait_task_zombie() computes the status the parent will see.
    let status: u32 = if flags & SIGNAL_GROUP_EXIT != 0 {
        read_kernel(signal, off.signal_group_exit_code).unwrap_or(0)
    } else {
        read_kernel(task, off.task_exit_code).unwrap_or(0)
    };
    // The pid may be reused: forget it now.
    let _ = TRACED.remove(&tgid);

    let Some(mut entry) = EVENTS.reserve::<ExitRecord>(0) else {
        count_lost(EventKind::Exit);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Exit);
    // SAFETY: writes into our reservation.
    unsafe {
        addr_of_mut!((*rec).status).write(status);
        addr_of_mut!((*rec)._pad).write(0);
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// sched_process_fork(struct task_struct *parent, struct task_struct *child)
// New processes of traced processes are traced from their first instruction.
// ---------------------------------------------------------------------------
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    try_sched_process_fork(&ctx);
    0
}

#[inline(always)]
fn try_sched_process_fork(ctx: &BtfTracePointContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(traced) = is_traced(tgid) else {
        return;
    };
    let child: u64 = ctx.arg(1);
    let off = offsets();
    let (Some(child_pid), Some(child_tgid)) = (
        read_kernel::<u32>(child, off.task_pid),
        read_kernel::<u32>(child, off.task_tgid),
    ) else {
        return;
    };
    if child_pid != child_tgid || child_tgid == tgid {
        return; // a new thread, already covered by its process
    }
    if traced.follow_forks == 0 {
        return;
    }
    let _ = TRACED.insert(&child_tgid, &traced, 0);

    let Some(mut entry) = EVENTS.reserve::<ForkRecord>(0) else {
        count_lost(EventKind::Fork);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Fork);
    // SAFETY: writes into our reservation.
    unsafe {
        addr_of_mut!((*rec).child_pid).write(child_tgid);
        addr_of_mut!((*rec)._pad).write(0);
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *)
// A traced process replaced its image: userspace must re-read its mappings.
// A process exec'ing a watched file becomes traced here, before its first
// instruction; one traced for the file it ran and now running another is
// dropped. Every exec on the host passes here: untraced and unwatched ones
// cost a map lookup or two.
// ---------------------------------------------------------------------------
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    try_sched_process_exec(&ctx);
    0
}

/// The task's pid in its innermost pid namespace: `thread_pid->numbers[level].nr`.
#[inline(always)]
fn ns_pid(task: u64, off: &KernelOffsets) -> Option<u32> {
    let pid: u64 = read_kernel(task, off.task_thread_pid)?;
    let level: u32 = read_kernel(pid, off.pid_level)?;
    // Nesting is bounded by the kernel (MAX_PID_NS_LEVEL = 32).
    let level = level & 31;
    let at = off.pid_numbers + level * off.upid_size;
    read_kernel::<i32>(pid, at).map(|nr| nr as u32)
}

/// (device, inode) of the file an exec runs.
#[inline(always)]
fn exec_file(bprm: u64) -> Option<WatchedFile> {
    let off = offsets();
    let file: u64 = read_kernel(bprm, off.binprm_file)?;
    let inode: u64 = read_kernel(file, off.file_inode)?;
    let ino: u64 = read_kernel(inode, off.inode_ino)?;
    let sb: u64 = read_kernel(inode, off.inode_sb)?;
    let dev: u32 = read_kernel(sb, off.sb_dev)?;
    Some([dev as u64, ino])
}

#[inline(always)]
fn try_sched_process_exec(ctx: &BtfTracePointContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let traced = is_traced(tgid);
    let bprm: u64 = ctx.arg(2);
    let file = exec_file(bprm);
    // SAFETY: the values are copied out before any map update.
    let watched = file
        .and_then(|f| unsafe { WATCHED_FILES.get(&f) }.copied())
        .or_else(|| {
            // The comm is the new program's by now (set during exec).
            let comm = bpf_get_current_comm().ok()?;
            unsafe { WATCHED_COMMS.get(&comm) }.copied()
        });
    let flags = match (traced, watched) {
        (None, None) => match EXEC_ALL.get(0) {
            Some(&v) if v != 0 => EXEC_CANDIDATE,
            _ => return,
        },
        (None, Some(follow_forks)) => {
            let t = TracedProcess {
                follow_forks,
                by_exe: 1,
            };
            if TRACED.insert(&tgid, &t, 0).is_err() {
                count_lost(EventKind::Exec);
                return;
            }
            EXEC_WATCHED
        }
        (Some(t), None) if t.by_exe != 0 => {
            let _ = TRACED.remove(&tgid);
            EXEC_DROPPED
        }
        (Some(_), _) => 0,
    };
    let old_tid: i32 = ctx.arg(1);
    let Some(mut entry) = EVENTS.reserve::<ExecRecord>(0) else {
        count_lost(EventKind::Exec);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Exec);
    let off = offsets();
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let mm: u64 = read_kernel(task, off.task_mm).unwrap_or(0);
    let filename: u64 = read_kernel(bprm, off.binprm_filename).unwrap_or(0);
    // SAFETY: writes into our reservation; kernel reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).old_tid).write(old_tid as u32);
        addr_of_mut!((*rec).flags).write(flags);
        addr_of_mut!((*rec).start_code).write(read_kernel(mm, off.mm_start_code).unwrap_or(0));
        addr_of_mut!((*rec).end_code).write(read_kernel(mm, off.mm_end_code).unwrap_or(0));
        addr_of_mut!((*rec).file).write(file.unwrap_or([0, 0]));
        addr_of_mut!((*rec).ns_pid).write(ns_pid(task, &off).unwrap_or(0));
        addr_of_mut!((*rec).cgroup_id)
            .write(aya_ebpf::helpers::generated::bpf_get_current_cgroup_id());
        let dst = addr_of_mut!((*rec).filename) as *mut u8;
        let n = aya_ebpf::helpers::generated::bpf_probe_read_kernel_str(
            dst as *mut _,
            EXEC_FILENAME_BYTES as u32,
            filename as *const _,
        );
        addr_of_mut!((*rec).filename_len).write(if n > 1 { (n - 1) as u32 } else { 0 });
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// Go runtime entry points (runtime.gopanic, throw, fatal, recovery,
// fatalpanic). One program for all of them: the attach cookie says which
// function (low 32 bits) and which binary's layout applies (high 32 bits).
// Attached per process, right after each function's stack check, at its
// `push rbp` (emulated by the kernel: ~0.7 µs a hit instead of ~13.5 µs for
// a single-stepped instruction, and once per call even when the function
// re-enters through morestack). None of these run on a healthy program.
// ---------------------------------------------------------------------------
#[uprobe]
pub fn go_probe(ctx: ProbeContext) -> u32 {
    try_go_probe(&ctx);
    0
}

#[inline(always)]
fn read_user<T>(addr: u64) -> Option<T> {
    // SAFETY: bpf_probe_read_user checks the address; a fault is an Err.
    unsafe { bpf_probe_read_user(addr as *const T) }.ok()
}

#[inline(always)]
fn try_go_probe(ctx: &ProbeContext) {
    if let Some(hits) = GO_PROBE_HITS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *hits += 1 };
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    // SAFETY: helper without preconditions in uprobe programs.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let probe = cookie as u32;
    let binary = (cookie >> 32) as u32;
    let Some(cfg) = GO_CONFIG.get(binary).copied() else {
        return;
    };
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: pt_regs = unsafe { *(ctx.as_ptr() as *const pt_regs) };

    // The user goroutine: the argument for recovery(gp), else g (R14),
    // or g.m.curg when running on the system stack (g0 or gsignal).
    let mut g = if probe == GoProbe::Recovery as u32 {
        r.rax
    } else {
        r.r14
    };
    let mut on_system_stack = 0u32;
    let m: u64 = read_user(g + cfg.g_m as u64).unwrap_or(0);
    if m != 0 {
        let g0: u64 = read_user(m + cfg.m_g0 as u64).unwrap_or(0);
        let gsignal: u64 = read_user(m + cfg.m_gsignal as u64).unwrap_or(0);
        if g == g0 || g == gsignal {
            on_system_stack = 1;
            g = read_user(m + cfg.m_curg as u64).unwrap_or(0);
        }
    }
    let goid: u64 = if g != 0 {
        read_user(g + cfg.g_goid as u64).unwrap_or(0)
    } else {
        0
    };
    let gkey = goroutine_key(tgid, goid);

    // Go 1.21 deferCallSave(p, fn): remember fn's code for recovery; no record.
    if probe == GoProbe::DeferCall as u32 {
        let funcval = r.rbx;
        let code: u64 = if funcval != 0 {
            read_user(funcval).unwrap_or(0)
        } else {
            0
        };
        if code != 0 {
            let _ = GO_LAST_DEFER_CALL.insert(&gkey, &code, 0);
        }
        return;
    }
    if probe == GoProbe::Gopanic as u32 {
        // A new panic: an earlier panic's or Goexit's deferred call is stale.
        let _ = GO_LAST_DEFER_CALL.remove(&gkey);
    }

    // The value: gopanic's argument, or printpanics' p.arg (an `any` too).
    let (ty, data, flags) = if probe == GoProbe::Printpanics as u32 {
        let p = r.rax;
        let flag = |off: u32, bit: u32| -> u32 {
            if off == GO_NO_FIELD {
                return 0;
            }
            match read_user::<u8>(p + off as u64) {
                Some(b) if b != 0 => bit,
                _ => 0,
            }
        };
        (
            read_user::<u64>(p + cfg.panic_arg as u64).unwrap_or(0),
            read_user::<u64>(p + cfg.panic_arg as u64 + 8).unwrap_or(0),
            flag(cfg.panic_recovered, GO_PANIC_RECOVERED)
                | flag(cfg.panic_repanicked, GO_PANIC_REPANICKED)
                | flag(cfg.panic_goexit, GO_PANIC_GOEXIT),
        )
    } else if probe == GoProbe::Sigpanic as u32 {
        // g.sig and g.sigcode1 (the fault address); sigcode0 and sigpc
        // follow in `value`.
        (
            read_user::<u32>(g + cfg.g_sig as u64).unwrap_or(0) as u64,
            read_user::<u64>(g + cfg.g_sigcode0 as u64 + 8).unwrap_or(0),
            0,
        )
    } else {
        (r.rax, r.rbx, 0)
    };
    let has_value = probe == GoProbe::Gopanic as u32 || probe == GoProbe::Printpanics as u32;

    // recovery(gp): which deferred function recovered. With open-coded
    // defers (Go 1.22+), the runtime clears a frame's defer bit before the
    // call, and runs them from the highest bit down: the recovering one is
    // the lowest filled slot above the bits still set. Userspace picks it;
    // here we copy the bits and the slots' code pointers.
    let mut defer_code = [0u64; 8];
    let mut flags = flags;
    if probe == GoProbe::Recovery as u32
        && cfg.panic_defer_bits != GO_NO_FIELD
        && cfg.panic_slots != GO_NO_FIELD
    {
        let p: u64 = read_user(g + cfg.g_panic as u64).unwrap_or(0);
        let bits_ptr: u64 = if p != 0 {
            read_user(p + cfg.panic_defer_bits as u64).unwrap_or(0)
        } else {
            0
        };
        let slots: u64 = if p != 0 {
            read_user(p + cfg.panic_slots as u64).unwrap_or(0)
        } else {
            0
        };
        if bits_ptr != 0 && slots != 0 {
            if let Some(bits) = read_user::<u8>(bits_ptr) {
                flags = GO_DEFER_BITS_VALID | bits as u32;
            }
            let mut i = 0;
            while i < 8 {
                let funcval: u64 = read_user(slots + i as u64 * 8).unwrap_or(0);
                defer_code[i] = if funcval != 0 {
                    read_user(funcval).unwrap_or(0)
                } else {
                    0
                };
                i += 1;
            }
        }
    }

    // Go 1.21 has no defer bits: the last deferred call deferCallSave ran.
    if probe == GoProbe::Recovery as u32 && cfg.panic_defer_bits == GO_NO_FIELD {
        // SAFETY: the value is copied out before the entry is removed.
        if let Some(code) = unsafe { GO_LAST_DEFER_CALL.get(&gkey) }.copied() {
            defer_code[0] = code;
            flags |= GO_DEFER_CALL_VALID;
            let _ = GO_LAST_DEFER_CALL.remove(&gkey);
        }
    }
    if probe == GoProbe::Sigpanic as u32 {
        defer_code[0] = read_user(g + cfg.g_sigcode0 as u64).unwrap_or(0);
        defer_code[1] = data;
        defer_code[2] = read_user(g + cfg.g_sigcode0 as u64 + 16).unwrap_or(0);
    }

    let Some(mut entry) = EVENTS.reserve::<GoRecord>(0) else {
        count_lost(EventKind::Go);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Go);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).probe).write(probe);
        addr_of_mut!((*rec).binary).write(binary);
        addr_of_mut!((*rec).goid).write(goid);
        addr_of_mut!((*rec).on_system_stack).write(on_system_stack);
        addr_of_mut!((*rec).arg0).write(ty);
        addr_of_mut!((*rec).arg1).write(data);
        addr_of_mut!((*rec).flags).write(flags);
        addr_of_mut!((*rec).return_address).write(read_user::<u64>(r.rsp).unwrap_or(0));
        addr_of_mut!((*rec).regs).write(registers(&r));

        // gopanic: the bytes the value's data word points to. For a string
        // value, and for most error types (errors.errorString,
        // fmt.wrapError, …), they start with a string header {ptr, len}.
        let value = addr_of_mut!((*rec).value) as *mut u8;
        let (str_ptr, str_len) = if has_value {
            if raw_probe_read_user(value as *mut _, GO_VALUE_BYTES as u32, data as *const _) < 0 {
                core::ptr::write_bytes(value, 0, GO_VALUE_BYTES);
            }
            let words = value as *const u64;
            (*words, *words.add(1))
        } else {
            core::ptr::write_bytes(value, 0, GO_VALUE_BYTES);
            if probe == GoProbe::Recovery as u32 || probe == GoProbe::Sigpanic as u32 {
                core::ptr::copy_nonoverlapping(
                    defer_code.as_ptr() as *const u8,
                    value,
                    GO_VALUE_BYTES,
                );
            }
            // throw(s string) and fatal(s string): RAX = ptr, RBX = len.
            if probe == GoProbe::Throw as u32 || probe == GoProbe::Fatal as u32 {
                (r.rax, r.rbx)
            } else {
                (0, 0)
            }
        };
        addr_of_mut!((*rec).string_full_len).write(str_len);
        let mut n = 0u32;
        if str_ptr != 0 && str_len > 0 && str_len < (1 << 30) {
            n = if str_len >= GO_STRING_BYTES as u64 {
                GO_STRING_BYTES as u32
            } else {
                str_len as u32
            };
            let dst = addr_of_mut!((*rec).string) as *mut core::ffi::c_void;
            if raw_probe_read_user(dst, n, str_ptr as *const _) < 0 {
                n = 0;
            }
        }
        addr_of_mut!((*rec).string_len).write(n);

        let stack = addr_of_mut!((*rec).stack) as *mut u64;
        // On the system stack (throw from newstack, systemstack), the
        // goroutine's own frames are where it saved its context.
        // runtime.recovery runs on g0 through mcall, which saved the
        // recovering goroutine's context: walk that too, not g0's stack.
        let from_sched = on_system_stack != 0 || probe == GoProbe::Recovery as u32;
        let sched_pc: u64 = if from_sched && g != 0 {
            read_user(g + cfg.g_sched as u64 + 8).unwrap_or(0)
        } else {
            0
        };
        if sched_pc != 0 {
            let sched_sp: u64 = read_user(g + cfg.g_sched as u64).unwrap_or(0);
            let mut bp: u64 = read_user(g + cfg.g_sched as u64 + cfg.gobuf_bp as u64).unwrap_or(0);
            *stack = sched_pc;
            *stack.add(1) = read_user(sched_sp).unwrap_or(0);
            let mut n = 2usize;
            while n < GO_SCHED_FRAMES && bp != 0 {
                let ret: u64 = read_user(bp + 8).unwrap_or(0);
                if ret == 0 {
                    break;
                }
                *stack.add(n) = ret;
                bp = read_user(bp).unwrap_or(0);
                n += 1;
            }
            addr_of_mut!((*rec).stack_bytes).write((n * 8) as u32);
            addr_of_mut!((*rec).flags).write(flags | GO_STACK_FROM_SCHED);
        } else {
            let depth = bpf_get_stack(
                ctx.as_ptr(),
                stack as *mut core::ffi::c_void,
                (MAX_STACK_DEPTH * 8) as u32,
                BPF_F_USER_STACK as u64,
            );
            addr_of_mut!((*rec).stack_bytes).write(if depth > 0 { depth as u32 } else { 0 });
        }

        // The goroutine's _defer records: at gopanic, the chain with each
        // record's function; at recovery, where the head is now (the record
        // just before it in the gopanic chain is the one that recovered).
        let defers = addr_of_mut!((*rec).defers) as *mut u64;
        core::ptr::write_bytes(defers, 0, 2 * GO_DEFER_RECORDS);
        if g != 0 {
            let mut d: u64 = read_user(g + cfg.g_defer as u64).unwrap_or(0);
            if probe == GoProbe::Recovery as u32 {
                *defers = d;
            } else if probe == GoProbe::Gopanic as u32 {
                let mut i = 0;
                while i < GO_DEFER_RECORDS && d != 0 {
                    let funcval: u64 = read_user(d + cfg.defer_fn as u64).unwrap_or(0);
                    let code: u64 = if funcval != 0 {
                        read_user(funcval).unwrap_or(0)
                    } else {
                        0
                    };
                    *defers.add(2 * i) = d;
                    *defers.add(2 * i + 1) = code;
                    d = read_user(d + cfg.defer_link as u64).unwrap_or(0);
                    i += 1;
                }
            }
        }

        // Only a panic needs the raw stack (a fault's frameless function).
        let snapshot = addr_of_mut!((*rec).stack_snapshot) as *mut u8;
        if (probe != GoProbe::Gopanic as u32 && probe != GoProbe::Sigpanic as u32)
            || raw_probe_read_user(
                snapshot as *mut _,
                GO_STACK_SNAPSHOT as u32,
                r.rsp as *const _,
            ) < 0
        {
            core::ptr::write_bytes(snapshot, 0, GO_STACK_SNAPSHOT);
        }
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// dlopen() returns (uretprobe on libc's dlopen, attached per libc file; C
// code, where a return probe is safe). The handle is the library's link_map:
// l_addr @0 (load bias), l_name @8 (path). Runs only when a library is
// loaded: never on a hot path.
// ---------------------------------------------------------------------------
#[uretprobe]
pub fn dlopen_return(ctx: RetProbeContext) -> u32 {
    try_dlopen_return(&ctx);
    0
}

#[inline(always)]
fn try_dlopen_return(ctx: &RetProbeContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    let handle: u64 = ctx.ret();
    if handle == 0 {
        return;
    }
    let Some(l_name) = read_user::<u64>(handle + 8) else {
        return;
    };
    let Some(mut entry) = EVENTS.reserve::<DlopenRecord>(0) else {
        count_lost(EventKind::Dlopen);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Dlopen);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).load_bias).write(read_user::<u64>(handle).unwrap_or(0));
        addr_of_mut!((*rec)._pad).write(0);
        let dst = addr_of_mut!((*rec).path) as *mut u8;
        let n = aya_ebpf::helpers::generated::bpf_probe_read_user_str(
            dst as *mut _,
            DLOPEN_PATH_BYTES as u32,
            l_name as *const _,
        );
        addr_of_mut!((*rec).path_len).write(if n > 1 { (n - 1) as u32 } else { 0 });
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// C++: libstdc++'s __cxa_throw(void *obj, std::type_info *tinfo, dest) and
// std::terminate(). Attached once per libstdc++ file (all processes,
// filtered by TRACED). Throws that are caught are normal control flow in
// some programs: at most CXX_THROWS_PER_SEC records per process per second,
// the rest counted and reported with the next record.
// ---------------------------------------------------------------------------

/// Per throw site (process, return address into the thrower): (window
/// start ns, records in the window, suppressed since the last record). A
/// loop that throws and catches is limited; a throw from anywhere else (the
/// one that ends the process, typically) still gets through.
#[map]
static CXX_RATE: LruHashMap<[u64; 2], [u64; 3]> = LruHashMap::with_max_entries(8192, 0);

#[uprobe]
pub fn cxx_throw(ctx: ProbeContext) -> u32 {
    try_cxx(&ctx, CXX_THROW);
    0
}

#[uprobe]
pub fn cxx_terminate(ctx: ProbeContext) -> u32 {
    try_cxx(&ctx, CXX_TERMINATE);
    0
}

#[inline(always)]
fn try_cxx(ctx: &ProbeContext, probe: u32) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    let mut suppressed = 0u64;
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: pt_regs = unsafe { *(ctx.as_ptr() as *const pt_regs) };
    if probe == CXX_THROW {
        let site = [tgid as u64, read_user::<u64>(r.rsp).unwrap_or(0)];
        // SAFETY: helper without preconditions.
        let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
        // SAFETY: the value is copied out before the update.
        let mut st = unsafe { CXX_RATE.get(&site) }
            .copied()
            .unwrap_or([now, 0, 0]);
        if now.wrapping_sub(st[0]) > 1_000_000_000 {
            st[0] = now;
            st[1] = 0;
        }
        if st[1] >= CXX_THROWS_PER_SEC {
            st[2] += 1;
            let _ = CXX_RATE.insert(&site, &st, 0);
            return;
        }
        st[1] += 1;
        suppressed = st[2];
        st[2] = 0;
        let _ = CXX_RATE.insert(&site, &st, 0);
    }
    if probe == CXX_THROW {
        // The throwing stack, for CFI unwinding (C++ rarely keeps frame
        // pointers).
        snapshot_stack(r.rsp);
    }
    let Some(mut entry) = EVENTS.reserve::<CxxRecord>(0) else {
        count_lost(EventKind::Cxx);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Cxx);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).probe).write(probe);
        addr_of_mut!((*rec).suppressed).write(suppressed as u32);
        addr_of_mut!((*rec).regs).write(registers(&r));
        addr_of_mut!((*rec)._pad).write(0);
        let types = addr_of_mut!((*rec).types) as *mut u8;
        let mut tinfo = if probe == CXX_THROW { r.rsi } else { 0 };
        let mut i = 0;
        while i < CXX_TYPES {
            let dst = types.add(i * CXX_NAME_BYTES);
            *dst = 0;
            if tinfo != 0 {
                let name: u64 = read_user(tinfo + 8).unwrap_or(0);
                if name != 0 {
                    aya_ebpf::helpers::generated::bpf_probe_read_user_str(
                        dst as *mut _,
                        CXX_NAME_BYTES as u32,
                        name as *const _,
                    );
                }
                // __si_class_type_info: the base's type_info follows the
                // name (for other type_infos this reads a neighbour: the
                // name there is checked in userspace).
                tinfo = read_user(tinfo + 16).unwrap_or(0);
            }
            i += 1;
        }
        let what = addr_of_mut!((*rec).what) as *mut u8;
        *what = 0;
        let mut n = 0i64;
        if probe == CXX_THROW {
            let msg: u64 = read_user(r.rdi + 8).unwrap_or(0);
            if msg != 0 {
                n = aya_ebpf::helpers::generated::bpf_probe_read_user_str(
                    what as *mut _,
                    CXX_WHAT_BYTES as u32,
                    msg as *const _,
                );
            }
        }
        addr_of_mut!((*rec).what_len).write(if n > 1 { (n - 1) as u32 } else { 0 });
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// Rust: std::panicking::panic_with_hook(payload: &mut dyn PanicPayload (RDI
// data, RSI vtable), location: &Location (RDX), can_unwind (CL), …).
// Attached per process to its executable. A panic is rare by design.
// ---------------------------------------------------------------------------
#[uprobe]
pub fn rust_panic(ctx: ProbeContext) -> u32 {
    try_rust_panic(&ctx);
    0
}

#[inline(always)]
fn try_rust_panic(ctx: &ProbeContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: pt_regs = unsafe { *(ctx.as_ptr() as *const pt_regs) };
    snapshot_stack(r.rsp);
    let Some(mut entry) = EVENTS.reserve::<RustPanicRecord>(0) else {
        count_lost(EventKind::RustPanic);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::RustPanic);
    let loc = r.rdx;
    let file_ptr: u64 = read_user(loc).unwrap_or(0);
    let file_len: u64 = read_user(loc + 8).unwrap_or(0);
    // A `&'static str` payload (panic!("literal"), unwrap on None …): its
    // data is the str's (ptr, len). A formatted message's payload starts
    // with a reference and an Option<String> whose niche is no length.
    let msg_ptr: u64 = read_user(r.rdi).unwrap_or(0);
    let msg_len: u64 = read_user(r.rdi + 8).unwrap_or(u64::MAX);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).regs).write(registers(&r));
        addr_of_mut!((*rec).line).write(read_user::<u32>(loc + 16).unwrap_or(0));
        addr_of_mut!((*rec).col).write(read_user::<u32>(loc + 20).unwrap_or(0));
        addr_of_mut!((*rec).can_unwind).write((r.rcx & 0xff) as u32);
        addr_of_mut!((*rec)._pad).write(0);
        addr_of_mut!((*rec).file_ptr).write(file_ptr);
        addr_of_mut!((*rec).file_size).write(file_len);
        addr_of_mut!((*rec).msg_ptr).write(msg_ptr);
        addr_of_mut!((*rec).msg_size).write(msg_len);
        let file = addr_of_mut!((*rec).file) as *mut u8;
        let n = (file_len & (RUST_FILE_BYTES as u64 - 1)) as u32;
        let n = if file_len >= RUST_FILE_BYTES as u64 {
            RUST_FILE_BYTES as u32 - 1
        } else {
            n
        };
        let ok = n > 0 && raw_probe_read_user(file as *mut _, n, file_ptr as *const _) >= 0;
        addr_of_mut!((*rec).file_len).write(if ok { n } else { 0 });
        let msg = addr_of_mut!((*rec).msg) as *mut u8;
        let mut m = u32::MAX;
        // A user address (a formatted payload's None niche is not one).
        if msg_ptr >= 4096 && msg_ptr < (1 << 47) && msg_len < 4096 {
            let k = if msg_len >= RUST_MSG_BYTES as u64 {
                RUST_MSG_BYTES as u32 - 1
            } else {
                (msg_len & (RUST_MSG_BYTES as u64 - 1)) as u32
            };
            m = if k == 0 {
                0
            } else if raw_probe_read_user(msg as *mut _, k, msg_ptr as *const _) >= 0 {
                k
            } else {
                u32::MAX
            };
        }
        addr_of_mut!((*rec).msg_len).write(m);
    }
    entry.submit(0);
}

/// Return of std's `FormatStringPayload::get`: the formatted message of a
/// panic, now a `String` (rax points at it), which the hook is about to
/// print. A Rust return probe is safe (stacks never move) and this function
/// only runs while a thread panics.
#[uretprobe]
pub fn rust_panic_message(ctx: RetProbeContext) -> u32 {
    try_rust_panic_message(&ctx);
    0
}

#[inline(always)]
fn try_rust_panic_message(ctx: &RetProbeContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    let string: u64 = ctx.ret();
    // A String is three words (capacity, pointer, length) whose order the
    // compiler chooses: the pointer is the largest (a user address, far
    // above any length), the length the smaller of the other two.
    let (Some(a), Some(b), Some(c)) = (
        read_user::<u64>(string),
        read_user::<u64>(string + 8),
        read_user::<u64>(string + 16),
    ) else {
        return;
    };
    let (ptr, x, y) = if a >= b && a >= c {
        (a, b, c)
    } else if b >= a && b >= c {
        (b, a, c)
    } else {
        (c, a, b)
    };
    let len = if x < y { x } else { y };
    let Some(mut entry) = EVENTS.reserve::<RustPanicMessageRecord>(0) else {
        count_lost(EventKind::RustPanicMessage);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(
        unsafe { addr_of_mut!((*rec).header) },
        EventKind::RustPanicMessage,
    );
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        let k = if len >= RUST_MSG_BYTES as u64 {
            RUST_MSG_BYTES as u32
        } else {
            (len & (RUST_MSG_BYTES as u64 - 1)) as u32
        };
        let msg = addr_of_mut!((*rec).msg) as *mut u8;
        let ok = k > 0 && raw_probe_read_user(msg as *mut _, k, ptr as *const _) >= 0;
        addr_of_mut!((*rec).msg_len).write(if ok { k } else { 0 });
        addr_of_mut!((*rec).full_len).write(if len > u32::MAX as u64 {
            u32::MAX
        } else {
            len as u32
        });
    }
    entry.submit(0);
}

/// Key of a goroutine in per-goroutine maps: process and goroutine id.
#[inline(always)]
fn goroutine_key(tgid: u32, goid: u64) -> u64 {
    ((tgid as u64) << 40) ^ goid
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
