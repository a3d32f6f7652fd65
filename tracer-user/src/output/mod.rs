//! Where records go: NDJSON (one object per line; whole lines written at once)
//! or the human timeline, to stdout, stderr (`run`'s default) or a 0600 file.

mod human;

use std::{
    fs::OpenOptions,
    io::{self, IsTerminal as _, Write},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use anyhow::{Context as _, Result};

use crate::record::Record;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Ndjson,
}

/// When the human view is coloured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    Always,
    Never,
}

/// Where records go when no file is named: stdout, or stderr for `run`
/// (as strace and time do: the program's own stdout stays clean for pipes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub struct Output {
    /// Human view: the date and zone in timestamps; UTC.
    dates: bool,
    utc: bool,
    /// Human view: every fork/exec/exit shown (`-v`); else the processes
    /// forked or exec'd under a traced one are shown only when something
    /// happens to them (a signal, an incident, an exit that is not 0).
    all_events: bool,
    /// Their pids, whose attach line was held back.
    quiet_pids: std::collections::HashSet<u32>,
    /// Go processes started with GOTRACEBACK=system or crash: their
    /// runtime prints its own frames, and so does the human view.
    system_tracebacks: std::collections::HashSet<u32>,
    /// Human view: C++ throws, per (pid, tid), until their thread shows
    /// they were not caught (a signal on it, an incident). A throw that
    /// another throw or the process's exit follows was caught: a program
    /// that throws as control flow would bury its one crash (`-v` shows
    /// every throw).
    held_throws: std::collections::HashMap<(u32, u32), Vec<Record>>,
    format: Format,
    sink: Box<dyn Write>,
    color: bool,
    /// Human view: Go runtime frames shown too (`--all-frames`).
    all_frames: bool,
    /// The records rendered and not written yet: one record, or a batch
    /// ([`Self::emit_buffered`]), written whole by one write.
    line: Vec<u8>,
}

impl Output {
    /// To `path`, or stdout when none is named (or `-`).
    pub fn new(format: Format, path: Option<&Path>) -> Result<Self> {
        Self::new_or(format, path, Stream::Stdout)
    }

    /// To `path`, to stdout for `-`, else to `default`.
    pub fn new_or(format: Format, path: Option<&Path>, default: Stream) -> Result<Self> {
        let (sink, is_tty): (Box<dyn Write>, bool) = match path {
            Some(p) if p != Path::new("-") => {
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(p)
                    .with_context(|| format!("cannot create output file {}", p.display()))?;
                // An existing file keeps its mode on open: records carry
                // program data, so make it private either way.
                f.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot make {} private", p.display()))?;
                (Box::new(f), false)
            }
            Some(_) => (Box::new(io::stdout()), io::stdout().is_terminal()),
            None => match default {
                Stream::Stdout => (Box::new(io::stdout()), io::stdout().is_terminal()),
                Stream::Stderr => (Box::new(io::stderr()), io::stderr().is_terminal()),
            },
        };
        let color = is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Ok(Self {
            dates: false,
            utc: false,
            all_events: false,
            quiet_pids: Default::default(),
            system_tracebacks: Default::default(),
            held_throws: Default::default(),
            format,
            sink,
            color,
            all_frames: false,
            line: Vec::with_capacity(4096),
        })
    }

    /// `--color`: auto (a terminal, and NO_COLOR unset), always, never.
    pub fn with_color(mut self, when: ColorWhen) -> Self {
        match when {
            ColorWhen::Auto => {}
            ColorWhen::Always => self.color = true,
            ColorWhen::Never => self.color = false,
        }
        self
    }

    /// Human view: timestamps with date and zone (`dates`), in UTC
    /// instead of local time (`utc`).
    pub fn with_time(mut self, dates: bool, utc: bool) -> Self {
        self.dates = dates;
        self.utc = utc;
        self
    }

    /// Human view: show the Go runtime's own frames too.
    pub fn with_all_frames(mut self, all: bool) -> Self {
        self.all_frames = all;
        self
    }

    /// Writes nothing (the daemon with its own outputs configured).
    pub fn discard() -> Self {
        Self {
            dates: false,
            utc: false,
            all_events: false,
            quiet_pids: Default::default(),
            system_tracebacks: Default::default(),
            held_throws: Default::default(),
            format: Format::Ndjson,
            sink: Box::new(io::sink()),
            color: false,
            all_frames: false,
            line: Vec::new(),
        }
    }

    /// Human view: show every fork, exec and exit (`-v`).
    pub fn with_all_events(mut self, all: bool) -> Self {
        self.all_events = all;
        self
    }

    /// Whether the human view leaves `record` out: a script's healthy
    /// children (`sh -c 'for …'`) would bury the one crash that matters
    /// under three lines each. NDJSON has every record.
    fn held_back(&mut self, record: &Record) -> bool {
        if self.all_events || self.format != Format::Human {
            return false;
        }
        let Some(pid) = record.pid else {
            return false;
        };
        match &record.body {
            // A child; or what a child exec'd. A process asked for that
            // execs (`run -- env X=1 prog`) keeps its header.
            crate::record::Body::Attach(a)
                if a.reason == "fork" || (a.reason == "exec" && self.quiet_pids.contains(&pid)) =>
            {
                self.quiet_pids.insert(pid);
                true
            }
            crate::record::Body::Exit { exit } if self.quiet_pids.contains(&pid) => {
                self.quiet_pids.remove(&pid);
                matches!(exit, crate::record::ExitStatus::Code { code: 0 })
            }
            _ => false,
        }
    }

    /// Whether `record` is a C++ throw the human view holds until its
    /// thread shows it was not caught; forgets the throws of a process
    /// that exits (they were caught).
    fn hold_throw(&mut self, record: &Record) -> bool {
        use crate::record::Body;
        /// Threads with throws held, at most (a bound on memory: past it
        /// the oldest news is dropped, never the program's output).
        const MAX_THREADS: usize = 1024;
        const PER_THREAD: usize = 8;
        if self.all_events || self.format != Format::Human {
            return false;
        }
        let (Some(pid), Some(tid)) = (record.pid, record.tid) else {
            return false;
        };
        match &record.body {
            Body::Exception(e) if e.language == "c++" => {
                if self.held_throws.len() >= MAX_THREADS
                    && !self.held_throws.contains_key(&(pid, tid))
                {
                    self.held_throws.clear();
                }
                let held = self.held_throws.entry((pid, tid)).or_default();
                // A new throw (not the same exception thrown again): the
                // one before it on this thread was caught.
                if e.rethrown_by.is_none() {
                    held.clear();
                }
                if held.len() < PER_THREAD {
                    held.push(record.clone());
                }
                true
            }
            Body::Exit { .. } => {
                self.held_throws.retain(|(p, _), _| *p != pid);
                false
            }
            _ => false,
        }
    }

    /// The throws held for the thread of a signal or an incident (not
    /// caught), and for a rethrow's, those of the thread that first threw
    /// it: shown before it.
    fn uncaught_throws(&mut self, record: &Record) -> Vec<Record> {
        use crate::record::Body;
        if self.held_throws.is_empty()
            || !matches!(record.body, Body::Signal(_) | Body::Incident(_))
        {
            return Vec::new();
        }
        let (Some(pid), Some(tid)) = (record.pid, record.tid) else {
            return Vec::new();
        };
        let mut out = self.held_throws.remove(&(pid, tid)).unwrap_or_default();
        let first_threads: Vec<u32> = out
            .iter()
            .filter_map(|r| match &r.body {
                Body::Exception(e) => e.thrown_by_tid.filter(|&t| t != tid),
                _ => None,
            })
            .collect();
        for t in first_threads {
            if let Some(mut first) = self.held_throws.remove(&(pid, t)) {
                first.append(&mut out);
                out = first;
            }
        }
        out
    }

    /// Renders and writes one record.
    pub fn emit(&mut self, record: &Record) -> Result<()> {
        let rendered = self.emit_buffered(record);
        let written = self.flush();
        rendered.and(written)
    }

    /// Renders a record after the ones not written yet; [`Self::flush`]
    /// writes them, whole lines in one write (a batch of records costs one
    /// system call, not one each: the export thread's time in a signal
    /// storm was mostly writes).
    pub fn emit_buffered(&mut self, record: &Record) -> Result<()> {
        if self.hold_throw(record) {
            return Ok(());
        }
        for earlier in self.uncaught_throws(record) {
            self.render(&earlier)?;
        }
        self.render(record)
    }

    fn render(&mut self, record: &Record) -> Result<()> {
        let start = self.line.len();
        let rendered = self.render_into_line(record);
        if rendered.is_err() {
            // No half record before the next one.
            self.line.truncate(start);
        }
        rendered
    }

    fn render_into_line(&mut self, record: &Record) -> Result<()> {
        if let (Some(pid), crate::record::Body::Attach(a)) = (record.pid, &record.body) {
            let system = a
                .gotraceback
                .as_deref()
                .is_some_and(|v| crate::golang::traceback_level(v) >= 2);
            if system {
                self.system_tracebacks.insert(pid);
            } else {
                self.system_tracebacks.remove(&pid);
            }
        }
        if let (Some(pid), crate::record::Body::Exit { .. }) = (record.pid, &record.body) {
            self.system_tracebacks.remove(&pid);
        }
        if self.held_back(record) {
            return Ok(());
        }
        match self.format {
            Format::Ndjson => {
                serde_json::to_writer(&mut self.line, record).context("encoding a record")?;
                self.line.push(b'\n');
            }
            Format::Human => human::write(
                &mut self.line,
                record,
                human::Options {
                    color: self.color,
                    all_frames: self.all_frames,
                    system_frames: record
                        .pid
                        .is_some_and(|p| self.system_tracebacks.contains(&p)),
                    dates: self.dates,
                    utc: self.utc,
                },
            )?,
        }
        Ok(())
    }

    /// One line of already rendered text (inspection commands).
    pub fn line(&mut self, text: &str) -> Result<()> {
        self.line.extend_from_slice(text.as_bytes());
        self.line.push(b'\n');
        self.flush_line()
    }

    /// One line of already rendered text, written with those before it
    /// once 64 KiB are waiting (call [`Output::flush`] at the end): for a
    /// command that answers a whole input at once (`symbolize -`), where a
    /// write per line was a third of the time.
    pub fn line_batched(&mut self, text: &str) -> Result<()> {
        self.line.extend_from_slice(text.as_bytes());
        self.line.push(b'\n');
        if self.line.len() >= 64 * 1024 {
            self.flush_line()?;
        }
        Ok(())
    }

    /// Writes what was rendered, in one write: whoever tails the file (a
    /// log shipper, a test) never sees half a line.
    pub fn flush(&mut self) -> Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        self.flush_line()
    }

    fn flush_line(&mut self) -> Result<()> {
        let written = self
            .sink
            .write_all(&self.line)
            .and_then(|()| self.sink.flush());
        self.line.clear();
        written.context("writing output")
    }
}

/// A record as the human timeline renders it, without colour (files).
pub fn render_human(out: &mut Vec<u8>, record: &Record) -> Result<()> {
    human::write(out, record, human::Options::default()).context("rendering a record")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Keeps each write apart.
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_is_whole_lines_in_one_write_and_a_record_alone_one_write() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let mut out = Output::discard();
        out.sink = Box::new(Writes(Arc::clone(&writes)));
        let clock = crate::record::Clock::new();
        let records: Vec<Record> = (1..=3)
            .map(|n| Record::lost(&clock, n, "test".into(), "signal"))
            .collect();
        for r in &records {
            out.emit_buffered(r).unwrap();
        }
        out.flush().unwrap();
        out.emit(&records[0]).unwrap();
        // Nothing rendered: nothing written.
        out.flush().unwrap();
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 2, "{writes:?}");
        let batch = String::from_utf8(writes[0].clone()).unwrap();
        let lines: Vec<&str> = batch.lines().collect();
        assert_eq!(lines.len(), 3);
        for (n, line) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["count"], n as u64 + 1);
        }
        assert!(batch.ends_with('\n'));
        assert_eq!(
            String::from_utf8(writes[1].clone())
                .unwrap()
                .lines()
                .count(),
            1
        );
    }
}
