//! `go_gopanic`, `go_throw`, … (one program per entry point, one body): the
//! Go runtime's panic, throw, fatal, recovery and fault entry points.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_F_USER_STACK, pt_regs},
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{
            bpf_get_attach_cookie, bpf_get_stack, bpf_loop,
            bpf_probe_read_user as raw_probe_read_user,
        },
    },
    macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    EventKind, GO_COOKIE_SITE_MASK, GO_COOKIE_SITE_SHIFT, GO_DEFER_BITS_VALID, GO_DEFER_CALL_VALID,
    GO_DEFER_RECORDS, GO_DUMP_MAX_GOROUTINES, GO_DUMP_SYSTEM, GO_DUMP_USER, GO_FROM_EXIT,
    GO_GOROUTINE_FRAMES, GO_GOROUTINE_FROM_SCHED, GO_GOROUTINE_LOCKED, GO_GOROUTINE_SUMMARY,
    GO_GOROUTINE_SWITCHED, GO_GOROUTINE_SYSTEM, GO_NO_FIELD, GO_PANIC_BEYOND_MAX,
    GO_PANIC_CHAIN_MAX, GO_PANIC_GOEXIT, GO_PANIC_PREV_RECOVERED, GO_PANIC_RECOVERED,
    GO_PANIC_REPANICKED, GO_PANICS_PER_SEC, GO_PANICS_RATE_LIMITED, GO_PROBE_AT_STACK_CHECK,
    GO_STACK_FROM_SCHED, GO_STACK_SNAPSHOT, GO_STRING_BYTES, GO_VALUE_BYTES, GoChainPanic,
    GoConfig, GoProbe, GoRecord, GoroutineRecord, MAX_STACK_DEPTH,
};

use crate::maps::{
    EVENTS, GO_CONFIG, GO_LAST_DEFER_CALL, GO_PROBE_HITS, GO_PROCESSES, GO_RATE, GO_TOLD_PANIC,
    GO_UNTOLD,
};
use crate::util::{
    copy_registers, count_in_slot, count_lost, fill_header, is_traced, read_kernel_or_zero,
    read_user, read_user_or_zero, registers, site_rate, zero,
};

/// Frames walked by hand from a goroutine's saved context (a bounded loop).
const GO_SCHED_FRAMES: usize = 64;

// ---------------------------------------------------------------------------
// Go runtime entry points (runtime.gopanic, throw, fatal, recovery,
// printpanics, sigpanic, Goexit, deferCallSave, goroutineheader).
// Attached per process, right after each function's stack check, at its
// `push rbp` (emulated by the kernel: ~0.7 µs a hit instead of ~13.5 µs for
// a single-stepped instruction, and once per call even when the function
// re-enters through morestack). Go 1.17–1.20 set up frames with `sub rsp`
// instead, which would be single-stepped: there the probe sits on the
// stack check's `jbe` just before it (emulated), and a hit whose branch
// goes to morestack is skipped (GO_PROBE_AT_STACK_CHECK). None of these
// run on a healthy program.
// ---------------------------------------------------------------------------
//
// One program per entry point, from one generic body with the kind a
// constant: each program is only its kind's path (go_gopanic 3,041 checked
// instructions, go_throw 1,794; one program branching on the cookie's kind
// checked 45,277, ~80 ms of every start). The cookie still says which
// binary's layout applies, and whether the probe sits on the stack check.
macro_rules! go_programs {
    ($($name:ident => $probe:ident),* $(,)?) => {$(
        #[uprobe]
        pub fn $name(ctx: ProbeContext) -> u32 {
            if go_prelude::<{ GoProbe::$probe as u32 }>(&ctx) {
                try_go_probe::<{ GoProbe::$probe as u32 }>(&ctx);
            }
            0
        }
    )*};
}

go_programs! {
    go_gopanic => Gopanic,
    go_throw => Throw,
    go_fatal => Fatal,
    go_recovery => Recovery,
    go_printpanics => Printpanics,
    go_sigpanic => Sigpanic,
    go_goexit => Goexit,
    go_defer_call => DeferCall,
    go_goroutine_header => GoroutineHeader,
    go_preprintpanics => Preprintpanics,
}

/// What every hit checks first — the stack check's re-entry, the process,
/// the rate limit — and, for Go 1.22+, the panics that end at this hit;
/// whether [`try_go_probe`] goes on. Two BPF functions, not one: their
/// stack frames do not add up on the verifier's 512 bytes.
#[inline(never)]
fn go_prelude<const PROBE: u32>(ctx: &ProbeContext) -> bool {
    // SAFETY: helper without preconditions in uprobe programs.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: &pt_regs = unsafe { &*(ctx.as_ptr() as *const pt_regs) };
    // On the stack check's `jbe` (Go 1.17–1.20): when it jumps to
    // morestack (CF or ZF), the function re-enters once the stack has
    // grown and the probe fires again then.
    const CF_ZF: u64 = 0x41;
    if cookie as u32 & GO_PROBE_AT_STACK_CHECK != 0 && r.eflags & CF_ZF != 0 {
        return false;
    }
    if let Some(hits) = GO_PROBE_HITS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *hits += 1 };
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid).is_none() {
        return false;
    }
    let probe = PROBE;
    let binary = (cookie >> 32) as u32;
    let Some(cfg) = GO_CONFIG.get(binary) else {
        return false;
    };
    // Go 1.22+: panics are told when they end, from the `_panic` chain.
    let at_end = cfg.panic_start_sp != GO_NO_FIELD;
    if at_end && probe == GoProbe::Recovery as u32 {
        let site_offset = (cookie as u32 >> GO_COOKIE_SITE_SHIFT) & GO_COOKIE_SITE_MASK;
        if recovery_untold(r, tgid, binary, site_offset, cfg) {
            return false;
        }
    } else if (probe == GoProbe::Gopanic as u32 || probe == GoProbe::Recovery as u32)
        && untold(probe, r, tgid, cfg)
    {
        return false;
    }
    true
}

/// The hit's own record (after [`go_prelude`]).
#[inline(never)]
fn try_go_probe<const PROBE: u32>(ctx: &ProbeContext) {
    // SAFETY: helper without preconditions in uprobe programs.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    // SAFETY: a uprobe's context is the user pt_regs.
    let r: &pt_regs = unsafe { &*(ctx.as_ptr() as *const pt_regs) };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let probe = PROBE;
    let binary = (cookie >> 32) as u32;
    let Some(cfg) = GO_CONFIG.get(binary) else {
        return;
    };
    let at_end = cfg.panic_start_sp != GO_NO_FIELD;
    if probe == GoProbe::GoroutineHeader as u32 {
        goroutine_header(&r, tgid, binary, &cfg);
        return;
    }
    // The runtime prints its panics here: they are recorded, not read
    // again at the exit (a gopanic hit alone proves nothing: the probes
    // are placed one by one, and printpanics may come too late).
    if probe == GoProbe::Printpanics as u32
        && let Some(p) = GO_PROCESSES.get_ptr_mut(&tgid)
    {
        // SAFETY: a plain store into the map's value.
        unsafe { (*p).printed = 1 };
    }
    // A fault the runtime turns into a panic: not the crash its delivery
    // announced (see signals.rs); a fatal panic marks it again at printpanics.
    if probe == GoProbe::Sigpanic as u32
        && let Some(p) = GO_PROCESSES.get_ptr_mut(&tgid)
    {
        // SAFETY: a plain store into the map's value.
        unsafe { (*p).dumping = 0 };
    }
    // The process is dying (a fatal error or panic): the goroutines the
    // runtime prints from now on are its goroutine dump.
    if (probe == GoProbe::Printpanics as u32
        || probe == GoProbe::Throw as u32
        || probe == GoProbe::Fatal as u32)
        && let Some(p) = GO_PROCESSES.get_ptr_mut(&tgid)
    {
        let level = if probe == GoProbe::Throw as u32 {
            GO_DUMP_SYSTEM
        } else {
            GO_DUMP_USER
        };
        // SAFETY: a plain read and store in the map's value.
        unsafe {
            if (*p).dumping < level {
                (*p).dumping = level;
            }
        }
    }

    // The user goroutine: the argument for recovery(gp), else g (R14),
    // or g.m.curg when running on the system stack (g0 or gsignal).
    let mut g = if probe == GoProbe::Recovery as u32 {
        r.rax
    } else {
        r.r14
    };
    // sigpanic reads the fault from getg(): the g the handler prepared,
    // g0 itself when the fault came in a cgo call (Go 1.19 then throws).
    let faulted_g = g;
    let mut on_system_stack = 0u32;
    let m: u64 = read_user_or_zero(g + cfg.g_m as u64);
    if m != 0 {
        let g0: u64 = read_user_or_zero(m + cfg.m_g0 as u64);
        let gsignal: u64 = read_user_or_zero(m + cfg.m_gsignal as u64);
        if g == g0 || g == gsignal {
            on_system_stack = 1;
            g = read_user_or_zero(m + cfg.m_curg as u64);
        }
    }
    let goid: u64 = if g != 0 {
        read_user_or_zero(g + cfg.g_goid as u64)
    } else {
        0
    };
    let gkey = goroutine_key(tgid, goid);

    // Go 1.19–1.21 deferCallSave(p, fn): remember fn's code for recovery; no record.
    if probe == GoProbe::DeferCall as u32 {
        let funcval = r.rbx;
        let code: u64 = if funcval != 0 {
            read_user_or_zero(funcval)
        } else {
            0
        };
        if code != 0 {
            let _ = GO_LAST_DEFER_CALL.insert(&gkey, &code, 0);
        }
        return;
    }
    // A new panic: an earlier panic's or Goexit's deferred call is stale.
    // The panic it follows, if any, is still the head of g._panic (this
    // one is pushed after the probe): recovered, it was recovered by the
    // deferred function that panics now.
    let mut prev_recovered = 0u32;
    if probe == GoProbe::Gopanic as u32 {
        let _ = GO_LAST_DEFER_CALL.remove(&gkey);
        let prev: u64 = read_user_or_zero(g + cfg.g_panic as u64);
        if prev != 0 && panic_flags(prev, &cfg) & GO_PANIC_RECOVERED != 0 {
            prev_recovered = GO_PANIC_PREV_RECOVERED;
        }
    }

    // The value: gopanic's argument, or printpanics' p.arg (an `any` too).
    let (ty, data, flags) = if probe == GoProbe::Printpanics as u32 {
        let p = r.rax;
        (
            read_user_or_zero::<u64>(p + cfg.panic_arg as u64),
            read_user_or_zero::<u64>(p + cfg.panic_arg as u64 + 8),
            panic_flags(p, &cfg),
        )
    } else if probe == GoProbe::Sigpanic as u32 {
        // g.sig and g.sigcode1 (the fault address); sigcode0 and sigpc
        // follow in `value`.
        (
            read_user_or_zero::<u32>(faulted_g + cfg.g_sig as u64) as u64,
            read_user_or_zero::<u64>(faulted_g + cfg.g_sigcode0 as u64 + 8),
            0,
        )
    } else {
        (r.rax, r.rbx, prev_recovered)
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
        let p: u64 = read_user_or_zero(g + cfg.g_panic as u64);
        let bits_ptr: u64 = if p != 0 {
            read_user_or_zero(p + cfg.panic_defer_bits as u64)
        } else {
            0
        };
        let slots: u64 = if p != 0 {
            read_user_or_zero(p + cfg.panic_slots as u64)
        } else {
            0
        };
        if bits_ptr != 0 && slots != 0 {
            if let Some(bits) = read_user::<u8>(bits_ptr) {
                flags = GO_DEFER_BITS_VALID | bits as u32;
            }
            let mut i = 0;
            while i < 8 {
                let funcval: u64 = read_user_or_zero(slots + i as u64 * 8);
                defer_code[i] = if funcval != 0 {
                    read_user_or_zero(funcval)
                } else {
                    0
                };
                i += 1;
            }
        }
    }

    // Go 1.19–1.21 have no defer bits: the last deferred call deferCallSave ran.
    if probe == GoProbe::Recovery as u32 && cfg.panic_defer_bits == GO_NO_FIELD {
        // SAFETY: the value is copied out before the entry is removed.
        if let Some(code) = unsafe { GO_LAST_DEFER_CALL.get(&gkey) }.copied() {
            defer_code[0] = code;
            flags |= GO_DEFER_CALL_VALID;
            let _ = GO_LAST_DEFER_CALL.remove(&gkey);
        }
    }
    if probe == GoProbe::Sigpanic as u32 {
        defer_code[0] = read_user_or_zero(faulted_g + cfg.g_sigcode0 as u64);
        defer_code[1] = data;
        defer_code[2] = read_user_or_zero(faulted_g + cfg.g_sigcode0 as u64 + 16);
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
        addr_of_mut!((*rec).return_address).write(read_user_or_zero::<u64>(r.rsp));
        addr_of_mut!((*rec).regs).write(registers(&r));

        // gopanic: the bytes the value's data word points to. For a string
        // value, and for most error types (errors.errorString,
        // fmt.wrapError, …), they start with a string header {ptr, len}.
        let (str_ptr, str_len) = if has_value {
            write_value(rec, data)
        } else {
            let value = addr_of_mut!((*rec).value) as *mut u8;
            zero(value, GO_VALUE_BYTES as u32);
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
        write_string(rec, str_ptr, str_len);

        // On the system stack (throw from newstack, systemstack), the
        // goroutine's own frames are where it saved its context.
        // runtime.recovery runs on g0 through mcall, which saved the
        // recovering goroutine's context: walk that too, not g0's stack.
        let from_sched = on_system_stack != 0 || probe == GoProbe::Recovery as u32;
        if !(from_sched && g != 0 && walk_sched(rec, g, &cfg, flags)) {
            let stack = addr_of_mut!((*rec).stack) as *mut u64;
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
        zero(defers as *mut u8, (2 * GO_DEFER_RECORDS * 8) as u32);
        if g != 0 {
            let mut d: u64 = read_user_or_zero(g + cfg.g_defer as u64);
            if probe == GoProbe::Recovery as u32 {
                *defers = d;
                if cfg.panic_retpc != GO_NO_FIELD {
                    let p: u64 = read_user_or_zero(g + cfg.g_panic as u64);
                    *defers.add(1) = if p != 0 {
                        read_user_or_zero(p + cfg.panic_retpc as u64)
                    } else {
                        0
                    };
                }
            } else if probe == GoProbe::Gopanic as u32 {
                // Go 1.19–1.21: a record already started (a call an older
                // panic ran, which panicked) is aborted, not called again;
                // its address carries the flag in bit 0 (records are
                // word-aligned). Without the field (Go 1.22+, which has no
                // gopanic probe anyway) the mask clears the flag.
                let (started_at, started_mask) = if cfg.defer_started != GO_NO_FIELD {
                    (cfg.defer_started as u64, 1u64)
                } else {
                    (0, 0)
                };
                let mut i = 0;
                while i < GO_DEFER_RECORDS && d != 0 {
                    let funcval: u64 = read_user_or_zero(d + cfg.defer_fn as u64);
                    let code: u64 = if funcval != 0 {
                        read_user_or_zero(funcval)
                    } else {
                        0
                    };
                    // 0 or 1 without a branch (the verifier walks this loop
                    // unrolled): a bool is one byte, any nonzero true.
                    let started: u8 = read_user_or_zero(d + started_at);
                    let started = ((started as u64 + 255) >> 8) & started_mask;
                    *defers.add(2 * i) = d | started;
                    *defers.add(2 * i + 1) = code;
                    d = read_user_or_zero(d + cfg.defer_link as u64);
                    i += 1;
                }
            }
        }

        // Go 1.22+: the panics that end here (recovered, fatal, or left
        // behind by a Goexit), read as their gopanic hits would have read
        // them; then the goroutine's mark moves past them.
        let mut chain_len = 0u32;
        if at_end
            && g != 0
            && (probe == GoProbe::Recovery as u32
                || probe == GoProbe::Preprintpanics as u32
                || probe == GoProbe::Goexit as u32)
        {
            let head: u64 = read_user_or_zero(g + cfg.g_panic as u64);
            let mkey = [tgid as u64, g];
            let mark = told_mark(mkey, goid);
            chain_len = read_chain(rec, head, mark, cfg);
            if probe == GoProbe::Recovery as u32 {
                mark_survivors(mkey, goid, head, binary, cfg);
            } else if probe == GoProbe::Goexit as u32 && head != 0 {
                let start_sp: u64 = read_user_or_zero(head + cfg.panic_start_sp as u64);
                let _ = GO_TOLD_PANIC.insert(&mkey, &[head, start_sp, goid], 0);
            } else if mark.is_some() {
                let _ = GO_TOLD_PANIC.remove(&mkey);
            }
        } else {
            no_chain(rec);
        }

        // Only a panic needs the raw stack (a fault's frameless function):
        // from the probe's sp, or where the panicking goroutine saved its
        // context when printpanics runs on the system stack (or recovery
        // on g0, for the panics it ends).
        let snapshot_sp = if probe == GoProbe::Gopanic as u32 || probe == GoProbe::Sigpanic as u32 {
            r.rsp
        } else if (probe == GoProbe::Printpanics as u32 || chain_len > 0) && from_sched && g != 0 {
            read_user_or_zero(g + cfg.g_sched as u64)
        } else if chain_len > 0 {
            r.rsp
        } else {
            0
        };
        write_snapshot(rec, snapshot_sp);
    }
    entry.submit(0);
}

/// Whether this gopanic or recovery hit goes untold: recovered panics are
/// control flow in some programs (encoding/json's errors, a retry loop),
/// and each told one costs its two hits' reads of the goroutine (~9 µs a
/// panic on these VMs, mostly `bpf_probe_read_user`). At most
/// [`GO_PANICS_PER_SEC`] panics per site per second are told; the rest
/// cost three reads and a map update, and are counted
/// ([`GO_PANICS_RATE_LIMITED`], reported by userspace as `lost`). A panic
/// from a fault (`g.sig` set by the signal handler, whose sigpanic was
/// told) is always told. A told panic clears the goroutine's mark: the
/// recovery that follows is its.
#[inline(always)]
fn untold(probe: u32, r: &pt_regs, tgid: u32, cfg: &GoConfig) -> bool {
    // gopanic runs on the panicking goroutine (R14 = g); recovery(gp).
    let g = if probe == GoProbe::Recovery as u32 {
        r.rax
    } else {
        r.r14
    };
    let goid: u64 = read_user_or_zero(g + cfg.g_goid as u64);
    let gkey = goroutine_key(tgid, goid);
    if probe == GoProbe::Recovery as u32 {
        // SAFETY: presence only.
        if unsafe { GO_UNTOLD.get(&gkey) }.is_none() {
            return false;
        }
        let _ = GO_UNTOLD.remove(&gkey);
        return true;
    }
    let fault = || read_user_or_zero::<u32>(g + cfg.g_sig as u64) != 0;
    let site = [tgid as u64, read_user_or_zero::<u64>(r.rsp)];
    if site_rate(&GO_RATE, site, GO_PANICS_PER_SEC, fault).is_none() {
        let _ = GO_UNTOLD.insert(&gkey, &1, 0);
        count_in_slot(GO_PANICS_RATE_LIMITED);
        return true;
    }
    let _ = GO_UNTOLD.remove(&gkey);
    false
}

/// Go 1.22+ runtime.recovery: whether this recovered panic goes untold
/// (the rate limit of [`untold`], the only hit of a recovered panic now).
/// The site is the panic's: gopanic's return address, two frames above
/// where the goroutine saved its context (in `_panic.nextDefer`, called by
/// gopanic): `site_offset` above the saved frame pointer (from the
/// cookie), else down the frame-pointer chain. An untold recovery still
/// keeps the goroutine's [`GO_TOLD_PANIC`] mark true.
#[inline(always)]
fn recovery_untold(r: &pt_regs, tgid: u32, binary: u32, site_offset: u32, cfg: &GoConfig) -> bool {
    let g = r.rax;
    let fault = || read_user_or_zero::<u32>(g + cfg.g_sig as u64) != 0;
    let bp: u64 = read_user_or_zero(g + cfg.g_sched as u64 + cfg.gobuf_bp as u64);
    // With gopanic's frame size from the binary (the cookie), one read;
    // without, down the frame-pointer chain.
    let site = if site_offset != 0 {
        [tgid as u64, read_word(bp + site_offset as u64)]
    } else {
        let frame: [u64; 2] = read_user(bp).unwrap_or([0, 0]);
        let site_ret: u64 = read_user_or_zero(frame[0] + 8);
        [((tgid as u64) << 32) ^ frame[1], site_ret]
    };
    if site_rate(&GO_RATE, site, GO_PANICS_PER_SEC, fault).is_some() {
        return false;
    }
    count_in_slot(GO_PANICS_RATE_LIMITED);
    // Keyed by the g, not its id: no read unless the goroutine has a mark
    // (nested panics, a Goexit), the untold path's common case.
    let mkey = [tgid as u64, g];
    // SAFETY: presence only.
    if unsafe { GO_TOLD_PANIC.get(&mkey) }.is_some() {
        let goid: u64 = read_user_or_zero(g + cfg.g_goid as u64);
        if told_mark(mkey, goid).is_some() {
            let head: u64 = read_user_or_zero(g + cfg.g_panic as u64);
            mark_survivors(mkey, goid, head, binary, cfg);
        }
    }
    true
}

/// A walk down a goroutine's `_panic` chain at a hit where panics end
/// (Go 1.22+): the entries newer than its [`GO_TOLD_PANIC`] mark, newest
/// first, read into the record's `chain` (a Goexit's entry is no panic:
/// only flagged [`GO_PANIC_GOEXIT`]).
struct ChainWalk {
    n: u32,
    /// The next link to look at (0: the end).
    p: u64,
    /// The newest panic told already (address, startSP), or zeros.
    mark: [u64; 2],
    out: *mut GoChainPanic,
}

/// Reads the chain from `head` into `rec.chain` down to `mark` (the
/// newest link told already); returns how many entries.
///
/// # Safety
/// `rec` points into a ring-buffer reservation of a [`GoRecord`].
#[inline(always)]
unsafe fn read_chain(rec: *mut GoRecord, head: u64, mark: Option<[u64; 2]>, cfg: &GoConfig) -> u32 {
    let mut walk = ChainWalk {
        n: 0,
        p: head,
        mark: mark.unwrap_or([0, 0]),
        // SAFETY: the caller's reservation.
        out: unsafe { addr_of_mut!((*rec).chain) } as *mut GoChainPanic,
    };
    // No older link unless the walk reads them below (userspace stops at
    // the first zero address, so one store does); written before the walk,
    // so that the verifier checks these stores once, not on each of the
    // walk's ways out.
    // SAFETY: the caller's reservation.
    unsafe {
        addr_of_mut!((*rec).chain_beyond[0][0]).write(0);
        addr_of_mut!((*rec).chain_mark).write(walk.mark);
    }
    // Unrolled: four steps in a row cost the verifier less than a
    // bpf_loop callback it checks until its state settles.
    let _ = chain_link(0, &mut walk, cfg) == 0
        && chain_link(1, &mut walk, cfg) == 0
        && chain_link(2, &mut walk, cfg) == 0
        && chain_link(3, &mut walk, cfg) == 0
        && walk.p != 0
        // SAFETY: the caller's reservation.
        && unsafe { read_beyond(rec, walk.p, cfg) };
    // SAFETY: the caller's reservation.
    unsafe {
        addr_of_mut!((*rec).chain_len).write(walk.n);
        addr_of_mut!((*rec)._chain_pad).write(0);
    }
    walk.n
}

/// More panics under way than the record holds: the older links'
/// (address, startSP | Goexit bit) from `p`, for userspace to count (and
/// report) what is cut. Only on the walk's way that read all it holds: past the chain's
/// end a read faults, which the common case (one panic, then the end)
/// would pay for.
///
/// # Safety
/// `rec` points into a ring-buffer reservation of a [`GoRecord`].
#[inline(always)]
unsafe fn read_beyond(rec: *mut GoRecord, mut p: u64, cfg: &GoConfig) -> bool {
    // SAFETY: the caller's reservation; GO_PANIC_BEYOND_MAX pairs.
    unsafe {
        let beyond = addr_of_mut!((*rec).chain_beyond) as *mut u64;
        for i in 0..GO_PANIC_BEYOND_MAX {
            // startSP is word-aligned: bit 0 says a Goexit's entry (no
            // panic), 0 or 1 without a branch.
            let goexit = read_byte(p + cfg.panic_goexit as u64) as u64;
            beyond.add(2 * i).write(p);
            beyond
                .add(2 * i + 1)
                .write(read_word(p + cfg.panic_start_sp as u64) | ((goexit + 255) >> 8));
            p = read_word(p + cfg.panic_link as u64);
        }
    }
    true
}

/// A record read no chain at its hit. Written all the same: the ring
/// buffer is not zeroed, and a reservation's stale bytes (an earlier
/// record's) would be read as panics that ended here. Userspace reads the
/// rest of the chain's fields only when `chain_len` is not 0.
///
/// # Safety
/// `rec` points into a ring-buffer reservation of a [`GoRecord`].
#[inline(always)]
unsafe fn no_chain(rec: *mut GoRecord) {
    // SAFETY: the caller's reservation.
    unsafe {
        addr_of_mut!((*rec).chain_len).write(0);
        addr_of_mut!((*rec)._chain_pad).write(0);
    }
}

/// One link (a Goexit's only flagged); 1 (stop) at the mark, the chain's
/// end, or when [`GO_PANIC_CHAIN_MAX`] are read.
#[inline(always)]
fn chain_link(index: usize, w: &mut ChainWalk, cfg: &GoConfig) -> i64 {
    let p = w.p;
    let k = index;
    if p == 0 || k >= GO_PANIC_CHAIN_MAX {
        return 1;
    }
    let start_sp = read_word(p + cfg.panic_start_sp as u64);
    if w.mark[0] == p && w.mark[1] == start_sp {
        return 1;
    }
    // Reads without a branch each (a failed read is zeros): the verifier
    // walks this four times in every program that has it.
    let older = read_word(p + cfg.panic_link as u64);
    let goexit = read_byte(p + cfg.panic_goexit as u64) != 0;
    let older_recovered = read_byte(older + cfg.panic_recovered as u64) != 0;
    let flags = (goexit as u32 * GO_PANIC_GOEXIT)
        | ((older != 0 && older_recovered) as u32 * GO_PANIC_PREV_RECOVERED);
    // A Goexit's entry has no value (`arg` is nil): it reads as zeros.
    let data = read_word(p + cfg.panic_arg as u64 + 8);
    // SAFETY: k < GO_PANIC_CHAIN_MAX entries follow `out` in the
    // reservation; user reads are checked helpers.
    unsafe {
        let e = w.out.add(k & (GO_PANIC_CHAIN_MAX - 1));
        addr_of_mut!((*e).arg0).write(read_word(p + cfg.panic_arg as u64));
        addr_of_mut!((*e).arg1).write(data);
        addr_of_mut!((*e).flags).write(flags);
        let (ptr, len) = read_value(addr_of_mut!((*e).value) as *mut u8, data);
        let n = read_string(addr_of_mut!((*e).string) as *mut u8, ptr, len);
        addr_of_mut!((*e).string_len).write(n);
        addr_of_mut!((*e).string_full_len).write(len);
    }
    w.n = k as u32 + 1;
    w.p = older;
    0
}

/// The word at user address `addr`, 0 where unreadable (no branch).
#[inline(always)]
fn read_word(addr: u64) -> u64 {
    read_user_or_zero(addr)
}

/// As [`read_word`], one byte.
#[inline(always)]
fn read_byte(addr: u64) -> u8 {
    read_user_or_zero(addr)
}

/// The goroutine's mark (`GO_TOLD_PANIC`, keyed by process and g), if it
/// is this goroutine's: a g is reused by later goroutines, whose stacks
/// may hold a panic at the same address; the goroutine id tells them apart.
#[inline(always)]
fn told_mark(mkey: [u64; 2], goid: u64) -> Option<[u64; 2]> {
    // SAFETY: the value is copied out.
    let v = unsafe { GO_TOLD_PANIC.get(&mkey) }.copied()?;
    (v[2] == goid).then_some([v[0], v[1]])
}

/// At runtime.recovery of the chain's head: the mark goes to the newest
/// panic the recovery leaves in the chain, as `recovery` unwinds it (the
/// panics that started below the recovering frame's sp go; a Goexit
/// stops it), or is removed when none is left.
#[inline(always)]
fn mark_survivors(mkey: [u64; 2], goid: u64, head: u64, binary: u32, cfg: &GoConfig) {
    let sp: u64 = if head != 0 {
        read_user_or_zero(head + cfg.panic_sp as u64)
    } else {
        0
    };
    let mut walk = SurvivorWalk {
        binary,
        sp,
        q: head,
        q_start_sp: 0,
    };
    // SAFETY: `survivor_step` matches the callback signature; `walk`
    // outlives the call.
    unsafe {
        bpf_loop(
            (2 * GO_PANIC_CHAIN_MAX) as u32,
            survivor_step as *mut core::ffi::c_void,
            addr_of_mut!(walk) as *mut core::ffi::c_void,
            0,
        );
    }
    if walk.q != 0 {
        let _ = GO_TOLD_PANIC.insert(&mkey, &[walk.q, walk.q_start_sp, goid], 0);
    } else {
        let _ = GO_TOLD_PANIC.remove(&mkey);
    }
}

/// A walk down a `_panic` chain as `runtime.recovery` unwinds it.
struct SurvivorWalk {
    binary: u32,
    /// The recovering frame's sp (the recovered panic's `sp`).
    sp: u64,
    /// The link looked at (0: none survives), and its startSP.
    q: u64,
    q_start_sp: u64,
}

/// 1 (stop) at the first link that survives the recovery, or the end.
#[inline(never)]
extern "C" fn survivor_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes the `SurvivorWalk` given to it.
    let w = unsafe { &mut *(ctx as *mut SurvivorWalk) };
    if w.q == 0 {
        return 1;
    }
    let Some(cfg) = GO_CONFIG.get(w.binary) else {
        w.q = 0;
        return 1;
    };
    w.q_start_sp = read_user_or_zero(w.q + cfg.panic_start_sp as u64);
    if is_goexit(w.q, cfg) || w.q_start_sp >= w.sp {
        return 1;
    }
    w.q = read_user_or_zero(w.q + cfg.panic_link as u64);
    0
}

#[inline(always)]
fn is_goexit(p: u64, cfg: &GoConfig) -> bool {
    cfg.panic_goexit != GO_NO_FIELD && read_user_or_zero::<u8>(p + cfg.panic_goexit as u64) != 0
}

/// `runtime.goroutineheader(gp)` while the process is dying: one
/// goroutine of the runtime's dump, with its frames walked from its saved
/// context (a goroutine that is not running is parked in the scheduler,
/// every frame on its stack has a frame pointer). Bounded per process: the
/// headers past [`GO_DUMP_MAX_GOROUTINES`] are only counted.
#[inline(always)]
fn goroutine_header(r: &pt_regs, tgid: u32, binary: u32, cfg: &GoConfig) {
    let Some(state) = GO_PROCESSES.get_ptr_mut(&tgid) else {
        return;
    };
    // SAFETY: the map value stays valid during the program; the runtime
    // prints its dump from one thread.
    let (index, level) = unsafe {
        if (*state).dumping == 0 {
            return;
        }
        (*state).headers += 1;
        ((*state).headers, (*state).dumping)
    };
    if index > GO_DUMP_MAX_GOROUTINES {
        return;
    }
    let gp = r.rax;
    let Some(mut entry) = EVENTS.reserve::<GoroutineRecord>(0) else {
        count_lost(EventKind::Goroutine);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Goroutine);
    let field = |off: u32| -> u64 {
        if off == GO_NO_FIELD {
            0
        } else {
            read_user_or_zero::<u64>(gp + off as u64)
        }
    };
    let status: u32 = read_user(gp + cfg.g_atomicstatus as u64).unwrap_or(u32::MAX);
    const G_SCAN: u32 = 0x1000;
    const G_RUNNING: u32 = 2;
    let mut flags = if level >= GO_DUMP_SYSTEM {
        GO_GOROUTINE_SYSTEM
    } else {
        0
    };
    if field(cfg.g_lockedm) != 0 {
        flags |= GO_GOROUTINE_LOCKED;
    }
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).goid).write(field(cfg.g_goid));
        addr_of_mut!((*rec).parent_goid).write(field(cfg.g_parent_goid));
        addr_of_mut!((*rec).wait_since).write(field(cfg.g_waitsince) as i64);
        addr_of_mut!((*rec).gopc).write(field(cfg.g_gopc));
        addr_of_mut!((*rec).startpc).write(field(cfg.g_startpc));
        addr_of_mut!((*rec).status).write(status);
        addr_of_mut!((*rec).wait_reason)
            .write(read_user_or_zero::<u8>(gp + cfg.g_waitreason as u64) as u32);
        addr_of_mut!((*rec).index).write(index);
        addr_of_mut!((*rec).binary).write(binary);
        let pcs = addr_of_mut!((*rec).pcs) as *mut u64;
        let mut n = 0usize;
        // A running goroutine's saved context is stale: the runtime prints
        // no stack for it either ("running on other thread").
        if status & !G_SCAN != G_RUNNING {
            n = sched_frames(pcs, GO_GOROUTINE_FRAMES, gp, cfg);
            if n > 0 {
                flags |= GO_GOROUTINE_FROM_SCHED;
            }
        }
        addr_of_mut!((*rec).depth).write(n as u32);
        addr_of_mut!((*rec).flags).write(flags);
    }
    entry.submit(0);
}

/// A crash signal arrives on a Go thread running on its system stack
/// (g0), inside `systemstack`: the goroutine it switched from (`m.curg`)
/// holds the rest of the story, on another stack than the copy sent with
/// the signal. Its frames from its saved context go first, marked
/// [`GO_GOROUTINE_SWITCHED`], so the walk can jump stacks as the
/// runtime's traceback does. `g` is the interrupted thread's R14 (where
/// Go code keeps g).
#[inline(always)]
pub(crate) fn switched_goroutine(tgid: u32, g: u64) {
    // SAFETY: the value is copied out.
    let Some(state) = (unsafe { GO_PROCESSES.get(&tgid) }).copied() else {
        return;
    };
    let Some(cfg) = GO_CONFIG.get(state.slot).copied() else {
        return;
    };
    let m: u64 = read_user_or_zero(g + cfg.g_m as u64);
    if m == 0 || read_user_or_zero::<u64>(m + cfg.m_g0 as u64) != g {
        return;
    }
    let curg: u64 = read_user_or_zero(m + cfg.m_curg as u64);
    if curg == 0 || curg == g {
        return;
    }
    let Some(mut entry) = blank_goroutine_record() else {
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).goid).write(read_user_or_zero(curg + cfg.g_goid as u64));
        addr_of_mut!((*rec).binary).write(state.slot);
        let pcs = addr_of_mut!((*rec).pcs) as *mut u64;
        let n = sched_frames(pcs, GO_GOROUTINE_FRAMES, curg, &cfg);
        addr_of_mut!((*rec).depth).write(n as u32);
        addr_of_mut!((*rec).flags).write(GO_GOROUTINE_SWITCHED);
    }
    entry.submit(0);
}

/// At a dying Go process's exit: how many goroutine headers the runtime
/// printed (those past [`GO_DUMP_MAX_GOROUTINES`] were not recorded).
#[inline(always)]
pub(crate) fn dump_summary(tgid: u32) {
    // SAFETY: the value is copied out.
    let Some(state) = (unsafe { GO_PROCESSES.get(&tgid) }).copied() else {
        return;
    };
    if state.dumping == 0 || state.headers == 0 {
        return;
    }
    let Some(mut entry) = blank_goroutine_record() else {
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: writes into our reservation.
    unsafe {
        addr_of_mut!((*rec).flags).write(GO_GOROUTINE_SUMMARY);
        addr_of_mut!((*rec).index).write(state.headers);
        addr_of_mut!((*rec).binary).write(state.slot);
    }
    entry.submit(0);
}

/// A goroutine record reserved in the ring with its header filled and
/// every other field zero; None (counted as lost) when the ring is full.
#[inline(always)]
fn blank_goroutine_record() -> Option<aya_ebpf::maps::ring_buf::RingBufEntry<GoroutineRecord>> {
    let Some(mut entry) = EVENTS.reserve::<GoroutineRecord>(0) else {
        count_lost(EventKind::Goroutine);
        return None;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Goroutine);
    // SAFETY: zeroes our reservation past its header.
    unsafe {
        zero(
            addr_of_mut!((*rec).goid) as *mut u8,
            (core::mem::size_of::<GoroutineRecord>()
                - core::mem::size_of::<tracer_common::Header>()) as u32,
        );
    }
    Some(entry)
}

/// The `_panic` at `p`'s state as printpanics prints it: recovered,
/// repanicked (Go 1.25+), a Goexit.
#[inline(always)]
fn panic_flags(p: u64, cfg: &GoConfig) -> u32 {
    let flag = |off: u32, bit: u32| -> u32 {
        if off == GO_NO_FIELD {
            return 0;
        }
        match read_user::<u8>(p + off as u64) {
            Some(b) if b != 0 => bit,
            _ => 0,
        }
    };
    flag(cfg.panic_recovered, GO_PANIC_RECOVERED)
        | flag(cfg.panic_repanicked, GO_PANIC_REPANICKED)
        | flag(cfg.panic_goexit, GO_PANIC_GOEXIT)
}

/// Copies [`GO_VALUE_BYTES`] from the value's data word into the record;
/// returns the string header {ptr, len} they start with.
///
/// # Safety
/// `rec` points into a ring-buffer reservation of a [`GoRecord`].
#[inline(always)]
unsafe fn write_value(rec: *mut GoRecord, data: u64) -> (u64, u64) {
    unsafe { read_value(addr_of_mut!((*rec).value) as *mut u8, data) }
}

/// Copies [`GO_VALUE_BYTES`] from `data` to `value`; returns the string
/// header {ptr, len} they start with.
///
/// # Safety
/// `value` points to [`GO_VALUE_BYTES`] writable bytes of a reservation.
#[inline(always)]
unsafe fn read_value(value: *mut u8, data: u64) -> (u64, u64) {
    unsafe {
        // A failed read zeroes the bytes; no data is zeroes without a
        // fault (see `zero`).
        if data == 0 {
            zero(value, GO_VALUE_BYTES as u32);
        } else {
            raw_probe_read_user(value as *mut _, GO_VALUE_BYTES as u32, data as *const _);
        }
        let words = value as *const u64;
        (*words, *words.add(1))
    }
}

/// Copies up to [`GO_STRING_BYTES`] of the string at `ptr` (`len` long).
///
/// # Safety
/// As [`write_value`].
#[inline(always)]
unsafe fn write_string(rec: *mut GoRecord, ptr: u64, len: u64) {
    unsafe {
        addr_of_mut!((*rec).string_full_len).write(len);
        let n = read_string(addr_of_mut!((*rec).string) as *mut u8, ptr, len);
        addr_of_mut!((*rec).string_len).write(n);
    }
}

/// Copies up to [`GO_STRING_BYTES`] of the string at `ptr` (`len` long)
/// to `dst`; returns how many.
///
/// # Safety
/// `dst` points to [`GO_STRING_BYTES`] writable bytes of a reservation.
#[inline(always)]
unsafe fn read_string(dst: *mut u8, ptr: u64, len: u64) -> u32 {
    let mut n = 0u32;
    if ptr != 0 && len > 0 && len < (1 << 30) {
        n = if len >= GO_STRING_BYTES as u64 {
            GO_STRING_BYTES as u32
        } else {
            len as u32
        };
        // SAFETY: the helper checks its source; `dst` is the caller's.
        if unsafe { raw_probe_read_user(dst as *mut _, n, ptr as *const _) } < 0 {
            n = 0;
        }
    }
    n
}

/// [`GO_STACK_SNAPSHOT`] bytes of the stack from `sp` (zeros if 0 or
/// unreadable): where a frameless function's return address is found.
///
/// # Safety
/// As [`write_value`].
#[inline(always)]
unsafe fn write_snapshot(rec: *mut GoRecord, sp: u64) {
    unsafe {
        // A failed read zeroes the bytes; no sp is zeroes without a fault
        // (see `zero`).
        let snapshot = addr_of_mut!((*rec).stack_snapshot) as *mut u8;
        if sp == 0 {
            zero(snapshot, GO_STACK_SNAPSHOT as u32);
        } else {
            raw_probe_read_user(snapshot as *mut _, GO_STACK_SNAPSHOT as u32, sp as *const _);
        }
    }
}

/// The goroutine `g`'s frames from its saved context (`g.sched`): pc, the
/// word at sp, then the frame-pointer chain. False when it saved none.
///
/// # Safety
/// As [`write_value`].
#[inline(always)]
unsafe fn walk_sched(rec: *mut GoRecord, g: u64, cfg: &GoConfig, flags: u32) -> bool {
    unsafe {
        let stack = addr_of_mut!((*rec).stack) as *mut u64;
        let n = sched_frames(stack, GO_SCHED_FRAMES, g, cfg);
        if n == 0 {
            return false;
        }
        addr_of_mut!((*rec).stack_bytes).write((n * 8) as u32);
        addr_of_mut!((*rec).flags).write(flags | GO_STACK_FROM_SCHED);
    }
    true
}

/// Writes up to `max` words to `out`: the goroutine `g`'s saved pc
/// (`g.sched.pc`), the word at its saved sp, then the frame-pointer chain
/// from its saved bp. Returns how many (0 when it saved no context).
///
/// # Safety
/// `out` points to `max` writable words in a ring-buffer reservation.
#[inline(always)]
unsafe fn sched_frames(out: *mut u64, max: usize, g: u64, cfg: &GoConfig) -> usize {
    let sched_pc: u64 = read_user_or_zero(g + cfg.g_sched as u64 + 8);
    let sched_sp: u64 = read_user_or_zero(g + cfg.g_sched as u64);
    let bp: u64 = read_user_or_zero(g + cfg.g_sched as u64 + cfg.gobuf_bp as u64);
    // SAFETY: as the caller's.
    unsafe { frames_from(out, max, sched_pc, sched_sp, bp) }
}

/// Writes up to `max` words to `out`: `pc`, the word at `sp`, then the
/// frame-pointer chain from `bp`. Returns how many (0 without a pc).
///
/// # Safety
/// `out` points to `max` writable words in a ring-buffer reservation.
#[inline(always)]
unsafe fn frames_from(out: *mut u64, max: usize, pc: u64, sp: u64, bp: u64) -> usize {
    if pc == 0 || max < 2 {
        return 0;
    }
    // SAFETY: out has `max` words (at most FP_WALK_WORDS + 2, below).
    unsafe {
        *out = pc;
        *out.add(1) = read_user_or_zero(sp);
    }
    let mut walk = FpWalk {
        out: unsafe { out.add(2) },
        bp,
        n: 0,
    };
    let steps = (max - 2).min(FP_WALK_WORDS);
    // bpf_loop: the verifier checks one step, not 62 (the Go programs' two
    // walks unrolled cost ~100 ms of verification at every start).
    // SAFETY: `fp_step` matches the callback signature bpf_loop calls;
    // `walk` outlives the call.
    unsafe {
        bpf_loop(
            steps as u32,
            fp_step as *mut core::ffi::c_void,
            addr_of_mut!(walk) as *mut core::ffi::c_void,
            0,
        );
    }
    2 + walk.n.min(steps)
}

/// Return addresses a frame-pointer walk writes after the saved pc and the
/// word at sp.
const FP_WALK_WORDS: usize = 62;

/// The state of a frame-pointer walk: where the next return address goes,
/// the frame pointer, how many were written.
struct FpWalk {
    out: *mut u64,
    bp: u64,
    n: usize,
}

/// One step: the return address above `bp`, then the caller's frame; 1
/// (stop) at the end of the chain.
#[inline(never)]
extern "C" fn fp_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes the `FpWalk` given to it.
    let walk = unsafe { &mut *(ctx as *mut FpWalk) };
    if walk.bp == 0 {
        return 1;
    }
    let ret: u64 = read_user_or_zero(walk.bp + 8);
    if ret == 0 {
        return 1;
    }
    // The mask keeps the verifier's view of the index inside the words
    // the caller reserved (bpf_loop never runs more than FP_WALK_WORDS).
    let i = (index as usize) & 63;
    if i >= FP_WALK_WORDS {
        return 1;
    }
    // SAFETY: i < FP_WALK_WORDS words follow `out` in the reservation.
    unsafe { *walk.out.add(i) = ret };
    walk.bp = read_user_or_zero(walk.bp);
    walk.n = i + 1;
    0
}

/// A Go process calls `exit_group(2)` (a fatal panic) and its printpanics
/// probe never fired — it panicked within milliseconds of its start,
/// before userspace could place its probes: the panic is read now, from the goroutine
/// of the exiting thread (`fatalpanic` exits on the system stack of the
/// panicking goroutine's M, so R14 is g0 and `m.curg` is the goroutine),
/// as printpanics would have seen it. `regs_ptr` is the kernel's copy of
/// the thread's user registers at its syscall (`pt_regs`), read in place.
#[inline(always)]
pub(crate) fn exit_panic(tgid: u32, regs_ptr: u64) {
    // SAFETY: the value is copied out.
    let Some(state) = (unsafe { GO_PROCESSES.get(&tgid) }).copied() else {
        return;
    };
    if state.printed != 0 {
        return;
    }
    // Read in place, not copied: this runs below sched_process_exit, and
    // the whole call chain shares the verifier's 512-byte stack limit.
    let Some(cfg) = GO_CONFIG.get(state.slot) else {
        return;
    };
    let mut g: u64 = read_kernel_or_zero(regs_ptr, core::mem::offset_of!(pt_regs, r14) as u32);
    let m: u64 = read_user_or_zero(g + cfg.g_m as u64);
    if m == 0 {
        return;
    }
    let g0: u64 = read_user_or_zero(m + cfg.m_g0 as u64);
    let gsignal: u64 = read_user_or_zero(m + cfg.m_gsignal as u64);
    if g == g0 || g == gsignal {
        g = read_user_or_zero(m + cfg.m_curg as u64);
    }
    if g == 0 {
        return;
    }
    let p: u64 = read_user_or_zero(g + cfg.g_panic as u64);
    if p == 0 {
        return;
    }
    let flags = GO_FROM_EXIT | panic_flags(p, cfg);
    let ty: u64 = read_user_or_zero(p + cfg.panic_arg as u64);
    let data: u64 = read_user_or_zero(p + cfg.panic_arg as u64 + 8);
    let Some(mut entry) = EVENTS.reserve::<GoRecord>(0) else {
        count_lost(EventKind::Go);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Go);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    unsafe {
        addr_of_mut!((*rec).probe).write(GoProbe::Printpanics as u32);
        addr_of_mut!((*rec).binary).write(state.slot);
        addr_of_mut!((*rec).goid).write(read_user_or_zero(g + cfg.g_goid as u64));
        addr_of_mut!((*rec).on_system_stack).write(1);
        addr_of_mut!((*rec).arg0).write(ty);
        addr_of_mut!((*rec).arg1).write(data);
        addr_of_mut!((*rec).flags).write(flags);
        addr_of_mut!((*rec).return_address).write(0);
        no_chain(rec);
        copy_registers(addr_of_mut!((*rec).regs), regs_ptr);
        let (str_ptr, str_len) = write_value(rec, data);
        write_string(rec, str_ptr, str_len);
        if !walk_sched(rec, g, cfg, flags) {
            addr_of_mut!((*rec).stack_bytes).write(0);
        }
        zero(
            addr_of_mut!((*rec).defers) as *mut u8,
            (2 * GO_DEFER_RECORDS * 8) as u32,
        );
        write_snapshot(rec, read_user_or_zero(g + cfg.g_sched as u64));
    }
    entry.submit(0);
}

/// Go 1.22+: a Go process calls `exit_group` with another status than 2
/// (`os.Exit`, `log.Fatal`) while the exiting goroutine still has panics
/// under way — typically a deferred call that recovered and then exited
/// (`log.Fatal(recover())`), whose recovery never ran. Panics are told
/// when they end, and these end here: the chain entries not told yet are
/// sent in a `Preprintpanics` record (it tells nothing itself), with the
/// thread's frames walked from its registers at the syscall. `regs_ptr`
/// is the kernel's copy of the thread's user registers (`pt_regs`).
#[inline(always)]
pub(crate) fn exit_chain(tgid: u32, regs_ptr: u64) {
    // SAFETY: the value is copied out.
    let Some(state) = (unsafe { GO_PROCESSES.get(&tgid) }).copied() else {
        return;
    };
    let Some(cfg) = GO_CONFIG.get(state.slot) else {
        return;
    };
    if cfg.panic_start_sp == GO_NO_FIELD {
        return;
    }
    use core::mem::offset_of;
    let reg = |off: usize| -> u64 { read_kernel_or_zero(regs_ptr, off as u32) };
    let mut g = reg(offset_of!(pt_regs, r14));
    let m = read_word(g + cfg.g_m as u64);
    if m == 0 {
        return;
    }
    if g == read_word(m + cfg.m_g0 as u64) || g == read_word(m + cfg.m_gsignal as u64) {
        g = read_word(m + cfg.m_curg as u64);
    }
    let head = if g != 0 {
        read_word(g + cfg.g_panic as u64)
    } else {
        0
    };
    // The common exit: no panic under way.
    if head == 0 {
        return;
    }
    let goid = read_word(g + cfg.g_goid as u64);
    let mkey = [tgid as u64, g];
    let mark = told_mark(mkey, goid);
    let Some(mut entry) = EVENTS.reserve::<GoRecord>(0) else {
        count_lost(EventKind::Go);
        return;
    };
    let rec = entry.as_mut_ptr();
    fill_header(unsafe { addr_of_mut!((*rec).header) }, EventKind::Go);
    // SAFETY: writes into our reservation; user reads are checked helpers.
    let chain_len = unsafe {
        let (pc, sp, bp) = (
            reg(offset_of!(pt_regs, rip)),
            reg(offset_of!(pt_regs, rsp)),
            reg(offset_of!(pt_regs, rbp)),
        );
        let stack = addr_of_mut!((*rec).stack) as *mut u64;
        let n = frames_from(stack, GO_SCHED_FRAMES, pc, sp, bp);
        addr_of_mut!((*rec).stack_bytes).write((n * 8) as u32);
        addr_of_mut!((*rec).probe).write(GoProbe::Preprintpanics as u32);
        addr_of_mut!((*rec).binary).write(state.slot);
        addr_of_mut!((*rec).goid).write(goid);
        addr_of_mut!((*rec).on_system_stack).write(0);
        addr_of_mut!((*rec).arg0).write(0);
        addr_of_mut!((*rec).arg1).write(0);
        addr_of_mut!((*rec).flags).write(0);
        addr_of_mut!((*rec).return_address).write(0);
        addr_of_mut!((*rec).string_len).write(0);
        addr_of_mut!((*rec).string_full_len).write(0);
        copy_registers(addr_of_mut!((*rec).regs), regs_ptr);
        zero(
            addr_of_mut!((*rec).defers) as *mut u8,
            (2 * GO_DEFER_RECORDS * 8) as u32,
        );
        let n = read_chain(rec, head, mark, cfg);
        write_snapshot(rec, sp);
        n
    };
    if chain_len == 0 {
        entry.discard(0);
        return;
    }
    entry.submit(0);
    if mark.is_some() {
        let _ = GO_TOLD_PANIC.remove(&mkey);
    }
}

/// Key of a goroutine in per-goroutine maps: process and goroutine id.
#[inline(always)]
pub(crate) fn goroutine_key(tgid: u32, goid: u64) -> u64 {
    ((tgid as u64) << 40) ^ goid
}
