//! A tracing session: turns kernel records into contract records, keeps the
//! per-process state they need (memory maps, pending signal senders), feeds
//! the incident correlator and writes everything out.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    rc::Rc,
};

use anyhow::{Context as _, Result};
use aya::programs::uprobe::UProbeLinkId;
use tracer_common::{
    EventKind, ExecRecord, ExitRecord, ForkRecord, GO_DEFER_BITS_VALID, GO_DEFER_CALL_VALID,
    GO_PANIC_GOEXIT, GO_PANIC_RECOVERED, GO_STACK_FROM_SCHED, GoProbe, GoRecord, MAX_GO_BINARIES,
    MAX_STACK_DEPTH, SIGINFO_KERNEL, SIGINFO_NONE, SignalGenerateRecord, SignalRecord,
};

use crate::{
    golang::{self, GoBinary, value::Captured},
    incident::Correlator,
    output::Output,
    probes::{
        kernel::KernelProbes,
        records::{self, KernelRecord},
    },
    record::{
        Attach, Body, Clock, ExitStatus, GoFatal, GoGoexit, GoPanic, GoRecover, GoSigpanic, Record,
        Registers, SCHEMA, SignalEvent, SignalInfo,
    },
    signals,
    symbolize::{PcKind, Symbolizer, process::ProcessImage},
};

/// Probe names reported in `attach` records.
pub const PROBES: &[&str] = &[
    "tp_btf/signal_deliver",
    "tp_btf/signal_generate",
    "tp_btf/sched_process_exit",
    "tp_btf/sched_process_fork",
    "tp_btf/sched_process_exec",
];

/// Senders remembered while their signal is pending; bounded so a signal
/// storm at a process that never dequeues cannot grow it without end.
const MAX_PENDING_SENDERS: usize = 4096;
/// Stack copies waiting for their signal record (one per crashing thread).
const MAX_PENDING_STACKS: usize = 64;
/// Frames unwound from a stack copy at most.
const MAX_UNWIND_DEPTH: usize = 256;

#[derive(Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub incidents: u64,
    pub lost: u64,
    /// Crash stacks unwound from a stack copy and symbolized, and the time
    /// it took (for `-v` and the benchmark).
    pub crash_stacks: u64,
    pub crash_stack_time: std::time::Duration,
    /// Per incident: µs from its first event in the kernel to its line.
    pub latencies_us: Vec<u64>,
}

struct Sender {
    pid: u32,
    comm: String,
    code: i32,
}

pub struct Session {
    pub probes: KernelProbes,
    symbolizer: Symbolizer,
    images: HashMap<u32, ProcessImage>,
    senders: HashMap<(u32, i32), Sender>,
    correlator: Correlator,
    out: Output,
    clock: Clock,
    pub stats: Stats,
    /// Drops already reported, per record kind.
    kernel_lost_seen: [u64; EventKind::ALL.len()],
    exited: HashMap<u32, ExitStatus>,
    /// Processes whose fatal signal has been recorded: the kernel's per-thread
    /// group-exit deliveries that follow are the same news.
    fatal_seen: HashSet<u32>,
    /// Go binaries inspected, by (device, inode) of the file, with their
    /// layout slot in the kernel's GO_CONFIG map.
    go_binaries: HashMap<(u64, u64), (u32, Rc<GoBinary>)>,
    /// Go processes with probes attached.
    go_processes: HashMap<u32, GoProcess>,
    /// `-v`: notices about what was found and attached, on stderr.
    pub verbose: bool,
    /// The `_defer` chain (record, code pointer) of each goroutine's latest
    /// panic, to name the deferred function that recovers it.
    panic_defers: HashMap<(u32, u64), Vec<(u64, u64)>>,
    /// (pid, faulting pc) → the return address a frameless faulting
    /// function left on the stack, found in an earlier record's stack
    /// snapshot (sigpanic, gopanic): the fatal panic's records, taken far
    /// from that frame, reuse it.
    leaf_callers: HashMap<(u32, u64), u64>,
    /// Stack copies of crashing threads, until their signal record.
    stacks: HashMap<(u32, u32), records::StackSnapshot>,
    /// The daemon's selectors decided in userspace at exec ("every Go
    /// program", everything); comm is matched by the kernel.
    pub exec_select: Option<ExecSelect>,
    /// At most this many records per second per process are written and
    /// exported (incidents, exits and attaches always are); the rest are
    /// counted and reported as `lost`.
    pub max_records_per_sec: Option<u32>,
    rate: HashMap<u32, RateWindow>,
    /// The most files watched at once (the daemon's limit).
    pub max_watched_files: usize,
    /// `--redact`: masks user data in messages before output and export.
    pub redactor: crate::record::Redactor,
    /// Log pipelines and metrics (none for a plain `run`/`attach`).
    pub exporters: crate::export::Exporters,
    /// Cgroup v2 ids → paths.
    cgroups: crate::record::CgroupPaths,
    /// Processes to look at again after their exec (pid, when).
    relooks: Vec<(u32, std::time::Instant)>,
    /// Files watched (`attach --exe`, the daemon), as the kernel keys them.
    watched_files: HashSet<tracer_common::WatchedFile>,
    watched_paths: HashMap<tracer_common::WatchedFile, PathBuf>,
    /// Go probes placed once per watched file, for all its processes.
    go_file_links: HashMap<tracer_common::WatchedFile, UProbeLinkId>,
    /// Rust panics with a formatted message, per thread, held until std
    /// renders the message for the hook (the next record of that thread),
    /// or briefly if it never does (no hook output).
    pending_panics: HashMap<(u32, u32), (Record, std::time::Instant)>,
}

struct GoProcess {
    binary: Rc<GoBinary>,
    link: Option<UProbeLinkId>,
}

impl Session {
    pub fn new(probes: KernelProbes, out: Output) -> Self {
        Self {
            probes,
            symbolizer: Symbolizer::default(),
            images: HashMap::new(),
            senders: HashMap::new(),
            correlator: Correlator::default(),
            out,
            clock: Clock::new(),
            stats: Stats::default(),
            kernel_lost_seen: [0; EventKind::ALL.len()],
            pending_panics: HashMap::new(),
            watched_files: HashSet::new(),
            watched_paths: HashMap::new(),
            relooks: Vec::new(),
            cgroups: Default::default(),
            exporters: crate::export::Exporters::default(),
            redactor: Default::default(),
            exec_select: None,
            max_records_per_sec: None,
            rate: HashMap::new(),
            max_watched_files: usize::MAX,
            go_file_links: HashMap::new(),
            exited: HashMap::new(),
            fatal_seen: HashSet::new(),
            go_binaries: HashMap::new(),
            go_processes: HashMap::new(),
            verbose: false,
            panic_defers: HashMap::new(),
            leaf_callers: HashMap::new(),
            stacks: HashMap::new(),
        }
    }

    /// Starts tracing `pid`: the kernel filter first (so nothing it does from
    /// now on is missed), then its memory map and binaries.
    pub fn attach(&mut self, pid: u32, reason: &'static str, follow_forks: bool) -> Result<()> {
        self.attach_as(pid, reason, follow_forks, false)
    }

    /// As [`Self::attach`]; `by_exe`: the process runs a watched file (an
    /// exec into another file ends its tracing).
    pub fn attach_as(
        &mut self,
        pid: u32,
        reason: &'static str,
        follow_forks: bool,
        by_exe: bool,
    ) -> Result<()> {
        self.probes.trace_as(pid, follow_forks, by_exe)?;
        let image = match ProcessImage::snapshot(pid, &mut self.symbolizer) {
            Ok(image) => image,
            Err(err) => {
                self.probes.untrace(pid);
                return Err(err);
            }
        };
        self.images.insert(pid, image);
        self.attach_runtime(pid);
        self.emit_attach(pid, None, reason)
    }

    /// Traces every process that runs the file at `path` from its exec on
    /// (and the processes they fork), and returns the pids running it now
    /// (to attach to them). Go probes for it are placed once, for all its
    /// processes.
    pub fn watch(&mut self, path: &Path) -> Result<Vec<u32>> {
        if let Ok(key) = crate::probes::kernel::file_key(path)
            && self.watched_files.contains(&key)
        {
            return Ok(Vec::new());
        }
        if self.watched_files.len() >= self.max_watched_files {
            anyhow::bail!(
                "not watched: the limit of {} watched files is reached",
                self.max_watched_files
            );
        }
        let key = self.probes.watch_file(path, true)?;
        self.watched_files.insert(key);
        self.watched_paths.insert(key, path.to_path_buf());
        Ok(processes_running(key))
    }

    /// Stops tracing new processes of a watched file (running ones stay
    /// traced until they exit).
    pub fn unwatch(&mut self, key: tracer_common::WatchedFile) {
        self.probes.unwatch_file(key);
        self.watched_files.remove(&key);
        self.watched_paths.remove(&key);
        if let Some(link) = self.go_file_links.remove(&key) {
            self.probes.detach_go(link);
        }
    }

    /// The watched files and the paths they were watched by.
    pub fn watched(&self) -> Vec<(tracer_common::WatchedFile, PathBuf)> {
        self.watched_paths
            .iter()
            .map(|(k, p)| (*k, p.clone()))
            .collect()
    }

    /// Places the runtime probes a process needs (Go today). A failure is
    /// reported and the process stays traced at the kernel level.
    fn attach_runtime(&mut self, pid: u32) {
        // Gone already (a short-lived child, or a zombie): nothing to
        // attach to, nothing worth a warning; its exit record follows.
        if std::fs::read_link(format!("/proc/{pid}/exe")).is_err() {
            return;
        }
        // Rust panics, in its executable (std is linked in statically).
        if !self.go_processes.contains_key(&pid)
            && let Some((exe, open)) = self.images.get(&pid).and_then(|i| i.exe_module(pid))
            && let Some(offset) = exe.function_offset(|n| {
                n == "std::panicking::panic_with_hook"
                    || n.starts_with("std::panicking::rust_panic_with_hook")
            })
            && let Err(err) = self.probes.attach_rust(
                pid,
                &open,
                offset,
                exe.function_offset(is_format_payload_get),
            )
            && open.exists()
        {
            crate::output::warn(&format!("pid {pid}: Rust panics not traced: {err:#}"));
        }
        // C++ throws and std::terminate, in its libstdc++.
        if let Some((lib, key)) = self.images.get(&pid).and_then(|i| i.libstdcxx(pid))
            && let Err(err) = self.probes.follow_cxx(pid, &lib, key)
            && lib.exists()
        {
            crate::output::warn(&format!("pid {pid}: C++ exceptions not traced: {err:#}"));
        }
        // Libraries it dlopens later: followed from libc's dlopen return.
        if let Some((libc, key)) = self
            .images
            .get(&pid)
            .filter(|i| i.may_dlopen())
            .and_then(|i| i.libc(pid))
            && let Err(err) = self.probes.follow_dlopen(pid, &libc, key)
            // (A failure because the process exec'd meanwhile is no news.)
            && libc.exists()
        {
            crate::output::warn(&format!("pid {pid}: dlopen not followed: {err:#}"));
        }
        if let Some(old) = self.go_processes.remove(&pid)
            && let Some(link) = old.link
        {
            self.probes.detach_go(link);
        }
        match self.attach_go(pid) {
            Ok(Some(p)) => {
                self.go_processes.insert(pid, p);
            }
            Ok(None) => {}
            // (Unless it died or exec'd meanwhile: no news then.)
            Err(err) if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok() => {
                crate::output::warn(&format!("pid {pid}: Go probes not attached: {err:#}"))
            }
            Err(_) => {}
        }
    }

    fn attach_go(&mut self, pid: u32) -> Result<Option<GoProcess>> {
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let meta = std::fs::metadata(&exe).with_context(|| format!("stat {}", exe.display()))?;
        let key = (meta.dev(), meta.ino());
        let watched = crate::probes::kernel::file_key(&exe)
            .ok()
            .filter(|k| self.watched_files.contains(k));
        let (slot, binary) = match self.go_binaries.get(&key) {
            Some((slot, b)) => (*slot, Rc::clone(b)),
            None => {
                let Some(binary) = GoBinary::inspect(&exe)? else {
                    return Ok(None);
                };
                let slot = self.go_binaries.len() as u32;
                if slot >= MAX_GO_BINARIES {
                    anyhow::bail!("more than {MAX_GO_BINARIES} distinct Go binaries traced");
                }
                let layout = binary.layout.with_context(|| {
                    format!(
                        "no DWARF and no known runtime layout for {}",
                        binary.version
                    )
                })?;
                self.probes.set_go_config(slot, layout)?;
                if self.verbose {
                    crate::output::warn(&binary.layout_notice());
                }
                let binary = Rc::new(binary);
                self.go_binaries.insert(key, (slot, Rc::clone(&binary)));
                (slot, binary)
            }
        };
        let points: Vec<(GoProbe, u64)> =
            binary.points.iter().map(|&(p, _, off)| (p, off)).collect();
        let link = if points.is_empty() {
            None
        } else if let Some(file) = watched {
            // Once per watched file, for all its processes.
            if !self.go_file_links.contains_key(&file) {
                let link = self.probes.attach_go(None, &exe, slot, &points)?;
                self.go_file_links.insert(file, link);
            }
            None
        } else {
            Some(self.probes.attach_go(Some(pid), &exe, slot, &points)?)
        };
        Ok(Some(GoProcess { binary, link }))
    }

    fn emit_attach(&mut self, pid: u32, tid: Option<u32>, reason: &'static str) -> Result<()> {
        let (exe, debuginfo) = self.images.get(&pid).map_or((None, "none"), |i| {
            (i.exe.clone(), i.exe_debuginfo().as_str())
        });
        let mut probes: Vec<String> = PROBES.iter().map(|p| (*p).to_owned()).collect();
        let (runtime, runtime_version, module) = match self.go_processes.get(&pid) {
            Some(go) => {
                probes.extend(
                    go.binary
                        .points
                        .iter()
                        .map(|(_, name, _)| format!("uprobe/{name}")),
                );
                (
                    "go",
                    Some(go.binary.version.clone()),
                    go.binary.module.clone(),
                )
            }
            None => ("native", None, None),
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim_end().to_owned());
        let ts = self.clock.now_mono();
        let record = Record {
            schema: SCHEMA,
            kind: "attach",
            time: self.clock.rfc3339(ts),
            ts_ns: ts,
            pid: Some(pid),
            tid: tid.or(Some(pid)),
            comm,
            exe,
            goid: None,
            container: None,
            body: Body::Attach(Attach {
                runtime,
                runtime_version,
                module,
                debuginfo,
                probes,
                reason,
            }),
        };
        self.emit(record)
    }

    pub fn set_output(&mut self, out: Output) {
        self.out = out;
    }

    pub fn exit_status(&self, pid: u32) -> Option<ExitStatus> {
        self.exited.get(&pid).copied()
    }

    /// One raw ring-buffer record. Malformed records are counted and
    /// reported as lost, never fatal.
    pub fn handle_raw(&mut self, bytes: &[u8]) -> Result<()> {
        match records::decode(bytes) {
            Ok(rec) => self.handle(rec),
            Err(err) => self.emit_lost(1, format!("malformed record: {err}"), "unknown"),
        }
    }

    fn handle(&mut self, rec: KernelRecord) -> Result<()> {
        // Whatever else a process does next comes after its panic's message.
        if !self.pending_panics.is_empty()
            && let Some(pid) = match &rec {
                KernelRecord::RustPanicMessage(_) | KernelRecord::Stack(_) => None,
                KernelRecord::SignalGenerate(r) => Some(r.target_pid),
                other => Some(other.header().pid),
            }
        {
            self.flush_panics(|&(p, _), _| p == pid)?;
        }
        match rec {
            KernelRecord::SignalDeliver(r) => self.on_signal(&r),
            KernelRecord::SignalGenerate(r) => {
                self.on_signal_generate(&r);
                Ok(())
            }
            KernelRecord::Exit(r) => self.on_exit(&r),
            KernelRecord::Fork(r) => self.on_fork(&r),
            KernelRecord::Exec(r) => self.on_exec(&r),
            KernelRecord::Go(r) => self.on_go(&r),
            KernelRecord::Cxx(c) => self.on_cxx(&c),
            KernelRecord::RustPanic(p) => self.on_rust_panic(&p),
            KernelRecord::RustPanicMessage(m) => self.on_rust_panic_message(&m),
            KernelRecord::Dlopen(d) => {
                self.on_dlopen(&d);
                Ok(())
            }
            KernelRecord::Stack(s) => {
                self.on_stack(s);
                Ok(())
            }
        }
    }

    fn on_signal_generate(&mut self, r: &SignalGenerateRecord) {
        if self.senders.len() >= MAX_PENDING_SENDERS {
            self.senders.clear();
        }
        self.senders.insert(
            (r.target_pid, r.signo),
            Sender {
                pid: r.header.pid,
                comm: records::comm(&r.header),
                code: r.code,
            },
        );
    }

    /// A library was dlopen'ed: map it into the process's image now, from
    /// the path and load bias read at dlopen's return, so a crash in it is
    /// symbolized even if the process dies before we could read its maps.
    fn on_dlopen(&mut self, d: &tracer_common::DlopenRecord) {
        let pid = d.header.pid;
        let len = (d.path_len as usize).min(d.path.len());
        let path = String::from_utf8_lossy(&d.path[..len]).into_owned();
        if path.is_empty() {
            return;
        }
        if let Some(image) = self.images.get_mut(&pid)
            && let Err(err) = image.add_library(pid, &path, d.load_bias, &mut self.symbolizer)
            && self.verbose
        {
            crate::output::warn(&format!("pid {pid}: dlopen'ed {path}: {err:#}"));
        }
    }

    /// A crashing thread's stack copy: kept until its signal record (sent
    /// right after it) asks for it.
    fn on_stack(&mut self, s: records::StackSnapshot) {
        if self.stacks.len() >= MAX_PENDING_STACKS {
            self.stacks.clear();
        }
        self.stacks.insert((s.header.pid, s.header.tid), s);
    }

    /// A C++ throw (an `exception` record, with the throwing stack), or
    /// std::terminate (the thread's last throw was not caught).
    fn on_cxx(&mut self, r: &tracer_common::CxxRecord) -> Result<()> {
        let pid = r.header.pid;
        if r.probe == tracer_common::CXX_TERMINATE {
            self.correlator.uncaught(pid, r.header.tid);
            return Ok(());
        }
        let (frames, frames_truncated) = self.probe_stack(pid, r.header.tid, &r.regs);
        let image = self.images.get(&pid);
        let names: Vec<String> = r
            .types
            .iter()
            .map(|t| {
                let end = t.iter().position(|&b| b == 0).unwrap_or(t.len());
                String::from_utf8_lossy(&t[..end]).into_owned()
            })
            .take_while(|n| !n.is_empty())
            .collect();
        let value_type = names.first().map(|n| demangle_type(n));
        // std::runtime_error and std::logic_error keep their message in a
        // string right after the vtable pointer: what() returns it.
        let readable = names
            .iter()
            .any(|n| n == "St13runtime_error" || n == "St11logic_error");
        let what_len = (r.what_len as usize).min(r.what.len());
        let constant = names.first().and_then(|n| libstdcxx_constant_what(n));
        let (message, message_unavailable) = if readable {
            (
                Some(String::from_utf8_lossy(&r.what[..what_len]).into_owned()),
                None,
            )
        } else if let Some(what) = constant {
            (Some(what.to_owned()), None)
        } else {
            (
                None,
                Some(format!(
                    "what() of {} cannot be read without calling it",
                    value_type.as_deref().unwrap_or("this type")
                )),
            )
        };
        let record = self.kernel_record(
            &r.header,
            image.and_then(|i| i.exe.clone()),
            None,
            Body::Exception(crate::record::Exception {
                language: "c++",
                message,
                message_unavailable,
                value_type,
                location: None,
                frames,
                frames_truncated,
                suppressed: r.suppressed,
            }),
        );
        self.emit(record)
    }

    /// A Rust panic starts: an `exception` record (language "rust") with
    /// its message (string payloads), location and the panicking stack.
    fn on_rust_panic(&mut self, r: &tracer_common::RustPanicRecord) -> Result<()> {
        let pid = r.header.pid;
        let (frames, frames_truncated) = self.probe_stack(pid, r.header.tid, &r.regs);
        let image = self.images.get(&pid);
        // String literals the BPF side could not read (a page never
        // touched): from the binary's file.
        let from_file = |ptr: u64, size: u64, max: usize| {
            let len = usize::try_from(size).ok().filter(|&l| l > 0 && l <= max)?;
            image.and_then(|i| i.read_static(ptr, len))
        };
        let file_len = (r.file_len as usize).min(r.file.len());
        let file = if file_len > 0 {
            String::from_utf8_lossy(&r.file[..file_len]).into_owned()
        } else {
            from_file(r.file_ptr, r.file_size, 4096)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let location = (!file.is_empty()).then(|| format!("{file}:{}:{}", r.line, r.col));
        let static_msg = (r.msg_len == u32::MAX)
            .then(|| from_file(r.msg_ptr, r.msg_size, 4096))
            .flatten();
        let (message, message_unavailable) = match r.msg_len {
            u32::MAX if static_msg.is_some() => (
                static_msg.map(|b| String::from_utf8_lossy(&b).into_owned()),
                None,
            ),
            u32::MAX => (
                None,
                Some("formatted panic message: only the panic hook builds it".to_owned()),
            ),
            n => {
                let n = (n as usize).min(r.msg.len());
                (
                    Some(String::from_utf8_lossy(&r.msg[..n]).into_owned()),
                    None,
                )
            }
        };
        let record = self.kernel_record(
            &r.header,
            image.and_then(|i| i.exe.clone()),
            None,
            Body::Exception(crate::record::Exception {
                language: "rust",
                value_type: message.as_ref().map(|_| "&str".to_owned()),
                message,
                message_unavailable,
                location,
                frames,
                frames_truncated,
                suppressed: 0,
            }),
        );
        // Held back in case std renders a formatted message next, which then
        // wins over what the entry probe could read of the payload.
        let key = (pid, r.header.tid);
        self.flush_panics(|&k, _| k == key)?;
        self.pending_panics
            .insert(key, (record, std::time::Instant::now()));
        Ok(())
    }

    /// The formatted message of the panic this thread holds back.
    fn on_rust_panic_message(&mut self, m: &tracer_common::RustPanicMessageRecord) -> Result<()> {
        let Some((mut record, _)) = self.pending_panics.remove(&(m.header.pid, m.header.tid))
        else {
            return Ok(());
        };
        if let Body::Exception(e) = &mut record.body {
            let n = (m.msg_len as usize).min(m.msg.len());
            let mut text = String::from_utf8_lossy(&m.msg[..n]).into_owned();
            if (m.full_len as usize) > n {
                text.push('…');
            }
            e.message = Some(text);
            e.message_unavailable = None;
            e.value_type = Some("String".to_owned());
        }
        self.emit(record)
    }

    /// Emits the held-back panics that `which` selects, without a message.
    fn flush_panics(
        &mut self,
        which: impl Fn(&(u32, u32), &std::time::Instant) -> bool,
    ) -> Result<()> {
        let keys: Vec<(u32, u32)> = self
            .pending_panics
            .iter()
            .filter(|(k, (_, since))| which(k, since))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if let Some((record, _)) = self.pending_panics.remove(&key) {
                self.emit(record)?;
            }
        }
        Ok(())
    }

    /// Frames of a thread stopped at a probe (C++ throw, Rust panic), from
    /// the stack copy sent with it, and whether they are cut short.
    fn probe_stack(
        &mut self,
        pid: u32,
        tid: u32,
        regs: &tracer_common::Registers,
    ) -> (Vec<crate::symbolize::Frame>, bool) {
        let (pcs, walk_truncated) = self
            .unwind_copy(pid, tid, regs, &[regs.ip])
            .map_or((vec![regs.ip], true), |u| (u.pcs, u.truncated));
        let (frames, truncated) = self
            .images
            .get(&pid)
            .map(|i| i.symbolize_stack(&pcs))
            .unwrap_or_else(|| (Vec::new(), true));
        (frames, truncated || walk_truncated)
    }

    /// A thread's frames from the stack copy the kernel sent for it (CFI,
    /// frame pointers where there is none); `None` without a copy.
    fn unwind_copy(
        &mut self,
        pid: u32,
        tid: u32,
        regs: &tracer_common::Registers,
        known: &[u64],
    ) -> Option<crate::unwind::Unwound> {
        let copy = self.stacks.remove(&(pid, tid))?;
        self.ensure_image(pid, known);
        let image = self.images.get(&pid)?;
        let start = crate::unwind::Regs {
            rip: regs.ip,
            rsp: regs.sp,
            rbp: regs.bp,
            rbx: regs.bx,
            r12_15: [regs.r12, regs.r13, regs.r14, regs.r15],
        };
        let stack = crate::unwind::StackCopy {
            sp: copy.sp,
            hole: copy.hole,
            data: &copy.data,
        };
        Some(crate::unwind::unwind(
            image,
            start,
            &stack,
            MAX_UNWIND_DEPTH,
        ))
    }

    /// The crashing thread's frames: unwound with CFI from its stack copy
    /// when there is one, else the kernel's frame-pointer walk.
    fn signal_pcs(&mut self, r: &SignalRecord) -> (Vec<u64>, bool) {
        let depth = (r.stack_bytes as usize / 8).min(MAX_STACK_DEPTH);
        let fp: Vec<u64> = if depth > 0 {
            r.stack[..depth].to_vec()
        } else {
            vec![r.regs.ip]
        };
        let fp_truncated = depth == MAX_STACK_DEPTH;
        let pid = r.header.pid;
        // Go has frame pointers and no .eh_frame: its walk is the kernel's.
        if self.go_processes.contains_key(&pid) {
            self.stacks.remove(&(pid, r.header.tid));
            return (fp, fp_truncated);
        }
        match self.unwind_copy(pid, r.header.tid, &r.regs, &fp) {
            // The kernel's walk follows rbp even where it holds data, so
            // its length means nothing once CFI has been used.
            Some(u) if u.cfi_frames > 0 || u.pcs.len() >= fp.len() => (u.pcs, u.truncated),
            _ => (fp, fp_truncated),
        }
    }

    fn on_signal(&mut self, r: &SignalRecord) -> Result<()> {
        let pid = r.header.pid;
        let group_exit = r.group_exiting != 0 && r.code == SIGINFO_NONE;
        if group_exit && self.fatal_seen.contains(&pid) {
            return Ok(());
        }
        if group_exit || r.handler == 0 {
            self.fatal_seen.insert(pid);
        }
        let pending = self.senders.remove(&(pid, r.signo));
        // SIGKILL (and signals in an exiting process) arrive without siginfo:
        // the sender recorded at generation time fills in.
        let code = match (r.code, &pending) {
            (SIGINFO_NONE, Some(s)) => Some(s.code),
            (SIGINFO_NONE, None) => None,
            (c, _) => Some(c),
        };
        let (sender_pid, sender_comm) = match code {
            Some(c) if signals::sent_by_process(c) => {
                let pid_from_info =
                    (r.code != SIGINFO_NONE && r.sender_pid != 0).then_some(r.sender_pid);
                let sender_pid = pid_from_info.or(pending.as_ref().map(|s| s.pid));
                let comm = pending
                    .as_ref()
                    .filter(|s| Some(s.pid) == sender_pid)
                    .map(|s| s.comm.clone());
                (sender_pid, comm)
            }
            Some(SIGINFO_KERNEL) => (None, None),
            _ => (None, None),
        };
        let addr = match code {
            Some(c) if signals::is_fault(r.signo) && c > 0 && c != SIGINFO_KERNEL => {
                Some(format!("{:#x}", r.fault_addr))
            }
            _ => None,
        };
        let started = std::time::Instant::now();
        let had_copy = self.stacks.contains_key(&(pid, r.header.tid));
        let (stack, walk_truncated) = self.signal_pcs(r);
        self.ensure_image(pid, &stack);
        let image = self.images.get(&pid);
        let (frames, mut frames_truncated) = image
            .map(|i| i.symbolize_stack(&stack))
            .unwrap_or_else(|| (Vec::new(), true));
        if had_copy {
            self.stats.crash_stacks += 1;
            self.stats.crash_stack_time += started.elapsed();
        }
        frames_truncated |= walk_truncated;
        let record = self.kernel_record(
            &r.header,
            image.and_then(|i| i.exe.clone()),
            None,
            Body::Signal(Box::new(SignalEvent {
                signal: SignalInfo {
                    number: r.signo,
                    name: signals::display_name(r.signo),
                    code: code.and_then(|c| signals::code_name(r.signo, c).map(str::to_owned)),
                    addr,
                    sender_pid,
                    sender_comm,
                    disposition: match r.handler {
                        0 => "default",
                        1 => "ignored",
                        _ => "handler",
                    },
                },
                registers: Registers::from(&r.regs),
                frames,
                frames_truncated,
            })),
        );
        self.emit(record)
    }

    fn on_exit(&mut self, r: &ExitRecord) -> Result<()> {
        let pid = r.header.pid;
        if let Some(w) = self.rate.remove(&pid)
            && w.shed > 0
        {
            let limit = self.max_records_per_sec.unwrap_or(0);
            self.emit_lost(
                w.shed,
                format!("rate limit: pid {pid} over {limit} records/s"),
                "rate_limit",
            )?;
        }
        let exit = ExitStatus::from_wait_status(r.status);
        self.exited.insert(pid, exit);
        self.fatal_seen.remove(&pid);
        self.probes.detach_process(pid);
        if let Some(go) = self.go_processes.remove(&pid)
            && let Some(link) = go.link
        {
            self.probes.detach_go(link);
        }
        let image = self.images.remove(&pid);
        let record = self.kernel_record(
            &r.header,
            image.and_then(|i| i.exe),
            None,
            Body::Exit { exit },
        );
        self.emit(record)
    }

    fn on_fork(&mut self, r: &ForkRecord) -> Result<()> {
        // Until it execs, the child runs the parent's image.
        let child = r.child_pid;
        let image = match self.images.get(&r.header.pid) {
            Some(parent) => parent.for_child(),
            None => match ProcessImage::snapshot(child, &mut self.symbolizer) {
                Ok(i) => i,
                Err(_) => return Ok(()),
            },
        };
        self.images.insert(child, image);
        self.attach_runtime(child);
        self.emit_attach(child, None, "fork")
    }

    fn on_exec(&mut self, r: &ExecRecord) -> Result<()> {
        let pid = r.header.pid;
        if r.flags & tracer_common::EXEC_CANDIDATE != 0 {
            return self.on_exec_candidate(r);
        }
        // The old program's probes are gone with its memory.
        self.probes.detach_process(pid);
        if r.flags & tracer_common::EXEC_DROPPED != 0 {
            // Traced for the file it ran; it runs another one now.
            self.images.remove(&pid);
            if let Some(go) = self.go_processes.remove(&pid)
                && let Some(link) = go.link
            {
                self.probes.detach_go(link);
            }
            if self.verbose {
                crate::output::warn(&format!(
                    "pid {pid} exec'd a file not watched: no longer traced"
                ));
            }
            return Ok(());
        }
        match ProcessImage::snapshot(pid, &mut self.symbolizer) {
            Ok(mut image) => {
                // The kernel's view at the exec, if /proc was already gone
                // for this part (the process exiting meanwhile).
                if image.container.is_none() {
                    image.container = self.container_from_exec(r);
                }
                self.images.insert(pid, image);
            }
            // Gone already (it crashed at once, say): the program's code
            // from the file it exec'd, placed where the kernel said.
            Err(_) => {
                if let Some(mut image) = self.image_from_exec(r) {
                    image.container = self.container_from_exec(r);
                    self.images.insert(pid, image);
                    return self.emit_attach(pid, Some(r.header.tid), "exec");
                }
                return Ok(());
            }
        }
        // At exec, ld.so has not mapped the program's libraries yet: look
        // again shortly (for libc's and libstdc++'s probes, and frames).
        let now = std::time::Instant::now();
        for after in RELOOK_AFTER_EXEC {
            self.relooks.push((pid, now + after));
        }
        self.attach_runtime(pid);
        self.emit_attach(pid, Some(r.header.tid), "exec")
    }

    /// An untraced process exec'd: the daemon's selectors decide whether
    /// to trace it (and, through its file, every later process of it).
    fn on_exec_candidate(&mut self, r: &ExecRecord) -> Result<()> {
        let pid = r.header.pid;
        let Some(select) = self.exec_select.as_mut() else {
            return Ok(());
        };
        // Where it runs (per process, not per file: never remembered).
        if !select.cgroups.is_empty() || !select.containers.is_empty() {
            let cgroup = self.cgroups.path_of(r.cgroup_id);
            if let Some(path) = cgroup.as_deref()
                && select.matches_place(path)
            {
                // Not by file: this program elsewhere is someone else's.
                if self.attach_as(pid, "exec", true, false).is_err() {
                    self.probes.untrace(pid);
                }
                // Its cgroup as the kernel saw it at the exec (what selected
                // it), where /proc did not say.
                let known = self.container_from_exec(r);
                if let Some(image) = self.images.get_mut(&pid)
                    && image.container.as_ref().is_none_or(|c| c.cgroup.is_none())
                {
                    image.container = known;
                }
                return Ok(());
            }
        }
        let Some(select) = self.exec_select.as_mut() else {
            return Ok(());
        };
        if !select.go && !select.all {
            return Ok(());
        }
        let chosen = match select.decided.get(&r.file) {
            Some(&d) => d,
            None if select.all => {
                select.decided.insert(r.file, true);
                true
            }
            None => {
                let exe = PathBuf::from(format!("/proc/{pid}/exe"));
                match crate::golang::GoBinary::inspect(&exe) {
                    Ok(go) => {
                        select.decided.insert(r.file, go.is_some());
                        go.is_some()
                    }
                    // Gone before its file could be read: undecided (not
                    // remembered as "not Go" for the file's next processes).
                    Err(_) => false,
                }
            }
        };
        if !chosen {
            return Ok(());
        }
        // Trace it now (it runs already) and its file's next processes
        // from their exec on.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .unwrap_or_else(|_| PathBuf::from(format!("/proc/{pid}/exe")));
        if !self.watched_files.contains(&r.file)
            && let Err(err) = self.watch(&PathBuf::from(format!("/proc/{pid}/exe")))
        {
            if self.verbose {
                crate::output::warn(&format!("{}: {err:#}", exe.display()));
            }
        } else if let Some(p) = self.watched_paths.get_mut(&r.file) {
            *p = exe;
        }
        if self.attach_as(pid, "exec", true, true).is_err() {
            // Gone already: nothing to trace.
            self.probes.untrace(pid);
        }
        Ok(())
    }

    /// Cgroup, container id and namespace pid from an exec record (the
    /// process may be gone from /proc already).
    fn container_from_exec(
        &mut self,
        r: &ExecRecord,
    ) -> Option<std::sync::Arc<crate::record::Container>> {
        let cgroup = self.cgroups.path_of(r.cgroup_id);
        let c = crate::record::Container {
            container_id: cgroup.as_deref().and_then(crate::record::container_id),
            cgroup,
            ns_pid: (r.ns_pid != 0 && r.ns_pid != r.header.pid).then_some(r.ns_pid),
        };
        (c != crate::record::Container::default()).then(|| std::sync::Arc::new(c))
    }

    /// A process's image from its exec record alone: the exec'd file
    /// (watched: its path is known; else the path it exec'd, on the host),
    /// if it is the same file (device and inode), at the kernel's address.
    fn image_from_exec(&mut self, r: &ExecRecord) -> Option<ProcessImage> {
        let n = (r.filename_len as usize).min(r.filename.len());
        let exec_path = String::from_utf8_lossy(&r.filename[..n]).into_owned();
        let candidates = self
            .watched_paths
            .get(&r.file)
            .cloned()
            .into_iter()
            .chain(std::iter::once(PathBuf::from(&exec_path)));
        for path in candidates {
            if crate::probes::kernel::file_key(&path).is_ok_and(|k| k == r.file)
                && let Ok(image) = ProcessImage::from_exec(
                    &path,
                    &path.to_string_lossy(),
                    r.start_code,
                    r.end_code,
                    &mut self.symbolizer,
                )
            {
                return Some(image);
            }
        }
        None
    }

    /// Re-reads the maps of processes that exec'd a moment ago and places
    /// the probes their libraries need.
    fn relook_due(&mut self) {
        let now = std::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.relooks.drain(..).partition(|&(_, t)| t <= now);
        self.relooks = later;
        for (pid, _) in due {
            if !self.images.contains_key(&pid) {
                continue; // exited or dropped meanwhile
            }
            if let Ok(mut image) = ProcessImage::snapshot(pid, &mut self.symbolizer)
                && self.images.get(&pid).is_none_or(|old| {
                    // Not a worse view: a process exiting meanwhile
                    // keeps its maps a moment longer than its files.
                    image.mapping_count() >= old.mapping_count()
                        && image.module_count() >= old.module_count()
                })
            {
                // What was known of it stays known (a dying process's
                // /proc/PID/status may be gone already).
                if image.container.is_none() {
                    image.container = self.images.get(&pid).and_then(|old| old.container.clone());
                }
                self.images.insert(pid, image);
                self.attach_runtime(pid);
            }
        }
    }

    fn on_go(&mut self, r: &GoRecord) -> Result<()> {
        let pid = r.header.pid;
        let Some(probe) = GoProbe::from_u32(r.probe) else {
            return self.emit_lost(1, format!("unknown Go probe {}", r.probe), "go");
        };
        // [pc in the runtime function, its caller (from [rsp]), then the
        // frame-pointer walk, which starts at the caller's caller].
        let depth = (r.stack_bytes as usize / 8).min(tracer_common::MAX_STACK_DEPTH);
        let walked = &r.stack[..depth];
        let stack = if r.flags & GO_STACK_FROM_SCHED != 0 {
            self.sched_stack(pid, walked)
        } else {
            // Kernels since 6.12 add the caller themselves for a probe on
            // `push rbp`; older ones do not.
            let mut stack = Vec::with_capacity(depth + 1);
            stack.push(r.regs.ip);
            if r.return_address != 0 && walked.get(1) != Some(&r.return_address) {
                stack.push(r.return_address);
            }
            stack.extend(walked.iter().skip(1));
            stack
        };
        self.ensure_image(pid, &stack);
        let (pcs, leaf_callers) = self.go_frame_pcs(
            pid,
            &stack,
            &r.stack_snapshot,
            r.flags & GO_STACK_FROM_SCHED == 0,
        );
        if self.leaf_callers.len() >= MAX_PENDING_SENDERS {
            self.leaf_callers.clear();
        }
        for (pc, ret) in leaf_callers {
            self.leaf_callers.insert((pid, pc), ret);
        }
        let image = self.images.get(&pid);
        let frames = image.map(|i| i.symbolize_pcs(&pcs).0).unwrap_or_default();
        let exe = image.and_then(|i| i.exe.clone());
        let string_len = (r.string_len as usize).min(r.string.len());
        let text = &r.string[..string_len];
        let body = match probe {
            GoProbe::Gopanic => {
                let chain: Vec<(u64, u64)> = r
                    .defers
                    .as_chunks::<2>()
                    .0
                    .iter()
                    .take_while(|p| p[0] != 0)
                    .map(|p| (p[0], p[1]))
                    .collect();
                if self.panic_defers.len() >= MAX_PENDING_SENDERS {
                    self.panic_defers.clear();
                }
                self.panic_defers.insert((pid, r.goid), chain);
                let (message, value_type) = self.describe_panic_value(pid, r, text);
                Body::Panic(GoPanic {
                    message,
                    value_type,
                    frames,
                })
            }
            GoProbe::Throw | GoProbe::Fatal => {
                let mut message = String::from_utf8_lossy(text).into_owned();
                if r.string_full_len > string_len as u64 {
                    message.push('…');
                }
                Body::Fatal(GoFatal {
                    message,
                    source: if probe == GoProbe::Throw {
                        "throw"
                    } else {
                        "fatal"
                    },
                    recovered: false,
                    frames,
                    on_system_stack: r.on_system_stack != 0,
                })
            }
            // A Goexit is in the panic chain but the runtime prints nothing for it.
            GoProbe::Printpanics if r.flags & GO_PANIC_GOEXIT != 0 => return Ok(()),
            GoProbe::Printpanics => {
                let (message, _) = self.describe_panic_value(pid, r, text);
                Body::Fatal(GoFatal {
                    message,
                    source: "panic",
                    recovered: r.flags & GO_PANIC_RECOVERED != 0,
                    frames,
                    on_system_stack: r.on_system_stack != 0,
                })
            }
            GoProbe::Recovery => {
                let recovered_by = self.recovering_function(pid, r);
                Body::Recover(GoRecover {
                    recovered_by,
                    frames,
                })
            }
            GoProbe::Sigpanic => {
                // arg0 = g.sig; value = [sigcode0, sigcode1, sigpc].
                let signo = i32::try_from(r.arg0).unwrap_or(0);
                let words: Vec<u64> = le_words(&r.value).take(3).collect();
                let (code, addr, fault_pc) = match words[..] {
                    [c, a, p] => (c as i64 as i32, a, p),
                    _ => (0, 0, 0),
                };
                Body::Sigpanic(GoSigpanic {
                    signal: SignalInfo {
                        number: signo,
                        name: signals::display_name(signo),
                        code: signals::code_name(signo, code).map(str::to_owned),
                        addr: signals::is_fault(signo).then(|| format!("{addr:#x}")),
                        sender_pid: None,
                        sender_comm: None,
                        disposition: "handler",
                    },
                    fault_pc: format!("{fault_pc:#x}"),
                    frames,
                })
            }
            GoProbe::Goexit => Body::Goexit(GoGoexit { frames }),
            // Kept in the kernel, never sent.
            GoProbe::DeferCall => return Ok(()),
        };
        // Goroutine ids start at 1; 0 means no user goroutine (e.g. the
        // scheduler found a deadlock on the system stack).
        let record = self.kernel_record(&r.header, exe, (r.goid != 0).then_some(r.goid), body);
        self.emit(record)
    }

    /// A goroutine's stack walked from its saved context ([sched.pc, word at
    /// sched.sp, frame-pointer chain]): the word at sp is the caller's return
    /// address only when the goroutine stopped in a prologue's morestack call
    /// (stack overflow), before its own frame existed.
    fn sched_stack(&self, pid: u32, walked: &[u64]) -> Vec<u64> {
        let bias = self
            .images
            .get(&pid)
            .and_then(|i| i.exe_load_bias())
            .unwrap_or(0);
        let in_prologue = match (walked.first(), self.go_processes.get(&pid)) {
            (Some(&pc), Some(go)) => go.binary.returns_from_morestack(pc.wrapping_sub(bias)),
            _ => false,
        };
        walked
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 1 || in_prologue)
            .map(|(_, &pc)| pc)
            .collect()
    }

    /// The pcs of a goroutine's stack as the Go runtime's traceback walks
    /// them: autogenerated wrappers dropped (unless they called a panic
    /// function), and the frame a `sigpanic` was injected above looked up at
    /// its exact pc (the faulting instruction), not as a return address.
    fn go_frame_pcs(
        &self,
        pid: u32,
        stack: &[u64],
        snapshot: &[u8],
        first_is_exact: bool,
    ) -> (Vec<(u64, PcKind)>, LeafCallers) {
        let kind_at = |i: usize| {
            if i == 0 && first_is_exact {
                PcKind::Exact
            } else {
                PcKind::ReturnAddress
            }
        };
        let binary = self.go_processes.get(&pid).map(|go| &go.binary);
        let table = binary.and_then(|b| b.pclntab.as_ref());
        let (Some(binary), Some(table)) = (binary, table) else {
            let pcs = stack
                .iter()
                .enumerate()
                .map(|(i, &pc)| (pc, kind_at(i)))
                .collect();
            return (pcs, Vec::new());
        };
        let bias = self
            .images
            .get(&pid)
            .and_then(|i| i.exe_load_bias())
            .unwrap_or(0);
        let mut out = Vec::with_capacity(stack.len());
        let mut found = Vec::new();
        let mut callee: Option<golang::pclntab::FuncInfo> = None;
        for (i, &pc) in stack.iter().enumerate() {
            let after_sigpanic = callee
                .as_ref()
                .is_some_and(|c| c.name == "runtime.sigpanic");
            let kind = if after_sigpanic {
                PcKind::Exact
            } else {
                kind_at(i)
            };
            let lookup = pc.wrapping_sub(bias);
            let func = table.find(if kind == PcKind::Exact {
                lookup
            } else {
                lookup.wrapping_sub(1)
            });
            if let Some(f) = &func
                && i > 0
                && table.hides(f, callee.as_ref())
            {
                callee = func;
                continue;
            }
            out.push((pc, kind));
            // A fault in a function without a frame pointer: sigpanic's
            // frame links straight to the caller's caller. The runtime
            // pushed the faulting pc where the function's return address
            // sits right above it; take that from the stack snapshot.
            if after_sigpanic
                && let Some(f) = &func
                && !binary.frame_pointer_set(f.entry, pc.wrapping_sub(bias))
                && let Some(ret) =
                    word_after(snapshot, pc).or_else(|| self.leaf_callers.get(&(pid, pc)).copied())
                && stack.get(i + 1) != Some(&ret)
            {
                out.push((ret, PcKind::ReturnAddress));
                found.push((pc, ret));
            }
            callee = func;
        }
        (out, found)
    }

    /// The deferred function that recovered, from the open-coded defer
    /// state captured at runtime.recovery (Go 1.22+): the runtime runs a
    /// frame's deferred calls from the highest slot down, clearing each bit
    /// before the call, so the one that just returned and recovered is the
    /// lowest filled slot above the bits still set. Defers kept in heap
    /// records (in loops, or Go 1.21) leave no trace: then it is unknown.
    fn recovering_function(&mut self, pid: u32, r: &GoRecord) -> Option<crate::symbolize::Frame> {
        let chain = self.panic_defers.remove(&(pid, r.goid));
        let pc = if r.flags & GO_DEFER_BITS_VALID != 0 {
            let bits = (r.flags & 0xff) as u8;
            let code: Vec<u64> = le_words(&r.value).collect();
            let above = if bits == 0 {
                0
            } else {
                8 - bits.leading_zeros() as usize
            };
            (above..8).map(|i| code[i]).find(|&pc| pc != 0)?
        } else {
            // A deferred call kept in a _defer record: the runtime popped
            // it before the call, so it is the record just before the
            // current head in the chain seen when the panic started.
            let popped_record = chain.and_then(|chain| {
                let head = r.defers[0];
                let popped = match chain.iter().position(|&(d, _)| d == head) {
                    Some(k) => k,
                    None if head == 0 || chain.len() < tracer_common::GO_DEFER_RECORDS => {
                        chain.len()
                    }
                    None => return None,
                };
                Some(chain.get(popped.checked_sub(1)?)?.1)
            });
            // Go 1.21, open-coded defers (no record was popped): the last
            // deferred call runtime.deferCallSave ran for this goroutine.
            let last_call = (r.flags & GO_DEFER_CALL_VALID != 0)
                .then(|| le_words(&r.value).next())
                .flatten();
            popped_record.or(last_call)?
        };
        if pc == 0 {
            return None;
        }
        let image = self.images.get(&pid)?;
        let (frames, _) = image.symbolize_pcs(&[(pc, PcKind::Exact)]);
        frames.into_iter().last()
    }

    /// (message, value_type) for a gopanic record, from the binary's type
    /// metadata and the bytes captured at the probe.
    fn describe_panic_value(
        &self,
        pid: u32,
        r: &GoRecord,
        text: &[u8],
    ) -> (String, Option<String>) {
        let Some(go) = self.go_processes.get(&pid) else {
            return (String::from_utf8_lossy(text).into_owned(), None);
        };
        let bias = self
            .images
            .get(&pid)
            .and_then(|i| i.exe_load_bias())
            .unwrap_or(0);
        let binary = &go.binary;
        let type_vaddr = r.arg0.wrapping_sub(bias);
        let type_name = binary.type_name(type_vaddr);
        let type_name_at = |t: u64| binary.type_name(t.wrapping_sub(bias));
        let captured = Captured {
            type_name: type_name.as_deref(),
            kind: binary.type_kind(type_vaddr),
            value: &r.value,
            string: text,
            string_full_len: r.string_full_len,
            type_name_at: &type_name_at,
        };
        let message = golang::value::message(&captured).unwrap_or_else(|| match &type_name {
            Some(t) => format!("({t}) {:#x}", r.arg1),
            None => format!("(?) {:#x}", r.arg1),
        });
        (message, type_name)
    }

    /// A snapshot of `pid` that covers the stack's pcs: taken anew when the
    /// process mapped code since the last one (dlopen) and is still alive.
    fn ensure_image(&mut self, pid: u32, stack: &[u64]) {
        let stale = self
            .images
            .get(&pid)
            .is_none_or(|image| !stack.iter().take(1).all(|&pc| image.covers(pc)));
        if stale && let Ok(image) = ProcessImage::snapshot(pid, &mut self.symbolizer) {
            self.images.insert(pid, image);
        }
    }

    /// Reports records the kernel dropped since the last call, one `lost`
    /// record per kind of record dropped.
    pub fn poll_lost(&mut self) -> Result<()> {
        if !self.relooks.is_empty() {
            self.relook_due();
        }
        let shed: Vec<(u32, u64)> = self
            .rate
            .iter_mut()
            .filter(|(_, w)| w.shed > 0)
            .map(|(pid, w)| (*pid, std::mem::take(&mut w.shed)))
            .collect();
        for (pid, count) in shed {
            let limit = self.max_records_per_sec.unwrap_or(0);
            self.emit_lost(
                count,
                format!("rate limit: pid {pid} over {limit} records/s"),
                "rate_limit",
            )?;
        }
        for (sink, count) in self.exporters.new_drops() {
            self.emit_lost(
                count,
                format!("not exported: {sink} (queue full or unreachable)"),
                "export",
            )?;
        }
        if let Some(m) = &self.exporters.metrics {
            use std::sync::atomic::Ordering::Relaxed;
            m.traced_processes.store(self.images.len() as u64, Relaxed);
            m.watched_files
                .store(self.watched_files.len() as u64, Relaxed);
            m.crash_stacks.store(self.stats.crash_stacks, Relaxed);
            m.crash_stack_us
                .store(self.stats.crash_stack_time.as_micros() as u64, Relaxed);
        }
        self.flush_panics(|_, since| since.elapsed() > PANIC_MESSAGE_WAIT)?;
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let total = self.probes.lost_count(kind)?;
            if total > self.kernel_lost_seen[i] {
                let delta = total - self.kernel_lost_seen[i];
                self.kernel_lost_seen[i] = total;
                self.emit_lost(delta, "ring buffer full".to_owned(), lost_kind_name(kind))?;
            }
        }
        Ok(())
    }

    fn emit_lost(&mut self, count: u64, reason: String, event: &'static str) -> Result<()> {
        self.stats.lost += count;
        let ts = self.clock.now_mono();
        let record = Record {
            schema: SCHEMA,
            kind: "lost",
            time: self.clock.rfc3339(ts),
            ts_ns: ts,
            pid: None,
            tid: None,
            comm: None,
            exe: None,
            goid: None,
            container: None,
            body: Body::Lost {
                count,
                reason,
                event,
            },
        };
        self.out.emit(&record)?;
        self.exporters.export(&record)
    }

    fn emit(&mut self, mut record: Record) -> Result<()> {
        debug_assert_eq!(record.kind, record.body.kind());
        if !self.redactor.is_empty() {
            self.redactor.apply(&mut record);
        }
        if record.container.is_none()
            && let Some(image) = record.pid.and_then(|p| self.images.get(&p))
        {
            record.container = image.container.clone();
        }
        if !matches!(record.body, Body::Attach(_)) {
            self.stats.events += 1;
        }
        if self.over_rate(&record) {
            // Shed from the output, still part of its incident.
            for incident in self.correlator.observe(&record) {
                self.stats.incidents += 1;
                self.out.emit(&incident)?;
                self.exporters.export(&incident)?;
            }
            return Ok(());
        }
        self.out.emit(&record)?;
        self.exporters.export(&record)?;
        for incident in self.correlator.observe(&record) {
            self.stats.incidents += 1;
            self.out.emit(&incident)?;
            self.exporters.export(&incident)?;
            self.note_latency(&incident);
        }
        Ok(())
    }

    /// Crash-to-record latency: from the kernel's timestamp of the story's
    /// first event to the incident written (for `-v` and the benchmark).
    fn note_latency(&mut self, incident: &Record) {
        if let Body::Incident(inc) = &incident.body
            && let Some(first) = inc.events.first()
            && self.stats.latencies_us.len() < 100_000
        {
            let us = self.clock.now_mono().saturating_sub(first.ts_ns) / 1000;
            self.stats.latencies_us.push(us);
        }
    }

    /// Whether `record` exceeds its process's records-per-second limit.
    fn over_rate(&mut self, record: &Record) -> bool {
        let (Some(limit), Some(pid)) = (self.max_records_per_sec, record.pid) else {
            return false;
        };
        if matches!(record.kind, "incident" | "exit" | "attach" | "lost") {
            return false;
        }
        let now = std::time::Instant::now();
        let w = self.rate.entry(pid).or_insert(RateWindow {
            start: now,
            count: 0,
            shed: 0,
        });
        if now.duration_since(w.start) >= std::time::Duration::from_secs(1) {
            w.start = now;
            w.count = 0;
        }
        w.count += 1;
        if w.count > limit {
            w.shed += 1;
            return true;
        }
        false
    }

    /// A contract record for a kernel record's header (kind from `body`).
    fn kernel_record(
        &self,
        h: &tracer_common::Header,
        exe: Option<String>,
        goid: Option<u64>,
        body: Body,
    ) -> Record {
        Record {
            schema: SCHEMA,
            kind: body.kind(),
            time: self.clock.rfc3339(h.ts_ns),
            ts_ns: h.ts_ns,
            pid: Some(h.pid),
            tid: Some(h.tid),
            comm: Some(records::comm(h)),
            exe,
            goid,
            container: None,
            body,
        }
    }

    /// Work to do when no record is waiting: parsing DWARF ahead of the
    /// first crash.
    pub fn has_idle_work(&self) -> bool {
        self.symbolizer.has_cold_modules()
    }

    pub fn idle_step(&mut self) {
        self.symbolizer.warm();
    }

    pub fn summary(&self) -> String {
        let mut hits = if self.verbose && !self.go_binaries.is_empty() {
            format!(", {} Go probe hits", self.probes.go_probe_hits())
        } else {
            String::new()
        };
        if self.verbose && self.stats.crash_stacks > 0 {
            hits.push_str(&format!(
                ", {} crash stacks unwound and symbolized in {} us",
                self.stats.crash_stacks,
                self.stats.crash_stack_time.as_micros()
            ));
        }
        if self.verbose && !self.stats.latencies_us.is_empty() {
            let mut l = self.stats.latencies_us.clone();
            l.sort_unstable();
            let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
            hits.push_str(&format!(
                ", crash-to-incident latency p50 {} us p99 {} us",
                at(0.5),
                at(0.99)
            ));
        }
        if self.verbose {
            hits.push_str(&format!(
                ", DWARF of {} binaries parsed ahead in {} ms",
                self.symbolizer.warmed_modules,
                self.symbolizer.warm_time.as_millis()
            ));
        }
        format!(
            "crashtrace: {} events, {} incidents{hits}, {} lost events",
            self.stats.events, self.stats.incidents, self.stats.lost
        )
    }

    /// For an error path: whatever was written, flush it.
    /// Lets the exporters deliver what they hold (at most `limit`), then
    /// reports what they could not, as `lost` records in the output.
    pub async fn close_exporters(&mut self, limit: std::time::Duration) -> Result<()> {
        let mut exporters = std::mem::take(&mut self.exporters);
        exporters.close(limit).await;
        for (sink, count) in exporters.new_drops() {
            self.emit_lost(
                count,
                format!("not exported: {sink} (queue full or unreachable)"),
                "export",
            )?;
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<()> {
        self.flush_panics(|_, _| true)?;
        self.poll_lost().context("reading drop counters")
    }
}

/// The daemon's exec-time selectors.
#[derive(Default)]
pub struct ExecSelect {
    /// Cgroup path patterns: a process in a matching cgroup or below it.
    pub cgroups: Vec<glob::Pattern>,
    /// Container id prefixes.
    pub containers: Vec<String>,
    pub go: bool,
    pub all: bool,
    /// Files already judged (file-wide selectors only).
    pub decided: HashMap<tracer_common::WatchedFile, bool>,
}

impl ExecSelect {
    /// A cgroup path selected by a pattern (it or an ancestor matches) or
    /// holding a selected container.
    pub fn matches_place(&self, cgroup: &str) -> bool {
        let mut at = cgroup;
        loop {
            if self.cgroups.iter().any(|p| p.matches(at)) {
                return true;
            }
            match at.rfind('/') {
                Some(0) | None => break,
                Some(i) => at = &at[..i],
            }
        }
        crate::record::container_id(cgroup)
            .is_some_and(|id| self.containers.iter().any(|c| id.starts_with(c.as_str())))
    }
}

struct RateWindow {
    start: std::time::Instant,
    count: u32,
    shed: u64,
}

/// When to read an exec'd process's maps again (its libraries are mapped
/// by ld.so after the exec; a slow start gets a second look).
const RELOOK_AFTER_EXEC: [std::time::Duration; 2] = [
    std::time::Duration::from_millis(20),
    std::time::Duration::from_millis(1000),
];

/// The processes whose executable is the file `key` names.
fn processes_running(key: tracer_common::WatchedFile) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            crate::probes::kernel::file_key(Path::new(&format!("/proc/{pid}/exe")))
                .is_ok_and(|k| k == key)
        })
        .collect()
}

/// How long a Rust panic waits for its formatted message when nothing else
/// happens in its process (std renders it right after, unless no hook prints).
const PANIC_MESSAGE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// std's `<…FormatStringPayload as core::panic::PanicPayload>::get` (its
/// module moved between releases; legacy mangling may append a hash).
fn is_format_payload_get(name: &str) -> bool {
    let name = match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    };
    name.ends_with("FormatStringPayload as core::panic::PanicPayload>::get")
}

/// What a dropped record would have become (the `event` field of `lost`).
fn lost_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::SignalDeliver => "signal",
        EventKind::SignalGenerate => "signal_sender",
        EventKind::Exit => "exit",
        EventKind::Fork => "fork",
        EventKind::Exec => "exec",
        EventKind::Go => "go",
        EventKind::Stack => "stack",
        EventKind::Dlopen => "dlopen",
        EventKind::Cxx => "exception",
        EventKind::RustPanic => "rust_panic",
        EventKind::RustPanicMessage => "rust_panic_message",
    }
}

/// Little-endian 64-bit words of `bytes` (a trailing partial word dropped).
fn le_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes
        .as_chunks::<8>()
        .0
        .iter()
        .map(|w| u64::from_le_bytes(*w))
}

/// In a stack snapshot, the word right after the first slot holding `value`.
/// (faulting pc, return address) pairs recovered from a stack snapshot.
type LeafCallers = Vec<(u64, u64)>;

fn word_after(snapshot: &[u8], value: u64) -> Option<u64> {
    let words: Vec<u64> = le_words(snapshot).collect();
    let i = words.iter().position(|&w| w == value)?;
    words.get(i + 1).copied().filter(|&w| w != 0)
}

/// A C++ type as `type_info::name()` spells it (mangled, without `_Z`),
/// demangled: "St13runtime_error" → "std::runtime_error".
/// What libstdc++'s stateless exception classes return from what(): a
/// constant per class, so no call is needed (only for the exact type: a
/// subclass may override it).
fn libstdcxx_constant_what(mangled: &str) -> Option<&'static str> {
    Some(match mangled {
        "St9bad_alloc" => "std::bad_alloc",
        "St20bad_array_new_length" => "std::bad_array_new_length",
        "St8bad_cast" => "std::bad_cast",
        "St10bad_typeid" => "std::bad_typeid",
        "St13bad_exception" => "std::bad_exception",
        "St9exception" => "std::exception",
        "St17bad_function_call" => "bad_function_call",
        "St12bad_weak_ptr" => "bad_weak_ptr",
        "St19bad_optional_access" => "bad optional access",
        _ => return None,
    })
}

fn demangle_type(mangled: &str) -> String {
    let full = format!("_ZTS{mangled}");
    let text = addr2line::demangle_auto(full.as_str().into(), None);
    text.strip_prefix("typeinfo name for ")
        .map(str::to_owned)
        .unwrap_or_else(|| mangled.to_owned())
}

#[cfg(test)]
mod select_tests {
    use super::ExecSelect;

    #[test]
    fn cgroup_patterns_match_the_cgroup_or_an_ancestor_and_containers_by_prefix() {
        let id = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
        let s = ExecSelect {
            cgroups: vec![
                glob::Pattern::new("/system.slice/app.service").unwrap(),
                glob::Pattern::new("/kubepods.slice/*/pod-web*").unwrap(),
            ],
            containers: vec!["4f1c2a3b5d6e".into()],
            ..Default::default()
        };
        assert!(s.matches_place("/system.slice/app.service"));
        assert!(s.matches_place("/system.slice/app.service/worker"));
        assert!(!s.matches_place("/system.slice/app.service2"));
        assert!(s.matches_place("/kubepods.slice/burstable/pod-web-7/ctr"));
        assert!(!s.matches_place("/kubepods.slice/burstable/pod-db-1"));
        assert!(s.matches_place(&format!("/system.slice/docker-{id}.scope")));
        assert!(!s.matches_place("/user.slice/user-0.slice/session-1.scope"));
    }
}
