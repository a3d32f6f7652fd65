//! Crash loops: one executable (or, without one, one cgroup) dying again
//! and again — what a supervisor's restarts hide. The daemon counts the
//! deaths told by incidents (crashed or killed) and says so once a
//! program has died `deaths` times within `window`: a `crashloop` record,
//! and again after each further `deaths` deaths.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::{Body, Clock, Outcome, Record, SCHEMA};

/// When a program is in a crash loop: `deaths` within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub deaths: u32,
    pub window: Duration,
}

/// Extension (type "crashloop"): a program keeps dying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashLoop {
    /// What died: the executable's path, else the process's cgroup.
    pub program: String,
    /// Deaths within the window, and the window.
    pub deaths: u32,
    pub window_seconds: u64,
    /// The dead processes, oldest first, and when the first one died.
    pub pids: Vec<u32>,
    pub first_time: String,
    /// Each distinct crash's fingerprint, most frequent first: one
    /// fingerprint is one bug.
    pub fingerprints: Vec<String>,
}

impl CrashLoop {
    /// "/usr/bin/app died 5 times in 60 s (pids 1, 2, 3, 4, 5)".
    pub fn line(&self) -> String {
        let pids = self
            .pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} died {} times in {} s (pids {pids})",
            self.program, self.deaths, self.window_seconds
        )
    }
}

#[derive(Default)]
pub struct CrashLoops {
    rule: Option<Rule>,
    /// program → its recent deaths (ts_ns, pid, fingerprint, time).
    deaths: HashMap<String, VecDeque<(u64, u32, String, String)>>,
}

/// Programs whose deaths are remembered at most (a daemon runs for months).
const MAX_PROGRAMS: usize = 4096;

impl CrashLoops {
    pub fn set_rule(&mut self, rule: Option<Rule>) {
        self.rule = rule.filter(|r| r.deaths > 1 && !r.window.is_zero());
        if self.rule.is_none() {
            self.deaths.clear();
        }
    }

    /// Counts an incident's death; the `crashloop` record it completes.
    pub fn observe(&mut self, incident: &Record, clock: &Clock) -> Option<Record> {
        let rule = self.rule?;
        let Body::Incident(inc) = &incident.body else {
            return None;
        };
        if !matches!(inc.outcome, Outcome::Crashed | Outcome::Killed) {
            return None;
        }
        let program = incident.exe.clone().or_else(|| {
            incident
                .container
                .as_ref()
                .and_then(|c| c.cgroup.clone())
                .map(|c| format!("cgroup {c}"))
        })?;
        let pid = incident.pid?;
        if self.deaths.len() >= MAX_PROGRAMS && !self.deaths.contains_key(&program) {
            self.deaths.clear();
        }
        let window_ns = u64::try_from(rule.window.as_nanos()).unwrap_or(u64::MAX);
        let now = incident.ts_ns;
        let deaths = self.deaths.entry(program.clone()).or_default();
        // One death per process (several stories of one process close at once).
        if deaths.iter().any(|(_, p, _, _)| *p == pid) {
            return None;
        }
        deaths.push_back((now, pid, inc.fingerprint.clone(), incident.time.clone()));
        while deaths
            .front()
            .is_some_and(|(t, _, _, _)| now.saturating_sub(*t) > window_ns)
        {
            deaths.pop_front();
        }
        if deaths.len() < rule.deaths as usize {
            return None;
        }
        // Said: the next report needs as many deaths again.
        let told: Vec<_> = deaths.drain(..).collect();
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (_, _, fp, _) in &told {
            match counts.iter_mut().find(|(f, _)| f == fp) {
                Some((_, n)) => *n += 1,
                None => counts.push((fp.clone(), 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let body = CrashLoop {
            program,
            deaths: told.len() as u32,
            window_seconds: rule.window.as_secs(),
            pids: told.iter().map(|(_, p, _, _)| *p).collect(),
            first_time: told.first().map(|d| d.3.clone()).unwrap_or_default(),
            fingerprints: counts.into_iter().map(|(f, _)| f).collect(),
        };
        Some(Record {
            schema: SCHEMA,
            kind: "crashloop",
            time: clock.rfc3339(now),
            ts_ns: now,
            pid: incident.pid,
            tid: incident.tid,
            comm: incident.comm.clone(),
            exe: incident.exe.clone(),
            goid: None,
            container: incident.container.clone(),
            body: Body::CrashLoop(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(exe: &str, pid: u32, secs: u64, outcome: &str, fp: &str) -> Record {
        let v = serde_json::json!({
            "schema": "crashtrace.v1", "type": "incident", "time": format!("t{secs}"),
            "ts_ns": secs * 1_000_000_000, "pid": pid, "tid": pid, "comm": "app",
            "exe": exe, "story": pid, "outcome": outcome,
            "cause": {"type": "signal", "message": "SIGSEGV"},
            "recovered_by": null, "exit": {"signal": 11, "signal_name": "SIGSEGV",
            "core_dumped": false}, "frames": [], "events": [],
            "thread": {"tid": pid, "goid": null}, "fingerprint": fp,
        });
        Record::from_value(v).unwrap()
    }

    #[test]
    fn five_deaths_in_a_minute_are_a_crash_loop_once() {
        let clock = Clock::new();
        let mut loops = CrashLoops::default();
        loops.set_rule(Some(Rule {
            deaths: 5,
            window: Duration::from_secs(60),
        }));
        // Four deaths, then a gap: the window moves on.
        for (i, t) in [0, 10, 20, 30].into_iter().enumerate() {
            assert!(
                loops
                    .observe(
                        &incident("/bin/app", 10 + i as u32, t, "crashed", "a"),
                        &clock
                    )
                    .is_none()
            );
        }
        assert!(
            loops
                .observe(&incident("/bin/app", 20, 95, "killed", "b"), &clock)
                .is_none()
        );
        // Recovered panics and other programs do not count.
        assert!(
            loops
                .observe(&incident("/bin/app", 21, 96, "recovered", "a"), &clock)
                .is_none()
        );
        assert!(
            loops
                .observe(&incident("/bin/other", 22, 96, "crashed", "a"), &clock)
                .is_none()
        );
        for (i, t) in [97, 98, 99].into_iter().enumerate() {
            assert!(
                loops
                    .observe(
                        &incident("/bin/app", 30 + i as u32, t, "crashed", "a"),
                        &clock
                    )
                    .is_none()
            );
        }
        // The same process's second story is not a second death.
        assert!(
            loops
                .observe(&incident("/bin/app", 32, 99, "crashed", "a"), &clock)
                .is_none()
        );
        let r = loops
            .observe(&incident("/bin/app", 40, 100, "crashed", "a"), &clock)
            .expect("the fifth death within 60 s");
        let Body::CrashLoop(c) = &r.body else {
            panic!()
        };
        assert_eq!(c.program, "/bin/app");
        assert_eq!(c.deaths, 5);
        assert_eq!(c.pids, [20, 30, 31, 32, 40]);
        assert_eq!(c.fingerprints, ["a", "b"]);
        assert_eq!(r.kind, "crashloop");
        // Said once: the next one takes five more deaths.
        for pid in 50..54 {
            assert!(
                loops
                    .observe(&incident("/bin/app", pid, 101, "crashed", "a"), &clock)
                    .is_none()
            );
        }
        assert!(
            loops
                .observe(&incident("/bin/app", 54, 101, "crashed", "a"), &clock)
                .is_some()
        );
        // Off.
        loops.set_rule(None);
        for pid in 60..70 {
            assert!(
                loops
                    .observe(&incident("/bin/app", pid, 102, "crashed", "a"), &clock)
                    .is_none()
            );
        }
    }
}
