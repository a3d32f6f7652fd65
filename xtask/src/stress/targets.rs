//! The traced program misbehaving: its binary replaced on disk while
//! attached, crashes racing fork/exec/exit in another thread, its pid
//! reused at once by another program.

use std::{fs, path::Path, process::Command};

use anyhow::Result;

use super::{Verdict, attach_exe, stop};
use crate::util::{ndjson, of_type, step};

/// The traced program's file deleted and replaced while attached: its
/// crash is still symbolized from the file it runs.
pub(crate) fn stress_deleted_while_attached(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: binary deleted while attached");
    let dir = bin.join("deleted");
    fs::create_dir_all(&dir)?;
    let program = dir.join("app");
    fs::copy(bin.join("crash_after"), &program)?;
    let out = dir.join("events.ndjson");
    let _ = fs::remove_file(&out);
    let mut target = Command::new(&program).arg("1500").spawn()?;
    let mut ct = Command::new(crashtrace)
        .args(["-q", "--format", "ndjson", "-o"])
        .arg(&out)
        .args(["attach", "--pid"])
        .arg(target.id().to_string())
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(700));
    fs::remove_file(&program)?;
    fs::copy(bin.join("wait_for_term"), &program)?;
    let _ = target.wait();
    let _ = ct.wait();
    let records = ndjson(&out);
    let function = of_type(&records, "incident")
        .first()
        .and_then(|i| i["frames"][0]["function"].as_str().map(str::to_owned));
    Ok(Verdict {
        scenario: "binary deleted and replaced on disk while attached",
        pass: function.as_deref() == Some("handle_job"),
        detail: format!(
            "crashing frame: {}",
            function.unwrap_or_else(|| "none".into())
        ),
    })
}

/// A crash racing another thread of the process that forks, execs or
/// exits (testdata/native/fault_race.c), 40 runs each at delays that let
/// either side win (both threads leave a barrier, then busy-wait): every incident agrees with the wait status (a crash
/// is reported iff the process died of SIGSEGV, at crash_now), and the
/// forked children, which exit 0, give none.
pub(crate) fn stress_fault_races(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: crashes racing fork, exec and exit");
    use std::os::unix::process::ExitStatusExt as _;
    let program = bin.join("fault_race");
    let out = bin.join("fault_race.ndjson");
    let tracer = attach_exe(crashtrace, &out, &[&program])?;
    // (mode, pid, died of SIGSEGV, exit code)
    let mut runs = Vec::new();
    for mode in ["fork", "exec", "exit"] {
        for i in 0..40 {
            // The crash 0..78 µs after the start, the other thread's act
            // at 40 µs: either may win (the tally says how often each did).
            let delay = (i * 2).to_string();
            let status = Command::new(&program)
                .args([mode, &delay, "40"])
                .stderr(std::process::Stdio::null())
                .spawn()
                .and_then(|mut c| Ok((c.id(), c.wait()?)))?;
            runs.push((
                mode,
                u64::from(status.0),
                status.1.signal() == Some(11),
                status.1.code(),
            ));
            // Paced: this is about the races, not the ring buffer (a burst
            // of ~600 crashes/s overflows the default 4 MiB: counted lost).
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    stop(tracer);
    let records = ndjson(&out);
    let lost: u64 = of_type(&records, "lost")
        .iter()
        .filter_map(|l| l["count"].as_u64())
        .sum();
    let incidents = of_type(&records, "incident");
    let mut wrong = Vec::new();
    let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
    for (mode, pid, segv, code) in &runs {
        let mine: Vec<_> = incidents.iter().filter(|i| i["pid"] == *pid).collect();
        let crashed: Vec<_> = mine.iter().filter(|i| i["outcome"] == "crashed").collect();
        let ok = if *segv {
            crashed.len() == 1
                && mine.len() == 1
                && crashed[0]["frames"][0]["function"] == "crash_now"
                && crashed[0]["exit"]["signal"] == 11
        } else {
            crashed.is_empty()
        };
        let outcome = if *segv {
            "SIGSEGV".to_owned()
        } else {
            format!("exit {}", code.unwrap_or(-1))
        };
        *tally.entry(format!("{mode}: {outcome}")).or_default() += 1;
        if !ok {
            wrong.push(format!(
                "{mode} pid {pid} ({outcome}): {} incidents",
                mine.len()
            ));
        }
    }
    let ours: std::collections::HashSet<u64> = runs.iter().map(|r| r.1).collect();
    let strays = incidents
        .iter()
        .filter(|i| i["pid"].as_u64().is_none_or(|p| !ours.contains(&p)))
        .count();
    Ok(Verdict {
        scenario: "faults during an event: a crash racing fork, exec, exit_group in another thread",
        pass: wrong.is_empty() && strays == 0 && lost == 0,
        detail: format!(
            "{} runs ({}); incidents disagreeing with the wait status: {}{}; incidents of forked children: {strays}; lost: {lost}",
            runs.len(),
            tally
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect::<Vec<_>>()
                .join(", "),
            wrong.len(),
            if wrong.is_empty() {
                String::new()
            } else {
                format!(" ({})", wrong.join("; "))
            }
        ),
    })
}

/// A pid used again by another program at once (forced through
/// /proc/sys/kernel/ns_last_pid): each incident is symbolized with its own
/// process's binary, not the image of the pid's previous owner.
pub(crate) fn stress_pid_reuse(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: pid reuse");
    let first = bin.join("crash_after");
    let second = bin.join("fault_race");
    let out = bin.join("pid_reuse.ndjson");
    let tracer = attach_exe(crashtrace, &out, &[&first, &second])?;
    let mut reused = Vec::new();
    for _ in 0..30 {
        let mut a = Command::new(&first)
            .arg("0")
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let pid = a.id();
        a.wait()?;
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())?;
        let mut b = Command::new(&second)
            .args(["none", "0"])
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let again = b.id();
        b.wait()?;
        if again == pid {
            reused.push(u64::from(pid));
        }
        if reused.len() == 10 {
            break;
        }
    }
    stop(tracer);
    let records = ndjson(&out);
    let incidents = of_type(&records, "incident");
    let right = reused
        .iter()
        .filter(|&&pid| {
            let mine: Vec<_> = incidents.iter().filter(|i| i["pid"] == pid).collect();
            let has = |exe: &Path, function: &str| {
                mine.iter().any(|i| {
                    i["exe"].as_str() == Some(&*exe.to_string_lossy())
                        && i["frames"][0]["function"] == function
                })
            };
            mine.len() == 2 && has(&first, "handle_job") && has(&second, "crash_now")
        })
        .count();
    Ok(Verdict {
        scenario: "pid reuse: a crashed program's pid taken at once by another that crashes",
        pass: reused.len() >= 5 && right == reused.len(),
        detail: format!(
            "pids reused: {}; both incidents right (own exe, own crash function): {right}",
            reused.len()
        ),
    })
}
