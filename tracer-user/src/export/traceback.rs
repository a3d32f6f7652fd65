//! Stacks in the traced language's own traceback format, and the one-line
//! verdict, for exporters whose readers know `go`'s or gdb's output better
//! than crashtrace's. Input is the contract's JSON (records read back from
//! files), so every field may be missing or of the wrong type: nothing here
//! panics on data.

use serde_json::Value;

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
pub fn language_of(record: &Value) -> Language {
    let events = record.get("events").and_then(Value::as_array);
    let events = events.map(Vec::as_slice).unwrap_or_default();
    let has_goid = |r: &Value| {
        !r.get("goid").unwrap_or(&Value::Null).is_null()
            || !r.pointer("/thread/goid").unwrap_or(&Value::Null).is_null()
    };
    let kind = str_field(record, "type");
    let cause = record.pointer("/cause/type").and_then(Value::as_str);
    if has_goid(record)
        || events.iter().any(has_goid)
        || kind.is_some_and(|k| GO_TYPES.contains(&k))
        || cause.is_some_and(|c| GO_TYPES.contains(&c))
    {
        return Language::Go;
    }
    let exception_language = std::iter::once(record)
        .chain(events)
        .filter(|r| str_field(r, "type") == Some("exception"))
        .find_map(|r| str_field(r, "language"));
    match exception_language {
        Some("rust") => Language::Rust,
        Some("c++") => Language::Cpp,
        _ => Language::Native,
    }
}

/// `frames` (innermost first, as in the contract) as the language prints a
/// stack: Go's runtime traceback, or gdb's `bt` for native code. No
/// trailing newline.
pub fn format(language: Language, frames: &[Value], goid: Option<u64>) -> String {
    match language {
        Language::Go => format_go(frames, goid),
        Language::Rust | Language::Cpp | Language::Native => format_gdb(frames),
    }
}

/// As the Go runtime prints a goroutine's stack, minus the `+0x1f` offsets
/// (they are from the function's entry, which the records do not carry)
/// and the argument words (never captured): every call is `(...)`, which
/// is also how the runtime prints inlined calls.
fn format_go(frames: &[Value], goid: Option<u64>) -> String {
    let mut lines = Vec::with_capacity(frames.len() * 2 + 1);
    if let Some(goid) = goid {
        lines.push(format!("goroutine {goid} [running]:"));
    }
    for f in frames {
        let function = match str_field(f, "function") {
            // The runtime prints its panic entry point under the name
            // users call (runtime/traceback.go printFuncName).
            Some("runtime.gopanic") => "panic",
            Some(name) => name,
            None => "?",
        };
        lines.push(format!("{function}(...)"));
        // The runtime prints line 0 when it has none; `?` for no file.
        let line = u64_field(f, "line").unwrap_or(0);
        lines.push(match str_field(f, "file") {
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
fn format_gdb(frames: &[Value]) -> String {
    let mut lines = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let mut line = format!("#{i:<2} ");
        let shares_pc_with_previous = i > 0 && bool_field(&frames[i - 1], "inlined");
        if !shares_pc_with_previous {
            line.push_str(&gdb_address(str_field(f, "pc")));
            line.push_str(" in ");
        }
        line.push_str(str_field(f, "function").unwrap_or("??"));
        line.push_str(" ()");
        match (str_field(f, "file"), u64_field(f, "line")) {
            (Some(file), Some(n)) => line.push_str(&format!(" at {file}:{n}")),
            (Some(file), None) => line.push_str(&format!(" at {file}")),
            (None, _) => {
                if let Some(module) = str_field(f, "module") {
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
fn gdb_address(pc: Option<&str>) -> String {
    let Some(pc) = pc else {
        return "0x????????????????".to_owned();
    };
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
pub fn summary(record: &Value) -> String {
    let kind = str_field(record, "type").unwrap_or("record");
    let text = match kind {
        "incident" => incident_summary(record),
        _ => match event_description(record) {
            Some(what) => format!("{kind}: {what}"),
            None => kind.to_owned(),
        },
    };
    one_line(&text)
}

fn incident_summary(r: &Value) -> String {
    let outcome = str_field(r, "outcome").unwrap_or("incident");
    let mut text = format!("{outcome}: {}", cause_description(r));
    // A Rust panic's location is where it was raised; otherwise the first
    // frame that is the program's own: not Go's runtime (a Go stack starts
    // in gopanic or throw) nor the C++ runtime's throw helpers.
    let cause = cause_event(r);
    if let Some(location) = cause
        .filter(|e| str_field(e, "type") == Some("exception"))
        .and_then(|e| str_field(e, "location"))
    {
        text.push_str(&format!(" at {location}"));
    } else {
        let go = language_of(r) == Language::Go;
        let frames = array_field(r, "frames");
        let top = frames.iter().find(|f| {
            str_field(f, "function").is_some_and(|n| {
                !(go && crate::golang::is_runtime_function(n)) && !n.starts_with("__cxa_")
            })
        });
        if let Some(top) = top {
            text.push_str(&format!(" in {}", describe_frame(top)));
        }
    }
    text
}

/// What started an incident, as a person reads it: `panic: MESSAGE`,
/// `fatal error: MESSAGE`, `SIGSEGV (SEGV_MAPERR) at 0x0` …
pub fn cause_description(incident: &Value) -> String {
    let kind = incident.pointer("/cause/type").and_then(Value::as_str);
    let message = incident.pointer("/cause/message").and_then(Value::as_str);
    let event = cause_event(incident);
    if let Some(signal) = event
        .filter(|e| str_field(e, "type") == Some("signal"))
        .and_then(|e| e.get("signal"))
    {
        return signal_description(signal, incident);
    }
    let message = message.unwrap_or("?");
    match kind {
        Some("panic") => format!("panic: {message}"),
        Some("fatal") => format!("fatal error: {message}"),
        Some("goexit") => "runtime.Goexit called".to_owned(),
        Some("sigpanic") => format!("{message} turned into a panic"),
        Some("exception") => match event {
            Some(e) if str_field(e, "language") == Some("rust") => format!(
                "Rust panic: {}",
                str_field(e, "message").unwrap_or("(formatted message)")
            ),
            Some(e) => {
                let mut s = format!(
                    "uncaught {} exception {}",
                    str_field(e, "language").unwrap_or("?"),
                    str_field(e, "value_type").unwrap_or("?")
                );
                if let Some(m) = str_field(e, "message") {
                    s.push_str(&format!(": {m}"));
                }
                s
            }
            None => format!("exception: {message}"),
        },
        _ => message.to_owned(),
    }
}

/// The event of an incident's story that its cause names (the first of its
/// type), else the story's first event.
pub fn cause_event(incident: &Value) -> Option<&Value> {
    let events = array_field(incident, "events");
    let kind = incident.pointer("/cause/type").and_then(Value::as_str);
    events
        .iter()
        .find(|e| kind.is_some() && str_field(e, "type") == kind)
        .or_else(|| events.first())
}

/// `SIGSEGV (SEGV_MAPERR) at 0x0`, and `from pid N (comm)` for a signal
/// another process sent. `record` supplies the receiving pid.
pub fn signal_description(signal: &Value, record: &Value) -> String {
    let mut s = str_field(signal, "name").unwrap_or("signal").to_owned();
    if let Some(code) = str_field(signal, "code") {
        s.push_str(&format!(" ({code})"));
    }
    if let Some(addr) = str_field(signal, "addr") {
        s.push_str(&format!(" at {addr}"));
    }
    if let Some(sender) = u64_field(signal, "sender_pid")
        && Some(sender) != u64_field(record, "pid")
    {
        s.push_str(&format!(
            " from pid {sender} ({})",
            str_field(signal, "sender_comm").unwrap_or("?")
        ));
    }
    s
}

/// The part after `TYPE: ` in a non-incident record's summary.
fn event_description(r: &Value) -> Option<String> {
    match str_field(r, "type")? {
        "panic" | "fatal" => str_field(r, "message").map(str::to_owned),
        "exception" => str_field(r, "message")
            .or_else(|| str_field(r, "value_type"))
            .map(str::to_owned),
        "signal" | "sigpanic" => r.get("signal").map(|s| signal_description(s, r)),
        "exit" => r.get("exit").and_then(exit_description),
        "recover" => Some(match r.get("recovered_by").filter(|f| f.is_object()) {
            Some(by) => format!("recovered by {}", describe_frame(by)),
            None => "recovered".to_owned(),
        }),
        "goexit" => Some("runtime.Goexit called".to_owned()),
        "lost" => Some(format!(
            "{} {}events ({})",
            u64_field(r, "count").map_or_else(|| "?".to_owned(), |c| c.to_string()),
            str_field(r, "event")
                .map(|e| format!("{e} "))
                .unwrap_or_default(),
            str_field(r, "reason").unwrap_or("?")
        )),
        "attach" => Some(format!(
            "{} ({}, debuginfo {})",
            str_field(r, "exe").unwrap_or("?"),
            str_field(r, "runtime_version")
                .or_else(|| str_field(r, "runtime"))
                .unwrap_or("?"),
            str_field(r, "debuginfo").unwrap_or("?")
        )),
        _ => str_field(r, "message").map(str::to_owned),
    }
}

/// `exited with status 2`, `killed by SIGSEGV (core dumped)`.
fn exit_description(exit: &Value) -> Option<String> {
    if let Some(code) = exit.get("code").and_then(Value::as_i64) {
        return Some(format!("exited with status {code}"));
    }
    let signal = exit.get("signal").and_then(Value::as_i64)?;
    let name = str_field(exit, "signal_name")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("signal {signal}"));
    let core = if bool_field(exit, "core_dumped") {
        " (core dumped)"
    } else {
        ""
    };
    Some(format!("killed by {name}{core}"))
}

/// `main.parse (parse.go:42)`, as the human verdict names a frame.
pub fn describe_frame(f: &Value) -> String {
    let name = str_field(f, "function").unwrap_or("??");
    match (str_field(f, "file"), u64_field(f, "line")) {
        (Some(file), Some(line)) => {
            let base = file.rsplit('/').next().unwrap_or(file);
            format!("{name} ({base}:{line})")
        }
        _ => name.to_owned(),
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

pub(super) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(super) fn u64_field(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

pub(super) fn bool_field(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub(super) fn array_field<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn frame(pc: &str, function: Option<&str>, file: Option<&str>, line: Option<u32>) -> Value {
        json!({"pc": pc, "function": function, "file": file, "line": line,
               "inlined": false, "module": "/usr/local/bin/app"})
    }

    fn inlined(mut f: Value) -> Value {
        f["inlined"] = json!(true);
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
        libc["module"] = json!("/lib/x86_64-linux-gnu/libc.so.6");
        let mut stripped = frame("0x555555555100", None, None, None);
        stripped["module"] = Value::Null;
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
        let many: Vec<Value> = (0..11)
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
        let f = [json!({"pc": "bogus", "function": "f"}), json!({})];
        assert_eq!(
            format(Language::Rust, &f, None),
            "#0  bogus in f ()\n#1  0x???????????????? in ?? ()"
        );
    }

    #[test]
    fn languages() {
        assert_eq!(
            language_of(&json!({"type": "signal", "goid": 7})),
            Language::Go
        );
        assert_eq!(
            language_of(&json!({"type": "incident", "cause": {"type": "fatal"}})),
            Language::Go
        );
        assert_eq!(
            language_of(&json!({"type": "incident", "cause": {"type": "signal"},
                "events": [{"type": "signal", "goid": 3}]})),
            Language::Go
        );
        assert_eq!(
            language_of(&json!({"type": "incident", "cause": {"type": "exception"},
                "events": [{"type": "exception", "language": "rust"}]})),
            Language::Rust
        );
        assert_eq!(
            language_of(&json!({"type": "exception", "language": "c++", "goid": null})),
            Language::Cpp
        );
        assert_eq!(
            language_of(&json!({"type": "incident", "cause": {"type": "signal"},
                "thread": {"tid": 1, "goid": null}, "events": []})),
            Language::Native
        );
        assert_eq!(language_of(&json!("not an object")), Language::Native);
    }

    #[test]
    fn summaries() {
        let go = json!({"type": "incident", "outcome": "crashed", "pid": 1,
            "cause": {"type": "panic", "message": "runtime error: index out of range [5] with length 3"},
            "frames": [
                {"pc": "0x1", "function": "runtime.gopanic", "file": "/go/src/runtime/panic.go", "line": 770},
                {"pc": "0x2", "function": "main.parse", "file": "/src/app/parse.go", "line": 42}],
            "events": [{"type": "panic", "goid": 1}],
            "thread": {"tid": 1, "goid": 1}});
        assert_eq!(
            summary(&go),
            "crashed: panic: runtime error: index out of range [5] with length 3 \
             in main.parse (parse.go:42)"
        );

        let segv = json!({"type": "incident", "outcome": "killed", "pid": 5,
            "cause": {"type": "signal", "message": "SIGTERM"},
            "frames": [{"pc": "0x1", "function": null}],
            "events": [{"type": "signal", "signal": {"name": "SIGTERM", "code": "SI_USER",
                "sender_pid": 77, "sender_comm": "kill"}}]});
        assert_eq!(
            summary(&segv),
            "killed: SIGTERM (SI_USER) from pid 77 (kill)"
        );

        let rust = json!({"type": "incident", "outcome": "crashed",
            "cause": {"type": "exception", "message": "boom"},
            "frames": [{"pc": "0x1", "function": "panicky::main"}],
            "events": [{"type": "exception", "language": "rust", "message": "boom\nsecond line",
                "location": "src/main.rs:10:5"}]});
        assert_eq!(
            summary(&rust),
            "crashed: Rust panic: boom\\nsecond line at src/main.rs:10:5"
        );

        let cxx = json!({"type": "incident", "outcome": "crashed",
            "cause": {"type": "exception", "message": "bad"},
            "frames": [{"pc": "0x1", "function": "__cxa_throw"},
                       {"pc": "0x2", "function": "parse(char const*)", "file": "/src/p.cpp", "line": 3}],
            "events": [{"type": "exception", "language": "c++", "message": "bad",
                "value_type": "std::runtime_error", "location": null}]});
        assert_eq!(
            summary(&cxx),
            "crashed: uncaught c++ exception std::runtime_error: bad in parse(char const*) (p.cpp:3)"
        );

        assert_eq!(
            summary(&json!({"type": "panic", "message": "boom"})),
            "panic: boom"
        );
        assert_eq!(
            summary(&json!({"type": "signal", "pid": 3,
                "signal": {"name": "SIGSEGV", "code": "SEGV_MAPERR", "addr": "0x0", "sender_pid": 3}})),
            "signal: SIGSEGV (SEGV_MAPERR) at 0x0"
        );
        assert_eq!(
            summary(
                &json!({"type": "exit", "exit": {"signal": 6, "signal_name": "SIGABRT", "core_dumped": true}})
            ),
            "exit: killed by SIGABRT (core dumped)"
        );
        assert_eq!(
            summary(
                &json!({"type": "lost", "count": 3, "reason": "ring buffer full", "event": "signal"})
            ),
            "lost: 3 signal events (ring buffer full)"
        );
        assert_eq!(
            summary(&json!({"type": "recover", "recovered_by":
                {"function": "main.safe.func1", "file": "/src/app/safe.go", "line": 9}})),
            "recover: recovered by main.safe.func1 (safe.go:9)"
        );
        assert_eq!(summary(&json!(null)), "record");
    }
}
