//! Overload: a 4 KiB ring buffer under 50,000 signals, and 30 s of
//! sustained storm into the default one.

use std::{fs, path::Path, process::Command};

use anyhow::Result;

use super::Verdict;
use crate::util::{ndjson, of_type, rss_cpu, step};

/// A 4 KiB ring buffer (the smallest) and 50,000 signals: every delivery is
/// either a record or counted in `lost`, exactly; the drain never stalls
/// (the storm's own time stays close to untraced); and a crash right after
/// the storm, with no pause, is recorded with its frames named (the capture
/// thread drains while analysis symbolizes the storm's records).
pub(crate) fn stress_overload(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: overload");
    const N: u64 = 50_000;
    let out = bin.join("overload.ndjson");
    let script = format!(
        // The crash at once: the storm's records may still be queued in
        // the pipeline behind it, the ring must not be.
        "{} {N} && exec {} 0",
        bin.join("signal_storm").display(),
        bin.join("crash_after").display()
    );
    let started = std::time::Instant::now();
    let status = Command::new(crashtrace)
        .args(["--format", "ndjson", "-q", "--ring-buffer-kib", "4", "-o"])
        .arg(&out)
        .args(["run", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    let took = started.elapsed();
    let records = ndjson(&out);
    let delivered = of_type(&records, "signal")
        .iter()
        .filter(|r| r["signal"]["name"] == "SIGUSR1")
        .count() as u64;
    let lost: u64 = of_type(&records, "lost")
        .iter()
        .filter(|l| l["event"] == "signal")
        .filter_map(|l| l["count"].as_u64())
        .sum();
    let recovered = of_type(&records, "incident").iter().any(|i| {
        i["cause"]["message"] == "SIGSEGV"
            && i["events"][0]["frames"][0]["function"] == "handle_job"
    });
    let pass = delivered + lost == N && lost > 0 && recovered && status.code() == Some(139);
    Ok(Verdict {
        scenario: "overload: 50,000 signals into a 4 KiB ring buffer, then a crash at once",
        pass,
        detail: format!(
            "{delivered} recorded + {lost} counted lost = {} of {N}; crash right after it recorded with named frames: {recovered}; {:.1} s",
            delivered + lost,
            took.as_secs_f64()
        ),
    })
}

/// 30 s of signals as fast as one process sends them, into the default
/// ring buffer (the NDJSON file, gigabytes, is counted and deleted):
/// crashtrace's RSS sampled every second stays flat once warm (no queue
/// grows with the backlog), and a crash right after is still recorded.
pub(crate) fn stress_sustained_overload(crashtrace: &Path, bin: &Path) -> Result<Verdict> {
    step("stress: memory under sustained overload (30 s)");
    let storm = bin.join("signal_storm");
    let out = bin.join("sustained.ndjson");
    let script = format!(
        "timeout -s KILL 30 {} 100000000; exec {} 0",
        storm.display(),
        bin.join("crash_after").display()
    );
    let _ = fs::remove_file(&out);
    let started = std::time::Instant::now();
    let mut tracer = Command::new(crashtrace)
        .args(["--format", "ndjson", "-q", "-o"])
        .arg(&out)
        .args(["run", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut samples = Vec::new();
    let status = loop {
        if let Some(status) = tracer.try_wait()? {
            break status;
        }
        samples.push(rss_cpu(tracer.id()).0);
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let took = started.elapsed();
    let size = fs::metadata(&out).map_or(0, |m| m.len());
    // A big file: the storm's signal lines are counted, not parsed.
    let mut signals = 0u64;
    let mut records = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(fs::File::open(&out)?)) {
        let line = line?;
        if line.contains(r#""type":"signal""#) && line.contains("SIGUSR1") {
            signals += 1;
        } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            records.push(v);
        }
    }
    let _ = fs::remove_file(&out);
    let lost: u64 = of_type(&records, "lost")
        .iter()
        .filter(|l| l["event"] == "signal")
        .filter_map(|l| l["count"].as_u64())
        .sum();
    let recovered = of_type(&records, "incident").iter().any(|i| {
        i["cause"]["message"] == "SIGSEGV"
            && i["events"][0]["frames"][0]["function"] == "handle_job"
    });
    // Warm after 5 s; then at most 16 MB more, at any point.
    let warm = samples.get(5).copied().unwrap_or(0);
    let peak = samples.iter().skip(5).copied().max().unwrap_or(0);
    let last = samples.last().copied().unwrap_or(0);
    let pass = warm > 0 && peak <= warm + 16 * 1024 && recovered && status.code() == Some(139);
    Ok(Verdict {
        scenario: "memory under sustained overload: 30 s signal storm, then a crash",
        pass,
        detail: format!(
            "{signals} recorded + {lost} counted lost in {:.0} s ({:.0} MB of NDJSON); RSS at 5 s {:.1} MB, peak after {:.1} MB, at the end {:.1} MB; crash after it recorded: {recovered}",
            took.as_secs_f64(),
            size as f64 / 1e6,
            warm as f64 / 1024.0,
            peak as f64 / 1024.0,
            last as f64 / 1024.0
        ),
    })
}
