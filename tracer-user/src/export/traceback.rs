//! Stacks in the traced language's own traceback format, and the one-line
//! verdict, for exporters whose readers know `go`'s or gdb's output better
//! than crashtrace's.

use crate::record::{Body, Frame, Incident, Record, SignalInfo};

/// Whose traceback format a record's stack is printed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Go,
    Rust,
    Cpp,
    /// C, or anything else without a runtime of its own: gdb's format.
    Native,
}

/// Record types only the Go probes produce.
const GO_TYPES: &[&str] = &["panic", "fatal", "sigpanic", "goexit", "recover"];

/// The language of a record (or of an incident's story).
pub fn language_of(record: &Record) -> Language {
    let (events, cause) = match &record.body {
        Body::Incident(inc) => (inc.events.as_slice(), Some(inc.cause.kind)),
        _ => (&[][..], None),
    };
    let has_goid = |r: &Record| {
        r.goid.is_some() || matches!(&r.body, Body::Incident(inc) if inc.thread.goid.is_some())
    };
    if has_goid(record)
        || events.iter().any(has_goid)
        || GO_TYPES.contains(&record.kind)
        || cause.is_some_and(|c| GO_TYPES.contains(&c))
    {
        return Language::Go;
    }
    let exception_language = std::iter::once(record)
        .chain(events)
        .find_map(|r| match &r.body {
            Body::Exception(e) => Some(e.language),
            _ => None,
        });
    match exception_language {
        Some("rust") => Language::Rust,
        Some("c++") => Language::Cpp,
        _ => Language::Native,
    }
}

/// `frames` (innermost first, as in the contract) as the language prints a
/// stack: Go's runtime traceback, or gdb's `bt` for native code. No
/// trailing newline.
pub fn format(language: Language, frames: &[Frame], goid: Option<u64>) -> String {
    match language {
        Language::Go => format_go(frames, goid),
        Language::Rust | Language::Cpp | Language::Native => format_gdb(frames),
    }
}

/// As the Go runtime prints a goroutine's stack, minus the `+0x1f` offsets
/// (they are from the function's entry, which the records do not carry)
/// and the argument words (never captured): every call is `(...)`, which
/// is also how the runtime prints inlined calls.
fn format_go(frames: &[Frame], goid: Option<u64>) -> String {
    let mut lines = Vec::with_capacity(frames.len() * 2 + 1);
    if let Some(goid) = goid {
        lines.push(format!("goroutine {goid} [running]:"));
    }
    for f in frames {
        let function = match f.function.as_deref() {
            // The runtime prints its panic entry point under the name
            // users call (runtime/traceback.go printFuncName).
            Some("runtime.gopanic") => "panic",
            Some(name) => name,
            None => "?",
        };
        lines.push(format!("{function}(...)"));
        // The runtime prints line 0 when it has none; `?` for no file.
        let line = f.line.unwrap_or(0);
        lines.push(match &f.file {
            Some(file) => format!("\t{file}:{line}"),
            None => "\t?:0".to_owned(),
        });
    }
    lines.join("\n")
}

/// As gdb's `bt` prints a stack (no arguments: crashtrace does not read
/// them). gdb shows the pc only for the innermost frame at each address:
/// the frames that follow an inlined frame are its callers at the same pc
/// (the rest of the inline chain and the physical frame), whose location
/// is a call site without an address of its own (gdb's
/// `frame_show_address`).
fn format_gdb(frames: &[Frame]) -> String {
    let mut lines = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let mut line = format!("#{i:<2} ");
        let shares_pc_with_previous = i > 0 && frames[i - 1].inlined;
        if !shares_pc_with_previous {
            line.push_str(&gdb_address(&f.pc));
            line.push_str(" in ");
        }
        line.push_str(f.function.as_deref().unwrap_or("??"));
        line.push_str(" ()");
        match (&f.file, f.line) {
            (Some(file), Some(n)) => line.push_str(&format!(" at {file}:{n}")),
            (Some(file), None) => line.push_str(&format!(" at {file}")),
            (None, _) => {
                if let Some(module) = &f.module {
                    line.push_str(&format!(" from {module}"));
                }
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// gdb prints 64-bit addresses zero-padded to 16 digits; a pc that is not
/// hex is shown as recorded rather than dropped.
fn gdb_address(pc: &str) -> String {
    let digits = pc
        .strip_prefix("0x")
        .or_else(|| pc.strip_prefix("0X"))
        .unwrap_or(pc);
    match u64::from_str_radix(digits, 16) {
        Ok(v) => format!("{v:#018x}"),
        Err(_) => pc.to_owned(),
    }
}

/// The one-line verdict shared by the exporters (OTLP body, syslog MSG):
/// for an incident `crashed: panic: MESSAGE in main.parse (parse.go:42)`,
/// for other records `TYPE: what happened`. Newlines in messages are
/// escaped so that it stays one line.
pub fn summary(record: &Record) -> String {
    let text = match &record.body {
        Body::Incident(inc) => incident_summary(record, inc),
        _ => match event_description(record) {
            Some(what) => format!("{}: {what}", record.kind),
            None => record.kind.to_owned(),
        },
    };
    one_line(&text)
}

fn incident_summary(r: &Record, inc: &Incident) -> String {
    let mut text = format!("{}: {}", inc.outcome.word(), cause_description(inc, r.pid));
    // A Rust panic's location is where it was raised; otherwise the first
    // frame that is the program's own: not Go's runtime (a Go stack starts
    // in gopanic or throw) nor the C++ runtime's throw helpers.
    let location = cause_event(inc).and_then(|e| match &e.body {
        Body::Exception(ex) => ex.location.as_deref(),
        _ => None,
    });
    if let Some(location) = location {
        text.push_str(&format!(" at {location}"));
    } else {
        let go = language_of(r) == Language::Go;
        let top = inc.frames.iter().find(|f| {
            f.function.as_deref().is_some_and(|n| {
                !(go && crate::golang::is_runtime_function(n)) && !n.starts_with("__cxa_")
            })
        });
        if let Some(top) = top {
            text.push_str(&format!(" in {}", top.describe()));
        }
    }
    text
}

/// What started an incident, as a person reads it: `panic: MESSAGE`,
/// `fatal error: MESSAGE`, `SIGSEGV (SEGV_MAPERR) at 0x0` … `pid` is the
/// incident's process (a signal it sent itself names no sender).
pub fn cause_description(incident: &Incident, pid: Option<u32>) -> String {
    let message = &incident.cause.message;
    let event = cause_event(incident).map(|e| &e.body);
    if let Some(Body::Signal(ev)) = event {
        return signal_description(&ev.signal, pid);
    }
    match incident.cause.kind {
        "panic" => format!("panic: {message}"),
        "fatal" => format!("fatal error: {message}"),
        "goexit" => "runtime.Goexit called".to_owned(),
        "sigpanic" => format!("{message} turned into a panic"),
        "exception" => match event {
            Some(Body::Exception(e)) if e.language == "rust" => format!(
                "Rust panic: {}",
                e.message.as_deref().unwrap_or("(formatted message)")
            ),
            Some(Body::Exception(e)) => {
                let mut s = format!(
                    "uncaught {} exception {}",
                    e.language,
                    e.value_type.as_deref().unwrap_or("?")
                );
                if let Some(m) = &e.message {
                    s.push_str(&format!(": {m}"));
                }
                s
            }
            _ => format!("exception: {message}"),
        },
        _ => message.clone(),
    }
}

/// The event of an incident's story that its cause names (the first of its
/// type), else the story's first event.
pub fn cause_event(incident: &Incident) -> Option<&Record> {
    let events = &incident.events;
    events
        .iter()
        .find(|e| e.kind == incident.cause.kind)
        .or_else(|| events.first())
}

/// `SIGSEGV (SEGV_MAPERR) at 0x0`, and `from pid N (comm)` for a signal
/// another process sent. `pid` is the receiving process's.
pub fn signal_description(signal: &SignalInfo, pid: Option<u32>) -> String {
    let mut s = signal.name.clone();
    if let Some(code) = &signal.code {
        s.push_str(&format!(" ({code})"));
    }
    if let Some(addr) = &signal.addr {
        s.push_str(&format!(" at {addr}"));
    }
    if let Some(sender) = signal.sender_pid
        && Some(sender) != pid
    {
        s.push_str(&format!(
            " from pid {sender} ({})",
            signal.sender_comm.as_deref().unwrap_or("?")
        ));
    }
    s
}

/// The part after `TYPE: ` in a non-incident record's summary.
fn event_description(r: &Record) -> Option<String> {
    match &r.body {
        Body::Panic(p) => Some(p.message.clone()),
        Body::Fatal(f) => Some(f.message.clone()),
        Body::Exception(e) => e.message.clone().or_else(|| e.value_type.clone()),
        Body::Signal(_) | Body::Sigpanic(_) => {
            r.body.signal().map(|s| signal_description(s, r.pid))
        }
        Body::Exit { exit } => Some(exit.describe()),
        Body::Recover(rec) => Some(match &rec.recovered_by {
            Some(by) => format!("recovered by {}", by.describe()),
            None => "recovered".to_owned(),
        }),
        Body::Goexit(_) => Some("runtime.Goexit called".to_owned()),
        Body::Goroutines(d) => Some(format!("goroutine dump: {} goroutines", d.printed)),
        Body::Oom(o) => Some(o.message()),
        Body::CrashLoop(c) => Some(c.line()),
        Body::Lost {
            count,
            reason,
            event,
        } => Some(format!("{count} {event} events ({reason})")),
        Body::Attach(a) => Some(format!(
            "{} ({}, debuginfo {})",
            r.exe.as_deref().unwrap_or("?"),
            a.runtime_version.as_deref().unwrap_or(a.runtime),
            a.debuginfo
        )),
        Body::Incident(_) => None,
    }
}

fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::export::fixture;

    fn frame(pc: &str, function: Option<&str>, file: Option<&str>, line: Option<u32>) -> Frame {
        Frame {
            pc: pc.into(),
            function: function.map(Into::into),
            file: file.map(Into::into),
            line,
            inlined: false,
            module: Some("/usr/local/bin/app".into()),
            tail_call: false,
            file_offset: None,
        }
    }

    fn inlined(mut f: Frame) -> Frame {
        f.inlined = true;
        f
    }

    #[test]
    fn go_traceback() {
        let frames = [
            frame(
                "0x4a1b2c",
                Some("runtime.gopanic"),
                Some("/usr/local/go/src/runtime/panic.go"),
                Some(770),
            ),
            inlined(frame(
                "0x4a1c00",
                Some("main.parse"),
                Some("/src/app/parse.go"),
                Some(42),
            )),
            frame(
                "0x4a1c00",
                Some("main.main"),
                Some("/src/app/main.go"),
                Some(10),
            ),
            frame("0x4a1d00", None, None, None),
        ];
        assert_eq!(
            format(Language::Go, &frames, Some(1)),
            "goroutine 1 [running]:\n\
             panic(...)\n\
             \t/usr/local/go/src/runtime/panic.go:770\n\
             main.parse(...)\n\
             \t/src/app/parse.go:42\n\
             main.main(...)\n\
             \t/src/app/main.go:10\n\
             ?(...)\n\
             \t?:0"
        );
        // Without a goroutine id there is no header.
        assert_eq!(
            format(Language::Go, &frames[2..3], None),
            "main.main(...)\n\t/src/app/main.go:10"
        );
    }

    #[test]
    fn gdb_backtrace() {
        let mut libc = frame("0x7ffff7c287f3", Some("abort"), None, None);
        libc.module = Some("/lib/x86_64-linux-gnu/libc.so.6".into());
        let mut stripped = frame("0x555555555100", None, None, None);
        stripped.module = None;
        let frames = [
            libc,
            // An inline chain at one pc: gdb shows the address on its
            // innermost frame only.
            inlined(frame(
                "0x5555555551c8",
                Some("check_invariant"),
                Some("/src/abort.c"),
                Some(8),
            )),
            frame(
                "0x5555555551c8",
                Some("main"),
                Some("/src/abort.c"),
                Some(14),
            ),
            stripped,
        ];
        assert_eq!(
            format(Language::Native, &frames, None),
            "#0  0x00007ffff7c287f3 in abort () from /lib/x86_64-linux-gnu/libc.so.6\n\
             #1  0x00005555555551c8 in check_invariant () at /src/abort.c:8\n\
             #2  main () at /src/abort.c:14\n\
             #3  0x0000555555555100 in ?? ()"
        );
        // Rust and C++ print as gdb does too; two-digit levels take one space.
        let many: Vec<Frame> = (0..11)
            .map(|i| frame(&format!("{:#x}", 0x1000 + i), Some("f"), None, None))
            .collect();
        let text = format(Language::Cpp, &many, Some(3));
        assert_eq!(
            text.lines().last(),
            Some("#10 0x000000000000100a in f () from /usr/local/bin/app")
        );
        assert!(!text.contains("goroutine"));
    }

    #[test]
    fn gdb_keeps_unparsable_pc() {
        let mut f = frame("bogus", Some("f"), None, None);
        f.module = None;
        assert_eq!(format(Language::Rust, &[f], None), "#0  bogus in f ()");
    }

    #[test]
    fn languages() {
        let segv = json!({"number": 11, "name": "SIGSEGV", "disposition": "default"});
        assert_eq!(
            language_of(&fixture(
                json!({"type": "signal", "goid": 7, "signal": segv})
            )),
            Language::Go
        );
        assert_eq!(
            language_of(&fixture(json!({"type": "incident", "outcome": "crashed",
                "cause": {"type": "fatal", "message": "m"}}))),
            Language::Go
        );
        assert_eq!(
            language_of(&fixture(json!({"type": "incident", "outcome": "crashed",
                "cause": {"type": "signal", "message": "SIGSEGV"},
                "events": [{"type": "signal", "goid": 3, "signal": segv}]}))),
            Language::Go
        );
        assert_eq!(
            language_of(&fixture(json!({"type": "incident", "outcome": "crashed",
                "cause": {"type": "exception", "message": "m"},
                "events": [{"type": "exception", "language": "rust"}]}))),
            Language::Rust
        );
        assert_eq!(
            language_of(&fixture(
                json!({"type": "exception", "language": "c++", "goid": null})
            )),
            Language::Cpp
        );
        assert_eq!(
            language_of(&fixture(json!({"type": "incident", "outcome": "crashed",
                "cause": {"type": "signal", "message": "SIGSEGV"},
                "thread": {"tid": 1, "goid": null}, "events": []}))),
            Language::Native
        );
    }

    #[test]
    fn summaries() {
        let go = fixture(json!({"type": "incident", "outcome": "crashed", "pid": 1,
            "cause": {"type": "panic", "message": "runtime error: index out of range [5] with length 3"},
            "frames": [
                {"pc": "0x1", "function": "runtime.gopanic", "file": "/go/src/runtime/panic.go", "line": 770, "inlined": false},
                {"pc": "0x2", "function": "main.parse", "file": "/src/app/parse.go", "line": 42, "inlined": false}],
            "events": [{"type": "panic", "goid": 1, "message": "runtime error: index out of range [5] with length 3"}],
            "thread": {"tid": 1, "goid": 1}}));
        assert_eq!(
            summary(&go),
            "crashed: panic: runtime error: index out of range [5] with length 3 \
             in main.parse (parse.go:42)"
        );

        let segv = fixture(json!({"type": "incident", "outcome": "killed", "pid": 5,
            "cause": {"type": "signal", "message": "SIGTERM"},
            "frames": [{"pc": "0x1", "function": null, "inlined": false}],
            "events": [{"type": "signal", "signal": {"number": 15, "name": "SIGTERM", "code": "SI_USER",
                "sender_pid": 77, "sender_comm": "kill", "disposition": "default"}}]}));
        assert_eq!(
            summary(&segv),
            "killed: SIGTERM (SI_USER) from pid 77 (kill)"
        );

        let rust = fixture(json!({"type": "incident", "outcome": "crashed",
            "cause": {"type": "exception", "message": "boom"},
            "frames": [{"pc": "0x1", "function": "panicky::main", "inlined": false}],
            "events": [{"type": "exception", "language": "rust", "message": "boom\nsecond line",
                "location": "src/main.rs:10:5"}]}));
        assert_eq!(
            summary(&rust),
            "crashed: Rust panic: boom\\nsecond line at src/main.rs:10:5"
        );

        let cxx = fixture(json!({"type": "incident", "outcome": "crashed",
            "cause": {"type": "exception", "message": "bad"},
            "frames": [{"pc": "0x1", "function": "__cxa_throw", "inlined": false},
                       {"pc": "0x2", "function": "parse(char const*)", "file": "/src/p.cpp", "line": 3, "inlined": false}],
            "events": [{"type": "exception", "language": "c++", "message": "bad",
                "value_type": "std::runtime_error", "location": null}]}));
        assert_eq!(
            summary(&cxx),
            "crashed: uncaught c++ exception std::runtime_error: bad in parse(char const*) (p.cpp:3)"
        );

        assert_eq!(
            summary(&fixture(json!({"type": "panic", "message": "boom"}))),
            "panic: boom"
        );
        assert_eq!(
            summary(&fixture(json!({"type": "signal", "pid": 3,
                "signal": {"number": 11, "name": "SIGSEGV", "code": "SEGV_MAPERR", "addr": "0x0",
                    "sender_pid": 3, "disposition": "default"}}))),
            "signal: SIGSEGV (SEGV_MAPERR) at 0x0"
        );
        assert_eq!(
            summary(&fixture(
                json!({"type": "exit", "exit": {"signal": 6, "signal_name": "SIGABRT", "core_dumped": true}})
            )),
            "exit: killed by SIGABRT (core dumped)"
        );
        assert_eq!(
            summary(&fixture(
                json!({"type": "lost", "count": 3, "reason": "ring buffer full", "event": "signal"})
            )),
            "lost: 3 signal events (ring buffer full)"
        );
        assert_eq!(
            summary(&fixture(json!({"type": "recover", "recovered_by":
                {"pc": "0x1", "function": "main.safe.func1", "file": "/src/app/safe.go", "line": 9,
                 "inlined": false}}))),
            "recover: recovered by main.safe.func1 (safe.go:9)"
        );
    }
}
