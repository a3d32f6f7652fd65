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
use crate::util::{count_lost, fill_header, is_traced, offsets, read_kernel, read_user};

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;
/// Auxiliary vector entries looked at (the kernel saves fewer than 32).
const AUXV_ENTRIES: u32 = 32;
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
/// Program headers looked at.
const PHDRS: u64 = 24;
const PHDR_SIZE: u64 = 56;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
/// Dynamic section entries looked at before DT_DEBUG.
const DYN_ENTRIES: u64 = 48;

/// Sends one [`ModuleRecord`] per object in the current process's list.
#[inline(always)]
pub(crate) fn send_modules(reason: u32) {
    let off = offsets();
    // SAFETY: helper without preconditions in tracing programs.
    let task = unsafe { bpf_get_current_task() };
    let Some(mm) = read_kernel::<u64>(task, off.task_mm).filter(|&m| m != 0) else {
        return;
    };
    let mut phdr: u64 = 0;
    let mut phnum: u64 = 0;
    let mut i: u32 = 0;
    while i < AUXV_ENTRIES {
        let at = off.mm_saved_auxv + i * 16;
        let key: u64 = read_kernel(mm, at).unwrap_or(AT_NULL);
        if key == AT_NULL {
            break;
        }
        let value: u64 = read_kernel(mm, at + 8).unwrap_or(0);
        if key == AT_PHDR {
            phdr = value;
        } else if key == AT_PHNUM {
            phnum = value;
        }
        i += 1;
    }
    if phdr == 0 {
        return;
    }
    let mut phdr_vaddr: u64 = 0;
    let mut dynamic: u64 = 0;
    let mut j: u64 = 0;
    while j < PHDRS && j < phnum {
        let p = phdr + j * PHDR_SIZE;
        let p_type: u32 = read_user(p).unwrap_or(0);
        let p_vaddr: u64 = read_user(p + 16).unwrap_or(0);
        if p_type == PT_PHDR {
            phdr_vaddr = p_vaddr;
        } else if p_type == PT_DYNAMIC {
            dynamic = p_vaddr;
        }
        j += 1;
    }
    if dynamic == 0 {
        return;
    }
    let bias = phdr.wrapping_sub(phdr_vaddr);
    let dynamic = bias.wrapping_add(dynamic);
    let mut r_debug: u64 = 0;
    let mut k: u64 = 0;
    while k < DYN_ENTRIES {
        let tag: u64 = read_user(dynamic + k * 16).unwrap_or(DT_NULL);
        if tag == DT_NULL {
            break;
        }
        if tag == DT_DEBUG {
            r_debug = read_user(dynamic + k * 16 + 8).unwrap_or(0);
            break;
        }
        k += 1;
    }
    if r_debug == 0 {
        return;
    }
    // struct r_debug { int r_version; struct link_map *r_map; … }
    let mut walk = Walk {
        link: read_user(r_debug + 8).unwrap_or(0),
        reason,
    };
    // bpf_loop: the verifier checks the step once. Unrolled, it checked
    // MODULES_MAX copies of send_module in every program that walks the
    // list (0.66 s to load dlopen_return, 0.23 s signal_deliver).
    // SAFETY: `walk_step` matches the callback signature bpf_loop calls;
    // `walk` outlives the call.
    unsafe {
        bpf_loop(
            MODULES_MAX,
            walk_step as *mut c_void,
            addr_of_mut!(walk) as *mut c_void,
            0,
        );
    }
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
    walk.link = read_user(walk.link + 24).unwrap_or(0);
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
    let l_name: u64 = read_user(link + 8).unwrap_or(0);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).reason).write(reason);
        addr_of_mut!((*rec).index).write(index);
        addr_of_mut!((*rec).l_addr).write(read_user::<u64>(link).unwrap_or(0));
        addr_of_mut!((*rec).l_ld).write(read_user::<u64>(link + 16).unwrap_or(0));
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
