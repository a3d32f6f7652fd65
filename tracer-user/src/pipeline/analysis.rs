//! The analysis thread: owns what turns kernel records into the contract's
//! records — processes' images (as process work built them), stack copies,
//! the runtime decoders, the incident correlator, redaction and rate
//! limits — and hands finished records to export. DWARF is parsed ahead of
//! the first crash on a thread of its own ([`super::warm`]).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::{AttachInfo, Event, OUT_BATCH, Out, OutBatch, Summary};
use crate::{
    incident::Correlator,
    probes::records::KernelRecord,
    record::{Attach, Body, Clock, ExitStatus, Record, Redactor, SCHEMA},
    runtimes::{Proc, Procs, Stacks, cxx, go, native, rust},
    symbolize::FileCache,
};

/// How often held-back records (Rust panics waiting for their message)
/// and rate-limit counts are looked at.
const TICK: Duration = Duration::from_millis(50);

/// How long an exit by SIGKILL waits for the OOM record that may come
/// after it: the OOM killer sends SIGKILL first and announces its victim
/// (`mark_victim`) after, from a task that can be preempted in between.
const OOM_RECORD_WAIT: Duration = Duration::from_millis(250);

pub struct Analysis {
    procs: Procs,
    stacks: Stacks,
    signals: native::Signals,
    go: go::Decoder,
    rust: rust::Panics,
    correlator: Correlator,
    /// Memory cgroup ids → paths, for OOM kills.
    memcgs: crate::record::CgroupPaths,
    /// Exits by SIGKILL held back until their OOM record (if any) is in,
    /// with when they are released anyway.
    held_kills: Vec<(Instant, tracer_common::ExitRecord)>,
    /// Programs dying again and again (the daemon's rule).
    crashloops: crate::crashloop::CrashLoops,
    clock: Clock,
    redactor: Redactor,
    rate: RateLimit,
    cache: Arc<FileCache>,
    out: tokio::sync::mpsc::Sender<OutBatch>,
    /// Made since the last batch went to export.
    pending: OutBatch,
    summary: Summary,
    gauges: Arc<super::Gauges>,
}

impl Analysis {
    pub fn new(
        cache: Arc<FileCache>,
        redactor: Redactor,
        out: tokio::sync::mpsc::Sender<OutBatch>,
        gauges: Arc<super::Gauges>,
    ) -> Self {
        Self {
            procs: Procs::new(Arc::clone(&cache)),
            stacks: Stacks::default(),
            signals: native::Signals::default(),
            go: go::Decoder::default(),
            rust: rust::Panics::default(),
            correlator: Correlator::default(),
            memcgs: crate::record::CgroupPaths::memory(),
            held_kills: Vec::new(),
            crashloops: Default::default(),
            clock: Clock::new(),
            redactor,
            rate: RateLimit::default(),
            cache,
            out,
            pending: Vec::new(),
            summary: Summary::default(),
            gauges,
        }
    }

    pub fn run(mut self, events: Receiver<Event>) {
        let mut last_tick = Instant::now();
        loop {
            let event = match events.try_recv() {
                Ok(e) => Some(e),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // Nothing else to do: what is ready goes to export now.
                    self.flush_out();
                    match events.recv_timeout(TICK) {
                        Ok(e) => Some(e),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if let Some(event) = event
                && !self.handle(event)
            {
                break;
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick();
            }
        }
        self.flush_out();
    }

    /// Returns false at the end of the stream.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Record(rec) => self.on_record(rec),
            Event::Image { pid, image, go } => {
                let mut image = image;
                // What was known of it stays known (a dying process's
                // /proc/PID/status may be gone already, also half-way
                // through a reading).
                image.container = crate::record::merged_container(
                    image.container.take(),
                    self.procs.image(pid).and_then(|i| i.container.as_ref()),
                );
                self.procs.set(
                    pid,
                    Proc {
                        image,
                        go,
                        terminating: Default::default(),
                    },
                );
            }
            Event::Attached(info) => self.on_attached(*info),
            Event::Forget { pid } => self.forget(pid),
            Event::Lost {
                count,
                reason,
                event,
            } => self.emit_lost(count, reason, event),
            Event::RateLimit(limit) => self.rate.limit = limit,
            Event::CrashLoop(rule) => self.crashloops.set_rule(rule),
            Event::End(process) => {
                for r in self.rust.release_all() {
                    self.emit(r);
                }
                for (_, exit) in std::mem::take(&mut self.held_kills) {
                    self.on_exit(&exit);
                }
                self.tick();
                let mut summary = std::mem::take(&mut self.summary);
                summary.crash_stacks = self.signals.crash_stacks;
                summary.crash_stack_time = self.signals.crash_stack_time;
                summary.go_probe_hits = process.go_probe_hits;
                (summary.warmed_modules, summary.warm_time) = self.cache.warm_stats();
                self.queue(Out::End(Box::new(summary)));
                self.flush_out();
                return false;
            }
        }
        true
    }

    fn on_record(&mut self, rec: KernelRecord) {
        // A held exit goes before anything else of its pid (a reused pid's
        // new process), but for the OOM record it waits for.
        if !self.held_kills.is_empty() && !matches!(rec, KernelRecord::Oom(_)) {
            let pid = match &rec {
                KernelRecord::SignalGenerate(r) => r.target_pid,
                other => other.header().pid,
            };
            self.release_held_exit(pid);
        }
        // Whatever else a process does next comes after its panic's message.
        if self.rust.has_pending()
            && let Some(pid) = match &rec {
                KernelRecord::RustPanicMessage(_) | KernelRecord::Stack(_) => None,
                KernelRecord::SignalGenerate(r) => Some(r.target_pid),
                other => Some(other.header().pid),
            }
        {
            for r in self.rust.release_process(pid) {
                self.emit(r);
            }
        }
        // Go 1.22+: the panics that end at this hit come first, as their
        // starts would have told them.
        if let KernelRecord::Go(r) = &rec
            && r.chain_len > 0
        {
            // Oldest first: the panics the record had no room for.
            if let Some((count, reason)) = crate::runtimes::go::cut_panics(r) {
                self.emit_lost(count, reason, "go");
            }
            for panic in crate::runtimes::go::ended_panics(r) {
                match self.go.on_record(&panic, &mut self.procs, &self.clock) {
                    Ok(Some(record)) => self.emit(record),
                    Ok(None) => {}
                    Err(reason) => self.emit_lost(1, reason, "go"),
                }
            }
        }
        let clock = &self.clock;
        let record = match rec {
            KernelRecord::SignalDeliver(r) => {
                let record = self
                    .signals
                    .on_deliver(&r, &mut self.procs, &mut self.stacks, clock);
                // A Go runtime dying of a signal prints the goroutine it
                // interrupted first, from the signal's context.
                if let Some(rec) = &record
                    && self.procs.go(r.header.pid).is_some()
                {
                    self.go
                        .on_signal(r.header.pid, r.header.tid, rec.body.frames());
                }
                record
            }
            KernelRecord::SignalGenerate(r) => {
                self.signals.on_generate(&r);
                None
            }
            KernelRecord::Exit(r) => {
                const SIGKILL: u32 = 9;
                if r.status & 0x7f == SIGKILL && !self.correlator.oom_known(r.header.pid) {
                    self.held_kills.push((Instant::now() + OOM_RECORD_WAIT, r));
                    None
                } else {
                    self.on_exit(&r)
                }
            }
            KernelRecord::Go(r) => match self.go.on_record(&r, &mut self.procs, clock) {
                Ok(rec) => rec,
                Err(reason) => {
                    self.emit_lost(1, reason, "go");
                    None
                }
            },
            KernelRecord::Goroutine(r) if r.flags & tracer_common::GO_GOROUTINE_SWITCHED != 0 => {
                let depth = (r.depth as usize).min(r.pcs.len());
                self.stacks
                    .insert_switched(r.header.pid, r.header.tid, r.pcs[..depth].to_vec());
                None
            }
            KernelRecord::Goroutine(r) => {
                self.go.on_goroutine(&r, &mut self.procs);
                None
            }
            KernelRecord::Oom(r) => {
                let exe = self.procs.image(r.header.pid).and_then(|i| i.exe.clone());
                let record = crate::oom::record(&r, &mut self.memcgs, clock, exe);
                self.emit(record);
                // Its victim may have died of the SIGKILL already.
                self.release_held_exit(r.header.pid);
                None
            }
            KernelRecord::Cxx(c) => cxx::on_record(
                &c,
                &mut self.procs,
                &mut self.stacks,
                &mut self.correlator,
                clock,
            ),
            KernelRecord::RustPanic(p) => {
                let displaced = self
                    .rust
                    .on_panic(&p, &mut self.procs, &mut self.stacks, clock);
                for r in displaced {
                    self.emit(r);
                }
                None
            }
            KernelRecord::RustPanicMessage(m) => self.rust.on_message(&m),
            KernelRecord::Stack(s) => {
                self.stacks.insert(s);
                None
            }
            // Process work handled these (images, probes, attach records).
            KernelRecord::Fork(_) | KernelRecord::Exec(_) | KernelRecord::Module(_) => None,
        };
        if let Some(record) = record {
            self.emit(record);
        }
    }

    fn on_exit(&mut self, r: &tracer_common::ExitRecord) -> Option<Record> {
        let pid = r.header.pid;

        if let Some(shed) = self.rate.forget(pid) {
            self.emit_lost(shed.0, shed.1, "rate_limit");
        }
        let exit = ExitStatus::from_wait_status(r.status);
        // The goroutines a dying Go program printed, before its exit closes
        // its story.
        if let Some(dump) = self.go.take_dump(r, &self.procs, &self.clock) {
            self.emit(dump);
        }
        self.queue(Out::Exited(pid, exit));
        let exe = self.procs.image(pid).and_then(|i| i.exe.clone());
        let record =
            crate::runtimes::kernel_record(&self.clock, &r.header, exe, None, Body::Exit { exit });
        // Written before the image goes: it names the process's cgroup.
        self.emit(record);
        self.forget(pid);
        None
    }

    fn forget(&mut self, pid: u32) {
        // The pages its stories read (tables, names, CFI, code) were
        // faulted in 16 at a time around each read: given back, they stay
        // in the page cache, and the next lookup faults in what it needs.
        // Measured: ~1 MB a Go binary after one crash, which a daemon
        // kept for every binary it had seen (56 → 42 MB over 50 binaries).
        if let Some(proc) = self.procs.remove(pid) {
            proc.image.release_pages();
            if let Some(go) = &proc.go {
                go.release_pages();
            }
        }
        self.stacks.forget(pid);
        self.signals.forget(pid);
        self.go.forget(pid);
    }

    fn on_attached(&mut self, info: AttachInfo) {
        let (exe, debuginfo) = self.procs.image(info.pid).map_or((None, "none"), |i| {
            (i.exe.clone(), i.exe_debuginfo().as_str())
        });
        let gotraceback = (info.runtime == "go")
            .then(|| self.procs.image(info.pid)?.gotraceback.clone())
            .flatten();
        let ts = self.clock.now_mono();
        let record = Record {
            schema: SCHEMA,
            kind: "attach",
            time: self.clock.rfc3339(ts),
            ts_ns: ts,
            pid: Some(info.pid),
            tid: Some(info.tid.unwrap_or(info.pid)),
            comm: info.comm,
            exe,
            goid: None,
            container: None,
            body: Body::Attach(Attach {
                runtime: info.runtime,
                runtime_version: info.runtime_version,
                module: info.module,
                debuginfo,
                probes: info.probes,
                reason: info.reason,
                probes_late: info.late,
                gotraceback,
            }),
        };
        self.emit(record);
    }

    fn release_held_exit(&mut self, pid: u32) {
        if let Some(i) = self
            .held_kills
            .iter()
            .position(|(_, r)| r.header.pid == pid)
        {
            let (_, exit) = self.held_kills.remove(i);
            self.on_exit(&exit);
        }
    }

    /// Held-back records that waited long enough, rate-limit counts, gauges.
    fn tick(&mut self) {
        let now = Instant::now();
        while let Some(i) = self.held_kills.iter().position(|(until, _)| *until <= now) {
            let (_, exit) = self.held_kills.remove(i);
            self.on_exit(&exit);
        }
        for r in self.rust.release_overdue() {
            self.emit(r);
        }
        for (pid, count) in self.rate.take_shed() {
            let reason = format!(
                "rate limit: pid {pid} over {} records/s",
                self.rate.limit.unwrap_or(0)
            );
            self.emit_lost(count, reason, "rate_limit");
        }
        use std::sync::atomic::Ordering::Relaxed;
        self.gauges
            .traced_processes
            .store(self.procs.len() as u64, Relaxed);
        self.gauges
            .crash_stacks
            .store(self.signals.crash_stacks, Relaxed);
        self.gauges
            .crash_stack_us
            .store(self.signals.crash_stack_time.as_micros() as u64, Relaxed);
    }

    fn emit_lost(&mut self, count: u64, reason: String, event: &'static str) {
        self.summary.lost += count;
        let record = Record::lost(&self.clock, count, reason, event);
        self.send(record);
    }

    fn emit(&mut self, mut record: Record) {
        debug_assert_eq!(record.kind, record.body.kind());
        if !self.redactor.is_empty() {
            self.redactor.apply(&mut record);
        }
        if record.container.is_none()
            && let Some(image) = record.pid.and_then(|p| self.procs.image(p))
        {
            record.container = image.container.clone();
        }
        if !matches!(record.body, Body::Attach(_)) {
            self.summary.events += 1;
        }
        self.correlator.annotate(&mut record);
        let shed = self.rate.over(&record);
        let incidents = self.correlator.observe(&record);
        if !shed {
            self.send(record);
        }
        for incident in incidents {
            self.summary.incidents += 1;
            self.note_latency(&incident);
            let crashloop = self.crashloops.observe(&incident, &self.clock);
            self.send(incident);
            if let Some(record) = crashloop {
                self.send(record);
            }
        }
    }

    fn send(&mut self, record: Record) {
        self.queue(Out::Record(Box::new(record)));
    }

    fn queue(&mut self, out: Out) {
        self.pending.push(out);
        if self.pending.len() >= OUT_BATCH {
            self.flush_out();
        }
    }

    fn flush_out(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(OUT_BATCH));
        // Blocks when export is behind: records wait here (and process work
        // behind us), while the capture thread keeps draining the kernel.
        let _ = self.out.blocking_send(batch);
    }

    /// Crash-to-record latency: from the kernel's timestamp of the story's
    /// first event to the incident handed to export.
    fn note_latency(&mut self, incident: &Record) {
        if let Body::Incident(inc) = &incident.body
            && let Some(first) = inc.events.first()
            && self.summary.latencies_us.len() < 100_000
        {
            let us = self.clock.now_mono().saturating_sub(first.ts_ns) / 1000;

            self.summary.latencies_us.push(us);
        }
    }
}

/// At most `limit` records per second per process are written and
/// exported (incidents, exits, attaches and lost reports always are); the
/// rest are counted and reported as `lost`. Shed records still feed their
/// incident.
#[derive(Default)]
struct RateLimit {
    limit: Option<u32>,
    windows: HashMap<u32, RateWindow>,
}

struct RateWindow {
    start: Instant,
    count: u32,
    shed: u64,
}

impl RateLimit {
    fn over(&mut self, record: &Record) -> bool {
        let (Some(limit), Some(pid)) = (self.limit, record.pid) else {
            return false;
        };
        if matches!(record.kind, "incident" | "exit" | "attach" | "lost") {
            return false;
        }
        let now = Instant::now();
        let w = self.windows.entry(pid).or_insert(RateWindow {
            start: now,
            count: 0,
            shed: 0,
        });
        if now.duration_since(w.start) >= Duration::from_secs(1) {
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

    /// (pid, records shed) since the last call.
    fn take_shed(&mut self) -> Vec<(u32, u64)> {
        self.windows
            .iter_mut()
            .filter(|(_, w)| w.shed > 0)
            .map(|(pid, w)| (*pid, std::mem::take(&mut w.shed)))
            .collect()
    }

    /// The process is gone: what it had shed, as (count, reason).
    fn forget(&mut self, pid: u32) -> Option<(u64, String)> {
        let w = self.windows.remove(&pid)?;
        (w.shed > 0).then(|| {
            (
                w.shed,
                format!(
                    "rate limit: pid {pid} over {} records/s",
                    self.limit.unwrap_or(0)
                ),
            )
        })
    }
}
