//! Every map and the `OFFSETS` global. Userspace finds them by these exact
//! symbol names (`take_map("TRACED")`, `override_global("OFFSETS", …)`):
//! do not rename them.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    COMM_LEN, GoConfig, GoProcess, KernelOffsets, LOST_SLOTS, MAX_GO_BINARIES, TracedProcess,
    WatchedFile,
};

/// Filled in by userspace from the running kernel's BTF before loading.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_signal: 0,
    task_exit_code: 0,
    signal_flags: 0,
    signal_group_exit_code: 0,
    signal_live: 0,
    binprm_file: 0,
    file_inode: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    task_mm: 0,
    mm_start_code: 0,
    mm_end_code: 0,
    binprm_filename: 0,
    task_thread_pid: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    mm_saved_auxv: 0,
    task_comm: 0,
    mm_rss_stat: 0,
    rss_stat_stride: 0,
    percpu_counter_count: 0,
    mm_filepages: 0,
    mm_anonpages: 0,
    mm_shmempages: 0,
    task_cgroups: 0,
    css_set_subsys: 0,
    memory_cgrp_id: 0,
    css_cgroup: 0,
    css_parent: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    memcg_css: 0,
    memcg_memory: 0,
    page_counter_usage: 0,
    page_counter_max: 0,
};

/// Files whose processes are traced from their exec on (value: follow
/// forks), keyed by (device, inode): `attach --exe`, the daemon.
#[map]
pub(crate) static WATCHED_FILES: HashMap<WatchedFile, u32> = HashMap::with_max_entries(1024, 0);

/// Process names (comm, NUL-padded) whose processes are traced from their
/// exec on (value: follow forks): the daemon's comm selector.
#[map]
pub(crate) static WATCHED_COMMS: HashMap<[u8; COMM_LEN], u32> = HashMap::with_max_entries(256, 0);

/// Slot 0 non-zero: send an exec record for every exec on the host (the
/// daemon's comm and "all Go programs" selectors look at each program).
#[map]
pub(crate) static EXEC_ALL: Array<u32> = Array::with_max_entries(1, 0);

/// Processes (tgid) being traced. Written by userspace at attach and by the
/// fork program for children of processes traced with `follow_forks`.
#[map]
pub(crate) static TRACED: HashMap<u32, TracedProcess> = HashMap::with_max_entries(16384, 0);

/// Traced processes that exited lately (tgid → exit time): the OOM killer
/// sends SIGKILL before it announces its victim (`mark_victim`), and the
/// victim's `sched_process_exit` (before `exit_mm`, so not held back by
/// the task lock the killer holds) can run first on another CPU. Written
/// before the exit program deletes the process from `TRACED`.
#[map]
pub(crate) static RECENT_EXITS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1024, 0);

/// Processes being killed whose stack was copied (tgid → their
/// `signal_struct`, unique while the process lives): a group kill is
/// dequeued by every thread, and one copy, the first (the record
/// userspace keeps), is enough.
#[map]
pub(crate) static KILL_SNAPSHOTS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1024, 0);

/// Userspace resizes this at load time (`--ring-buffer-size`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Go runtime layout per traced Go binary, indexed by the slot in the
/// high half of each Go uprobe's cookie.
#[map]
pub(crate) static GO_CONFIG: Array<GoConfig> = Array::with_max_entries(MAX_GO_BINARIES, 0);

/// Traced Go processes (pid → layout slot, whether a probe fired), set by
/// userspace as soon as it knows the program is Go, before its probes are
/// placed: a panic in that window is read at the process's exit.
#[map]
pub(crate) static GO_PROCESSES: HashMap<u32, GoProcess> = HashMap::with_max_entries(16384, 0);

/// Files known to be Go binaries (the exec'd file's key, as in
/// `WATCHED_FILES`) → their layout slot, while userspace keeps the slot:
/// a traced process exec'ing one is marked in `GO_PROCESSES` at its exec,
/// before userspace has seen it (a crash loop's restarts, a program that
/// dies within a millisecond).
#[map]
pub(crate) static GO_FILES: HashMap<WatchedFile, u32> =
    HashMap::with_max_entries(MAX_GO_BINARIES, 0);

/// Hits of the Go uprobes (per CPU), for `-v` and the benchmarks: what a
/// traced program pays is this count times the cost of one hit.
#[map]
pub(crate) static GO_PROBE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Go 1.21: the code pointer of the last open-coded deferred call a
/// goroutine ran while panicking (runtime.deferCallSave), keyed by
/// [`goroutine_key`](crate::go::goroutine_key); read and removed at runtime.recovery.
#[map]
pub(crate) static GO_LAST_DEFER_CALL: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

/// Go 1.22+: per goroutine (process, g address), the newest panic of its
/// `_panic` chain already told (address, startSP) and the goroutine's id
/// (a g is reused by later goroutines): it and the panics it links to are
/// not told again. Set when a hit tells a chain whose older panics go on
/// (nested panics, a Goexit); removed when none does. Absent in the
/// common case (one panic, recovered): keyed by the g, the untold path
/// looks it up without reading the goroutine id.
#[map]
pub(crate) static GO_TOLD_PANIC: LruHashMap<[u64; 2], [u64; 3]> =
    LruHashMap::with_max_entries(8192, 0);

/// Records that found the ring buffer full, per record kind, per CPU; and
/// Go panics not told for the rate limit (`GO_PANICS_RATE_LIMITED`).
#[map]
pub(crate) static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_SLOTS, 0);

/// Per throw site (process, return address into the thrower): (window
/// start ns, records in the window, suppressed since the last record). A
/// loop that throws and catches is limited; a throw from anywhere else (the
/// one that ends the process, typically) still gets through.
#[map]
pub(crate) static CXX_RATE: LruHashMap<[u64; 2], [u64; 3]> = LruHashMap::with_max_entries(8192, 0);

/// Per panic site (process, return address into the function that called
/// panic): as `CXX_RATE` (see `util::site_rate`, `GO_PANICS_PER_SEC`).
#[map]
pub(crate) static GO_RATE: LruHashMap<[u64; 2], [u64; 3]> = LruHashMap::with_max_entries(8192, 0);

/// Goroutines (`go::goroutine_key`) whose panic under way is not told:
/// its recovery is not told either.
#[map]
pub(crate) static GO_UNTOLD: LruHashMap<u64, u8> = LruHashMap::with_max_entries(8192, 0);

/// Per Rust panic site (process, `&Location`): (window start ns, panics
/// told in the window, untold since the last told one). See
/// `RUST_PANICS_PER_SEC`.
#[map]
pub(crate) static RUST_RATE: LruHashMap<[u64; 2], [u64; 3]> = LruHashMap::with_max_entries(8192, 0);

/// Threads (pid_tgid) whose panic under way is not told: its formatted
/// message is not read either.
#[map]
pub(crate) static RUST_UNTOLD: LruHashMap<u64, u8> = LruHashMap::with_max_entries(8192, 0);
