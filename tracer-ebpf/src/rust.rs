//! `rust_panic` and `rust_panic_message`: a Rust panic's location, payload
//! and formatted message.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    EbpfContext,
    bindings::pt_regs,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_probe_read_user as raw_probe_read_user},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use tracer_common::{
    EventKind, RUST_FILE_BYTES, RUST_MSG_BYTES, RUST_PANICS_PER_SEC, RUST_PANICS_RATE_LIMITED,
    RustPanicMessageRecord, RustPanicRecord,
};

use crate::maps::{EVENTS, RUST_RATE, RUST_UNTOLD};
use crate::signals::snapshot_stack;
use crate::util::{
    count_in_slot, count_lost, fill_header, is_traced, read_user, read_user_or_zero, registers,
    site_rate,
};

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
    let Some(suppressed) = told(tgid, r.rdx) else {
        return;
    };
    snapshot_stack(r.rsp);
    let Some(mut entry) = EVENTS.reserve::<RustPanicRecord>(0) else {
        count_lost(EventKind::RustPanic);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::RustPanic);
    let loc = r.rdx;
    let file_ptr: u64 = read_user_or_zero(loc);
    let file_len: u64 = read_user_or_zero(loc + 8);
    // A `&'static str` payload (panic!("literal"), unwrap on None …): its
    // data is the str's (ptr, len). A formatted message's payload starts
    // with a reference and an Option<String> whose niche is no length.
    let msg_ptr: u64 = read_user_or_zero(r.rdi);
    let msg_len: u64 = read_user(r.rdi + 8).unwrap_or(u64::MAX);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).regs).write(registers(&r));
        addr_of_mut!((*rec).line).write(read_user_or_zero::<u32>(loc + 16));
        addr_of_mut!((*rec).col).write(read_user_or_zero::<u32>(loc + 20));
        addr_of_mut!((*rec).can_unwind).write((r.rcx & 0xff) as u32);
        addr_of_mut!((*rec).suppressed).write(suppressed);
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

/// The site's rate limit ([`RUST_PANICS_PER_SEC`] per `&Location` per
/// second): Some(panics untold since the last told one) when this one is
/// told, None when it is not (it then costs two map operations, not the
/// 32 KiB stack copy, and its formatted message is skipped too).
#[inline(always)]
fn told(tgid: u32, location: u64) -> Option<u32> {
    let thread = bpf_get_current_pid_tgid();
    let Some(untold) = site_rate(
        &RUST_RATE,
        [tgid as u64, location],
        RUST_PANICS_PER_SEC,
        || false,
    ) else {
        let _ = RUST_UNTOLD.insert(&thread, &1, 0);
        count_in_slot(RUST_PANICS_RATE_LIMITED);
        return None;
    };
    let _ = RUST_UNTOLD.remove(&thread);
    Some(if untold > u32::MAX as u64 {
        u32::MAX
    } else {
        untold as u32
    })
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
    let thread = bpf_get_current_pid_tgid();
    let tgid = (thread >> 32) as u32;
    if is_traced(tgid).is_none() {
        return;
    }
    // SAFETY: presence only.
    if unsafe { RUST_UNTOLD.get(&thread) }.is_some() {
        let _ = RUST_UNTOLD.remove(&thread);
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
