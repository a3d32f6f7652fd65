//! The wire format between crashtrace's eBPF programs and its userspace.
//!
//! Every record in the ring buffer starts with a [`Header`]; its `kind` says
//! which record follows. All types are `#[repr(C)]`, plain old data, and laid
//! out so that no field straddles an 8-byte boundary: the BPF side writes
//! them directly into reserved ring-buffer memory, userspace reads them with
//! an unaligned copy after checking the length.
#![no_std]

/// Most frames the kernel will walk (`kernel.perf_event_max_stack` defaults to 127).
pub const MAX_STACK_DEPTH: usize = 127;

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;

/// Declares [`EventKind`] from one list of variants and their discriminants,
/// and derives from that list everything indexed by kind, on both sides:
/// [`EventKind::ALL`], [`EventKind::from_u32`], [`EventKind::lost_index`]
/// and [`LOST_COUNTERS`]. A new kind is one line here.
macro_rules! event_kinds {
    (
        $(#[$enum_meta:meta])*
        pub enum EventKind {
            $($(#[$meta:meta])* $variant:ident = $value:literal,)*
        }
    ) => {
        $(#[$enum_meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum EventKind {
            $($(#[$meta])* $variant = $value,)*
        }

        impl EventKind {
            /// All kinds, in the order declared, for iterating over drop counters.
            pub const ALL: [EventKind; [$(EventKind::$variant),*].len()] =
                [$(EventKind::$variant),*];

            /// The kind a [`Header::kind`] names, if any.
            pub const fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($value => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    /// Record kinds. Stored as `u32` in [`Header::kind`].
    pub enum EventKind {
        /// A signal is being delivered to a traced thread ([`SignalRecord`]).
        SignalDeliver = 1,
        /// A signal was sent to a traced process ([`SignalGenerateRecord`]); the
        /// header names the sender.
        SignalGenerate = 2,
        /// The last thread of a traced process exited ([`ExitRecord`]).
        Exit = 3,
        /// A traced process forked a new process ([`ForkRecord`]).
        Fork = 4,
        /// A traced process called execve ([`ExecRecord`]).
        Exec = 5,
        /// A Go runtime crash/unwind entry point was hit ([`GoRecord`]).
        Go = 6,
        /// The user stack of a thread a crash signal is being delivered to
        /// ([`StackRecord`]); sent just before that thread's [`SignalRecord`].
        Stack = 7,
        /// One object ld.so loaded into a traced process ([`ModuleRecord`]),
        /// read from its `r_debug` list at a crash or a dlopen's return.
        Module = 8,
        /// A C++ exception is thrown, or std::terminate runs ([`CxxRecord`]).
        Cxx = 9,
        /// A Rust panic starts (`std::panicking::panic_with_hook`) ([`RustPanicRecord`]).
        RustPanic = 10,
        /// A Rust panic's formatted message, once std built it for the panic
        /// hook ([`RustPanicMessageRecord`]); follows its [`RustPanicRecord`].
        RustPanicMessage = 11,
        /// A goroutine the Go runtime is about to print in a fatal error's
        /// or SIGQUIT's goroutine dump ([`GoroutineRecord`]).
        Goroutine = 12,
        /// The kernel's OOM killer chose a traced process as its victim
        /// (`oom:mark_victim`) ([`OomRecord`]); the header names the
        /// victim, the record the task whose allocation ran out.
        Oom = 13,
    }
}

impl EventKind {
    /// This kind's slot in the per-CPU drop-counter array (`LOST`): the
    /// kernel counts a record that found the ring buffer full there, and
    /// userspace sums the slot over CPUs. Always below [`LOST_COUNTERS`].
    #[inline(always)]
    pub const fn lost_index(self) -> u32 {
        self as u32
    }
}

/// Common prefix of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// Thread group id (the process id users see) of the current task.
    pub pid: u32,
    /// Thread id of the current task.
    pub tid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// The current thread's `comm`, NUL padded.
    pub comm: [u8; COMM_LEN],
}

/// User-mode registers of the thread when the event fired (x86_64 `pt_regs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Registers {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    pub flags: u64,
    pub ax: u64,
    pub bx: u64,
    pub cx: u64,
    pub dx: u64,
    pub si: u64,
    pub di: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// `siginfo` pointer values the kernel uses instead of a real siginfo.
pub const SEND_SIG_NOINFO: u64 = 0;
pub const SEND_SIG_PRIV: u64 = 1;

/// A signal delivered to a traced thread (raw_tp `signal_deliver`). Fires in
/// the receiving thread, so the registers and stack are the thread's own at
/// the moment of the fault or of the interruption.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SignalRecord {
    pub header: Header,
    pub signo: i32,
    /// `si_code`; [`SIGINFO_NONE`] when the kernel passed no siginfo.
    pub code: i32,
    pub errno: i32,
    /// `si_pid` for signals sent by a process (si_code <= 0), else 0.
    pub sender_pid: u32,
    /// `si_addr` for faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP).
    pub fault_addr: u64,
    /// The disposition's handler: 0 = SIG_DFL, 1 = SIG_IGN, else a user address.
    pub handler: u64,
    /// The process is already exiting (`SIGNAL_GROUP_EXIT`) as this is
    /// delivered. With `code == SIGINFO_NONE` this is the kernel's group-exit
    /// SIGKILL, and `signo` is the signal that is ending the process.
    pub group_exiting: u32,
    /// Bytes of `stack` filled by `bpf_get_stack` (0 on failure).
    pub stack_bytes: u32,
    pub regs: Registers,
    /// Frame-pointer walk of the user stack, innermost first; `stack[0]` is the pc.
    pub stack: [u64; MAX_STACK_DEPTH],
}

/// Bytes of user stack copied for a crash (from sp up), for unwinding code
/// without frame pointers with its DWARF CFI.
pub const STACK_SNAPSHOT_BYTES: usize = 32 * 1024;
/// Copy granule: pages, so the copy stops cleanly at the top of the stack.
pub const STACK_CHUNK: usize = 4096;

/// A copy of a thread's user stack at a crash signal, from `sp` up to
/// [`STACK_SNAPSHOT_BYTES`] or the end of the stack mapping.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StackRecord {
    pub header: Header,
    /// The user sp the copy starts at.
    pub sp: u64,
    /// Bytes of `data` filled.
    pub len: u32,
    /// The first `hole` bytes of `data` are not valid: that part (sp's
    /// page, in a stack overflow the guard page) could not be read.
    pub hole: u32,
    /// One chunk more than the limit: the BPF side masks the offset into
    /// the first [`STACK_SNAPSHOT_BYTES`] and copies up to a chunk there.
    pub data: [u8; STACK_SNAPSHOT_BYTES + STACK_CHUNK],
}

/// Bytes of a loaded object's path captured.
pub const MODULE_PATH_BYTES: usize = 160;
/// Objects of a process's `r_debug` list sent at most per event.
pub const MODULES_MAX: u32 = 64;
/// [`ModuleRecord::reason`]: the process is crashing (sent before the
/// crash's stack and signal records).
pub const MODULES_AT_CRASH: u32 = 1;
/// [`ModuleRecord::reason`]: dlopen() returned (the list may hold the
/// opened library's dependencies too).
pub const MODULES_AT_DLOPEN: u32 = 2;

/// One object of the process's dynamic linker list (`r_debug.r_map`, a
/// `struct link_map` chain: `l_addr` load bias @0, `l_name` path @8,
/// `l_ld` its dynamic section @16, `l_next` @24), read in the kernel while
/// the process lives: with its path and bias a library is placed even when
/// the process is gone before /proc could show its maps.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleRecord {
    pub header: Header,
    /// [`MODULES_AT_CRASH`] or [`MODULES_AT_DLOPEN`].
    pub reason: u32,
    /// Position in the list (0 is the executable itself).
    pub index: u32,
    pub l_addr: u64,
    pub l_ld: u64,
    /// Bytes of `path` filled (without the NUL).
    pub path_len: u32,
    pub _pad: u32,
    pub path: [u8; MODULE_PATH_BYTES],
}

/// [`CxxRecord::probe`]: `__cxa_throw(obj, tinfo, dest)` entry.
pub const CXX_THROW: u32 = 1;
/// [`CxxRecord::probe`]: `std::terminate()` entry.
pub const CXX_TERMINATE: u32 = 2;
/// [`CxxRecord::probe`]: `std::rethrow_exception(exception_ptr)` entry
/// (what `std::future::get` calls for a task that threw).
pub const CXX_RETHROW_EXCEPTION: u32 = 3;
/// [`CxxRecord::probe`]: libstdc++'s `libstdcxx:rethrow` USDT in
/// `__cxa_rethrow` (`throw;`).
pub const CXX_RETHROW: u32 = 4;
/// Size of libstdc++'s `__cxa_exception` header (x86_64), which sits right
/// before the thrown object: its first field is the object's
/// `std::type_info *` (Itanium C++ ABI; libstdc++'s unwind-cxx.h).
pub const CXA_EXCEPTION_HEADER_BYTES: u64 = 112;
/// Type names captured: the thrown type's and up to 3 base classes'.
pub const CXX_TYPES: usize = 4;
pub const CXX_NAME_BYTES: usize = 96;
pub const CXX_WHAT_BYTES: usize = 256;
/// Throw records per throw site per second at most; the rest are counted.
pub const CXX_THROWS_PER_SEC: u64 = 5;
/// Rust panics told per panic site (`Location`) per second at most; the
/// rest skip the stack copy and the record and are counted in the next
/// told one's `suppressed` (as C++ throws: caught panics can be control
/// flow, e.g. a pool's `catch_unwind` around each task).
pub const RUST_PANICS_PER_SEC: u64 = 100;
/// Recovered Go panics told per panic site per second at most (the
/// `panic`, `recover` and `incident` of each); the rest cost a map lookup
/// and are counted in [`GO_PANICS_RATE_LIMITED`].
pub const GO_PANICS_PER_SEC: u64 = 100;

/// A C++ throw (libstdc++'s `__cxa_throw`) or `std::terminate`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CxxRecord {
    pub header: Header,
    pub probe: u32,
    /// Throws not recorded (rate limit) in this process before this one.
    pub suppressed: u32,
    pub regs: Registers,
    /// The thrown object's address (0 for terminate): a rethrow names the
    /// same object as the throw it repeats.
    pub object: u64,
    /// Mangled names (`type_info::__name`): the thrown type, then the
    /// chain of single-inheritance bases (`__si_class_type_info::__base_type`)
    /// as far as it reads; empty strings end it.
    pub types: [[u8; CXX_NAME_BYTES]; CXX_TYPES],
    /// Where each of `types` was read from (0: none): a name on a page the
    /// process never touched cannot be read by the BPF side, and is read
    /// from the file in userspace.
    pub type_names: [u64; CXX_TYPES],
    /// The string the object's first field after the vtable points to:
    /// `std::runtime_error`/`logic_error`'s message (their `what()`).
    pub what_len: u32,
    pub _pad: u32,
    pub what: [u8; CXX_WHAT_BYTES],
}

pub const RUST_FILE_BYTES: usize = 128;
pub const RUST_MSG_BYTES: usize = 256;

/// `std::panicking::panic_with_hook(payload: &mut dyn PanicPayload,
/// location: &Location, can_unwind, force_no_backtrace)` was entered.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RustPanicRecord {
    pub header: Header,
    pub regs: Registers,
    /// `Location`: line and column, and the file name's length.
    pub line: u32,
    pub col: u32,
    pub file_len: u32,
    /// Bytes of `msg` filled; `u32::MAX` when the payload is not a string
    /// (a formatted message, only built by the hook).
    pub msg_len: u32,
    pub can_unwind: u32,
    /// Panics from the same site not told since the last told one (see
    /// [`RUST_PANICS_PER_SEC`]).
    pub suppressed: u32,
    /// The file name's and the payload's (address, length) in the process:
    /// string literals live in the binary's read-only data, which the BPF
    /// side cannot read when its page was never touched (a uprobe cannot
    /// fault pages in); userspace then reads them from the file.
    pub file_ptr: u64,
    pub file_size: u64,
    pub msg_ptr: u64,
    pub msg_size: u64,
    pub file: [u8; RUST_FILE_BYTES],
    pub msg: [u8; RUST_MSG_BYTES],
}

/// The `String` a formatted panic message was rendered into: the return of
/// std's `FormatStringPayload::get`, which the panic hook calls (a return
/// probe: Rust, unlike Go, keeps its stacks where they are).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RustPanicMessageRecord {
    pub header: Header,
    /// Bytes of `msg` filled.
    pub msg_len: u32,
    /// The message's whole length (it may be longer than `msg`).
    pub full_len: u32,
    pub msg: [u8; RUST_MSG_BYTES],
}

/// `code` value when the kernel delivered a signal without siginfo.
pub const SIGINFO_NONE: i32 = i32::MIN;
/// `code` value for `SEND_SIG_PRIV` (sent by the kernel).
pub const SIGINFO_KERNEL: i32 = 0x80;

/// A signal sent to a traced process (raw_tp `signal_generate`). Fires in the
/// sender's context: the header's pid/tid/comm are the sender's.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignalGenerateRecord {
    pub header: Header,
    pub signo: i32,
    pub code: i32,
    /// Receiving process (tgid) and thread.
    pub target_pid: u32,
    pub target_tid: u32,
    /// `TRACE_SIGNAL_*` result: 0 delivered, 1 ignored, 2 already pending, …
    pub result: i32,
    /// Sent to the whole process rather than one thread.
    pub group: u32,
}

/// The last thread of a traced process exited (raw_tp `sched_process_exit`
/// with `group_dead`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub header: Header,
    /// The wait(2) status the parent will see: `code << 8`, or the signal
    /// number with 0x80 when a core was dumped.
    pub status: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    pub header: Header,
    pub child_pid: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    pub header: Header,
    pub old_tid: u32,
    /// [`EXEC_WATCHED`], [`EXEC_DROPPED`].
    pub flags: u32,
    /// The new program's code range (`mm->start_code`, `end_code`): with
    /// the file, enough to symbolize it if the process dies before its
    /// maps can be read.
    pub start_code: u64,
    pub end_code: u64,
    /// The exec'd file as (device, inode), the kernel's encoding.
    pub file: WatchedFile,
    /// Its pid in its own (innermost) pid namespace.
    pub ns_pid: u32,
    /// Bytes of `filename` filled.
    pub filename_len: u32,
    /// Its cgroup v2 id (the inode number of its cgroup directory).
    pub cgroup_id: u64,
    pub filename: [u8; EXEC_FILENAME_BYTES],
}

pub const EXEC_FILENAME_BYTES: usize = 256;

/// Kernel structure offsets the BPF programs need, found by userspace in the
/// running kernel's BTF (Rust BPF has no CO-RE relocations) and written into
/// the program's read-only data before it is loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_signal: u32,
    pub task_exit_code: u32,
    pub signal_flags: u32,
    pub signal_group_exit_code: u32,
    /// `signal_struct::live`: threads not yet exited (atomic_t).
    pub signal_live: u32,
    /// The exec'd file's identity: `linux_binprm::file`, `file::f_inode`,
    /// `inode::i_ino`, `inode::i_sb`, `super_block::s_dev`.
    pub binprm_file: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    /// `task_struct::mm`, `mm_struct::start_code` / `end_code`: where the
    /// exec'd program's code landed (its load bias, with ASLR).
    pub task_mm: u32,
    pub mm_start_code: u32,
    pub mm_end_code: u32,
    /// `linux_binprm::filename`: the path exec'd, in the process's view.
    pub binprm_filename: u32,
    /// `task_struct::thread_pid`, `pid::level`, `pid::numbers` and the size
    /// of a `upid`: the pid a process has in its own pid namespace.
    pub task_thread_pid: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    /// `mm_struct::saved_auxv`: the auxiliary vector the program started
    /// with (where its program headers are, to find ld.so's `r_debug`).
    pub mm_saved_auxv: u32,
    /// The OOM victim's memory: `task_struct::comm`, `mm_struct::rss_stat`
    /// (an array of `percpu_counter`, `rss_stat_stride` bytes each,
    /// `percpu_counter::count` in each) and the indexes of MM_FILEPAGES,
    /// MM_ANONPAGES and MM_SHMEMPAGES in it.
    pub task_comm: u32,
    pub mm_rss_stat: u32,
    pub rss_stat_stride: u32,
    pub percpu_counter_count: u32,
    pub mm_filepages: u32,
    pub mm_anonpages: u32,
    pub mm_shmempages: u32,
    /// Its memory cgroup: `task_struct::cgroups` (a css_set),
    /// `css_set::subsys[memory_cgrp_id]`, `cgroup_subsys_state::cgroup`
    /// and `::parent`, `cgroup::kn`, `kernfs_node::id`, and the
    /// `mem_cgroup`'s `css` and `memory` (a page_counter: `usage`, `max`).
    /// [`OFFSET_UNKNOWN`] when the kernel has no memory cgroups.
    pub task_cgroups: u32,
    pub css_set_subsys: u32,
    pub memory_cgrp_id: u32,
    pub css_cgroup: u32,
    pub css_parent: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    pub memcg_css: u32,
    pub memcg_memory: u32,
    pub page_counter_usage: u32,
    pub page_counter_max: u32,
}

/// An offset the running kernel's BTF does not have: the field is not read.
pub const OFFSET_UNKNOWN: u32 = u32::MAX;

/// Which Go runtime function a uprobe sits on (low 32 bits of its cookie;
/// the high 32 bits are the binary's slot in the Go config map).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoProbe {
    /// `runtime.gopanic(e any)`: RAX = type, RBX = data.
    Gopanic = 1,
    /// `runtime.throw(s string)`: RAX = ptr, RBX = len.
    Throw = 2,
    /// `runtime.fatal(s string)`: RAX = ptr, RBX = len.
    Fatal = 3,
    /// `runtime.recovery(gp *g)`: RAX = the recovering goroutine; runs on g0.
    Recovery = 4,
    /// `runtime.printpanics(p *_panic)`: an unrecovered panic is being
    /// printed, once per panic in the chain (latest first). By now the
    /// runtime has replaced error and Stringer values with their text.
    Printpanics = 5,
    /// `runtime.sigpanic()`: a fault the runtime turns into a panic, on the
    /// faulting goroutine; g.sig / g.sigcode0 / g.sigcode1 / g.sigpc hold
    /// the signal, its si_code, the fault address and the faulting pc.
    Sigpanic = 6,
    /// `runtime.Goexit()`: the goroutine asked to end (runs its defers).
    Goexit = 7,
    /// `runtime.deferCallSave(p *_panic, fn func())` (Go 1.19–1.21 only): a
    /// panic or Goexit runs an open-coded deferred call; RBX = fn. Emits no
    /// record: the BPF side keeps the last one per goroutine for recovery,
    /// the only trace of which deferred call recovered on Go 1.19–1.21.
    DeferCall = 8,
    /// `runtime.goroutineheader(gp *g)`: the runtime prints a goroutine's
    /// `goroutine N [status]:` line, then its stack. RAX = gp. Records a
    /// [`GoroutineRecord`] only while the process is dying of a fatal
    /// error, a fatal panic or SIGQUIT ([`GoProcess::dumping`]); otherwise
    /// (runtime.Stack, debug.Stack) the hit returns at once.
    GoroutineHeader = 9,
    /// `runtime.preprintpanics(p *_panic)` (Go 1.22+): gopanic ran out of
    /// deferred calls, the panic will kill the process; RAX = p. Its
    /// record carries the panics of the goroutine's `_panic` chain not told
    /// yet ([`GoRecord::chain`]); it tells nothing itself.
    Preprintpanics = 10,
}

impl GoProbe {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Gopanic,
            2 => Self::Throw,
            3 => Self::Fatal,
            4 => Self::Recovery,
            5 => Self::Printpanics,
            6 => Self::Sigpanic,
            7 => Self::Goexit,
            8 => Self::DeferCall,
            9 => Self::GoroutineHeader,
            10 => Self::Preprintpanics,
            _ => return None,
        })
    }
}

/// Most Go binaries (distinct executables) traced at once.
pub const MAX_GO_BINARIES: u32 = 256;

/// Per-binary Go runtime layout, from the binary's DWARF or a table keyed by
/// its Go version. Byte offsets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoConfig {
    pub g_goid: u32,
    pub g_m: u32,
    pub m_g0: u32,
    pub m_gsignal: u32,
    pub m_curg: u32,
    pub panic_arg: u32,
    pub panic_recovered: u32,
    /// [`GO_NO_FIELD`] before Go 1.25.
    pub panic_repanicked: u32,
    pub panic_goexit: u32,
    /// `g._panic`.
    pub g_panic: u32,
    /// `_panic.deferBitsPtr` and `_panic.slotsPtr` (Go 1.22+, else
    /// [`GO_NO_FIELD`]): the open-coded defers of the frame being unwound.
    pub panic_defer_bits: u32,
    pub panic_slots: u32,
    /// `g._defer`, `_defer.fn`, `_defer.link`: the goroutine's deferred
    /// calls kept in records (not open-coded).
    pub g_defer: u32,
    pub defer_fn: u32,
    pub defer_link: u32,
    /// `_defer.started` (Go 1.19–1.21, else [`GO_NO_FIELD`]): a record a
    /// newer panic finds started is an aborted call, popped without being
    /// called again — never the one that recovers.
    pub defer_started: u32,
    /// `g.sched` (a gobuf: sp @0, pc @8) and `gobuf.bp`: where a goroutine
    /// that is not running saved its context.
    pub g_sched: u32,
    pub gobuf_bp: u32,
    /// `g.sig` (u32) and `g.sigcode0`, followed by `sigcode1` and `sigpc`
    /// (consecutive words in every supported version): the fault sigpanic
    /// turns into a panic.
    pub g_sig: u32,
    pub g_sigcode0: u32,
    /// `g.atomicstatus` (u32), `g.waitreason` (u8), `g.waitsince` (i64,
    /// nanotime when it blocked, 0 when unknown), `g.gopc` and `g.startpc`
    /// (the `go` statement's pc and the goroutine's function),
    /// `g.parentGoid` (Go 1.21+, else [`GO_NO_FIELD`]), `g.lockedm`: what
    /// the runtime's goroutine header prints.
    pub g_atomicstatus: u32,
    pub g_waitreason: u32,
    pub g_waitsince: u32,
    pub g_gopc: u32,
    pub g_startpc: u32,
    pub g_parent_goid: u32,
    pub g_lockedm: u32,
    /// `_panic.link` (the older panic), `_panic.startSP` (gopanic's sp),
    /// `_panic.sp` (the frame whose deferred calls run) and `_panic.retpc`
    /// (where a recovery resumes: for a deferred call kept in a `_defer`
    /// record, the return address of its `deferproc` call). `startSP` and
    /// `retpc` are Go 1.22+ ([`GO_NO_FIELD`] before): with them, a panic is
    /// told once it ends (recovery, preprintpanics, Goexit) from the
    /// goroutine's `_panic` chain, and `runtime.gopanic` carries no probe.
    pub panic_link: u32,
    pub panic_start_sp: u32,
    pub panic_sp: u32,
    pub panic_retpc: u32,
}

impl GoConfig {
    /// Go 1.22+: panics are told from the `_panic` chain when they end, one
    /// probe hit for a recovered panic (recovery) instead of two.
    pub fn panics_told_at_their_end(&self) -> bool {
        self.panic_start_sp != GO_NO_FIELD
            && self.panic_link != GO_NO_FIELD
            && self.panic_sp != GO_NO_FIELD
            && self.panic_retpc != GO_NO_FIELD
    }
}

/// `_defer` records read at a gopanic (address, code pointer of fn).
pub const GO_DEFER_RECORDS: usize = 8;

/// A [`GoConfig`] offset for a field this Go version does not have.
pub const GO_NO_FIELD: u32 = u32::MAX;

/// [`GoRecord::flags`] bits, from the `_panic` at printpanics.
pub const GO_PANIC_RECOVERED: u32 = 1;
pub const GO_PANIC_REPANICKED: u32 = 2;
pub const GO_PANIC_GOEXIT: u32 = 4;
/// [`GoRecord::flags`] at recovery: the low byte holds the defer bits.
pub const GO_DEFER_BITS_VALID: u32 = 0x100;
/// [`GoRecord::flags`]: the probe ran on the system stack and `stack` is the
/// user goroutine's, walked from its saved context: `stack[0]` = sched.pc,
/// `stack[1]` = the word at sched.sp, then the frame-pointer chain from
/// sched.bp.
pub const GO_STACK_FROM_SCHED: u32 = 0x200;
/// [`GoRecord::flags`] at recovery (Go 1.19–1.21): `value`'s first word is the
/// code pointer of the last open-coded deferred call the goroutine ran
/// (seen at runtime.deferCallSave).
pub const GO_DEFER_CALL_VALID: u32 = 0x400;
/// In the low 32 bits of a Go probe's attach cookie, with the
/// [`GoProbe`]: the probe sits on the stack check's `jbe` to morestack (Go
/// 1.17–1.20, whose frame setup `sub rsp` the kernel would single-step),
/// which runs again after morestack grew the stack: a hit whose branch is
/// taken (CF or ZF set) is no call yet and is skipped.
pub const GO_PROBE_AT_STACK_CHECK: u32 = 1 << 31;
/// In the low 32 bits of the `runtime.recovery` probe's attach cookie (Go
/// 1.22+), these 16 bits from [`GO_COOKIE_SITE_SHIFT`]: where the panic
/// site (gopanic's return address) is above the recovering goroutine's
/// saved frame pointer (`g.sched.bp`, `_panic.nextDefer`'s frame): 16 +
/// gopanic's frame size at its nextDefer call, from the binary's pcsp
/// table. 0: unknown, the frame-pointer chain is followed instead.
pub const GO_COOKIE_SITE_SHIFT: u32 = 8;
pub const GO_COOKIE_SITE_MASK: u32 = 0xffff;
/// [`GoRecord::flags`]: read at the process's `exit_group(2)`, not at a
/// probe: the program panicked before its Go probes were in place (the
/// latest `_panic` of the goroutine that called exit, as printpanics would
/// have seen it).
pub const GO_FROM_EXIT: u32 = 0x800;
/// [`GoRecord::flags`] at gopanic: the goroutine's previous panic (the
/// head of its `_panic` chain) had been recovered — this panic comes from
/// the deferred function that recovered it (log and re-panic), whose
/// `runtime.recovery` will never run.
pub const GO_PANIC_PREV_RECOVERED: u32 = 0x1000;
/// [`GoRecord::flags`] of a `Gopanic` record userspace makes from an entry
/// of [`GoRecord::chain`] (never set by the kernel side): its position
/// among the chain's panics (0 = the newest) in the
/// [`GO_PANIC_CHAIN_SHIFT`] bits, its frames from the (position + 1)-th
/// `runtime.gopanic` frame of `stack` on.
pub const GO_PANIC_FROM_CHAIN: u32 = 0x2000;
pub const GO_PANIC_CHAIN_SHIFT: u32 = 16;

/// Panics read from one goroutine's `_panic` chain at one hit
/// ([`GoRecord::chain`]; deeper nesting loses the oldest).
pub const GO_PANIC_CHAIN_MAX: usize = 4;
/// Links past [`GO_PANIC_CHAIN_MAX`] a cut chain's walk looks at, to count
/// what it cuts ([`GoRecord::chain_beyond`]).
pub const GO_PANIC_BEYOND_MAX: usize = 4;
/// Bit 0 of a [`GoRecord::chain_beyond`] startSP (word-aligned): the link
/// is a Goexit's.
pub const GO_BEYOND_GOEXIT: u64 = 1;

/// One panic of a goroutine's `_panic` chain, read when it ended (Go
/// 1.22+: at recovery, preprintpanics or Goexit) instead of at its start:
/// what a gopanic hit would have read.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoChainPanic {
    /// The panic's value (`_panic.arg`: type, data).
    pub arg0: u64,
    pub arg1: u64,
    /// [`GO_PANIC_PREV_RECOVERED`]: the older panic it links to had been
    /// recovered (a deferred function that recovered, then panicked).
    pub flags: u32,
    pub string_len: u32,
    pub string_full_len: u64,
    /// As [`GoRecord::value`] and [`GoRecord::string`] at gopanic.
    pub value: [u8; GO_VALUE_BYTES],
    pub string: [u8; GO_STRING_BYTES],
}

/// A Go process's entry in `GO_PROCESSES`: its binary's layout slot, and
/// whether its printpanics probe fired (then its fatal panic is recorded
/// by the probes, not read again at its exit).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GoProcess {
    pub slot: u32,
    pub printed: u32,
    /// Set when the process starts dying: from then on the goroutines the
    /// runtime prints are recorded. [`GO_DUMP_USER`] for a fatal error or
    /// panic of the program's own, [`GO_DUMP_SYSTEM`] for a runtime throw
    /// or a signal its handler dies of (then the runtime prints every
    /// frame, as with GOTRACEBACK=system).
    pub dumping: u32,
    /// Goroutine headers the runtime printed since; beyond
    /// [`GO_DUMP_MAX_GOROUTINES`] they are counted, not recorded.
    pub headers: u32,
}

/// [`GoProcess::dumping`] values.
pub const GO_DUMP_USER: u32 = 1;
pub const GO_DUMP_SYSTEM: u32 = 2;

/// Goroutines recorded per dump; the rest are counted
/// ([`GO_GOROUTINE_SUMMARY`]).
pub const GO_DUMP_MAX_GOROUTINES: u32 = 1000;
/// Return addresses kept per dumped goroutine (the runtime prints 100).
pub const GO_GOROUTINE_FRAMES: usize = 64;

/// [`GoroutineRecord::flags`]: not a goroutine but the dump's end, sent at
/// the process's exit: `index` = goroutine headers the runtime printed.
pub const GO_GOROUTINE_SUMMARY: u32 = 1;
/// [`GoroutineRecord::flags`]: `pcs` = [sched.pc, the word at sched.sp,
/// the frame-pointer chain from sched.bp] (absent for a running goroutine,
/// whose saved context is stale).
pub const GO_GOROUTINE_FROM_SCHED: u32 = 2;
/// [`GoroutineRecord::flags`]: `g.lockedm` is set (`locked to thread`).
pub const GO_GOROUTINE_LOCKED: u32 = 4;
/// [`GoroutineRecord::flags`]: the runtime prints this dump with every
/// frame, its own and wrappers included ([`GO_DUMP_SYSTEM`]).
pub const GO_GOROUTINE_SYSTEM: u32 = 8;
/// [`GoroutineRecord::flags`]: no dump's goroutine but the one a crash
/// signal's thread had switched away from (`m.curg` while it ran on its
/// system stack, inside `systemstack`), sent just before the signal's
/// record: its frames (as [`GO_GOROUTINE_FROM_SCHED`]) continue the
/// thread's stack where the runtime's traceback jumps stacks.
pub const GO_GOROUTINE_SWITCHED: u32 = 16;

/// One goroutine of the runtime's goroutine dump, read at
/// `runtime.goroutineheader(gp)` ([`EventKind::Goroutine`]).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoroutineRecord {
    pub header: Header,
    pub goid: u64,
    /// 0 when unknown (before Go 1.21) or for goroutine 1.
    pub parent_goid: u64,
    /// nanotime (CLOCK_MONOTONIC, as [`Header::ts_ns`]) when it blocked; 0
    /// when the runtime does not know.
    pub wait_since: i64,
    pub gopc: u64,
    pub startpc: u64,
    /// `g.atomicstatus` (with the `_Gscan` bit).
    pub status: u32,
    pub wait_reason: u32,
    pub flags: u32,
    /// 1-based: the how-manieth goroutine header of this dump.
    pub index: u32,
    /// Return addresses in `pcs`.
    pub depth: u32,
    pub binary: u32,
    pub pcs: [u64; GO_GOROUTINE_FRAMES],
}

/// Memory cgroups recorded for an OOM kill: the victim's and its ancestors.
pub const OOM_MEMCG_LEVELS: usize = 8;

/// One memory cgroup at an OOM kill: the cgroup's id (its kernfs node id,
/// the inode number of its directory) and its page counter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OomMemcg {
    pub cgroup_id: u64,
    /// Pages charged (`page_counter.usage`).
    pub usage_pages: u64,
    /// The limit in pages (`page_counter.max`; `PAGE_COUNTER_MAX` when
    /// unlimited).
    pub max_pages: u64,
}

/// `oom:mark_victim(task, uid)`: the OOM killer chose this process. The
/// header is the victim's (pid, tid, comm, as the other records of the
/// process); the task the kernel ran the OOM killer in — the one whose
/// allocation or charge failed — is `trigger_*`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomRecord {
    pub header: Header,
    pub trigger_pid: u32,
    pub trigger_tid: u32,
    pub trigger_comm: [u8; COMM_LEN],
    /// The victim's resident pages by kind, as the kernel's own OOM report
    /// counts them (`get_mm_counter`): anonymous, file, shared memory.
    pub anon_pages: u64,
    pub file_pages: u64,
    pub shmem_pages: u64,
    /// Memory cgroups in `memcg`: the victim's first, then its parents.
    pub levels: u32,
    pub _pad: u32,
    pub memcg: [OomMemcg; OOM_MEMCG_LEVELS],
}

/// Bytes of the panic value (or of what it points to) captured at the probe.
pub const GO_VALUE_BYTES: usize = 64;
/// Bytes of the string captured at the probe (throw's message, a string
/// panic value, or an error's first string field).
pub const GO_STRING_BYTES: usize = 256;

/// Bytes of the goroutine's stack captured from `rsp` at a Go probe: enough
/// to cover the runtime frames between a fault and gopanic, where a
/// frameless function's return address is not on the frame-pointer chain.
pub const GO_STACK_SNAPSHOT: usize = 1024;

/// A Go runtime entry point was hit (uprobe right after the prologue's
/// stack check, at `push rbp`: arguments still in their registers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoRecord {
    pub header: Header,
    /// A [`GoProbe`] as `u32`.
    pub probe: u32,
    /// Slot of the binary in the Go config map.
    pub binary: u32,
    /// Goroutine id of the user goroutine (curg when the probe ran on g0).
    pub goid: u64,
    /// The probe fired on the system stack (g0 or gsignal).
    pub on_system_stack: u32,
    /// Bytes of `string` filled.
    pub string_len: u32,
    /// Length the string claimed (may exceed what was captured).
    pub string_full_len: u64,
    /// The first two argument words (RAX, RBX); for printpanics, the
    /// panic's value (type, data) read from the `_panic`.
    pub arg0: u64,
    pub arg1: u64,
    /// `[rsp]`: the caller's return address (a frame-pointer walk from a
    /// probe before `push rbp` skips the immediate caller).
    pub return_address: u64,
    /// gopanic/printpanics: bytes at `arg1` (the panic value's data).
    /// recovery: the code pointers of the recovering frame's 8 open-coded
    /// defer slots (0 where empty), with the defer bits in `flags`.
    pub value: [u8; GO_VALUE_BYTES],
    pub string: [u8; GO_STRING_BYTES],
    pub stack_bytes: u32,
    /// printpanics: `GO_PANIC_*` bits. recovery: the frame's open-coded
    /// defer bits | `GO_DEFER_BITS_VALID`.
    pub flags: u32,
    pub regs: Registers,
    pub stack: [u64; MAX_STACK_DEPTH],
    /// `GO_STACK_SNAPSHOT` bytes from `regs.sp`, or from the goroutine's
    /// saved sp when the stack is walked from its context (zeros where
    /// unreadable).
    pub stack_snapshot: [u8; GO_STACK_SNAPSHOT],
    /// gopanic: the goroutine's `_defer` chain, (record address, code
    /// pointer of its fn) pairs from the head, zeros after the end.
    /// recovery: `defers[0]` is the chain's head after the recovering call;
    /// `defers[1]` the panic's `retpc` (Go 1.22+; 0 before): for a
    /// deferred call kept in a `_defer` record, the return address of its
    /// `deferproc` call in the function that deferred it.
    pub defers: [u64; 2 * GO_DEFER_RECORDS],
    /// Go 1.22+, at recovery, preprintpanics and Goexit: the panics of the
    /// goroutine's `_panic` chain that end here and were not told yet,
    /// newest first (`chain[0]` is the chain's head). Userspace tells them
    /// oldest first, before the hit's own record, the k-th newest with the
    /// frames of `stack` from its own gopanic frame (the (k+1)-th
    /// `runtime.gopanic` frame) on.
    pub chain_len: u32,
    pub _chain_pad: u32,
    /// When the walk read [`GO_PANIC_CHAIN_MAX`] entries and the chain
    /// went on: the next older links it did not read, (address, startSP |
    /// [`GO_BEYOND_GOEXIT`]) each, up to [`GO_PANIC_BEYOND_MAX`] (zeros
    /// after the chain's end); with `chain_mark`, the newest link told
    /// already, userspace counts the panics cut
    /// ([`GoRecord::panics_cut`]). Otherwise the first address is 0 and
    /// the rest stale. Both only meaningful when `chain_len` is not 0.
    pub chain_beyond: [[u64; 2]; GO_PANIC_BEYOND_MAX],
    pub chain_mark: [u64; 2],
    pub chain: [GoChainPanic; GO_PANIC_CHAIN_MAX],
}

impl GoRecord {
    /// How many older links of the `_panic` chain ended untold at this hit
    /// (more than [`GO_PANIC_CHAIN_MAX`] panics under way on the goroutine),
    /// and whether there may be more than that (the count stopped at
    /// [`GO_PANIC_BEYOND_MAX`]).
    pub fn panics_cut(&self) -> (usize, bool) {
        let links = self
            .chain_beyond
            .iter()
            .take_while(|&&[p, sp]| p != 0 && [p, sp & !GO_BEYOND_GOEXIT] != self.chain_mark);
        let (mut seen, mut panics) = (0, 0);
        for &[_, sp] in links {
            seen += 1;
            // A Goexit's entry is no panic.
            panics += usize::from(sp & GO_BEYOND_GOEXIT == 0);
        }
        (panics, seen == GO_PANIC_BEYOND_MAX)
    }
}

/// Value of the traced-process map: why the process is traced.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TracedProcess {
    /// Also trace the processes it forks.
    pub follow_forks: u32,
    /// Traced because it runs a watched file ([`WatchedFile`]): an exec
    /// into another file ends its tracing.
    pub by_exe: u32,
}

/// Key of the watched-files map: (device as the kernel encodes it,
/// `(major << 20) | minor`, inode number). A process exec'ing a watched
/// file is traced from its first instruction (`attach --exe`, daemon).
pub type WatchedFile = [u64; 2];

/// [`ExecRecord::flags`]: the process became traced at this exec (it runs
/// a watched file).
pub const EXEC_WATCHED: u32 = 1;
/// [`ExecRecord::flags`]: the process was traced for the file it ran and
/// exec'd another one: no longer traced.
pub const EXEC_DROPPED: u32 = 2;
/// [`ExecRecord::flags`]: an exec of an untraced process, sent because
/// userspace asked for every exec (the daemon's comm and Go selectors
/// decide after looking at the program).
pub const EXEC_CANDIDATE: u32 = 4;

/// Size of the per-CPU drop-counter array: records that found the ring
/// buffer full, indexed by [`EventKind::lost_index`] (index 0 unused).
pub const LOST_COUNTERS: u32 = {
    let mut max = 0;
    let mut i = 0;
    while i < EventKind::ALL.len() {
        if EventKind::ALL[i].lost_index() > max {
            max = EventKind::ALL[i].lost_index();
        }
        i += 1;
    }
    max + 1
};

/// Slot of the drop-counter array past the kinds' slots: Go panics not
/// told because their site passed [`GO_PANICS_PER_SEC`].
pub const GO_PANICS_RATE_LIMITED: u32 = LOST_COUNTERS;
/// Slot of the drop-counter array: Rust panics not told because their
/// site passed [`RUST_PANICS_PER_SEC`].
pub const RUST_PANICS_RATE_LIMITED: u32 = LOST_COUNTERS + 1;
/// Size of the drop-counter array (`LOST`): the kinds' slots,
/// [`GO_PANICS_RATE_LIMITED`] and [`RUST_PANICS_RATE_LIMITED`].
pub const LOST_SLOTS: u32 = LOST_COUNTERS + 2;

// The kinds' list is consistent: each kind decodes back to itself and has
// a drop counter.
const _: () = {
    let mut i = 0;
    while i < EventKind::ALL.len() {
        let kind = EventKind::ALL[i];
        match EventKind::from_u32(kind as u32) {
            Some(k) => assert!(k as u32 == kind as u32, "a kind decodes to another"),
            None => panic!("a kind does not decode"),
        }
        assert!(
            kind.lost_index() < LOST_COUNTERS,
            "a kind has no drop counter"
        );
        i += 1;
    }
    // Kinds are numbered from 1 without gaps: LOST has one slot per kind and
    // the unused slot 0 (12 slots today).
    assert!(
        LOST_COUNTERS == EventKind::ALL.len() as u32 + 1,
        "kinds are not numbered 1..=N"
    );
};

/// Compile-time layout checks for the types the kernel side writes and
/// userspace reads (ring-buffer records) or userspace writes and the kernel
/// reads (`OFFSETS`, map keys and values). Both sides build this crate, for
/// different targets: a size or offset that moved fails the build on either
/// instead of decoding garbage at run time. `assert_layout!(T, size N,
/// field @ offset, …)`.
macro_rules! assert_layout {
    ($ty:ty, size $size:expr $(, $field:ident @ $offset:expr)* $(,)?) => {
        const _: () = {
            assert!(
                core::mem::size_of::<$ty>() == $size,
                concat!("size of ", stringify!($ty), " changed")
            );
            $(assert!(
                core::mem::offset_of!($ty, $field) == $offset,
                concat!("offset of ", stringify!($ty), "::", stringify!($field), " changed")
            );)*
        };
    };
}

assert_layout!(Header, size 40, kind @ 0, pid @ 4, tid @ 8, _pad @ 12, ts_ns @ 16, comm @ 24);
// Eighteen u64, no padding possible: the size and the ends are enough.
assert_layout!(Registers, size 144, ip @ 0, sp @ 8, r15 @ 136);
assert_layout!(
    SignalRecord, size 1240,
    header @ 0, signo @ 40, code @ 44, errno @ 48, sender_pid @ 52, fault_addr @ 56,
    handler @ 64, group_exiting @ 72, stack_bytes @ 76, regs @ 80, stack @ 224,
);
assert_layout!(StackRecord, size 36920, header @ 0, sp @ 40, len @ 48, hole @ 52, data @ 56);
assert_layout!(
    ModuleRecord, size 232,
    header @ 0, reason @ 40, index @ 44, l_addr @ 48, l_ld @ 56, path_len @ 64, _pad @ 68,
    path @ 72,
);
assert_layout!(
    CxxRecord, size 880,
    header @ 0, probe @ 40, suppressed @ 44, regs @ 48, object @ 192, types @ 200,
    type_names @ 584, what_len @ 616, _pad @ 620, what @ 624,
);
assert_layout!(
    RustPanicRecord, size 624,
    header @ 0, regs @ 40, line @ 184, col @ 188, file_len @ 192, msg_len @ 196,
    can_unwind @ 200, suppressed @ 204, file_ptr @ 208, file_size @ 216, msg_ptr @ 224,
    msg_size @ 232, file @ 240, msg @ 368,
);
assert_layout!(
    RustPanicMessageRecord, size 304,
    header @ 0, msg_len @ 40, full_len @ 44, msg @ 48,
);
assert_layout!(
    SignalGenerateRecord, size 64,
    header @ 0, signo @ 40, code @ 44, target_pid @ 48, target_tid @ 52, result @ 56,
    group @ 60,
);
assert_layout!(ExitRecord, size 48, header @ 0, status @ 40, _pad @ 44);
assert_layout!(ForkRecord, size 48, header @ 0, child_pid @ 40, _pad @ 44);
assert_layout!(
    ExecRecord, size 352,
    header @ 0, old_tid @ 40, flags @ 44, start_code @ 48, end_code @ 56, file @ 64,
    ns_pid @ 80, filename_len @ 84, cgroup_id @ 88, filename @ 96,
);
assert_layout!(
    GoRecord, size 4232,
    header @ 0, probe @ 40, binary @ 44, goid @ 48, on_system_stack @ 56, string_len @ 60,
    string_full_len @ 64, arg0 @ 72, arg1 @ 80, return_address @ 88, value @ 96,
    string @ 160, stack_bytes @ 416, flags @ 420, regs @ 424, stack @ 568,
    stack_snapshot @ 1584, defers @ 2608, chain_len @ 2736, chain_beyond @ 2744,
    chain_mark @ 2808, chain @ 2824,
);
assert_layout!(
    GoChainPanic, size 352,
    arg0 @ 0, arg1 @ 8, flags @ 16, string_len @ 20, string_full_len @ 24, value @ 32,
    string @ 96,
);
// The `OFFSETS` global (thirty-nine u32) and `GO_CONFIG`'s values (thirty-one u32),
// written by userspace: all one type, so the size and the ends are enough.
assert_layout!(KernelOffsets, size 156, task_pid @ 0, mm_saved_auxv @ 80, page_counter_max @ 152);
assert_layout!(OomMemcg, size 24, cgroup_id @ 0, max_pages @ 16);
assert_layout!(
    OomRecord, size 288,
    header @ 0, trigger_pid @ 40, trigger_tid @ 44, trigger_comm @ 48, anon_pages @ 64,
    file_pages @ 72, shmem_pages @ 80, levels @ 88, _pad @ 92, memcg @ 96,
);
assert_layout!(
    GoConfig,
    size 124,
    g_goid @ 0,
    defer_started @ 60,
    g_sigcode0 @ 76,
    g_lockedm @ 104,
    panic_retpc @ 120,
);
assert_layout!(GoProcess, size 16, slot @ 0, headers @ 12);
assert_layout!(GoroutineRecord, size 104 + 8 * GO_GOROUTINE_FRAMES, header @ 0, goid @ 40, status @ 80, binary @ 100, pcs @ 104);
assert_layout!(TracedProcess, size 8, follow_forks @ 0, by_exe @ 4);
assert_layout!(WatchedFile, size 16);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are #[repr(C)] plain old data with no invalid bit patterns.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::TracedProcess {}
    unsafe impl aya::Pod for super::GoConfig {}
    unsafe impl aya::Pod for super::GoProcess {}
}
