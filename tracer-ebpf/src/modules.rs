//! The objects ld.so loaded into a traced process, read from its own list
//! (`r_debug.r_map`) while it lives: at a crash (before the stack and
//! signal records) and when dlopen() returns. Userspace places each
//! object's code from its path and load bias, so a process that dies
//! before /proc could show its maps — a crash in the first milliseconds, a
//! library that a dlopen'ed library pulled in — is still symbolized.
//!
//! Where the list is: the auxiliary vector the kernel saved
//! (`mm->saved_auxv`) gives the program headers (AT_PHDR, AT_PHNUM); their
//! PT_PHDR gives the load bias and PT_DYNAMIC the dynamic section, whose
//! DT_DEBUG entry ld.so pointed at its `r_debug` at startup. Statically
//! linked programs have none of it: nothing is sent.
use core::{ffi::c_void, ptr::addr_of_mut};

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_current_task, bpf_loop},
    },
    macros::uretprobe,
    programs::RetProbeContext,
};
use tracer_common::{EventKind, MODULE_PATH_BYTES, MODULES_AT_DLOPEN, MODULES_MAX, ModuleRecord};

use crate::maps::EVENTS;
use crate::util::{
    count_lost, fill_header, is_traced, offsets, read_kernel, read_kernel_or_zero, read_user,
    read_user_or_zero,
};

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;
/// Auxiliary vector entries looked at (the kernel saves fewer than 32).
const AUXV_ENTRIES: u32 = 32;
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
/// Program headers looked at.
const PHDRS: u32 = 24;
const PHDR_SIZE: u64 = 56;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
/// Dynamic section entries looked at before DT_DEBUG.
const DYN_ENTRIES: u32 = 48;

/// Sends one [`ModuleRecord`] per object in the current process's list.
#[inline(never)]
pub(crate) fn send_modules(reason: u32) {
    let off = offsets();
    // SAFETY: helper without preconditions in tracing programs.
    let task = unsafe { bpf_get_current_task() };
    let Some(mm) = read_kernel::<u64>(task, off.task_mm).filter(|&m| m != 0) else {
        return;
    };
    // Each scan is a bpf_loop: the verifier checks one step, not every
    // entry of an unrolled loop (the three scans unrolled were ~18,000
    // checked instructions in each of dlopen_return and signal_deliver).
    let mut auxv = AuxvScan {
        mm,
        at: off.mm_saved_auxv,
        phdr: 0,
        phnum: 0,
    };
    run_loop(AUXV_ENTRIES, auxv_step, addr_of_mut!(auxv) as *mut c_void);
    if auxv.phdr == 0 {
        return;
    }
    let mut phdrs = PhdrScan {
        phdr: auxv.phdr,
        phnum: auxv.phnum,
        phdr_vaddr: 0,
        dynamic: 0,
    };
    run_loop(PHDRS, phdr_step, addr_of_mut!(phdrs) as *mut c_void);
    if phdrs.dynamic == 0 {
        return;
    }
    let bias = auxv.phdr.wrapping_sub(phdrs.phdr_vaddr);
    let mut dynamic = DynScan {
        dynamic: bias.wrapping_add(phdrs.dynamic),
        r_debug: 0,
    };
    run_loop(DYN_ENTRIES, dyn_step, addr_of_mut!(dynamic) as *mut c_void);
    let r_debug = dynamic.r_debug;
    if r_debug == 0 {
        return;
    }
    // struct r_debug { int r_version; struct link_map *r_map; … }
    let mut walk = Walk {
        link: read_user_or_zero(r_debug + 8),
        reason,
    };
    // bpf_loop: the verifier checks the step once. Unrolled, it checked
    // MODULES_MAX copies of send_module in every program that walks the
    // list (0.66 s to load dlopen_return, 0.23 s signal_deliver).
    run_loop(MODULES_MAX, walk_step, addr_of_mut!(walk) as *mut c_void);
}

/// Runs `step` up to `n` times over `ctx` with bpf_loop.
#[inline(always)]
fn run_loop(n: u32, step: extern "C" fn(u64, *mut c_void) -> i64, ctx: *mut c_void) {
    // SAFETY: `step` matches the callback signature bpf_loop calls; the
    // caller's `ctx` outlives the call.
    unsafe {
        bpf_loop(n, step as *mut c_void, ctx, 0);
    }
}

/// The auxiliary vector the kernel saved in `mm`, from offset `at`:
/// AT_PHDR and AT_PHNUM.
struct AuxvScan {
    mm: u64,
    at: u32,
    phdr: u64,
    phnum: u64,
}

/// One auxv entry: AT_PHDR and AT_PHNUM kept; 1 (stop) at AT_NULL.
#[inline(never)]
extern "C" fn auxv_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the `AuxvScan` given to it.
    let scan = unsafe { &mut *(ctx as *mut AuxvScan) };
    let at = scan.at + (index as u32 & (AUXV_ENTRIES - 1)) * 16;
    let key: u64 = read_kernel(scan.mm, at).unwrap_or(AT_NULL);
    if key == AT_NULL {
        return 1;
    }
    let value: u64 = read_kernel_or_zero(scan.mm, at + 8);
    if key == AT_PHDR {
        scan.phdr = value;
    } else if key == AT_PHNUM {
        scan.phnum = value;
    }
    0
}

/// The program headers at `phdr`: PT_PHDR's and PT_DYNAMIC's addresses.
struct PhdrScan {
    phdr: u64,
    phnum: u64,
    phdr_vaddr: u64,
    dynamic: u64,
}

/// One program header: PT_PHDR's and PT_DYNAMIC's addresses kept; 1
/// (stop) past the last.
#[inline(never)]
extern "C" fn phdr_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the `PhdrScan` given to it.
    let scan = unsafe { &mut *(ctx as *mut PhdrScan) };
    if index >= scan.phnum {
        return 1;
    }
    let p = scan.phdr + index * PHDR_SIZE;
    let p_type: u32 = read_user_or_zero(p);
    let p_vaddr: u64 = read_user_or_zero(p + 16);
    if p_type == PT_PHDR {
        scan.phdr_vaddr = p_vaddr;
    } else if p_type == PT_DYNAMIC {
        scan.dynamic = p_vaddr;
    }
    0
}

/// The dynamic section at `dynamic`: DT_DEBUG's value, ld.so's `r_debug`.
struct DynScan {
    dynamic: u64,
    r_debug: u64,
}

/// One dynamic entry: 1 (stop) at DT_DEBUG, its value kept, or DT_NULL.
#[inline(never)]
extern "C" fn dyn_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the `DynScan` given to it.
    let scan = unsafe { &mut *(ctx as *mut DynScan) };
    let entry = scan.dynamic + index * 16;
    let tag: u64 = read_user(entry).unwrap_or(DT_NULL);
    if tag == DT_NULL {
        return 1;
    }
    if tag == DT_DEBUG {
        scan.r_debug = read_user_or_zero(entry + 8);
        return 1;
    }
    0
}

/// The state of the walk along `link_map.l_next`.
struct Walk {
    link: u64,
    reason: u32,
}

/// One step of the walk: sends the object at `link`, moves to the next;
/// 1 (stop) at the end of the list.
#[inline(never)]
extern "C" fn walk_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the `Walk` given to it.
    let walk = unsafe { &mut *(ctx as *mut Walk) };
    if walk.link == 0 {
        return 1;
    }
    send_module(walk.reason, index as u32, walk.link);
    walk.link = read_user_or_zero(walk.link + 24);
    0
}

/// One object of the list, from its `struct link_map` at `link`.
#[inline(always)]
fn send_module(reason: u32, index: u32, link: u64) {
    let Some(mut entry) = EVENTS.reserve::<ModuleRecord>(0) else {
        count_lost(EventKind::Module);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Module);
    let l_name: u64 = read_user_or_zero(link + 8);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).reason).write(reason);
        addr_of_mut!((*rec).index).write(index);
        addr_of_mut!((*rec).l_addr).write(read_user_or_zero::<u64>(link));
        addr_of_mut!((*rec).l_ld).write(read_user_or_zero::<u64>(link + 16));
        addr_of_mut!((*rec)._pad).write(0);
        let dst = addr_of_mut!((*rec).path) as *mut u8;
        let n = if l_name == 0 {
            0
        } else {
            aya_ebpf::helpers::generated::bpf_probe_read_user_str(
                dst as *mut _,
                MODULE_PATH_BYTES as u32,
                l_name as *const _,
            )
        };
        addr_of_mut!((*rec).path_len).write(if n > 1 { (n - 1) as u32 } else { 0 });
    }
    entry.submit(0);
}

// ---------------------------------------------------------------------------
// dlopen() returns (uretprobe on libc's dlopen, attached per traced
// process; C code, where a return probe is safe). The list then holds the
// opened library and what it pulled in. Runs only when a library is
// loaded: never on a hot path.
// ---------------------------------------------------------------------------
#[uretprobe]
pub fn dlopen_return(ctx: RetProbeContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_some() && ctx.ret::<u64>() != 0 {
        send_modules(MODULES_AT_DLOPEN);
    }
    0
}
