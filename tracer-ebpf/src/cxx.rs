//! `cxx_throw`, `cxx_rethrow_exception`, `cxx_rethrow` and `cxx_terminate`:
//! C++ exceptions (rate limited in `CXX_RATE`) and std::terminate.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    EbpfContext, bindings::pt_regs, helpers::bpf_get_current_pid_tgid, macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    CXA_EXCEPTION_HEADER_BYTES, CXX_NAME_BYTES, CXX_RETHROW, CXX_RETHROW_EXCEPTION, CXX_TERMINATE,
    CXX_THROW, CXX_THROWS_PER_SEC, CXX_TYPES, CXX_WHAT_BYTES, CxxRecord, EventKind,
};

use crate::maps::{CXX_RATE, EVENTS};
use crate::signals::snapshot_stack;
use crate::util::{count_lost, fill_header, is_traced, read_user_or_zero, registers, site_rate};

// ---------------------------------------------------------------------------
// C++: libstdc++'s __cxa_throw(void *obj, std::type_info *tinfo, dest),
// std::rethrow_exception(exception_ptr), the `libstdcxx:rethrow` USDT of
// __cxa_rethrow and std::terminate(). Attached per process to its
// libstdc++ (filtered by TRACED anyway). Throws that are caught are normal
// control flow in some programs: at most CXX_THROWS_PER_SEC records per
// site per second, the rest counted and reported with the next record.
// ---------------------------------------------------------------------------

#[uprobe]
pub fn cxx_throw(ctx: ProbeContext) -> u32 {
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: pt_regs = unsafe { *(ctx.as_ptr() as *const pt_regs) };
    try_cxx(&r, CXX_THROW, r.rdi, r.rsi);
    0
}

/// `std::rethrow_exception(std::exception_ptr ep)`: `ep` has a destructor,
/// so it is passed by reference (rdi → exception_ptr → primary object).
#[uprobe]
pub fn cxx_rethrow_exception(ctx: ProbeContext) -> u32 {
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: pt_regs = unsafe { *(ctx.as_ptr() as *const pt_regs) };
    let object: u64 = read_user_or_zero(r.rdi);
    try_cxx(&r, CXX_RETHROW_EXCEPTION, object, type_of(object));
    0
}

/// The `libstdcxx:rethrow(object, type)` USDT of `__cxa_rethrow`: its
/// first operand is the thrown object (libstdc++ passes
/// `__get_object_from_ambiguous_exception(header)`: the primary object
/// also for a rethrown exception_ptr, whose header's "type" is not one).
/// The cookie holds the pt_regs offset of that operand, parsed from the
/// library's note.
#[uprobe]
pub fn cxx_rethrow(ctx: ProbeContext) -> u32 {
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: pt_regs = unsafe { *(ctx.as_ptr() as *const pt_regs) };
    // SAFETY: the helper reads the link's cookie.
    let cookie = unsafe { aya_ebpf::helpers::bpf_get_attach_cookie(ctx.as_ptr()) };
    if let Some(object) = reg_at(&r, cookie & 0xffff) {
        try_cxx(&r, CXX_RETHROW, object, type_of(object));
    }
    0
}

#[uprobe]
pub fn cxx_terminate(ctx: ProbeContext) -> u32 {
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: pt_regs = unsafe { *(ctx.as_ptr() as *const pt_regs) };
    try_cxx(&r, CXX_TERMINATE, 0, 0);
    0
}

/// The thrown object's `std::type_info *`, from the header before it.
#[inline(always)]
fn type_of(object: u64) -> u64 {
    read_user_or_zero(object.wrapping_sub(CXA_EXCEPTION_HEADER_BYTES))
}

/// A general register by its byte offset in x86_64 `pt_regs`.
#[inline(always)]
fn reg_at(r: &pt_regs, offset: u64) -> Option<u64> {
    Some(match offset {
        0 => r.r15,
        8 => r.r14,
        16 => r.r13,
        24 => r.r12,
        32 => r.rbp,
        40 => r.rbx,
        48 => r.r11,
        56 => r.r10,
        64 => r.r9,
        72 => r.r8,
        80 => r.rax,
        88 => r.rcx,
        96 => r.rdx,
        104 => r.rsi,
        112 => r.rdi,
        _ => return None,
    })
}

#[inline(never)]
fn try_cxx(r: &pt_regs, probe: u32, object: u64, tinfo: u64) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    let mut suppressed = 0u64;
    let thrown = probe != CXX_TERMINATE;
    if thrown {
        let site = [tgid as u64, read_user_or_zero::<u64>(r.rsp)];
        let Some(untold) = site_rate(&CXX_RATE, site, CXX_THROWS_PER_SEC, || false) else {
            return;
        };
        suppressed = untold;
    }
    if thrown {
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
        addr_of_mut!((*rec).regs).write(registers(r));
        addr_of_mut!((*rec).object).write(object);
        addr_of_mut!((*rec)._pad).write(0);
        let mut names = TypeNames {
            types: addr_of_mut!((*rec).types) as *mut u8,
            type_names: addr_of_mut!((*rec).type_names) as *mut u64,
            tinfo,
        };
        // bpf_loop: the verifier checks one type, not every path through
        // four (~1,000–4,000 checked instructions per program).
        aya_ebpf::helpers::generated::bpf_loop(
            CXX_TYPES as u32,
            type_step as *mut core::ffi::c_void,
            addr_of_mut!(names) as *mut core::ffi::c_void,
            0,
        );
        let what = addr_of_mut!((*rec).what) as *mut u8;
        *what = 0;
        let mut n = 0i64;
        if thrown && object != 0 {
            let msg: u64 = read_user_or_zero(object + 8);
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

/// The thrown type and its bases: where the next name goes, the
/// `std::type_info *` to read it from (0 past the last).
struct TypeNames {
    types: *mut u8,
    type_names: *mut u64,
    tinfo: u64,
}

/// One type of the chain: its name's address and (up to
/// [`CXX_NAME_BYTES`]) its bytes; the next is the base class's.
#[inline(never)]
extern "C" fn type_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes the `TypeNames` given to it.
    let names = unsafe { &mut *(ctx as *mut TypeNames) };
    // The mask keeps the verifier's view of the index inside the record's
    // CXX_TYPES slots (bpf_loop never runs more).
    let i = (index as usize) & (CXX_TYPES - 1);
    // SAFETY: i < CXX_TYPES slots of each array in the reservation.
    unsafe {
        let dst = names.types.add(i * CXX_NAME_BYTES);
        *dst = 0;
        *names.type_names.add(i) = 0;
        let tinfo = names.tinfo;
        if tinfo == 0 {
            return 0;
        }
        let name: u64 = read_user_or_zero(tinfo + 8);
        *names.type_names.add(i) = name;
        if name != 0 {
            aya_ebpf::helpers::generated::bpf_probe_read_user_str(
                dst as *mut _,
                CXX_NAME_BYTES as u32,
                name as *const _,
            );
        }
        // __si_class_type_info: the base's type_info follows the name (for
        // other type_infos this reads a neighbour: the name there is
        // checked in userspace).
        names.tinfo = read_user_or_zero(tinfo + 16);
    }
    0
}
