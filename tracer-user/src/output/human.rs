//! The human timeline: a header per attach, a line per event with its stack
//! indented under it, and a one-line verdict per incident.

use std::io::{self, Write};

use crate::{
    record::{Body, Outcome, Record},
    symbolize::Frame,
};

const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[1;32m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

struct Style {
    color: bool,
    /// How a Go record's frames are shown.
    go: GoView,
}

/// Go frames as the runtime's traceback prints them, at its level.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GoView {
    /// Not a Go record, or `--all-frames`: every frame as recorded.
    Raw,
    /// GOTRACEBACK=single or all: the runtime's own frames hidden.
    Traceback,
    /// GOTRACEBACK=system or crash: every frame, `runtime.gopanic`
    /// printed as `panic`.
    System,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

/// How the timeline is rendered.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub color: bool,
    /// Go stacks with the runtime's own frames (else as its traceback
    /// prints them).
    pub all_frames: bool,
    /// The process's Go runtime prints its own frames (GOTRACEBACK=system
    /// or crash): so does the view.
    pub system_frames: bool,
    /// Timestamps with the date and the zone (`report`: records span days);
    /// live views show the time of day only, as strace -t does.
    pub dates: bool,
    /// UTC instead of the local time zone.
    pub utc: bool,
}

/// A record's time (RFC 3339, UTC) as the human view shows it: local time
/// (or UTC) of day with microseconds, with the date and zone if asked.
fn clock_of(time: &str, dates: bool, utc: bool) -> String {
    let Ok(at) = humantime::parse_rfc3339(time) else {
        return time.to_owned();
    };
    let Ok(since) = at.duration_since(std::time::UNIX_EPOCH) else {
        return time.to_owned();
    };
    let secs = since.as_secs() as libc::time_t;
    // SAFETY: tm is plain data; the *_r variants write only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        if utc {
            !libc::gmtime_r(&secs, &mut tm).is_null()
        } else {
            !libc::localtime_r(&secs, &mut tm).is_null()
        }
    };
    if !ok {
        return time.to_owned();
    }
    let micros = since.subsec_micros();
    let day = format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    );
    if !dates {
        return day;
    }
    let zone = if utc || tm.tm_zone.is_null() {
        "UTC".to_owned()
    } else {
        // SAFETY: localtime_r points tm_zone at a NUL-terminated static name.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    format!(
        "{:04}-{:02}-{:02} {day} {zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday
    )
}

pub fn write(w: &mut dyn Write, r: &Record, opts: Options) -> io::Result<()> {
    let s = Style {
        color: opts.color,
        go: if r.goid.is_none() || opts.all_frames {
            GoView::Raw
        } else if opts.system_frames {
            GoView::System
        } else {
            GoView::Traceback
        },
    };
    let clock = clock_of(&r.time, opts.dates, opts.utc);
    let clock = clock.as_str();
    let who = format!(
        "pid {} tid {} ({})",
        opt(r.pid),
        opt(r.tid),
        r.comm.as_deref().unwrap_or("?")
    );
    match &r.body {
        Body::Attach(a) => writeln!(
            w,
            "{} attached to pid {} {} [{}, debuginfo: {}, {}]",
            s.paint(BOLD, "==>"),
            opt(r.pid),
            r.exe.as_deref().unwrap_or("?"),
            a.runtime_version.as_deref().unwrap_or(a.runtime),
            a.debuginfo,
            a.reason
        ),
        Body::Signal(ev) => {
            let sig = &ev.signal;
            let mut line = format!("{} {}", sig.name, paren(sig.code.as_deref()));
            if let Some(addr) = &sig.addr {
                line.push_str(&format!(" at {addr}"));
            }
            if let Some(sender) = sig.sender_pid {
                line.push_str(&format!(
                    " from pid {sender} ({})",
                    sig.sender_comm.as_deref().unwrap_or("?")
                ));
            }
            if sig.disposition != "default" {
                line.push_str(&format!(" [{}]", sig.disposition));
            }
            writeln!(w, "{clock} {who} {}", s.paint(YELLOW, line.trim_end()))?;
            write_frames(w, &ev.frames, &s)?;
            write_cut(w, ev.frames_truncated, ev.truncated_by.as_deref(), &s)
        }
        Body::Exit { exit } => writeln!(w, "{clock} pid {} {}", opt(r.pid), exit.describe()),
        Body::Panic(p) => {
            let ty = p
                .value_type
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default();
            let line = format!("panic: {}{ty}", p.message);
            writeln!(
                w,
                "{clock} {who}{} {}",
                goroutine(r),
                s.paint(YELLOW, &line)
            )?;
            write_frames(w, &p.frames, &s)
        }
        Body::Fatal(f) => {
            let line = match f.source {
                "panic" if f.recovered => format!("panic: {} [recovered] (fatal)", f.message),
                "panic" => format!("panic: {} (fatal)", f.message),
                _ => format!("fatal error: {}", f.message),
            };
            writeln!(w, "{clock} {who}{} {}", goroutine(r), s.paint(RED, &line))?;
            write_frames(w, &f.frames, &s)
        }
        Body::Sigpanic(sp) => {
            let sig = &sp.signal;
            let mut line = format!("sigpanic: {} {}", sig.name, paren(sig.code.as_deref()));
            if let Some(addr) = &sig.addr {
                line.push_str(&format!(" at {addr}"));
            }
            if sp.on_system_stack {
                line.push_str(&format!(
                    " (pc {}) on the system stack: no panic",
                    sp.fault_pc
                ));
            } else {
                line.push_str(&format!(" (pc {}) becomes a panic", sp.fault_pc));
            }
            writeln!(
                w,
                "{clock} {who}{} {}",
                goroutine(r),
                s.paint(YELLOW, &line)
            )?;
            write_frames(w, &sp.frames, &s)
        }
        Body::Exception(e) if e.language == "rust" => {
            let line = format!(
                "Rust panic in thread '{}': {}{}",
                e.thread_name
                    .as_deref()
                    .or(r.comm.as_deref())
                    .unwrap_or("?"),
                e.message.as_deref().unwrap_or("(formatted message)"),
                e.location
                    .as_deref()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default()
            );
            writeln!(w, "{clock} {who} {}", s.paint(YELLOW, &line))?;
            write_frames(w, &e.frames, &s)?;
            write_cut(w, e.frames_truncated, e.truncated_by.as_deref(), &s)
        }
        Body::Exception(e) => {
            let mut line = format!(
                "{} exception {}",
                e.language,
                e.value_type.as_deref().unwrap_or("?")
            );
            if let Some(m) = &e.message {
                line.push_str(&format!(": {m}"));
            }
            if let Some(by) = &e.rethrown_by {
                line.push_str(&format!(", rethrown by {by}"));
                if let Some(tid) = e.thrown_by_tid.filter(|t| Some(*t) != r.tid) {
                    line.push_str(&format!(" (thrown on thread {tid})"));
                }
            }
            if e.suppressed > 0 {
                line.push_str(&format!(" ({} earlier throws not shown)", e.suppressed));
            }
            writeln!(w, "{clock} {who} {}", s.paint(YELLOW, &line))?;
            write_frames(w, &e.frames, &s)?;
            write_cut(w, e.frames_truncated, e.truncated_by.as_deref(), &s)
        }
        Body::Goexit(g) => {
            writeln!(
                w,
                "{clock} {who}{} {}",
                goroutine(r),
                s.paint(YELLOW, "runtime.Goexit called")
            )?;
            write_frames(w, &g.frames, &s)
        }
        Body::Goroutines(dump) => {
            let mut line = format!("goroutine dump: {} goroutines", dump.printed);
            if dump.left_out > 0 {
                line.push_str(&format!(" ({} not recorded)", dump.left_out));
            }
            writeln!(w, "{clock} {who} {}", s.paint(YELLOW, &line))?;
            for g in &dump.groups {
                let ids = g
                    .goids
                    .iter()
                    .take(8)
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = if g.goids.len() > 8 { ", …" } else { "" };
                let mut status = g.status.clone();
                if let Some(m) = g.wait_minutes {
                    status.push_str(&format!(", {m} minutes"));
                }
                if g.locked_to_thread {
                    status.push_str(", locked to thread");
                }
                let head = if g.count == 1 {
                    format!("goroutine {ids} [{status}]:")
                } else {
                    format!("{} goroutines {ids}{more} [{status}]:", g.count)
                };
                writeln!(w, "  {}", s.paint(BOLD, &head))?;
                // As the runtime's dump shows them: its own frames hidden
                // unless it printed them (all are in the NDJSON record).
                let shown = if opts.all_frames {
                    g.frames.clone()
                } else if dump.traceback == "system" || opts.system_frames {
                    go_system_shown(&g.frames)
                } else {
                    go_shown(&g.frames)
                };
                write_frames(w, &shown, &s)?;
                if let Some(c) = &g.created_by {
                    let from = c
                        .goid
                        .map(|id| format!(" in goroutine {id}"))
                        .unwrap_or_default();
                    let loc = match (&c.file, c.line) {
                        (Some(f), Some(l)) => format!(" ({f}:{l})"),
                        _ => String::new(),
                    };
                    writeln!(
                        w,
                        "    created by {}{from}{}",
                        c.function.as_deref().unwrap_or("??"),
                        s.paint(DIM, &loc)
                    )?;
                }
            }
            Ok(())
        }
        Body::CrashLoop(c) => {
            let mut line = format!("CRASHLOOP: {}", c.line());
            if c.fingerprints.len() == 1 {
                line.push_str(", one crash each time");
            } else {
                line.push_str(&format!(", {} different crashes", c.fingerprints.len()));
            }
            writeln!(w, "{}", s.paint(RED, &line))
        }
        Body::Oom(oom) => {
            let mut line = format!("OOM killer: {}", oom_detail(oom));
            if oom.trigger_pid != r.pid.unwrap_or(0) {
                line.push_str(&format!(
                    ", triggered by pid {} ({})",
                    oom.trigger_pid,
                    oom.trigger_comm.as_deref().unwrap_or("?")
                ));
            }
            writeln!(w, "{clock} {who} {}", s.paint(RED, &line))
        }
        Body::Recover(rec) => {
            let by = rec
                .recovered_by
                .as_ref()
                .map(|f| format!(" by {}", f.describe()))
                .unwrap_or_default();
            writeln!(
                w,
                "{clock} {who}{} {}",
                goroutine(r),
                s.paint(GREEN, &format!("recovered{by}"))
            )
        }
        Body::Lost {
            count,
            reason,
            event,
        } => writeln!(
            w,
            "{clock} {}",
            s.paint(RED, &format!("lost {count} {event} events ({reason})"))
        ),
        Body::Incident(inc) => {
            let code = match inc.outcome {
                Outcome::Recovered => GREEN,
                Outcome::Exited => BOLD,
                Outcome::Crashed | Outcome::Killed => RED,
            };
            let mut cause = match inc.cause.kind {
                "panic" => format!("panic: {}", inc.cause.message),
                "fatal" => format!("fatal error: {}", inc.cause.message),
                "goexit" => "runtime.Goexit called".to_owned(),
                "exception" => match inc.events.first().map(|e| &e.body) {
                    Some(Body::Exception(e)) if e.language == "rust" => format!(
                        "Rust panic: {}",
                        e.message.as_deref().unwrap_or("(formatted message)")
                    ),
                    Some(Body::Exception(e)) => format!(
                        "uncaught {} exception {}{}",
                        e.language,
                        e.value_type.as_deref().unwrap_or("?"),
                        e.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                    _ => inc.cause.message.clone(),
                },
                "sigpanic" => format!("{} turned into a panic", inc.cause.message),
                _ => inc.cause.message.clone(),
            };
            if let Some(sig) = &inc.cause.signal {
                // A fault a runtime turned into a panic: its message, and the
                // fault beside it, as the Go runtime prints them.
                let mut fault = format!("{} {}", sig.name, paren(sig.code.as_deref()));
                if let Some(addr) = &sig.addr {
                    fault.push_str(&format!(" at {addr}"));
                }
                let fault = fault.trim_end();
                let panicked = inc.events.iter().any(|e| {
                    matches!(&e.body, Body::Panic(_))
                        || matches!(&e.body, Body::Fatal(f) if f.source == "panic")
                });
                let thrown = inc
                    .events
                    .iter()
                    .any(|e| matches!(&e.body, Body::Fatal(f) if f.source != "panic"));
                cause = if panicked {
                    format!("panic: {} [{fault}]", inc.cause.message)
                } else if thrown {
                    // The runtime could not make it a panic and threw.
                    format!("fatal error: {} [{fault}]", inc.cause.message)
                } else {
                    // It crashed in the handler (a fault in C code).
                    format!("{fault}: {}", inc.cause.message)
                };
            } else if let Some(Body::Signal(ev)) = inc.events.first().map(|e| &e.body) {
                cause = format!("{} {}", ev.signal.name, paren(ev.signal.code.as_deref()));
                if let Some(addr) = &ev.signal.addr {
                    cause.push_str(&format!(" at {addr}"));
                }
                if let Some(sender) = ev.signal.sender_pid
                    && Some(sender) != r.pid
                {
                    cause.push_str(&format!(
                        " from pid {sender} ({})",
                        ev.signal.sender_comm.as_deref().unwrap_or("?")
                    ));
                }
            }
            // For Go, the first frame outside the runtime is where it
            // happened; for a C++ throw, the frame that called __cxa_throw.
            // A signal the program raised itself (abort(), assert(),
            // raise()): the C library's frames that raised it say nothing,
            // its caller is where it happened, as a reader of gdb's `bt`
            // looks past `__pthread_kill_implementation`/`raise`/`abort`.
            let self_raised = inc.cause.kind == "signal"
                && inc.events.first().is_some_and(|e| match &e.body {
                    Body::Signal(ev) => {
                        matches!(ev.signal.code.as_deref(), Some("SI_TKILL" | "SI_USER"))
                            && !ev.signal.sent_by_other_process(r.pid)
                    }
                    _ => false,
                });
            let raising = |f: &Frame| self_raised && f.module.as_deref().is_some_and(is_libc);
            let top = inc.frames.iter().find(|f| {
                f.function.as_deref().is_some_and(|n| {
                    (r.goid.is_none() || !crate::golang::is_runtime_function(n))
                        && !n.starts_with("__cxa_")
                }) && !raising(f)
            });
            let rust_location = match inc.events.first().map(|e| &e.body) {
                Some(Body::Exception(e)) => e.location.clone(),
                _ => None,
            };
            // A fatal error raised off the user's goroutines (a deadlock,
            // found by the scheduler): where the goroutines are stuck.
            let stuck = (r.goid.is_some() || inc.cause.kind == "fatal")
                .then(|| inc.goroutines.as_ref().map(stuck_goroutines))
                .flatten()
                .filter(|_| {
                    top.is_none_or(|f| {
                        f.function
                            .as_deref()
                            .is_some_and(crate::golang::is_runtime_function)
                    })
                });
            let oom = inc.cause.kind == "oom";
            if oom {
                // Where it was when killed is not why: the verdict says
                // which memory ran out (the oom event line says more).
            } else if let Some(location) = &rust_location {
                cause.push_str(&format!(" at {location}"));
            } else if let Some(stuck) = stuck.filter(|s| !s.is_empty()) {
                cause.push_str(&format!(" — {stuck}"));
            } else if let Some(top) = top {
                // The C library function the program called to raise it
                // (`abort`, `__assert_fail`, `raise`).
                let by = inc
                    .frames
                    .iter()
                    .take_while(|f| !std::ptr::eq(*f, top))
                    .filter(|f| raising(f))
                    .last()
                    .and_then(|f| f.function.as_deref())
                    // glibc's internal alias of the public name.
                    .map(|n| n.strip_prefix("__GI_").unwrap_or(n));
                if let Some(by) = by {
                    cause.push_str(&format!(" by {by}()"));
                }
                cause.push_str(&format!(" in {}", top.describe()));
            }
            if inc.cause.kind == "exception"
                && let Some(rethrow) = rethrow_of(inc, r.exe.as_deref())
            {
                cause.push_str(&format!(", {rethrow}"));
            }
            let end = match (inc.exit, &inc.recovered_by) {
                (Some(_), _) if oom => format!("pid {} killed by the OOM killer", opt(r.pid)),
                (Some(e), _) => format!("pid {} {}", opt(r.pid), e.describe()),
                (None, Some(by)) => format!("recovered by {}", by.describe()),
                (None, None) if rust_location.is_some() => {
                    "its thread unwound, the process went on".to_owned()
                }
                (None, None) => "recovered".to_owned(),
            };
            writeln!(
                w,
                "{}: {} — {}{}",
                s.paint(code, inc.outcome.verdict()),
                cause.trim_end(),
                end,
                inc.thread
                    .goid
                    .map(|g| format!(" (goroutine {g})"))
                    .unwrap_or_default()
            )
        }
    }
}

/// The C library (`libc.so.6`, musl's `libc.so`).
fn is_libc(module: &str) -> bool {
    let name = module.rsplit('/').next().unwrap_or(module);
    name.starts_with("libc.so") || name.starts_with("libc-")
}

/// "rethrown by std::rethrow_exception on thread 1234 in main (app.cpp:30)":
/// where a C++ exception thrown earlier (perhaps on another thread, and
/// carried by a std::future) was thrown again, as the story's later
/// event says.
fn rethrow_of(inc: &crate::record::Incident, exe: Option<&str>) -> Option<String> {
    let (record, by, frames) = inc.events.iter().find_map(|e| match &e.body {
        Body::Exception(x) => Some((e, x.rethrown_by.as_deref()?, &x.frames)),
        _ => None,
    })?;
    let mut text = format!("rethrown by {by}");
    if let Some(tid) = record.tid {
        text.push_str(&format!(" on thread {tid}"));
    }
    // The program's own frame that rethrew (libstdc++'s and its inlined
    // templates' frames above it say nothing new).
    let at = frames
        .iter()
        .filter(|f| exe.is_some() && f.module.as_deref() == exe)
        .find(|f| {
            f.function
                .as_deref()
                .is_some_and(|n| !n.starts_with("std::") && !n.starts_with("__"))
        });
    if let Some(at) = at {
        text.push_str(&format!(" in {}", at.describe()));
    }
    Some(text)
}

/// "memcg /x at 50.0 of 50.0 MiB, victim rss 48.2 MiB" / "the system is
/// out of memory, victim rss 3.1 GiB".
fn oom_detail(oom: &crate::record::OomKill) -> String {
    use crate::record::mib;
    let place = match (&oom.memcg, oom.usage_bytes, oom.limit_bytes) {
        (Some(m), Some(usage), Some(limit)) if oom.scope == "cgroup" => {
            format!("memcg {m} at {} of {}", mib(usage), mib(limit))
        }
        _ => "the system is out of memory".to_owned(),
    };
    format!("{place}, victim rss {}", mib(oom.rss_bytes))
}

/// "goroutine 1 [chan send] in main.main (d.go:14), 3 goroutines [chan
/// receive] in main.worker (d.go:5)": the dump's goroutines that stand in
/// user code, as a one-line verdict names them.
fn stuck_goroutines(dump: &crate::record::GoGoroutines) -> String {
    const SHOWN: usize = 3;
    let located: Vec<String> = dump
        .groups
        .iter()
        .filter_map(|g| {
            let at = g.frames.iter().find(|f| {
                f.function
                    .as_deref()
                    .is_some_and(|n| !crate::golang::is_runtime_function(n))
            })?;
            let who = if g.count == 1 {
                format!("goroutine {}", g.goids.first().copied().unwrap_or(0))
            } else {
                format!("{} goroutines", g.count)
            };
            Some(format!("{who} [{}] in {}", g.status, at.describe()))
        })
        .collect();
    let mut text = located
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if located.len() > SHOWN {
        text.push_str(&format!(", {} more groups", located.len() - SHOWN));
    }
    text
}

/// A Go stack as the runtime's traceback prints it (GOTRACEBACK=single or
/// all): the runtime's unexported functions hidden, `runtime.gopanic`
/// named `panic` where a panic passes through (not as the innermost
/// frame); wrappers were left out when the stack was symbolized. Every
/// frame when nothing else would be left.
fn go_shown(frames: &[Frame]) -> Vec<Frame> {
    let mut shown: Vec<Frame> = Vec::with_capacity(frames.len());
    for f in frames {
        let Some(name) = f.function.as_deref() else {
            shown.push(f.clone());
            continue;
        };
        if name == "runtime.gopanic" {
            // The runtime shows it only below a frame it showed (a panic
            // raised while another one runs deferred calls).
            if !shown.is_empty() {
                shown.push(Frame {
                    function: Some("panic".to_owned()),
                    ..f.clone()
                });
            }
            continue;
        }
        let hidden = name
            .strip_prefix("runtime.")
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_uppercase()));
        if !hidden {
            shown.push(f.clone());
        }
    }
    if shown.is_empty() {
        frames.to_vec()
    } else {
        shown
    }
}

/// A Go stack as the runtime's system-level traceback prints it
/// (GOTRACEBACK=system, a throw, a fatal signal): every frame, with
/// `runtime.gopanic` named `panic`.
fn go_system_shown(frames: &[Frame]) -> Vec<Frame> {
    frames
        .iter()
        .map(|f| match f.function.as_deref() {
            Some("runtime.gopanic") => Frame {
                function: Some("panic".to_owned()),
                ..f.clone()
            },
            _ => f.clone(),
        })
        .collect()
}

/// The line that ends a stack cut short: the frames above the last one
/// shown are not known, and why.
fn write_cut(w: &mut dyn Write, truncated: bool, why: Option<&str>, s: &Style) -> io::Result<()> {
    if !truncated {
        return Ok(());
    }
    let line = match why {
        Some(why) => format!("    … more frames not recovered: {why}"),
        None => "    … more frames not recovered".to_owned(),
    };
    writeln!(w, "{}", s.paint(DIM, &line))
}

fn write_frames(w: &mut dyn Write, frames: &[Frame], s: &Style) -> io::Result<()> {
    let shown;
    let frames = match s.go {
        GoView::Raw => frames,
        GoView::Traceback => {
            shown = go_shown(frames);
            &shown[..]
        }
        GoView::System => {
            shown = go_system_shown(frames);
            &shown[..]
        }
    };
    for f in frames {
        let loc = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!(" ({file}:{line})"),
            (Some(file), None) => format!(" ({file})"),
            _ => f
                .module
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
        };
        let inl = if f.inlined { " [inlined]" } else { "" };
        writeln!(
            w,
            "    {} {}{}{}",
            s.paint(DIM, &f.pc),
            f.function.as_deref().unwrap_or("??"),
            s.paint(DIM, &loc),
            inl
        )?;
    }
    Ok(())
}

fn goroutine(r: &Record) -> String {
    r.goid
        .map(|g| format!(" goroutine {g}"))
        .unwrap_or_default()
}

fn paren(s: Option<&str>) -> String {
    s.map(|s| format!("({s})")).unwrap_or_default()
}

fn opt(v: Option<u32>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}
