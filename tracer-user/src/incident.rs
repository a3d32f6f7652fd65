//! Correlates events into incidents: one story per process thread, from its
//! cause (the first crash-relevant event) to its outcome (the exit).
//!
//! Pure logic over [`Record`]s so it is unit-tested without a kernel.

use std::collections::HashMap;

use crate::{
    record::{
        Body, Cause, ExitStatus, GoGoroutines, Incident, Outcome, Record, SignalInfo, Thread,
    },
    signals,
};

/// The goroutine running main.main.
const MAIN_GOID: u64 = 1;

struct Story {
    /// Unique within the output stream (the incident's `story`).
    id: u64,
    /// Stories this one continues (the incident's `related`).
    related: Vec<u64>,
    events: Vec<Record>,
}

impl Story {
    fn new(id: u64, events: Vec<Record>) -> Self {
        Self {
            id,
            related: Vec::new(),
            events,
        }
    }
}

/// Whose story: a goroutine's (Go events carry a goid) or, for kernel
/// signals, a thread's. A fault that Go turns into a panic moves from the
/// thread's key to the goroutine's when the panic arrives on that thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Thread(u32),
    Goroutine(u64),
}

#[derive(Default)]
pub struct Correlator {
    open: HashMap<(u32, Key), Story>,
    /// Goexit calls outside any story, by (pid, goid): a goroutine ending
    /// itself is no incident, unless the main goroutine's Goexit leaves
    /// the program to die of "no goroutines (main called runtime.Goexit)".
    goexits: HashMap<(u32, u64), Record>,
    /// The last C++ throw per thread: most are caught; it becomes a story
    /// when std::terminate runs or the thread aborts. A rethrow comes with
    /// the throw it repeats first (perhaps another thread's).
    exceptions: HashMap<(u32, u32), Vec<Record>>,
    /// Recent C++ throws by (pid, thrown object): a rethrow
    /// (`std::rethrow_exception`, `throw;`) names the same object.
    thrown: HashMap<(u32, u64), Record>,
    /// Signals another process (or the terminal) sent that the program's
    /// own handler took, by (pid, signal): a handler that re-raises the
    /// signal (Go's runtime, C daemons cleaning up) or exits on it makes
    /// that delivery the cause — a kill, with its original sender.
    handled: HashMap<(u32, i32), Record>,
    /// The goroutine dump a dying Go process printed, until its exit.
    dumps: HashMap<u32, GoGoroutines>,
    /// The OOM killer chose this process (its `oom` record), until its exit.
    ooms: HashMap<u32, Record>,
    /// The last story id handed out.
    last_story: u64,
}

/// How long a handled signal from elsewhere stays the likely cause of the
/// process's end.
const HANDLED_SIGNAL_WINDOW_NS: u64 = 10_000_000_000;

/// Pending Goexit calls kept at most (a program may Goexit many goroutines).
const MAX_PENDING_GOEXITS: usize = 1024;

const SIGKILL: i32 = 9;

impl Correlator {
    /// What the correlator knows that a record should say before it is
    /// written: a C++ rethrow's original thread.
    pub fn annotate(&self, record: &mut Record) {
        let Some(pid) = record.pid else { return };
        if let Body::Exception(x) = &mut record.body
            && x.rethrown_by.is_some()
            && x.object != 0
            && let Some(original) = self.thrown.get(&(pid, x.object))
        {
            x.thrown_by_tid = original.tid;
        }
    }

    /// Feeds one event; returns the incident records this event closes.
    pub fn observe(&mut self, record: &Record) -> Vec<Record> {
        let Some(pid) = record.pid else {
            return Vec::new();
        };
        let tid = record.tid.unwrap_or(pid);
        match &record.body {
            Body::Signal(ev) => {
                // A signal on a thread whose goroutine is mid-story (e.g. the
                // runtime's own abort under GOTRACEBACK=crash) belongs to it.
                let running_story = self.open.iter().find_map(|(k, story)| {
                    let on_thread = story.events.last().and_then(|e| e.tid) == Some(tid);
                    (k.0 == pid && matches!(k.1, Key::Goroutine(_)) && on_thread).then_some(*k)
                });
                let key = running_story.unwrap_or((pid, Key::Thread(tid)));
                // An abort right after a throw on this thread: the throw was
                // not caught (libstdc++'s terminate probe missed, e.g. a
                // static libstdc++).
                if ev.signal.number == 6 && !self.open.contains_key(&key) {
                    self.uncaught(pid, tid);
                }
                if ev.signal.disposition == "handler" && sent_from_elsewhere(&ev.signal, pid) {
                    if self.handled.len() >= MAX_PENDING_GOEXITS {
                        self.handled.clear();
                    }
                    self.handled.insert((pid, ev.signal.number), record.clone());
                }
                // The handler re-raises what it was sent (default action
                // now): the original delivery, with its sender, is the cause.
                if ev.signal.disposition == "default"
                    && !sent_from_elsewhere(&ev.signal, pid)
                    && !self.open.contains_key(&key)
                    && let Some(original) = self.recent_handled(pid, ev.signal.number, record.ts_ns)
                {
                    self.push(key, &original);
                }
                if opens_story(&ev.signal) || self.open.contains_key(&key) {
                    self.push(key, record);
                }
                Vec::new()
            }
            Body::Exception(e) => {
                let key = (pid, Key::Thread(tid));
                // libstdc++'s terminate handler rethrows the exception to
                // print its what(): already the story's.
                if e.rethrown_by.is_some()
                    && e.object != 0
                    && self.open.get(&key).is_some_and(|story| {
                        story
                            .events
                            .iter()
                            .any(|x| matches!(&x.body, Body::Exception(x) if x.object == e.object))
                    })
                {
                    return Vec::new();
                }
                // A Rust panic is never routine: its own story.
                if self.open.contains_key(&key) || e.language == "rust" {
                    self.push(key, record);
                    return Vec::new();
                }
                if self.exceptions.len() >= MAX_PENDING_GOEXITS {
                    self.exceptions.clear();
                }
                if self.thrown.len() >= MAX_PENDING_GOEXITS {
                    self.thrown.clear();
                }
                let chain = if e.rethrown_by.is_none() {
                    if e.object != 0 {
                        self.thrown.insert((pid, e.object), record.clone());
                    }
                    vec![record.clone()]
                } else {
                    // The throw it repeats, when recorded: the cause of
                    // whatever this rethrow leads to.
                    let original = (e.object != 0)
                        .then(|| self.thrown.get(&(pid, e.object)))
                        .flatten()
                        .cloned();
                    original.into_iter().chain([record.clone()]).collect()
                };
                self.exceptions.insert((pid, tid), chain);
                Vec::new()
            }
            Body::Goexit(_) => {
                let goid = record.goid.unwrap_or(0);
                let key = (pid, Key::Goroutine(goid));
                if self.open.contains_key(&key) {
                    self.push(key, record);
                } else {
                    if self.goexits.len() >= MAX_PENDING_GOEXITS {
                        self.goexits.clear();
                    }
                    self.goexits.insert((pid, goid), record.clone());
                }
                Vec::new()
            }
            Body::Fatal(f)
                if record.goid.is_none()
                    && f.message.contains("main called runtime.Goexit")
                    && self.goexits.contains_key(&(pid, MAIN_GOID)) =>
            {
                // The scheduler found nothing left to run after the main
                // goroutine's Goexit: that Goexit is the cause.
                let goexit = self.goexits.remove(&(pid, MAIN_GOID));
                let events = goexit.into_iter().chain([record.clone()]).collect();
                let id = self.next_id();
                self.open
                    .insert((pid, Key::Goroutine(MAIN_GOID)), Story::new(id, events));
                Vec::new()
            }
            Body::Panic(p)
                if p.after_recovered
                    && self
                        .open
                        .contains_key(&(pid, Key::Goroutine(record.goid.unwrap_or(0)))) =>
            {
                // Recovered, then panicked again from the deferred function
                // that recovered (runtime.recovery never ran): the earlier
                // story ends recovered by that function, and this panic
                // starts its own story, related to it.
                let key = (pid, Key::Goroutine(record.goid.unwrap_or(0)));
                let Some(old) = self.open.remove(&key) else {
                    return Vec::new();
                };
                let recovered_by = p
                    .frames
                    .iter()
                    .find(|f| {
                        f.function
                            .as_deref()
                            .is_some_and(|n| !crate::golang::is_runtime_function(n))
                    })
                    .cloned();
                let old_id = old.id;
                let closed = close_recovered(old, record, recovered_by);
                let id = self.next_id();
                let mut story = Story::new(id, vec![record.clone()]);
                story.related.push(old_id);
                self.open.insert(key, story);
                closed.into_iter().collect()
            }
            Body::Panic(_) | Body::Fatal(_) | Body::Sigpanic(_) => {
                let goid = record.goid.unwrap_or(0);
                let key = (pid, Key::Goroutine(goid));
                // The fault this sigpanic comes from: the open signal story
                // whose faulting pc is the one the runtime recorded (the
                // thread is the same one but for rare cases seen on Go
                // 1.24; the pc says it exactly), else the thread's story.
                let fault_story = match &record.body {
                    Body::Sigpanic(sp) => self
                        .open
                        .iter()
                        .find(|((p, k), story)| {
                            *p == pid
                                && matches!(k, Key::Thread(_))
                                && story.events.first().is_some_and(|e| {
                                    matches!(&e.body, Body::Signal(s) if s.registers.pc.to_string() == sp.fault_pc)
                                })
                        })
                        .map(|(k, _)| *k),
                    _ => None,
                }
                .or_else(|| {
                    // No sigpanic seen (its probe came late): a runtime
                    // error after a fault the runtime's handler took is
                    // that fault's panic, on whichever thread the goroutine
                    // went on panicking (it may move between threads).
                    let thread_story = (pid, Key::Thread(tid));
                    (runtime_error(record) && !self.open.contains_key(&thread_story))
                        .then(|| self.handled_fault_story(pid))
                        .flatten()
                })
                .unwrap_or((pid, Key::Thread(tid)));
                if !self.open.contains_key(&key)
                    && let Some(mut story) = self.open.remove(&fault_story)
                {
                    // SIGSEGV → sigpanic → panic: one story.
                    story.events.push(record.clone());
                    self.open.insert(key, story);
                    return Vec::new();
                }
                self.push(key, record);
                Vec::new()
            }
            Body::Recover(rec) => {
                let goid = record.goid.unwrap_or(0);
                let Some(mut story) = self.open.remove(&(pid, Key::Goroutine(goid))) else {
                    return Vec::new();
                };
                story.events.push(record.clone());
                close_recovered(story, record, rec.recovered_by.clone())
                    .into_iter()
                    .collect()
            }
            Body::Oom(_) => {
                if self.ooms.len() >= MAX_PENDING_GOEXITS {
                    self.ooms.clear();
                }
                self.ooms.insert(pid, record.clone());
                Vec::new()
            }
            Body::Goroutines(dump) => {
                if self.dumps.len() >= MAX_PENDING_GOEXITS {
                    self.dumps.clear();
                }
                self.dumps.insert(pid, dump.clone());
                Vec::new()
            }
            Body::Exit { exit } => {
                let mut closed = self.close_process(pid, record, *exit);
                // The dump goes with the process's first incident (the
                // oldest story: most likely the cause).
                if let Some(dump) = self.dumps.remove(&pid)
                    && let Some(Body::Incident(incident)) = closed.first_mut().map(|r| &mut r.body)
                {
                    incident.goroutines = Some(dump);
                }
                closed
            }
            _ => Vec::new(),
        }
    }

    /// Whether the OOM killer's record for `pid` is in.
    pub fn oom_known(&self, pid: u32) -> bool {
        self.ooms.contains_key(&pid)
    }

    /// The process `pid` exited (`record`): its open stories become incidents.
    fn close_process(&mut self, pid: u32, record: &Record, exit: ExitStatus) -> Vec<Record> {
        self.goexits.retain(|(p, _), _| *p != pid);
        self.exceptions.retain(|(p, _), _| *p != pid);
        self.thrown.retain(|(p, _), _| *p != pid);
        let keys: Vec<_> = self
            .open
            .keys()
            .filter(|(p, _)| *p == pid)
            .copied()
            .collect();
        let mut stories: Vec<Story> = keys.iter().filter_map(|k| self.open.remove(k)).collect();
        // Nothing open, but a signal from elsewhere was handled and
        // the program ended on it (Go's SIGQUIT dump and exit 2, a
        // daemon exiting non-zero on SIGTERM): killed by it. A clean
        // exit after a handled signal is a shutdown, not an incident.
        let handled = self
            .handled
            .iter()
            .filter(|((p, _), r)| {
                *p == pid && record.ts_ns.saturating_sub(r.ts_ns) < HANDLED_SIGNAL_WINDOW_NS
            })
            .max_by_key(|(_, r)| r.ts_ns)
            .map(|(_, r)| r.clone());
        self.handled.retain(|(p, _), _| *p != pid);
        // Killed by the OOM killer: that is the story of its death, told
        // from the kill on (with the SIGKILL's delivery and stack where
        // that was recorded). Other stories still open stay their own.
        if let Some(oom) = self.ooms.remove(&pid)
            && matches!(
                exit,
                ExitStatus::Signal {
                    signal: SIGKILL,
                    ..
                }
            )
        {
            let killed = stories.iter().position(|s| {
                s.events.first().is_some_and(
                    |e| matches!(&e.body, Body::Signal(ev) if ev.signal.number == SIGKILL),
                )
            });
            let mut story = match killed {
                Some(i) => stories.remove(i),
                None => Story::new(self.next_id(), Vec::new()),
            };
            story.events.insert(0, oom);
            stories.push(story);
        }
        if stories.is_empty()
            && let Some(handled) = handled
            && !matches!(exit, ExitStatus::Code { code: 0 })
        {
            stories.push(Story::new(self.next_id(), vec![handled]));
        }
        // The oldest story first: it is most likely the cause.
        stories.sort_by_key(|s| s.events.first().map_or(0, |e| e.ts_ns));
        if stories.is_empty() {
            let id = self.next_id();
            return close(Story::new(id, Vec::new()), record, exit)
                .into_iter()
                .collect();
        }
        // The Go runtime printed a system-level goroutine dump: its signal
        // handler crashed on a signal it could not turn into a panic.
        let runtime_crashed = self
            .dumps
            .get(&pid)
            .is_some_and(|d| d.traceback == "system");
        stories
            .into_iter()
            .filter_map(|story| {
                let crashed_in_handler = runtime_crashed
                    && matches!(exit, ExitStatus::Code { code: 2 })
                    && story.events.first().is_some_and(|e| {
                        matches!(&e.body, Body::Signal(ev)
                            if signals::is_fault(ev.signal.number)
                                && ev.signal.disposition == "handler"
                                && !sent_from_elsewhere(&ev.signal, pid))
                    });
                let mut incident = close(story, record, exit)?;
                if crashed_in_handler
                    && let Body::Incident(inc) = &mut incident.body
                    && inc.outcome == Outcome::Exited
                {
                    inc.outcome = Outcome::Crashed;
                }
                Some(incident)
            })
            .collect()
    }

    /// std::terminate runs on `tid`: its last throw was not caught, and
    /// starts the thread's story.
    pub fn uncaught(&mut self, pid: u32, tid: u32) {
        if let Some(chain) = self.exceptions.remove(&(pid, tid)) {
            let key = (pid, Key::Thread(tid));
            if !self.open.contains_key(&key) {
                let id = self.next_id();
                self.open.insert(key, Story::new(id, Vec::new()));
            }
            if let Some(story) = self.open.get_mut(&key) {
                story.events.splice(0..0, chain);
            }
        }
    }

    /// The handled delivery of `signo` to `pid` from elsewhere, if recent.
    fn recent_handled(&mut self, pid: u32, signo: i32, now: u64) -> Option<Record> {
        let r = self.handled.remove(&(pid, signo))?;
        (now.saturating_sub(r.ts_ns) < HANDLED_SIGNAL_WINDOW_NS).then_some(r)
    }

    /// The latest open story of `pid` that a fault with a handler (a Go
    /// runtime's) started, not yet joined by a goroutine.
    fn handled_fault_story(&self, pid: u32) -> Option<(u32, Key)> {
        self.open
            .iter()
            .filter(|((p, k), _)| *p == pid && matches!(k, Key::Thread(_)))
            .filter_map(|(k, story)| {
                let first = story.events.first()?;
                match &first.body {
                    Body::Signal(s)
                        if signals::is_fault(s.signal.number)
                            && s.signal.disposition == "handler" =>
                    {
                        Some((first.ts_ns, *k))
                    }
                    _ => None,
                }
            })
            .max_by_key(|(ts, _)| *ts)
            .map(|(_, k)| k)
    }

    fn push(&mut self, key: (u32, Key), record: &Record) {
        if !self.open.contains_key(&key) {
            let id = self.next_id();
            self.open.insert(key, Story::new(id, Vec::new()));
        }
        if let Some(story) = self.open.get_mut(&key) {
            story.events.push(record.clone());
        }
    }

    fn next_id(&mut self) -> u64 {
        self.last_story += 1;
        self.last_story
    }

    /// Stories still open (the process is alive).
    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

/// A Go panic or fatal panic whose value is a runtime error (what a fault
/// becomes).
fn runtime_error(record: &Record) -> bool {
    match &record.body {
        Body::Panic(p) => p.message.starts_with("runtime error:"),
        Body::Fatal(f) => f.source == "panic" && f.message.starts_with("runtime error:"),
        _ => false,
    }
}

/// The cause of a whole story: its first event's, told as the runtime
/// tells it. A Go panic's message is the last one the runtime printed (an
/// unrecovered chain is printed oldest first, each value as text by then:
/// Error()/String() already called, custom error types included). A fault
/// the Go runtime turned into a panic is that panic — its message, with the
/// signal, si_code and address beside it, and the faulting goroutine's
/// frames from the fault on.
fn story_cause(story: &Story) -> Option<(Cause, Vec<crate::symbolize::Frame>)> {
    let first = story.events.first()?;
    let (mut cause, mut frames) = cause_of(first)?;
    // printpanics is entered for the chain's head first and recurses to
    // the oldest: the last record printed is the oldest panic's — of those
    // not marked recovered (a recovered one ended a story of its own).
    let printed_where = |recovered_too: bool| {
        story.events.iter().rev().find_map(|e| match &e.body {
            Body::Fatal(f) if f.source == "panic" && (recovered_too || !f.recovered) => {
                Some(f.message.clone())
            }
            _ => None,
        })
    };
    let printed = printed_where(false).or_else(|| printed_where(true));
    let panicked = story.events.iter().find_map(|e| match &e.body {
        Body::Panic(p) => Some(p.message.clone()),
        _ => None,
    });
    match &first.body {
        Body::Oom(_) => {
            // Where the SIGKILL found it.
            if let Some(kill) = story.events.iter().find_map(|e| match &e.body {
                Body::Signal(ev) if ev.signal.number == SIGKILL => Some(ev.frames.clone()),
                _ => None,
            }) {
                frames = kill;
            }
        }
        Body::Panic(_) => {
            if let Some(printed) = printed {
                cause.message = printed;
            }
        }
        Body::Signal(ev) if signals::is_fault(ev.signal.number) => {
            if let Some(message) = printed.or(panicked) {
                cause.message = message;
                cause.signal = Some(ev.signal.clone());
                // The signal's own frames are walked with Go's tables; where
                // that walk came short (no stack copy), sigpanic's, without
                // the runtime's frame the fault never called.
                if let Some(sigpanic) = story.events.iter().find_map(|e| match &e.body {
                    Body::Sigpanic(sp) => Some(
                        sp.frames
                            .iter()
                            .skip_while(|f| f.function.as_deref() == Some("runtime.sigpanic"))
                            .cloned()
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                }) && sigpanic.len() > frames.len()
                {
                    frames = sigpanic;
                }
            } else if let Some(message) = fault_message_without_panic(story, &frames) {
                cause.message = message;
                cause.signal = Some(ev.signal.clone());
            }
        }
        _ => {}
    }
    Some((cause, frames))
}

/// A Go fault that no panic follows (C code called through cgo, or the
/// runtime's own code), told as the Go runtime tells it:
/// Go 1.21+ crash in the signal handler ("signal arrived during cgo
/// execution", after `SIGSEGV: segmentation violation`); Go 1.19 calls
/// sigpanic on the system stack, which throws "unexpected signal during
/// runtime execution" (a fatal record of the story). None for a fault in
/// Go code (it becomes a panic) or outside a cgo call.
fn fault_message_without_panic(
    story: &Story,
    frames: &[crate::symbolize::Frame],
) -> Option<String> {
    if let Some(thrown) = story.events.iter().find_map(|e| match &e.body {
        Body::Fatal(f) if f.source != "panic" => Some(f.message.clone()),
        _ => None,
    }) {
        return Some(thrown);
    }
    // The fault's stack runs from the C code into the Go call that made it.
    let cgocall = frames.iter().position(|f| {
        matches!(
            f.function.as_deref(),
            Some("runtime.cgocall" | "runtime.asmcgocall")
        )
    })?;
    (cgocall > 0).then(|| "signal arrived during cgo execution".to_owned())
}

/// The cause of a story: its first event's type and message.
fn cause_of(first: &Record) -> Option<(Cause, Vec<crate::symbolize::Frame>)> {
    Some(match &first.body {
        Body::Signal(ev) => (
            Cause {
                kind: "signal",
                message: ev.signal.name.clone(),
                signal: None,
                oom: None,
            },
            ev.frames.clone(),
        ),
        Body::Panic(p) => (
            Cause {
                kind: "panic",
                message: p.message.clone(),
                signal: None,
                oom: None,
            },
            p.frames.clone(),
        ),
        // A panic the runtime printed whose gopanic was not told (the
        // panic site's rate limit, or a panic before the probes were in
        // place): the same story as a told one — a panic, its frames from
        // the `panic` call on (fatalpanic's caller), as the runtime prints.
        Body::Fatal(f) if f.source == "panic" => (
            Cause {
                kind: "panic",
                message: f.message.clone(),
                signal: None,
                oom: None,
            },
            f.frames
                .iter()
                .position(|fr| fr.function.as_deref() == Some("runtime.fatalpanic"))
                .map_or_else(|| f.frames.clone(), |k| f.frames[k + 1..].to_vec()),
        ),
        Body::Fatal(f) => (
            Cause {
                kind: "fatal",
                message: f.message.clone(),
                signal: None,
                oom: None,
            },
            f.frames.clone(),
        ),
        // Its signal record was lost: the runtime's view of the fault.
        Body::Sigpanic(s) => (
            Cause {
                kind: "sigpanic",
                message: s.signal.name.clone(),
                signal: None,
                oom: None,
            },
            s.frames.clone(),
        ),
        Body::Exception(e) => (
            Cause {
                kind: "exception",
                message: e.message.clone().unwrap_or_else(|| {
                    e.value_type
                        .clone()
                        .unwrap_or_else(|| "exception".to_owned())
                }),
                signal: None,
                oom: None,
            },
            e.frames.clone(),
        ),
        // The kill's own delivery has the stack, if it was recorded.
        Body::Oom(o) => (
            Cause {
                kind: "oom",
                message: o.message(),
                signal: None,
                oom: Some(o.clone()),
            },
            Vec::new(),
        ),
        Body::Goexit(g) => (
            Cause {
                kind: "goexit",
                message: "runtime.Goexit".to_owned(),
                signal: None,
                oom: None,
            },
            g.frames.clone(),
        ),
        _ => return None,
    })
}

fn close_recovered(
    story: Story,
    last: &Record,
    recovered_by: Option<crate::symbolize::Frame>,
) -> Option<Record> {
    let first = story.events.first()?.clone();
    let (cause, frames) = story_cause(&story)?;
    Some(incident_record(
        &first,
        last,
        Incident {
            story: story.id,
            related: story.related,
            outcome: Outcome::Recovered,
            cause,
            recovered_by,
            exit: None,
            frames,
            thread: Thread {
                tid: first.tid,
                goid: story_goid(&story.events),
            },
            goroutines: None,
            fingerprint: String::new(),
            events: story.events,
        },
    ))
}

/// The goroutine of a story: a fault's story learns it from the panic the
/// runtime turned the fault into.
fn story_goid(events: &[Record]) -> Option<u64> {
    events.iter().find_map(|e| e.goid)
}

fn incident_record(first: &Record, last: &Record, mut incident: Incident) -> Record {
    incident.fingerprint = fingerprint(&incident);
    Record {
        schema: last.schema,
        kind: "incident",
        time: last.time.clone(),
        ts_ns: last.ts_ns,
        pid: last.pid,
        tid: first.tid,
        comm: first.comm.clone(),
        exe: first.exe.clone().or_else(|| last.exe.clone()),
        goid: first.goid,
        container: first.container.clone(),
        body: Body::Incident(Box::new(incident)),
    }
}

/// The incident's `fingerprint` (CONTRACT.md): FNV-1a over the language,
/// the cause's type (with the signal's name for a signal), and the function
/// names of the top three application frames — the program's own code, not
/// a language runtime's or the C library's. Stable across builds, hosts and
/// Go versions; a message (which carries values) is left out.
fn fingerprint(incident: &Incident) -> String {
    let events = &incident.events;
    let language = events
        .iter()
        .find_map(|e| match &e.body {
            Body::Exception(x) => Some(x.language),
            Body::Panic(_)
            | Body::Recover(_)
            | Body::Fatal(_)
            | Body::Sigpanic(_)
            | Body::Goexit(_) => Some("go"),
            _ => None,
        })
        .or_else(|| incident.thread.goid.map(|_| "go"))
        .unwrap_or("native");
    let signal = match &incident.cause.signal {
        Some(s) => Some(s.name.as_str()),
        None => events
            .first()
            .and_then(|e| e.body.signal())
            .map(|s| s.name.as_str()),
    };
    let named = || incident.frames.iter().filter_map(|f| f.function.as_deref());
    let application: Vec<&str> = named()
        .filter(|n| is_application_function(n, language))
        .take(3)
        .collect();
    let top = if application.is_empty() {
        named().take(3).collect()
    } else {
        application
    };
    let mut text = format!(
        "v1|{language}|{}|{}",
        incident.cause.kind,
        signal.unwrap_or("")
    );
    if let Some(oom) = &incident.cause.oom {
        // Where an OOM kill found the program is chance: the program and
        // which memory ran out say it.
        let comm = events.first().and_then(|e| e.comm.as_deref()).unwrap_or("");
        text = format!("v1|{language}|oom|{}|{comm}", oom.scope);
    } else {
        for f in top {
            text.push('|');
            text.push_str(f);
        }
    }
    // FNV-1a 64: the same on every host and build (no random hash keys).
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// A function of the program itself, not of its language's runtime or the
/// C library's internals (`__pthread_kill_implementation`, `raise`,
/// `abort`, `__cxa_throw`, std's panic machinery).
fn is_application_function(name: &str, language: &str) -> bool {
    const LIBC: &[&str] = &[
        "raise",
        "abort",
        "__libc_start_main",
        "__libc_start_call_main",
        "_start",
    ];
    if name.starts_with("__") || LIBC.contains(&name) || name.starts_with("std::__") {
        return false;
    }
    match language {
        "go" => !crate::golang::is_runtime_function(name),
        "rust" => ![
            "std::", "core::", "alloc::", "rust_", "<std::", "<core::", "<alloc::",
        ]
        .iter()
        .any(|p| name.starts_with(p)),
        _ => true,
    }
}

/// A signal that starts a crash story: a fault (even when a handler catches
/// it: Go turns it into a panic, C programs may longjmp), or any signal
/// delivered with its default, fatal action. A handled SIGTERM or SIGHUP is
/// a request, not a crash, and only joins a story already open.
fn opens_story(sig: &SignalInfo) -> bool {
    signals::is_fault(sig.number) || sig.number == 6 || sig.disposition == "default"
}

fn close(story: Story, exit_record: &Record, exit: ExitStatus) -> Option<Record> {
    let pid = exit_record.pid;
    if story.events.is_empty() {
        // No recorded cause (e.g. its record was lost): a death by signal
        // is still an incident; a plain exit is not.
        let ExitStatus::Signal {
            signal,
            signal_name,
            ..
        } = exit
        else {
            return None;
        };
        return Some(incident_record(
            exit_record,
            exit_record,
            Incident {
                story: story.id,
                related: story.related,
                outcome: signal_outcome(signal, None, pid),
                cause: Cause {
                    kind: "exit",
                    message: signal_name.to_owned(),
                    signal: None,
                    oom: None,
                },
                recovered_by: None,
                exit: Some(exit),
                frames: Vec::new(),
                events: vec![exit_record.clone()],
                thread: Thread {
                    tid: exit_record.tid,
                    goid: None,
                },
                goroutines: None,
                fingerprint: String::new(),
            },
        ));
    }
    let first = story.events.first()?.clone();
    let (cause, frames) = story_cause(&story)?;
    // A Rust panic that unwound a spawned thread (no abort, no signal):
    // the thread ended, the process went on — whoever joined it handled
    // it. Only the main thread's panic (exit 101) or an abort ends a Rust
    // process, so that is never this story's doing.
    let unwound_rust_thread = first.tid != first.pid
        && matches!(&first.body, Body::Exception(x) if x.language == "rust")
        && !story
            .events
            .iter()
            .any(|e| matches!(e.body, Body::Signal(_)));
    let outcome = match exit {
        ExitStatus::Code { .. } if unwound_rust_thread => Outcome::Recovered,
        // The runtime declared it fatal (throw, fatal, or printing an
        // unrecovered panic) and then exit(2): the story is why it died. A
        // panic still unwinding when the program exits on its own is not.
        ExitStatus::Code { .. }
            if story
                .events
                .iter()
                .any(|e| matches!(e.body, Body::Fatal(_))) =>
        {
            Outcome::Crashed
        }
        // Rust's exit status for a panic that reached main.
        ExitStatus::Code { code: 101 }
            if story
                .events
                .iter()
                .any(|e| matches!(&e.body, Body::Exception(x) if x.language == "rust")) =>
        {
            Outcome::Crashed
        }
        // It exited on a signal sent from elsewhere that its handler took
        // (Go exits 2 on a SIGSEGV or SIGQUIT sent by kill): a kill.
        ExitStatus::Code { .. } if matches!(&first.body, Body::Signal(ev) if sent_from_elsewhere(&ev.signal, pid.unwrap_or(0))) => {
            Outcome::Killed
        }
        ExitStatus::Code { .. } => Outcome::Exited,
        ExitStatus::Signal { signal, .. } => {
            // The delivery from elsewhere, when the program re-raised it.
            let deliveries = || {
                story.events.iter().filter_map(|r| match &r.body {
                    Body::Signal(ev) if ev.signal.number == signal => Some(&ev.signal),
                    _ => None,
                })
            };
            let killing = deliveries()
                .find(|s| sent_from_elsewhere(s, pid.unwrap_or(0)))
                .or_else(|| deliveries().next_back());
            signal_outcome(signal, killing, pid)
        }
    };
    let goid = story_goid(&story.events);
    let mut events = story.events;
    events.push(exit_record.clone());
    let mut record = incident_record(
        &first,
        exit_record,
        Incident {
            story: story.id,
            related: story.related,
            outcome,
            cause,
            recovered_by: None,
            exit: (outcome != Outcome::Recovered).then_some(exit),
            frames,
            events,
            thread: Thread {
                tid: first.tid,
                goid,
            },
            goroutines: None,
            fingerprint: String::new(),
        },
    );
    record.goid = goid;
    Some(record)
}

/// Whether `sig` came from outside the process `pid`: another process
/// (kill, a supervisor), or the kernel for a reason other than the
/// program's own fault (the terminal's Ctrl-C and Ctrl-\\, a resource
/// limit, the OOM killer's SIGKILL).
fn sent_from_elsewhere(sig: &SignalInfo, pid: u32) -> bool {
    sig.sent_by_other_process(Some(pid))
        || (sig.code.as_deref() == Some("SI_KERNEL") && !signals::is_fault(sig.number))
}

/// Crashed or killed, for a process that died of `signal`: killed when
/// another process sent it, or the kernel did for a reason that is not the
/// program's own fault (the terminal, SIGKILL from the OOM killer);
/// crashed for faults and signals the process sent itself (abort, raise).
fn signal_outcome(signal: i32, killing: Option<&SignalInfo>, pid: Option<u32>) -> Outcome {
    match killing {
        Some(info) if sent_from_elsewhere(info, pid.unwrap_or(0)) => Outcome::Killed,
        Some(_) => Outcome::Crashed,
        None if signals::default_dumps_core(signal) => Outcome::Crashed,
        None => Outcome::Killed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Registers, SCHEMA, SignalEvent};

    fn base(kind: &'static str, body: Body) -> Record {
        Record {
            schema: SCHEMA,
            kind,
            time: "t".into(),
            ts_ns: 1,
            pid: Some(100),
            tid: Some(101),
            comm: Some("app".into()),
            exe: Some("/bin/app".into()),
            goid: None,
            container: None,
            body,
        }
    }

    fn signal(number: i32, code: &str, sender: Option<u32>, disposition: &'static str) -> Record {
        let zero = tracer_common::Registers::default();
        base(
            "signal",
            Body::Signal(Box::new(SignalEvent {
                signal: SignalInfo {
                    number,
                    name: signals::display_name(number),
                    code: Some(code.into()),
                    addr: None,
                    sender_pid: sender,
                    sender_comm: sender.map(|_| "kill".into()),
                    disposition,
                },
                registers: Registers::from(&zero),
                frames: vec![],
                frames_truncated: false,
                truncated_by: None,
            })),
        )
    }

    fn exit(status: u32) -> Record {
        base(
            "exit",
            Body::Exit {
                exit: ExitStatus::from_wait_status(status),
            },
        )
    }

    fn outcome(r: &Record) -> (Outcome, String, usize) {
        match &r.body {
            Body::Incident(i) => (i.outcome, i.cause.message.clone(), i.events.len()),
            _ => panic!("not an incident"),
        }
    }

    /// A fault → sigpanic → panic → exit is one story, found by the
    /// faulting pc the runtime recorded, even when the records name
    /// different threads (seen once on Go 1.24).
    #[test]
    fn sigpanic_joins_the_fault_with_the_same_pc() {
        use crate::record::GoSigpanic;
        let mut c = Correlator::default();
        let mut fault = signal(11, "SEGV_MAPERR", None, "handler");
        if let Body::Signal(s) = &mut fault.body {
            s.registers.pc = crate::record::Hex(0x497320);
        }
        assert!(c.observe(&fault).is_empty()); // tid 101
        let Body::Signal(s) = &fault.body else {
            unreachable!()
        };
        let mut sp = base(
            "sigpanic",
            Body::Sigpanic(GoSigpanic {
                signal: s.signal.clone(),
                fault_pc: "0x497320".into(),
                on_system_stack: false,
                frames: vec![],
            }),
        );
        sp.goid = Some(1);
        sp.tid = Some(105);
        assert!(c.observe(&sp).is_empty());
        assert!(
            c.observe(&go(
                "panic",
                1,
                105,
                "runtime error: invalid memory address"
            ))
            .is_empty()
        );
        let inc = c.observe(&exit(2 << 8));
        assert_eq!(inc.len(), 1, "one story");
        assert_eq!(outcome(&inc[0]).2, 4, "signal, sigpanic, panic, exit");
    }

    #[test]
    fn segfault_is_crashed() {
        let mut c = Correlator::default();
        assert!(
            c.observe(&signal(11, "SEGV_MAPERR", None, "default"))
                .is_empty()
        );
        let inc = c.observe(&exit(11 | 0x80)).pop().expect("incident");
        assert_eq!(outcome(&inc), (Outcome::Crashed, "SIGSEGV".into(), 2));
        assert_eq!(c.open_count(), 0);
    }

    /// A crash's fingerprint: by language, cause and the top application
    /// functions; not by addresses, lines, libc frames or the message.
    #[test]
    fn fingerprints_group_the_same_bug_and_only_it() {
        let frame = |function: &str, pc: u64, line: u32| crate::symbolize::Frame {
            pc: format!("{pc:#x}"),
            function: Some(function.into()),
            file: Some("/src/app.c".into()),
            line: Some(line),
            inlined: false,
            module: Some("/bin/app".into()),
            tail_call: false,
            file_offset: None,
        };
        let crash = |frames: Vec<crate::symbolize::Frame>, signo: i32| {
            let mut c = Correlator::default();
            let mut sig = signal(signo, "SEGV_MAPERR", None, "default");
            if let Body::Signal(ev) = &mut sig.body {
                ev.frames = frames;
            }
            c.observe(&sig);
            let inc = c
                .observe(&exit(signo as u32 | 0x80))
                .pop()
                .expect("incident");
            match inc.body {
                Body::Incident(i) => i.fingerprint,
                _ => unreachable!(),
            }
        };
        let a = crash(
            vec![
                frame("__memcpy_avx_unaligned", 0x7f00, 0),
                frame("parse", 0x401000, 10),
                frame("main", 0x401100, 20),
            ],
            11,
        );
        // Another build: other addresses and lines, no libc frame on top.
        let b = crash(
            vec![frame("parse", 0x501000, 12), frame("main", 0x501200, 25)],
            11,
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        assert_ne!(
            a,
            crash(
                vec![frame("load", 0x401000, 10), frame("main", 0x401100, 20)],
                11
            )
        );
        assert_ne!(
            a,
            crash(
                vec![frame("parse", 0x401000, 10), frame("main", 0x401100, 20)],
                7
            )
        );
    }

    #[test]
    fn abort_sent_to_self_is_crashed() {
        let mut c = Correlator::default();
        c.observe(&signal(6, "SI_TKILL", Some(100), "default"));
        let inc = c.observe(&exit(6)).pop().unwrap();
        assert_eq!(outcome(&inc).0, Outcome::Crashed);
    }

    #[test]
    fn sigterm_from_other_process_is_killed() {
        let mut c = Correlator::default();
        c.observe(&signal(15, "SI_USER", Some(7), "default"));
        assert_eq!(
            outcome(&c.observe(&exit(15)).pop().unwrap()).0,
            Outcome::Killed
        );
    }

    #[test]
    fn oom_kill_is_killed() {
        let mut c = Correlator::default();
        c.observe(&signal(9, "SI_KERNEL", None, "default"));
        assert_eq!(
            outcome(&c.observe(&exit(9)).pop().unwrap()).0,
            Outcome::Killed
        );
    }

    #[test]
    fn handled_sigterm_then_clean_exit_is_no_incident() {
        let mut c = Correlator::default();
        c.observe(&signal(15, "SI_USER", Some(7), "handler"));
        assert!(c.observe(&exit(0)).is_empty());
    }

    #[test]
    fn handled_fault_then_exit_is_exited() {
        let mut c = Correlator::default();
        c.observe(&signal(11, "SEGV_MAPERR", None, "handler"));
        let inc = c.observe(&exit(1 << 8)).pop().unwrap();
        assert_eq!(outcome(&inc).0, Outcome::Exited);
    }

    #[test]
    fn plain_exit_is_no_incident_but_unexplained_kill_is() {
        let mut c = Correlator::default();
        assert!(c.observe(&exit(3 << 8)).is_empty());
        let inc = c.observe(&exit(9)).pop().unwrap();
        assert_eq!(outcome(&inc), (Outcome::Killed, "SIGKILL".into(), 1));
    }

    fn go(kind: &'static str, goid: u64, tid: u32, message: &str) -> Record {
        use crate::record::{GoFatal, GoGoexit, GoPanic, GoRecover};
        let body = match kind {
            "goexit" => Body::Goexit(GoGoexit { frames: vec![] }),
            "panic" => Body::Panic(GoPanic {
                message: message.into(),
                value_type: Some("string".into()),
                frames: vec![],
                after_recovered: false,
            }),
            "fatal" => Body::Fatal(GoFatal {
                message: message.into(),
                source: "fatal",
                recovered: false,
                frames: vec![],
                on_system_stack: false,
            }),
            _ => Body::Recover(GoRecover {
                recovered_by: None,
                frames: vec![],
            }),
        };
        let mut r = base(kind, body);
        r.goid = Some(goid);
        r.tid = Some(tid);
        r
    }

    /// A fatal panic whose gopanic went untold (the site's rate limit, or
    /// before the probes were placed) is the same story as a told one: a
    /// panic, its frames from fatalpanic's caller on.
    #[test]
    fn a_printed_panic_without_its_gopanic_is_a_panic() {
        let frame = |f: &str| crate::record::Frame {
            pc: "0x1".into(),
            function: Some(f.into()),
            file: None,
            line: None,
            inlined: false,
            module: None,
            tail_call: false,
            file_offset: None,
        };
        let mut c = Correlator::default();
        let mut printed = go("fatal", 1, 101, "boom 299");
        if let Body::Fatal(f) = &mut printed.body {
            f.source = "panic";
            f.frames = [
                "runtime.systemstack_switch",
                "runtime.fatalpanic",
                "runtime.gopanic",
                "main.work",
            ]
            .map(frame)
            .to_vec();
        }
        c.observe(&printed);
        let incidents = c.observe(&exit(2 << 8));
        assert_eq!(incidents.len(), 1);
        match &incidents[0].body {
            Body::Incident(i) => {
                assert_eq!(i.outcome, Outcome::Crashed);
                assert_eq!(i.cause.kind, "panic");
                assert_eq!(i.cause.message, "boom 299");
                let names: Vec<_> = i
                    .frames
                    .iter()
                    .filter_map(|f| f.function.as_deref())
                    .collect();
                assert_eq!(names, ["runtime.gopanic", "main.work"]);
            }
            _ => panic!("not an incident"),
        }
    }

    #[test]
    fn go_panics_recovered_per_goroutine() {
        let mut c = Correlator::default();
        assert!(c.observe(&go("panic", 7, 101, "a")).is_empty());
        assert!(c.observe(&go("panic", 8, 101, "b")).is_empty());
        let inc = c.observe(&go("recover", 8, 102, "")).pop().unwrap();
        assert_eq!(outcome(&inc), (Outcome::Recovered, "b".into(), 2));
        let inc = c.observe(&go("recover", 7, 101, "")).pop().unwrap();
        assert_eq!(outcome(&inc), (Outcome::Recovered, "a".into(), 2));
        assert_eq!(c.open_count(), 0);
    }

    #[test]
    fn nested_panic_then_exit_2_is_one_crash() {
        let mut c = Correlator::default();
        c.observe(&go("panic", 1, 101, "first"));
        c.observe(&go("panic", 1, 101, "second, in a deferred call"));
        c.observe(&go("fatal", 1, 101, "second, in a deferred call"));
        let incidents = c.observe(&exit(2 << 8));
        assert_eq!(incidents.len(), 1);
        assert_eq!(
            outcome(&incidents[0]),
            (Outcome::Crashed, "first".into(), 4)
        );
    }

    #[test]
    fn main_goexit_then_no_goroutines_deadlock_is_one_crash() {
        let mut c = Correlator::default();
        // Another goroutine's Goexit is no incident.
        c.observe(&go("goexit", 6, 102, ""));
        c.observe(&go("goexit", 1, 101, ""));
        let mut deadlock = go(
            "fatal",
            0,
            103,
            "no goroutines (main called runtime.Goexit) - deadlock!",
        );
        deadlock.goid = None;
        c.observe(&deadlock);
        let incidents = c.observe(&exit(2 << 8));
        assert_eq!(incidents.len(), 1);
        let Body::Incident(inc) = &incidents[0].body else {
            panic!()
        };
        assert_eq!(inc.cause.kind, "goexit");
        assert_eq!(inc.thread.goid, Some(1));
        assert_eq!(outcome(&incidents[0]).0, Outcome::Crashed);
        assert_eq!(inc.events.len(), 3);
        assert!(c.goexits.is_empty());
    }

    #[test]
    fn goroutine_goexit_then_clean_exit_is_no_incident() {
        let mut c = Correlator::default();
        c.observe(&go("goexit", 6, 102, ""));
        assert!(c.observe(&exit(0)).is_empty());
    }

    #[test]
    fn panic_in_flight_at_a_clean_exit_is_exited() {
        let mut c = Correlator::default();
        c.observe(&go("panic", 4, 101, "handler bug"));
        let inc = c.observe(&exit(0)).pop().unwrap();
        assert_eq!(outcome(&inc), (Outcome::Exited, "handler bug".into(), 2));
    }

    #[test]
    fn fault_turned_into_panic_is_one_story() {
        let mut c = Correlator::default();
        c.observe(&signal(11, "SEGV_MAPERR", None, "handler"));
        c.observe(&go(
            "panic",
            5,
            101,
            "runtime error: invalid memory address",
        ));
        c.observe(&go(
            "fatal",
            5,
            101,
            "runtime error: invalid memory address",
        ));
        let incidents = c.observe(&exit(2 << 8));
        assert_eq!(incidents.len(), 1);
        // Told as the runtime tells it: the panic, the fault beside it.
        assert_eq!(
            outcome(&incidents[0]),
            (
                Outcome::Crashed,
                "runtime error: invalid memory address".into(),
                4
            )
        );
        assert_eq!(fault_of(&incidents[0]), Some("SIGSEGV".to_owned()));
    }

    #[test]
    fn abort_after_an_unrecovered_panic_joins_its_story() {
        let mut c = Correlator::default();
        c.observe(&go("panic", 1, 101, "boom"));
        c.observe(&signal(6, "SI_TKILL", Some(100), "default"));
        let incidents = c.observe(&exit(6 | 0x80));
        assert_eq!(incidents.len(), 1);
        assert_eq!(outcome(&incidents[0]), (Outcome::Crashed, "boom".into(), 3));
    }

    #[test]
    fn fatal_error_is_crashed() {
        let mut c = Correlator::default();
        c.observe(&go("fatal", 9, 101, "concurrent map writes"));
        let inc = c.observe(&exit(2 << 8)).pop().unwrap();
        assert_eq!(
            outcome(&inc),
            (Outcome::Crashed, "concurrent map writes".into(), 2)
        );
    }

    /// A fault the Go runtime's handler took on one thread, then the fatal
    /// panic it became printed from another (the goroutine moved, and no
    /// sigpanic was seen: its probe came late): one crashed story.
    #[test]
    fn runtime_error_after_a_handled_fault_on_another_thread_is_its_story() {
        let mut c = Correlator::default();
        c.observe(&signal(11, "SEGV_MAPERR", None, "handler"));
        let mut printed = go(
            "fatal",
            1,
            105,
            "runtime error: invalid memory address or nil pointer dereference",
        );
        if let Body::Fatal(f) = &mut printed.body {
            f.source = "panic";
        }
        c.observe(&printed);
        let incidents = c.observe(&exit(2 << 8));
        assert_eq!(incidents.len(), 1);
        assert_eq!(
            outcome(&incidents[0]),
            (
                Outcome::Crashed,
                "runtime error: invalid memory address or nil pointer dereference".into(),
                3
            )
        );
        assert_eq!(fault_of(&incidents[0]), Some("SIGSEGV".to_owned()));
    }

    fn fault_of(r: &Record) -> Option<String> {
        match &r.body {
            Body::Incident(i) => i.cause.signal.as_ref().map(|s| s.name.clone()),
            _ => None,
        }
    }

    fn sender_of(r: &Record) -> Option<u32> {
        match &r.body {
            Body::Incident(i) => match &i.events[0].body {
                Body::Signal(ev) => ev.signal.sender_pid,
                _ => None,
            },
            _ => None,
        }
    }

    /// `kill -TERM` to a Go service: the runtime's handler re-raises SIGTERM
    /// to itself (SI_TKILL, default action now) and dies of it. A kill by
    /// the original sender, not a crash.
    #[test]
    fn a_re_raised_signal_is_a_kill_by_its_original_sender() {
        let mut c = Correlator::default();
        c.observe(&signal(15, "SI_USER", Some(999), "handler"));
        c.observe(&signal(15, "SI_TKILL", Some(100), "default"));
        let inc = c.observe(&exit(15)).pop().unwrap();
        assert_eq!(outcome(&inc), (Outcome::Killed, "SIGTERM".into(), 3));
        assert_eq!(sender_of(&inc), Some(999));
    }

    /// `kill -QUIT` to a Go program: the runtime dumps its goroutines and
    /// exits 2; `kill -SEGV`: the runtime takes it as a crash request and
    /// exits 2. Both are kills.
    #[test]
    fn a_handled_signal_from_elsewhere_then_an_exit_is_a_kill() {
        for (sig, code) in [(3, "SI_USER"), (11, "SI_USER")] {
            let mut c = Correlator::default();
            c.observe(&signal(sig, code, Some(999), "handler"));
            let inc = c.observe(&exit(2 << 8)).pop().unwrap();
            assert_eq!(outcome(&inc).0, Outcome::Killed, "signal {sig}");
            assert_eq!(sender_of(&inc), Some(999));
        }
    }

    /// signal.Notify and a clean exit: a shutdown, no incident.
    #[test]
    fn a_handled_signal_then_a_clean_exit_is_no_incident() {
        let mut c = Correlator::default();
        c.observe(&signal(15, "SI_USER", Some(999), "handler"));
        assert!(c.observe(&exit(0)).is_empty());
    }

    /// Ctrl-C in a terminal: SIGINT from the kernel (the tty), not a crash.
    #[test]
    fn ctrl_c_from_the_terminal_is_a_kill() {
        let mut c = Correlator::default();
        c.observe(&signal(2, "SI_KERNEL", None, "default"));
        let inc = c.observe(&exit(2)).pop().unwrap();
        assert_eq!(outcome(&inc), (Outcome::Killed, "SIGINT".into(), 2));
    }

    /// Recover, then panic again from the deferred function that recovered
    /// (log and re-panic): runtime.recovery never runs. The first panic's
    /// story ends recovered by that function; the second is the crash,
    /// related to the first.
    #[test]
    fn recover_then_re_panic_is_two_stories() {
        let mut c = Correlator::default();
        assert!(c.observe(&go("panic", 1, 101, "original")).is_empty());
        let mut again = go("panic", 1, 101, "re-panic: original");
        if let Body::Panic(p) = &mut again.body {
            p.after_recovered = true;
            p.frames = vec![crate::record::Frame {
                pc: "0x1".into(),
                function: Some("main.main.func1".into()),
                file: Some("main.go".into()),
                line: Some(9),
                inlined: false,
                module: None,
                tail_call: false,
                file_offset: None,
            }];
        }
        let recovered = c.observe(&again);
        assert_eq!(recovered.len(), 1);
        let (first_id, recovered_by) = match &recovered[0].body {
            Body::Incident(i) => {
                assert_eq!(i.outcome, Outcome::Recovered);
                assert_eq!(i.cause.message, "original");
                (i.story, i.recovered_by.clone())
            }
            _ => panic!(),
        };
        assert_eq!(
            recovered_by.and_then(|f| f.function),
            Some("main.main.func1".to_owned())
        );
        // printpanics: the chain, oldest first, then exit(2).
        for message in ["original", "re-panic: original"] {
            let mut printed = go("fatal", 1, 101, message);
            if let Body::Fatal(f) = &mut printed.body {
                f.source = "panic";
            }
            c.observe(&printed);
        }
        let crashed = c.observe(&exit(2 << 8));
        assert_eq!(crashed.len(), 1);
        match &crashed[0].body {
            Body::Incident(i) => {
                assert_eq!(i.outcome, Outcome::Crashed);
                assert_eq!(i.cause.message, "re-panic: original");
                assert_eq!(i.related, vec![first_id]);
                assert_ne!(i.story, first_id);
            }
            _ => panic!(),
        }
    }
}
