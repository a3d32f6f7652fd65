//! Address → function, file, line (and inlined calls).
//!
//! Organised by source, like blazesym: [`elf`] opens a binary and answers
//! from DWARF when it has it and from the ELF symbol tables otherwise. The
//! [`Symbolizer`] caches one opened binary per file (device + inode), shared
//! by every process that maps it; [`process`] maps runtime addresses of one
//! process to a binary and a file address.

pub mod elf;
pub mod process;

use std::{collections::HashMap, path::Path, rc::Rc};

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
}

/// Where a frame's address came from: the faulting instruction itself, or a
/// return address (look up `pc - 1` to land in the call instruction, as gdb
/// and the Go runtime do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcKind {
    Exact,
    ReturnAddress,
}

/// Which source answered for a binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DebugInfo {
    Dwarf,
    Symtab,
    None,
}

impl DebugInfo {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dwarf => "dwarf",
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

/// Cache of opened binaries keyed by (device, inode): opened once, at
/// attach/exec time, kept open (and mapped) so a crash can be symbolized after
/// its process, or even its file, is gone.
#[derive(Default)]
pub struct Symbolizer {
    modules: HashMap<(String, u64), Rc<ElfModule>>,
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
                let m = Rc::new(m);
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
