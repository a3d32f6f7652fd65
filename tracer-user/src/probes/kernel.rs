//! Loads the embedded eBPF object, attaches the signal and process-lifetime
//! tracepoints, and owns the maps userspace shares with them.
//!
//! Every program and link is owned by the `Ebpf` value inside
//! [`KernelProbes`]: raw_tp and uprobe links are file descriptors, so they go away when
//! it is dropped or when crashtrace dies, SIGKILL included. Nothing is pinned.

use anyhow::{Context as _, Result};
use std::{num::NonZeroU32, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        RawTracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
};
use tracer_common::{EventKind, GoConfig, GoProbe, GoProcess, TracedProcess, WatchedFile};

use super::btf::kernel_offsets_cached;
use crate::symbolize::ElfModule;

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// The eBPF object crashtrace loads (for checks of the object itself).
#[cfg(test)]
pub(crate) fn ebpf_object() -> &'static [u8] {
    EBPF_OBJECT
}

/// (program name in the object, kernel tracepoint)
const TRACEPOINTS: &[(&str, &str)] = &[
    ("signal_deliver", "signal_deliver"),
    ("signal_generate", "signal_generate"),
    ("sched_process_exit", "sched_process_exit"),
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exec", "sched_process_exec"),
    // oom:mark_victim (Linux 4.7+): the OOM killer's victims.
    ("mark_victim", "mark_victim"),
];

/// The uprobe programs for Go runtime entry points, one per entry point
/// (one body in the object, specialized per kind: see tracer-ebpf's go.rs).
const GO_PROGRAMS: [(GoProbe, &str); 10] = [
    (GoProbe::Gopanic, "go_gopanic"),
    (GoProbe::Throw, "go_throw"),
    (GoProbe::Fatal, "go_fatal"),
    (GoProbe::Recovery, "go_recovery"),
    (GoProbe::Printpanics, "go_printpanics"),
    (GoProbe::Sigpanic, "go_sigpanic"),
    (GoProbe::Goexit, "go_goexit"),
    (GoProbe::DeferCall, "go_defer_call"),
    (GoProbe::GoroutineHeader, "go_goroutine_header"),
    (GoProbe::Preprintpanics, "go_preprintpanics"),
];

/// The Go probes placed on one binary (for one process or for every
/// process of a watched file): one link per program used.
#[derive(Debug)]
pub struct GoLinks(Vec<(&'static str, UProbeLinkId)>);
/// The return probe on libc's dlopen.
const DLOPEN_PROGRAM: &str = "dlopen_return";
/// Rust's panic entry point.
const RUST_PROGRAM: &str = "rust_panic";
/// The return probe that reads a formatted Rust panic message.
const RUST_MESSAGE_PROGRAM: &str = "rust_panic_message";
/// libstdc++'s __cxa_throw, std::terminate and std::rethrow_exception
/// (what std::future::get calls to rethrow a task's exception; an older
/// or static libstdc++ may lack it: optional).
const CXX_PROGRAMS: [(&str, &str); 3] = [
    ("cxx_throw", "__cxa_throw"),
    ("cxx_terminate", "_ZSt9terminatev"),
    (
        CXX_RETHROW_EXCEPTION_PROGRAM,
        "_ZSt17rethrow_exceptionNSt15__exception_ptr13exception_ptrE",
    ),
];
const CXX_RETHROW_EXCEPTION_PROGRAM: &str = "cxx_rethrow_exception";
/// libstdc++'s `libstdcxx:rethrow` SDT probe in __cxa_rethrow (`throw;`).
const CXX_RETHROW_PROGRAM: &str = "cxx_rethrow";

pub struct KernelProbes {
    /// Owns programs and links; the maps the stages use are taken out.
    ebpf: Ebpf,
    watched_comms: HashMap<MapData, [u8; tracer_common::COMM_LEN], u32>,
    exec_all: Array<MapData, u32>,
    go_processes: HashMap<MapData, u32, GoProcess>,
    go_files: HashMap<MapData, WatchedFile, u32>,
    go_config: Array<MapData, GoConfig>,
    go_hits: PerCpuArray<MapData, u64>,
    traced: HashMap<MapData, u32, TracedProcess>,
    watched: HashMap<MapData, WatchedFile, u32>,
    lost: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    /// (process, libc file) pairs whose dlopen carries the return probe.
    dlopen_libs: std::collections::HashSet<(u32, (u64, u64))>,
    /// Links handed over to be closed off the drain loop: unregistering a
    /// uprobe waits for the kernel's SRCU grace period (tens of ms), which
    /// would stall record handling at every traced process's exit.
    reaper: std::sync::mpsc::Sender<aya::programs::uprobe::UProbeLink>,
    /// Per-process uprobe links (dlopen, C++, Rust), released when the
    /// process exits or execs: a daemon follows processes for months.
    process_links: std::collections::HashMap<u32, Vec<(&'static str, UProbeLinkId)>>,
    /// (process, libstdc++ file) pairs with the C++ probes.
    cxx_libs: std::collections::HashSet<(u32, (u64, u64))>,
}

impl KernelProbes {
    /// Loads and attaches everything. `ring_bytes` must be a power-of-two
    /// multiple of the page size.
    pub fn load(ring_bytes: u32) -> Result<Self> {
        let started = std::time::Instant::now();
        // Struct offsets from this boot's cache (the first start reads
        // them from the kernel's BTF, ~6 ms; ~230 ms with btf_rs). Nothing else
        // needs the kernel's BTF: the tracepoints are raw_tp programs (a
        // tp_btf program names its tracepoint by BTF id, and aya parses all
        // of vmlinux's BTF to find it: ~35 ms and ~19 MiB, every start).
        let offsets = kernel_offsets_cached()?;
        let offsets_time = started.elapsed();

        // No `.btf()`: aya reads the kernel's BTF only for CO-RE
        // relocations, and the object has none (offsets come in OFFSETS).
        let mut ebpf = EbpfLoader::new()
            .override_global("OFFSETS", &offsets, true)
            .map_max_entries("EVENTS", ring_bytes)
            .load(EBPF_OBJECT)
            .context("loading the eBPF programs into the kernel")?;
        if let Some(missing) = kernel_programs().find(|&name| ebpf.program(name).is_none()) {
            anyhow::bail!("program {missing} missing from the eBPF object");
        }

        // Every program is verified before anything is traced: a process
        // of any runtime may exec in the first milliseconds (a script's Go
        // child), and its probes must not wait behind the verifier then.
        // On two threads (the kernel verifies in the thread that loads),
        // taking the next program from one queue, the costliest first.
        let verify = |(name, program): (&str, &mut aya::programs::Program)| {
            let t = std::time::Instant::now();
            match program {
                aya::programs::Program::RawTracePoint(p) => p.load(),
                aya::programs::Program::UProbe(p) => p.load(),
                _ => {
                    return Err(anyhow::anyhow!(
                        "program {name}: not a raw_tp or uprobe program"
                    ));
                }
            }
            .with_context(|| format!("verifying program {name}"))?;
            let checked = program
                .info()
                .ok()
                .and_then(|i| i.verified_instruction_count());
            let name = kernel_programs().find(|&p| p == name).unwrap_or("?");
            Ok::<_, anyhow::Error>(Verified {
                name,
                time: t.elapsed(),
                checked,
            })
        };
        let mut queue: Vec<_> = ebpf
            .programs_mut()
            .filter(|(name, _)| kernel_programs().any(|p| p == *name))
            .collect();
        // Popped from the end: the costliest last.
        queue.sort_by_key(|(name, _)| {
            std::cmp::Reverse(
                COSTLIEST
                    .iter()
                    .position(|c| c == name)
                    .unwrap_or(usize::MAX),
            )
        });
        let queue = std::sync::Mutex::new(queue);
        let work = || -> Result<Vec<Verified>> {
            let mut done = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("verifying the programs failed"))?
                    .pop();
                match next {
                    Some(program) => done.push(verify(program)?),
                    None => return Ok(done),
                }
            }
        };
        let (a, b) = std::thread::scope(|s| {
            // No second thread (pids or memory exhausted): this one
            // verifies them all.
            let other = std::thread::Builder::new().spawn_scoped(s, work).ok();
            let here = work();
            let there = match other {
                Some(t) => t
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("verifying the programs failed"))),
                None => Ok(Vec::new()),
            };
            (here, there)
        });
        let mut verified = a?;
        verified.extend(b?);
        for (prog, tracepoint) in TRACEPOINTS {
            let program: &mut RawTracePoint = ebpf
                .program_mut(prog)
                .with_context(|| format!("program {prog} missing from the eBPF object"))?
                .try_into()
                .with_context(|| format!("program {prog} is not a raw_tp program"))?;
            program
                .attach(tracepoint)
                .with_context(|| format!("attaching to tracepoint {tracepoint}"))?;
        }
        log::info!(
            "kernel side loaded in {} ms: struct offsets {} ms, {}",
            started.elapsed().as_millis(),
            offsets_time.as_millis(),
            verify_summary(verified),
        );

        let go_hits = PerCpuArray::try_from(
            ebpf.take_map("GO_PROBE_HITS")
                .context("map GO_PROBE_HITS missing")?,
        )?;
        let go_config = Array::try_from(
            ebpf.take_map("GO_CONFIG")
                .context("map GO_CONFIG missing")?,
        )?;
        let traced = HashMap::try_from(ebpf.take_map("TRACED").context("map TRACED missing")?)?;
        let watched = HashMap::try_from(
            ebpf.take_map("WATCHED_FILES")
                .context("map WATCHED_FILES missing")?,
        )?;
        let lost = PerCpuArray::try_from(ebpf.take_map("LOST").context("map LOST missing")?)?;
        let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
        let watched_comms = HashMap::try_from(
            ebpf.take_map("WATCHED_COMMS")
                .context("map WATCHED_COMMS missing")?,
        )?;
        let exec_all = Array::try_from(ebpf.take_map("EXEC_ALL").context("map EXEC_ALL missing")?)?;
        let go_processes = HashMap::try_from(
            ebpf.take_map("GO_PROCESSES")
                .context("map GO_PROCESSES missing")?,
        )?;
        let go_files =
            HashMap::try_from(ebpf.take_map("GO_FILES").context("map GO_FILES missing")?)?;
        Ok(Self {
            ebpf,
            watched_comms,
            exec_all,
            go_processes,
            go_files,
            go_config,
            go_hits,
            traced,
            lost,
            events: Some(events),
            watched,
            reaper: spawn_reaper(),
            dlopen_libs: Default::default(),
            process_links: Default::default(),
            cxx_libs: Default::default(),
        })
    }

    /// The ring buffer, handed to the drain task once.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Starts filtering `pid`'s events in. Fork following is done in the kernel.
    pub fn trace(&mut self, pid: u32, follow_forks: bool) -> Result<()> {
        self.trace_as(pid, follow_forks, false)
    }

    /// As [`Self::trace`]; `by_exe`: traced because it runs a watched file,
    /// so an exec into another file ends it.
    pub fn trace_as(&mut self, pid: u32, follow_forks: bool, by_exe: bool) -> Result<()> {
        let value = TracedProcess {
            follow_forks: u32::from(follow_forks),
            by_exe: u32::from(by_exe),
        };
        self.traced
            .insert(&pid, &value, 0)
            .with_context(|| format!("adding pid {pid} to the traced set"))
    }

    /// Traces every process that execs the file at `path` from then on
    /// (the kernel matches the exec'd file's device and inode). Returns the
    /// file's key as the kernel sees it.
    pub fn watch_file(&mut self, path: &Path, follow_forks: bool) -> Result<WatchedFile> {
        let key = file_key(path)?;
        self.watched
            .insert(&key, &u32::from(follow_forks), 0)
            .with_context(|| format!("watching {}", path.display()))?;
        Ok(key)
    }

    /// Processes exec'ing a program with this comm (15 bytes at most) are
    /// traced from their exec on; an empty list watches none. Only what
    /// changed is touched: a comm named before and now stays in the map
    /// throughout (a reload or rescan must not open a window in which its
    /// processes go untraced).
    pub fn watch_comms(&mut self, comms: &[String]) -> Result<()> {
        let map = &mut self.watched_comms;
        let wanted: Vec<[u8; tracer_common::COMM_LEN]> = comms
            .iter()
            .map(|c| {
                let mut key = [0u8; tracer_common::COMM_LEN];
                let bytes = c.as_bytes();
                let n = bytes.len().min(tracer_common::COMM_LEN - 1);
                key[..n].copy_from_slice(&bytes[..n]);
                key
            })
            .collect();
        let old: Vec<[u8; tracer_common::COMM_LEN]> = map.keys().filter_map(|k| k.ok()).collect();
        for k in old.iter().filter(|k| !wanted.contains(k)) {
            let _ = map.remove(k);
        }
        for (key, c) in wanted.iter().zip(comms) {
            if !old.contains(key) {
                map.insert(key, &1, 0)
                    .with_context(|| format!("watching comm {c:?}"))?;
            }
        }
        Ok(())
    }

    /// Ask for an exec record of every exec on the host (or stop).
    pub fn send_all_execs(&mut self, on: bool) -> Result<()> {
        self.exec_all
            .set(0, &u32::from(on), 0)
            .context("setting the exec-all flag")
    }

    pub fn unwatch_file(&mut self, key: WatchedFile) {
        let _ = self.watched.remove(&key);
    }

    pub fn untrace(&mut self, pid: u32) {
        // Absent already when the kernel saw it exit: nothing to do.
        let _ = self.traced.remove(&pid);
    }

    /// Writes the runtime layout of the Go binary in `slot`.
    pub fn set_go_config(&mut self, slot: u32, config: GoConfig) -> Result<()> {
        self.go_config
            .set(slot, &config, 0)
            .with_context(|| format!("writing Go layout slot {slot}"))
    }

    /// Marks `pid` as a Go program whose runtime layout is in `slot`, before
    /// its probes are placed: a panic it dies of meanwhile is read at its
    /// exit (see the kernel's `exit_panic`).
    pub fn mark_go_process(&mut self, pid: u32, slot: u32) -> Result<()> {
        // Marked already with this slot (by the kernel at its exec, the
        // file being known): kept as it is, with what its probes wrote.
        if self.go_processes.get(&pid, 0).is_ok_and(|p| p.slot == slot) {
            return Ok(());
        }
        self.go_processes
            .insert(
                &pid,
                &GoProcess {
                    slot,
                    ..Default::default()
                },
                0,
            )
            .with_context(|| format!("marking pid {pid} as a Go process"))
    }

    /// Processes exec'ing the file `key` are marked Go with `slot` by the
    /// kernel at their exec (`Some`), or no longer (`None`).
    pub fn set_go_file(&mut self, key: WatchedFile, slot: Option<u32>) {
        let _ = match slot {
            Some(slot) => self.go_files.insert(&key, &slot, 0),
            None => self.go_files.remove(&key),
        };
    }

    /// `pid` runs no Go program of ours (the kernel drops its mark at
    /// its exec and exit; a mark written from an older view of it, such
    /// as its parent's binary before its exec, goes here).
    pub fn unmark_go_process(&mut self, pid: u32) {
        let _ = self.go_processes.remove(&pid);
    }

    /// Attaches the Go probe to `points` (file offsets) of `binary`, firing
    /// only for `pid`. The cookie carries the probe kind, the point's bits
    /// (`GO_PROBE_AT_STACK_CHECK`, the recovery's site offset) and the
    /// layout slot.
    /// With `pid` None, for every process mapping the file (a watched
    /// file: the program filters by the traced set, and a process started
    /// later has the probes from its first instruction).
    pub fn attach_go(
        &mut self,
        pid: Option<u32>,
        binary: &Path,
        slot: u32,
        points: &[(GoProbe, u64, u32)],
    ) -> Result<GoLinks> {
        let scope = match pid {
            Some(pid) => UProbeScope::OneProcess(NonZeroU32::new(pid).context("pid 0")?),
            None => UProbeScope::AllProcesses,
        };
        let mut links = GoLinks(Vec::new());
        for (kind, program) in GO_PROGRAMS {
            let points: Vec<UProbeAttachPoint<'_>> = points
                .iter()
                .filter(|&&(probe, _, _)| probe == kind)
                .map(|&(probe, offset, bits)| UProbeAttachPoint {
                    location: UProbeAttachLocation::AbsoluteOffset(offset),
                    cookie: Some((u64::from(slot) << 32) | u64::from(probe as u32 | bits)),
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let attached = self.with_uprobe(program, |p| {
                p.attach(points, binary, scope)
                    .with_context(|| format!("attaching Go probes to {}", binary.display()))
            });
            match attached {
                Ok(link) => links.0.push((program, link)),
                Err(e) => {
                    // All or nothing: the ones placed go again.
                    self.detach_go(links);
                    return Err(e);
                }
            }
        }
        Ok(links)
    }

    /// Puts the return probe on `libc`'s dlopen for `pid` (a probe for all
    /// processes would make every untraced program pay the trap too).
    pub fn follow_dlopen(&mut self, pid: u32, libc: &ElfModule) -> Result<()> {
        let key = (pid, libc.identity);
        if self.dlopen_libs.contains(&key) {
            return Ok(());
        }
        let path = libc.fd_path();
        let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).context("pid 0")?);
        let link = self.with_uprobe(DLOPEN_PROGRAM, |program| {
            program
                .attach(
                    [UProbeAttachPoint {
                        location: UProbeAttachLocation::Symbol("dlopen"),
                        cookie: None,
                    }],
                    &path,
                    scope,
                )
                .context("attaching to dlopen in libc")
        })?;
        self.process_links
            .entry(pid)
            .or_default()
            .push((DLOPEN_PROGRAM, link));
        self.dlopen_libs.insert(key);
        Ok(())
    }

    /// Puts the C++ probes on `pid`'s libstdc++.
    pub fn follow_cxx(&mut self, pid: u32, libstdcxx: &ElfModule) -> Result<()> {
        let key = (pid, libstdcxx.identity);
        if self.cxx_libs.contains(&key) {
            return Ok(());
        }
        let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).context("pid 0")?);
        let path = libstdcxx.fd_path();
        for (prog, symbol) in CXX_PROGRAMS {
            if prog == CXX_RETHROW_EXCEPTION_PROGRAM
                && libstdcxx.function_bytes(symbol, 1).is_none()
            {
                log::debug!("pid {pid}: libstdc++ has no std::rethrow_exception");
                continue;
            }
            let skip = emulated_entry_offset(libstdcxx, symbol);
            let link = self.with_uprobe(prog, |program| {
                program
                    .attach(
                        [UProbeAttachPoint {
                            location: UProbeAttachLocation::SymbolOffset(symbol, skip),
                            cookie: None,
                        }],
                        &path,
                        scope,
                    )
                    .with_context(|| format!("attaching to {symbol} in libstdc++"))
            })?;
            self.process_links
                .entry(pid)
                .or_default()
                .push((prog, link));
        }
        match rethrow_usdt(libstdcxx) {
            Some((offset, cookie)) => {
                let link = self.with_uprobe(CXX_RETHROW_PROGRAM, |program| {
                    program
                        .attach(
                            [UProbeAttachPoint {
                                location: UProbeAttachLocation::AbsoluteOffset(offset),
                                cookie: Some(cookie),
                            }],
                            &path,
                            scope,
                        )
                        .context("attaching to the libstdcxx:rethrow probe")
                })?;
                self.process_links
                    .entry(pid)
                    .or_default()
                    .push((CXX_RETHROW_PROGRAM, link));
            }
            // A rethrow then counts as the thread's last throw.
            None => log::debug!("pid {pid}: libstdc++ has no usable libstdcxx:rethrow probe"),
        }
        self.cxx_libs.insert(key);
        Ok(())
    }

    /// Attaches the Rust panic probe at `offset` in `exe`, for `pid`.
    /// The Rust panic probes of one process: the entry of std's
    /// `panic_with_hook` at `offset`, and (when present) the return of the
    /// formatted message's `get` at `message_offset`.
    pub fn attach_rust(
        &mut self,
        pid: u32,
        exe: &Path,
        offset: u64,
        message_offset: Option<u64>,
    ) -> Result<()> {
        if self
            .process_links
            .get(&pid)
            .is_some_and(|links| links.iter().any(|(n, _)| *n == RUST_PROGRAM))
        {
            return Ok(()); // placed already (a second look after exec)
        }
        let pid = NonZeroU32::new(pid).context("pid 0")?;
        for (name, offset) in [
            (RUST_PROGRAM, Some(offset)),
            (RUST_MESSAGE_PROGRAM, message_offset),
        ] {
            let Some(offset) = offset else { continue };
            let link = self.with_uprobe(name, |program| {
                program
                    .attach(
                        [UProbeAttachPoint {
                            location: UProbeAttachLocation::AbsoluteOffset(offset),
                            cookie: None,
                        }],
                        exe,
                        UProbeScope::OneProcess(pid),
                    )
                    .with_context(|| format!("attaching {name} to {}", exe.display()))
            })?;
            self.process_links
                .entry(pid.get())
                .or_default()
                .push((name, link));
        }
        Ok(())
    }

    /// The per-process probes placed for `pid`, as `attach` records list
    /// them.
    pub fn process_probe_names(&self, pid: u32) -> Vec<String> {
        self.process_links
            .get(&pid)
            .map(|links| {
                links
                    .iter()
                    .map(|(name, _)| {
                        match *name {
                            DLOPEN_PROGRAM => "uretprobe/dlopen",
                            RUST_PROGRAM => "uprobe/std::panicking::panic_with_hook",
                            RUST_MESSAGE_PROGRAM => "uretprobe/FormatStringPayload::get",
                            "cxx_throw" => "uprobe/__cxa_throw",
                            "cxx_terminate" => "uprobe/std::terminate",
                            CXX_RETHROW_EXCEPTION_PROGRAM => "uprobe/std::rethrow_exception",
                            CXX_RETHROW_PROGRAM => "usdt/libstdcxx:rethrow",
                            other => other,
                        }
                        .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Releases the per-process links of `pid` (it exited or exec'd).
    pub fn detach_process(&mut self, pid: u32) {
        for (name, link) in self.process_links.remove(&pid).unwrap_or_default() {
            if let Ok(link) = self.with_uprobe(name, |program| Ok(program.take_link(link)?)) {
                let _ = self.reaper.send(link);
            }
        }
        self.dlopen_libs.retain(|(p, _)| *p != pid);
        self.cxx_libs.retain(|(p, _)| *p != pid);
    }

    pub fn detach_go(&mut self, links: GoLinks) {
        for (program, link) in links.0 {
            if let Ok(link) = self.with_uprobe(program, |p| Ok(p.take_link(link)?)) {
                let _ = self.reaper.send(link);
            }
        }
    }

    /// Runs `f` on the uprobe program `name`.
    fn with_uprobe<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut UProbe) -> Result<T>,
    ) -> Result<T> {
        let program: &mut UProbe = self
            .ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        f(program)
    }

    /// Times the Go uprobes fired, summed over CPUs.
    pub fn go_probe_hits(&self) -> u64 {
        self.go_hits.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }

    /// Records of `kind` the kernel could not queue so far, summed over CPUs.
    pub fn lost_count(&self, kind: EventKind) -> Result<u64> {
        self.lost_slot(kind.lost_index())
    }

    /// Slot `slot` of the drop counters, summed over CPUs (a kind's, or
    /// `GO_PANICS_RATE_LIMITED`).
    pub fn lost_slot(&self, slot: u32) -> Result<u64> {
        let values = self
            .lost
            .get(&slot, 0)
            .context("reading the drop counters")?;
        Ok(values.iter().sum())
    }
}

pub use crate::procfs::file_key;

/// A thread that closes links handed to it (see `KernelProbes::reaper`).
/// When crashtrace exits, links still queued close with the process.
/// The uprobe programs besides Go's.
const UPROBE_PROGRAMS: [&str; 7] = [
    DLOPEN_PROGRAM,
    CXX_PROGRAMS[0].0,
    CXX_PROGRAMS[1].0,
    CXX_PROGRAMS[2].0,
    CXX_RETHROW_PROGRAM,
    RUST_PROGRAM,
    RUST_MESSAGE_PROGRAM,
];

/// Every program loaded at start: tracepoints, Go's, the other uprobes.
fn kernel_programs() -> impl Iterator<Item = &'static str> {
    TRACEPOINTS
        .iter()
        .map(|&(p, _)| p)
        .chain(GO_PROGRAMS.iter().map(|&(_, p)| p))
        .chain(UPROBE_PROGRAMS)
}

/// The programs the verifier takes longest on, costliest first (measured
/// with `-v`): verified first, so the two threads end together.
const COSTLIEST: [&str; 4] = [
    "signal_deliver",
    "sched_process_exit",
    "go_gopanic",
    "go_recovery",
];

/// One program through the verifier: how long, how many instructions it
/// checked (the kernel's count, Linux 5.16+).
struct Verified {
    name: &'static str,
    time: std::time::Duration,
    checked: Option<u32>,
}

/// "22 programs verified in 320 ms, 80000 instructions checked (slowest
/// …)", for `-v`.
fn verify_summary(mut verified: Vec<Verified>) -> String {
    verified.sort_by_key(|v| std::cmp::Reverse(v.time));
    format!(
        "{} programs verified in {} ms, {} instructions checked (slowest {})",
        verified.len(),
        verified
            .iter()
            .map(|v| v.time)
            .sum::<std::time::Duration>()
            .as_millis(),
        verified
            .iter()
            .map(|v| u64::from(v.checked.unwrap_or(0)))
            .sum::<u64>(),
        verified
            .iter()
            .take(3)
            .map(|v| format!(
                "{} {} ms/{} insns",
                v.name,
                v.time.as_millis(),
                v.checked.unwrap_or(0)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn spawn_reaper() -> std::sync::mpsc::Sender<aya::programs::uprobe::UProbeLink> {
    let (tx, rx) = std::sync::mpsc::channel::<aya::programs::uprobe::UProbeLink>();
    let _ = std::thread::Builder::new()
        .name("link-reaper".into())
        .spawn(move || {
            while let Ok(link) = rx.recv() {
                drop(link);
            }
        });
    tx
}

/// Where to put a probe on `symbol` in `module` so the kernel emulates the
/// probed instruction instead of single-stepping it (~0.7 µs a hit instead
/// of ~13.5 µs on these VMs): past a leading `endbr64` (a no-op for the
/// probe: registers and stack are as at entry) when a `push` follows, which
/// the kernel emulates. 0 (the entry) otherwise.
/// The C++ probes `follow_cxx` places on this libstdc++, as attach
/// records name them.
pub fn cxx_probe_names(libstdcxx: &ElfModule) -> Vec<&'static str> {
    let mut names = vec!["uprobe/__cxa_throw", "uprobe/std::terminate"];
    if libstdcxx.function_bytes(CXX_PROGRAMS[2].1, 1).is_some() {
        names.push("uprobe/std::rethrow_exception");
    }
    if rethrow_usdt(libstdcxx).is_some() {
        names.push("usdt/libstdcxx:rethrow");
    }
    names
}

pub fn emulated_entry_offset(module: &ElfModule, symbol: &str) -> u64 {
    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    // push %reg: 0x50+r, or 0x41 0x50+r for r8–r15.
    let push = |b: &[u8]| matches!(b, [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..]);
    match module.function_bytes(symbol, 6) {
        Some(bytes) if bytes[..4] == ENDBR64 && push(&bytes[4..]) => 4,
        _ => 0,
    }
}

/// Where libstdc++'s `libstdcxx:rethrow(object, type)` probe sits (file
/// offset) and the cookie `cxx_rethrow` reads the object by: its operand's
/// pt_regs offset (the type operand is not used: for a rethrown
/// exception_ptr it is not a type). None when the library has no such
/// probe or passes the object in memory.
fn rethrow_usdt(libstdcxx: &ElfModule) -> Option<(u64, u64)> {
    use super::usdt::register_operand_offset;
    let probe = libstdcxx
        .usdt_probes()
        .into_iter()
        .find(|p| p.provider == "libstdcxx" && p.name == "rethrow")?;
    let object = register_operand_offset(probe.args.first()?)?;
    let offset = libstdcxx.vaddr_to_file_offset(probe.vaddr)?;
    Some((offset, object))
}

#[cfg(test)]
mod tests {
    /// Debian 12's libstdc++: __cxa_throw starts `endbr64; push %r13`, so
    /// its probe goes 4 bytes in, where the kernel emulates the push;
    /// std::terminate starts `endbr64; sub $8,%rsp`: at its entry.
    #[test]
    fn cxx_throw_probe_skips_endbr64_in_the_systems_libstdcxx() {
        let path = std::path::Path::new("/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
        let module = crate::symbolize::ElfModule::open(path, "libstdc++.so.6").expect("libstdc++");
        assert_eq!(super::emulated_entry_offset(&module, "__cxa_throw"), 4);
        assert_eq!(super::emulated_entry_offset(&module, "_ZSt9terminatev"), 0);
    }

    /// Debian 12's libstdc++ marks __cxa_rethrow's rethrow with an SDT
    /// probe whose operands are registers (`8@%rdx 8@%rax`): found, and
    /// its place is inside __cxa_rethrow.
    #[test]
    fn the_rethrow_probe_of_the_systems_libstdcxx_is_found() {
        let path = std::path::Path::new("/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
        let module = crate::symbolize::ElfModule::open(path, "libstdc++.so.6").expect("libstdc++");
        let (offset, cookie) = super::rethrow_usdt(&module).expect("libstdcxx:rethrow");
        assert_eq!(cookie, 96, "the object in rdx");
        let vaddr = module.file_offset_to_vaddr(offset).expect("mapped");
        let names: Vec<_> = module
            .lookup(vaddr, crate::symbolize::PcKind::Exact)
            .into_iter()
            .map(|l| l.function)
            .collect();
        assert!(
            names.iter().any(|f| f.as_deref() == Some("__cxa_rethrow")),
            "{names:?}"
        );
    }
}
