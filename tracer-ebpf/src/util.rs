//! Helpers every program uses: kernel and user memory reads, the kernel
//! offsets, the `TRACED` check, drop counting and the record header.
use core::ptr::{addr_of, addr_of_mut, read_volatile};

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
    },
};
use tracer_common::{COMM_LEN, EventKind, Header, KernelOffsets, Registers, TracedProcess};

use crate::maps::{LOST, OFFSETS, TRACED};
use aya_ebpf::maps::LruHashMap;

#[inline(always)]
pub(crate) fn offsets() -> KernelOffsets {
    // SAFETY: a plain read of our own read-only global; volatile so the
    // compiler does not fold the zeros it was compiled with.
    unsafe { read_volatile(addr_of!(OFFSETS)) }
}

#[inline(always)]
pub(crate) fn read_kernel<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a fault is an Err.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// A `T` at kernel address `base + offset`, zeros where unreadable: like
/// [`read_user_or_zero`], no branch on the result for the verifier to walk
/// both sides of (a `read_kernel(..).unwrap_or(0)` went on with a constant 0
/// on one side, which the rest of the program was checked with again).
#[inline(always)]
pub(crate) fn read_kernel_or_zero<T: Default>(base: u64, offset: u32) -> T {
    let mut v = T::default();
    // SAFETY: the helper checks its source and zeroes `v` on a fault.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            addr_of_mut!(v) as *mut core::ffi::c_void,
            core::mem::size_of::<T>() as u32,
            (base + offset as u64) as *const core::ffi::c_void,
        );
    }
    v
}

#[inline(always)]
pub(crate) fn is_traced(tgid: u32) -> Option<TracedProcess> {
    // SAFETY: the value is copied out before any map update.
    unsafe { TRACED.get(&tgid) }.copied()
}

#[inline(always)]
pub(crate) fn count_lost(kind: EventKind) {
    count_in_slot(kind.lost_index());
}

/// Adds one to slot `slot` of the per-CPU drop counters.
#[inline(always)]
pub(crate) fn count_in_slot(slot: u32) {
    if let Some(counter) = LOST.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot; programs do not preempt each other on one CPU
        // for these tracepoint programs.
        unsafe { *counter += 1 };
    }
}

/// The record's copy of the user registers.
#[inline(always)]
pub(crate) fn registers(r: &pt_regs) -> Registers {
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
pub(crate) fn fill_header(header: *mut Header, kind: EventKind) {
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

/// Below this no process maps anything (`vm.mmap_min_addr`): a read there
/// is a field of a null pointer, refused here instead of by a page fault.
const FIRST_USER_PAGE: u64 = 0x1000;

#[inline(always)]
pub(crate) fn read_user<T>(addr: u64) -> Option<T> {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    let size = core::mem::size_of::<T>() as u32;
    // Both helpers write `v` (a failed read zeroes it): no path leaves a
    // register the verifier would see uninitialized.
    // SAFETY: the helpers check their source; `v` is ours.
    let ret = unsafe {
        if addr < FIRST_USER_PAGE {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                v.as_mut_ptr() as *mut core::ffi::c_void,
                size,
                core::ptr::null(),
            )
        } else {
            aya_ebpf::helpers::generated::bpf_probe_read_user(
                v.as_mut_ptr() as *mut core::ffi::c_void,
                size,
                addr as *const core::ffi::c_void,
            )
        }
    };
    // SAFETY: written by the helper on success.
    (ret == 0).then(|| unsafe { v.assume_init() })
}

/// A `T` at user address `addr`, zeros where unreadable: one helper call
/// and no branch (the helper zeroes what it cannot read), where
/// [`read_user`] branches twice — the verifier walks both sides of each
/// (the Go chain reads, unrolled four times, cost a third less).
#[inline(always)]
pub(crate) fn read_user_or_zero<T: Default>(addr: u64) -> T {
    let mut v = T::default();
    // SAFETY: the helper checks its source; `v` is ours.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            addr_of_mut!(v) as *mut core::ffi::c_void,
            core::mem::size_of::<T>() as u32,
            addr as *const core::ffi::c_void,
        );
    }
    v
}

/// Zeroes `len` bytes at `dst` with one helper call: a kernel read of
/// address 0 fails and zeroes its destination. A `write_bytes` of a few
/// hundred bytes becomes a loop of stores that the verifier walks one by
/// one (the 1 KiB Go stack snapshot's cost ~7,000 checked instructions in
/// each program that wrote it). A *kernel* read: the kernel refuses an
/// address below the user range's end before touching it, where a user
/// read of address 0 takes a page fault and its exception fixup (perf: a
/// third of the Go probes' time went to faulting user reads; 2026-12-07).
///
/// # Safety
/// `dst` points to `len` writable bytes the verifier knows (a ring-buffer
/// reservation or the program's stack).
#[inline(always)]
pub(crate) unsafe fn zero(dst: *mut u8, len: u32) {
    // SAFETY: the helper checks the (null) source; `dst` is the caller's.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            dst as *mut core::ffi::c_void,
            len,
            core::ptr::null(),
        );
    }
}

/// Copies the user registers a task's `pt_regs` holds (kernel memory at
/// `regs_ptr`) into a record's `Registers`, one field at a time and never
/// through the stack: a `pt_regs` copy is 168 bytes of a program's 512,
/// which the whole call chain shares.
///
/// # Safety
/// `dst` points to a writable `Registers` the verifier knows (a
/// ring-buffer reservation).
#[inline(always)]
pub(crate) unsafe fn copy_registers(dst: *mut Registers, regs_ptr: u64) {
    use core::mem::offset_of;
    let fields: [(*mut u64, usize); 18] = unsafe {
        [
            (addr_of_mut!((*dst).ip), offset_of!(pt_regs, rip)),
            (addr_of_mut!((*dst).sp), offset_of!(pt_regs, rsp)),
            (addr_of_mut!((*dst).bp), offset_of!(pt_regs, rbp)),
            (addr_of_mut!((*dst).flags), offset_of!(pt_regs, eflags)),
            (addr_of_mut!((*dst).ax), offset_of!(pt_regs, rax)),
            (addr_of_mut!((*dst).bx), offset_of!(pt_regs, rbx)),
            (addr_of_mut!((*dst).cx), offset_of!(pt_regs, rcx)),
            (addr_of_mut!((*dst).dx), offset_of!(pt_regs, rdx)),
            (addr_of_mut!((*dst).si), offset_of!(pt_regs, rsi)),
            (addr_of_mut!((*dst).di), offset_of!(pt_regs, rdi)),
            (addr_of_mut!((*dst).r8), offset_of!(pt_regs, r8)),
            (addr_of_mut!((*dst).r9), offset_of!(pt_regs, r9)),
            (addr_of_mut!((*dst).r10), offset_of!(pt_regs, r10)),
            (addr_of_mut!((*dst).r11), offset_of!(pt_regs, r11)),
            (addr_of_mut!((*dst).r12), offset_of!(pt_regs, r12)),
            (addr_of_mut!((*dst).r13), offset_of!(pt_regs, r13)),
            (addr_of_mut!((*dst).r14), offset_of!(pt_regs, r14)),
            (addr_of_mut!((*dst).r15), offset_of!(pt_regs, r15)),
        ]
    };
    for (field, offset) in fields {
        // SAFETY: the helper checks the kernel address (a fault zeroes the
        // field); `field` is in the caller's reservation.
        unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                field as *mut core::ffi::c_void,
                8,
                (regs_ptr + offset as u64) as *const core::ffi::c_void,
            );
        }
    }
}

/// A per-site rate limit (C++ throws, Rust and Go panics): `map` holds,
/// per site, (window start ns, told in the window, untold since the last
/// told one). Some(untold since the last told one) when this event is
/// told — at most `per_sec` a second, or any time `always()` says so
/// (asked only past the limit) — None when it is not (then counted for the
/// next told one).
#[inline(always)]
pub(crate) fn site_rate(
    map: &LruHashMap<[u64; 2], [u64; 3]>,
    site: [u64; 2],
    per_sec: u64,
    always: impl Fn() -> bool,
) -> Option<u64> {
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // Updated in place: a map update per event cost more than the rest of
    // a rate-limited event (LRU hash; Go's panic loop: 0.99 -> 0.74 µs of
    // BPF a panic). Two CPUs at one site may lose a count, as a copy and an
    // update would.
    let Some(st) = map.get_ptr_mut(&site) else {
        let _ = map.insert(&site, &[now, 1, 0], 0);
        return Some(0);
    };
    // SAFETY: the map's value stays valid during the program.
    unsafe {
        if now.wrapping_sub((*st)[0]) > 1_000_000_000 {
            (*st)[0] = now;
            (*st)[1] = 0;
        }
        if (*st)[1] >= per_sec && !always() {
            (*st)[2] += 1;
            return None;
        }
        (*st)[1] += 1;
        let untold = (*st)[2];
        (*st)[2] = 0;
        Some(untold)
    }
}
