//! Bench part `throughput`: signals at rising rates, recorded + counted
//! lost = generated, the highest rate with nothing lost.

use std::{fs, path::Path, process::Command};

use anyhow::Result;

use crate::{
    release::compile_c,
    util::{ndjson, of_type, step, workspace_root},
};

/// Event throughput: 4 processes send themselves signals (one record
/// each) at a total rate that doubles per step, under one `crashtrace
/// attach --exe`: per step the generated, recorded and lost counts (which
/// must add up) — the highest rate with nothing lost is the throughput.
pub(crate) fn bench_throughput(crashtrace: &Path) -> Result<()> {
    let root = workspace_root();
    let bin = root.join("target/bench");
    compile_c(
        &root.join("testdata/native/signal_storm.c"),
        &bin.join("signal_storm"),
    )?;
    const PROCS: u64 = 4;
    const SECONDS: f64 = 2.0;
    println!();
    println!("Throughput: {PROCS} processes, {SECONDS} s per step, default 4 MiB ring buffer:");
    println!(
        "| offered (signals/s, all processes) | generated | recorded | counted lost | recorded+lost = generated |"
    );
    println!("|---|---|---|---|---|");
    let mut best = 0u64;
    for rate in [
        5_000u64, 10_000, 20_000, 40_000, 50_000, 60_000, 80_000, 100_000, 120_000, 160_000,
    ] {
        step(&format!("throughput at {rate}/s"));
        let out = bin.join("throughput.ndjson");
        let _ = fs::remove_file(&out);
        let ct = Command::new(crashtrace)
            .args(["-q", "--format", "ndjson", "-o"])
            .arg(&out)
            .args(["attach", "--exe"])
            .arg(bin.join("signal_storm"))
            .spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let per_proc = rate / PROCS;
        let n = (per_proc as f64 * SECONDS) as u64;
        let children: Vec<_> = (0..PROCS)
            .map(|_| {
                Command::new(bin.join("signal_storm"))
                    .arg(n.to_string())
                    .arg(per_proc.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        for mut c in children {
            let _ = c.wait();
        }
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let _ = Command::new("kill")
            .args(["-INT", &ct.id().to_string()])
            .status();
        let _ = ct.wait_with_output();
        let records = ndjson(&out);
        let recorded = of_type(&records, "signal").len() as u64;
        // Signal records only (each kill() also makes a sender record).
        let lost: u64 = of_type(&records, "lost")
            .iter()
            .filter(|l| l["event"] == "signal")
            .filter_map(|l| l["count"].as_u64())
            .sum();
        let generated = n * PROCS;
        let exact = recorded + lost == generated;
        println!(
            "| {rate} | {generated} | {recorded} | {lost} | {} |",
            if exact { "yes" } else { "NO" }
        );
        if lost == 0 && exact {
            best = rate;
        }
        if lost > generated / 2 {
            break;
        }
    }
    println!("Highest offered rate with nothing lost: {best} signals/s");
    Ok(())
}
