//! Process lifetime: `sched_process_exit`, `sched_process_fork` and
//! `sched_process_exec` (which also starts and ends tracing by file or comm).
use core::ptr::addr_of_mut;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tracer_common::{
    EXEC_CANDIDATE, EXEC_DROPPED, EXEC_FILENAME_BYTES, EXEC_WATCHED, EventKind, ExecRecord,
    ExitRecord, ForkRecord, KernelOffsets, TracedProcess, WatchedFile,
};

use crate::maps::{EVENTS, EXEC_ALL, TRACED, WATCHED_COMMS, WATCHED_FILES};
use crate::signals::SIGNAL_GROUP_EXIT;
use crate::util::{count_lost, fill_header, is_traced, offsets, read_kernel, read_kernel_or_zero};

// ---------------------------------------------------------------------------
// sched_process_exit(struct task_struct *p, bool group_dead)
// Runs in every exiting thread; only the last one (signal->live == 0) is an
// exit of the process, reported once. `live` rather than the newer `group_dead` argument so
// that older kernels work too.
// ---------------------------------------------------------------------------
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    try_sched_process_exit(&ctx);
    0
}

#[inline(always)]
fn try_sched_process_exit(ctx: &RawTracePointContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    let task: u64 = ctx.arg(0);
    let off = offsets();
    // The thread that called exit_group(2) in a Go program: a panic its
    // probes may have come too late for.
    // SAFETY: the helper takes the task; we only read through it. The
    // exiting task is the current one (do_exit), typed for the helper.
    let regs_ptr = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf() as *mut _) } as u64;
    if read_kernel::<u64>(regs_ptr, PT_REGS_ORIG_AX) == Some(SYS_EXIT_GROUP) {
        if read_kernel::<u64>(regs_ptr, PT_REGS_DI) == Some(2) {
            go_exit_panic(tgid, regs_ptr);
        } else {
            // Another status (os.Exit, log.Fatal): panics still under way
            // end here (Go 1.22+ tells them when they end).
            go_exit_chain(tgid, regs_ptr);
        }
    }
    let signal: u64 = read_kernel_or_zero(task, off.task_signal);
    let live: i32 = read_kernel_or_zero(signal, off.signal_live);
    if live != 0 {
        return;
    }
    let flags: u32 = read_kernel_or_zero(signal, off.signal_flags);
    // As wait_task_zombie() computes the status the parent will see.
    let status: u32 = if flags & SIGNAL_GROUP_EXIT != 0 {
        read_kernel_or_zero(signal, off.signal_group_exit_code)
    } else {
        read_kernel_or_zero(task, off.task_exit_code)
    };
    // Remembered before it stops being traced, never after: on recent
    // kernels this tracepoint fires before exit_mm() (on 6.18, task->mm is
    // still set here; bpftrace shows it), so a victim of the OOM
    // killer gets here while the killing task (holding the victim's task
    // lock) is still on its way to `mark_victim` on another CPU. With the
    // exit remembered after the delete, `mark_victim` could land between
    // the two, find the process neither traced nor lately exited, and the
    // OOM record was lost (the two-process OOM test, 1 run in ~30).
    remember_exit(tgid);
    // `live` is read, not decremented, here: two threads exiting together
    // can both see 0 (each decremented it in do_exit before either got
    // here). The one whose delete succeeds reports the exit; the map's
    // bucket lock makes that exactly one. The pid may be reused: forgetting
    // it now is needed anyway (but for a late OOM report).
    if TRACED.remove(&tgid).is_err() {
        return;
    }
    crate::go::dump_summary(tgid);
    let _ = crate::maps::GO_PROCESSES.remove(&tgid);

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

/// Out of line, on a stack frame of its own: inlined (with a copy of the
/// registers on the stack), it made sched_process_exit's frame 504 bytes,
/// and with one call more the chain passed the verifier's 512-byte limit
/// for a whole call chain ("combined stack size of 2 calls is 528") on
/// kernels that give raw tracepoints no private stack (6.18.44).
#[inline(never)]
fn go_exit_panic(tgid: u32, regs_ptr: u64) {
    crate::go::exit_panic(tgid, regs_ptr);
}

/// Out of line, as [`go_exit_panic`].
#[inline(never)]
fn go_exit_chain(tgid: u32, regs_ptr: u64) {
    crate::go::exit_chain(tgid, regs_ptr);
}

/// Out of line: the exec program's frame stays as it was.
#[inline(never)]
fn mark_go_exec(tgid: u32, file: Option<WatchedFile>) {
    // SAFETY: the value is copied out.
    match file.and_then(|f| unsafe { crate::maps::GO_FILES.get(&f) }.copied()) {
        Some(slot) => {
            let process = tracer_common::GoProcess {
                slot,
                ..Default::default()
            };
            let _ = crate::maps::GO_PROCESSES.insert(&tgid, &process, 0);
        }
        None => {
            let _ = crate::maps::GO_PROCESSES.remove(&tgid);
        }
    }
}

/// Out of line, as [`go_exit_panic`]: the exit program's frames stay small.
#[inline(never)]
fn remember_exit(tgid: u32) {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let _ = crate::maps::RECENT_EXITS.insert(&tgid, &now, 0);
}

/// `pt_regs.orig_ax` and `.di` on x86_64: the syscall number and its first
/// argument.
const PT_REGS_ORIG_AX: u32 = 120;
const PT_REGS_DI: u32 = 112;
const SYS_EXIT_GROUP: u64 = 231;

// ---------------------------------------------------------------------------
// sched_process_fork(struct task_struct *parent, struct task_struct *child)
// New processes of traced processes are traced from their first instruction.
// ---------------------------------------------------------------------------
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    try_sched_process_fork(&ctx);
    0
}

#[inline(always)]
fn try_sched_process_fork(ctx: &RawTracePointContext) {
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
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
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
fn try_sched_process_exec(ctx: &RawTracePointContext) {
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
    // The old program's Go mark goes with its memory (a Go program that
    // execs a shell must not have the shell's `exit 2` read as a Go panic
    // with the old binary's offsets). A file known to be Go marks the new
    // program now; else userspace does once it has this record.
    // (Not for a candidate: untraced, it has no mark, and one would
    // outlive it: the exit program forgets traced processes only.)
    if flags & EXEC_CANDIDATE == 0 {
        mark_go_exec(
            tgid,
            if flags & EXEC_DROPPED == 0 {
                file
            } else {
                None
            },
        );
    }
    let old_tid: i32 = ctx.arg(1);
    let Some(mut entry) = EVENTS.reserve::<ExecRecord>(0) else {
        count_lost(EventKind::Exec);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Exec);
    let off = offsets();
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    let mm: u64 = read_kernel_or_zero(task, off.task_mm);
    let filename: u64 = read_kernel_or_zero(bprm, off.binprm_filename);
    // SAFETY: writes into our reservation; kernel reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).old_tid).write(old_tid as u32);
        addr_of_mut!((*rec).flags).write(flags);
        addr_of_mut!((*rec).start_code).write(read_kernel_or_zero(mm, off.mm_start_code));
        addr_of_mut!((*rec).end_code).write(read_kernel_or_zero(mm, off.mm_end_code));
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
