//! A process's executable mappings, snapshotted at attach/exec time with
//! their binaries opened, so its addresses can be symbolized after it died.

use std::{fs, path::PathBuf, rc::Rc};

use anyhow::{Context as _, Result};

use super::{ElfModule, Frame, PcKind, Symbolizer};
use crate::maps::{self, MapEntry};

struct Mapping {
    entry: MapEntry,
    module: Option<Rc<ElfModule>>,
}

pub struct ProcessImage {
    /// readlink /proc/PID/exe, without " (deleted)".
    pub exe: Option<String>,
    /// Its cgroup, container and namespace pid (read with the maps).
    pub container: Option<std::sync::Arc<crate::record::Container>>,
    mappings: Vec<Mapping>,
}

impl ProcessImage {
    /// Reads /proc/PID/maps and opens every executable file mapping through
    /// /proc/PID/map_files (which works for deleted files and other mount
    /// namespaces), falling back to /proc/PID/root/PATH.
    pub fn snapshot(pid: u32, symbolizer: &mut Symbolizer) -> Result<Self> {
        let text = fs::read_to_string(format!("/proc/{pid}/maps"))
            .with_context(|| format!("reading /proc/{pid}/maps"))?;
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(s)
        });
        let mappings = maps::parse(&text)
            .into_iter()
            .filter(MapEntry::executable)
            .map(|entry| {
                let module = if entry.is_file() {
                    open_mapped_file(pid, &entry, symbolizer)
                } else {
                    None
                };
                Mapping { entry, module }
            })
            .collect::<Vec<Mapping>>();
        // A dying process's maps read empty (its memory is gone already):
        // no image is better than an empty one.
        if mappings.is_empty() {
            anyhow::bail!("pid {pid} has no executable mappings (exiting?)");
        }
        let container = crate::record::Container::of_process(pid).map(std::sync::Arc::new);
        Ok(Self {
            exe,
            container,
            mappings,
        })
    }

    /// The image of a process that exec'd `path` and is gone before its
    /// maps could be read: its program's code only, placed where the
    /// exec put it (`start_code`..`end_code`, from the kernel).
    pub fn from_exec(
        path: &std::path::Path,
        display: &str,
        start_code: u64,
        end_code: u64,
        symbolizer: &mut Symbolizer,
    ) -> Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        let dev = maps_dev(meta.dev());
        let module = symbolizer
            .module((dev.clone(), meta.ino()), path, display)
            .with_context(|| format!("reading {display}"))?;
        let (start, end, offset) = module
            .code_mapping(start_code, end_code)
            .with_context(|| format!("{display} has no executable segment"))?;
        Ok(Self {
            exe: Some(display.to_owned()),
            container: None,
            mappings: vec![Mapping {
                entry: MapEntry {
                    start,
                    end,
                    perms: "r-xp".into(),
                    offset,
                    dev,
                    inode: meta.ino(),
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
        self.mappings.iter().find_map(|m| {
            let module = m.module.as_ref()?;
            let bias = m
                .entry
                .start
                .checked_sub(module.file_offset_to_vaddr(m.entry.offset)?)?;
            let vaddr = addr.checked_sub(bias)?;
            module.read_vaddr(vaddr, len).map(<[u8]>::to_vec)
        })
    }

    /// Executable mappings known.
    pub fn mapping_count(&self) -> usize {
        self.mappings.len()
    }

    /// Executable mappings whose file could be read.
    pub fn module_count(&self) -> usize {
        self.mappings.iter().filter(|m| m.module.is_some()).count()
    }

    /// Adds a library the process dlopen'ed, from its path and load bias
    /// (its executable PT_LOAD segments, placed as ld.so placed them).
    pub fn add_library(
        &mut self,
        pid: u32,
        path: &str,
        load_bias: u64,
        symbolizer: &mut Symbolizer,
    ) -> Result<()> {
        use object::{Object as _, ObjectSegment as _, SegmentFlags};
        use std::os::unix::fs::MetadataExt as _;
        // The process's own view of the path (its mount namespace), while
        // it lives; else the path as is.
        let in_root = PathBuf::from(format!("/proc/{pid}/root{path}"));
        let open_path = if in_root.exists() {
            in_root
        } else {
            PathBuf::from(path)
        };
        let meta =
            fs::metadata(&open_path).with_context(|| format!("stat {}", open_path.display()))?;
        let data = fs::read(&open_path).with_context(|| format!("reading {path}"))?;
        let obj = object::File::parse(&*data).with_context(|| format!("{path} is not ELF"))?;
        let dev = maps_dev(meta.dev());
        let module = symbolizer.module((dev.clone(), meta.ino()), &open_path, path);
        const PAGE: u64 = 4096;
        for seg in obj.segments() {
            let exec = matches!(seg.flags(), SegmentFlags::Elf { p_flags, .. } if p_flags.0 & object::elf::PF_X.0 != 0);
            if !exec {
                continue;
            }
            let (offset, _) = seg.file_range();
            let start = load_bias.wrapping_add(seg.address()) & !(PAGE - 1);
            let end = load_bias
                .wrapping_add(seg.address())
                .wrapping_add(seg.size());
            if self.covers(start) {
                continue;
            }
            self.mappings.push(Mapping {
                entry: MapEntry {
                    start,
                    end,
                    perms: "r-xp".into(),
                    offset: offset & !(PAGE - 1),
                    dev: dev.clone(),
                    inode: meta.ino(),
                    pathname: Some(path.to_owned()),
                },
                module: module.clone(),
            });
        }
        Ok(())
    }

    /// The executable's module and a path to it the tracer can open.
    pub fn exe_module(&self, pid: u32) -> Option<(Rc<ElfModule>, PathBuf)> {
        let exe = self.exe.as_deref()?;
        let m = self.mappings.iter().find(|m| {
            m.module.is_some() && m.entry.file_path().is_some_and(|p| p.to_str() == Some(exe))
        })?;
        let open = PathBuf::from(format!(
            "/proc/{pid}/map_files/{:x}-{:x}",
            m.entry.start, m.entry.end
        ));
        Some((Rc::clone(m.module.as_ref()?), open))
    }

    /// The process's libc, as (a path the tracer can open, a key naming
    /// the file: device and inode), for the dlopen return probe.
    pub fn libc(&self, pid: u32) -> Option<(PathBuf, PathBuf)> {
        self.library(pid, "libc.so.6")
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

    /// The process's libstdc++, as [`Self::libc`].
    pub fn libstdcxx(&self, pid: u32) -> Option<(PathBuf, PathBuf)> {
        self.library(pid, "libstdc++.so.6")
    }

    fn library(&self, pid: u32, soname: &str) -> Option<(PathBuf, PathBuf)> {
        let m = self.mappings.iter().find(|m| {
            m.entry.file_path().is_some_and(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n == soname || n.starts_with(&format!("{soname}.")))
            })
        })?;
        let open = PathBuf::from(format!(
            "/proc/{pid}/map_files/{:x}-{:x}",
            m.entry.start, m.entry.end
        ));
        let key = PathBuf::from(format!("{}:{}", m.entry.dev, m.entry.inode));
        Some((open, key))
    }

    /// A copy for a forked child: same mappings until it execs.
    pub fn for_child(&self) -> Self {
        Self {
            exe: self.exe.clone(),
            container: self.container.clone(),
            mappings: self
                .mappings
                .iter()
                .map(|m| Mapping {
                    entry: m.entry.clone(),
                    module: m.module.clone(),
                })
                .collect(),
        }
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

    /// The module mapped at runtime address `pc`, and `pc` as an address in
    /// that module's ELF address space.
    pub fn module_at(&self, pc: u64) -> Option<(Rc<ElfModule>, u64)> {
        let m = self
            .mappings
            .iter()
            .find(|m| pc >= m.entry.start && pc < m.entry.end)?;
        let module = m.module.as_ref()?;
        let vaddr = module.file_offset_to_vaddr(pc - m.entry.start + m.entry.offset)?;
        Some((Rc::clone(module), vaddr))
    }

    /// Frames of an unwound stack of runtime addresses, innermost first;
    /// `stack[0]` is the exact pc, the rest return addresses; the frames tail
    /// calls removed are put back where DWARF call sites show them
    /// (gdb's `bt` does the same). The stack is cut at the first return
    /// address outside executable memory: what a frame-pointer walk found
    /// past code without frame pointers is noise, not frames.
    pub fn symbolize_stack(&self, stack: &[u64]) -> (Vec<Frame>, bool) {
        let mut pcs: Vec<(u64, PcKind)> = Vec::with_capacity(stack.len());
        for (i, &pc) in stack.iter().enumerate() {
            let kind = if i == 0 {
                PcKind::Exact
            } else {
                PcKind::ReturnAddress
            };
            if i > 0 {
                pcs.extend(
                    self.tail_calls(stack[i - 1], i - 1 == 0, pc)
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
        if !Rc::ptr_eq(&callee_module, &ret_module) {
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
        let locations = module
            .file_offset_to_vaddr(file_offset)
            .map(|vaddr| module.lookup(vaddr, kind))
            .unwrap_or_default();
        if locations.is_empty() {
            let mut f = unknown(hex, module_name);
            f.file_offset = Some(format!("{file_offset:#x}"));
            out.push(f);
            return;
        }
        // A restored tail-call frame is one frame, named as gdb names it: by
        // the innermost function at the jump (inlined or not).
        let mut locations = locations;
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

/// The binary behind a file mapping of `pid`: already open (the same
/// device and inode), else through /proc/PID/map_files (deleted files,
/// other mount namespaces), /proc/PID/root/PATH, or PATH on this host when
/// it is the same file. A process that is exiting loses the first two while
/// its maps can still be read; its exit record follows, and its frames
/// still need the file.
fn open_mapped_file(
    pid: u32,
    entry: &MapEntry,
    symbolizer: &mut Symbolizer,
) -> Option<Rc<ElfModule>> {
    let key = (entry.dev.clone(), entry.inode);
    if let Some(m) = symbolizer.cached(&key) {
        return Some(m);
    }
    let display = entry.file_path()?.to_string_lossy().into_owned();
    let via_map_files = PathBuf::from(format!(
        "/proc/{pid}/map_files/{:x}-{:x}",
        entry.start, entry.end
    ));
    let via_root = PathBuf::from(format!("/proc/{pid}/root{display}"));
    let open_path = if via_map_files.exists() {
        via_map_files
    } else if via_root.exists() {
        via_root
    } else if same_file(std::path::Path::new(&display), &key) {
        PathBuf::from(&display)
    } else {
        // Gone with the process, or not this file: nothing to warn.
        return None;
    };
    symbolizer.module(key, &open_path, &display)
}

/// Whether `path` is the file with (device as /proc/PID/maps prints it,
/// inode) `key`.
fn same_file(path: &std::path::Path, key: &(String, u64)) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata(path).is_ok_and(|m| m.ino() == key.1 && maps_dev(m.dev()) == key.0)
}

/// A device number as /proc/PID/maps prints it ("fe:01").
fn maps_dev(dev: u64) -> String {
    format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev))
}
