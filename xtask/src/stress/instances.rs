//! crashtrace's own lifecycle: SIGKILLed while loading, attaching,
//! tracing (nothing it held survives), and two instances at once.

use std::{fs, path::Path, process::Command};

use anyhow::Result;

use super::Verdict;
use crate::util::{ndjson, of_type, output, step};

/// crashtrace's program and link ids, from its fdinfo.
fn held_bpf_ids(pid: u32) -> Vec<String> {
    let mut ids = Vec::new();
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for e in dir.flatten() {
            if let Ok(info) = fs::read_to_string(e.path()) {
                for l in info.lines() {
                    if l.starts_with("prog_id:") || l.starts_with("link_id:") {
                        ids.push(l.replace(['\t', ' '], ""));
                    }
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

fn bpf_ids_alive(ids: &[String]) -> Vec<String> {
    let progs = output(Command::new("bpftool").args(["prog", "show"])).unwrap_or_default();
    let links = output(Command::new("bpftool").args(["link", "show"])).unwrap_or_default();
    ids.iter()
        .filter(|id| {
            let (kind, n) = id.split_once(':').unwrap_or(("", ""));
            let list = if kind == "prog_id" { &progs } else { &links };
            list.lines().any(|l| l.starts_with(&format!("{n}:")))
        })
        .cloned()
        .collect()
}

/// SIGKILL of crashtrace at 20 moments (while loading, attaching, tracing
/// a program that keeps running): nothing it held survives it, and the
/// traced program runs on.
pub(crate) fn stress_sigkill(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: SIGKILL mid-run");
    let mut leftovers = Vec::new();
    let mut checked = 0;
    let mut target_died = 0;
    for i in 0..20u64 {
        let mut target = Command::new(bin.join("wait_for_term"))
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let mut ct = Command::new(crashtrace)
            .args([
                "-q",
                "--format",
                "ndjson",
                "-o",
                "/dev/null",
                "attach",
                "--pid",
            ])
            .arg(target.id().to_string())
            .spawn()?;
        let ct_pid = ct.id();
        // From 0 to 950 ms after start: loading, attaching, then tracing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(i * 50);
        let mut ids = Vec::new();
        while std::time::Instant::now() < deadline {
            let now = held_bpf_ids(ct_pid);
            if now.len() > ids.len() {
                ids = now;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        ids.extend(held_bpf_ids(ct_pid));
        ids.sort();
        ids.dedup();
        let _ = ct.kill();
        let _ = ct.wait();
        std::thread::sleep(std::time::Duration::from_millis(100));
        checked += ids.len();
        leftovers.extend(bpf_ids_alive(&ids));
        if target.try_wait()?.is_some() {
            target_died += 1;
        }
        let _ = target.kill();
        let _ = target.wait();
    }
    Ok(Verdict {
        scenario: "crashtrace SIGKILLed 20 times while loading, attaching, tracing",
        pass: leftovers.is_empty() && target_died == 0 && checked > 0,
        detail: format!(
            "{checked} program/link ids held at the kills, left behind: {}; traced program died: {target_died} of 20",
            leftovers.len()
        ),
    })
}

/// Two crashtrace instances tracing the same program at once: both see
/// its crash, each exactly once.
pub(crate) fn stress_two_instances(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: two instances at once");
    let dir = bin.join("two");
    fs::create_dir_all(&dir)?;
    let program = dir.join("app");
    fs::copy(bin.join("crash_after"), &program)?;
    let outs = [dir.join("a.ndjson"), dir.join("b.ndjson")];
    let mut cts = Vec::new();
    for o in &outs {
        let _ = fs::remove_file(o);
        cts.push(
            Command::new(crashtrace)
                .args(["-q", "--format", "ndjson", "-o"])
                .arg(o)
                .args(["attach", "--exe"])
                .arg(&program)
                .spawn()?,
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut pids = Vec::new();
    for _ in 0..10 {
        let mut c = Command::new(&program).arg("20").spawn()?;
        pids.push(u64::from(c.id()));
        let _ = c.wait();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    for c in &mut cts {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    let counts: Vec<usize> = outs
        .iter()
        .map(|o| {
            let records = ndjson(o);
            let inc = of_type(&records, "incident");
            let each_once = pids
                .iter()
                .all(|p| inc.iter().filter(|i| i["pid"] == *p).count() == 1);
            if each_once { inc.len() } else { usize::MAX }
        })
        .collect();
    Ok(Verdict {
        scenario: "two instances (attach --exe) on the same 10 crashing processes",
        pass: counts.iter().all(|&c| c == pids.len()),
        detail: format!("incidents per instance: {counts:?} of {}", pids.len()),
    })
}
