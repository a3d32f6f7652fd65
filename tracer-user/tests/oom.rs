//! OOM kills: a process the kernel's OOM killer chooses in a memory cgroup
//! at its limit is `killed` with cause `oom`, naming the cgroup, its usage
//! and limit, the victim's memory (equal to the kernel's own report in the
//! log) and the task whose allocation ran out, which may be another process.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

const LIMIT_MIB: u64 = 50;

/// A memory cgroup with a limit, on whichever hierarchy has the memory
/// controller (v1 on hybrid hosts such as these, else v2); removed at drop.
struct MemCgroup {
    dir: PathBuf,
    /// Its path in that hierarchy, as crashtrace reports it.
    path: String,
    v1: bool,
}

impl MemCgroup {
    fn new(tag: &str, limit_mib: u64) -> Self {
        let name = format!("crashtrace-test-{tag}-{}", std::process::id());
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        let v1_root = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "memory"))
                .then(|| PathBuf::from(f[1]))
        });
        let (root, v1) = match v1_root {
            Some(r) => (r, true),
            None => {
                let r = mounts
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
                    })
                    .expect("no memory cgroup hierarchy on this host");
                (r, false)
            }
        };
        let dir = root.join(&name);
        let _ = fs::remove_dir(&dir);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let bytes = (limit_mib << 20).to_string();
        if v1 {
            fs::write(dir.join("memory.limit_in_bytes"), &bytes).unwrap();
        } else {
            fs::write(dir.join("memory.max"), &bytes).unwrap();
            let _ = fs::write(dir.join("memory.swap.max"), "0");
        }
        Self {
            dir,
            path: format!("/{name}"),
            v1,
        }
    }

    /// `sh -c` that moves itself into the cgroup and execs `command`.
    fn shell(&self, command: &str) -> String {
        format!(
            "echo $$ > {}/cgroup.procs && exec {command}",
            self.dir.display()
        )
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Its processes are gone or going: retry until it is empty.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The kernel's own report of killing `pid`: anon, file and shmem rss in
/// bytes ("Killed process PID (hog) total-vm:…kB, anon-rss:…kB, …").
fn kernel_report(pid: u64) -> Option<(u64, u64, u64)> {
    let out = Command::new("dmesg").output().ok()?;
    let log = String::from_utf8_lossy(&out.stdout);
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&format!("Killed process {pid} (")))?;
    let kb = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some((kb("anon-rss:")?, kb("file-rss:")?, kb("shmem-rss:")?))
}

fn check_oom_incident(ctx: &str, t: &Traced, cg: &MemCgroup) -> Value {
    let incidents = t.of_type("incident");
    let incident = incidents
        .iter()
        .find(|i| i["cause"]["type"] == "oom")
        .unwrap_or_else(|| {
            let all: Vec<String> = t
                .records
                .iter()
                .map(|r| {
                    format!(
                        "{} pid {} ts {} {}",
                        r["type"], r["pid"], r["ts_ns"], r["cause"]
                    )
                })
                .collect();
            panic!("{ctx}: no oom incident in {all:#?}")
        });
    assert_eq!(incident["outcome"], "killed", "{ctx}: {incident:#}");
    assert_eq!(incident["exit"]["signal"], 9, "{ctx}");
    let cause = &incident["cause"];
    assert_eq!(cause["scope"], "cgroup", "{ctx}: {cause:#}");
    assert_eq!(cause["memcg"], cg.path.as_str(), "{ctx}");
    assert_eq!(cause["victim_memcg"], cg.path.as_str(), "{ctx}");
    let limit = LIMIT_MIB << 20;
    assert_eq!(cause["limit_bytes"], limit, "{ctx}");
    let usage = cause["usage_bytes"].as_u64().unwrap();
    assert!(
        usage <= limit && usage + (4 << 20) >= limit,
        "{ctx}: usage {usage} at the limit {limit}"
    );
    assert_eq!(
        cause["message"],
        format!("out of memory (memcg {}: 50.0 MiB limit)", cg.path),
        "{ctx}"
    );
    // The victim's memory, as the kernel's own report counted it.
    let pid = incident["pid"].as_u64().unwrap();
    let (anon, file, shmem) =
        kernel_report(pid).unwrap_or_else(|| panic!("{ctx}: no kernel report for pid {pid}"));
    assert_eq!(cause["anon_rss_bytes"], anon, "{ctx}: {cause:#}");
    assert_eq!(cause["file_rss_bytes"], file, "{ctx}");
    assert_eq!(cause["shmem_rss_bytes"], shmem, "{ctx}");
    assert_eq!(cause["rss_bytes"], anon + file + shmem, "{ctx}");
    // On a hybrid host the v2 `cgroup` says nothing of the memory limit;
    // `memory_cgroup` names the v1 memory cgroup.
    if cg.v1 {
        assert_eq!(incident["memory_cgroup"], cg.path.as_str(), "{ctx}");
    }
    (*incident).clone()
}

/// The human verdict, from `crashtrace report` over the NDJSON.
fn verdicts(records: &[Value]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    fs::write(&file, text).unwrap();
    let out = Command::new(crashtrace_bin())
        .arg("report")
        .arg(&file)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("KILLED") || l.starts_with("CRASHED"))
        .map(str::to_owned)
        .collect()
}

/// A program that allocates until its memory cgroup's limit: the kernel
/// kills it; crashtrace says so, with the cgroup, its limit and usage.
#[test]
fn an_oom_kill_names_the_memory_cgroup_its_usage_and_limit() {
    let hog = build_c("hog");
    let cg = MemCgroup::new("grow", LIMIT_MIB);
    let t = run_traced(
        Path::new("/bin/sh"),
        &["-c", &cg.shell(&format!("{} grow", hog.display()))],
    );
    let ctx = "hog grow";
    // `run` returns what the shell returned: 128 + SIGKILL.
    assert_eq!(t.output.status.code(), Some(137), "{ctx}: {:?}", t.output);
    let incident = check_oom_incident(ctx, &t, &cg);
    // It ran out itself.
    assert_eq!(incident["cause"]["trigger_pid"], incident["pid"], "{ctx}");
    assert_eq!(incident["cause"]["trigger_comm"], "hog", "{ctx}");
    // Where the kill found it: allocating, in main.
    let frames = incident["frames"].as_array().unwrap();
    assert!(
        frames.iter().any(|f| f["function"] == "main"),
        "{ctx}: {frames:#?}"
    );
    let pid = incident["pid"].as_u64().unwrap();
    assert_eq!(
        verdicts(&t.records),
        [format!(
            "KILLED: out of memory (memcg {}: 50.0 MiB limit) — pid {pid} killed by the OOM killer",
            cg.path
        )],
        "{ctx}"
    );
    // Exactly one incident: the kill is not also told as a bare SIGKILL.
    assert_eq!(t.of_type("incident").len(), 1, "{ctx}");
}

/// The OOM killer kills the largest process of the cgroup, not the one
/// whose allocation failed: the incident names both.
///
/// The victim dies on another CPU while the killing task is on its way to
/// `mark_victim`; this test once lost the OOM record 1 run in ~30 (the
/// exit program forgot the process before remembering its exit: see
/// `sched_process_exit`).
#[test]
fn the_oom_victim_is_told_apart_from_the_task_that_ran_out() {
    let hog = build_c("hog");
    let cg = MemCgroup::new("hold", LIMIT_MIB);
    // The victim, traced: holds 35 MiB and waits.
    let mut traced = Command::new(crashtrace_bin());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    traced
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .args(["run", "--", "/bin/sh", "-c"])
        .arg(cg.shell(&format!("{} hold 35", hog.display())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = traced.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "held");
    // The allocator, untraced, in the same cgroup: runs out at 15 MiB.
    let grower = Command::new("/bin/sh")
        .args(["-c", &cg.shell(&format!("{} grow", hog.display()))])
        .spawn()
        .unwrap();
    let grower_pid = grower.id();
    let status = child.wait().unwrap();
    // The grower is killed in turn once it is the largest; reap it.
    let mut grower = grower;
    let _ = grower.kill();
    let _ = grower.wait();
    let ctx = "hog hold 35 + hog grow";
    assert_eq!(status.code(), Some(137), "{ctx}");
    let t = Traced {
        output: std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
        },
        records: read_records(&out),
    };
    let incident = check_oom_incident(ctx, &t, &cg);
    let cause = &incident["cause"];
    // The grower exec'd hog in its shell's process: same pid.
    assert_eq!(cause["trigger_pid"], grower_pid, "{ctx}: {cause:#}");
    assert_ne!(cause["trigger_pid"], incident["pid"], "{ctx}");
    assert_eq!(cause["trigger_comm"], "hog", "{ctx}");
    // 35 MiB held (the kernel's per-CPU counters run a little behind).
    assert!(
        cause["anon_rss_bytes"].as_u64().unwrap() >= 30 << 20,
        "{ctx}: {cause:#}"
    );
}
