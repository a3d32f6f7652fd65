//! `crashtrace report FILE…|-`: recorded NDJSON (a file shipped off the
//! host, a log pipeline's copy) rendered as the human timeline. Frames that
//! have no function name but carry their module and file offset are
//! symbolized again when that binary is at hand (the host had no debug
//! info, this machine has it). Lines that are not crashtrace records are
//! counted and skipped, never fatal.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    path::PathBuf,
    rc::Rc,
};

use anyhow::Context as _;
use serde_json::Value;

use crate::{
    Failure,
    cli::{Common, ReportArgs},
    export::traceback,
    symbolize::{ElfModule, PcKind},
};

pub fn report(common: &Common, args: &ReportArgs) -> Result<i32, Failure> {
    let redactor = crate::record::Redactor::new(&common.redact)
        .map_err(|e| Failure::Usage(format!("--redact: {e}")))?;
    let mut modules: HashMap<String, Option<Rc<ElfModule>>> = HashMap::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut skipped = 0u64;
    for path in &args.files {
        let reader: Box<dyn std::io::BufRead> = if path == &PathBuf::from("-") {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))
                    .map_err(Failure::Other)?,
            ))
        };
        for line in reader.lines() {
            let line = line
                .with_context(|| format!("reading {}", path.display()))
                .map_err(Failure::Other)?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(mut record) = serde_json::from_str::<Value>(&line) else {
                skipped += 1;
                continue;
            };
            if !record["schema"]
                .as_str()
                .is_some_and(|s| s.starts_with("crashtrace."))
            {
                skipped += 1;
                continue;
            }
            resymbolize(&mut record, &mut modules);
            let mut text = render(&record);
            if !redactor.is_empty() {
                text = redactor.mask_text(&text);
            }
            if out.write_all(text.as_bytes()).is_err() {
                return Ok(0); // a closed pipe (| head): done
            }
        }
    }
    if skipped > 0 {
        log::warn!("{skipped} lines were not crashtrace records");
    }
    Ok(0)
}

/// Frames without a function name, in a module present here, looked up
/// again (in place, recursively through an incident's events).
fn resymbolize(record: &mut Value, modules: &mut HashMap<String, Option<Rc<ElfModule>>>) {
    if let Some(frames) = record.get_mut("frames").and_then(Value::as_array_mut) {
        let mut out = Vec::with_capacity(frames.len());
        for (i, f) in frames.drain(..).enumerate() {
            out.extend(resolve_frame(f, i == 0, modules));
        }
        *frames = out;
    }
    if let Some(events) = record.get_mut("events").and_then(Value::as_array_mut) {
        for e in events {
            resymbolize(e, modules);
        }
    }
}

fn resolve_frame(
    frame: Value,
    first: bool,
    modules: &mut HashMap<String, Option<Rc<ElfModule>>>,
) -> Vec<Value> {
    let named = frame["function"].as_str().is_some();
    let (Some(module), Some(offset)) = (
        frame["module"].as_str().map(str::to_owned),
        frame["file_offset"]
            .as_str()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()),
    ) else {
        return vec![frame];
    };
    if named {
        return vec![frame];
    }
    let m = modules.entry(module.clone()).or_insert_with(|| {
        ElfModule::open(std::path::Path::new(&module), &module)
            .ok()
            .map(Rc::new)
    });
    let Some(m) = m else {
        return vec![frame];
    };
    let Some(vaddr) = m.file_offset_to_vaddr(offset) else {
        return vec![frame];
    };
    let kind = if first {
        PcKind::Exact
    } else {
        PcKind::ReturnAddress
    };
    let locations = m.lookup(vaddr, kind);
    if locations.is_empty() {
        return vec![frame];
    }
    let last = locations.len() - 1;
    locations
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let mut f = frame.clone();
            f["function"] = l.function.map_or(Value::Null, Value::from);
            f["file"] = l.file.map_or(Value::Null, Value::from);
            f["line"] = l.line.map_or(Value::Null, Value::from);
            f["inlined"] = Value::from(i != last);
            f["resymbolized"] = Value::from(true);
            f
        })
        .collect()
}

/// One record as the human timeline shows it (no colour).
pub fn render(r: &Value) -> String {
    let kind = r["type"].as_str().unwrap_or("?");
    let time = r["time"].as_str().unwrap_or("");
    let clock = time.get(11..26).unwrap_or(time);
    let pid = num(&r["pid"]);
    let who = format!(
        "pid {pid} tid {} ({})",
        num(&r["tid"]),
        r["comm"].as_str().unwrap_or("?")
    );
    let goroutine = r["goid"]
        .as_u64()
        .map(|g| format!(" goroutine {g}"))
        .unwrap_or_default();
    let mut text = match kind {
        "attach" => format!(
            "==> attached to pid {pid} {} [{}, debuginfo: {}, {}]\n",
            r["exe"].as_str().unwrap_or("?"),
            r["runtime_version"]
                .as_str()
                .or(r["runtime"].as_str())
                .unwrap_or("?"),
            r["debuginfo"].as_str().unwrap_or("?"),
            r["reason"].as_str().unwrap_or("?")
        ),
        "incident" => {
            let summary = traceback::summary(r);
            let outcome = r["outcome"].as_str().unwrap_or("incident");
            let rest = summary
                .strip_prefix(&format!("{outcome}: "))
                .unwrap_or(&summary);
            let end = match (&r["exit"], &r["recovered_by"]) {
                (e, _) if e.is_object() => format!("pid {pid} {}", exit_text(e)),
                (_, by) if by.is_object() => {
                    format!("recovered by {}", traceback::describe_frame(by))
                }
                _ => "recovered".to_owned(),
            };
            let goid = r["thread"]["goid"]
                .as_u64()
                .map(|g| format!(" (goroutine {g})"))
                .unwrap_or_default();
            format!("{}: {rest} — {end}{goid}\n", outcome.to_uppercase())
        }
        "exit" => format!("{clock} pid {pid} {}\n", exit_text(&r["exit"])),
        "lost" => format!(
            "{clock} lost {} {} events ({})\n",
            num(&r["count"]),
            r["event"].as_str().unwrap_or("?"),
            r["reason"].as_str().unwrap_or("?")
        ),
        _ => {
            let summary = traceback::summary(r);
            let what = summary
                .strip_prefix(&format!("{kind}: "))
                .map(|w| match kind {
                    "panic" => format!("panic: {w}"),
                    "fatal" => format!("fatal: {w}"),
                    _ => w.to_owned(),
                })
                .unwrap_or(summary);
            format!("{clock} {who}{goroutine} {what}\n")
        }
    };
    if kind != "incident" {
        for f in r["frames"].as_array().into_iter().flatten() {
            let loc = match (f["file"].as_str(), f["line"].as_u64()) {
                (Some(file), Some(line)) => format!(" ({file}:{line})"),
                (Some(file), None) => format!(" ({file})"),
                _ => f["module"]
                    .as_str()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default(),
            };
            let inl = if f["inlined"].as_bool() == Some(true) {
                " [inlined]"
            } else {
                ""
            };
            text.push_str(&format!(
                "    {} {}{loc}{inl}\n",
                f["pc"].as_str().unwrap_or("?"),
                f["function"].as_str().unwrap_or("??")
            ));
        }
    }
    text
}

fn num(v: &Value) -> String {
    v.as_u64().map_or_else(|| "?".to_owned(), |n| n.to_string())
}

fn exit_text(e: &Value) -> String {
    if let Some(code) = e["code"].as_i64() {
        return format!("exited with status {code}");
    }
    let name = e["signal_name"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| e["signal"].as_u64().map(|n| format!("signal {n}")))
        .unwrap_or_else(|| "a signal".to_owned());
    let core = if e["core_dumped"].as_bool() == Some(true) {
        " (core dumped)"
    } else {
        ""
    };
    format!("killed by {name}{core}")
}
