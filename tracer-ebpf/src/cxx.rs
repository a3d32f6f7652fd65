//! `cxx_throw` and `cxx_terminate`: C++ exceptions (rate limited in
//! `CXX_RATE`) and std::terminate.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    EbpfContext, bindings::pt_regs, helpers::bpf_get_current_pid_tgid, macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    CXX_NAME_BYTES, CXX_TERMINATE, CXX_THROW, CXX_THROWS_PER_SEC, CXX_TYPES, CXX_WHAT_BYTES,
    CxxRecord, EventKind,
};

use crate::maps::{CXX_RATE, EVENTS};
use crate::signals::snapshot_stack;
use crate::util::{count_lost, fill_header, is_traced, read_user, registers};

// ---------------------------------------------------------------------------
// C++: libstdc++'s __cxa_throw(void *obj, std::type_info *tinfo, dest) and
// std::terminate(). Attached once per libstdc++ file (all processes,
// filtered by TRACED). Throws that are caught are normal control flow in
// some programs: at most CXX_THROWS_PER_SEC records per process per second,
// the rest counted and reported with the next record.
// ---------------------------------------------------------------------------

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
