//! End to end: real C programs that really crash, traced by the real binary
//! with its eBPF programs loaded into this kernel. Needs root.

mod common;

use std::{os::unix::fs::PermissionsExt as _, process::Command, process::Stdio};

use common::*;

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// A release build (-O2, no frame pointers): the crashing thread's frames,
/// unwound with DWARF CFI from a copy of its stack, equal gdb's, through
/// libc (start_thread, clone3) to the thread's first frame.
#[test]
fn optimized_code_without_frame_pointers_unwinds_like_gdb() {
    for (name, signal) in [("null_deref", "SIGSEGV"), ("abort", "SIGABRT")] {
        let bin = build_c_flags(name, &["-O2", "-fomit-frame-pointer"]);
        let t = run_traced(&bin, &[]);
        let sig = t
            .of_type("signal")
            .into_iter()
            .find(|s| s["signal"]["name"] == signal)
            .unwrap_or_else(|| panic!("{name}: no {signal}"));
        let ours: Vec<GdbFrame> = frame_keys(&sig["frames"]);
        let gdb = gdb_frames(&bin);
        assert!(gdb.len() >= 4, "{name}: gdb: {gdb:#?}");
        assert!(
            ours.len() >= gdb.len(),
            "{name}: ours {ours:#?}\ngdb {gdb:#?}"
        );
        for (o, g) in ours.iter().zip(&gdb) {
            assert_eq!(
                o.function, g.function,
                "{name}: ours {ours:#?}\ngdb {gdb:#?}"
            );
            assert_eq!(o.line, g.line, "{name}: line of {}", o.function);
            assert_eq!(
                o.tail_call, g.tail_call,
                "{name}: tail call frame {}",
                o.function
            );
            // The whole name, as gdb prints it (Debian's libc included:
            // `./nptl/pthread_kill.c`, `../sysdeps/…`).
            assert_eq!(o.file, g.file, "{name}: file of {}", o.function);
        }
        assert_eq!(sig["frames_truncated"], false, "{name}: {sig:#}");
    }
}

/// Faults besides SEGV_MAPERR, each decoded from the kernel's siginfo as
/// the kernel filled it, and located at gdb's faulting frame:
/// an integer division by zero (FPE_INTDIV, the address is the pc), an
/// unaligned load under the alignment-check flag (BUS_ADRALN: the kernel
/// reports no address) and a load from a mapping past its file's end
/// (BUS_ADRERR at the mapped address the program printed).
#[test]
fn division_by_zero_misaligned_access_and_bus_error() {
    let bin = build_c_flags("faults", &["-O2", "-fomit-frame-pointer"]);
    for (arg, signal, number, code) in [
        ("div", "SIGFPE", 8, "FPE_INTDIV"),
        ("align", "SIGBUS", 7, "BUS_ADRALN"),
        ("bus", "SIGBUS", 7, "BUS_ADRERR"),
    ] {
        let t = run_traced(&bin, &[arg]);
        assert_eq!(shell_status(&t.output), 128 + number, "{arg}");
        let sig = t.one("signal");
        assert_eq!(sig["signal"]["name"], signal, "{arg}");
        assert_eq!(sig["signal"]["number"], number, "{arg}");
        assert_eq!(sig["signal"]["code"], code, "{arg}");
        let expected_addr = match arg {
            "div" => sig["registers"]["pc"].as_str().unwrap().to_owned(),
            "align" => "0x0".to_owned(),
            _ => {
                let stdout = String::from_utf8_lossy(&t.output.stdout);
                stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("mapped "))
                    .unwrap_or_else(|| panic!("{arg}: {stdout}"))
                    .to_owned()
            }
        };
        assert_eq!(sig["signal"]["addr"], expected_addr.as_str(), "{arg}");

        let ours: Vec<GdbFrame> = frame_keys(&sig["frames"]);
        let gdb = gdb_frames_args(&bin, &[arg]);
        assert!(gdb.len() >= 2, "{arg}: gdb: {gdb:#?}");
        for (o, g) in ours.iter().zip(&gdb) {
            assert_eq!(
                o.function, g.function,
                "{arg}: ours {ours:#?}\ngdb {gdb:#?}"
            );
            assert_eq!(o.line, g.line, "{arg}: line of {}", o.function);
            assert_eq!(o.tail_call, g.tail_call, "{arg}: tail call {}", o.function);
        }
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "crashed", "{arg}");
        assert_eq!(incident["cause"]["type"], "signal", "{arg}");
        assert_eq!(incident["cause"]["message"], signal, "{arg}");
    }
}

/// A crash inside a library the program dlopen'ed after crashtrace
/// attached: libc's dlopen return is followed, the library is mapped into
/// the process's image from the path and load bias read there, so the
/// frames are symbolized although the process is dead by then.
#[test]
fn crash_in_a_library_loaded_with_dlopen() {
    let (host, plugin) = build_dlopen_pair();
    let t = run_traced(&host, &[plugin.to_str().unwrap()]);
    assert_eq!(shell_status(&t.output), 139);
    let sig = t.one("signal");
    let frames = sig["frames"].as_array().unwrap();
    assert_eq!(
        frames[0]["module"].as_str(),
        plugin.to_str(),
        "the faulting frame is in the plugin: {sig:#}"
    );
    let ours: Vec<GdbFrame> = frames.iter().map(frame_key).collect();
    let gdb = gdb_frames_args(&host, &[plugin.to_str().unwrap()]);
    assert!(gdb.len() >= 2, "gdb: {gdb:#?}");
    for (o, g) in ours.iter().zip(&gdb) {
        assert_eq!(o.function, g.function, "ours {ours:#?}\ngdb {gdb:#?}");
        assert_eq!(o.line, g.line, "line of {}", o.function);
        assert_eq!(
            o.file.as_deref().map(basename),
            g.file.as_deref().map(basename)
        );
    }
    assert_eq!(t.one("incident")["outcome"], "crashed");
}

/// Unbounded recursion: the fault comes with sp in the guard page. The
/// stack copy starts at the next page; the frames in it are unwound (as
/// many as 32 KiB hold) and the record says the stack is truncated.
#[test]
fn stack_overflow_unwinds_the_recursion_and_says_truncated() {
    let bin = build_c_flags("overflow", &["-O2", "-fomit-frame-pointer"]);
    let t = run_traced(&bin, &[]);
    assert_eq!(shell_status(&t.output), 139);
    let sig = t.one("signal");
    assert_eq!(sig["signal"]["name"], "SIGSEGV");
    let frames: Vec<GdbFrame> = frame_keys(&sig["frames"]);
    assert!(frames.len() > 50, "{frames:#?}");
    assert!(
        frames.iter().all(|f| f.function == "descend"),
        "{frames:#?}"
    );
    // Every caller frame is the recursive call, as gdb shows it.
    let gdb = gdb_frames(&bin);
    assert!(gdb.len() > 1000, "gdb: {} frames", gdb.len());
    for f in &frames[1..] {
        assert_eq!(
            (f.function.as_str(), f.line),
            (gdb[1].function.as_str(), gdb[1].line)
        );
    }
    assert_eq!(sig["frames_truncated"], true);
    // Why, in words; and the human view ends the stack with it.
    assert_eq!(sig["truncated_by"], "the end of the 32 KiB stack copy");
    let out = Command::new(crashtrace_bin())
        .args(["run", "--"])
        .arg(&bin)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    // `run` writes its timeline to stderr.
    let human = String::from_utf8_lossy(&out.stderr);
    let cut: Vec<&str> = human
        .lines()
        .skip_while(|l| !l.contains("SIGSEGV (SEGV_MAPERR)"))
        .skip(1)
        .skip_while(|l| l.trim_start().starts_with("0x"))
        .take(1)
        .collect();
    assert_eq!(
        cut,
        ["    … more frames not recovered: the end of the 32 KiB stack copy"],
        "{human}"
    );
}

/// C++: a thousand caught throws do not flood the trace (rate-limited per
/// throw site in the kernel, counted); the uncaught std::runtime_error is an
/// `exception` record with its demangled type, its what() text and the
/// throwing stack (as gdb's `catch throw` shows it), and the incident it
/// starts ends in SIGABRT.
#[test]
fn uncaught_cxx_exception_is_the_cause_with_type_message_and_throwing_stack() {
    let bin = build_cxx("uncaught");
    let t = run_traced(&bin, &[]);
    assert_eq!(shell_status(&t.output), 134);
    let exceptions = t.of_type("exception");
    let caught: Vec<_> = exceptions
        .iter()
        .filter(|e| e["value_type"] == "std::invalid_argument")
        .collect();
    let suppressed: u64 = caught
        .iter()
        .map(|e| e["suppressed"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        !caught.is_empty() && caught.len() <= 10,
        "{} records for 1000 caught throws",
        caught.len()
    );
    assert!(caught.len() as u64 + suppressed <= 1000);
    assert_eq!(caught[0]["message"], "not a number: x");

    let inc = t.one("incident");
    assert_eq!(inc["outcome"], "crashed");
    assert_eq!(inc["cause"]["type"], "exception");
    assert_eq!(
        inc["cause"]["message"],
        "config file missing: /etc/app.conf"
    );
    assert_eq!(inc["exit"]["signal"], 6);
    let throw = &inc["events"][0];
    assert_eq!(throw["type"], "exception");
    assert_eq!(throw["language"], "c++");
    assert_eq!(throw["value_type"], "std::runtime_error");
    // The runtime's own report on stderr says the same.
    let stderr = String::from_utf8_lossy(&t.output.stderr);
    assert!(
        stderr.contains("what():  config file missing: /etc/app.conf"),
        "{stderr}"
    );

    let ours: Vec<GdbFrame> = frame_keys(&throw["frames"]);
    let gdb = gdb_throw_frames(&bin, "std::runtime_error");
    assert!(gdb.len() >= 3, "gdb: {gdb:#?}");
    assert_eq!(ours[0].function, "__cxa_throw");
    for (o, g) in ours.iter().zip(&gdb).skip(1) {
        assert_eq!(o.function, g.function, "ours {ours:#?}\ngdb {gdb:#?}");
        assert_eq!(o.line, g.line, "line of {}", o.function);
        assert_eq!(
            o.file.as_deref().map(basename),
            g.file.as_deref().map(basename)
        );
    }
}

/// A C++ exception thrown again after it was caught is told by its first
/// throw: a std::async task's exception that `future::get()` rethrows on
/// the main thread (`std::rethrow_exception`), and a handler's `throw;`
/// after it threw and caught another exception while cleaning up. The
/// cause is what libstdc++'s terminate handler prints (type, what()), with
/// the throwing stack gdb's `catch throw` shows, on the thread that threw;
/// the rethrow is the next event, where gdb sees it.
#[test]
fn rethrown_cxx_exceptions_keep_the_original_throw_as_the_cause() {
    let bin = build_cxx("rethrow");
    for (mode, by, rethrow_at) in [
        ("future", "std::rethrow_exception", ("wait_for", 30)),
        ("nested", "throw;", ("main", 48)),
    ] {
        let t = run_traced(&bin, &[mode]);
        assert_eq!(shell_status(&t.output), 134, "{mode}");
        let pid = t.one("attach")["pid"].as_u64().unwrap();
        // libstdc++'s own words on stderr: the oracle for type and what().
        let stderr = String::from_utf8_lossy(&t.output.stderr);
        let ty = stderr
            .split_once("terminate called after throwing an instance of '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(ty, _)| ty)
            .unwrap_or_else(|| panic!("{mode}: {stderr}"));
        let what = stderr
            .split_once("what():  ")
            .and_then(|(_, rest)| rest.lines().next())
            .unwrap_or_else(|| panic!("{mode}: {stderr}"));

        let inc = t.one("incident");
        let ctx = format!("{mode}: {inc:#}");
        assert_eq!(inc["outcome"], "crashed", "{ctx}");
        assert_eq!(inc["cause"]["type"], "exception", "{ctx}");
        assert_eq!(inc["cause"]["message"], what, "{ctx}");
        assert_eq!(inc["exit"]["signal"], 6, "{ctx}");
        let throw = &inc["events"][0];
        assert_eq!(throw["value_type"], ty, "{ctx}");
        assert!(throw.get("rethrown_by").is_none(), "{ctx}");
        if mode == "future" {
            assert_ne!(throw["tid"], pid, "{ctx}: thrown on the task's thread");
        } else {
            assert_eq!(throw["tid"], pid, "{ctx}");
        }
        let ours: Vec<GdbFrame> = frame_keys(&throw["frames"]);
        let gdb = gdb_throw_frames_with(&bin, &[mode], ty);
        assert!(
            gdb.len() >= 2 && ours.len() >= 2,
            "ours {ours:#?}\ngdb {gdb:#?}"
        );
        assert_eq!(ours[0].function, "__cxa_throw");
        assert_eq!(
            (
                &ours[1].function,
                ours[1].line,
                ours[1].file.as_deref().map(basename)
            ),
            (
                &gdb[1].function,
                gdb[1].line,
                gdb[1].file.as_deref().map(basename)
            ),
            "{mode}: the throwing frame"
        );

        let rethrow = &inc["events"][1];
        assert_eq!(rethrow["type"], "exception", "{ctx}");
        assert_eq!(rethrow["rethrown_by"], by, "{ctx}");
        assert_eq!(rethrow["tid"], pid, "{ctx}");
        assert_eq!(rethrow["thrown_by_tid"], throw["tid"], "{ctx}");
        assert_eq!(rethrow["value_type"], ty, "{ctx}");
        assert_eq!(rethrow["message"], what, "{ctx}");
        let at: Vec<GdbFrame> = frame_keys(&rethrow["frames"]);
        assert!(
            at.iter()
                .any(|f| (f.function.as_str(), f.line) == (rethrow_at.0, Some(rethrow_at.1))),
            "{mode}: {at:#?}"
        );
        // libstdc++'s terminate handler rethrows too, to print what():
        // not an event of its own.
        let rethrows = t
            .of_type("exception")
            .into_iter()
            .filter(|e| e.get("rethrown_by").is_some())
            .count();
        assert_eq!(rethrows, 1, "{mode}: {:#?}", t.records);

        let out = Command::new(crashtrace_bin())
            .args(["run", "--"])
            .arg(&bin)
            .arg(mode)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        // The timeline on stderr, after libstdc++'s own terminate message.
        let human = String::from_utf8_lossy(&out.stderr);
        let verdict = human
            .lines()
            .find(|l| l.starts_with("CRASHED:"))
            .unwrap_or_else(|| panic!("{mode}: {human}"));
        assert!(
            verdict.starts_with(&format!("CRASHED: uncaught c++ exception {ty}: {what} in ")),
            "{verdict}"
        );
        assert!(
            verdict.contains(&format!(
                ", rethrown by {by} on thread {} in {} (rethrow.cpp:{})",
                verdict
                    .rsplit_once("— pid ")
                    .and_then(|(_, p)| p.split_whitespace().next())
                    .unwrap_or("?"),
                rethrow_at.0,
                rethrow_at.1
            )),
            "{verdict}"
        );
    }
}

#[test]
fn null_dereference_in_worker_thread() {
    let bin = build_c("null_deref");
    let t = run_traced(&bin, &[]);
    assert_eq!(
        shell_status(&t.output),
        139,
        "run passes SIGSEGV through as 128+11"
    );

    let attach = t.one("attach");
    assert_eq!(attach["runtime"], "native");
    assert_eq!(attach["debuginfo"], "dwarf");
    assert_eq!(attach["exe"], bin.to_str().unwrap());
    let pid = attach["pid"].as_u64().unwrap();

    let sig = t.one("signal");
    assert_eq!(sig["pid"], pid);
    assert_ne!(
        sig["tid"], pid,
        "the fault is on the worker thread, not main"
    );
    assert_eq!(sig["signal"]["number"], 11);
    assert_eq!(sig["signal"]["name"], "SIGSEGV");
    assert_eq!(sig["signal"]["code"], "SEGV_MAPERR");
    assert_eq!(sig["signal"]["addr"], "0x0");
    assert!(
        sig["signal"].get("sender_pid").is_none(),
        "a fault has no sender"
    );
    let frames = sig["frames"].as_array().unwrap();
    assert_eq!(frames[0]["function"], "load_retries");
    assert_eq!(
        basename(frames[0]["file"].as_str().unwrap()),
        "null_deref.c"
    );
    assert_eq!(frames[0]["line"], 8);
    assert_eq!(frames[0]["module"], bin.to_str().unwrap());
    assert_eq!(
        frames[0]["pc"], sig["registers"]["pc"],
        "frame 0 is the faulting pc"
    );
    assert_eq!(frames[1]["function"], "worker");
    assert_eq!(
        frames[1]["line"], 13,
        "return address resolved to the call's line"
    );

    // Ground truth: gdb's backtrace of the same crash, for every frame
    // crashtrace reports (it stops where the frame-pointer chain leaves
    // code with frame pointers).
    let gdb = gdb_backtrace(&bin);
    assert!(gdb.len() >= frames.len(), "gdb: {gdb:#?}");
    for (ours, theirs) in frames.iter().map(frame_key).zip(&gdb) {
        assert_eq!(
            ours.function, theirs.function,
            "gdb: {gdb:#?}\nours: {frames:#?}"
        );
        assert_eq!(ours.line, theirs.line, "line of {}", ours.function);
        assert_eq!(
            ours.file.as_deref().map(basename),
            theirs.file.as_deref().map(basename)
        );
    }

    let exit = t.one("exit");
    assert_eq!(exit["exit"]["signal"], 11);
    assert!(exit["exit"]["core_dumped"].is_boolean());

    let inc = t.one("incident");
    assert_eq!(inc["outcome"], "crashed");
    assert_eq!(inc["cause"]["type"], "signal");
    assert_eq!(inc["cause"]["message"], "SIGSEGV");
    assert_eq!(inc["thread"]["tid"], sig["tid"]);
    assert_eq!(inc["frames"][0]["function"], "load_retries");
    assert_eq!(inc["exit"]["signal"], 11);
    let kinds: Vec<_> = inc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(kinds, ["signal", "exit"]);
}

#[test]
fn abort_is_a_crash_the_process_sent_itself() {
    let bin = build_c("abort");
    let t = run_traced(&bin, &[]);
    assert_eq!(shell_status(&t.output), 134);
    let pid = t.one("attach")["pid"].clone();
    let sig = t.one("signal");
    assert_eq!(sig["signal"]["name"], "SIGABRT");
    assert_eq!(sig["signal"]["code"], "SI_TKILL");
    assert_eq!(
        sig["signal"]["sender_pid"], pid,
        "abort() signals its own process"
    );
    assert_eq!(sig["signal"]["sender_comm"], "abort");
    assert!(sig["signal"].get("addr").is_none());
    // The top frame is in libc; named like gdb names it (from libc6-dbg).
    let top = &sig["frames"][0];
    assert!(top["module"].as_str().unwrap().contains("libc.so"), "{top}");
    let gdb = gdb_backtrace(&bin);
    assert_eq!(
        top["function"].as_str(),
        Some(gdb[0].function.as_str()),
        "gdb: {gdb:#?}"
    );
    assert_eq!(t.one("exit")["exit"]["signal"], 6);
    assert_eq!(t.one("incident")["outcome"], "crashed");
}

#[test]
fn sigterm_from_another_process_is_a_kill_with_its_sender() {
    let bin = build_c("wait_for_term");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let mut ct = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .args(["run", "--"])
        .arg(&bin)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = read_ready_pid(&mut ct);
    let kill_pid = kill_from_other_process("TERM", pid);
    let status = ct.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "run passes SIGTERM through as 128+15"
    );

    let records = read_records(&out);
    let sig = of_type(&records, "signal");
    assert_eq!(sig.len(), 1, "{records:#?}");
    let s = &sig[0]["signal"];
    assert_eq!(s["name"], "SIGTERM");
    assert_eq!(s["code"], "SI_USER");
    assert_eq!(s["sender_pid"], kill_pid);
    assert_eq!(s["sender_comm"], "kill");
    assert_eq!(s["disposition"], "default");
    let inc = of_type(&records, "incident");
    assert_eq!(inc.len(), 1);
    assert_eq!(inc[0]["outcome"], "killed");
    assert_eq!(inc[0]["exit"]["signal"], 15);
    assert_eq!(inc[0]["pid"], pid);
}

#[test]
fn attach_by_pid_sees_sigkill_and_its_sender_then_exits() {
    let bin = build_c("wait_for_term");
    let mut target = KillOnDrop(Command::new(&bin).stdout(Stdio::piped()).spawn().unwrap());
    let pid = read_ready_pid(&mut target.0);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let mut ct = spawn_attach(pid, &out, &[]);
    let records = wait_for_record(&out, "attach");
    assert_eq!(of_type(&records, "attach")[0]["reason"], "attach");
    let kill_pid = kill_from_other_process("KILL", pid);
    let _ = target.0.wait();
    let status = ct.0.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "attach ends by itself when its process is gone"
    );

    let records = read_records(&out);
    let sig = of_type(&records, "signal");
    assert_eq!(
        sig.len(),
        1,
        "one SIGKILL, not one per thread: {records:#?}"
    );
    assert_eq!(sig[0]["signal"]["name"], "SIGKILL");
    assert_eq!(sig[0]["signal"]["sender_pid"], kill_pid);
    assert_eq!(sig[0]["signal"]["sender_comm"], "kill");
    let exit = of_type(&records, "exit");
    assert_eq!(exit[0]["exit"]["signal"], 9);
    let inc = of_type(&records, "incident");
    assert_eq!(inc[0]["outcome"], "killed");
}

#[test]
fn exit_status_and_output_pass_through_untouched() {
    let bin = build_c("exit3");
    let plain = run_plain(&bin, &["a", "b"]);
    let t = run_traced(&bin, &["a", "b"]);
    assert_eq!(plain.status.code(), Some(3));
    assert_eq!(t.output.status.code(), Some(3));
    assert_eq!(t.output.stdout, plain.stdout, "stdout byte-identical");
    assert_eq!(t.output.stderr, plain.stderr, "stderr byte-identical");
    assert_eq!(t.one("exit")["exit"]["code"], 3);
    assert!(t.of_type("signal").is_empty());
    assert!(
        t.of_type("incident").is_empty(),
        "a plain exit is no incident"
    );
}

#[test]
fn crashing_program_output_is_untouched() {
    let bin = build_c("null_deref");
    let plain = run_plain(&bin, &[]);
    let t = run_traced(&bin, &[]);
    assert_eq!(shell_status(&t.output), shell_status(&plain));
    assert_eq!(t.output.stdout, plain.stdout);
    assert_eq!(t.output.stderr, plain.stderr);
}

#[test]
fn human_timeline_ends_with_a_verdict_and_files_are_private() {
    let bin = build_c("null_deref");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("timeline.txt");
    let status = Command::new(crashtrace_bin())
        .arg("-o")
        .arg(&out)
        .arg("run")
        .arg(&bin)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(139));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "output files are created 0600");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains('\x1b'), "no colours in a file");
    assert!(text.contains("SIGSEGV (SEGV_MAPERR) at 0x0"), "{text}");
    assert!(
        text.contains("load_retries (") && text.contains("null_deref.c:8)"),
        "{text}"
    );
    let verdict = text.lines().last().unwrap();
    assert!(
        verdict.starts_with(
            "CRASHED: SIGSEGV (SEGV_MAPERR) at 0x0 in load_retries (null_deref.c:8) — pid "
        ) && verdict.ends_with("killed by SIGSEGV"),
        "{verdict}"
    );
}

#[test]
fn full_ring_buffer_drops_are_counted_exactly() {
    const N: usize = 3000;
    let bin = build_c("signal_storm");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    // A one-page ring holds three signal records: most of the storm is lost.
    let result = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "--ring-buffer-kib", "4", "-o"])
        .arg(&out)
        .args(["run", "--"])
        .arg(&bin)
        .arg(N.to_string())
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&result.stdout),
        format!("handled {N}\n")
    );
    let records = read_records(&out);
    let delivered = of_type(&records, "signal")
        .iter()
        .filter(|r| r["signal"]["name"] == "SIGUSR1")
        .count();
    let lost: u64 = of_type(&records, "lost")
        .iter()
        .filter(|r| r["event"] == "signal")
        .map(|r| {
            assert_eq!(r["reason"], "ring buffer full");
            r["count"].as_u64().unwrap()
        })
        .sum();
    assert!(lost > 0, "a 4 KiB ring cannot hold {N} records");
    assert_eq!(
        delivered as u64 + lost,
        N as u64,
        "every delivery is recorded or counted"
    );
}

/// The program's file was deleted and another file put at its path before
/// crashtrace attached (a package upgrade under a running service): the
/// frames still come from the code that runs, read through
/// /proc/PID/map_files, not from whatever the path names now.
#[test]
fn binary_deleted_and_replaced_before_attach() {
    use std::io::Write as _;
    let built = build_c("crash_on_input");
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("service");
    std::fs::copy(&built, &app).unwrap();
    let mut target = KillOnDrop(
        Command::new(&app)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = read_ready_pid(&mut target.0);
    std::fs::remove_file(&app).unwrap();
    std::fs::copy(build_c("wait_for_term"), &app).unwrap();

    let out = dir.path().join("events.ndjson");
    let mut ct = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-q", "-o"])
        .arg(&out)
        .args(["attach", "--pid", &pid.to_string()])
        .spawn()
        .unwrap();
    let attach = wait_for_record(&out, "attach");
    assert_eq!(of_type(&attach, "attach")[0]["debuginfo"], "dwarf");
    let mut stdin = target.0.stdin.take().unwrap();
    stdin.write_all(b"GET /\n").unwrap();
    drop(stdin);
    let _ = target.0.wait();
    assert_eq!(ct.wait().unwrap().code(), Some(0));

    let records = read_records(&out);
    let sig = of_type(&records, "signal");
    assert_eq!(sig.len(), 1, "{records:#?}");
    assert_eq!(sig[0]["signal"]["code"], "SEGV_MAPERR");
    let frames = sig[0]["frames"].as_array().unwrap();
    assert_eq!(frames[0]["function"], "parse_request", "{frames:#?}");
    assert_eq!(frames[0]["line"], 10);
    assert_eq!(frames[1]["function"], "main");
    assert_eq!(frames[0]["module"], app.to_str().unwrap());
}

/// A program in another mount namespace (as in a container): its file
/// exists only there, on a tmpfs the host does not see. It is found
/// through /proc/PID/map_files and /proc/PID/root and symbolized, and the
/// exec into it from a traced shell is followed.
#[test]
fn binary_only_visible_in_another_mount_namespace() {
    let built = build_c("crash_on_input");
    let host_dir = tempfile::tempdir().unwrap();
    let mnt = host_dir.path().join("rootfs");
    std::fs::create_dir(&mnt).unwrap();
    // The program waits for its input a moment: a process that execs and
    // dies within a millisecond is gone before its maps can be read (see
    // ARCHITECTURE.md, "Limits").
    let script = format!(
        "mount -t tmpfs none {m} && cp {b} {m}/app && (sleep 0.5; echo go) | {m}/app",
        m = mnt.display(),
        b = built.display()
    );
    let out = host_dir.path().join("events.ndjson");
    let output = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .args([
            "run",
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(shell_status(&output), 139, "{output:?}");
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "the host does not see the namespace's tmpfs"
    );
    let records = read_records(&out);
    let sig = of_type(&records, "signal");
    let sig = sig
        .iter()
        .find(|s| s["signal"]["name"] == "SIGSEGV")
        .unwrap_or_else(|| panic!("{records:#?}"));
    let frames = sig["frames"].as_array().unwrap();
    assert_eq!(frames[0]["function"], "parse_request", "{frames:#?}");
    assert_eq!(frames[0]["line"], 10);
    assert_eq!(frames[1]["function"], "main");
    assert_eq!(
        frames[0]["module"],
        format!("{}/app", mnt.display()).as_str()
    );
}

/// Uncaught exceptions of the standard library's kinds: the message equals
/// the `what():` line libstdc++'s terminate handler prints — read from the
/// object for logic_error/runtime_error subclasses (out_of_range,
/// system_error), known for stateless classes (bad_alloc) — and a user
/// class overriding what() is said to be unreadable rather than guessed.
#[test]
fn standard_exception_messages_equal_libstdcxx_what() {
    let bin = build_cxx("std_exceptions");
    for (arg, ty) in [
        ("out_of_range", "std::out_of_range"),
        ("system_error", "std::system_error"),
        ("bad_alloc", "std::bad_alloc"),
        ("custom", "QuotaExceeded"),
    ] {
        let t = run_traced(&bin, &[arg]);
        assert_eq!(shell_status(&t.output), 134, "{arg}");
        let stderr = String::from_utf8_lossy(&t.output.stderr);
        let what = stderr
            .lines()
            .find_map(|l| l.strip_prefix("  what():  "))
            .unwrap_or_else(|| panic!("{arg}: {stderr}"));
        let exc = t.one("exception");
        assert_eq!(exc["value_type"], ty, "{arg}");
        if arg == "custom" {
            assert!(exc["message"].is_null(), "{arg}: {exc:#}");
            assert!(
                exc["message_unavailable"]
                    .as_str()
                    .is_some_and(|m| m.contains("QuotaExceeded")),
                "{exc:#}"
            );
        } else {
            assert_eq!(exc["message"], what, "{arg}");
        }
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "crashed");
        assert_eq!(incident["cause"]["type"], "exception");
    }
}

/// A crash inside a signal handler: the stack goes on through the kernel's
/// signal frame (`<signal handler called>`, as gdb shows it) to the code
/// the signal interrupted, and equals gdb's `bt` frame for frame.
#[test]
fn a_crash_in_a_signal_handler_unwinds_through_the_signal_frame_like_gdb() {
    for flags in [&["-O0"][..], &["-O2", "-fomit-frame-pointer"][..]] {
        let bin = build_c_flags("handler_crash", flags);
        let ctx = format!("handler_crash {flags:?}");
        let t = run_traced(&bin, &["fault"]);
        assert_eq!(shell_status(&t.output), 139, "{ctx}");
        let fault = t
            .of_type("signal")
            .into_iter()
            .find(|s| s["signal"]["code"] == "SEGV_MAPERR")
            .unwrap_or_else(|| panic!("{ctx}: no fault"));
        let ours: Vec<GdbFrame> = frame_keys(&fault["frames"]);
        let gdb = gdb_frames_passing(&bin, &["fault"], &["SIGUSR1"]);
        let tramp = gdb
            .iter()
            .position(|f| f.function == "<signal handler called>")
            .unwrap_or_else(|| panic!("{ctx}: gdb: {gdb:#?}"));
        assert!(gdb.len() > tramp + 3, "{ctx}: gdb: {gdb:#?}");
        assert!(
            ours.len() >= gdb.len(),
            "{ctx}: ours {ours:#?}\ngdb {gdb:#?}"
        );
        for (o, g) in ours.iter().zip(&gdb) {
            assert_eq!(
                (&o.function, o.line, &o.file),
                (&g.function, g.line, &g.file),
                "{ctx}: ours {ours:#?}\ngdb {gdb:#?}"
            );
        }
        assert!(
            gdb.iter().any(|f| f.function == "work") && gdb[0].function == "on_usr1",
            "{ctx}: {gdb:#?}"
        );
        assert_eq!(fault["frames_truncated"], false, "{ctx}");
    }
}

/// 100 crashing processes of three different bugs give three fingerprints,
/// counted right by `report --group`; the same bugs in a rebuilt binary
/// whose code and lines moved (`-DSHIFT`) give the same three.
#[test]
fn a_hundred_crashes_of_three_bugs_group_into_three_fingerprints() {
    let plain = build_c_flags("three_bugs", &["-O0"]);
    let shifted = build_c_flags("three_bugs", &["-O0", "-DSHIFT"]);
    let dir = tempfile::tempdir().unwrap();
    // Bug 0 fifty times, bug 1 thirty, bug 2 twenty: counts that differ.
    let plan: Vec<u32> = (0..100)
        .map(|i| match i % 10 {
            0..=4 => 0,
            5..=7 => 1,
            _ => 2,
        })
        .collect();
    let run = |bin: &std::path::Path, bugs: &[u32], name: &str| {
        let file = dir.path().join(name);
        let list: Vec<String> = bugs.iter().map(u32::to_string).collect();
        let out = Command::new(crashtrace_bin())
            .args(["--format", "ndjson", "-o"])
            .arg(&file)
            .args([
                "run",
                "--",
                "sh",
                "-c",
                "p=$1; shift; for b; do \"$p\" $b; done",
                "sh",
            ])
            .arg(bin)
            .args(&list)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let records = read_records(&file);
        assert!(
            of_type(&records, "lost").is_empty(),
            "{name}: {:#?}",
            of_type(&records, "lost")
        );
        // Fingerprint of each bug, from the incidents in the order run.
        let incidents: Vec<serde_json::Value> = of_type(&records, "incident")
            .into_iter()
            .filter(|i| {
                i["exe"]
                    .as_str()
                    .is_some_and(|e| e.ends_with(basename(&bin.to_string_lossy())))
            })
            .cloned()
            .collect();
        assert_eq!(
            incidents.len(),
            bugs.len(),
            "{name}: {:?} {}\n{:#?}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            records
                .iter()
                .map(|r| format!("{} {} {}", r["type"], r["pid"], r["exe"]))
                .collect::<Vec<_>>()
        );
        let mut by_bug =
            std::collections::BTreeMap::<u32, std::collections::BTreeSet<String>>::new();
        let mut sorted = incidents.clone();
        sorted.sort_by_key(|i| i["ts_ns"].as_u64());
        for (bug, inc) in bugs.iter().zip(&sorted) {
            let signal = inc["cause"]["message"].as_str().unwrap_or_default();
            let expected = ["SIGSEGV", "SIGFPE", "SIGABRT"][*bug as usize];
            assert_eq!(signal, expected, "{name}: bug {bug}: {inc:#}");
            by_bug
                .entry(*bug)
                .or_default()
                .insert(inc["fingerprint"].as_str().unwrap_or_default().to_owned());
        }
        (file, by_bug)
    };
    let (plain_file, plain_fps) = run(&plain, &plan, "plain.ndjson");
    let (shifted_file, shifted_fps) = run(&shifted, &[0, 1, 2], "shifted.ndjson");
    // One fingerprint per bug, three different ones, equal across builds.
    for bug in 0..3 {
        assert_eq!(plain_fps[&bug].len(), 1, "bug {bug}: {plain_fps:?}");
        assert_eq!(plain_fps[&bug], shifted_fps[&bug], "bug {bug}");
    }
    let fp = |bug: u32| plain_fps[&bug].iter().next().cloned().unwrap_or_default();
    assert_ne!(fp(0), fp(1));
    assert_ne!(fp(1), fp(2));
    assert_ne!(fp(0), fp(2));

    let out = Command::new(crashtrace_bin())
        .args(["report", "--group"])
        .arg(&plain_file)
        .arg(&shifted_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let heads: Vec<&str> = stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(heads.len(), 3, "{stdout}");
    for (head, (count, bug, function)) in heads.iter().zip([
        (51, 0, "in parse_header"),
        (31, 1, "in average"),
        (21, 2, "by abort() in check_invariant"),
    ]) {
        assert!(
            head.starts_with(&format!("{count}× {} ", fp(bug))),
            "bug {bug}: {stdout}"
        );
        // Every process its own pid: more than ten are summed up.
        assert!(head.ends_with(&format!("({count} pids)")), "{stdout}");
        let verdict = stdout
            .lines()
            .skip_while(|l| l != head)
            .nth(1)
            .unwrap_or_default();
        assert!(
            verdict.contains(&format!(" {function} (three_bugs.c:")),
            "{stdout}"
        );
    }
}
