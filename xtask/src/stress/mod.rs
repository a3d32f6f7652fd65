//! `cargo xtask stress`: the reliability suite, one PASS/FAIL [`Verdict`]
//! per scenario (RELIABILITY.md). The scenarios, by group: [`overload`]
//! (a tiny ring buffer, a sustained storm), [`instances`] (crashtrace
//! SIGKILLed, two at once), [`targets`] (the traced program's binary
//! replaced, crashes racing fork/exec/exit, pid reuse), [`hostile`] (a
//! large corrupted corpus, the cargo-fuzz targets).

mod hostile;
mod instances;
mod overload;
mod targets;

use std::{fs, path::Path, process::Command};

use anyhow::{Result, bail};

use self::{
    hostile::{stress_fuzz, stress_hostile},
    instances::{stress_sigkill, stress_two_instances},
    overload::{stress_overload, stress_sustained_overload},
    targets::{stress_deleted_while_attached, stress_fault_races, stress_pid_reuse},
};
use crate::{
    release::{build_release, compile_c},
    util::{is_root, workspace_root},
};

struct Verdict {
    scenario: &'static str,
    pass: bool,
    detail: String,
}

pub(crate) fn stress(corpus: usize, fuzz_seconds: u64, only: &[String]) -> Result<()> {
    if !is_root() {
        bail!("the reliability suite loads eBPF programs: run it as root");
    }
    let crashtrace = build_release()?;
    let root = workspace_root();
    let bin = root.join("target/stress");
    fs::create_dir_all(&bin)?;
    for name in ["signal_storm", "crash_after", "wait_for_term", "fault_race"] {
        compile_c(
            &root.join(format!("testdata/native/{name}.c")),
            &bin.join(name),
        )?;
    }
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut verdicts = Vec::new();
    if wanted("overload") {
        verdicts.push(stress_overload(&crashtrace, &bin)?);
    }
    if wanted("sigkill") {
        verdicts.push(stress_sigkill(&crashtrace, &bin)?);
    }
    if wanted("two") {
        verdicts.push(stress_two_instances(&crashtrace, &bin)?);
    }
    if wanted("replaced") {
        verdicts.push(stress_deleted_while_attached(&crashtrace, &bin)?);
    }
    if wanted("hostile") {
        verdicts.push(stress_hostile(corpus)?);
    }
    if wanted("races") {
        verdicts.push(stress_fault_races(&crashtrace, &bin)?);
    }
    if wanted("pid-reuse") {
        verdicts.push(stress_pid_reuse(&crashtrace, &bin)?);
    }
    if wanted("sustained") {
        verdicts.push(stress_sustained_overload(&crashtrace, &bin)?);
    }
    if fuzz_seconds > 0 && wanted("fuzz") {
        verdicts.extend(stress_fuzz(&crashtrace, &bin, fuzz_seconds)?);
    }
    println!();
    println!("| scenario | verdict | measured |");
    println!("|---|---|---|");
    for v in &verdicts {
        println!(
            "| {} | {} | {} |",
            v.scenario,
            if v.pass { "PASS" } else { "FAIL" },
            v.detail
        );
    }
    if verdicts.iter().all(|v| v.pass) {
        Ok(())
    } else {
        bail!("some reliability scenarios failed")
    }
}

/// `crashtrace attach --exe PROGRAMS…` writing NDJSON to `out`, given a
/// moment to attach.
fn attach_exe(crashtrace: &Path, out: &Path, programs: &[&Path]) -> Result<std::process::Child> {
    let _ = fs::remove_file(out);
    let mut cmd = Command::new(crashtrace);
    cmd.args(["-q", "--format", "ndjson", "-o"])
        .arg(out)
        .arg("attach");
    for p in programs {
        cmd.arg("--exe").arg(p);
    }
    let child = cmd.spawn()?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    Ok(child)
}

fn stop(mut child: std::process::Child) {
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
