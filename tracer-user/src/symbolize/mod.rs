//! Address → function, file, line (and inlined calls).
//!
//! Organised by source, like blazesym: [`elf`] opens a binary and answers
//! from DWARF when it has it and from the ELF symbol tables otherwise. The
//! [`FileCache`] holds one opened binary per file identity, shared by every
//! process that maps it and by the threads that read it; [`process`] maps
//! runtime addresses of one process to a binary and a file address.

pub mod callsites;
pub mod dwarf_units;
pub mod elf;
pub mod process;

use std::{
    collections::{HashMap, VecDeque},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

pub use elf::ElfModule;

pub use crate::record::Frame;

/// Where a frame's address came from: the faulting instruction itself, or a
/// return address (look up `pc - 1` to land in the call instruction, as gdb
/// and the Go runtime do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcKind {
    Exact,
    ReturnAddress,
    /// The address after a tail call's jump (a restored frame): looked up
    /// as a return address.
    TailCall,
    /// A return address in a Go wrapper the runtime's traceback elides
    /// (`go f(x)`'s gowrap, ABI wrappers): only the frames inlined into it
    /// are shown.
    Wrapper,
    /// The signal return trampoline a handler returns to: shown as gdb
    /// shows it, `<signal handler called>`.
    SigReturn,
}

/// The name of a signal trampoline's frame, as gdb prints it.
pub const SIGNAL_HANDLER_CALLED: &str = "<signal handler called>";

/// Which source answered for a binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DebugInfo {
    Dwarf,
    /// Go's own table (`.gopclntab`): Go binaries without DWARF.
    Gopclntab,
    Symtab,
    None,
}

impl DebugInfo {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dwarf => "dwarf",
            Self::Gopclntab => "gopclntab",
            Self::Symtab => "symtab",
            Self::None => "none",
        }
    }
}

/// A function/file/line answer for one address, before it becomes a [`Frame`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceLocation {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

pub use crate::procfs::FileId;

/// The kernel's `s_dev` encoding (`major << 20 | minor`, what the exec
/// record carries) as userspace's `st_dev`.
pub fn dev_from_kernel(kdev: u64) -> u64 {
    libc::makedev((kdev >> 20) as u32, (kdev & 0xf_ffff) as u32)
}

/// Modules kept when no process maps them any more (the most recently
/// used): a program started again soon is not parsed again, and a daemon
/// that sees thousands of short-lived programs stays bounded.
const IDLE_MODULES: usize = 64;

/// The one file cache: every binary opened once, by identity ([`FileId`]),
/// shared by every process that maps it and by both threads that read it
/// (process work places probes from its symbols; analysis symbolizes and
/// unwinds). A module keeps its file open and mapped, so a crash is
/// symbolized after its process, or even its file, is gone. DWARF is parsed
/// ahead in idle time ([`FileCache::warm_step`]).
#[derive(Default)]
pub struct FileCache {
    inner: std::sync::Mutex<CacheInner>,
    /// Signalled when a module with DWARF to parse ahead is added.
    cold_added: std::sync::Condvar,
}

#[derive(Default)]
struct CacheInner {
    by_id: HashMap<FileId, Entry>,
    /// The newest identity seen per (device, inode).
    by_inode: HashMap<(u64, u64), FileId>,
    by_build_id: HashMap<Vec<u8>, std::sync::Weak<ElfModule>>,
    /// Files that could not be read, not tried (nor warned about) again.
    failed: std::collections::HashSet<FileId>,
    cold: VecDeque<Arc<ElfModule>>,
    uses: u64,
    warm_time: Duration,
    warmed_modules: usize,
}

struct Entry {
    module: Arc<ElfModule>,
    last_use: u64,
}

impl FileCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The module of the file `id`, if it is open.
    pub fn get(&self, id: &FileId) -> Option<Arc<ElfModule>> {
        let mut inner = self.inner();
        inner.uses += 1;
        let now = inner.uses;
        let e = inner.by_id.get_mut(id)?;
        e.last_use = now;
        Some(Arc::clone(&e.module))
    }

    /// The module of the newest file seen with this device and inode (for
    /// what the kernel names without size and mtime: exec records).
    pub fn by_inode(&self, dev: u64, ino: u64) -> Option<Arc<ElfModule>> {
        let id = *self.inner().by_inode.get(&(dev, ino))?;
        self.get(&id)
    }

    /// The module for `file` (identity `id`), parsed on first use: outside
    /// the lock, so a large binary being parsed never holds up a lookup.
    /// `display` is the path the process knows it by. A file that cannot be
    /// read is said once and not tried again.
    pub fn open(&self, id: FileId, file: std::fs::File, display: &str) -> Option<Arc<ElfModule>> {
        if let Some(m) = self.get(&id) {
            return Some(m);
        }
        if self.inner().failed.contains(&id) {
            return None;
        }
        let opened = ElfModule::from_file(file, display);
        if let Ok(m) = &opened {
            // Kept for the process's lifetime: what opening it read need
            // not stay resident.
            m.release_pages();
        }
        let mut inner = self.inner();
        inner.uses += 1;
        let now = inner.uses;
        let module = match opened {
            Ok(m) => {
                let known = m
                    .build_id
                    .as_ref()
                    .and_then(|b| inner.by_build_id.get(b))
                    .and_then(std::sync::Weak::upgrade);
                match known {
                    // The same build seen through another file: share it.
                    Some(known) => known,
                    None => {
                        let m = Arc::new(m);
                        if let Some(b) = &m.build_id {
                            inner.by_build_id.insert(b.clone(), Arc::downgrade(&m));
                        }
                        inner.cold.push_back(Arc::clone(&m));
                        self.cold_added.notify_all();
                        m
                    }
                }
            }
            Err(err) => {
                inner.failed.insert(id);
                drop(inner);
                log::warn!("cannot read {display}: {err:#}");
                return None;
            }
        };
        // Another thread may have opened it meanwhile: keep the first.
        let module = Arc::clone(
            &inner
                .by_id
                .entry(id)
                .or_insert(Entry {
                    module,
                    last_use: now,
                })
                .module,
        );
        inner.by_inode.insert(id.inode(), id);
        inner.evict_idle();
        Some(module)
    }

    /// Opens the file at `path` (the caller checked it is the one meant).
    pub fn open_path(&self, path: &Path, display: &str) -> Option<Arc<ElfModule>> {
        let file = std::fs::File::open(path).ok()?;
        let id = FileId::of(&file).ok()?;
        self.open(id, file, display)
    }

    /// Whether some opened binary still has unparsed DWARF.
    pub fn has_cold_modules(&self) -> bool {
        !self.inner().cold.is_empty()
    }

    /// Waits (at most `limit`) until some opened binary has DWARF to parse.
    pub fn wait_for_cold(&self, limit: Duration) {
        let inner = self.inner();
        if inner.cold.is_empty() {
            let _ = self.cold_added.wait_timeout(inner, limit);
        }
    }

    /// One step of DWARF warm-up, one module (see `ElfModule::warm`; tens
    /// of ms for libc): call it when there is nothing else to do. Outside
    /// the cache's lock.
    pub fn warm_step(&self) {
        let Some(m) = self.inner().cold.front().cloned() else {
            return;
        };
        let started = Instant::now();
        m.warm();
        let mut inner = self.inner();
        inner.warm_time += started.elapsed();
        if inner.cold.front().is_some_and(|f| Arc::ptr_eq(f, &m)) {
            inner.cold.pop_front();
        }
        inner.warmed_modules += 1;
        if inner.cold.is_empty() {
            log::info!(
                "warm: DWARF of {} binaries parsed ahead in {} ms",
                inner.warmed_modules,
                inner.warm_time.as_millis()
            );
        }
    }

    /// (binaries whose DWARF was parsed ahead, time spent), for `-v`.
    pub fn warm_stats(&self) -> (usize, Duration) {
        let inner = self.inner();
        (inner.warmed_modules, inner.warm_time)
    }

    /// Files open now.
    pub fn len(&self) -> usize {
        self.inner().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CacheInner {
    /// Forgets the least recently used modules no process maps any more
    /// (only the cache holds them), beyond [`IDLE_MODULES`].
    fn evict_idle(&mut self) {
        let mut idle: Vec<(u64, FileId)> = self
            .by_id
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.module) == 1)
            .map(|(id, e)| (e.last_use, *id))
            .collect();
        if idle.len() <= IDLE_MODULES {
            return;
        }
        idle.sort_unstable_by_key(|(last_use, _)| *last_use);
        for (_, id) in &idle[..idle.len() - IDLE_MODULES] {
            self.by_id.remove(id);
            if self.by_inode.get(&id.inode()) == Some(id) {
                self.by_inode.remove(&id.inode());
            }
        }
        self.by_build_id.retain(|_, w| w.strong_count() > 0);
        let live: std::collections::HashSet<*const ElfModule> = self
            .by_id
            .values()
            .map(|e| Arc::as_ptr(&e.module))
            .collect();
        self.cold.retain(|m| live.contains(&Arc::as_ptr(m)));
    }
}
