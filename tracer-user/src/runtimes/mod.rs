//! One module per language runtime, each with a narrow interface in two
//! halves:
//! - **process side** (the process-work thread): given a process's image,
//!   what to place for it (uprobes on its runtime's entry points);
//! - **analysis side** (the analysis thread): that runtime's kernel records
//!   → contract records, with the process's image and stack copies.
//!
//! `native` covers what every process has (signals, stacks, dlopen); `cxx`,
//! `rust` and `go` their language's crash and unwind entry points.

pub mod cxx;
pub mod go;
pub mod native;
pub mod rust;

use std::{collections::HashMap, sync::Arc};

use crate::{
    golang::GoBinary,
    probes::records::{self, StackSnapshot},
    record::{Body, Clock, Record, SCHEMA},
    symbolize::{FileCache, process::ProcessImage},
};

/// What analysis knows of a traced process.
pub struct Proc {
    pub image: ProcessImage,
    /// Its Go binary, when it is a Go program with probes.
    pub go: Option<Arc<GoBinary>>,
    /// Threads in std::terminate: libstdc++'s terminate handler rethrows
    /// the exception (to print its what()), which is no news.
    pub terminating: std::collections::HashSet<u32>,
}

/// Traced processes' images, as the process-work thread built them.
pub struct Procs {
    map: HashMap<u32, Proc>,
    cache: Arc<FileCache>,
}

impl Procs {
    pub fn new(cache: Arc<FileCache>) -> Self {
        Self {
            map: HashMap::new(),
            cache,
        }
    }

    pub fn set(&mut self, pid: u32, proc: Proc) {
        self.map.insert(pid, proc);
    }

    pub fn remove(&mut self, pid: u32) -> Option<Proc> {
        self.map.remove(&pid)
    }

    pub fn get(&self, pid: u32) -> Option<&Proc> {
        self.map.get(&pid)
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut Proc> {
        self.map.get_mut(&pid)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn image(&self, pid: u32) -> Option<&ProcessImage> {
        self.map.get(&pid).map(|p| &p.image)
    }

    pub fn go(&self, pid: u32) -> Option<&Arc<GoBinary>> {
        self.map.get(&pid)?.go.as_ref()
    }

    /// runtime address − ELF address of the executable (0 unless PIE).
    pub fn exe_load_bias(&self, pid: u32) -> u64 {
        self.image(pid)
            .and_then(ProcessImage::exe_load_bias)
            .unwrap_or(0)
    }

    /// An image that covers the stack's pc: read anew when the process
    /// mapped code since (and is still alive to be read). The capture
    /// thread normally got there first; this is the fallback.
    pub fn ensure_image(&mut self, pid: u32, stack: &[u64]) {
        let stale = self
            .image(pid)
            .is_none_or(|image| !stack.iter().take(1).all(|&pc| image.covers(pc)));
        if stale && let Ok(mut image) = ProcessImage::snapshot(pid, &self.cache) {
            let old = self.map.remove(&pid);
            image.container = crate::record::merged_container(
                image.container.take(),
                old.as_ref().and_then(|o| o.image.container.as_ref()),
            );
            let go = old.and_then(|o| o.go);
            self.map.insert(
                pid,
                Proc {
                    image,
                    go,
                    terminating: Default::default(),
                },
            );
        }
    }
}

/// Stack copies of crashing threads, until the record that uses them;
/// and for a Go thread that crashed on its system stack, the goroutine it
/// had switched from (`GO_GOROUTINE_SWITCHED`: its saved pc, the word at
/// its saved sp, its frame-pointer chain).
#[derive(Default)]
pub struct Stacks {
    map: HashMap<(u32, u32), StackSnapshot>,
    switched: HashMap<(u32, u32), Vec<u64>>,
}

/// Stack copies waiting for their record (one per crashing thread).
const MAX_PENDING_STACKS: usize = 64;

impl Stacks {
    pub fn insert(&mut self, s: StackSnapshot) {
        if self.map.len() >= MAX_PENDING_STACKS {
            self.map.clear();
        }
        self.map.insert((s.header.pid, s.header.tid), s);
    }

    pub fn take(&mut self, pid: u32, tid: u32) -> Option<StackSnapshot> {
        self.map.remove(&(pid, tid))
    }

    pub fn contains(&self, pid: u32, tid: u32) -> bool {
        self.map.contains_key(&(pid, tid))
    }

    pub fn forget(&mut self, pid: u32) {
        self.map.retain(|(p, _), _| *p != pid);
        self.switched.retain(|(p, _), _| *p != pid);
    }

    pub fn insert_switched(&mut self, pid: u32, tid: u32, walked: Vec<u64>) {
        if self.switched.len() >= MAX_PENDING_STACKS {
            self.switched.clear();
        }
        self.switched.insert((pid, tid), walked);
    }

    pub fn take_switched(&mut self, pid: u32, tid: u32) -> Option<Vec<u64>> {
        self.switched.remove(&(pid, tid))
    }
}

/// A contract record for a kernel record's header (kind from `body`).
pub fn kernel_record(
    clock: &Clock,
    h: &tracer_common::Header,
    exe: Option<String>,
    goid: Option<u64>,
    body: Body,
) -> Record {
    Record {
        schema: SCHEMA,
        kind: body.kind(),
        time: clock.rfc3339(h.ts_ns),
        ts_ns: h.ts_ns,
        pid: Some(h.pid),
        tid: Some(h.tid),
        comm: Some(records::comm(h)),
        exe,
        goid,
        container: None,
        body,
    }
}
