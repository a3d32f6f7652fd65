//! `dlopen_return`: libraries a traced process loads at run time.
use core::ptr::addr_of_mut;

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::uretprobe, programs::RetProbeContext};
use tracer_common::{DLOPEN_PATH_BYTES, DlopenRecord, EventKind};

use crate::maps::EVENTS;
use crate::util::{count_lost, fill_header, is_traced, read_user};

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
