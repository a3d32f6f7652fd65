//! Process work: one thread that owns the kernel probes and keeps each
//! traced process's image — built from what the capture thread took while
//! the process lived, through the one file cache — and places the probes
//! its runtimes need (Go, C++, Rust, dlopen) as soon as its exec arrives.
//! It forwards records to analysis in their order, each process's image
//! ahead of its records.

use std::{collections::HashMap, os::fd::AsRawFd as _, path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use crossbeam_channel::{Receiver, Sender};
use tracer_common::{EXEC_CANDIDATE, EXEC_DROPPED, EventKind, ExecRecord, WatchedFile};

use super::{AttachInfo, Command, Event, FromCapture, Gauges, ProcessStats, capture};
use crate::{
    golang::GoBinary,
    probes::{kernel::KernelProbes, records::KernelRecord},
    procfs::{self, Capture, OpenFile},
    record::{CgroupPaths, Container},
    runtimes::{cxx, go::GoFiles, native, rust},
    selection::{ExecSelect, SelectConfig, Watched},
    symbolize::{FileCache, dev_from_kernel, process::ProcessImage},
};

/// Kernel probes every traced process has, as `attach` records list them.
pub const PROBES: &[&str] = &[
    "raw_tp/signal_deliver",
    "raw_tp/signal_generate",
    "raw_tp/sched_process_exit",
    "raw_tp/sched_process_fork",
    "raw_tp/sched_process_exec",
    "raw_tp/mark_victim",
];

/// How often drop counters are read.
const TICK: std::time::Duration = std::time::Duration::from_millis(50);

struct Tracked {
    image: ProcessImage,
    go: Option<Arc<GoBinary>>,
    /// Go probes looked for (placed, or not a Go program).
    go_done: bool,
    /// Its working directory when last read (relative exec paths).
    cwd: Option<PathBuf>,
    /// The kernel's time of its exec (CLOCK_MONOTONIC ns), if it exec'd.
    exec_ns: Option<u64>,
    /// Why its runtime's probes are missing, if they came too late.
    late: Option<String>,
    /// Its name as the kernel gave it at its fork or exec: /proc may be gone
    /// before the attach record is written (a crash in the first
    /// milliseconds).
    known_comm: Option<String>,
}

pub struct ProcessWork {
    probes: KernelProbes,
    cache: Arc<FileCache>,
    to_analysis: Sender<Event>,
    procs: HashMap<u32, Tracked>,
    go: GoFiles,
    watched: Watched,
    exec_select: Option<ExecSelect>,
    cgroups: CgroupPaths,
    verbose: bool,
    drops: Arc<capture::Drops>,
    drops_seen: [u64; EventKind::ALL.len()],
    kernel_lost_seen: [u64; EventKind::ALL.len()],
    /// Go and Rust panics the kernel side did not tell (rate limits),
    /// reported so far.
    untold_seen: [u64; 2],
    gauges: Arc<Gauges>,
}

impl ProcessWork {
    pub fn new(
        probes: KernelProbes,
        cache: Arc<FileCache>,
        to_analysis: Sender<Event>,
        drops: Arc<capture::Drops>,
        gauges: Arc<Gauges>,
        verbose: bool,
    ) -> Self {
        Self {
            probes,
            cache,
            to_analysis,
            procs: HashMap::new(),
            go: GoFiles::default(),
            watched: Watched::new(),
            exec_select: None,
            cgroups: CgroupPaths::default(),
            verbose,
            drops,
            drops_seen: [0; EventKind::ALL.len()],
            kernel_lost_seen: [0; EventKind::ALL.len()],
            untold_seen: [0; 2],
            gauges,
        }
    }

    pub fn run(mut self, records: Receiver<FromCapture>, commands: Receiver<Command>) {
        let ticker = crossbeam_channel::tick(TICK);
        let mut commands = commands;
        loop {
            crossbeam_channel::select_biased! {
                recv(records) -> msg => match msg {
                    Ok(FromCapture::End) | Err(_) => {
                        self.go.check_layouts(&mut self.probes, self.verbose);
                        self.poll_lost();
                        let stats = ProcessStats {
                            go_probe_hits: self.go.any().then(|| self.probes.go_probe_hits()),
                        };
                        self.send(Event::End(stats));
                        return;
                    }
                    Ok(msg) => self.on_capture(msg),
                },
                recv(commands) -> cmd => match cmd {
                    Ok(cmd) => self.on_command(cmd),
                    // The coordinator is gone; the capture thread's End follows.
                    Err(_) => commands = crossbeam_channel::never(),
                },
                recv(ticker) -> _ => {
                    self.poll_lost();
                    self.go.check_layouts(&mut self.probes, self.verbose);
                }
            }
        }
    }

    fn send(&self, event: Event) {
        // Blocks while analysis is behind: the capture thread goes on
        // draining the kernel meanwhile.
        let _ = self.to_analysis.send(event);
    }

    fn on_capture(&mut self, msg: FromCapture) {
        match msg {
            FromCapture::Record(KernelRecord::Exit(r)) => {
                self.forget(r.header.pid);
                self.send(Event::Record(KernelRecord::Exit(r)));
            }
            FromCapture::Record(KernelRecord::Fork(r)) => {
                let comm = crate::probes::records::comm(&r.header);
                self.on_fork(r.header.pid, r.child_pid, comm);
            }
            FromCapture::Record(rec) => self.send(Event::Record(rec)),
            FromCapture::Exec(r, capture) => self.on_exec(&r, capture.map(|c| *c)),
            FromCapture::Module(m, file) => self.on_module(&m, file),
            FromCapture::Relook(c) => self.on_relook(*c),
            FromCapture::Malformed(err) => self.send(Event::Lost {
                count: 1,
                reason: format!("malformed record: {err}"),
                event: "unknown",
            }),
            FromCapture::End => {}
        }
    }

    /// The process exited (or is no longer traced): its probes go.
    fn forget(&mut self, pid: u32) {
        self.probes.detach_process(pid);
        self.go.release(&mut self.probes, pid);
        self.procs.remove(&pid);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Trace {
                pid,
                follow_forks,
                reply,
            } => {
                let _ = reply.send(self.probes.trace(pid, follow_forks));
            }
            Command::Attach {
                pid,
                reason,
                follow_forks,
                by_exe,
                reply,
            } => {
                let _ = reply.send(self.attach(pid, reason, follow_forks, by_exe));
            }
            Command::Watch {
                path,
                follow_forks,
                reply,
            } => {
                let _ = reply.send(self.watch(&path, follow_forks));
            }
            Command::Apply { config, reply } => {
                let _ = reply.send(self.apply(config));
            }
        }
    }

    /// Starts tracing `pid`: the kernel filter first (so nothing it does
    /// from now on is missed), then its image and probes. `by_exe`: it runs
    /// a watched file (an exec into another file ends its tracing).
    fn attach(
        &mut self,
        pid: u32,
        reason: &'static str,
        follow_forks: bool,
        by_exe: bool,
    ) -> Result<()> {
        if procfs::is_kernel_thread(pid) {
            anyhow::bail!("pid {pid} is a kernel thread: nothing to trace");
        }
        self.probes.trace_as(pid, follow_forks, by_exe)?;
        let capture = match Capture::take(pid) {
            Ok(c) => c,
            Err(err) => {
                self.probes.untrace(pid);
                return Err(err).with_context(|| format!("reading /proc/{pid}"));
            }
        };
        let cwd = capture.cwd.clone();
        let image = ProcessImage::from_capture(capture, &self.cache);
        self.track(pid, image, cwd, None);
        self.placed(pid, None, reason);
        Ok(())
    }

    fn track(
        &mut self,
        pid: u32,
        image: ProcessImage,
        cwd: Option<PathBuf>,
        go: Option<Arc<GoBinary>>,
    ) {
        self.procs.insert(
            pid,
            Tracked {
                image,
                go,
                go_done: false,
                cwd,
                exec_ns: None,
                late: None,
                known_comm: None,
            },
        );
    }

    /// Places `pid`'s runtime probes, then tells analysis its image and
    /// writes its `attach` record.
    fn placed(&mut self, pid: u32, tid: Option<u32>, reason: &'static str) {
        self.place_probes(pid);
        self.send_image(pid);
        let Some(t) = self.procs.get(&pid) else {
            return;
        };
        let mut probes: Vec<String> = PROBES.iter().map(|p| (*p).to_owned()).collect();
        let (runtime, runtime_version, module) = match &t.go {
            Some(go) => {
                probes.extend(
                    go.points
                        .iter()
                        .map(|(_, name, _, _)| format!("uprobe/{name}")),
                );
                ("go", Some(go.version.clone()), go.module.clone())
            }
            None => ("native", None, None),
        };
        probes.extend(self.probes.process_probe_names(pid));
        let late = t.late.clone();
        self.send(Event::Attached(Box::new(AttachInfo {
            pid,
            tid,
            reason,
            late,
            comm: t.known_comm.clone().or_else(|| procfs::comm(pid)),
            runtime,
            runtime_version,
            module,
            probes,
        })));
    }

    fn send_image(&self, pid: u32) {
        if let Some(t) = self.procs.get(&pid) {
            self.send(Event::Image {
                pid,
                image: t.image.clone(),
                go: t.go.clone(),
            });
        }
    }

    /// The probes a process's runtimes need. Its runtime is told from its
    /// file whether or not it still runs; probes are placed while it does.
    /// A failure is reported and the process stays traced at the kernel
    /// level.
    fn place_probes(&mut self, pid: u32) {
        let alive = procfs::comm(pid).is_some();
        let Some(t) = self.procs.get(&pid) else {
            return;
        };
        if !t.go_done {
            let exe = t.image.exe_module();
            let exec_ns = t.exec_ns;
            let (go, late) = match exe {
                Some(exe) => self.place_go(pid, exe.identity, &exe.fd_path(), exec_ns, alive),
                None => (None, None),
            };
            if let Some(t) = self.procs.get_mut(&pid) {
                t.go_done = true;
                t.go = go;
                t.late = late;
            }
        }
        if !alive {
            return;
        }
        let Some(t) = self.procs.get(&pid) else {
            return;
        };
        if t.go.is_none() {
            rust::place_probes(&mut self.probes, pid, &t.image);
        }
        cxx::place_probes(&mut self.probes, pid, &t.image);
        native::place_probes(&mut self.probes, pid, &t.image);
    }

    /// Whether `pid`'s executable (the file `identity`, open at `path`) is
    /// a Go program, and its Go probes placed while it runs. Returns the
    /// binary, and why its probes are missing if it was gone already.
    fn place_go(
        &mut self,
        pid: u32,
        identity: (u64, u64),
        path: &std::path::Path,
        exec_ns: Option<u64>,
        alive: bool,
    ) -> (Option<Arc<GoBinary>>, Option<String>) {
        // Not Go (or a version without a table layout, marked below): a
        // mark from an older view of it goes (its parent's binary, written
        // after its exec had dropped the kernel's).
        if alive
            && !self
                .go
                .mark_early(&mut self.probes, pid, (identity, path), self.verbose)
        {
            self.probes.unmark_go_process(pid);
        }
        let marked = exec_ns.map(us_since);
        let binary = match self.go.binary(identity, path) {
            Ok(Some(b)) => b,
            Ok(None) => return (None, None),
            Err(err) => {
                if alive {
                    log::warn!("pid {pid}: cannot read its Go build: {err:#}");
                }
                return (None, None);
            }
        };
        // Gone already (it died within milliseconds): its Go runtime is
        // still said, with the probes that came too late.
        if !alive {
            let late = exec_ns.map_or_else(
                || "the process had exited before its Go probes could be placed".to_owned(),
                |at| {
                    format!(
                        "the process had exited {} ms after its exec, before its Go probes could be placed",
                        ms_since(at)
                    )
                },
            );
            return (Some(binary), Some(late));
        }
        let watched = self.watched_key(identity);
        match self.go.place(
            &mut self.probes,
            pid,
            (identity, path),
            &binary,
            watched,
            self.verbose,
        ) {
            Ok(()) => {
                if let (Some(at), Some(marked)) = (exec_ns, marked) {
                    log::info!(
                        "pid {pid}: Go program marked {:.1} ms after its exec (a panic it dies of is read at its exit), its probes in place {:.1} ms after",
                        marked as f64 / 1e3,
                        us_since(at) as f64 / 1e3
                    );
                }
                // Now that they are: a layout from the version table is
                // checked against the binary's DWARF.
                self.go.check_layouts(&mut self.probes, self.verbose);
            }
            Err(err) if procfs::comm(pid).is_some() => {
                log::warn!("pid {pid}: Go probes not attached: {err:#}")
            }
            Err(_) => {}
        }
        (Some(binary), None)
    }

    /// The watched file with this identity, as the kernel keys it.
    fn watched_key(&self, identity: (u64, u64)) -> Option<WatchedFile> {
        let key = procfs::kernel_file_key(identity);
        self.watched.contains(&key).then_some(key)
    }

    /// `comm`: the parent's name at the fork, the child's until it execs.
    fn on_fork(&mut self, parent: u32, child: u32, comm: String) {
        // Until it execs, the child runs the parent's image.
        let (image, cwd, go) = match self.procs.get(&parent) {
            Some(p) => (p.image.clone(), p.cwd.clone(), p.go.clone()),
            None => match Capture::take(child) {
                Ok(c) => {
                    let cwd = c.cwd.clone();
                    (ProcessImage::from_capture(c, &self.cache), cwd, None)
                }
                Err(_) => return,
            },
        };
        self.track(child, image, cwd, go);
        if let Some(t) = self.procs.get_mut(&child) {
            t.known_comm = Some(comm).filter(|c| !c.is_empty());
        }
        self.placed(child, None, "fork");
    }

    fn on_exec(&mut self, r: &ExecRecord, capture: Option<Capture>) {
        let pid = r.header.pid;
        if r.flags & EXEC_CANDIDATE != 0 {
            return self.on_exec_candidate(r);
        }
        // The old program's probes are gone with its memory.
        self.probes.detach_process(pid);
        self.go.release(&mut self.probes, pid);
        let old = self.procs.remove(&pid);
        if r.flags & EXEC_DROPPED != 0 {
            // Traced for the file it ran; it runs another one now.
            self.send(Event::Forget { pid });
            if self.verbose {
                log::info!("pid {pid} exec'd a file not watched: no longer traced");
            }
            return;
        }
        // A Go program's probes first, straight from the executable the
        // capture holds: it may panic within milliseconds of its start.
        let early_go = capture.as_ref().and_then(|c| {
            let exe = c.files.first()?;
            let path = PathBuf::from(format!("/proc/self/fd/{}", exe.file.as_raw_fd()));
            let alive = procfs::comm(pid).is_some();
            Some(self.place_go(pid, exe.id.inode(), &path, Some(r.header.ts_ns), alive))
        });
        let (image, cwd) = match capture {
            Some(c) => {
                let cwd = c.cwd.clone();
                (Some(ProcessImage::from_capture(c, &self.cache)), cwd)
            }
            // Gone already (it crashed at once, say): the program's code
            // from the file it exec'd, placed where the kernel said.
            None => {
                let cwd = old.as_ref().and_then(|o| o.cwd.clone());
                (self.image_from_exec(r, cwd.as_deref()), cwd)
            }
        };
        let Some(mut image) = image else {
            return;
        };
        // The kernel's view at the exec completes what /proc did not say
        // (gone, or gone half-way through the reading: the process exiting
        // meanwhile); its namespace pid is the kernel's own.
        let complete = image.container.as_ref().is_some_and(|c| {
            c.cgroup.is_some()
                && c.ns_pid == (r.ns_pid != 0 && r.ns_pid != r.header.pid).then_some(r.ns_pid)
        });
        if !complete {
            let at_exec = self.container_from_exec(r);
            image.container =
                crate::record::merged_container(image.container.take(), at_exec.as_ref());
        }
        self.track(pid, image, cwd, None);
        if let Some(t) = self.procs.get_mut(&pid) {
            t.exec_ns = Some(r.header.ts_ns);
            t.known_comm = Some(crate::probes::records::comm(&r.header)).filter(|c| !c.is_empty());
            if let Some((go, late)) = early_go {
                t.go_done = true;
                t.go = go;
                t.late = late;
            }
        }
        self.placed(pid, Some(r.header.tid), "exec");
    }

    /// The image of a process gone before its maps could be read: the
    /// exec'd file (already open by identity, or found by its path: the
    /// watched one, the exec'd path, relative to the working directory),
    /// checked to be the same file, at the kernel's address.
    fn image_from_exec(
        &mut self,
        r: &ExecRecord,
        cwd: Option<&std::path::Path>,
    ) -> Option<ProcessImage> {
        let n = (r.filename_len as usize).min(r.filename.len());
        let exec_path = String::from_utf8_lossy(&r.filename[..n]).into_owned();
        let (dev, ino) = (dev_from_kernel(r.file[0]), r.file[1]);
        let display = self
            .watched
            .path(&r.file)
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| {
                let p = std::path::Path::new(&exec_path);
                if p.is_absolute() {
                    Some(exec_path.clone())
                } else {
                    cwd.map(|c| c.join(p).to_string_lossy().into_owned())
                }
            })
            .unwrap_or_else(|| exec_path.clone());
        let module = self.cache.by_inode(dev, ino).or_else(|| {
            let candidates = self
                .watched
                .path(&r.file)
                .cloned()
                .into_iter()
                .chain(std::iter::once(PathBuf::from(&display)))
                .chain(std::iter::once(PathBuf::from(&exec_path)));
            candidates.into_iter().find_map(|path| {
                let file = std::fs::File::open(&path).ok()?;
                let id = crate::symbolize::FileId::of(&file).ok()?;
                (id.inode() == (dev, ino))
                    .then(|| self.cache.open(id, file, &display))
                    .flatten()
            })
        })?;
        ProcessImage::from_exec(module, &display, (dev, ino), r.start_code, r.end_code).ok()
    }

    /// Cgroup, container id and namespace pid from an exec record (the
    /// process may be gone from /proc already).
    fn container_from_exec(&mut self, r: &ExecRecord) -> Option<Arc<Container>> {
        let cgroup = self.cgroups.path_of(r.cgroup_id);
        let c = Container {
            container_id: cgroup.as_deref().and_then(crate::record::container_id),
            cgroup,
            ns_pid: (r.ns_pid != 0 && r.ns_pid != r.header.pid).then_some(r.ns_pid),
            // Not in the exec record: from /proc while the process lives.
            memory_cgroup: std::fs::read_to_string(format!("/proc/{}/cgroup", r.header.pid))
                .ok()
                .as_deref()
                .and_then(crate::record::v1_memory_cgroup),
        };
        (c != Container::default()).then(|| Arc::new(c))
    }

    /// An object ld.so loaded (listed at a crash or a dlopen): into the
    /// process's image at once if it is not there yet, so a crash right
    /// after is symbolized even if the process is gone. The file is the
    /// one meant when its dynamic section sits where ld.so says (`l_ld`).
    fn on_module(&mut self, m: &tracer_common::ModuleRecord, file: Option<OpenFile>) {
        let Some(f) = file else {
            return;
        };
        let pid = m.header.pid;
        let Some(t) = self.procs.get(&pid) else {
            return;
        };
        if t.image.has_path(&f.path) {
            return;
        }
        let path = f.path.clone();
        let Some(module) = self.cache.open(f.id, f.file, &path) else {
            return;
        };
        if module
            .dynamic_vaddr()
            .is_some_and(|d| m.l_addr.wrapping_add(d) != m.l_ld)
        {
            log::info!("pid {pid}: {path} is not the file ld.so loaded there");
            return;
        }
        let added = self
            .procs
            .get_mut(&pid)
            .is_some_and(|t| t.image.add_library(&path, module, m.l_addr));
        if !added {
            return;
        }
        if m.reason == tracer_common::MODULES_AT_DLOPEN {
            self.place_probes(pid);
        }
        self.send_image(pid);
    }

    /// A second look after an exec: ld.so has mapped the libraries.
    fn on_relook(&mut self, c: Capture) {
        let pid = c.pid;
        let Some(old) = self.procs.get(&pid) else {
            return; // exited or dropped meanwhile
        };
        let mut image = ProcessImage::from_capture(c, &self.cache);
        // Not a worse view: a process exiting meanwhile keeps its maps a
        // moment longer than its files.
        let (mappings, modules) = (image.mapping_count(), image.module_count());
        if mappings < old.image.mapping_count() || modules < old.image.module_count() {
            return;
        }
        let unchanged =
            mappings == old.image.mapping_count() && modules == old.image.module_count();
        // A reading cut short by the exit does not lose what an earlier
        // one said.
        image.container =
            crate::record::merged_container(image.container.take(), old.image.container.as_ref());
        if let Some(t) = self.procs.get_mut(&pid) {
            t.image = image;
        }
        if !unchanged {
            self.place_probes(pid);
            self.send_image(pid);
        }
    }

    /// An untraced process exec'd: the daemon's selectors decide whether
    /// to trace it (and, through its file, every later process of it).
    fn on_exec_candidate(&mut self, r: &ExecRecord) {
        let pid = r.header.pid;
        let Some(select) = self.exec_select.as_ref() else {
            return;
        };
        // Where it runs (per process, not per file: never remembered).
        if select.by_place() {
            let cgroup = self.cgroups.path_of(r.cgroup_id);
            if let Some(path) = cgroup.as_deref()
                && self
                    .exec_select
                    .as_ref()
                    .is_some_and(|s| s.matches_place(path))
            {
                // Not by file: this program elsewhere is someone else's.
                if self.attach(pid, "exec", true, false).is_err() {
                    self.probes.untrace(pid);
                }
                // Its cgroup as the kernel saw it at the exec (what selected
                // it) and its namespace pid, where /proc did not say.
                let known = self.container_from_exec(r);
                if let Some(t) = self.procs.get_mut(&pid) {
                    let merged =
                        crate::record::merged_container(t.image.container.clone(), known.as_ref());
                    if merged != t.image.container {
                        t.image.container = merged;
                        self.send_image(pid);
                    }
                }
                return;
            }
        }
        let Some(select) = self.exec_select.as_mut() else {
            return;
        };
        if !select.go && !select.all {
            return;
        }
        let chosen = match select.decided.get(&r.file) {
            Some(&d) => d,
            None if select.all => {
                select.decided.insert(r.file, true);
                true
            }
            None => {
                let exe = PathBuf::from(format!("/proc/{pid}/exe"));
                let go = std::fs::File::open(&exe)
                    .ok()
                    .and_then(|f| {
                        let id = crate::symbolize::FileId::of(&f).ok()?;
                        let display = std::fs::read_link(&exe)
                            .ok()?
                            .to_string_lossy()
                            .into_owned();
                        self.cache.open(id, f, &display)
                    })
                    .map(|m| self.go.binary(m.identity, &m.fd_path()));
                match go {
                    Some(Ok(go)) => {
                        let is_go = go.is_some();
                        if let Some(select) = self.exec_select.as_mut() {
                            select.decided.insert(r.file, is_go);
                        }
                        is_go
                    }
                    // Gone before its file could be read: undecided (not
                    // remembered as "not Go" for the file's next processes).
                    _ => false,
                }
            }
        };
        if !chosen {
            return;
        }
        // Trace it now (it runs already) and its file's next processes
        // from their exec on.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .unwrap_or_else(|_| PathBuf::from(format!("/proc/{pid}/exe")));
        if !self.watched.contains(&r.file)
            && let Err(err) = self.watch(&PathBuf::from(format!("/proc/{pid}/exe")), true)
            && self.verbose
        {
            log::info!("{}: {err:#}", exe.display());
        }
        if self.watched.contains(&r.file) {
            self.watched.insert(r.file, exe);
        }
        if self.attach(pid, "exec", true, true).is_err() {
            // Gone already: nothing to trace.
            self.probes.untrace(pid);
        }
    }

    /// Traces every process that runs the file at `path` from its exec on
    /// (and, with `follow_forks`, the processes they fork), and returns the
    /// pids running it now (to attach to them). Go probes for it are placed
    /// once, for all its processes.
    fn watch(&mut self, path: &std::path::Path, follow_forks: bool) -> Result<Vec<u32>> {
        if let Ok(key) = crate::procfs::file_key(path)
            && self.watched.contains(&key)
        {
            return Ok(Vec::new());
        }
        if self.watched.full() {
            anyhow::bail!(
                "not watched: the limit of {} watched files is reached",
                self.watched.max
            );
        }
        let key = self.probes.watch_file(path, follow_forks)?;
        self.watched.insert(key, path.to_path_buf());
        self.prepare_watched(key, path);
        Ok(procfs::processes_running(key))
    }

    /// Ahead of the processes of a watched file: its binary, its
    /// interpreter and the libraries it needs opened (their DWARF parsed
    /// in idle time, so the first crash is symbolized warm), and for a Go
    /// program its probes placed on the file.
    fn prepare_watched(&mut self, key: WatchedFile, path: &std::path::Path) {
        let display = path.to_string_lossy().into_owned();
        let Some(module) = self.cache.open_path(path, &display) else {
            return;
        };
        for lib in module.needed_paths(path) {
            let _ = self.cache.open_path(&lib, &lib.to_string_lossy());
        }
        match self.go.binary(module.identity, &module.fd_path()) {
            Ok(Some(binary)) => {
                if let Err(err) = self.go.place_file(
                    &mut self.probes,
                    key,
                    (module.identity, &module.fd_path()),
                    &binary,
                    self.verbose,
                ) {
                    log::warn!("{display}: Go probes not attached: {err:#}");
                }
            }
            Ok(None) => {}
            Err(err) => log::warn!("{display}: cannot read its Go build: {err:#}"),
        }
    }

    /// Stops tracing new processes of a watched file (running ones stay
    /// traced until they exit).
    fn unwatch(&mut self, key: WatchedFile) {
        self.probes.unwatch_file(key);
        self.watched.remove(&key);
        self.go.unwatch(
            &mut self.probes,
            key,
            Some((dev_from_kernel(key[0]), key[1])),
        );
    }

    /// The daemon's config: watches the executables named now (and attaches
    /// to their running processes), forgets files no longer named, sets the
    /// exec-time selectors and limits. Returns the number of files watched.
    fn apply(&mut self, config: SelectConfig) -> Result<usize> {
        self.watched.max = config.max_watched_files;
        self.send(Event::RateLimit(config.max_records_per_sec));
        self.send(Event::CrashLoop(config.crashloop));
        let wanted = crate::selection::keys_of(&config.executables);
        // Files picked at exec by other selectors are kept while those are.
        for (key, _) in self.watched.list() {
            if !wanted.contains(&key) && !config.keep_others {
                self.unwatch(key);
            }
        }
        for exe in &config.executables {
            match self.watch(exe, true) {
                Ok(running) => {
                    for pid in running {
                        let _ = self.attach(pid, "attach", true, true);
                    }
                }
                Err(err) => log::warn!("{}: {err:#}", exe.display()),
            }
        }
        // Comm is matched by the kernel at exec (nothing runs untraced); Go
        // programs, cgroups, containers and "all" are recognised here from
        // the exec record.
        self.probes.watch_comms(&config.comms)?;
        let select_at_exec = config.exec.is_some();
        // Decisions already made stay made across reloads.
        let decided = self
            .exec_select
            .take()
            .map(|s| s.decided)
            .unwrap_or_default();
        self.exec_select = config.exec.map(|mut s| {
            s.decided = decided;
            s
        });
        self.probes.send_all_execs(select_at_exec)?;
        Ok(self.watched.len())
    }

    /// Reports records dropped since the last call: by the kernel (ring
    /// buffer full) and by the capture thread (pipeline full).
    fn poll_lost(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let event = lost_kind_name(kind);
            if let Ok(total) = self.probes.lost_count(kind) {
                report_lost(
                    &self.to_analysis,
                    &mut self.kernel_lost_seen[i],
                    total,
                    || "ring buffer full".to_owned(),
                    event,
                );
            }
            let dropped = self.drops.by_kind[i].load(Relaxed);
            report_lost(
                &self.to_analysis,
                &mut self.drops_seen[i],
                dropped,
                || "capture queue full (analysis behind)".to_owned(),
                event,
            );
        }
        let limits = [
            (
                tracer_common::GO_PANICS_RATE_LIMITED,
                tracer_common::GO_PANICS_PER_SEC,
                "panic",
            ),
            (
                tracer_common::RUST_PANICS_RATE_LIMITED,
                tracer_common::RUST_PANICS_PER_SEC,
                "rust_panic",
            ),
        ];
        for (i, (slot, per_sec, event)) in limits.into_iter().enumerate() {
            if let Ok(total) = self.probes.lost_slot(slot) {
                report_lost(
                    &self.to_analysis,
                    &mut self.untold_seen[i],
                    total,
                    || {
                        format!(
                            "rate limit: at most {per_sec} panics a second per panic site are told"
                        )
                    },
                    event,
                );
            }
        }
        self.gauges
            .watched_files
            .store(self.watched.len() as u64, Relaxed);
    }
}

/// A `lost` record for what a counter gained since `seen` (then `seen`
/// catches up).
fn report_lost(
    to_analysis: &Sender<Event>,
    seen: &mut u64,
    total: u64,
    reason: impl FnOnce() -> String,
    event: &'static str,
) {
    if total > *seen {
        let _ = to_analysis.send(Event::Lost {
            count: total - *seen,
            reason: reason(),
            event,
        });
        *seen = total;
    }
}

/// Milliseconds from a kernel timestamp (CLOCK_MONOTONIC ns) to now.
fn ms_since(ts_ns: u64) -> u64 {
    us_since(ts_ns) / 1_000
}

/// Microseconds from a kernel timestamp (CLOCK_MONOTONIC ns) to now.
fn us_since(ts_ns: u64) -> u64 {
    crate::record::monotonic_ns().saturating_sub(ts_ns) / 1_000
}

/// What a dropped record would have become (the `event` field of `lost`).
fn lost_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::SignalDeliver => "signal",
        EventKind::SignalGenerate => "signal_sender",
        EventKind::Exit => "exit",
        EventKind::Fork => "fork",
        EventKind::Exec => "exec",
        EventKind::Go => "go",
        EventKind::Goroutine => "goroutine",
        EventKind::Oom => "oom",
        EventKind::Stack => "stack",
        EventKind::Module => "module",
        EventKind::Cxx => "exception",
        EventKind::RustPanic => "rust_panic",
        EventKind::RustPanicMessage => "rust_panic_message",
    }
}
