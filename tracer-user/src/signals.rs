//! Signal numbers, names and `si_code` meanings (x86_64 Linux), as strace
//! and the kernel's `siginfo.h` spell them.

/// `SIGABRT` and friends by number; `None` for numbers Linux does not use.
pub fn name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        32..=64 => return Some(rt_name(sig)),
        _ => return None,
    })
}

fn rt_name(sig: i32) -> &'static str {
    const NAMES: [&str; 33] = [
        "SIGRTMIN",
        "SIGRTMIN+1",
        "SIGRTMIN+2",
        "SIGRTMIN+3",
        "SIGRTMIN+4",
        "SIGRTMIN+5",
        "SIGRTMIN+6",
        "SIGRTMIN+7",
        "SIGRTMIN+8",
        "SIGRTMIN+9",
        "SIGRTMIN+10",
        "SIGRTMIN+11",
        "SIGRTMIN+12",
        "SIGRTMIN+13",
        "SIGRTMIN+14",
        "SIGRTMIN+15",
        "SIGRTMIN+16",
        "SIGRTMAX-15",
        "SIGRTMAX-14",
        "SIGRTMAX-13",
        "SIGRTMAX-12",
        "SIGRTMAX-11",
        "SIGRTMAX-10",
        "SIGRTMAX-9",
        "SIGRTMAX-8",
        "SIGRTMAX-7",
        "SIGRTMAX-6",
        "SIGRTMAX-5",
        "SIGRTMAX-4",
        "SIGRTMAX-3",
        "SIGRTMAX-2",
        "SIGRTMAX-1",
        "SIGRTMAX",
    ];
    NAMES[(sig - 32) as usize]
}

/// A printable name for any signal number.
pub fn display_name(sig: i32) -> String {
    name(sig).map_or_else(|| format!("signal {sig}"), str::to_owned)
}

/// Synchronous faults: raised by the kernel in the thread that executed the
/// faulting instruction, with the fault address in `si_addr`.
pub fn is_fault(sig: i32) -> bool {
    matches!(sig, 4 | 5 | 7 | 8 | 11 | 31)
}

/// Signals whose default action dumps core (and so is a crash, not a kill,
/// when the process sent it to itself).
pub fn default_dumps_core(sig: i32) -> bool {
    matches!(sig, 3 | 4 | 5 | 6 | 7 | 8 | 11 | 24 | 25 | 31)
}

/// The `si_code` symbol for `code` on signal `sig`.
pub fn code_name(sig: i32, code: i32) -> Option<&'static str> {
    // Codes <= 0 and SI_KERNEL mean the same for every signal.
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        -7 => Some("SI_DETHREAD"),
        -60 => Some("SI_ASYNCNL"),
        _ => None,
    };
    if generic.is_some() {
        return generic;
    }
    let table: &[&str] = match sig {
        4 => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
            "ILL_BADIADDR",
        ],
        8 => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
            "FPE_DECOVF",
            "FPE_DECDIV",
            "FPE_DECERR",
            "FPE_INVASC",
            "FPE_INVDEC",
            "FPE_FLTUNK",
            "FPE_CONDTRAP",
        ],
        11 => &[
            "SEGV_MAPERR",
            "SEGV_ACCERR",
            "SEGV_BNDERR",
            "SEGV_PKUERR",
            "SEGV_ACCADI",
            "SEGV_ADIDERR",
            "SEGV_ADIPERR",
            "SEGV_MTEAERR",
            "SEGV_MTESERR",
            "SEGV_CPERR",
        ],
        7 => &[
            "BUS_ADRALN",
            "BUS_ADRERR",
            "BUS_OBJERR",
            "BUS_MCEERR_AR",
            "BUS_MCEERR_AO",
        ],
        5 => &[
            "TRAP_BRKPT",
            "TRAP_TRACE",
            "TRAP_BRANCH",
            "TRAP_HWBKPT",
            "TRAP_UNK",
            "TRAP_PERF",
        ],
        17 => &[
            "CLD_EXITED",
            "CLD_KILLED",
            "CLD_DUMPED",
            "CLD_TRAPPED",
            "CLD_STOPPED",
            "CLD_CONTINUED",
        ],
        29 => &[
            "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP",
        ],
        31 => &["SYS_SECCOMP", "SYS_USER_DISPATCH"],
        _ => &[],
    };
    usize::try_from(code)
        .ok()
        .and_then(|c| c.checked_sub(1))
        .and_then(|i| table.get(i).copied())
}

/// Whether `si_code` says a process sent the signal (kill, tgkill, sigqueue …)
/// rather than the kernel.
pub fn sent_by_process(code: i32) -> bool {
    code <= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(11), Some("SIGSEGV"));
        assert_eq!(name(6), Some("SIGABRT"));
        assert_eq!(name(34), Some("SIGRTMIN+2"));
        assert_eq!(name(64), Some("SIGRTMAX"));
        assert_eq!(name(0), None);
        assert_eq!(name(65), None);
        assert_eq!(display_name(99), "signal 99");
    }

    #[test]
    fn codes() {
        assert_eq!(code_name(11, 1), Some("SEGV_MAPERR"));
        assert_eq!(code_name(11, 2), Some("SEGV_ACCERR"));
        assert_eq!(code_name(8, 1), Some("FPE_INTDIV"));
        assert_eq!(code_name(7, 1), Some("BUS_ADRALN"));
        assert_eq!(code_name(6, -6), Some("SI_TKILL"));
        assert_eq!(code_name(15, 0), Some("SI_USER"));
        assert_eq!(code_name(9, 0x80), Some("SI_KERNEL"));
        assert_eq!(code_name(11, 99), None);
        assert_eq!(code_name(15, 3), None);
        assert!(sent_by_process(-6) && sent_by_process(0) && !sent_by_process(1));
    }
}
