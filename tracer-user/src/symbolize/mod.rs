//! Address → function, file, line (and inlined calls).
//!
//! Organised by source, like blazesym: [`elf`] opens a binary and answers
//! from DWARF when it has it and from the ELF symbol tables otherwise. The
//! [`Symbolizer`] caches one opened binary per file (device + inode), shared
//! by every process that maps it; [`process`] maps runtime addresses of one
//! process to a binary and a file address.

pub mod callsites;
pub mod dwarf_units;
pub mod elf;
pub mod process;

use std::{
    collections::{HashMap, VecDeque},
    path::Path,
    rc::Rc,
    time::{Duration, Instant},
};

use serde::Serialize;

pub use elf::ElfModule;

/// One frame as the contract's NDJSON spells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// Runtime address (hex string).
    pub pc: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
    pub module: Option<String>,
    /// A frame a tail call removed from the stack, restored from DWARF
    /// call-site information (as gdb does); `pc` is the address after the
    /// jump.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tail_call: bool,
    /// Extension: where `pc` is in `module`'s file (hex), so a frame can be
    /// symbolized later, elsewhere (`crashtrace report`), without knowing
    /// where the module was loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_offset: Option<String>,
}

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
}

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

/// Cache of opened binaries keyed by (device, inode) and by build id: opened
/// once, at attach/exec time, kept open (and mapped) so a crash can be
/// symbolized after its process, or even its file, is gone. Their DWARF is
/// parsed in idle time ([`Symbolizer::warm`]) before the first crash needs it.
#[derive(Default)]
pub struct Symbolizer {
    modules: HashMap<(String, u64), Rc<ElfModule>>,
    by_build_id: HashMap<Vec<u8>, Rc<ElfModule>>,
    cold: VecDeque<Rc<ElfModule>>,
    /// Time spent warming, for `-v`.
    pub warm_time: Duration,
    pub warmed_modules: usize,
}

impl Symbolizer {
    /// The module for a file identified by `key`, opening it through `open_path`
    /// (e.g. /proc/PID/map_files/…) on first use. Errors are kept per file so
    /// one bad binary does not stop the others.
    pub fn module(
        &mut self,
        key: (String, u64),
        open_path: &Path,
        display: &str,
    ) -> Option<Rc<ElfModule>> {
        if let Some(m) = self.modules.get(&key) {
            return Some(Rc::clone(m));
        }
        match ElfModule::open(open_path, display) {
            Ok(m) => {
                let m = match m.build_id.as_ref().and_then(|id| self.by_build_id.get(id)) {
                    // The same build seen through another file: share it.
                    Some(known) => Rc::clone(known),
                    None => {
                        let m = Rc::new(m);
                        if let Some(id) = &m.build_id {
                            self.by_build_id.insert(id.clone(), Rc::clone(&m));
                        }
                        self.cold.push_back(Rc::clone(&m));
                        m
                    }
                };
                self.modules.insert(key, Rc::clone(&m));
                Some(m)
            }
            Err(err) => {
                crate::output::warn(&format!("cannot read {display}: {err:#}"));
                None
            }
        }
    }
}

impl Symbolizer {
    /// The module already opened for the file `key`, if any.
    pub fn cached(&self, key: &(String, u64)) -> Option<Rc<ElfModule>> {
        self.modules.get(key).cloned()
    }

    /// Whether some opened binary still has unparsed DWARF.
    pub fn has_cold_modules(&self) -> bool {
        !self.cold.is_empty()
    }

    /// One bounded step of DWARF warm-up (a few milliseconds): call it when
    /// there is nothing else to do.
    pub fn warm(&mut self) {
        // Short steps: records wait while one runs.
        const STEP: Duration = Duration::from_millis(2);
        let Some(m) = self.cold.front() else {
            return;
        };
        let started = Instant::now();
        let done = m.warm(STEP);
        self.warm_time += started.elapsed();
        if done {
            self.cold.pop_front();
            self.warmed_modules += 1;
        }
    }
}
