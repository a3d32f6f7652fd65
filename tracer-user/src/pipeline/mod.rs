//! The staged pipeline from the kernel's ring buffer to written records.
//! Each stage owns a thread, so what must happen while a process is still
//! alive never waits behind slow work:
//!
//! ```text
//!  ring buffer ─▶ capture ─▶ process work ─▶ analysis ─▶ export
//!                 (thread)    (thread)        (thread)    (coordinator's
//!                 decode,     images from     unwind,      async runtime:
//!                 /proc maps  captures via    symbolize,   output, files,
//!                 + open fds  the file cache, runtimes,    syslog, OTLP,
//!                 at exec,    runtime probes, incidents,   metrics, signals,
//!                 dlopen      kernel maps     rate limits  SIGHUP)
//! ```
//!
//! A warm-up thread ([`warm`], lower priority) parses the DWARF of every
//! binary the file cache opens ahead of the first crash. Hand-offs are
//! bounded channels. The capture thread never blocks: when
//! process work is behind, what it cannot pass on is counted and reported
//! as `lost`. The later stages apply back-pressure to each other (the
//! kernel's ring and the capture thread absorb it). [`Tracer`] is the
//! coordinator's handle, the one event loop `run`, `attach` and `daemon`
//! share.

pub mod analysis;
pub mod capture;
pub mod export;
pub mod process;
pub mod warm;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use anyhow::{Context as _, Result};
use tracer_common::{EventKind, ExecRecord, ModuleRecord};

use crate::{
    Failure,
    golang::GoBinary,
    probes::{kernel::KernelProbes, records::KernelRecord},
    procfs::{Capture, OpenFile},
    record::{ExitStatus, Record, Redactor},
    selection::SelectConfig,
    symbolize::{FileCache, process::ProcessImage},
};

pub use export::Export;

/// Capture → process work.
pub enum FromCapture {
    Record(KernelRecord),
    /// An exec, with what was captured of the process at once (None: it
    /// was gone already).
    Exec(Box<ExecRecord>, Option<Box<Capture>>),
    /// An object ld.so loaded, with its file opened at once (through the
    /// process's root while it lives).
    Module(Box<ModuleRecord>, Option<OpenFile>),
    /// A second look at a process after its exec.
    Relook(Box<Capture>),
    Malformed(String),
    End,
}

impl FromCapture {
    fn kind(&self) -> Option<EventKind> {
        match self {
            Self::Record(r) => EventKind::from_u32(r.header().kind),
            Self::Exec(..) => Some(EventKind::Exec),
            Self::Module(..) => Some(EventKind::Module),
            Self::Relook(_) | Self::Malformed(_) | Self::End => None,
        }
    }
}

/// Process work → analysis, in order: a process's image comes before the
/// records that need it.
pub enum Event {
    Record(KernelRecord),
    /// A process's image (new, or more complete than before).
    Image {
        pid: u32,
        image: ProcessImage,
        go: Option<Arc<GoBinary>>,
    },
    /// Write this process's `attach` record.
    Attached(Box<AttachInfo>),
    /// No longer traced (it exec'd a file not watched).
    Forget {
        pid: u32,
    },
    Lost {
        count: u64,
        reason: String,
        event: &'static str,
    },
    RateLimit(Option<u32>),
    /// The daemon's crash-loop rule (none: not reported).
    CrashLoop(Option<crate::crashloop::Rule>),
    End(ProcessStats),
}

pub struct AttachInfo {
    pub pid: u32,
    pub tid: Option<u32>,
    pub reason: &'static str,
    /// Why its runtime's probes are missing (they came too late).
    pub late: Option<String>,
    pub comm: Option<String>,
    pub runtime: &'static str,
    pub runtime_version: Option<String>,
    pub module: Option<String>,
    pub probes: Vec<String>,
}

pub struct ProcessStats {
    pub go_probe_hits: Option<u64>,
}

/// Analysis → the coordinator, in batches ([`OutBatch`]).
pub enum Out {
    Record(Box<Record>),
    Exited(u32, ExitStatus),
    End(Box<Summary>),
}

/// What analysis hands export at once: what it produced since the last
/// batch, sent when it has nothing else to do or [`OUT_BATCH`] are ready
/// (one wake-up and one write per batch, not per record).
pub type OutBatch = Vec<Out>;

/// Records in one [`OutBatch`] at most.
pub const OUT_BATCH: usize = 256;

/// The coordinator → process work; each answers through `reply`.
pub enum Command {
    Trace {
        pid: u32,
        follow_forks: bool,
        reply: tokio::sync::oneshot::Sender<Result<()>>,
    },
    Attach {
        pid: u32,
        reason: &'static str,
        follow_forks: bool,
        by_exe: bool,
        reply: tokio::sync::oneshot::Sender<Result<()>>,
    },
    Watch {
        path: PathBuf,
        follow_forks: bool,
        reply: tokio::sync::oneshot::Sender<Result<Vec<u32>>>,
    },
    Apply {
        config: SelectConfig,
        reply: tokio::sync::oneshot::Sender<Result<usize>>,
    },
}

/// Figures the stages keep for the metrics endpoint.
#[derive(Default)]
pub struct Gauges {
    pub traced_processes: AtomicU64,
    pub watched_files: AtomicU64,
    pub crash_stacks: AtomicU64,
    pub crash_stack_us: AtomicU64,
}

/// What a session did, for the summary line (`-v` adds the details).
#[derive(Default)]
pub struct Summary {
    pub events: u64,
    pub incidents: u64,
    pub lost: u64,
    pub crash_stacks: u64,
    pub crash_stack_time: Duration,
    /// Per incident: µs from its first event in the kernel to its record.
    pub latencies_us: Vec<u64>,
    pub go_probe_hits: Option<u64>,
    pub warmed_modules: usize,
    pub warm_time: Duration,
}

impl Summary {
    pub fn line(&self, verbose: bool) -> String {
        let mut details = String::new();
        if verbose {
            if let Some(hits) = self.go_probe_hits {
                details.push_str(&format!(", {hits} Go probe hits"));
            }
            if self.crash_stacks > 0 {
                details.push_str(&format!(
                    ", {} crash stacks unwound and symbolized in {} us",
                    self.crash_stacks,
                    self.crash_stack_time.as_micros()
                ));
            }
            if !self.latencies_us.is_empty() {
                let mut l = self.latencies_us.clone();
                l.sort_unstable();
                let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
                details.push_str(&format!(
                    ", crash-to-incident latency p50 {} us p99 {} us max {} us",
                    at(0.5),
                    at(0.99),
                    at(1.0)
                ));
            }
            details.push_str(&format!(
                ", DWARF of {} binaries parsed ahead in {} ms",
                self.warmed_modules,
                self.warm_time.as_millis()
            ));
        }
        let n = |count: u64, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        format!(
            "crashtrace: {}, {}{details}, {}",
            n(self.events, "event", "events"),
            n(self.incidents, "incident", "incidents"),
            n(self.lost, "lost event", "lost events")
        )
    }
}

/// How the pipeline starts.
pub struct Options {
    /// Ring buffer size in bytes (a power-of-two multiple of the page size).
    pub ring_bytes: u32,
    pub verbose: bool,
    pub redactor: Redactor,
}

/// The niceness of the stages that must act while a traced process still
/// lives (capture: its maps and files; process work: its probes, before a
/// program that crashes in its first milliseconds has crashed): ahead of
/// busy processes on a loaded host, which at the default niceness took
/// half of each core from them. Both sleep until the kernel has news.
const LIVE_STAGE_NICENESS: i32 = -5;

/// Sets the calling thread's niceness, as far as crashtrace may (a negative
/// one needs CAP_SYS_NICE, which the systemd unit does not grant: the
/// thread then keeps the default).
pub(crate) fn set_niceness(niceness: i32) {
    // SAFETY: plain syscalls on this thread's own id.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, niceness) != 0
    };
    if failed {
        log::debug!(
            "niceness {niceness} for this thread: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Records in flight between stages at most (per hand-off).
const CAPTURE_QUEUE: usize = 16_384;
// The capture queue's slots are allocated and written up front (16,384 of
// them): big variants are boxed so they cost a pointer each.
const _: () = assert!(std::mem::size_of::<FromCapture>() <= 96);
const ANALYSIS_QUEUE: usize = 4_096;
/// Batches (of up to [`OUT_BATCH`] records each).
const EXPORT_QUEUE: usize = 64;
/// How often exporter drops are reported and gauges copied.
const TICK: Duration = Duration::from_millis(50);

/// The coordinator's handle on a running pipeline.
pub struct Tracer {
    commands: crossbeam_channel::Sender<Command>,
    out: tokio::sync::mpsc::Receiver<OutBatch>,
    pub export: Export,
    stopper: capture::Stopper,
    threads: Vec<std::thread::JoinHandle<()>>,
    exits: HashMap<u32, ExitStatus>,
    summary: Option<Box<Summary>>,
    gauges: Arc<Gauges>,
    tick: tokio::time::Interval,
    warm_stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Tracer {
    /// Loads the probes and starts the stages.
    pub fn start(options: Options, export: Export) -> Result<Self, Failure> {
        let mut probes = KernelProbes::load(options.ring_bytes).map_err(Failure::from_load)?;
        let ring = probes
            .take_events()
            .context("ring buffer already taken")
            .map_err(Failure::Other)?;
        let cache = Arc::new(FileCache::default());
        let gauges = Arc::new(Gauges::default());
        let drops = Arc::new(capture::Drops::default());
        let (to_process, from_capture) = crossbeam_channel::bounded(CAPTURE_QUEUE);
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (to_analysis, events) = crossbeam_channel::bounded(ANALYSIS_QUEUE);
        let (out_tx, out) = tokio::sync::mpsc::channel(EXPORT_QUEUE);

        let spawn_err =
            |e: std::io::Error| Failure::Other(anyhow::Error::from(e).context("starting a thread"));
        let analysis = analysis::Analysis::new(
            Arc::clone(&cache),
            options.redactor,
            out_tx,
            Arc::clone(&gauges),
        );
        let analysis = std::thread::Builder::new()
            .name("analysis".into())
            .spawn(move || analysis.run(events))
            .map_err(spawn_err)?;
        let work = process::ProcessWork::new(
            probes,
            Arc::clone(&cache),
            to_analysis,
            Arc::clone(&drops),
            Arc::clone(&gauges),
            options.verbose,
        );
        let process = std::thread::Builder::new()
            .name("process-work".into())
            .spawn(move || {
                set_niceness(LIVE_STAGE_NICENESS);
                work.run(from_capture, command_rx)
            })
            .map_err(spawn_err)?;
        let (stopper, capture) = capture::spawn(ring, to_process, drops).map_err(spawn_err)?;
        let warm_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        warm::spawn(Arc::clone(&cache), Arc::clone(&warm_stop)).map_err(spawn_err)?;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            commands,
            out,
            export,
            stopper,
            threads: vec![capture, process, analysis],
            exits: HashMap::new(),
            summary: None,
            gauges,
            tick,
            warm_stop,
        })
    }

    /// Sends a command to process work and waits for its answer, writing
    /// records meanwhile.
    async fn call<T>(
        &mut self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Command,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| anyhow::anyhow!("the process-work thread is gone"))?;
        let reply = self.serve(rx).await;
        reply.map_err(|_| anyhow::anyhow!("the process-work thread is gone"))
    }

    /// Adds `pid` to the kernel's traced set (nothing else: for a process
    /// stopped before its first instruction).
    pub async fn trace(&mut self, pid: u32, follow_forks: bool) -> Result<()> {
        self.call(|reply| Command::Trace {
            pid,
            follow_forks,
            reply,
        })
        .await?
    }

    /// Traces `pid` from now on: kernel filter, image, runtime probes, an
    /// `attach` record. `by_exe`: it runs a watched file.
    pub async fn attach(
        &mut self,
        pid: u32,
        reason: &'static str,
        follow_forks: bool,
        by_exe: bool,
    ) -> Result<()> {
        self.call(|reply| Command::Attach {
            pid,
            reason,
            follow_forks,
            by_exe,
            reply,
        })
        .await?
    }

    /// Watches the file at `path`: returns the processes running it now.
    pub async fn watch(&mut self, path: PathBuf, follow_forks: bool) -> Result<Vec<u32>> {
        self.call(|reply| Command::Watch {
            path,
            follow_forks,
            reply,
        })
        .await?
    }

    /// Applies the daemon's selectors; returns the files watched.
    pub async fn apply(&mut self, config: SelectConfig) -> Result<usize> {
        self.call(|reply| Command::Apply { config, reply }).await?
    }

    /// The exit status of a traced process whose exit record was written.
    pub fn exit_status(&self, pid: u32) -> Option<ExitStatus> {
        self.exits.get(&pid).copied()
    }

    /// The figures the stages keep (for the metrics endpoint).
    pub fn gauges(&self) -> &Arc<Gauges> {
        &self.gauges
    }

    /// Writes what the pipeline produces until `until` completes, and
    /// returns its output: the one loop `run`, `attach` and `daemon` share
    /// (each brings its own `until`: the child's exit, Ctrl-C, SIGHUP).
    pub async fn serve<F: std::future::Future>(&mut self, until: F) -> F::Output {
        tokio::pin!(until);
        loop {
            tokio::select! {
                // Records first: nothing waits behind a slow signal.
                biased;
                out = self.out.recv() => match out {
                    Some(out) => self.take(out),
                    // The pipeline ended (finish, or a stage failed):
                    // whatever `until` waits for is all that is left.
                    None => return until.await,
                },
                _ = self.tick.tick() => self.on_tick(),
                v = &mut until => return v,
            }
        }
    }

    fn take(&mut self, batch: OutBatch) {
        let mut records = Vec::with_capacity(batch.len());
        for out in batch {
            match out {
                Out::Record(r) => records.push(r),
                Out::Exited(pid, status) => {
                    self.exits.insert(pid, status);
                }
                Out::End(summary) => self.summary = Some(summary),
            }
        }
        self.export.write_batch(records.iter().map(|r| &**r));
    }

    fn on_tick(&mut self) {
        self.export.poll_drops();
        if let Some(m) = &self.export.exporters.metrics {
            use std::sync::atomic::Ordering::Relaxed;
            let g = &self.gauges;
            m.traced_processes
                .store(g.traced_processes.load(Relaxed), Relaxed);
            m.watched_files
                .store(g.watched_files.load(Relaxed), Relaxed);
            m.crash_stacks.store(g.crash_stacks.load(Relaxed), Relaxed);
            m.crash_stack_us
                .store(g.crash_stack_us.load(Relaxed), Relaxed);
        }
    }

    /// Drains everything the kernel wrote so far through every stage, lets
    /// exporters deliver (at most `flush`), and stops: programs and links
    /// are released with the process-work thread.
    pub async fn finish(mut self, flush: Duration) -> Summary {
        self.warm_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.stopper.stop();
        while self.summary.is_none() {
            match self.out.recv().await {
                Some(out) => self.take(out),
                None => break,
            }
        }
        // Every stage has ended (or failed): let their threads go.
        for t in self.threads.drain(..) {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.export.close(flush).await;
        let mut summary = self.summary.take().map(|s| *s).unwrap_or_default();
        summary.lost += self.export.lost;
        summary
    }
}
