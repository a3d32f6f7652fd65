//! Go programs that really panic, recover and die, on each tested Go
//! toolchain (Debian's 1.19, the oldest and newest on PyPI and one in
//! between), plain and `-s -w`. Ground truth is the Go runtime: its
//! `panic:` / `fatal error:` line and its own traceback on stderr.

mod common;

use std::{path::Path, process::Command};

use common::*;
use serde_json::Value;

/// Scenarios that end the program, with the kind of record that starts
/// their story.
const UNRECOVERED: &[(&str, &str)] = &[
    ("goroutine", "panic"),
    ("index", "panic"),
    ("nilmap", "panic"),
    ("nilptr", "panic"),
    ("typeassert", "panic"),
    ("wrapped", "panic"),
    ("errorsnew", "panic"),
    ("nested", "panic"),
    ("customerr", "panic"),
    ("repanic", "panic"),
    ("concurrent-map", "fatal"),
    ("divzero", "panic"),
    ("panicnil", "panic"),
];

fn run_scenario(bin: &Path, scenario: &str) -> (Traced, String) {
    let t = run_traced(bin, &[scenario]);
    let stderr = String::from_utf8_lossy(&t.output.stderr).into_owned();
    (t, stderr)
}

fn frames_of(record: &Value) -> Vec<GoFrame> {
    record["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            Some(GoFrame {
                function: f["function"].as_str()?.to_owned(),
                file: f["file"].as_str()?.to_owned(),
                line: f["line"].as_u64()? as u32,
            })
        })
        .collect()
}

fn user_frames(frames: Vec<GoFrame>) -> Vec<GoFrame> {
    frames
        .into_iter()
        .filter(|f| !is_go_runtime(&f.function))
        .collect()
}

#[test]
fn unrecovered_panics_and_fatal_errors_match_the_runtime() {
    for build in go_builds("crashy") {
        let (version, bin) = (build.version, &build.path);
        for &(scenario, kind) in UNRECOVERED {
            let ctx = format!("{}, scenario {scenario}", build.label);
            let plain = run_plain(bin, &[scenario]);
            let (t, stderr) = run_scenario(bin, scenario);
            assert_eq!(
                t.output.status.code(),
                Some(2),
                "{ctx}: exit status passes through"
            );
            assert_eq!(t.output.stdout, plain.stdout, "{ctx}: stdout untouched");

            let attach = t.one("attach");
            assert_eq!(attach["runtime"], "go", "{ctx}");
            assert_eq!(attach["runtime_version"], format!("go{version}"), "{ctx}");

            // The story of the goroutine the runtime reports. (Others may
            // have been under way: with concurrent map writes, several
            // goroutines can detect the race and call fatal at once.)
            let (runtime_goid, _) = go_traceback(&stderr);
            let incidents = t.of_type("incident");
            assert!(!incidents.is_empty(), "{ctx}: no incident");
            let incident = *incidents
                .iter()
                .find(|i| {
                    i["thread"]["goid"].as_u64() == runtime_goid && i["outcome"] != "recovered"
                })
                .unwrap_or_else(|| {
                    panic!("{ctx}: no incident for goroutine {runtime_goid:?}: {incidents:#?}")
                });
            if scenario == "repanic" {
                // Recovered, then panicked again from the deferred function
                // that recovered: two stories, the crash related to the
                // recovered one, which names that function.
                assert_eq!(incidents.len(), 2, "{ctx}: {incidents:#?}");
                let recovered = incidents
                    .iter()
                    .find(|i| i["outcome"] == "recovered")
                    .unwrap_or_else(|| panic!("{ctx}: {incidents:#?}"));
                assert_eq!(recovered["cause"]["message"], "original", "{ctx}");
                let by = &recovered["recovered_by"];
                assert!(
                    by["function"]
                        .as_str()
                        .is_some_and(|f| f.starts_with("main.main.func")),
                    "{ctx}: {recovered:#}"
                );
                assert_eq!(
                    by["line"],
                    line_of("panic(fmt.Sprint(\"re-panic: \", r))"),
                    "{ctx}"
                );
                assert_eq!(incident["related"][0], recovered["story"], "{ctx}");
            } else if scenario != "concurrent-map" {
                assert_eq!(incidents.len(), 1, "{ctx}: {incidents:#?}");
            }
            if scenario == "concurrent-map" {
                // A fatal error: the runtime prints every goroutine, and so
                // does the dump. The writer that threw is first, with the
                // runtime's frames; the other writers are there as the
                // runtime saw them (running elsewhere, or preempted).
                let dump = t.one("goroutines");
                let theirs = go_goroutine_dump(&stderr);
                assert_eq!(dump["printed"].as_u64(), Some(theirs.len() as u64), "{ctx}");
                let ours = dumped_by_us(dump);
                let thrower = &theirs[0];
                let (status, frames, _) = &ours[&thrower.goid];
                assert_eq!(status, "running", "{ctx}");
                assert_eq!(
                    user_frames(frames.clone()),
                    user_frames(thrower.frames.clone()),
                    "{ctx}: the writer that threw"
                );
                for g in &theirs {
                    assert!(
                        ours.contains_key(&g.goid),
                        "{ctx}: goroutine {} missing",
                        g.goid
                    );
                }
            }
            assert_eq!(incident["outcome"], "crashed", "{ctx}");
            assert_eq!(incident["exit"]["code"], 2, "{ctx}");
            let events = incident["events"].as_array().unwrap();
            let cause = events
                .iter()
                .find(|e| e["type"] == kind)
                .unwrap_or_else(|| panic!("{ctx}: no {kind} in {incident:#}"));

            // The message is the runtime's first line: `fatal error: …`, or
            // for a panic the text the runtime printed (Error() of custom
            // error types included), which crashtrace reads as it prints.
            let first_line = stderr.lines().next().unwrap_or_default();
            let expected = if kind == "panic" {
                let printed: Vec<_> = events
                    .iter()
                    .filter(|e| e["type"] == "fatal" && e["source"] == "panic")
                    .collect();
                let oldest = printed
                    .last()
                    .unwrap_or_else(|| panic!("{ctx}: no printed panic in {incident:#}"));
                if scenario == "nilptr" {
                    // SIGSEGV → sigpanic → panic: the story starts at the
                    // fault and is told as the runtime tells it: the panic's
                    // message, the signal beside it.
                    assert_eq!(incident["cause"]["type"], "signal", "{ctx}");
                    assert_eq!(incident["cause"]["message"], oldest["message"], "{ctx}");
                    assert_eq!(incident["cause"]["signal"]["name"], "SIGSEGV", "{ctx}");
                    assert_eq!(incident["cause"]["signal"]["code"], "SEGV_MAPERR", "{ctx}");
                    assert_eq!(cause["message"], oldest["message"], "{ctx}");
                } else {
                    // The runtime prints the chain oldest first; a panic
                    // recovered before this one was re-panicked ended its
                    // own story (repanic): the cause is the oldest of those
                    // not recovered.
                    let unrecovered = printed
                        .iter()
                        .rev()
                        .find(|e| e["recovered"] != true)
                        .unwrap_or(oldest);
                    assert_eq!(
                        incident["cause"]["message"], unrecovered["message"],
                        "{ctx}"
                    );
                }
                let suffix = if oldest["recovered"] == true {
                    " [recovered]"
                } else {
                    ""
                };
                format!("panic: {}{suffix}", oldest["message"].as_str().unwrap())
            } else {
                format!("fatal error: {}", cause["message"].as_str().unwrap())
            };
            assert_eq!(expected, first_line, "{ctx}: message");
            if kind == "panic" && !matches!(scenario, "customerr" | "nilptr") {
                // Decoded at gopanic already, from the value's bytes.
                assert_eq!(
                    cause["message"], incident["cause"]["message"],
                    "{ctx}: message at the panic itself"
                );
            }

            // The goroutine and its frames are the runtime's own traceback,
            // runtime frames left out, inlined frames included.
            let (goid, theirs) = go_traceback(&stderr);
            assert_eq!(cause["goid"].as_u64(), goid, "{ctx}: goroutine id");
            assert_eq!(incident["thread"]["goid"].as_u64(), goid, "{ctx}");
            // The runtime prints the stack as it is when the program dies:
            // for a nested panic, that of the last one.
            let last = events.iter().rev().find(|e| e["type"] == kind).unwrap();
            let ours = user_frames(frames_of(last));
            let theirs = user_frames(theirs);
            assert!(!theirs.is_empty(), "{ctx}: no traceback in {stderr}");
            assert_eq!(ours, theirs, "{ctx}: frames\nstderr:\n{stderr}");
            // Each panic the runtime printed: the stack it printed it from.
            for printed in events
                .iter()
                .filter(|e| e["type"] == "fatal" && e["source"] == "panic")
            {
                assert_eq!(
                    user_frames(frames_of(printed)),
                    theirs,
                    "{ctx}: printpanics"
                );
            }

            if scenario == "nilptr" {
                // runtime.sigpanic on the faulting goroutine, between the
                // kernel's signal and the panic, with the fault as the
                // runtime prints it: `[signal SIGSEGV: … code=0x1 addr=0x0 pc=0x…]`.
                let types: Vec<_> = events.iter().map(|e| e["type"].as_str()).collect();
                let at = |t: &str| types.iter().position(|&x| x == Some(t));
                assert!(
                    at("signal") < at("sigpanic") && at("sigpanic") < at("panic"),
                    "{ctx}: order {types:?}"
                );
                let sp = events.iter().find(|e| e["type"] == "sigpanic").unwrap();
                assert_eq!(sp["goid"].as_u64(), goid, "{ctx}");
                let line = stderr
                    .lines()
                    .find(|l| l.starts_with("[signal SIGSEGV"))
                    .unwrap_or_else(|| panic!("{ctx}: {stderr}"));
                let field = |name: &str| {
                    line.split([' ', ']'])
                        .find_map(|w| w.strip_prefix(name))
                        .unwrap_or_else(|| panic!("{ctx}: no {name} in {line}"))
                        .to_owned()
                };
                assert_eq!(sp["signal"]["name"], "SIGSEGV", "{ctx}");
                assert_eq!(field("code="), "0x1", "{ctx}");
                assert_eq!(sp["signal"]["code"], "SEGV_MAPERR", "{ctx}");
                assert_eq!(sp["signal"]["addr"], field("addr="), "{ctx}");
                assert_eq!(sp["fault_pc"], field("pc="), "{ctx}");
                assert_eq!(user_frames(frames_of(sp)), theirs, "{ctx}: sigpanic frames");
                // The kernel's signal record, walked with Go's own tables
                // from its stack copy: the frameless leaf keeps its caller
                // (a frame-pointer walk skips main.main here).
                let signal = events.iter().find(|e| e["type"] == "signal").unwrap();
                assert_eq!(
                    user_frames(frames_of(signal)),
                    theirs,
                    "{ctx}: the signal's frames"
                );
                // The incident starts where the runtime's traceback does.
                assert_eq!(
                    frames_of(incident).first().map(|f| &f.function),
                    theirs.first().map(|f| &f.function),
                    "{ctx}: the incident's first frame"
                );
            }
        }
    }
}

#[test]
fn recovered_panics_are_incidents_with_outcome_recovered() {
    for build in go_builds("crashy") {
        let (ctx, bin) = (&build.label, &build.path);
        let plain = run_plain(bin, &["recovered"]);
        let (t, _) = run_scenario(bin, "recovered");
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        assert_eq!(t.output.stdout, plain.stdout, "{ctx}: stdout untouched");
        let panics = t.of_type("panic");
        assert_eq!(panics.len(), 2, "{ctx}");
        assert_eq!(panics[0]["message"], "handler failed: GET /health", "{ctx}");
        assert_eq!(panics[0]["value_type"], "string", "{ctx}");
        assert_eq!(panics[1]["message"], "handler failed: GET /orders", "{ctx}");
        assert_eq!(t.of_type("recover").len(), 2, "{ctx}");
        let incidents = t.of_type("incident");
        assert_eq!(incidents.len(), 2, "{ctx}");
        for (inc, p) in incidents.iter().zip(&panics) {
            assert_eq!(inc["outcome"], "recovered", "{ctx}");
            assert_eq!(inc["cause"]["type"], "panic", "{ctx}");
            assert_eq!(inc["cause"]["message"], p["message"], "{ctx}");
            assert_eq!(inc["thread"]["goid"], p["goid"], "{ctx}");
            assert!(inc["exit"].is_null(), "{ctx}");
            // The deferred closure in main.handle that called recover().
            let by = &inc["recovered_by"];
            assert_eq!(by["function"], "main.handle.func1", "{ctx}: {inc:#}");
            assert_eq!(by["line"], line_of("defer func() {"), "{ctx}");
            let user = user_frames(frames_of(p));
            assert_eq!(user[0].function, "main.handle", "{ctx}");
            assert_eq!(
                user[0].line,
                line_of("panic(\"handler failed: \""),
                "{ctx}: the panic call's line"
            );
        }
        assert!(t.of_type("exit")[0]["exit"]["code"] == 0, "{ctx}");
    }
}

/// What a recovered panic costs the program: probe hits, from `-v`'s
/// summary. Go 1.22+ tells a recovered panic at runtime.recovery alone
/// (its value, frames and recovering function are all still there): one
/// hit. Go 1.19–1.21 recover after the panic left the goroutine's chain:
/// gopanic, deferCallSave (the deferred call that recovers) and recovery,
/// three hits.
#[test]
fn a_recovered_panic_costs_one_probe_hit_on_go_1_22_and_later() {
    for build in go_builds("crashy") {
        let ctx = &build.label;
        // A copy of its own: the hit counter counts every process that runs
        // the probed file, and other tests run the same builds meanwhile.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("crashy");
        std::fs::copy(&build.path, &bin).unwrap();
        let out = Command::new(crashtrace_bin())
            .args(["-v", "--format", "ndjson", "-o", "/dev/null", "run", "--"])
            .arg(&bin)
            .arg("recovered")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{ctx}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let one_hit = !matches!(build.version, "1.19.8" | "1.21.13");
        let want = if one_hit { 2 } else { 6 };
        assert!(
            stderr.contains(&format!(", {want} Go probe hits,")),
            "{ctx}: two recovered panics: {stderr}"
        );
    }
}

/// Panics that end together, told once each and in the order they
/// started, on every version (Go 1.22+ reads them from the goroutine's
/// `_panic` chain when they end): a panic in a deferred call, recovered
/// there, while an outer panic runs it, the outer one recovered after;
/// and a panic a deferred runtime.Goexit abandons (never printed, never
/// recovered, the program goes on).
#[test]
fn nested_panics_and_a_panic_goexit_abandons_are_each_told_once() {
    for build in go_builds("crashy") {
        let (ctx, bin) = (&build.label, &build.path);
        let (t, _) = run_scenario(bin, "nested-recovered");
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        let panics = t.of_type("panic");
        let messages: Vec<_> = panics.iter().map(|p| p["message"].clone()).collect();
        assert_eq!(
            messages,
            ["outer: request failed", "inner: cleanup failed"],
            "{ctx}"
        );
        let outer = user_frames(frames_of(panics[0]));
        assert_eq!(outer[0].function, "main.nestedRecovered", "{ctx}");
        assert_eq!(
            outer[0].line,
            line_of("panic(\"outer: request failed\")"),
            "{ctx}"
        );
        let inner = user_frames(frames_of(panics[1]));
        assert_eq!(inner[0].function, "main.nestedRecovered.func2", "{ctx}");
        assert_eq!(
            inner[0].line,
            line_of("panic(\"inner: cleanup failed\")"),
            "{ctx}"
        );
        // The outer panic's call site is below the inner's, as the runtime
        // walks it.
        assert_eq!(
            inner[1].function, "main.nestedRecovered",
            "{ctx}: {inner:#?}"
        );
        let by: Vec<_> = t
            .of_type("recover")
            .iter()
            .map(|r| r["recovered_by"]["function"].clone())
            .collect();
        assert_eq!(
            by,
            ["main.nestedRecovered.func2.1", "main.nestedRecovered.func1"],
            "{ctx}"
        );

        let (t, _) = run_scenario(bin, "panic-goexit");
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        let panic = t.one("panic");
        assert_eq!(panic["message"], "abandoned by Goexit", "{ctx}");
        let user = user_frames(frames_of(panic));
        assert_eq!(user[0].function, "main.abandonPanic", "{ctx}");
        assert_eq!(
            user[0].line,
            line_of("panic(\"abandoned by Goexit\")"),
            "{ctx}"
        );
        let goexit = t.one("goexit");
        assert_eq!(goexit["goid"], panic["goid"], "{ctx}");
        assert!(t.of_type("recover").is_empty(), "{ctx}");
    }
}

/// Six panics under way on one goroutine, each raised by a deferred call
/// of the one before. Go 1.22+ reads a goroutine's panics from its
/// `_panic` chain when they end, the newest 4 a hit: the 2 older ones are
/// not told, and a `lost` record says so with their count (never a silent
/// drop). Go 1.19–1.21 tell each panic at its start: all six, nothing
/// lost. Recovered (the newest, the older five aborted with it), and
/// unrecovered: the runtime prints all six, the oldest first, and the
/// incident names the oldest as it does.
#[test]
fn more_panics_under_way_than_a_record_holds_are_counted_as_lost() {
    for build in go_builds("crashy") {
        let (ctx, bin) = (&build.label, &build.path);
        let at_start = matches!(build.version, "1.19.8" | "1.21.13");
        let told: Vec<String> = (if at_start { 1 } else { 3 }..=6)
            .map(|i| format!("nested panic {i}"))
            .collect();
        // The panics told, and what is said of the others.
        let check_panics = |t: &Traced| {
            let messages: Vec<_> = t
                .of_type("panic")
                .iter()
                .map(|p| p["message"].clone())
                .collect();
            assert_eq!(messages, told, "{ctx}");
            let lost = t.of_type("lost");
            if at_start {
                assert!(lost.is_empty(), "{ctx}: {lost:#?}");
            } else {
                assert_eq!(lost.len(), 1, "{ctx}: {lost:#?}");
                assert_eq!(lost[0]["count"], 2, "{ctx}: {:#}", lost[0]);
                assert_eq!(lost[0]["event"], "go", "{ctx}: {:#}", lost[0]);
                let reason = lost[0]["reason"].as_str().unwrap();
                let pid = t.one("attach")["pid"].clone();
                assert!(
                    reason.starts_with(&format!("pid {pid} goroutine 1: 2 older panics")),
                    "{ctx}: {reason}"
                );
            }
        };

        let (t, _) = run_scenario(bin, "nested-deep");
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        let stdout = String::from_utf8_lossy(&t.output.stdout);
        assert!(
            stdout.contains("recovered: nested panic 6"),
            "{ctx}: {stdout}"
        );
        check_panics(&t);
        let recover = t.one("recover");
        assert_eq!(
            recover["recovered_by"]["function"], "main.deepNested.func1",
            "{ctx}: {recover:#}"
        );
        // The newest panic's own frames: its panicInDefer on top of five
        // more, each under a gopanic, then deepNested.
        let newest = user_frames(frames_of(t.of_type("panic").last().unwrap()));
        let depth = newest
            .iter()
            .filter(|f| f.function == "main.panicInDefer")
            .count();
        assert_eq!(depth, 6, "{ctx}: {newest:#?}");
        assert_eq!(newest[6].function, "main.deepNested", "{ctx}: {newest:#?}");

        let (t, stderr) = run_scenario(bin, "nested-deep-fatal");
        assert_eq!(t.output.status.code(), Some(2), "{ctx}");
        assert!(
            stderr.contains("panic: nested panic 1\n\tpanic: nested panic 2"),
            "{ctx}: {stderr}"
        );
        check_panics(&t);
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "crashed", "{ctx}: {incident:#}");
        assert_eq!(
            incident["cause"]["message"], "nested panic 1",
            "{ctx}: {incident:#}"
        );
        assert_eq!(incident["exit"]["code"], 2, "{ctx}: {incident:#}");
    }
}

/// A deferred call that recovers and then exits the process (a
/// `log.Fatal(recover())` handler; here `os.Exit(3)`): the runtime's
/// recovery never runs and it prints nothing, yet the panic is the story.
/// Go 1.22+ tells panics when they end: this one ends at the exit.
#[test]
fn a_panic_whose_deferred_call_exits_is_told() {
    for build in go_builds("crashy") {
        let (ctx, bin) = (&build.label, &build.path);
        let (t, stderr) = run_scenario(bin, "recover-exit");
        assert_eq!(t.output.status.code(), Some(3), "{ctx}");
        assert!(stderr.contains("fatal: config missing"), "{ctx}: {stderr}");
        let panic = t.one("panic");
        assert_eq!(panic["message"], "config missing", "{ctx}");
        let user = user_frames(frames_of(panic));
        assert_eq!(user[0].function, "main.recoverThenExit", "{ctx}");
        assert_eq!(user[0].line, line_of("panic(\"config missing\")"), "{ctx}");
        assert!(t.of_type("recover").is_empty(), "{ctx}");
        let incident = t.one("incident");
        assert_eq!(incident["cause"]["type"], "panic", "{ctx}: {incident:#}");
        assert_eq!(incident["cause"]["message"], "config missing", "{ctx}");
        assert_eq!(incident["exit"]["code"], 3, "{ctx}: {incident:#}");
    }
}

/// A fault the program recovers from (debug.SetPanicOnFault: a bad,
/// non-nil address becomes a recoverable runtime.errorAddressString): the
/// story is the fault told as the panic it became — the message the
/// program's own recover() printed, with the signal beside it.
#[test]
fn recovered_fault_is_the_panic_it_became() {
    for build in go_builds("crashy") {
        let (ctx, bin) = (&build.label, &build.path);
        let plain = run_plain(bin, &["fault-recovered"]);
        let (t, _) = run_scenario(bin, "fault-recovered");
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        assert_eq!(t.output.stdout, plain.stdout, "{ctx}: stdout untouched");
        let stdout = String::from_utf8_lossy(&plain.stdout);
        let printed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("recovered: "))
            .unwrap_or_else(|| panic!("{ctx}: {stdout}"));
        let panic = t.one("panic");
        assert_eq!(panic["message"], printed, "{ctx}");
        assert_eq!(panic["value_type"], "runtime.errorAddressString", "{ctx}");
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "recovered", "{ctx}");
        assert_eq!(incident["cause"]["message"], printed, "{ctx}: {incident:#}");
        assert_eq!(incident["cause"]["signal"]["name"], "SIGSEGV", "{ctx}");
        assert_eq!(incident["cause"]["signal"]["addr"], "0x1000", "{ctx}");
    }
}

/// A gopanic call that finds its goroutine's stack too small grows it
/// through morestack and starts over from its entry: still one panic.
/// Go 1.19's probe sits on the stack check's jump itself, which runs
/// twice then; the kernel side skips the hit that goes to morestack.
/// (Measured under gdb, a breakpoint on gopanic's morestack block: 10 of
/// these 200 calls grow the stack on Go 1.19.8, 7 on 1.21.13.) The 200
/// panics come from one site within a second: the first
/// `GO_PANICS_PER_SEC` (100) are told, each with its `recover` and
/// incident, and the rest are counted in a `lost` record — told + counted
/// is exactly 200, so no panic is told or counted twice.
#[test]
fn panics_that_grow_the_stack_are_recorded_once() {
    for build in go_builds("crashy") {
        let (ctx, bin) = (&build.label, &build.path);
        let (t, _) = run_scenario(bin, "deep-recovered");
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        let lost = t.of_type("lost");
        assert!(
            lost.iter().all(|l| l["event"] == "panic"),
            "{ctx}: only rate-limited panics may go untold: {lost:#?}"
        );
        let untold: u64 = lost.iter().filter_map(|l| l["count"].as_u64()).sum();
        let told = t.of_type("panic").len() as u64;
        assert_eq!(told + untold, 200, "{ctx}: told {told}, counted {untold}");
        // A second's worth told, and the limit engaged: the 200 panics
        // take milliseconds, so one key for their one site (Go 1.22+: read
        // at recovery, gopanic's frame size from the binary) holds them.
        assert!(
            (100..200).contains(&told),
            "{ctx}: at least a second's worth told, not all: {told}"
        );
        assert_eq!(t.of_type("recover").len() as u64, told, "{ctx}");
        let incidents = t.of_type("incident");
        assert_eq!(incidents.len() as u64, told, "{ctx}");
        assert!(
            incidents.iter().all(|i| i["outcome"] == "recovered"
                && i["recovered_by"]["function"] == "main.recoverHere.func1"),
            "{ctx}"
        );
    }
}

/// Fatal errors the scheduler or the stack allocator raise, often on the
/// system stack: the message is the runtime's `fatal error:` line, the
/// program dies with status 2.
#[test]
fn runtime_fatal_errors() {
    for build in go_builds("crashy") {
        let bin = &build.path;
        for scenario in ["deadlock", "goexit", "overflow"] {
            let ctx = format!("{}, scenario {scenario}", build.label);
            let (t, stderr) = run_scenario(bin, scenario);
            assert_eq!(t.output.status.code(), Some(2), "{ctx}");
            let fatal_line = stderr
                .lines()
                .find(|l| l.starts_with("fatal error: "))
                .unwrap_or_else(|| panic!("{ctx}: {stderr}"));
            let fatals = t.of_type("fatal");
            assert!(
                fatals.iter().any(
                    |f| format!("fatal error: {}", f["message"].as_str().unwrap()) == fatal_line
                ),
                "{ctx}: {fatal_line:?} not among {fatals:#?}"
            );
            let incident = t.one("incident");
            assert_eq!(incident["outcome"], "crashed", "{ctx}");
            if scenario == "goexit" {
                // The main goroutine's Goexit is the cause; the scheduler's
                // deadlock (on the system stack, no goroutine) its outcome.
                assert_eq!(incident["cause"]["type"], "goexit", "{ctx}: {incident:#}");
                assert_eq!(incident["thread"]["goid"], 1, "{ctx}");
                let types: Vec<_> = incident["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
                    .collect();
                assert_eq!(types, ["goexit", "fatal", "exit"], "{ctx}");
                let top = &user_frames(frames_of(incident))[0];
                assert_eq!(top.function, "main.main", "{ctx}");
                assert_eq!(top.line, line_of("runtime.Goexit()"), "{ctx}");
                continue;
            }
            assert_eq!(incident["cause"]["type"], "fatal", "{ctx}");
            if scenario == "overflow" {
                // throw runs on the system stack: the goroutine is g.m.curg.
                let (goid, _) = go_traceback(&stderr);
                assert_eq!(incident["thread"]["goid"].as_u64(), goid, "{ctx}");
                assert_eq!(fatals[0]["on_system_stack"], true, "{ctx}");
                // Its frames: the goroutine's, walked from its saved
                // context, as the runtime prints them (first 40 of 100).
                let (_, theirs) = go_traceback(&stderr);
                let ours = user_frames(frames_of(fatals[0]));
                let theirs = user_frames(theirs);
                assert!(ours.len() >= 40 && theirs.len() >= 40, "{ctx}: {ours:#?}");
                assert_eq!(ours[..40], theirs[..40], "{ctx}");
            }
        }
    }
}

/// A goroutine in our dump: status, frames, creator (function, line).
type OurGoroutine = (String, Vec<GoFrame>, Option<(String, u32)>);

/// Our `goroutines` record, one entry per goroutine id.
fn dumped_by_us(dump: &Value) -> std::collections::HashMap<u64, OurGoroutine> {
    let mut out = std::collections::HashMap::new();
    for g in dump["groups"].as_array().unwrap() {
        let created = g.get("created_by").filter(|c| !c.is_null()).map(|c| {
            (
                c["function"].as_str().unwrap_or_default().to_owned(),
                c["line"].as_u64().unwrap_or(0) as u32,
            )
        });
        for id in g["goids"].as_array().unwrap() {
            out.insert(
                id.as_u64().unwrap(),
                (
                    g["status"].as_str().unwrap().to_owned(),
                    frames_of(g),
                    created.clone(),
                ),
            );
        }
    }
    out
}

/// Every goroutine the runtime printed is in our dump with its status,
/// user frames (function, file, line) and creator; `user_only`: compare
/// only frames outside the runtime (what GOTRACEBACK=single|all prints).
fn assert_dump_matches(ctx: &str, dump: &Value, stderr: &str) {
    let theirs = go_goroutine_dump(stderr);
    assert!(
        !theirs.is_empty(),
        "{ctx}: no goroutine dump on stderr: {stderr}"
    );
    assert_eq!(
        dump["printed"].as_u64(),
        Some(theirs.len() as u64),
        "{ctx}: {dump:#}"
    );
    assert_eq!(dump["left_out"], 0, "{ctx}");
    let ours = dumped_by_us(dump);
    for g in &theirs {
        let Some((status, frames, created)) = ours.get(&g.goid) else {
            panic!("{ctx}: goroutine {} missing from {dump:#}", g.goid);
        };
        assert_eq!(status, &g.status, "{ctx}: goroutine {}", g.goid);
        assert_eq!(
            user_frames(frames.clone()),
            user_frames(g.frames.clone()),
            "{ctx}: goroutine {} frames",
            g.goid
        );
        let theirs_created = g.created_by.as_ref().map(|c| (c.function.clone(), c.line));
        // The runtime names its own creators only at GOTRACEBACK=system.
        if theirs_created.is_some() || created.as_ref().is_some_and(|c| !is_go_runtime(&c.0)) {
            assert_eq!(
                created, &theirs_created,
                "{ctx}: goroutine {} creator",
                g.goid
            );
        }
    }
}

/// A deadlock with three goroutines blocked three ways: the runtime prints
/// every goroutine (`fatal error: all goroutines are asleep`), and so does
/// the incident, read from the process as the runtime printed each one.
#[test]
fn deadlock_dump_names_every_blocked_goroutine_as_the_runtime_does() {
    for build in go_builds("crashy") {
        let ctx = &build.label;
        let (t, stderr) = run_scenario(&build.path, "deadlock3");
        assert_eq!(t.output.status.code(), Some(2), "{ctx}");
        let dump = t.one("goroutines");
        assert_dump_matches(ctx, dump, &stderr);
        let theirs = go_goroutine_dump(&stderr);
        assert_eq!(theirs.len(), 4, "{ctx}: {stderr}");
        let statuses: Vec<&str> = theirs.iter().map(|g| g.status.as_str()).collect();
        assert!(
            statuses.contains(&"chan receive") && statuses.contains(&"select"),
            "{ctx}: {statuses:?}"
        );
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "crashed", "{ctx}");
        for field in ["printed", "left_out", "groups"] {
            assert_eq!(
                incident["goroutines"][field], dump[field],
                "{ctx}: the incident carries the dump"
            );
        }
        // Each blocked goroutine's own function is named.
        let named: Vec<String> = dumped_by_us(dump)
            .values()
            .flat_map(|(_, f, _)| user_frames(f.clone()))
            .map(|f| f.function)
            .collect();
        for f in [
            "main.consume",
            "main.lockAndCount",
            "main.waitBoth",
            "main.main",
        ] {
            assert!(named.iter().any(|n| n == f), "{ctx}: {f} not in {named:?}");
        }
    }
}

/// Position-independent Go executables (`-buildmode=pie`, how Arch,
/// Alpine and Fedora ship Go programs), plain and `-s -w`: a stripped PIE
/// keeps `.gopclntab` in `.data.rel.ro` (a segment writable until
/// relocated), where it was not looked for — nothing was traced. A nil
/// dereference and a deadlock are told as on the other builds: the
/// runtime's message, frames and goroutine dump.
#[test]
fn position_independent_go_programs_are_traced_like_the_others() {
    for build in go_pie_builds("crashy") {
        let ctx = format!("{}, nilptr", build.label);
        let (t, stderr) = run_scenario(&build.path, "nilptr");
        assert_eq!(t.output.status.code(), Some(2), "{ctx}");
        assert_eq!(t.one("attach")["runtime"], "go", "{ctx}");
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "crashed", "{ctx}: {incident:#}");
        let first_line = stderr.lines().next().unwrap_or_default();
        assert_eq!(
            format!(
                "panic: {}",
                incident["cause"]["message"].as_str().unwrap_or("")
            ),
            first_line,
            "{ctx}"
        );
        assert_eq!(incident["cause"]["signal"]["name"], "SIGSEGV", "{ctx}");
        let (goid, theirs) = go_traceback(&stderr);
        assert_eq!(incident["thread"]["goid"].as_u64(), goid, "{ctx}");
        let theirs = user_frames(theirs);
        assert!(!theirs.is_empty(), "{ctx}: {stderr}");
        assert_eq!(user_frames(frames_of(incident)), theirs, "{ctx}: {stderr}");

        let ctx = format!("{}, deadlock3", build.label);
        let (t, stderr) = run_scenario(&build.path, "deadlock3");
        assert_eq!(t.output.status.code(), Some(2), "{ctx}");
        let dump = t.one("goroutines");
        assert_dump_matches(&ctx, dump, &stderr);
        assert_eq!(go_goroutine_dump(&stderr).len(), 4, "{ctx}: {stderr}");
    }
}

/// 10,000 blocked goroutines: the dump is bounded (1000 recorded), the
/// rest counted, and the program prints and exits as it does untraced.
#[test]
fn a_dump_of_ten_thousand_goroutines_is_bounded_and_counted() {
    let build = go_builds("crashy").next().unwrap();
    let ctx = &build.label;
    let plain = run_plain(&build.path, &["deadlock10k"]);
    let (t, stderr) = run_scenario(&build.path, "deadlock10k");
    assert_eq!(t.output.status.code(), plain.status.code(), "{ctx}");
    assert_eq!(t.output.status.code(), Some(2), "{ctx}");
    let theirs = go_goroutine_dump(&stderr);
    assert_eq!(theirs.len(), 10_001, "{ctx}");
    assert_eq!(
        go_goroutine_dump(&String::from_utf8_lossy(&plain.stderr)).len(),
        10_001,
        "{ctx}: untraced"
    );
    assert_eq!(t.output.stdout, plain.stdout, "{ctx}");
    let dump = t.one("goroutines");
    assert_eq!(dump["printed"], 10_001, "{ctx}");
    assert_eq!(dump["left_out"], 9_001, "{ctx}");
    let recorded: u64 = dump["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(recorded, 1_000, "{ctx}");
    assert!(
        t.of_type("lost").is_empty(),
        "{ctx}: {:#?}",
        t.of_type("lost")
    );
}

/// `kill -QUIT`: the Go runtime dumps every goroutine (system ones too)
/// and exits 2; the incident is a kill by `kill`, with that dump.
#[test]
fn sigquit_dump_matches_the_runtime() {
    for build in go_builds("crashy") {
        let ctx = &build.label;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.ndjson");
        let mut child = KillOnDrop(
            Command::new(crashtrace_bin())
                .args(["--format", "ndjson", "-o"])
                .arg(&out)
                .args(["run", "--"])
                .arg(&build.path)
                .arg("parked")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let pid = read_ready_pid(&mut child.0);
        // Both goroutines parked.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let sender = kill_from_other_process("QUIT", pid);
        let output = child.take().wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{ctx}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let records = read_records(&out);
        let dumps = of_type(&records, "goroutines");
        assert_eq!(dumps.len(), 1, "{ctx}: {records:#?}");
        assert_dump_matches(ctx, dumps[0], &stderr);
        let incident = of_type(&records, "incident")[0];
        assert_eq!(incident["outcome"], "killed", "{ctx}: {incident:#}");
        assert_eq!(
            incident["events"][0]["signal"]["sender_pid"], sender,
            "{ctx}"
        );
        let named: Vec<String> = dumped_by_us(dumps[0])
            .values()
            .flat_map(|(_, f, _)| user_frames(f.clone()))
            .map(|f| f.function)
            .collect();
        for f in ["main.consume", "main.lockAndCount", "main.main"] {
            assert!(named.iter().any(|n| n == f), "{ctx}: {f} not in {named:?}");
        }
    }
}

/// C code of a cgo call dereferences NULL: the runtime's handler cannot
/// make it a panic and crashes (exit 2) printing every goroutine. The
/// incident is a crash at the C function, the dump has the calling
/// goroutine's Go frames as the runtime printed them.
#[test]
fn a_fault_in_cgo_code_is_a_crash_with_the_go_frames_above_it() {
    for build in go_builds("cgocrash") {
        let ctx = &build.label;
        let t = run_traced(&build.path, &[]);
        let stderr = String::from_utf8_lossy(&t.output.stderr).into_owned();
        assert_eq!(t.output.status.code(), Some(2), "{ctx}: {stderr}");
        // Go 1.21+ crash in the handler; 1.19 makes it a sigpanic that
        // throws at once.
        assert!(
            stderr.contains("signal arrived during cgo execution")
                || stderr.contains("fatal error: unexpected signal during runtime execution"),
            "{ctx}: {stderr}"
        );
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "crashed", "{ctx}: {incident:#}");
        assert_eq!(incident["events"][0]["signal"]["name"], "SIGSEGV", "{ctx}");
        // The cause in the runtime's words, the fault beside it.
        let said = if stderr.contains("fatal error: unexpected signal during runtime execution") {
            "unexpected signal during runtime execution"
        } else {
            "signal arrived during cgo execution"
        };
        assert_eq!(incident["cause"]["message"], said, "{ctx}: {incident:#}");
        assert_eq!(incident["cause"]["signal"]["name"], "SIGSEGV", "{ctx}");
        assert_eq!(incident["cause"]["signal"]["addr"], "0x0", "{ctx}");
        // Go 1.19's sigpanic on the system stack reads the fault the
        // handler left on g0 (it throws; no panic follows).
        for sp in t.of_type("sigpanic") {
            assert_eq!(sp["signal"]["name"], "SIGSEGV", "{ctx}: {sp:#}");
            assert_eq!(sp["on_system_stack"], true, "{ctx}: {sp:#}");
        }
        let top = &incident["frames"][0];
        if build.stripped {
            // No symbol for C code left: the pc, as the runtime prints it.
            let pc = stderr
                .split(|c: char| c.is_whitespace() || c == ']')
                .find_map(|w| w.strip_prefix("PC=").or_else(|| w.strip_prefix("pc=")))
                .unwrap_or_else(|| panic!("{ctx}: no pc in {stderr}"));
            assert_eq!(top["pc"], pc, "{ctx}: {incident:#}");
        } else {
            assert_eq!(top["function"], "crash", "{ctx}: {incident:#}");
            assert_eq!(top["line"], 9, "{ctx}");
        }
        // The goroutine that made the call: its Go frames, from
        // runtime.cgocall up, are the runtime's.
        let dump = t.one("goroutines");
        assert_eq!(dump["traceback"], "system", "{ctx}");
        let theirs = go_goroutine_dump(&stderr);
        assert_eq!(dump["printed"].as_u64(), Some(theirs.len() as u64), "{ctx}");
        let ours = dumped_by_us(dump);
        let caller = &theirs[0];
        let (status, frames, _) = &ours[&caller.goid];
        assert_eq!(status, &caller.status, "{ctx}");
        // Its traceback starts in runtime.cgocall, as the runtime's does
        // (not at the system-stack switch that saved its context).
        assert_eq!(
            frames[0].function, caller.frames[0].function,
            "{ctx}: {frames:#?}"
        );
        assert_eq!(
            user_frames(frames.clone()),
            user_frames(caller.frames.clone()),
            "{ctx}: {frames:#?}"
        );
        assert!(
            frames.iter().any(|f| f.function == "main.work"),
            "{ctx}: {frames:#?}"
        );
    }
}

/// The human timeline shows a Go stack as the runtime's traceback does:
/// its own frames hidden, `panic` where a panic passes through a deferred
/// call; `--all-frames` shows them all.
#[test]
fn human_go_stacks_read_like_the_runtimes_traceback() {
    for build in go_builds("crashy") {
        for scenario in ["nested", "nilptr"] {
            let ctx = format!("{}, scenario {scenario}", build.label);
            let run = |all: bool, gotraceback: Option<&str>| {
                let mut cmd = Command::new(crashtrace_bin());
                if all {
                    cmd.arg("--all-frames");
                }
                if let Some(level) = gotraceback {
                    cmd.env("GOTRACEBACK", level);
                }
                // `-o -`: the timeline on stdout, apart from the
                // runtime's traceback on stderr.
                cmd.args(["-o", "-", "run", "--"])
                    .arg(&build.path)
                    .arg(scenario)
                    .output()
                    .unwrap()
            };
            // The dump's running goroutine: the frames the runtime printed.
            let dumped = |stdout: &str| -> Vec<String> {
                stdout
                    .lines()
                    .skip_while(|l| !l.contains("goroutine dump"))
                    .skip(2)
                    .take_while(|l| l.starts_with("    0x"))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
                    .collect()
            };
            let functions = |stderr: &str| -> Vec<String> {
                go_traceback(stderr)
                    .1
                    .into_iter()
                    .map(|f| f.function)
                    .collect()
            };
            let out = run(false, None);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(dumped(&stdout), functions(&stderr), "{ctx}: {stdout}");
            assert!(!stdout.contains("runtime.gopanic"), "{ctx}: {stdout}");
            assert!(!stdout.contains("runtime.fatalpanic"), "{ctx}: {stdout}");
            let all = String::from_utf8_lossy(&run(true, None).stdout).into_owned();
            assert!(all.contains("runtime.gopanic"), "{ctx}: {all}");
            // Started with GOTRACEBACK=system, the runtime prints its own
            // frames (and wrappers): so does the timeline, without being
            // asked, and the attach record says why.
            let out = run(false, Some("system"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let theirs = functions(&stderr);
            assert!(
                theirs.iter().any(|f| f == "runtime.main"),
                "{ctx}: {stderr}"
            );
            assert_eq!(dumped(&stdout), theirs, "{ctx}: {stdout}");
            let events = stdout
                .lines()
                .take_while(|l| !l.contains("goroutine dump"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(events.contains("runtime.fatalpanic"), "{ctx}: {stdout}");
            assert!(!events.contains("runtime.gopanic"), "{ctx}: {stdout}");
        }
    }
}

/// The same bug has the same fingerprint on every Go version and build
/// (addresses, lines and DWARF differ); another bug has another one.
#[test]
fn fingerprints_are_equal_across_go_versions_and_builds() {
    let mut by_scenario = std::collections::HashMap::<&str, Vec<(String, String)>>::new();
    for build in go_builds("crashy") {
        for scenario in ["index", "nilmap"] {
            let (t, _) = run_scenario(&build.path, scenario);
            let incident = t.one("incident");
            let fp = incident["fingerprint"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert_eq!(fp.len(), 16, "{}: {incident:#}", build.label);
            by_scenario
                .entry(scenario)
                .or_default()
                .push((build.label.clone(), fp));
        }
    }
    let index = &by_scenario["index"];
    let nilmap = &by_scenario["nilmap"];
    for (label, fp) in index {
        assert_eq!(fp, &index[0].1, "{label} vs {}", index[0].0);
    }
    for (label, fp) in nilmap {
        assert_eq!(fp, &nilmap[0].1, "{label} vs {}", nilmap[0].0);
    }
    assert_ne!(index[0].1, nilmap[0].1);

    // `report --group`: one group per fingerprint, most frequent first,
    // with every pid, from the records of three runs.
    let build = go_builds("crashy").next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.ndjson");
    let mut text = String::new();
    let mut pids = Vec::new();
    for scenario in ["index", "nilmap", "index"] {
        let (t, _) = run_scenario(&build.path, scenario);
        if scenario == "index" {
            pids.push(t.one("incident")["pid"].as_u64().unwrap());
        }
        for r in &t.records {
            text.push_str(&serde_json::to_string(r).unwrap());
            text.push('\n');
        }
    }
    std::fs::write(&file, text).unwrap();
    let out = Command::new(crashtrace_bin())
        .args(["report", "--group"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let heads: Vec<&str> = stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(heads.len(), 2, "{stdout}");
    assert!(
        heads[0].starts_with(&format!("2× {} ", index[0].1)),
        "{stdout}"
    );
    assert!(
        heads[0].ends_with(&format!("pids {},{}", pids[0], pids[1])),
        "{stdout}"
    );
    assert!(
        heads[1].starts_with(&format!("1× {} ", nilmap[0].1)),
        "{stdout}"
    );
    assert!(
        stdout.contains("CRASHED: panic: runtime error: index out of range"),
        "{stdout}"
    );
}

/// net/http recovers a handler's panic in its own deferred function.
#[test]
fn panic_recovered_by_net_http() {
    for build in go_builds("httpd") {
        let (ctx, bin) = (&build.label, &build.path);
        let t = run_traced(bin, &[]);
        assert_eq!(t.output.status.code(), Some(0), "{ctx}");
        let incident = t.one("incident");
        assert_eq!(incident["outcome"], "recovered", "{ctx}");
        assert_eq!(
            incident["cause"]["message"], "handler bug on /orders",
            "{ctx}"
        );
        let panic = &incident["events"][0];
        let user = user_frames(frames_of(panic));
        assert_eq!(user[0].function, "main.main.func1", "{ctx}");
        assert_eq!(
            incident["recovered_by"]["function"], "net/http.(*conn).serve.func1",
            "{ctx}: {incident:#}"
        );
    }
}

/// GOTRACEBACK=crash: after printing, the runtime aborts (SIGABRT, core).
/// After a fatal error it aborts on the thread's system stack, inside
/// `systemstack`: the abort's frames jump from there to the goroutine's
/// own stack, as the runtime's traceback does (`runtime.fatalthrow`, the
/// return address at the goroutine's saved sp), and go on as the runtime
/// printed that goroutine.
#[test]
fn gotraceback_crash_dies_of_sigabrt() {
    for build in go_builds("crashy") {
        for scenario in ["index", "concurrent-map"] {
            let ctx = format!("{}, scenario {scenario}", build.label);
            let t = run_traced_with(&build.path, &[scenario], &[("GOTRACEBACK", "crash")]);
            let (output, records) = (&t.output, &t.records);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(134),
                "{ctx}: 128+SIGABRT passes through: {stderr}"
            );
            let incidents = of_type(records, "incident");
            let aborts: Vec<&Value> = of_type(records, "signal")
                .into_iter()
                .filter(|r| {
                    r["signal"]["name"] == "SIGABRT" && r["signal"]["disposition"] == "handler"
                })
                .collect();
            assert_eq!(aborts.len(), 1, "{ctx}: {records:#?}");
            let attach = of_type(records, "attach");
            assert_eq!(attach[0]["gotraceback"], "crash", "{ctx}: {attach:#?}");
            if scenario == "index" {
                assert_eq!(incidents.len(), 1, "{ctx}: {records:#?}");
                let inc = incidents[0];
                assert_eq!(inc["outcome"], "crashed", "{ctx}");
                assert_eq!(inc["cause"]["type"], "panic", "{ctx}");
                assert_eq!(inc["exit"]["signal"], 6, "{ctx}");
                assert!(
                    inc["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["type"] == "signal" && e["signal"]["name"] == "SIGABRT"),
                    "{ctx}: the abort is part of the story"
                );
                continue;
            }
            // Racing map writes: a fatal error ("concurrent map writes";
            // the writers only overwrite keys the map already holds, but a
            // race is a race: the runtime's own message is the oracle),
            // aborted from the system stack.
            let fatal_line = stderr
                .lines()
                .find(|l| l.starts_with("fatal error: "))
                .unwrap_or_else(|| panic!("{ctx}: no fatal error: {stderr}"));
            assert!(
                of_type(records, "fatal").iter().any(|f| format!(
                    "fatal error: {}",
                    f["message"].as_str().unwrap_or_default()
                ) == fatal_line),
                "{ctx}: {fatal_line:?} not recorded: {records:#?}"
            );
            assert!(
                incidents.iter().any(|i| i["exit"]["signal"] == 6),
                "{ctx}: {records:#?}"
            );
            let ours = frames_of(aborts[0]);
            let names: Vec<&str> = ours.iter().map(|f| f.function.as_str()).collect();
            assert_eq!(
                names[..2],
                ["runtime.raise", "runtime.dieFromSignal"],
                "{ctx}: a frameless leaf keeps its caller: {names:?}"
            );
            let switch = names
                .iter()
                .position(|&f| f == "runtime.systemstack")
                .unwrap_or_else(|| panic!("{ctx}: no systemstack in {names:?}"));
            assert_eq!(
                names.get(switch + 1),
                Some(&"runtime.fatalthrow"),
                "{ctx}: the goroutine's frame that called systemstack: {names:?}"
            );
            let (_, theirs) = go_traceback(&stderr);
            assert!(!theirs.is_empty(), "{ctx}: {stderr}");
            assert_eq!(ours[switch + 2..], theirs[..], "{ctx}: {stderr}");
            assert_eq!(aborts[0]["frames_truncated"], false, "{ctx}");
        }
    }
}

/// `attach --pid` to a Go program that is already running: its Go probes
/// are placed on the live process, and its panic is caught.
#[test]
fn attach_to_a_running_go_program() {
    use std::io::Write as _;
    let version = GO_VERSIONS[GO_VERSIONS.len() / 2];
    // Stripped: what a production service runs.
    let bin = build_go_flags("crashy", version, Some("-s -w"));
    let mut target = KillOnDrop(
        Command::new(&bin)
            .arg("panic-on-input")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = read_ready_pid(&mut target.0);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let mut ct = spawn_attach(pid, &out, &[]);
    let records = wait_for_record(&out, "attach");
    let attach = of_type(&records, "attach")[0];
    assert_eq!(attach["runtime"], "go");
    assert_eq!(attach["reason"], "attach");
    // Go 1.22+: panics are told when they end (runtime.recovery,
    // runtime.preprintpanics), no probe sits on runtime.gopanic.
    let probes = attach["probes"].as_array().unwrap();
    assert!(
        probes.iter().any(|p| p == "uprobe/runtime.preprintpanics"),
        "{attach}"
    );
    assert!(
        !probes.iter().any(|p| p == "uprobe/runtime.gopanic"),
        "{attach}"
    );
    let mut stdin = target.0.stdin.take().unwrap();
    writeln!(stdin, "order #42").unwrap();
    drop(stdin);
    let status = target.0.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    assert_eq!(
        ct.0.wait().unwrap().code(),
        Some(0),
        "attach ends with its process"
    );
    let records = read_records(&out);
    let incident = of_type(&records, "incident");
    assert_eq!(incident.len(), 1, "{records:#?}");
    assert_eq!(incident[0]["outcome"], "crashed");
    assert_eq!(incident[0]["cause"]["message"], "bad input: order #42");
    assert_eq!(incident[0]["thread"]["goid"], 1);
    assert_eq!(incident[0]["exit"]["code"], 2);
}

#[test]
fn go_layout_table_matches_dwarf_of_every_tested_toolchain() {
    // The fallback table (for binaries without DWARF) is checked against
    // the DWARF of each toolchain's binaries, through crashtrace's own
    // `attach` record of where it took the layout from.
    for version in GO_VERSIONS {
        let bin = build_go("crashy", version);
        let out = Command::new(crashtrace_bin())
            .args(["--format", "ndjson", "-v", "-o", "/dev/null", "run", "--"])
            .arg(&bin)
            .arg("recovered")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "go{version}: runtime layout from DWARF matches the go1."
            )),
            "Go {version}: {stderr}"
        );
    }
}

/// The line of testdata/go/crashy/main.go that contains `needle`.
fn line_of(needle: &str) -> u32 {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/go/crashy/main.go"
    ))
    .unwrap();
    src.lines()
        .position(|l| l.contains(needle))
        .expect("marker line") as u32
        + 1
}
