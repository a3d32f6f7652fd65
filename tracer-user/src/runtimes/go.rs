//! Go: the runtime's crash and unwind entry points (gopanic, recovery,
//! throw/fatal, printpanics, sigpanic, Goexit), probed per binary with the
//! runtime's struct layout for its version, and decoded into the records
//! the runtime's own traceback would print. The binary itself is read by
//! [`crate::golang`].

use std::{collections::HashMap, path::Path, sync::Arc};

use anyhow::{Context as _, Result};
use tracer_common::{
    GO_DEFER_BITS_VALID, GO_DEFER_CALL_VALID, GO_GOROUTINE_FRAMES, GO_GOROUTINE_FROM_SCHED,
    GO_GOROUTINE_LOCKED, GO_GOROUTINE_SUMMARY, GO_GOROUTINE_SYSTEM, GO_PANIC_CHAIN_MAX,
    GO_PANIC_CHAIN_SHIFT, GO_PANIC_FROM_CHAIN, GO_PANIC_GOEXIT, GO_PANIC_RECOVERED,
    GO_STACK_FROM_SCHED, GoProbe, GoRecord, GoroutineRecord, MAX_GO_BINARIES, WatchedFile,
};

use super::{Procs, kernel_record};
use crate::{
    golang::{self, GoBinary, LayoutFirst, value::Captured},
    probes::kernel::{GoLinks, KernelProbes},
    procfs,
    record::{
        Body, Clock, CreatedBy, Frame, GoFatal, GoGoexit, GoGoroutines, GoPanic, GoRecover,
        GoSigpanic, GoroutineGroup, Record, SignalInfo,
    },
    signals,
    symbolize::PcKind,
};

/// Bounds for what is remembered between records of a goroutine.
const MAX_REMEMBERED: usize = 4096;

/// Process side: the Go binaries seen (by file identity, so each is read
/// once), their layout slots in the kernel's `GO_CONFIG`, and the probe
/// links: per process, or once per watched file for all its processes.
#[derive(Default)]
pub struct GoFiles {
    /// None: inspected, not Go.
    binaries: HashMap<(u64, u64), Option<Arc<GoBinary>>>,
    /// Layout slot of each Go binary in use, and who uses it.
    slots: HashMap<(u64, u64), Slot>,
    /// Probes placed once per watched file.
    file_links: HashMap<WatchedFile, GoLinks>,
    /// Per-process links.
    process_links: HashMap<u32, ((u64, u64), GoLinks)>,
    /// Processes marked Go in the kernel (`GO_PROCESSES`), with their
    /// binary's file: each holds a use of its slot until it is released.
    marked: HashMap<u32, (u64, u64)>,
}

struct Slot {
    index: u32,
    users: usize,
    /// A table layout checked against DWARF (see [`GoFiles::check_layouts`]).
    checked: bool,
}

impl GoFiles {
    /// The Go binary in the file `identity` (device, inode), read through
    /// `path` once per file; `None` if it is not Go.
    pub fn binary(&mut self, identity: (u64, u64), path: &Path) -> Result<Option<Arc<GoBinary>>> {
        if let Some(known) = self.binaries.get(&identity) {
            return Ok(known.clone());
        }
        let binary = GoBinary::inspect_with(path, LayoutFirst::Table)?.map(Arc::new);
        if self.binaries.len() >= 4096 {
            // Bounded: a daemon sees many files over months.
            self.binaries.retain(|k, _| self.slots.contains_key(k));
        }
        self.binaries.insert(identity, binary.clone());
        Ok(binary)
    }

    /// Layouts taken from the version table to place probes at once are
    /// checked against the binary's DWARF once the probes are in place;
    /// where they differ, DWARF's is written to the binary's slot.
    pub fn check_layouts(&mut self, probes: &mut KernelProbes, verbose: bool) {
        let unchecked: Vec<((u64, u64), u32)> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.checked)
            .map(|(f, s)| (*f, s.index))
            .collect();
        for (file, index) in unchecked {
            if let Some(s) = self.slots.get_mut(&file) {
                s.checked = true;
            }
            let Some(Some(binary)) = self.binaries.get(&file) else {
                continue;
            };
            if binary.layout_source != "version table" {
                continue;
            }
            let minor = binary
                .version
                .split('.')
                .take(2)
                .collect::<Vec<_>>()
                .join(".");
            match binary.dwarf_layout() {
                Some(dwarf) if Some(dwarf) == binary.layout => {
                    if verbose {
                        log::info!(
                            "{}: runtime layout from DWARF matches the {minor} table",
                            binary.version
                        );
                    }
                }
                Some(dwarf) => {
                    log::warn!(
                        "{}: runtime layout from DWARF differs from the {minor} table: using DWARF's",
                        binary.version
                    );
                    if let Err(err) = probes.set_go_config(index, dwarf) {
                        log::warn!("{err:#}");
                    }
                }
                None if verbose => log::info!("{}", binary.layout_notice()),
                None => {}
            }
        }
    }

    /// Marks `pid`, a process of the file `identity` (open at `path`), as
    /// Go in the kernel the moment its exec is seen, with the layout the
    /// version table has for its build: a panic it dies of is read at its
    /// exit from then on. Reading the whole binary and placing its probes
    /// takes milliseconds more (the first uprobe placed after a quiet spell
    /// waits for an RCU grace period, 10–100 ms on these VMs), and a
    /// program that panics 20 ms after its start under a loaded host was
    /// told as a bare `exit 2` (the wrappers test failed so on CI once).
    /// Without a table layout for its version, `place` marks it.
    /// Whether it is marked.
    pub fn mark_early(
        &mut self,
        probes: &mut KernelProbes,
        pid: u32,
        (identity, path): ((u64, u64), &Path),
        verbose: bool,
    ) -> bool {
        let layout = match self.binaries.get(&identity) {
            Some(known) => known.as_ref().and_then(|b| b.layout),
            None => GoBinary::table_layout(path).ok().flatten(),
        };
        let Some(layout) = layout else {
            return false;
        };
        let Ok(slot) = self.slot_for_layout(probes, identity, layout) else {
            return false;
        };
        match probes.mark_go_process(pid, slot) {
            Ok(()) => {
                self.note_mark(pid, identity);
                true
            }
            Err(err) => {
                if verbose {
                    log::info!("pid {pid}: {err:#}");
                }
                false
            }
        }
    }

    /// Places the Go probes for `pid`, a process of the file `identity`
    /// (Go `binary`, open at `path`). With `watched` (the file is watched)
    /// they are placed once for the file, for every process of it from its
    /// first instruction.
    pub fn place(
        &mut self,
        probes: &mut KernelProbes,
        pid: u32,
        (identity, path): ((u64, u64), &Path),
        binary: &GoBinary,
        watched: Option<WatchedFile>,
        verbose: bool,
    ) -> Result<()> {
        self.detach(probes, pid);
        let points = probe_points(binary)?;
        let slot = self.slot_for(probes, identity, binary, verbose)?;
        // From now on a panic it dies of is read at its exit, if the probes
        // below come too late for it (marked once: a watched file's probes
        // may have written its entry since `mark_early`).
        if self.marked.get(&pid) != Some(&identity) {
            probes.mark_go_process(pid, slot)?;
            self.note_mark(pid, identity);
        }
        match watched {
            Some(file) => {
                if let std::collections::hash_map::Entry::Vacant(e) = self.file_links.entry(file) {
                    e.insert(probes.attach_go(None, path, slot, &points)?);
                    self.use_slot(identity);
                }
            }
            None => {
                let link = probes.attach_go(Some(pid), path, slot, &points)?;
                self.process_links.insert(pid, (identity, link));
                self.use_slot(identity);
            }
        }
        Ok(())
    }

    /// Places the Go probes on the watched file `file` (identity, open at
    /// `path`) for all its processes, before any of them runs: no process
    /// of a watched file runs without them.
    pub fn place_file(
        &mut self,
        probes: &mut KernelProbes,
        file: WatchedFile,
        (identity, path): ((u64, u64), &Path),
        binary: &GoBinary,
        verbose: bool,
    ) -> Result<()> {
        if self.file_links.contains_key(&file) {
            return Ok(());
        }
        let points = probe_points(binary)?;
        let slot = self.slot_for(probes, identity, binary, verbose)?;
        self.file_links
            .insert(file, probes.attach_go(None, path, slot, &points)?);
        self.use_slot(identity);
        Ok(())
    }

    /// The process exited or exec'd: its probes go, and its binary's slot
    /// when nothing else uses it.
    pub fn release(&mut self, probes: &mut KernelProbes, pid: u32) {
        self.detach(probes, pid);
        self.unmark(pid);
    }

    /// `pid`'s own probes go (its mark stays).
    fn detach(&mut self, probes: &mut KernelProbes, pid: u32) {
        if let Some((file, link)) = self.process_links.remove(&pid) {
            probes.detach_go(link);
            self.drop_slot_user(file);
        }
    }

    /// `pid` is marked with the slot of `file`'s binary: the mark holds a
    /// use of it (taken before an earlier mark's is given back: both may
    /// be the same slot's).
    fn note_mark(&mut self, pid: u32, file: (u64, u64)) {
        self.use_slot(file);
        if let Some(earlier) = self.marked.insert(pid, file) {
            self.drop_slot_user(earlier);
        }
    }

    /// `pid`'s mark no longer holds its slot. Its kernel entry is the
    /// kernel's to drop (at the exit and the exec: userspace, behind,
    /// could drop a reused pid's or the new program's).
    fn unmark(&mut self, pid: u32) {
        if let Some(file) = self.marked.remove(&pid) {
            self.drop_slot_user(file);
        }
    }

    /// A watched file is no longer watched.
    pub fn unwatch(
        &mut self,
        probes: &mut KernelProbes,
        file: WatchedFile,
        identity: Option<(u64, u64)>,
    ) {
        if let Some(link) = self.file_links.remove(&file) {
            probes.detach_go(link);
            if let Some(id) = identity {
                self.drop_slot_user(id);
            }
        }
    }

    /// Processes with Go probes of their own.
    pub fn traced_processes(&self) -> usize {
        self.process_links.len()
    }

    /// Whether any Go binary has been seen (for `-v`'s probe-hit count).
    pub fn any(&self) -> bool {
        self.binaries.values().any(Option::is_some)
    }

    /// The binary's layout slot: its own while it is in use, reused after
    /// (no fixed limit on the Go binaries a daemon sees over its life,
    /// only on those probed at one time).
    fn slot_for(
        &mut self,
        probes: &mut KernelProbes,
        file: (u64, u64),
        binary: &GoBinary,
        verbose: bool,
    ) -> Result<u32> {
        if let Some(s) = self.slots.get(&file) {
            return Ok(s.index);
        }
        let layout = binary.layout.with_context(|| {
            format!(
                "no DWARF and no known runtime layout for {}",
                binary.version
            )
        })?;
        let index = self.slot_for_layout(probes, file, layout)?;
        // (A layout from the version table is said once DWARF checked it.)
        if verbose && binary.layout_source != "version table" {
            log::info!("{}", binary.layout_notice());
        }
        Ok(index)
    }

    /// The slot of the binary in `file`, given its `layout` when it has
    /// none yet.
    fn slot_for_layout(
        &mut self,
        probes: &mut KernelProbes,
        file: (u64, u64),
        layout: tracer_common::GoConfig,
    ) -> Result<u32> {
        if let Some(s) = self.slots.get(&file) {
            return Ok(s.index);
        }
        let free = (0..MAX_GO_BINARIES).find(|i| self.slots.values().all(|s| s.index != *i));
        let index =
            match free {
                Some(index) => index,
                // All taken: the slot of a binary no process uses now.
                None => {
                    let (&idle, _) = self.slots.iter().find(|(_, s)| s.users == 0).with_context(
                        || {
                            format!(
                                "more than {MAX_GO_BINARIES} distinct Go binaries probed at once"
                            )
                        },
                    )?;
                    probes.set_go_file(procfs::kernel_file_key(idle), None);
                    self.slots
                        .remove(&idle)
                        .map(|s| s.index)
                        .context("an idle Go slot")?
                }
            };
        probes.set_go_config(index, layout)?;
        // From now on the kernel marks its processes at their exec.
        probes.set_go_file(procfs::kernel_file_key(file), Some(index));
        self.slots.insert(
            file,
            Slot {
                index,
                users: 0,
                checked: false,
            },
        );
        Ok(index)
    }

    fn use_slot(&mut self, file: (u64, u64)) {
        if let Some(s) = self.slots.get_mut(&file) {
            s.users += 1;
        }
    }

    /// A slot no process uses stays (idle) until its index is needed for
    /// another binary: a program restarted (a crash loop) is marked by the
    /// kernel at its exec, its slot and layout still there.
    fn drop_slot_user(&mut self, file: (u64, u64)) {
        if let Some(s) = self.slots.get_mut(&file) {
            s.users = s.users.saturating_sub(1);
        }
    }
}

/// (probe, file offset, cookie bits) of each runtime entry point found in
/// `binary`: `GO_PROBE_AT_STACK_CHECK` on the stack check's jump, the
/// recovery probe's site offset (`GO_COOKIE_SITE_SHIFT`); an error, said
/// rather than silent, when there is none (none of its panics would be
/// seen).
fn probe_points(binary: &GoBinary) -> Result<Vec<(GoProbe, u64, u32)>> {
    let points: Vec<(GoProbe, u64, u32)> = binary
        .points
        .iter()
        .map(|&(p, _, off, spot)| {
            let mut bits = if spot == golang::ProbeSpot::StackCheckJump {
                tracer_common::GO_PROBE_AT_STACK_CHECK
            } else {
                0
            };
            if p == GoProbe::Recovery
                && let Some(site) = binary.recovery_site
            {
                bits |= (site & tracer_common::GO_COOKIE_SITE_MASK)
                    << tracer_common::GO_COOKIE_SITE_SHIFT;
            }
            (p, off, bits)
        })
        .collect();
    if points.is_empty() {
        anyhow::bail!(
            "{}: no runtime entry point found to probe (`crashtrace probes --exe` shows which)",
            binary.version
        );
    }
    Ok(points)
}

/// One `_defer` record of a goroutine's chain, read at gopanic.
#[derive(Clone, Copy, Debug)]
struct DeferRecord {
    address: u64,
    /// Its function's code (0: a frame's open-coded record).
    code: u64,
    /// An older panic had started its call (Go 1.19–1.21's `started`).
    started: bool,
}

/// Analysis side: Go records → `panic`, `recover`, `fatal`, `sigpanic` and
/// `goexit` records, with the goroutine's frames as the runtime's
/// traceback shows them.
#[derive(Default)]
pub struct Decoder {
    /// The `_defer` chain of each goroutine's latest panic (Go 1.19–1.21),
    /// to name the deferred function that recovers it.
    panic_defers: HashMap<(u32, u64), Vec<DeferRecord>>,
    /// (pid, faulting pc) → the return address a frameless faulting
    /// function left on the stack, found in an earlier record's stack
    /// snapshot (sigpanic, gopanic): the fatal panic's records, taken far
    /// from that frame, reuse it.
    leaf_callers: HashMap<(u32, u64), u64>,
    /// The goroutine dump a dying process is printing, until its exit.
    dumps: HashMap<u32, Dump>,
    /// (pid, goid) → the frames of the fatal error or panic that goroutine
    /// is dying of: its stack in the dump (it is running: its saved
    /// context is stale).
    dying: HashMap<(u32, u64), Vec<Frame>>,
    /// (pid, tid) → the frames of the latest signal delivered to that
    /// thread: what a signal's goroutine dump prints first.
    signaled: HashMap<(u32, u32), Vec<Frame>>,
}

/// A goroutine dump being received.
#[derive(Default)]
struct Dump {
    /// Goroutine headers the runtime printed (from the summary at exit).
    printed: Option<u64>,
    recorded: u64,
    /// The runtime prints every frame (GOTRACEBACK=system's level).
    system: bool,
    groups: Vec<GoroutineGroup>,
}

impl Decoder {
    pub fn forget(&mut self, pid: u32) {
        self.panic_defers.retain(|(p, _), _| *p != pid);
        self.leaf_callers.retain(|(p, _), _| *p != pid);
        self.dumps.remove(&pid);
        self.dying.retain(|(p, _), _| *p != pid);
        self.signaled.retain(|(p, _), _| *p != pid);
    }

    /// A signal was delivered to thread `tid` of the Go process `pid`,
    /// interrupting it at `frames`.
    pub fn on_signal(&mut self, pid: u32, tid: u32, frames: &[Frame]) {
        if self.signaled.len() >= MAX_REMEMBERED {
            self.signaled.clear();
        }
        self.signaled.insert((pid, tid), frames.to_vec());
    }

    /// One goroutine of a dying process's dump (or the dump's summary):
    /// kept, grouped with the goroutines that look the same, until the
    /// process exits ([`Decoder::take_dump`]).
    pub fn on_goroutine(&mut self, r: &GoroutineRecord, procs: &mut Procs) {
        let pid = r.header.pid;
        if self.dumps.len() >= MAX_REMEMBERED && !self.dumps.contains_key(&pid) {
            self.dumps.clear();
        }
        if r.flags & GO_GOROUTINE_SUMMARY != 0 {
            self.dumps.entry(pid).or_default().printed = Some(u64::from(r.index));
            return;
        }
        let depth = (r.depth as usize).min(GO_GOROUTINE_FRAMES);
        // The runtime's signal handler or a throw prints this dump at its
        // system level; GOTRACEBACK=system prints any dump so.
        let handler = r.flags & GO_GOROUTINE_SYSTEM != 0;
        let system = handler || prints_system_frames(procs, pid);
        // The signal handler's first goroutine is the one the signal
        // interrupted, walked from the signal's context on this thread —
        // when that context is its own: it was running, or it is the
        // thread's system goroutine 0 (one in a syscall or a cgo call has
        // its own saved context, where the runtime starts too).
        const G_SCAN: u32 = 0x1000;
        const G_RUNNING: u32 = 2;
        let interrupted =
            (handler && r.index == 1 && (r.goid == 0 || r.status & !G_SCAN == G_RUNNING))
                .then(|| self.signaled.get(&(pid, r.header.tid)).cloned())
                .flatten();
        let frames = if let Some(mut frames) = interrupted {
            // Goroutine 0 (the thread's system stack): the runtime's
            // traceback ends where that stack was entered.
            if r.goid == 0
                && let Some(root) = frames.iter().position(|f| {
                    matches!(
                        f.function.as_deref(),
                        Some("runtime.mcall" | "runtime.systemstack" | "runtime.mstart")
                    )
                })
            {
                frames.truncate(root + 1);
            }
            frames
        } else if r.flags & GO_GOROUTINE_FROM_SCHED != 0 {
            let stack = sched_stack(procs, pid, &r.pcs[..depth]);
            procs.ensure_image(pid, &stack);
            let (pcs, _) = self.go_frame_pcs(procs, pid, &stack, &[], false, system);
            procs
                .image(pid)
                .map(|i| i.symbolize_pcs(&pcs).0)
                .unwrap_or_default()
        } else {
            self.dying.get(&(pid, r.goid)).cloned().unwrap_or_default()
        };
        // A goroutine in a cgo call saved its context in asmcgocall's
        // switch to the system stack; the runtime's traceback starts at
        // its syscall pc instead, in runtime.cgocall.
        let mut frames = frames;
        if frames.len() > 1
            && frames[0].function.as_deref() == Some("runtime.systemstack_switch")
            && frames[1].function.as_deref() == Some("runtime.cgocall")
        {
            frames.remove(0);
        }
        let status = procs.go(pid).map_or_else(
            || "waiting".to_owned(),
            |b| b.goroutine_status(r.status, r.wait_reason),
        );
        const G_SYSCALL: u32 = 3;
        const G_WAITING: u32 = 4;
        const MINUTE_NS: i64 = 60_000_000_000;
        let plain = r.status & !G_SCAN;
        let wait_minutes = ((plain == G_WAITING || plain == G_SYSCALL) && r.wait_since != 0)
            .then(|| (r.header.ts_ns as i64).saturating_sub(r.wait_since) / MINUTE_NS)
            .and_then(|m| u64::try_from(m).ok())
            .filter(|&m| m >= 1);
        // `created by F in goroutine N` + the go statement's file:line, as
        // the runtime prints it: F is the physical function, the line the
        // innermost (inlined) one's. Goroutine 1 has none.
        let created_by = (r.goid != 1 && r.gopc != 0)
            .then(|| {
                let image = procs.image(pid)?;
                let (f, _) = image.symbolize_pcs(&[(r.gopc, PcKind::ReturnAddress)]);
                let inner = f.first()?;
                Some(CreatedBy {
                    function: f.last().and_then(|o| o.function.clone()),
                    file: inner.file.clone(),
                    line: inner.line,
                    goid: (r.parent_goid != 0).then_some(r.parent_goid),
                })
            })
            .flatten();
        let locked_to_thread = r.flags & GO_GOROUTINE_LOCKED != 0;
        let dump = self.dumps.entry(pid).or_default();
        dump.recorded += 1;
        dump.system |= system;
        let same = dump.groups.iter_mut().find(|g| {
            g.status == status
                && g.locked_to_thread == locked_to_thread
                && g.frames == frames
                && g.created_by == created_by
        });
        match same {
            Some(g) => {
                g.count += 1;
                g.goids.push(r.goid);
                g.wait_minutes = g.wait_minutes.max(wait_minutes);
            }
            None => dump.groups.push(GoroutineGroup {
                count: 1,
                goids: vec![r.goid],
                status,
                wait_minutes,
                locked_to_thread,
                created_by,
                frames,
            }),
        }
    }

    /// The dump `pid` printed, as a `goroutines` record, at its exit.
    pub fn take_dump(
        &mut self,
        exit: &tracer_common::ExitRecord,
        procs: &Procs,
        clock: &Clock,
    ) -> Option<Record> {
        let pid = exit.header.pid;
        let dump = self.dumps.remove(&pid)?;
        if dump.recorded == 0 {
            return None;
        }
        let printed = dump.printed.unwrap_or(dump.recorded).max(dump.recorded);
        // Past the kernel side's bound, or lost in a full ring.
        let left_out = printed - dump.recorded.min(printed);
        let exe = procs.image(pid).and_then(|i| i.exe.clone());
        let system = dump.system || prints_system_frames(procs, pid);
        Some(kernel_record(
            clock,
            &exit.header,
            exe,
            None,
            Body::Goroutines(GoGoroutines {
                printed,
                left_out,
                traceback: if system { "system" } else { "all" },
                groups: dump.groups,
            }),
        ))
    }

    pub fn on_record(
        &mut self,
        r: &GoRecord,
        procs: &mut Procs,
        clock: &Clock,
    ) -> Result<Option<Record>, String> {
        let pid = r.header.pid;
        let Some(probe) = GoProbe::from_u32(r.probe) else {
            return Err(format!("unknown Go probe {}", r.probe));
        };
        // [pc in the runtime function, its caller (from [rsp]), then the
        // frame-pointer walk, which starts at the caller's caller].
        let depth = (r.stack_bytes as usize / 8).min(tracer_common::MAX_STACK_DEPTH);
        let walked = &r.stack[..depth];
        let stack = if r.flags & GO_STACK_FROM_SCHED != 0 {
            sched_stack(procs, pid, walked)
        } else {
            // Kernels since 6.12 add the caller themselves for a probe on
            // `push rbp`; older ones do not, nor for Go 1.19's `sub rsp`.
            let mut stack = Vec::with_capacity(depth + 1);
            stack.push(r.regs.ip);
            if r.return_address != 0 && walked.get(1) != Some(&r.return_address) {
                stack.push(r.return_address);
            }
            stack.extend(walked.iter().skip(1));
            stack
        };
        procs.ensure_image(pid, &stack);
        let (pcs, leaf_callers) = self.go_frame_pcs(
            procs,
            pid,
            &stack,
            &r.stack_snapshot,
            r.flags & GO_STACK_FROM_SCHED == 0,
            prints_system_frames(procs, pid),
        );
        if self.leaf_callers.len() >= MAX_REMEMBERED {
            self.leaf_callers.clear();
        }
        for (pc, ret) in leaf_callers {
            self.leaf_callers.insert((pid, pc), ret);
        }
        let image = procs.image(pid);
        let mut frames = image.map(|i| i.symbolize_pcs(&pcs).0).unwrap_or_default();
        if probe == GoProbe::Gopanic && r.flags & GO_PANIC_FROM_CHAIN != 0 {
            frames = own_panic_frames(frames, r.flags >> GO_PANIC_CHAIN_SHIFT);
        }
        let exe = image.and_then(|i| i.exe.clone());
        // What a goroutine dies of: its stack in the goroutine dump.
        if matches!(
            probe,
            GoProbe::Throw | GoProbe::Fatal | GoProbe::Printpanics
        ) && r.goid != 0
        {
            if self.dying.len() >= MAX_REMEMBERED {
                self.dying.clear();
            }
            // The runtime prints a fatal panic's goroutine from
            // fatalpanic's caller on (its `panic` frame).
            let printed = frames
                .iter()
                .position(|f| f.function.as_deref() == Some("runtime.fatalpanic"))
                .filter(|&k| probe == GoProbe::Printpanics && k + 1 < frames.len())
                .map_or(&frames[..], |k| &frames[k + 1..]);
            self.dying
                .entry((pid, r.goid))
                .or_insert_with(|| printed.to_vec());
        }
        let captured = Capture::of(procs, pid, probe, r);
        let text = &captured.string[..];
        let body = match probe {
            GoProbe::Gopanic => {
                let chain: Vec<DeferRecord> = r
                    .defers
                    .as_chunks::<2>()
                    .0
                    .iter()
                    .take_while(|p| p[0] != 0)
                    .map(|p| DeferRecord {
                        address: p[0] & !1,
                        code: p[1],
                        started: p[0] & 1 != 0,
                    })
                    .collect();
                if self.panic_defers.len() >= MAX_REMEMBERED {
                    self.panic_defers.clear();
                }
                self.panic_defers.insert((pid, r.goid), chain);
                let (message, value_type) = describe_panic_value(procs, pid, r, &captured);
                Body::Panic(GoPanic {
                    message,
                    value_type,
                    frames,
                    after_recovered: r.flags & tracer_common::GO_PANIC_PREV_RECOVERED != 0,
                })
            }
            GoProbe::Throw | GoProbe::Fatal => {
                let mut message = String::from_utf8_lossy(text).into_owned();
                if captured.string_full_len > text.len() as u64 {
                    message.push('…');
                }
                Body::Fatal(GoFatal {
                    message,
                    source: if probe == GoProbe::Throw {
                        "throw"
                    } else {
                        "fatal"
                    },
                    recovered: false,
                    frames,
                    on_system_stack: r.on_system_stack != 0,
                })
            }
            // A Goexit is in the panic chain but the runtime prints nothing for it.
            GoProbe::Printpanics if r.flags & GO_PANIC_GOEXIT != 0 => return Ok(None),
            GoProbe::Printpanics => {
                let (message, _) = describe_panic_value(procs, pid, r, &captured);
                Body::Fatal(GoFatal {
                    message,
                    source: "panic",
                    recovered: r.flags & GO_PANIC_RECOVERED != 0,
                    frames,
                    on_system_stack: r.on_system_stack != 0,
                })
            }
            GoProbe::Recovery => {
                let recovered_by = self.recovering_function(procs, pid, r);
                Body::Recover(GoRecover {
                    recovered_by,
                    frames,
                })
            }
            GoProbe::Sigpanic => {
                // arg0 = g.sig; value = [sigcode0, sigcode1, sigpc].
                let signo = i32::try_from(r.arg0).unwrap_or(0);
                let words: Vec<u64> = le_words(&r.value).take(3).collect();
                let (code, addr, fault_pc) = match words[..] {
                    [c, a, p] => (c as i64 as i32, a, p),
                    _ => (0, 0, 0),
                };
                Body::Sigpanic(GoSigpanic {
                    signal: SignalInfo {
                        number: signo,
                        name: signals::display_name(signo),
                        code: signals::code_name(signo, code).map(str::to_owned),
                        addr: signals::is_fault(signo).then(|| format!("{addr:#x}")),
                        sender_pid: None,
                        sender_comm: None,
                        disposition: "handler",
                    },
                    fault_pc: format!("{fault_pc:#x}"),
                    on_system_stack: r.on_system_stack != 0,
                    frames,
                })
            }
            GoProbe::Goexit => Body::Goexit(GoGoexit { frames }),
            // Kept in the kernel, never sent; goroutine headers come as
            // their own records.
            GoProbe::DeferCall | GoProbe::GoroutineHeader | GoProbe::Preprintpanics => {
                return Ok(None);
            }
        };
        // Goroutine ids start at 1; 0 means no user goroutine (e.g. the
        // scheduler found a deadlock on the system stack).
        Ok(Some(kernel_record(
            clock,
            &r.header,
            exe,
            (r.goid != 0).then_some(r.goid),
            body,
        )))
    }

    /// The pcs of a goroutine's stack as the Go runtime's traceback walks
    /// them: autogenerated wrappers dropped (unless they called a panic
    /// function, or `show_wrappers`: the runtime's system-level traceback
    /// of a throw or a fatal signal prints them), and the frame a `sigpanic` was injected above looked up at
    /// its exact pc (the faulting instruction), not as a return address.
    fn go_frame_pcs(
        &self,
        procs: &Procs,
        pid: u32,
        stack: &[u64],
        snapshot: &[u8],
        first_is_exact: bool,
        show_wrappers: bool,
    ) -> (Vec<(u64, PcKind)>, LeafCallers) {
        let kind_at = |i: usize| {
            if i == 0 && first_is_exact {
                PcKind::Exact
            } else {
                PcKind::ReturnAddress
            }
        };
        let binary = procs.go(pid);
        let table = binary.and_then(|b| b.pclntab.as_ref());
        let (Some(binary), Some(table)) = (binary, table) else {
            let pcs = stack
                .iter()
                .enumerate()
                .map(|(i, &pc)| (pc, kind_at(i)))
                .collect();
            return (pcs, Vec::new());
        };
        let bias = procs.exe_load_bias(pid);
        let mut out = Vec::with_capacity(stack.len());
        let mut found = Vec::new();
        let mut callee: Option<golang::pclntab::FuncInfo> = None;
        for (i, &pc) in stack.iter().enumerate() {
            let after_sigpanic = callee
                .as_ref()
                .is_some_and(|c| c.name == "runtime.sigpanic");
            let kind = if after_sigpanic {
                PcKind::Exact
            } else {
                kind_at(i)
            };
            let lookup = pc.wrapping_sub(bias);
            // A pc at a function's first instruction is no return address
            // (the runtime's traceback: `frame.pc > f.entry()` before it
            // looks a frame up at pc-1): Go 1.19's systemstack leaves
            // g.sched.pc at systemstack_switch's entry.
            let kind = if kind == PcKind::ReturnAddress
                && table.find(lookup).is_some_and(|f| f.entry == lookup)
            {
                PcKind::Exact
            } else {
                kind
            };
            let func = table.find(if kind == PcKind::Exact {
                lookup
            } else {
                lookup.wrapping_sub(1)
            });
            if let Some(f) = &func
                && i > 0
                && !show_wrappers
                && table.hides(f, callee.as_ref())
            {
                // The wrapper's own frame goes; what was inlined into it
                // (`go worker(c)`'s worker) stays, as the runtime shows it.
                out.push((pc, PcKind::Wrapper));
                callee = func;
                continue;
            }
            out.push((pc, kind));
            // A fault in a function without a frame pointer: sigpanic's
            // frame links straight to the caller's caller. The runtime
            // pushed the faulting pc where the function's return address
            // sits right above it; take that from the stack snapshot.
            if after_sigpanic
                && let Some(f) = &func
                && !binary.frame_pointer_set(f.entry, pc.wrapping_sub(bias))
                && let Some(ret) =
                    word_after(snapshot, pc).or_else(|| self.leaf_callers.get(&(pid, pc)).copied())
                && stack.get(i + 1) != Some(&ret)
            {
                out.push((ret, PcKind::ReturnAddress));
                found.push((pc, ret));
            }
            callee = func;
        }
        (out, found)
    }

    /// The deferred function that recovered, from the open-coded defer
    /// state captured at runtime.recovery (Go 1.22+): the runtime runs a
    /// frame's deferred calls from the highest slot down, clearing each bit
    /// before the call, so the one that just returned and recovered is the
    /// lowest filled slot above the bits still set. Defers kept in heap
    /// records (in loops, or Go 1.19–1.21) leave no trace: then it is unknown.
    fn recovering_function(
        &mut self,
        procs: &Procs,
        pid: u32,
        r: &GoRecord,
    ) -> Option<crate::symbolize::Frame> {
        let chain = self.panic_defers.remove(&(pid, r.goid));
        let pc = if r.flags & GO_DEFER_BITS_VALID != 0 {
            let bits = (r.flags & 0xff) as u8;
            let code: Vec<u64> = le_words(&r.value).collect();
            let above = if bits == 0 {
                0
            } else {
                8 - bits.leading_zeros() as usize
            };
            (above..8)
                .filter_map(|i| code.get(i).copied())
                .find(|&pc| pc != 0)?
        } else {
            // A deferred call kept in a _defer record: the runtime popped
            // it before the call, so it is the newest record before the
            // current head in the chain seen when the panic started — of
            // those it called: a record an older panic had started was
            // popped as aborted, not called. None of them (or a frame's
            // open-coded record, which has no function): the call was
            // open-coded.
            let popped_record = chain.and_then(|chain| {
                let head = r.defers[0];
                let popped = match chain.iter().position(|d| d.address == head) {
                    Some(k) => k,
                    None if head == 0 || chain.len() < tracer_common::GO_DEFER_RECORDS => {
                        chain.len()
                    }
                    None => return None,
                };
                let called = chain[..popped].iter().rev().find(|d| !d.started)?;
                (called.code != 0).then_some(called.code)
            });
            // Go 1.19–1.21, open-coded defers (no record was popped): the last
            // deferred call runtime.deferCallSave ran for this goroutine.
            let last_call = (r.flags & GO_DEFER_CALL_VALID != 0)
                .then(|| le_words(&r.value).next())
                .flatten();
            // Go 1.22+: where the recovery resumes, right after the
            // deferproc call that registered the deferred function.
            let by_retpc = || {
                let retpc = r.defers[1];
                let bias = procs.exe_load_bias(pid);
                let f = procs
                    .go(pid)?
                    .deferred_function_at(retpc.checked_sub(bias)?)?;
                f.checked_add(bias)
            };
            popped_record.or(last_call).or_else(by_retpc)?
        };
        if pc == 0 {
            return None;
        }
        let image = procs.image(pid)?;
        let (frames, _) = image.symbolize_pcs(&[(pc, PcKind::Exact)]);
        frames.into_iter().last()
    }
}

/// The panics a hit's record read from the goroutine's `_panic` chain
/// ([`GoRecord::chain`], Go 1.22+), oldest first, each as the `Gopanic`
/// record its start would have sent: its value, and the hit's stack with
/// its position in the chain ([`GO_PANIC_FROM_CHAIN`]).
pub fn ended_panics(r: &GoRecord) -> Vec<Box<GoRecord>> {
    let n = (r.chain_len as usize).min(r.chain.len());
    let entries = &r.chain[..n];
    let mut out = Vec::with_capacity(n);
    for (i, e) in entries.iter().enumerate().rev() {
        if e.flags & GO_PANIC_GOEXIT != 0 {
            continue;
        }
        // Newer panics: each one's gopanic frame is above this one's.
        let position = entries[..i]
            .iter()
            .filter(|e| e.flags & GO_PANIC_GOEXIT == 0)
            .count() as u32;
        let mut p = Box::new(*r);
        p.probe = GoProbe::Gopanic as u32;
        p.arg0 = e.arg0;
        p.arg1 = e.arg1;
        p.value = e.value;
        p.string = e.string;
        p.string_len = e.string_len;
        p.string_full_len = e.string_full_len;
        p.flags = (r.flags & GO_STACK_FROM_SCHED)
            | (e.flags & tracer_common::GO_PANIC_PREV_RECOVERED)
            | GO_PANIC_FROM_CHAIN
            | position << GO_PANIC_CHAIN_SHIFT;
        p.defers = [0; 2 * tracer_common::GO_DEFER_RECORDS];
        p.chain_len = 0;
        out.push(p);
    }
    out
}

/// The older panics of a goroutine's `_panic` chain that ended at this hit
/// but did not fit in its record (more than [`GO_PANIC_CHAIN_MAX`] under
/// way at once): how many, and the `lost` record's reason. None when
/// nothing was cut.
pub fn cut_panics(r: &GoRecord) -> Option<(u64, String)> {
    let (n, maybe_more) = r.panics_cut();
    (n > 0).then(|| {
        (
            n as u64,
            format!(
                "pid {} goroutine {}: {}{n} older panic{} under way not read \
                 (a hit reads the newest {GO_PANIC_CHAIN_MAX})",
                r.header.pid,
                r.goid,
                if maybe_more { "at least " } else { "" },
                if n == 1 { "" } else { "s" },
            ),
        )
    })
}

/// A chain panic's frames: the hit's, from the panic's own gopanic frame
/// (the (position + 1)-th `runtime.gopanic` from the top) on. Empty when
/// the walk did not reach it.
fn own_panic_frames(frames: Vec<Frame>, position: u32) -> Vec<Frame> {
    let at = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.function.as_deref() == Some("runtime.gopanic"))
        .nth(position as usize)
        .map(|(k, _)| k);
    match at {
        Some(k) => frames.into_iter().skip(k).collect(),
        None => Vec::new(),
    }
}

/// The process was started with GOTRACEBACK=system or crash: its
/// runtime's tracebacks print every frame, its own and wrappers included.
fn prints_system_frames(procs: &Procs, pid: u32) -> bool {
    procs
        .image(pid)
        .and_then(|i| i.gotraceback.as_deref())
        .is_some_and(|v| golang::traceback_level(v) >= 2)
}

/// A goroutine's stack walked from its saved context ([sched.pc, word at
/// sched.sp, frame-pointer chain]): the word at sp is the caller's return
/// address only when the goroutine stopped before its own frame existed:
/// in a prologue's morestack call (stack overflow), or at a function's
/// entry (Go 1.19's systemstack saves systemstack_switch's entry as pc,
/// the return address into systemstack's caller at sp; Go 1.21+ a pc
/// inside a systemstack_switch that has a frame).
pub(crate) fn sched_stack(procs: &Procs, pid: u32, walked: &[u64]) -> Vec<u64> {
    let bias = procs.exe_load_bias(pid);
    let in_prologue = match (walked.first(), procs.go(pid)) {
        (Some(&pc), Some(go)) => {
            let pc = pc.wrapping_sub(bias);
            go.returns_from_morestack(pc) || go.is_function_entry(pc)
        }
        _ => false,
    };
    walked
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 1 || in_prologue)
        .map(|(_, &pc)| pc)
        .collect()
}

/// (message, value_type) for a gopanic record, from the binary's type
/// metadata and the bytes captured at the probe.
/// A record's panic value and string, completed from the binary where the
/// BPF read came back empty.
struct Capture {
    value: Vec<u8>,
    string: Vec<u8>,
    string_full_len: u64,
}

impl Capture {
    /// The BPF side reads with `bpf_probe_read_user`, which cannot fault a
    /// page in: a string literal or static value on a page of the binary
    /// the process never touched (a `throw("…")` message, often: the
    /// runtime reads it only after the probe) arrives empty. The file
    /// holds what the process would have read there.
    fn of(procs: &Procs, pid: u32, probe: GoProbe, r: &GoRecord) -> Self {
        Self::completed(probe, r, |addr, len| {
            procs.image(pid).and_then(|i| i.read_static(addr, len))
        })
    }

    /// What the record holds, with what it lacks read by `read_static`
    /// (runtime address, length → the file's bytes there).
    fn completed(
        probe: GoProbe,
        r: &GoRecord,
        read_static: impl Fn(u64, usize) -> Option<Vec<u8>>,
    ) -> Self {
        let string_len = (r.string_len as usize).min(r.string.len());
        let mut c = Capture {
            value: r.value.to_vec(),
            string: r.string[..string_len].to_vec(),
            string_full_len: r.string_full_len,
        };
        // Where the string header is: throw/fatal's arguments (ptr, len),
        // or the first two words of the panic value.
        let (ptr, len) = match probe {
            GoProbe::Throw | GoProbe::Fatal => (r.arg0, r.arg1),
            GoProbe::Gopanic | GoProbe::Printpanics => {
                if r.arg1 != 0
                    && c.value.iter().all(|&b| b == 0)
                    && let Some(v) = read_static(r.arg1, c.value.len())
                {
                    c.value.copy_from_slice(&v);
                    let mut words = le_words(&c.value);
                    let header = (words.next().unwrap_or(0), words.next().unwrap_or(0));
                    c.string_full_len = header.1;
                    header
                } else {
                    (le_words(&c.value).next().unwrap_or(0), r.string_full_len)
                }
            }
            _ => return c,
        };
        // As the BPF side bounds it.
        if ptr != 0 && len > 0 && len < (1 << 30) {
            let want = usize::try_from(len).map_or(r.string.len(), |l| l.min(r.string.len()));
            if c.string.len() < want
                && let Some(bytes) = read_static(ptr, want)
            {
                c.string = bytes;
            }
        }
        c
    }
}

fn describe_panic_value(
    procs: &Procs,
    pid: u32,
    r: &GoRecord,
    c: &Capture,
) -> (String, Option<String>) {
    let text = &c.string[..];
    let Some(binary) = procs.go(pid) else {
        return (String::from_utf8_lossy(text).into_owned(), None);
    };
    // panic(nil) (with GODEBUG=panicnil=1, or before Go 1.21): a nil
    // interface, printed "nil".
    if r.arg0 == 0 {
        return ("nil".to_owned(), None);
    }
    let bias = procs.exe_load_bias(pid);
    let type_vaddr = r.arg0.wrapping_sub(bias);
    let type_name = binary.type_name(type_vaddr);
    let type_name_at = |t: u64| binary.type_name(t.wrapping_sub(bias));
    let captured = Captured {
        type_name: type_name.as_deref(),
        kind: binary.type_kind(type_vaddr),
        value: &c.value,
        string: text,
        string_full_len: c.string_full_len,
        type_name_at: &type_name_at,
        go_minor: golang::go_minor(&binary.version),
    };
    let message = golang::value::message(&captured).unwrap_or_else(|| match &type_name {
        Some(t) => format!("({t}) {:#x}", r.arg1),
        None => format!("(?) {:#x}", r.arg1),
    });
    (message, type_name)
}

/// Little-endian 64-bit words of `bytes` (a trailing partial word dropped).
fn le_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes
        .as_chunks::<8>()
        .0
        .iter()
        .map(|w| u64::from_le_bytes(*w))
}

/// (faulting pc, return address) pairs recovered from a stack snapshot.
type LeafCallers = Vec<(u64, u64)>;

/// In a stack snapshot, the word right after the first slot holding `value`.
fn word_after(snapshot: &[u8], value: u64) -> Option<u64> {
    let words: Vec<u64> = le_words(snapshot).collect();
    let i = words.iter().position(|&w| w == value)?;
    words.get(i + 1).copied().filter(|&w| w != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(probe: GoProbe) -> GoRecord {
        // SAFETY: GoRecord is plain data; all-zero is a valid value.
        let mut r: GoRecord = unsafe { std::mem::zeroed() };
        r.probe = probe as u32;
        r
    }

    /// A read-only segment at 0x4c0000: a string header at 0x4c0100
    /// pointing at the literal at 0x4c0200.
    fn binary(addr: u64, len: usize) -> Option<Vec<u8>> {
        let literal = b"all goroutines are asleep - deadlock!";
        match addr {
            0x4c0200 => Some(literal[..len.min(literal.len())].to_vec()),
            0x4c0100 => {
                let mut v = vec![0u8; len];
                v[..8].copy_from_slice(&0x4c0200u64.to_le_bytes());
                v[8..16].copy_from_slice(&(literal.len() as u64).to_le_bytes());
                Some(v)
            }
            _ => None,
        }
    }

    /// The links past a full chain's walk, down to the newest told one or
    /// the chain's end, are what was cut; a full list may go on.
    #[test]
    fn cut_panics_are_counted_down_to_the_told_mark_or_the_end() {
        let mut r = record(GoProbe::Recovery);
        r.header.pid = 7;
        r.goid = 1;
        r.chain_len = 4;
        assert!(cut_panics(&r).is_none(), "nothing beyond");

        r.chain_beyond = [[0x100, 0x10], [0x200, 0x20], [0, 0], [0, 0]];
        let (n, reason) = cut_panics(&r).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            reason,
            "pid 7 goroutine 1: 2 older panics under way not read (a hit reads the newest 4)"
        );

        // The second link is the one told already (address and startSP).
        r.chain_mark = [0x200, 0x20];
        assert_eq!(cut_panics(&r).unwrap().0, 1);
        assert!(
            cut_panics(&r)
                .unwrap()
                .1
                .contains(": 1 older panic under way")
        );
        // The same address with another startSP is another panic.
        r.chain_mark = [0x200, 0x99];
        assert_eq!(cut_panics(&r).unwrap().0, 2);
        // The mark first: nothing cut.
        r.chain_mark = [0x100, 0x10];
        assert!(cut_panics(&r).is_none());

        r.chain_mark = [0, 0];
        r.chain_beyond = [[0x100, 0x10], [0x200, 0x20], [0x300, 0x30], [0x400, 0x40]];
        let (n, reason) = cut_panics(&r).unwrap();
        assert_eq!(n, 4);
        assert!(reason.contains(": at least 4 older panics"), "{reason}");

        // A Goexit's entry is no panic; a Goexit's mark matches its link.
        r.chain_beyond[1][1] |= tracer_common::GO_BEYOND_GOEXIT;
        let (n, reason) = cut_panics(&r).unwrap();
        assert_eq!(n, 3);
        assert!(reason.contains(": at least 3 older panics"), "{reason}");
        r.chain_mark = [0x300, 0x30];
        assert_eq!(cut_panics(&r).unwrap().0, 1);
        r.chain_mark = [0x200, 0x20];
        assert_eq!(cut_panics(&r).unwrap().0, 1);
    }

    #[test]
    fn a_fatal_message_the_bpf_side_could_not_read_comes_from_the_file() {
        let mut r = record(GoProbe::Fatal);
        (r.arg0, r.arg1, r.string_full_len) = (0x4c0200, 37, 37);
        let c = Capture::completed(GoProbe::Fatal, &r, binary);
        assert_eq!(c.string, b"all goroutines are asleep - deadlock!");
        assert_eq!(c.string_full_len, 37);
    }

    #[test]
    fn a_panic_value_the_bpf_side_could_not_read_comes_from_the_file() {
        // panic("literal"): the value's data is a static string header.
        let mut r = record(GoProbe::Gopanic);
        (r.arg0, r.arg1) = (0x4a0000, 0x4c0100);
        let c = Capture::completed(GoProbe::Gopanic, &r, binary);
        assert_eq!(c.string, b"all goroutines are asleep - deadlock!");
        assert_eq!(c.string_full_len, 37);
        assert_eq!(le_words(&c.value).next(), Some(0x4c0200));
    }

    #[test]
    fn what_the_bpf_side_read_is_kept() {
        let mut r = record(GoProbe::Throw);
        (r.arg0, r.arg1, r.string_full_len, r.string_len) = (0x4c0200, 37, 37, 5);
        r.string[..5].copy_from_slice(b"read!");
        let c = Capture::completed(GoProbe::Throw, &r, binary);
        assert_eq!(
            c.string, b"all goroutines are asleep - deadlock!",
            "a short read is completed"
        );
        r.string_len = 37;
        r.string[..37].copy_from_slice(b"concurrent map writes, as read by BPF");
        let c = Capture::completed(GoProbe::Throw, &r, |_, _| panic!("nothing to read"));
        assert_eq!(c.string, b"concurrent map writes, as read by BPF");
        // Heap data (not in the file) stays as captured.
        let mut r = record(GoProbe::Gopanic);
        (r.arg0, r.arg1) = (0x4a0000, 0xc000010000);
        let c = Capture::completed(GoProbe::Gopanic, &r, binary);
        assert!(c.string.is_empty() && c.value.iter().all(|&b| b == 0));
    }
}
