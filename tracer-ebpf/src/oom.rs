//! The OOM killer: `oom:mark_victim(struct task_struct *task, uid_t uid)`.
//!
//! The kernel calls it in the task whose allocation (or memory cgroup
//! charge) could not be met, right after it sent the victim SIGKILL. The
//! record names the victim in its header (the records of that process go
//! together), the allocating task beside it, the victim's resident memory
//! as the kernel's own OOM report counts it, and the victim's memory
//! cgroup and its parents with their usage and limit at that moment (the
//! memory is freed a moment later). Not on any path a healthy process
//! takes.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tracer_common::{COMM_LEN, EventKind, OFFSET_UNKNOWN, OOM_MEMCG_LEVELS, OomMemcg, OomRecord};

use crate::maps::{EVENTS, RECENT_EXITS};
use crate::util::{count_lost, fill_header, is_traced, offsets, read_kernel, read_kernel_or_zero};

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn mark_victim(ctx: RawTracePointContext) -> i32 {
    try_mark_victim(&ctx);
    0
}

#[inline(always)]
fn try_mark_victim(ctx: &RawTracePointContext) {
    let task: u64 = ctx.arg(0);
    let off = offsets();
    let Some(tgid) = read_kernel::<u32>(task, off.task_tgid) else {
        return;
    };
    // Traced, or exited a moment ago (it died of the SIGKILL before the
    // kernel got to announce it: see RECENT_EXITS).
    const LATE_NS: u64 = 1_000_000_000;
    if is_traced(tgid).is_none() {
        // SAFETY: the value is copied out at once.
        let exited = unsafe { RECENT_EXITS.get(&tgid) }.copied();
        // SAFETY: a helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        if exited.is_none_or(|t| now.saturating_sub(t) > LATE_NS) {
            return;
        }
    }
    let tid = read_kernel::<u32>(task, off.task_pid).unwrap_or(tgid);
    let Some(mut entry) = EVENTS.reserve::<OomRecord>(0) else {
        count_lost(EventKind::Oom);
        return;
    };
    let rec = entry.as_mut_ptr();
    // The current task is the one that ran out; the header is the victim's.
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Oom);
    let current = bpf_get_current_pid_tgid();
    let comm: [u8; COMM_LEN] = read_kernel(task, off.task_comm).unwrap_or([0; COMM_LEN]);

    let mm: u64 = read_kernel_or_zero(task, off.task_mm);
    let counter = |index: u32| -> u64 {
        if mm == 0 || off.mm_rss_stat == OFFSET_UNKNOWN {
            return 0;
        }
        let at = off.mm_rss_stat + index * off.rss_stat_stride + off.percpu_counter_count;
        // percpu_counter_read_positive(), as get_mm_counter() reads it.
        let pages: i64 = read_kernel_or_zero(mm, at);
        if pages > 0 { pages as u64 } else { 0 }
    };

    // SAFETY: writes into our reservation.
    unsafe {
        addr_of_mut!((*rec).trigger_comm).write((*rec).header.comm);
        addr_of_mut!((*rec).trigger_pid).write((current >> 32) as u32);
        addr_of_mut!((*rec).trigger_tid).write(current as u32);
        addr_of_mut!((*rec).header.pid).write(tgid);
        addr_of_mut!((*rec).header.tid).write(tid);
        addr_of_mut!((*rec).header.comm).write(comm);
        addr_of_mut!((*rec).anon_pages).write(counter(off.mm_anonpages));
        addr_of_mut!((*rec).file_pages).write(counter(off.mm_filepages));
        addr_of_mut!((*rec).shmem_pages).write(counter(off.mm_shmempages));
        addr_of_mut!((*rec)._pad).write(0);
    }

    // The victim's memory cgroup, then its parents up to the root.
    let mut css: u64 = 0;
    if off.task_cgroups != OFFSET_UNKNOWN {
        let cset: u64 = read_kernel_or_zero(task, off.task_cgroups);
        if cset != 0 {
            css = read_kernel_or_zero(cset, off.css_set_subsys + 8 * off.memory_cgrp_id);
        }
    }
    let mut levels = 0u32;
    let mut i = 0usize;
    while i < OOM_MEMCG_LEVELS {
        let mut level = OomMemcg::default();
        if css != 0 {
            let memcg = css.wrapping_sub(off.memcg_css as u64);
            let cgroup: u64 = read_kernel_or_zero(css, off.css_cgroup);
            let kn: u64 = if cgroup != 0 {
                read_kernel_or_zero(cgroup, off.cgroup_kn)
            } else {
                0
            };
            level.cgroup_id = if kn != 0 {
                read_kernel_or_zero(kn, off.kernfs_node_id)
            } else {
                0
            };
            let usage: i64 = read_kernel_or_zero(memcg, off.memcg_memory + off.page_counter_usage);
            level.usage_pages = if usage > 0 { usage as u64 } else { 0 };
            level.max_pages =
                read_kernel(memcg, off.memcg_memory + off.page_counter_max).unwrap_or(u64::MAX);
            levels += 1;
            css = read_kernel_or_zero(css, off.css_parent);
        }
        // SAFETY: i < OOM_MEMCG_LEVELS: inside our reservation.
        unsafe { addr_of_mut!((*rec).memcg[i]).write(level) };
        i += 1;
    }
    // SAFETY: as above.
    unsafe { addr_of_mut!((*rec).levels).write(levels) };
    entry.submit(0);
}
