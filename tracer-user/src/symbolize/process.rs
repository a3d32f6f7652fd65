//! A process's executable mappings, snapshotted at attach/exec time with
//! their binaries opened, so its addresses can be symbolized after it died.

use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::{ElfModule, FileCache, Frame, PcKind};
use crate::{maps::MapEntry, procfs::Capture};

#[derive(Clone)]
struct Mapping {
    entry: MapEntry,
    module: Option<Arc<ElfModule>>,
}

#[derive(Clone)]
pub struct ProcessImage {
    /// readlink /proc/PID/exe, without " (deleted)".
    pub exe: Option<String>,
    /// Its cgroup, container and namespace pid (read with the maps).
    pub container: Option<std::sync::Arc<crate::record::Container>>,
    /// GOTRACEBACK in its environment, when set.
    pub gotraceback: Option<String>,
    mappings: Vec<Mapping>,
}

impl ProcessImage {
    /// Reads `pid` now (see [`Capture::take`]) and opens its binaries.
    pub fn snapshot(pid: u32, cache: &FileCache) -> Result<Self> {
        let capture = Capture::take(pid).with_context(|| format!("reading /proc/{pid}"))?;
        Ok(Self::from_capture(capture, cache))
    }

    /// The image a capture describes: each mapping's binary opened through
    /// the cache, from the descriptors the capture holds (the process may
    /// be gone by now).
    pub fn from_capture(capture: Capture, cache: &FileCache) -> Self {
        let modules: Vec<(u64, u64, Arc<ElfModule>)> = capture
            .files
            .into_iter()
            .filter_map(|f| {
                let (dev, ino) = f.id.inode();
                let display = f.path.clone();
                Some((dev, ino, cache.open(f.id, f.file, &display)?))
            })
            .collect();
        let mappings = capture
            .mappings
            .into_iter()
            .map(|entry| {
                let module = entry.dev_number().and_then(|dev| {
                    modules
                        .iter()
                        .find(|(d, i, _)| *d == dev && *i == entry.inode)
                        .map(|(_, _, m)| Arc::clone(m))
                        // Opened for an earlier process (this one lost it).
                        .or_else(|| {
                            entry
                                .is_file()
                                .then(|| cache.by_inode(dev, entry.inode))
                                .flatten()
                        })
                });
                Mapping { entry, module }
            })
            .collect();
        Self {
            exe: capture.exe,
            container: capture.container.map(std::sync::Arc::new),
            gotraceback: capture.gotraceback,
            mappings,
        }
    }

    /// The image of a process that exec'd the file of `module` and is gone
    /// before its maps could be read: its program's code only, placed where
    /// the exec put it (`start_code`..`end_code`, from the kernel).
    pub fn from_exec(
        module: Arc<ElfModule>,
        display: &str,
        (dev, inode): (u64, u64),
        start_code: u64,
        end_code: u64,
    ) -> Result<Self> {
        let (start, end, offset) = module
            .code_mapping(start_code, end_code)
            .with_context(|| format!("{display} has no executable segment"))?;
        Ok(Self {
            exe: Some(display.to_owned()),
            container: None,
            gotraceback: None,
            mappings: vec![Mapping {
                entry: MapEntry {
                    start,
                    end,
                    perms: "r-xp".into(),
                    offset,
                    dev: maps_dev(dev),
                    inode,
                    pathname: Some(display.to_owned()),
                },
                module: Some(module),
            }],
        })
    }

    /// `len` bytes at runtime address `addr` read from the file of a
    /// module of the process (its read-only data): for what the BPF side
    /// could not read because the page was never touched.
    pub fn read_static(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.static_module(addr, |module, vaddr| {
            module.read_vaddr(vaddr, len).map(<[u8]>::to_vec)
        })
    }

    /// The NUL-terminated string at runtime address `addr` (at most `max`
    /// bytes, without the NUL) from the file of a module of the process,
    /// as [`Self::read_static`].
    pub fn read_static_str(&self, addr: u64, max: usize) -> Option<Vec<u8>> {
        self.static_module(addr, |module, vaddr| {
            let bytes = module.read_vaddr_upto(vaddr, max)?;
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            Some(bytes[..end].to_vec())
        })
    }

    /// `read` of the first module whose file holds runtime address `addr`
    /// (given the module and the ELF address).
    fn static_module<T>(
        &self,
        addr: u64,
        read: impl Fn(&ElfModule, u64) -> Option<T>,
    ) -> Option<T> {
        self.mappings.iter().find_map(|m| {
            let module = m.module.as_ref()?;
            let bias = m
                .entry
                .start
                .checked_sub(module.file_offset_to_vaddr(m.entry.offset)?)?;
            read(module, addr.checked_sub(bias)?)
        })
    }

    /// Executable mappings known.
    /// Gives back the file pages its binaries' lookups read (see
    /// [`ElfModule::release_pages`]): called when the process is gone.
    pub fn release_pages(&self) {
        let mut done: Vec<*const ElfModule> = Vec::new();
        for m in self.mappings.iter().filter_map(|m| m.module.as_ref()) {
            if !done.contains(&Arc::as_ptr(m)) {
                done.push(Arc::as_ptr(m));
                m.release_pages();
            }
        }
    }

    pub fn mapping_count(&self) -> usize {
        self.mappings.len()
    }

    /// Executable mappings whose file could be read.
    pub fn module_count(&self) -> usize {
        self.mappings.iter().filter(|m| m.module.is_some()).count()
    }

    /// Adds a library the process loaded (dlopen, or ld.so at startup),
    /// placed as ld.so placed it: its executable segments at `load_bias`.
    /// Returns whether it added anything (false: that code was known).
    pub fn add_library(&mut self, path: &str, module: Arc<ElfModule>, load_bias: u64) -> bool {
        const PAGE: u64 = 4096;
        let mut added = false;
        let (dev, inode) = module.identity;
        for (offset, vaddr, size) in module.exec_segments() {
            let start = load_bias.wrapping_add(vaddr) & !(PAGE - 1);
            let end = load_bias.wrapping_add(vaddr).wrapping_add(size);
            if self.covers(start) {
                continue;
            }
            self.mappings.push(Mapping {
                entry: MapEntry {
                    start,
                    end,
                    perms: "r-xp".into(),
                    offset: offset & !(PAGE - 1),
                    dev: maps_dev(dev),
                    inode,
                    pathname: Some(path.to_owned()),
                },
                module: Some(Arc::clone(&module)),
            });
            added = true;
        }
        added
    }

    /// The executable's module.
    pub fn exe_module(&self) -> Option<Arc<ElfModule>> {
        let exe = self.exe.as_deref()?;
        let m = self.mappings.iter().find(|m| {
            m.module.is_some() && m.entry.file_path().is_some_and(|p| p.to_str() == Some(exe))
        })?;
        m.module.clone()
    }

    /// The process's libc (for the dlopen return probe).
    pub fn libc(&self) -> Option<Arc<ElfModule>> {
        self.library("libc.so.6")
    }

    /// Whether some module of the process calls dlopen (else no library
    /// can be loaded later through it, and no probe is needed: placing a
    /// uprobe on a library every process maps costs the kernel a walk over
    /// all of them).
    pub fn may_dlopen(&self) -> bool {
        self.mappings
            .iter()
            .filter_map(|m| m.module.as_ref())
            .any(|m| m.imports_dlopen)
    }

    /// The process's libstdc++ (for the C++ probes).
    pub fn libstdcxx(&self) -> Option<Arc<ElfModule>> {
        self.library("libstdc++.so.6")
    }

    fn library(&self, soname: &str) -> Option<Arc<ElfModule>> {
        self.mappings
            .iter()
            .find(|m| {
                m.module.is_some()
                    && m.entry.file_path().is_some_and(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n == soname || n.starts_with(&format!("{soname}.")))
                    })
            })?
            .module
            .clone()
    }

    /// Paths of the files mapped (for libraries ld.so loaded).
    pub fn has_path(&self, path: &str) -> bool {
        self.mappings
            .iter()
            .any(|m| m.entry.pathname.as_deref() == Some(path))
    }

    /// Debug-info source of the main executable.
    pub fn exe_debuginfo(&self) -> super::DebugInfo {
        self.mappings
            .iter()
            .find(|m| {
                m.entry
                    .file_path()
                    .map(|p| p.to_string_lossy().into_owned())
                    == self.exe
            })
            .and_then(|m| m.module.as_ref())
            .map_or(super::DebugInfo::None, |m| m.debuginfo)
    }

    /// runtime address − ELF address for the main executable (0 unless PIE).
    pub fn exe_load_bias(&self) -> Option<u64> {
        let m = self.mappings.iter().find(|m| {
            m.entry
                .file_path()
                .map(|p| p.to_string_lossy().into_owned())
                == self.exe
        })?;
        let vaddr = m.module.as_ref()?.file_offset_to_vaddr(m.entry.offset)?;
        Some(m.entry.start.wrapping_sub(vaddr))
    }

    /// Whether `pc` lies in an executable mapping we know of.
    pub fn covers(&self, pc: u64) -> bool {
        self.mappings
            .iter()
            .any(|m| pc >= m.entry.start && pc < m.entry.end)
    }

    /// A crashed thread's frames from a copy of its stack, with the CFI of
    /// the module each pc is in (frame pointers where it has none).
    pub fn unwind(
        &self,
        start: crate::unwind::Regs,
        stack: &crate::unwind::StackCopy<'_>,
        max: usize,
    ) -> crate::unwind::Unwound {
        crate::unwind::walk(|pc| self.module_at(pc), start, stack, max)
    }

    /// The module mapped at runtime address `pc`, and `pc` as an address in
    /// that module's ELF address space.
    pub fn module_at(&self, pc: u64) -> Option<(Arc<ElfModule>, u64)> {
        let m = self
            .mappings
            .iter()
            .find(|m| pc >= m.entry.start && pc < m.entry.end)?;
        let module = m.module.as_ref()?;
        let vaddr = module.file_offset_to_vaddr(pc - m.entry.start + m.entry.offset)?;
        Some((Arc::clone(module), vaddr))
    }

    /// Frames of an unwound stack of runtime addresses, innermost first;
    /// `stack[0]` is the exact pc, the rest return addresses; the frames tail
    /// calls removed are put back where DWARF call sites show them
    /// (gdb's `bt` does the same). The stack is cut at the first return
    /// address outside executable memory: what a frame-pointer walk found
    /// past code without frame pointers is noise, not frames.
    pub fn symbolize_stack(&self, stack: &[u64]) -> (Vec<Frame>, bool) {
        self.symbolize_unwound(stack, &[])
    }

    /// As [`Self::symbolize_stack`], with the indexes of signal return
    /// trampolines in `stack` (the unwinder's `signal_frames`): each is
    /// gdb's `<signal handler called>`, and the pc after it, where the
    /// signal interrupted the thread, is exact.
    pub fn symbolize_unwound(&self, stack: &[u64], signal_frames: &[usize]) -> (Vec<Frame>, bool) {
        let mut pcs: Vec<(u64, PcKind)> = Vec::with_capacity(stack.len());
        for (i, &pc) in stack.iter().enumerate() {
            let kind = if signal_frames.contains(&i) {
                PcKind::SigReturn
            } else if i == 0 || (i > 0 && signal_frames.contains(&(i - 1))) {
                PcKind::Exact
            } else {
                PcKind::ReturnAddress
            };
            if i > 0 && kind == PcKind::ReturnAddress {
                let callee_exact = i == 1 || (i >= 2 && signal_frames.contains(&(i - 2)));
                pcs.extend(
                    self.tail_calls(stack[i - 1], callee_exact, pc)
                        .into_iter()
                        .map(|p| (p, PcKind::TailCall)),
                );
            }
            pcs.push((pc, kind));
        }
        self.symbolize_pcs(&pcs)
    }

    /// Runtime addresses of the frames tail calls removed between the frame
    /// at `callee_pc` and the caller returned to at `ret`, innermost first.
    /// Only within one module (a call to another module goes through its
    /// PLT, and the jump chain would have to be too).
    fn tail_calls(&self, callee_pc: u64, callee_exact: bool, ret: u64) -> Vec<u64> {
        let callee_probe = if callee_exact {
            callee_pc
        } else {
            callee_pc.saturating_sub(1)
        };
        let (Some((callee_module, callee_vaddr)), Some((ret_module, ret_vaddr))) =
            (self.module_at(callee_probe), self.module_at(ret))
        else {
            return Vec::new();
        };
        if !Arc::ptr_eq(&callee_module, &ret_module) {
            return Vec::new();
        }
        // ret and ret_vaddr differ by the module's load bias.
        let bias = ret.wrapping_sub(ret_vaddr);
        ret_module
            .tail_calls_between(ret_vaddr, callee_vaddr)
            .into_iter()
            .map(|v| v.wrapping_add(bias))
            .collect()
    }

    /// As [`Self::symbolize_stack`], with the caller saying which addresses
    /// are exact (e.g. the frame a Go `sigpanic` was injected above: its pc
    /// is the faulting instruction, not a return address).
    pub fn symbolize_pcs(&self, pcs: &[(u64, PcKind)]) -> (Vec<Frame>, bool) {
        let mut frames = Vec::with_capacity(pcs.len());
        let mut truncated = false;
        for (i, &(pc, kind)) in pcs.iter().enumerate() {
            if i > 0 && !self.covers(pc) {
                truncated = true;
                break;
            }
            self.symbolize_into(pc, kind, &mut frames);
        }
        (frames, truncated)
    }

    fn symbolize_into(&self, pc: u64, kind: PcKind, out: &mut Vec<Frame>) {
        let hex = format!("{pc:#x}");
        let mapping = self
            .mappings
            .iter()
            .find(|m| pc >= m.entry.start && pc < m.entry.end);
        let Some(mapping) = mapping else {
            out.push(unknown(hex, None));
            return;
        };
        let module_name = mapping
            .entry
            .file_path()
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| mapping.entry.pathname.clone());
        let file_offset = pc - mapping.entry.start + mapping.entry.offset;
        let Some(module) = &mapping.module else {
            let mut f = unknown(hex, module_name);
            f.file_offset = mapping.entry.is_file().then(|| format!("{file_offset:#x}"));
            out.push(f);
            return;
        };
        if kind == PcKind::SigReturn {
            out.push(Frame {
                function: Some(super::SIGNAL_HANDLER_CALLED.to_owned()),
                file_offset: Some(format!("{file_offset:#x}")),
                ..unknown(hex, module_name)
            });
            return;
        }
        let wrapper = kind == PcKind::Wrapper;
        let kind = if wrapper { PcKind::ReturnAddress } else { kind };
        let mut locations = module
            .file_offset_to_vaddr(file_offset)
            .map(|vaddr| module.lookup_cached(vaddr, kind))
            .unwrap_or_default();
        if wrapper {
            // The wrapper itself (the outermost, physical frame) goes.
            locations.pop();
            if locations.is_empty() {
                return;
            }
        }
        if locations.is_empty() {
            let mut f = unknown(hex, module_name);
            f.file_offset = Some(format!("{file_offset:#x}"));
            out.push(f);
            return;
        }
        // A restored tail-call frame is one frame, named as gdb names it: by
        // the innermost function at the jump (inlined or not).
        if kind == PcKind::TailCall {
            locations.truncate(1);
        }
        let last = locations.len() - 1;
        out.extend(locations.into_iter().enumerate().map(|(i, loc)| Frame {
            pc: hex.clone(),
            function: loc.function,
            file: loc.file,
            line: loc.line,
            inlined: i != last,
            module: module_name.clone(),
            tail_call: kind == PcKind::TailCall,
            file_offset: Some(format!("{file_offset:#x}")),
        }));
    }
}

fn unknown(pc: String, module: Option<String>) -> Frame {
    Frame {
        pc,
        function: None,
        file: None,
        line: None,
        inlined: false,
        module,
        tail_call: false,
        file_offset: None,
    }
}

/// A device number as /proc/PID/maps prints it ("fe:01").
pub fn maps_dev(dev: u64) -> String {
    format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev))
}
