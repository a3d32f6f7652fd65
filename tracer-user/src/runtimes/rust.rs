//! Rust: panics as std starts them (`panic_with_hook`), with the message
//! std renders for the panic hook when it is formatted.

use std::collections::HashMap;

use super::{Procs, Stacks, kernel_record, native};
use crate::{
    probes::kernel::KernelProbes,
    record::{Body, Clock, Exception, Record},
    symbolize::process::ProcessImage,
};

/// How long a Rust panic waits for its formatted message when nothing else
/// happens in its process (std renders it right after, unless no hook prints).
const PANIC_MESSAGE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Process side: the panic probes in the executable (std is linked in
/// statically), if it is a Rust program.
pub fn place_probes(probes: &mut KernelProbes, pid: u32, image: &ProcessImage) {
    let Some(exe) = image.exe_module() else {
        return;
    };
    let Some(offset) = panic_entry(&exe) else {
        return;
    };
    if let Err(err) = probes.attach_rust(pid, &exe.fd_path(), offset, format_payload_get(&exe))
        && crate::procfs::comm(pid).is_some()
    {
        log::warn!("pid {pid}: Rust panics not traced: {err:#}");
    }
}

/// Where std starts a panic in `exe` (its file offset), if it is a Rust
/// program.
fn panic_entry(exe: &crate::symbolize::ElfModule) -> Option<u64> {
    exe.function_offset_memo("std::panicking::panic_with_hook", |n| {
        n == "std::panicking::panic_with_hook"
            || n.starts_with("std::panicking::rust_panic_with_hook")
    })
}

/// Where std's `FormatStringPayload::get` is in `exe` (its file offset).
fn format_payload_get(exe: &crate::symbolize::ElfModule) -> Option<u64> {
    exe.function_offset_memo("FormatStringPayload::get", is_format_payload_get)
}

/// The panic probes `place_probes` puts in `exe`, as attach records name
/// them.
pub fn probe_names(exe: &crate::symbolize::ElfModule) -> Vec<&'static str> {
    if panic_entry(exe).is_none() {
        return Vec::new();
    }
    let mut names = vec!["uprobe/std::panicking::panic_with_hook"];
    if format_payload_get(exe).is_some() {
        names.push("uretprobe/FormatStringPayload::get");
    }
    names
}

/// std's `<…FormatStringPayload as core::panic::PanicPayload>::get` (its
/// module moved between releases; legacy mangling may append a hash).
fn is_format_payload_get(name: &str) -> bool {
    let name = match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    };
    name.ends_with("FormatStringPayload as core::panic::PanicPayload>::get")
}

/// Analysis side: panic records, held back per thread until std renders
/// a formatted message (the next record of that thread), or briefly if it
/// never does (no hook output).
#[derive(Default)]
pub struct Panics {
    pending: HashMap<(u32, u32), (Record, std::time::Instant)>,
}

impl Panics {
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A Rust panic starts: an `exception` record (language "rust") with
    /// its message (string payloads), location and the panicking stack.
    /// Returns what it displaces (an earlier panic of the thread).
    pub fn on_panic(
        &mut self,
        r: &tracer_common::RustPanicRecord,
        procs: &mut Procs,
        stacks: &mut Stacks,
        clock: &Clock,
    ) -> Vec<Record> {
        let pid = r.header.pid;
        let (frames, cut) = native::probe_stack(procs, stacks, pid, r.header.tid, &r.regs);
        let image = procs.image(pid);
        // String literals the BPF side could not read (a page never
        // touched): from the binary's file.
        let from_file = |ptr: u64, size: u64, max: usize| {
            let len = usize::try_from(size).ok().filter(|&l| l > 0 && l <= max)?;
            image.and_then(|i| i.read_static(ptr, len))
        };
        let file_len = (r.file_len as usize).min(r.file.len());
        let file = if file_len > 0 {
            String::from_utf8_lossy(&r.file[..file_len]).into_owned()
        } else {
            from_file(r.file_ptr, r.file_size, 4096)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let location = (!file.is_empty()).then(|| format!("{file}:{}:{}", r.line, r.col));
        let static_msg = (r.msg_len == u32::MAX)
            .then(|| from_file(r.msg_ptr, r.msg_size, 4096))
            .flatten();
        let (message, message_unavailable) = match r.msg_len {
            u32::MAX if static_msg.is_some() => (
                static_msg.map(|b| String::from_utf8_lossy(&b).into_owned()),
                None,
            ),
            u32::MAX => (
                None,
                Some("formatted panic message: only the panic hook builds it".to_owned()),
            ),
            n => {
                let n = (n as usize).min(r.msg.len());
                (
                    Some(String::from_utf8_lossy(&r.msg[..n]).into_owned()),
                    None,
                )
            }
        };
        let record = kernel_record(
            clock,
            &r.header,
            image.and_then(|i| i.exe.clone()),
            None,
            Body::Exception(Exception {
                language: "rust",
                value_type: message.as_ref().map(|_| "&str".to_owned()),
                message,
                message_unavailable,
                location,
                frames,
                frames_truncated: cut.is_some(),
                truncated_by: cut.map(|c| c.to_string()),
                suppressed: r.suppressed,
                thread_name: Some(rust_thread_name(&r.header, image)),
                rethrown_by: None,
                thrown_by_tid: None,
                object: 0,
            }),
        );
        // Held back in case std renders a formatted message next, which then
        // wins over what the entry probe could read of the payload.
        let key = (pid, r.header.tid);
        let displaced = self.take(|&k, _| k == key);
        self.pending
            .insert(key, (record, std::time::Instant::now()));
        displaced
    }

    /// The formatted message of the panic this thread holds back.
    pub fn on_message(&mut self, m: &tracer_common::RustPanicMessageRecord) -> Option<Record> {
        let (mut record, _) = self.pending.remove(&(m.header.pid, m.header.tid))?;
        if let Body::Exception(e) = &mut record.body {
            let n = (m.msg_len as usize).min(m.msg.len());
            let mut text = String::from_utf8_lossy(&m.msg[..n]).into_owned();
            if (m.full_len as usize) > n {
                text.push('…');
            }
            e.message = Some(text);
            e.message_unavailable = None;
            e.value_type = Some("String".to_owned());
        }
        Some(record)
    }

    /// Whatever else a process does next comes after its panic's message.
    pub fn release_process(&mut self, pid: u32) -> Vec<Record> {
        self.take(|&(p, _), _| p == pid)
    }

    /// Panics whose message did not come in time.
    pub fn release_overdue(&mut self) -> Vec<Record> {
        self.take(|_, since| since.elapsed() > PANIC_MESSAGE_WAIT)
    }

    pub fn release_all(&mut self) -> Vec<Record> {
        self.take(|_, _| true)
    }

    fn take(&mut self, which: impl Fn(&(u32, u32), &std::time::Instant) -> bool) -> Vec<Record> {
        let keys: Vec<(u32, u32)> = self
            .pending
            .iter()
            .filter(|(k, (_, since))| which(k, since))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|(r, _)| r))
            .collect()
    }
}

/// The panicking thread's name as Rust's hook prints it: "main" for the
/// main thread (its comm is the program's name); a spawned thread's name
/// is its comm (std names the OS thread, cut to 15 bytes), and one that
/// still has the program's comm was never named: "<unnamed>".
fn rust_thread_name(
    h: &tracer_common::Header,
    image: Option<&crate::symbolize::process::ProcessImage>,
) -> String {
    if h.tid == h.pid {
        return "main".to_owned();
    }
    let comm = crate::probes::records::comm(h);
    let program: Option<String> = image
        .and_then(|i| i.exe.as_deref())
        .and_then(|e| e.rsplit('/').next())
        .map(|n| n.chars().take(15).collect());
    if program.as_deref() == Some(comm.as_str()) {
        "<unnamed>".to_owned()
    } else {
        comm
    }
}
