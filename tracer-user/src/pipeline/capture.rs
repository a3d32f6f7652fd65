//! The capture thread: drains the kernel's ring buffer, decodes records
//! and, while a process that just exec'd (or dlopen'ed) is still alive,
//! captures what symbolizing it later needs: its memory map and an open
//! descriptor for each mapped file ([`Capture::take`]). Nothing is parsed
//! here and nothing waits on the rest of the pipeline: records go on
//! through a bounded channel, and when it is full they are counted as lost
//! (reported in `lost` records), never waited for.

use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use crossbeam_channel::{Sender, TrySendError};
use tracer_common::EventKind;

use super::FromCapture;
use crate::{
    probes::records::{self, KernelRecord},
    procfs::{Capture, OpenFile},
    symbolize::FileId,
};

/// When to read an exec'd process again: ld.so maps its libraries after
/// the exec, a slow start later still.
const RELOOK_AFTER_EXEC: [Duration; 3] = [
    Duration::from_millis(2),
    Duration::from_millis(20),
    Duration::from_millis(1000),
];

/// Records the capture thread could not pass on (the pipeline was full),
/// per kind (in [`EventKind::ALL`]'s order); reported as `lost` by the
/// process-work thread.
#[derive(Default)]
pub struct Drops {
    pub by_kind: [AtomicU64; EventKind::ALL.len()],
}

/// Asks the capture thread to drain once more and stop.
pub struct Stopper {
    event: OwnedFd,
}

impl Stopper {
    pub fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe {
            libc::write(
                self.event.as_raw_fd(),
                (&raw const one).cast(),
                size_of::<u64>(),
            )
        };
    }
}

pub fn spawn(
    mut ring: RingBuf<MapData>,
    to_process: Sender<FromCapture>,
    drops: Arc<Drops>,
) -> std::io::Result<(Stopper, std::thread::JoinHandle<()>)> {
    // SAFETY: eventfd returns a new descriptor we own, or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let event = unsafe { OwnedFd::from_raw_fd(fd) };
    let stop_fd = event.as_raw_fd();
    let handle = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            super::set_niceness(super::LIVE_STAGE_NICENESS);
            let mut capture = CaptureLoop {
                to_process,
                drops,
                relooks: Vec::new(),
                pace: Pace::default(),
            };
            capture.run(&mut ring, stop_fd);
        })?;
    Ok((Stopper { event }, handle))
}

struct CaptureLoop {
    to_process: Sender<FromCapture>,
    drops: Arc<Drops>,
    /// (pid, when) to read again.
    relooks: Vec<(u32, Instant)>,
    pace: Pace,
}

/// How often the kernel woke the capture thread lately. The ring buffer
/// wakes its reader for each record written once the reader has caught
/// up: in a storm of records that is a wake-up a record, for the capture
/// thread and, through the hand-off, for the stages after it. While
/// wake-ups come faster than [`STORM_WAKEUPS`] in a [`PACE_WINDOW`], the
/// thread waits [`STORM_PAUSE`] before it polls again, and records pile up
/// to be drained (and passed on) together: at most that much later.
#[derive(Default)]
struct Pace {
    window_start: Option<Instant>,
    wakeups: u32,
    storm: bool,
}

const PACE_WINDOW: Duration = Duration::from_millis(10);
/// 2,000 wake-ups a second.
const STORM_WAKEUPS: u32 = 20;
const STORM_PAUSE: Duration = Duration::from_micros(500);

impl Pace {
    /// Counts a wake-up that found records; true when the thread should
    /// pause before polling again.
    fn woke(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.duration_since(start) < PACE_WINDOW => self.wakeups += 1,
            _ => {
                self.storm = self.wakeups >= STORM_WAKEUPS;
                self.window_start = Some(now);
                self.wakeups = 1;
            }
        }
        self.storm || self.wakeups >= STORM_WAKEUPS
    }
}

impl CaptureLoop {
    fn run(&mut self, ring: &mut RingBuf<MapData>, stop_fd: i32) {
        let ring_fd = ring.as_raw_fd();
        loop {
            let timeout = self
                .relooks
                .iter()
                .map(|(_, t)| t.saturating_duration_since(Instant::now()))
                .min()
                .map_or(100, |d| d.as_millis().min(100) as i32);
            let mut fds = [
                libc::pollfd {
                    fd: ring_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfd entries.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            let drained = self.drain(ring);
            self.relook_due();
            if fds[1].revents & libc::POLLIN != 0 {
                // Whatever the kernel wrote before we were told to stop.
                self.drain(ring);
                let _ = self.to_process.send(FromCapture::End);
                return;
            }
            if drained > 0 && self.pace.woke(Instant::now()) {
                std::thread::sleep(STORM_PAUSE);
            }
        }
    }

    /// Drains the ring; returns how many records it held.
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> usize {
        // Passed on in bursts: a send to a waiting process-work thread
        // wakes it (a futex wake and a context switch, ~5 µs between the
        // two threads), and one wake-up now serves a burst instead of a
        // record. What the process needs taken while it lives (its maps,
        // its files) is still taken here, record by record, at once.
        let mut burst: Vec<FromCapture> = Vec::with_capacity(BURST);
        let mut drained = 0;
        while let Some(item) = ring.next() {
            drained += 1;
            let msg = match records::decode(&item) {
                Ok(rec) => self.capture(rec),
                Err(err) => FromCapture::Malformed(err.to_string()),
            };
            drop(item);
            burst.push(msg);
            if burst.len() == BURST {
                burst.drain(..).for_each(|m| self.pass(m));
            }
        }
        burst.into_iter().for_each(|m| self.pass(m));
        drained
    }

    /// What must be taken now, while the process lives.
    fn capture(&mut self, rec: KernelRecord) -> FromCapture {
        match rec {
            // Not traced (a daemon selector decides), or no longer traced:
            // nothing to capture.
            KernelRecord::Exec(r)
                if r.flags & (tracer_common::EXEC_CANDIDATE | tracer_common::EXEC_DROPPED) != 0 =>
            {
                FromCapture::Exec(r, None)
            }
            KernelRecord::Exec(r) => {
                let pid = r.header.pid;
                let capture = Capture::take(pid).ok().map(Box::new);
                let now = Instant::now();
                for after in RELOOK_AFTER_EXEC {
                    self.relooks.push((pid, now + after));
                }
                FromCapture::Exec(r, capture)
            }
            KernelRecord::Module(m) => {
                let len = (m.path_len as usize).min(m.path.len());
                let path = String::from_utf8_lossy(&m.path[..len]).into_owned();
                // Index 0 is the executable (known from its exec); names
                // without a slash are the vDSO.
                let file = (m.index > 0 && path.starts_with('/'))
                    .then(|| open_in_process(m.header.pid, &path))
                    .flatten();
                FromCapture::Module(m, file)
            }
            other => FromCapture::Record(other),
        }
    }

    fn relook_due(&mut self) {
        if self.relooks.is_empty() {
            return;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.relooks.drain(..).partition(|&(_, t)| t <= now);
        self.relooks = later;
        for (pid, _) in due {
            match Capture::take(pid) {
                Ok(c) => self.pass(FromCapture::Relook(Box::new(c))),
                // Gone: no later look will find it either.
                Err(_) => self.relooks.retain(|&(p, _)| p != pid),
            }
        }
    }

    fn pass(&self, msg: FromCapture) {
        let kind = msg.kind();
        // The last slots are kept for what a crash story needs (exits,
        // execs, crash signals, panics): a storm of handled signals is shed
        // first, counted like any other drop.
        let storm = matches!(&msg, FromCapture::Record(r) if is_storm_record(r));
        let full = self
            .to_process
            .capacity()
            .is_some_and(|cap| self.to_process.len() + RESERVED_SLOTS >= cap);
        if storm && full {
            self.count_drop(kind);
            return;
        }
        match self.to_process.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.count_drop(kind),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn count_drop(&self, kind: Option<EventKind>) {
        if let Some(i) = kind.and_then(|k| EventKind::ALL.iter().position(|&a| a == k)) {
            self.drops.by_kind[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Records decoded before they are passed on together (see `drain`).
const BURST: usize = 64;

/// Slots of the capture queue only records that are not [storm
/// records](is_storm_record) may take.
const RESERVED_SLOTS: usize = 2048;

/// Signals that are crashes, or that end or stop a process by default
/// when sent: their records are never shed for room.
fn matters(signo: i32) -> bool {
    use libc::*;
    matches!(
        signo,
        SIGSEGV
            | SIGBUS
            | SIGFPE
            | SIGILL
            | SIGTRAP
            | SIGSYS
            | SIGABRT
            | SIGQUIT
            | SIGKILL
            | SIGTERM
            | SIGINT
            | SIGHUP
            | SIGXCPU
            | SIGXFSZ
    )
}

/// A record a storm of signals makes, that a crash story can do without: a
/// delivery to a handler of a signal that is no crash, and the sending of
/// such a signal.
fn is_storm_record(r: &KernelRecord) -> bool {
    match r {
        KernelRecord::SignalDeliver(d) => d.handler > 1 && !matters(d.signo),
        KernelRecord::SignalGenerate(g) => !matters(g.signo),
        _ => false,
    }
}

/// A file a process just loaded, by the path it used: through its root
/// (its mount namespace) while it lives, else on this host.
fn open_in_process(pid: u32, path: &str) -> Option<OpenFile> {
    if path.is_empty() {
        return None;
    }
    let via_root = format!("/proc/{pid}/root{path}");
    let file = std::fs::File::open(&via_root)
        .or_else(|_| std::fs::File::open(path))
        .ok()?;
    Some(OpenFile {
        id: FileId::of(&file).ok()?,
        file,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use tracer_common::{ExitRecord, SignalGenerateRecord, SignalRecord};

    use super::*;

    fn zeroed<T: Copy>() -> T {
        // SAFETY: the kernel records are plain integers and arrays of them
        // (repr(C), Copy): all zeroes is a valid value.
        unsafe { std::mem::zeroed() }
    }

    fn delivery(signo: i32, handler: u64, kind: EventKind) -> FromCapture {
        let mut r: SignalRecord = zeroed();
        r.header.kind = kind as u32;
        r.signo = signo;
        r.handler = handler;
        FromCapture::Record(KernelRecord::SignalDeliver(Box::new(r)))
    }

    fn sending(signo: i32) -> FromCapture {
        let mut r: SignalGenerateRecord = zeroed();
        r.header.kind = EventKind::SignalGenerate as u32;
        r.signo = signo;
        FromCapture::Record(KernelRecord::SignalGenerate(r))
    }

    fn exit() -> FromCapture {
        let mut r: ExitRecord = zeroed();
        r.header.kind = EventKind::Exit as u32;
        FromCapture::Record(KernelRecord::Exit(r))
    }

    #[test]
    fn the_reader_pauses_only_while_wakeups_come_as_a_storm() {
        let mut pace = Pace::default();
        let t0 = Instant::now();
        // A few wake-ups: no pause, each record read as it comes.
        for i in 0..5 {
            assert!(!pace.woke(t0 + Duration::from_micros(i * 100)));
        }
        // 20 in one window: from the 20th on, and through the next window.
        let t1 = t0 + PACE_WINDOW * 2;
        let paused: Vec<bool> = (0..STORM_WAKEUPS)
            .map(|i| pace.woke(t1 + Duration::from_micros(u64::from(i) * 100)))
            .collect();
        assert!(paused[..STORM_WAKEUPS as usize - 1].iter().all(|p| !p));
        assert!(paused[STORM_WAKEUPS as usize - 1]);
        assert!(pace.woke(t1 + PACE_WINDOW));
        // A quiet window ends it.
        assert!(!pace.woke(t1 + PACE_WINDOW * 3));
    }

    #[test]
    fn a_storm_of_handled_signals_leaves_room_for_exits_and_crashes() {
        let (tx, rx) = crossbeam_channel::bounded(RESERVED_SLOTS + 8);
        let capture = CaptureLoop {
            to_process: tx,
            drops: Arc::default(),
            relooks: Vec::new(),
            pace: Pace::default(),
        };
        // A storm: handled SIGUSR1s and their sendings, more than fit.
        for _ in 0..100 {
            capture.pass(delivery(libc::SIGUSR1, 0x401000, EventKind::SignalDeliver));
            capture.pass(sending(libc::SIGUSR1));
        }
        assert_eq!(rx.len(), 8, "the storm took only the unreserved slots");
        let dropped = |kind: EventKind| {
            let i = EventKind::ALL.iter().position(|&k| k == kind).unwrap();
            capture.drops.by_kind[i].load(Ordering::Relaxed)
        };
        assert_eq!(
            dropped(EventKind::SignalDeliver) + dropped(EventKind::SignalGenerate),
            200 - 8,
            "every shed record is counted"
        );
        // What a crash story needs still gets in.
        capture.pass(exit());
        capture.pass(delivery(libc::SIGSEGV, 0x401000, EventKind::SignalDeliver));
        capture.pass(delivery(libc::SIGUSR1, 0, EventKind::SignalDeliver)); // kills: no handler
        capture.pass(sending(libc::SIGKILL));
        assert_eq!(rx.len(), 12);
        assert_eq!(dropped(EventKind::Exit), 0);
    }
}
