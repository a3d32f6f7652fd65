//! Correlates events into incidents: one story per process thread, from its
//! cause (the first crash-relevant event) to its outcome (the exit).
//!
//! Pure logic over [`Record`]s so it is unit-tested without a kernel.

use std::collections::HashMap;

use crate::{
    record::{Body, Cause, ExitStatus, Incident, Outcome, Record, SignalInfo, Thread},
    signals,
};

struct Story {
    events: Vec<Record>,
}

#[derive(Default)]
pub struct Correlator {
    open: HashMap<u32, Story>,
}

impl Correlator {
    /// Feeds one event; returns an incident record when this event closes a story.
    pub fn observe(&mut self, record: &Record) -> Option<Record> {
        let pid = record.pid?;
        match &record.body {
            Body::Signal(ev) => {
                if opens_story(&ev.signal) || self.open.contains_key(&pid) {
                    self.open
                        .entry(pid)
                        .or_insert_with(|| Story { events: Vec::new() })
                        .events
                        .push(record.clone());
                }
                None
            }
            Body::Exit { exit } => {
                let story = self.open.remove(&pid);
                close(story, record, *exit)
            }
            _ => None,
        }
    }

    /// Stories still open (the process is alive).
    #[cfg(test)]
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

/// A signal that starts a crash story: a fault (even when a handler catches
/// it: Go turns it into a panic, C programs may longjmp), or any signal
/// delivered with its default, fatal action. A handled SIGTERM or SIGHUP is
/// a request, not a crash, and only joins a story already open.
fn opens_story(sig: &SignalInfo) -> bool {
    signals::is_fault(sig.number) || sig.number == 6 || sig.disposition == "default"
}

fn close(story: Option<Story>, exit_record: &Record, exit: ExitStatus) -> Option<Record> {
    let pid = exit_record.pid;
    let (outcome, cause, frames, thread, mut events, first) = match story {
        Some(story) => {
            let first = story.events.first()?.clone();
            let Body::Signal(cause_ev) = &first.body else {
                return None;
            };
            let outcome = match exit {
                ExitStatus::Code { .. } => Outcome::Exited,
                ExitStatus::Signal { signal, .. } => {
                    let killing = story.events.iter().rev().find_map(|r| match &r.body {
                        Body::Signal(ev) if ev.signal.number == signal => Some(&ev.signal),
                        _ => None,
                    });
                    signal_outcome(signal, killing, pid)
                }
            };
            (
                outcome,
                Cause {
                    kind: "signal",
                    message: cause_ev.signal.name.clone(),
                },
                cause_ev.frames.clone(),
                Thread {
                    tid: first.tid,
                    goid: first.goid,
                },
                story.events,
                first,
            )
        }
        None => {
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
            (
                signal_outcome(signal, None, pid),
                Cause {
                    kind: "exit",
                    message: signal_name.to_owned(),
                },
                Vec::new(),
                Thread {
                    tid: exit_record.tid,
                    goid: None,
                },
                Vec::new(),
                exit_record.clone(),
            )
        }
    };
    events.push(exit_record.clone());
    Some(Record {
        kind: "incident",
        time: exit_record.time.clone(),
        ts_ns: exit_record.ts_ns,
        pid,
        tid: first.tid,
        comm: first.comm.clone(),
        exe: first.exe.clone().or_else(|| exit_record.exe.clone()),
        goid: first.goid,
        schema: exit_record.schema,
        body: Body::Incident(Box::new(Incident {
            outcome,
            cause,
            recovered_by: None,
            exit: Some(exit),
            frames,
            events,
            thread,
        })),
    })
}

/// Crashed or killed, for a process that died of `signal`: killed when
/// another process sent it, or the kernel sent SIGKILL (the OOM killer);
/// crashed for faults and signals the process sent itself (abort, raise).
fn signal_outcome(signal: i32, killing: Option<&SignalInfo>, pid: Option<u32>) -> Outcome {
    match killing {
        Some(info) if info.sent_by_other_process(pid) => Outcome::Killed,
        Some(info) if signal == 9 && info.code.as_deref() == Some("SI_KERNEL") => Outcome::Killed,
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
            body,
        }
    }

    fn signal(number: i32, code: &str, sender: Option<u32>, disposition: &'static str) -> Record {
        let zero = tracer_common::Registers::default();
        base(
            "signal",
            Body::Signal(SignalEvent {
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
            }),
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

    #[test]
    fn segfault_is_crashed() {
        let mut c = Correlator::default();
        assert!(
            c.observe(&signal(11, "SEGV_MAPERR", None, "default"))
                .is_none()
        );
        let inc = c.observe(&exit(11 | 0x80)).expect("incident");
        assert_eq!(outcome(&inc), (Outcome::Crashed, "SIGSEGV".into(), 2));
        assert_eq!(c.open_count(), 0);
    }

    #[test]
    fn abort_sent_to_self_is_crashed() {
        let mut c = Correlator::default();
        c.observe(&signal(6, "SI_TKILL", Some(100), "default"));
        let inc = c.observe(&exit(6)).unwrap();
        assert_eq!(outcome(&inc).0, Outcome::Crashed);
    }

    #[test]
    fn sigterm_from_other_process_is_killed() {
        let mut c = Correlator::default();
        c.observe(&signal(15, "SI_USER", Some(7), "default"));
        assert_eq!(outcome(&c.observe(&exit(15)).unwrap()).0, Outcome::Killed);
    }

    #[test]
    fn oom_kill_is_killed() {
        let mut c = Correlator::default();
        c.observe(&signal(9, "SI_KERNEL", None, "default"));
        assert_eq!(outcome(&c.observe(&exit(9)).unwrap()).0, Outcome::Killed);
    }

    #[test]
    fn handled_sigterm_then_clean_exit_is_no_incident() {
        let mut c = Correlator::default();
        c.observe(&signal(15, "SI_USER", Some(7), "handler"));
        assert!(c.observe(&exit(0)).is_none());
    }

    #[test]
    fn handled_fault_then_exit_is_exited() {
        let mut c = Correlator::default();
        c.observe(&signal(11, "SEGV_MAPERR", None, "handler"));
        let inc = c.observe(&exit(1 << 8)).unwrap();
        assert_eq!(outcome(&inc).0, Outcome::Exited);
    }

    #[test]
    fn plain_exit_is_no_incident_but_unexplained_kill_is() {
        let mut c = Correlator::default();
        assert!(c.observe(&exit(3 << 8)).is_none());
        let inc = c.observe(&exit(9)).unwrap();
        assert_eq!(outcome(&inc), (Outcome::Killed, "SIGKILL".into(), 1));
    }
}
