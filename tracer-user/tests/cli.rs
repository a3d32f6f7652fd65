//! The command line people bring from strace, perf and bpftrace: `-p PID`,
//! options that cannot apply rejected rather than ignored, `--color`,
//! `report --format ndjson`.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// An option given to a subcommand it means nothing to is a usage error
/// (exit 2) that names the option: after the subcommand's name the
/// subcommand does not know it (and its `--help` does not list it);
/// before it (where the common options go), one line names the option and
/// the subcommand.
#[test]
fn options_that_do_not_apply_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.ndjson");
    std::fs::write(&file, "").unwrap();
    let file = file.to_string_lossy().into_owned();
    let after: &[(&[&str], &str)] = &[
        (
            &["report", "--otlp", "http://127.0.0.1:1/v1/logs", &file],
            "--otlp",
        ),
        (
            &["report", "--ring-buffer-kib", "8", &file],
            "--ring-buffer-kib",
        ),
        (
            &["symbolize", "--redact", "x", "--exe", "/bin/true", "0x1"],
            "--redact",
        ),
        (
            &["probes", "--all-frames", "--exe", "/bin/true"],
            "--all-frames",
        ),
        (
            &["probes", "--color", "always", "--exe", "/bin/true"],
            "--color",
        ),
    ];
    for (args, flag) in after {
        let out = Command::new(crashtrace_bin()).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("unexpected argument '{flag}'")),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        // Nor does the subcommand's help offer it.
        let help = Command::new(crashtrace_bin())
            .args([args[0], "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(!help.contains(&format!("{flag} ")), "{}: {help}", args[0]);
    }
    let before: &[(&[&str], &str)] = &[
        (
            &["--otlp", "http://127.0.0.1:1/v1/logs", "report", &file],
            "--otlp does not apply to `crashtrace report`",
        ),
        (
            &["--ring-buffer-kib", "8", "report", &file],
            "--ring-buffer-kib does not apply to `crashtrace report`",
        ),
        (
            &["--redact", "x", "symbolize", "--exe", "/bin/true", "0x1"],
            "--redact does not apply to `crashtrace symbolize`",
        ),
        (
            &["--all-frames", "probes", "--exe", "/bin/true"],
            "--all-frames does not apply to `crashtrace probes`",
        ),
    ];
    for (args, message) in before {
        let out = Command::new(crashtrace_bin()).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Every subcommand's help lists what applies, with examples.
    for (sub, has) in [
        (
            "run",
            &["--otlp", "--redact", "--all-frames", "--no-follow-forks"][..],
        ),
        ("attach", &["--otlp", "--pid", "--follow-forks", "--color"]),
        ("daemon", &["--config", "--otlp", "--ring-buffer-kib"]),
        ("report", &["--group", "--since", "--redact", "--utc"]),
        ("symbolize", &["--exe", "--format"]),
        ("probes", &["--exe", "--format"]),
    ] {
        let out = Command::new(crashtrace_bin())
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub}");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in has {
            assert!(help.contains(flag), "{sub} --help lacks {flag}: {help}");
        }
        assert!(
            help.contains(&format!("Examples:\n  crashtrace {sub}")),
            "{sub}: {help}"
        );
    }
    // `attach` with nothing to attach to names both ways to say it.
    let out = Command::new(crashtrace_bin())
        .arg("attach")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--pid") && stderr.contains("--exe"),
        "{stderr}"
    );
    // Where they apply they are accepted.
    let out = Command::new(crashtrace_bin())
        .args([
            "report",
            "--redact",
            "x",
            "--all-frames",
            "--color",
            "never",
            &file,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `attach -p PID` (strace's and perf's spelling) traces the process; its
/// death by SIGKILL from this test is told as a kill.
#[test]
fn attach_with_dash_p() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let mut ct = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-q", "-o"])
        .arg(&out)
        .args(["attach", "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let records = wait_for_record(&out, "attach");
    assert_eq!(of_type(&records, "attach")[0]["pid"], pid);
    sleeper.kill().unwrap();
    let _ = sleeper.wait();
    // It exits once the process it traced is gone.
    let status = ct.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let records = read_records(&out);
    let incident = of_type(&records, "incident");
    assert_eq!(incident.len(), 1, "{records:#?}");
    assert_eq!(incident[0]["outcome"], "killed", "{:#}", incident[0]);
}

/// `report`: `--format ndjson` writes the records again (not the human
/// view), `-o` to a file, `--color always|never` as asked.
#[test]
fn report_honours_format_output_and_color() {
    let bin = build_c("null_deref");
    let t = run_traced(&bin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("recorded.ndjson");
    let text: String = t
        .records
        .iter()
        .map(|r| format!("{}\n", serde_json::to_string(r).unwrap()))
        .collect();
    std::fs::write(&recorded, text).unwrap();

    let again = dir.path().join("again.ndjson");
    let out = Command::new(crashtrace_bin())
        .args(["report", "--format", "ndjson", "-o"])
        .arg(&again)
        .arg(&recorded)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let records = read_records(&again);
    assert_eq!(records.len(), t.records.len());
    for (a, b) in records.iter().zip(&t.records) {
        assert_eq!(a["type"], b["type"]);
        assert_eq!(a["pid"], b["pid"]);
        assert_eq!(a["frames"], b["frames"], "{a:#}");
    }
    assert_eq!(
        of_type(&records, "incident")[0]["fingerprint"],
        t.one("incident")["fingerprint"]
    );

    // Filters: --type, --pid, --exe (file name or glob), --since.
    let pid = t.one("incident")["pid"].to_string();
    let filtered = |args: &[&str]| {
        let out = Command::new(crashtrace_bin())
            .arg("report")
            .args(args)
            .arg(&recorded)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let only = filtered(&["--type", "incident", "--pid", &pid, "--exe", "null_deref"]);
    assert_eq!(only.lines().count(), 1, "{only}");
    assert!(only.starts_with("CRASHED: SIGSEGV"), "{only}");
    assert_eq!(filtered(&["--pid", "1"]), "");
    assert_eq!(filtered(&["--exe", "/nowhere/*"]), "");
    assert_eq!(filtered(&["--since", "1h", "--type", "incident"]), only);
    assert_eq!(filtered(&["--until", "1h"]), "");

    // Dates and the zone in report's timestamps; --utc and TZ honoured.
    let dated = |tz: &str, utc: bool| {
        let mut cmd = Command::new(crashtrace_bin());
        cmd.arg("report").env("TZ", tz);
        if utc {
            cmd.arg("--utc");
        }
        let out = cmd.arg(&recorded).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.contains(" SIGSEGV (SEGV_MAPERR)"))
            .unwrap_or_default()
            .to_owned()
    };
    let time = t.one("signal")["time"].as_str().unwrap().to_owned(); // …T08:12:29.419946123Z
    let (date, clock) = (&time[..10], &time[11..26]);
    assert!(
        dated("UTC", false).starts_with(&format!("{date} {clock} UTC pid ")),
        "{}",
        dated("UTC", false)
    );
    assert!(
        dated("Asia/Kolkata", true).starts_with(&format!("{date} {clock} UTC pid ")),
        "{}",
        dated("Asia/Kolkata", true)
    );
    // +05:30, no daylight saving: the local line says IST, 5.5 h later.
    let local = dated("Asia/Kolkata", false);
    assert!(local.contains(" IST pid "), "{local}");
    assert_ne!(&local[11..26], clock, "{local}");

    let render = |color: &str| {
        let out = Command::new(crashtrace_bin())
            .args(["report", "--color", color])
            .arg(&recorded)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let colored = render("always");
    let plain = render("never");
    assert!(
        colored.contains("\x1b[1;31mCRASHED\x1b[0m: SIGSEGV"),
        "{colored}"
    );
    assert!(!plain.contains('\x1b'), "{plain}");
    assert!(plain.contains("CRASHED: SIGSEGV"), "{plain}");
}

/// `crashtrace generate man` renders with man(1) (every subcommand and the
/// exit statuses in it); the bash completion loads (`complete -p`) and
/// completes the subcommands and an option of `attach`.
#[test]
fn man_page_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let generate = |what: &str| {
        let out = Command::new(crashtrace_bin())
            .args(["generate", what])
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {out:?}");
        assert!(!out.stdout.is_empty(), "{what}");
        let path = dir.path().join(what);
        std::fs::write(&path, &out.stdout).unwrap();
        path
    };
    let man = generate("man");
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&man)
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{rendered:?}");
    // Overstrike (bold: `N\x08N`) undone, as `col -b` would.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&rendered.stdout).chars() {
        if c == '\x08' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    for needle in [
        "NAME",
        "SYNOPSIS",
        "EXIT STATUS",
        "EXAMPLES",
        "crashtrace-run",
        "crashtrace-attach",
        "crashtrace-daemon",
        "crashtrace-report",
        "crashtrace-symbolize",
        "crashtrace-probes",
        "77",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }

    let bash = generate("complete-bash");
    let complete = |words: &str, cword: usize| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; complete -p crashtrace; COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
                 _crashtrace crashtrace \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                bash.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let subcommands = complete("crashtrace ''", 1);
    assert!(subcommands.starts_with("complete "), "{subcommands}");
    for sub in ["run", "attach", "daemon", "report", "symbolize", "probes"] {
        assert!(
            subcommands.lines().any(|l| l == sub),
            "{sub}: {subcommands}"
        );
    }
    let attach = complete("crashtrace attach --", 2);
    for opt in ["--pid", "--exe", "--follow-forks"] {
        assert!(attach.lines().any(|l| l == opt), "{opt}: {attach}");
    }
    for shell in ["complete-zsh", "complete-fish"] {
        let text = std::fs::read_to_string(generate(shell)).unwrap();
        assert!(text.contains("attach"), "{shell}");
    }
}

/// `attach` follows forks by default, as `run` does (one default; `-f`
/// is accepted, strace's habit): a shell's crashing child is an incident;
/// `--no-follow-forks` leaves the children alone.
#[test]
fn attach_follows_forks_by_default_as_run_does() {
    use std::io::Write as _;
    let crasher = build_c("null_deref");
    for (flags, child_traced) in [
        (&[][..], true),
        (&["-f"][..], true),
        (&["--no-follow-forks"][..], false),
    ] {
        let mut shell = KillOnDrop(
            Command::new("sh")
                .arg("-c")
                .arg(format!("read x; {}; echo done", crasher.display()))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = shell.0.id();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.ndjson");
        let mut ct = spawn_attach(pid, &out, flags);
        wait_for_record(&out, "attach");
        shell.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
        assert_eq!(shell.0.wait().unwrap().code(), Some(0), "{flags:?}");
        // It ends once the traced processes are gone.
        assert_eq!(ct.0.wait().unwrap().code(), Some(0), "{flags:?}");
        let records = read_records(&out);
        let crashed: Vec<_> = of_type(&records, "incident")
            .into_iter()
            .filter(|i| i["outcome"] == "crashed" && i["pid"] != pid)
            .collect();
        assert_eq!(
            crashed.len(),
            usize::from(child_traced),
            "{flags:?}: {records:#?}"
        );
    }
}

/// What the kernel's verifier walks at every start is most of
/// `crashtrace run`'s start-up (~1 ms per 600 instructions on these
/// VMs): 126,487 checked instructions made `run -- /bin/true` 110 ms,
/// 60,360 make it 60 ms. A branch on a failed user read
/// (`read_user(..).unwrap_or(0)`) had the rest of a program checked again
/// with a constant 0: the budget keeps such a change from slipping in
/// unseen.
#[test]
fn kernel_side_stays_within_its_verifier_budget() {
    const BUDGET: u64 = 75_000;
    let out = Command::new(crashtrace_bin())
        .args(["-v", "run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // "… 23 programs verified in 81 ms, 60360 instructions checked (…)"
    let checked: u64 = stderr
        .lines()
        .find_map(|l| {
            let (before, _) = l.split_once(" instructions checked")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no verifier count in crashtrace -v:\n{stderr}"));
    assert!(
        checked <= BUDGET,
        "the verifier checked {checked} instructions (budget {BUDGET}):\n{stderr}"
    );
}
