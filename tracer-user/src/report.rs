//! `crashtrace report FILE…|-`: recorded NDJSON (a file shipped off the
//! host, a log pipeline's copy) rendered as the human timeline. Frames that
//! have no function name but carry their module and file offset are
//! symbolized again when that binary is at hand (the host had no debug
//! info, this machine has it). Lines that are not crashtrace records are
//! counted and skipped, never fatal.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    rc::Rc,
};

use anyhow::Context as _;
use serde_json::Value;

use crate::{
    Failure,
    cli::{ReportArgs, Settings},
    symbolize::{ElfModule, PcKind},
};

pub fn report(common: &Settings, args: &ReportArgs) -> Result<i32, Failure> {
    let redactor = crate::record::Redactor::new(&common.redact)
        .map_err(|e| Failure::Usage(format!("--redact: {e}")))?;
    let mut modules: HashMap<String, Option<Rc<ElfModule>>> = HashMap::new();
    // `--format ndjson` writes the records again (re-symbolized,
    // redacted); `-o` to a file.
    let mut out = crate::output::Output::new(common.format, common.output.as_deref())
        .map_err(Failure::Other)?
        .with_all_frames(common.all_frames)
        .with_color(common.color)
        // Recorded files span days: dates and the zone.
        .with_time(true, common.utc);
    let filter = Filter::new(args).map_err(Failure::Usage)?;
    let mut skipped = 0u64;
    let mut groups = Groups::default();
    for path in &args.files {
        let reader: Box<dyn std::io::BufRead> = if path == &PathBuf::from("-") {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))
                    .map_err(Failure::Other)?,
            ))
        };
        for line in reader.lines() {
            let line = line
                .with_context(|| format!("reading {}", path.display()))
                .map_err(Failure::Other)?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(mut value) = serde_json::from_str::<Value>(&line) else {
                skipped += 1;
                continue;
            };
            resymbolize(&mut value, &mut modules);
            let Ok(mut record) = crate::record::Record::from_value(value) else {
                skipped += 1;
                continue;
            };
            if !filter.keeps(&record) {
                continue;
            }
            if !redactor.is_empty() {
                redactor.apply(&mut record);
            }
            if args.group {
                groups.add(&record);
                continue;
            }
            // The live timeline's renderer: what `run` showed is what
            // `report` shows.
            if out.emit(&record).is_err() {
                return Ok(0); // a closed pipe (| head): done
            }
        }
    }
    if skipped > 0 {
        log::warn!("{skipped} lines were not crashtrace records");
    }
    if args.group {
        for line in groups.lines() {
            if out.line(&line).is_err() {
                break;
            }
        }
    }
    Ok(0)
}

/// `--pid`, `--exe`, `--type`, `--since`, `--until`: which records are
/// shown (and grouped).
struct Filter {
    pids: Vec<u32>,
    exe: Option<glob::Pattern>,
    /// The pattern has no `/`: it names the file, not the path.
    exe_by_name: bool,
    types: Vec<String>,
    since: Option<std::time::SystemTime>,
    until: Option<std::time::SystemTime>,
}

impl Filter {
    fn new(args: &ReportArgs) -> Result<Self, String> {
        let exe = args
            .exe
            .as_deref()
            .map(|e| glob::Pattern::new(e).map_err(|err| format!("--exe {e}: {err}")))
            .transpose()?;
        let now = std::time::SystemTime::now();
        let time = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_time(t, now).ok_or_else(|| format!("{flag} {t}: not a time (try `2026-12-03 08:00:00`, `2026-12-03` or `1h`)")))
                .transpose()
        };
        Ok(Self {
            pids: args.pids.clone(),
            exe_by_name: args.exe.as_deref().is_some_and(|e| !e.contains('/')),
            exe,
            types: args.types.clone(),
            since: time("--since", &args.since)?,
            until: time("--until", &args.until)?,
        })
    }

    fn keeps(&self, r: &crate::record::Record) -> bool {
        if !self.pids.is_empty() && !r.pid.is_some_and(|p| self.pids.contains(&p)) {
            return false;
        }
        if !self.types.is_empty() && !self.types.iter().any(|t| t == r.kind) {
            return false;
        }
        if let Some(pattern) = &self.exe {
            let Some(exe) = r.exe.as_deref() else {
                return false;
            };
            let subject = if self.exe_by_name {
                exe.rsplit('/').next().unwrap_or(exe)
            } else {
                exe
            };
            if !pattern.matches(subject) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(at) = humantime::parse_rfc3339(&r.time) else {
                return false;
            };
            if self.since.is_some_and(|s| at < s) || self.until.is_some_and(|u| at >= u) {
                return false;
            }
        }
        true
    }
}

/// `2026-12-03 08:00:00`, `2026-12-03T08:00:00.5Z` (UTC), `2026-12-03`,
/// or a span before `now` (`90s`, `1h 30min`).
fn parse_time(text: &str, now: std::time::SystemTime) -> Option<std::time::SystemTime> {
    let t = text.trim();
    if let Ok(at) = humantime::parse_rfc3339_weak(t) {
        return Some(at);
    }
    if t.len() == 10
        && let Ok(at) = humantime::parse_rfc3339_weak(&format!("{t} 00:00:00"))
    {
        return Some(at);
    }
    let ago = t.strip_suffix(" ago").unwrap_or(t);
    humantime::parse_duration(ago)
        .ok()
        .and_then(|d| now.checked_sub(d))
}

/// `report --group`: incidents by fingerprint.
#[derive(Default)]
struct Groups {
    /// In order of first appearance.
    groups: Vec<Group>,
}

struct Group {
    fingerprint: String,
    count: u64,
    first: String,
    last: String,
    pids: Vec<u32>,
    /// The latest incident's verdict line.
    verdict: String,
}

impl Groups {
    fn add(&mut self, record: &crate::record::Record) {
        let crate::record::Body::Incident(incident) = &record.body else {
            return;
        };
        let mut text = Vec::new();
        if crate::output::render_human(&mut text, record).is_err() {
            return;
        }
        let verdict = String::from_utf8_lossy(&text).trim_end().to_owned();
        // Records written before fingerprints: each its own group.
        let key = if incident.fingerprint.is_empty() {
            format!("-{}", self.groups.len())
        } else {
            incident.fingerprint.clone()
        };
        let group = match self.groups.iter_mut().find(|g| g.fingerprint == key) {
            Some(g) => g,
            None => {
                self.groups.push(Group {
                    fingerprint: key,
                    count: 0,
                    first: record.time.clone(),
                    last: record.time.clone(),
                    pids: Vec::new(),
                    verdict: String::new(),
                });
                let last = self.groups.len() - 1;
                &mut self.groups[last]
            }
        };
        group.count += 1;
        if record.time < group.first {
            group.first.clone_from(&record.time);
        }
        if record.time >= group.last {
            group.last.clone_from(&record.time);
            group.verdict = verdict;
        }
        if let Some(pid) = record.pid
            && !group.pids.contains(&pid)
        {
            group.pids.push(pid);
        }
    }

    /// Most frequent first: `COUNT× FINGERPRINT first … last … pids …` and
    /// the verdict.
    fn lines(&self) -> Vec<String> {
        let mut groups: Vec<&Group> = self.groups.iter().collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        groups
            .into_iter()
            .map(|g| {
                const SHOWN: usize = 10;
                let mut pids = g
                    .pids
                    .iter()
                    .take(SHOWN)
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                if g.pids.len() > SHOWN {
                    pids.push_str(&format!(",… ({} pids)", g.pids.len()));
                }
                let fingerprint = if g.fingerprint.starts_with('-') {
                    "-"
                } else {
                    &g.fingerprint
                };
                format!(
                    "{}× {fingerprint} first {} last {} pids {pids}\n    {}",
                    g.count, g.first, g.last, g.verdict
                )
            })
            .collect()
    }
}

/// Frames without a function name, in a module present here, looked up
/// again (in place, recursively through an incident's events).
fn resymbolize(record: &mut Value, modules: &mut HashMap<String, Option<Rc<ElfModule>>>) {
    if let Some(frames) = record.get_mut("frames").and_then(Value::as_array_mut) {
        let mut out = Vec::with_capacity(frames.len());
        for (i, f) in frames.drain(..).enumerate() {
            out.extend(resolve_frame(f, i == 0, modules));
        }
        *frames = out;
    }
    if let Some(events) = record.get_mut("events").and_then(Value::as_array_mut) {
        for e in events {
            resymbolize(e, modules);
        }
    }
}

fn resolve_frame(
    frame: Value,
    first: bool,
    modules: &mut HashMap<String, Option<Rc<ElfModule>>>,
) -> Vec<Value> {
    let named = frame["function"].as_str().is_some();
    let (Some(module), Some(offset)) = (
        frame["module"].as_str().map(str::to_owned),
        frame["file_offset"]
            .as_str()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()),
    ) else {
        return vec![frame];
    };
    if named {
        return vec![frame];
    }
    let m = modules.entry(module.clone()).or_insert_with(|| {
        ElfModule::open(std::path::Path::new(&module), &module)
            .ok()
            .map(Rc::new)
    });
    let Some(m) = m else {
        return vec![frame];
    };
    let Some(vaddr) = m.file_offset_to_vaddr(offset) else {
        return vec![frame];
    };
    let kind = if first {
        PcKind::Exact
    } else {
        PcKind::ReturnAddress
    };
    let locations = m.lookup(vaddr, kind);
    if locations.is_empty() {
        return vec![frame];
    }
    let last = locations.len() - 1;
    locations
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let mut f = frame.clone();
            f["function"] = l.function.map_or(Value::Null, Value::from);
            f["file"] = l.file.map_or(Value::Null, Value::from);
            f["line"] = l.line.map_or(Value::Null, Value::from);
            f["inlined"] = Value::from(i != last);
            f["resymbolized"] = Value::from(true);
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: &str, pid: u32, exe: &str, time: &str) -> crate::record::Record {
        let value = serde_json::json!({
            "schema": "crashtrace.v1", "type": kind, "time": time, "ts_ns": 1,
            "pid": pid, "tid": pid, "comm": "x", "exe": exe,
            "exit": {"code": 0},
        });
        crate::record::Record::from_value(value).expect("a record")
    }

    fn args(f: impl FnOnce(&mut ReportArgs)) -> ReportArgs {
        let mut a = ReportArgs {
            files: vec![],
            group: false,
            pids: vec![],
            exe: None,
            types: vec![],
            since: None,
            until: None,
            redaction: Default::default(),
            view: Default::default(),
        };
        f(&mut a);
        a
    }

    #[test]
    fn times_as_journalctl_takes_them() {
        let now = humantime::parse_rfc3339("2026-12-03T10:00:00Z").unwrap();
        let at = |t| parse_time(t, now).map(|s| humantime::format_rfc3339(s).to_string());
        assert_eq!(
            at("2026-12-03 08:00:00").as_deref(),
            Some("2026-12-03T08:00:00Z")
        );
        assert_eq!(
            at("2026-12-03T08:00:00.5Z").as_deref(),
            Some("2026-12-03T08:00:00.500000000Z")
        );
        assert_eq!(at("2026-12-03").as_deref(), Some("2026-12-03T00:00:00Z"));
        assert_eq!(at("90min").as_deref(), Some("2026-12-03T08:30:00Z"));
        assert_eq!(at("1h ago").as_deref(), Some("2026-12-03T09:00:00Z"));
        assert_eq!(at("yesterdayish"), None);
    }

    #[test]
    fn filters_by_pid_type_exe_and_time() {
        let r = record(
            "exit",
            42,
            "/srv/app/bin/api",
            "2026-12-03T08:13:19.754486176Z",
        );
        let keeps = |f: &dyn Fn(&mut ReportArgs)| Filter::new(&args(f)).unwrap().keeps(&r);
        assert!(keeps(&|_| {}));
        assert!(keeps(&|a| a.pids = vec![7, 42]));
        assert!(!keeps(&|a| a.pids = vec![7]));
        assert!(keeps(&|a| a.types = vec!["signal".into(), "exit".into()]));
        assert!(!keeps(&|a| a.types = vec!["incident".into()]));
        assert!(keeps(&|a| a.exe = Some("api".into())));
        assert!(keeps(&|a| a.exe = Some("a*".into())));
        assert!(keeps(&|a| a.exe = Some("/srv/*/bin/api".into())));
        assert!(!keeps(&|a| a.exe = Some("/srv/api".into())));
        assert!(!keeps(&|a| a.exe = Some("bin".into())));
        assert!(keeps(&|a| a.since = Some("2026-12-03 08:13:19".into())));
        assert!(!keeps(&|a| a.since = Some("2026-12-03 08:13:20".into())));
        assert!(keeps(&|a| a.until = Some("2026-12-03 08:13:20".into())));
        assert!(!keeps(&|a| a.until = Some("2026-12-03".into())));
        assert!(Filter::new(&args(|a| a.since = Some("soon".into()))).is_err());
        assert!(Filter::new(&args(|a| a.exe = Some("[".into()))).is_err());
    }
}
