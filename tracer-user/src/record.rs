//! The NDJSON records of schema `crashtrace.v1` (../shared/CONTRACT.md).
//! Human output renders the same values, so both formats say the same thing.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "crashtrace.v1";

/// A word of one of crashtrace's closed vocabularies ("go", "handler",
/// "panic" …). An alias, not `&'static str` spelled out, so that serde's
/// derive does not take it for a string borrowed from the input: these
/// are read back through [`vocabulary::word`].
pub type Word = &'static str;

/// One frame as the contract's NDJSON spells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tail_call: bool,
    /// Extension: where `pc` is in `module`'s file (hex), so a frame can be
    /// symbolized later, elsewhere (`crashtrace report`), without knowing
    /// where the module was loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_offset: Option<String>,
}

impl Frame {
    /// `main.parse (parse.go:42)`, as the one-line verdicts name a frame.
    pub fn describe(&self) -> String {
        let name = self.function.as_deref().unwrap_or("??");
        match (&self.file, self.line) {
            (Some(file), Some(line)) => {
                let base = file.rsplit('/').next().unwrap_or(file);
                format!("{name} ({base}:{line})")
            }
            _ => name.to_owned(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub ts_ns: u64,
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub comm: Option<String>,
    pub exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goid: Option<u64>,
    /// Extension: where the process lives (cgroup, container, its pid in
    /// its own pid namespace).
    #[serde(flatten)]
    pub container: Option<std::sync::Arc<Container>>,
    #[serde(flatten)]
    pub body: Body,
}

/// Extension fields on every record of a process: `cgroup` (its cgroup v2
/// path), `container_id` (the 64-hex id a container runtime put in that
/// path), `ns_pid` (its pid inside its own pid namespace, when that differs
/// from `pid`, the host's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_pid: Option<u32>,
    /// Extension: its memory cgroup, where the memory controller is on a
    /// cgroup v1 hierarchy (hybrid hosts: `cgroup` is then the v2 path,
    /// often "/", and says nothing of the memory limit that applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_cgroup: Option<String>,
}

/// The memory controller's v1 cgroup in /proc/PID/cgroup's text
/// ("4:memory:/app"; none when memory is on cgroup v2).
pub fn v1_memory_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_owned())
    })
}

impl Container {
    /// Read from /proc while the process lives.
    pub fn of_process(pid: u32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
        let memory_cgroup = text.as_deref().and_then(v1_memory_cgroup);
        let cgroup = text.as_deref().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(str::to_owned)
        });
        let ns_pid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|text| {
                let line = text.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
                line.split_whitespace().last()?.parse::<u32>().ok()
            })
            .filter(|&p| p != pid);
        let container_id = cgroup.as_deref().and_then(container_id);
        let c = Self {
            cgroup,
            container_id,
            ns_pid,
            memory_cgroup,
        };
        (c != Self::default()).then_some(c)
    }

    /// What `self` (a reading of /proc) says, completed by `earlier` (the
    /// kernel's view at the exec, or a previous reading): /proc's files are
    /// read one after another, and a process exiting in between leaves a
    /// reading with its cgroup but without its namespace pid. A process's
    /// pid namespace never changes, so an earlier `ns_pid` stands.
    pub fn completed_by(self, earlier: &Container) -> Container {
        Container {
            container_id: self.container_id.or_else(|| earlier.container_id.clone()),
            cgroup: self.cgroup.or_else(|| earlier.cgroup.clone()),
            ns_pid: earlier.ns_pid.or(self.ns_pid),
            memory_cgroup: self.memory_cgroup.or_else(|| earlier.memory_cgroup.clone()),
        }
    }
}

/// `now` (a reading of /proc) completed by `earlier` where it lacks a field
/// (see [`Container::completed_by`]).
pub fn merged_container(
    now: Option<std::sync::Arc<Container>>,
    earlier: Option<&std::sync::Arc<Container>>,
) -> Option<std::sync::Arc<Container>> {
    match (now, earlier) {
        (Some(now), Some(earlier)) => {
            let merged = (*now).clone().completed_by(earlier);
            Some(if merged == *now {
                now
            } else {
                std::sync::Arc::new(merged)
            })
        }
        (now, earlier) => now.or_else(|| earlier.cloned()),
    }
}

#[cfg(test)]
mod container_tests {
    use super::{Container, merged_container, v1_memory_cgroup};
    use std::sync::Arc;

    #[test]
    fn a_reading_cut_short_by_an_exit_keeps_what_the_exec_said() {
        // /proc gave the cgroup, then the process was reaped before its
        // status (NSpid) could be read.
        let partial = Arc::new(Container {
            cgroup: Some("/user.slice".into()),
            ..Container::default()
        });
        let at_exec = Arc::new(Container {
            cgroup: Some("/user.slice".into()),
            ns_pid: Some(1),
            ..Container::default()
        });
        let merged = merged_container(Some(partial), Some(&at_exec)).unwrap();
        assert_eq!(merged.ns_pid, Some(1));
        assert_eq!(merged.cgroup.as_deref(), Some("/user.slice"));
        // A later, moved cgroup wins; the namespace pid cannot change.
        let moved = Arc::new(Container {
            cgroup: Some("/app".into()),
            ns_pid: Some(7),
            ..Container::default()
        });
        let merged = merged_container(Some(moved), Some(&at_exec)).unwrap();
        assert_eq!(
            (merged.cgroup.as_deref(), merged.ns_pid),
            (Some("/app"), Some(1))
        );
        // Nothing read now: the earlier view; nothing earlier: the reading.
        assert_eq!(
            merged_container(None, Some(&at_exec)),
            Some(at_exec.clone())
        );
        assert_eq!(merged_container(Some(at_exec.clone()), None), Some(at_exec));
    }

    #[test]
    fn memory_cgroup_on_hybrid_hosts_only() {
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/8efe\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            v1_memory_cgroup(hybrid).as_deref(),
            Some("/process_api/8efe")
        );
        assert_eq!(
            v1_memory_cgroup("5:cpuset,memory:/a/b\n").as_deref(),
            Some("/a/b")
        );
        // Pure cgroup v2: `cgroup` already names it.
        assert_eq!(v1_memory_cgroup("0::/system.slice/app.service\n"), None);
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
        for path in [
            format!("/system.slice/docker-{id}.scope"),
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{id}.scope"
            ),
            format!("/machine.slice/libpod-{id}.scope/container"),
            format!("/kubepods/besteffort/pod0b7c/{id}"),
        ] {
            assert_eq!(super::container_id(&path).as_deref(), Some(id), "{path}");
        }
        assert_eq!(
            super::container_id("/user.slice/user-0.slice/session-3.scope"),
            None
        );
    }
}

/// Cgroup v2 ids (what the kernel reports for a task: the inode number of
/// its cgroup's directory) → paths, by walking the cgroup2 mount; walked again
/// on a miss (a new cgroup), at most every 100 ms.
#[derive(Default)]
pub struct CgroupPaths {
    paths: std::collections::HashMap<u64, String>,
    walked: Option<std::time::Instant>,
    /// The memory controller's hierarchy rather than cgroup v2's.
    memory: bool,
}

impl CgroupPaths {
    /// Ids of the memory controller's hierarchy: its cgroup v1 mount on
    /// hybrid hosts (/sys/fs/cgroup/memory), else cgroup v2's.
    pub fn memory() -> Self {
        Self {
            memory: true,
            ..Self::default()
        }
    }

    /// Where cgroup v2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified
    /// on hosts in the hybrid v1/v2 layout; for the memory hierarchy, a
    /// cgroup v1 mount with the memory controller if there is one.
    fn root(&self) -> Option<String> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let mount = |want_v1_memory: bool| {
            mounts.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                let (_, dir, kind, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
                let found = if want_v1_memory {
                    kind == "cgroup" && options.split(',').any(|o| o == "memory")
                } else {
                    kind == "cgroup2"
                };
                found.then(|| dir.to_owned())
            })
        };
        if self.memory {
            mount(true).or_else(|| mount(false))
        } else {
            mount(false)
        }
    }

    pub fn path_of(&mut self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        if self
            .walked
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(100))
        {
            return None;
        }
        self.walked = Some(std::time::Instant::now());
        self.paths.clear();
        let root = self.root()?;
        let mut stack = vec![std::path::PathBuf::from(&root)];
        while let Some(dir) = stack.pop() {
            use std::os::unix::fs::MetadataExt as _;
            if let Ok(meta) = std::fs::metadata(&dir) {
                let rel = dir
                    .strip_prefix(&root)
                    .map(|r| format!("/{}", r.display()))
                    .unwrap_or_else(|_| "/".into());
                self.paths.insert(meta.ino(), rel);
            }
            if self.paths.len() > 100_000 {
                break;
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                stack.extend(
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        self.paths.get(&id).cloned()
    }
}

/// The container id in a cgroup path: the last 64-hex-digit run (docker-
/// <id>.scope, cri-containerd-<id>.scope, libpod-<id>.scope, …/<id>).
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup
        .split(|c: char| !c.is_ascii_hexdigit())
        .rfind(|run| run.len() == 64)
        .map(str::to_owned)
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Body {
    Attach(Attach),
    Signal(Box<SignalEvent>),
    Exit {
        exit: ExitStatus,
    },
    Panic(GoPanic),
    Recover(GoRecover),
    Fatal(GoFatal),
    /// Extension: the Go runtime turns a fault into a panic (runtime.sigpanic).
    Sigpanic(GoSigpanic),
    /// Extension: a goroutine called runtime.Goexit.
    Goexit(GoGoexit),
    /// Extension: the goroutines a dying Go program printed (a fatal
    /// error's or SIGQUIT's goroutine dump), identical stacks grouped.
    Goroutines(GoGoroutines),
    /// Extension: the kernel's OOM killer chose this process.
    Oom(OomKill),
    /// Extension (daemon): a program keeps dying.
    CrashLoop(crate::crashloop::CrashLoop),
    /// A C++ exception is thrown (or a Rust panic starts).
    Exception(Exception),
    Incident(Box<Incident>),
    Lost {
        count: u64,
        reason: String,
        /// Extension: what the dropped records were ("signal", "exit",
        /// "signal_sender" …).
        event: &'static str,
    },
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Attach(_) => "attach",
            Body::Signal(_) => "signal",
            Body::Exit { .. } => "exit",
            Body::Panic(_) => "panic",
            Body::Recover(_) => "recover",
            Body::Fatal(_) => "fatal",
            Body::Sigpanic(_) => "sigpanic",
            Body::Goexit(_) => "goexit",
            Body::Goroutines(_) => "goroutines",
            Body::Oom(_) => "oom",
            Body::CrashLoop(_) => "crashloop",
            Body::Exception(_) => "exception",
            Body::Incident(_) => "incident",
            Body::Lost { .. } => "lost",
        }
    }

    /// The record's own stack (`frames`); empty for records without one.
    pub fn frames(&self) -> &[Frame] {
        match self {
            Body::Signal(s) => &s.frames,
            Body::Panic(p) => &p.frames,
            Body::Recover(r) => &r.frames,
            Body::Fatal(f) => &f.frames,
            Body::Sigpanic(s) => &s.frames,
            Body::Goexit(g) => &g.frames,
            Body::Exception(e) => &e.frames,
            Body::Incident(inc) => &inc.frames,
            Body::Attach(_)
            | Body::Exit { .. }
            | Body::Lost { .. }
            | Body::Goroutines(_)
            | Body::Oom(_)
            | Body::CrashLoop(_) => &[],
        }
    }

    /// The signal a signal record is about, or the fault a sigpanic turned
    /// into a panic.
    pub fn signal(&self) -> Option<&SignalInfo> {
        match self {
            Body::Signal(s) => Some(&s.signal),
            Body::Sigpanic(s) => Some(&s.signal),
            _ => None,
        }
    }

    /// How the process ended, on an exit record or an incident that saw it.
    pub fn exit(&self) -> Option<ExitStatus> {
        match self {
            Body::Exit { exit } => Some(*exit),
            Body::Incident(inc) => inc.exit,
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attach {
    #[serde(deserialize_with = "vocabulary::word")]
    pub runtime: Word,
    pub runtime_version: Option<String>,
    /// Extension: the Go main module path from the build info.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(deserialize_with = "vocabulary::word")]
    pub debuginfo: Word,
    pub probes: Vec<String>,
    /// Extension: why this process is traced ("run", "attach", "fork", "exec").
    #[serde(deserialize_with = "vocabulary::word")]
    pub reason: Word,
    /// Extension: the runtime's probes came too late (the process had died
    /// within milliseconds of its exec), and why: its crash is told from
    /// the kernel's records only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes_late: Option<String>,
    /// Extension (Go): GOTRACEBACK as the process was started with it,
    /// when set. At "system" or "crash" (level 2 and up) the runtime's
    /// tracebacks print its own frames too, and so does the human view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gotraceback: Option<String>,
}

/// A Go panic starts (runtime.gopanic).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoPanic {
    /// The value as Go prints it; for a type whose Error()/String() method
    /// would have to run, the type name in parentheses.
    pub message: String,
    pub value_type: Option<String>,
    pub frames: Vec<Frame>,
    /// Extension: the goroutine's previous panic had been recovered, and
    /// this one comes from the deferred function that recovered it (log
    /// and re-panic): the previous panic's story ends there, recovered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_recovered: bool,
}

/// A Go panic was recovered (runtime.recovery ran for this goroutine).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoRecover {
    pub recovered_by: Option<Frame>,
    pub frames: Vec<Frame>,
}

/// An unrecoverable Go runtime error (runtime.throw / runtime.fatal).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoFatal {
    pub message: String,
    /// Extension: what the runtime was doing: "throw" or "fatal" (a fatal
    /// error, printed `fatal error: MESSAGE`), or "panic" (printing an
    /// unrecovered panic: `panic: MESSAGE`, once per panic in the chain).
    #[serde(deserialize_with = "vocabulary::word")]
    pub source: Word,
    /// Extension, for source "panic": the runtime prints ` [recovered]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
    pub frames: Vec<Frame>,
    /// Extension: the probe ran on the system stack (g0/gsignal); `frames`
    /// are that stack's, `goid` the user goroutine's.
    #[serde(default)]
    pub on_system_stack: bool,
}

/// Extension (type "sigpanic"): the Go runtime's signal handler turned a
/// fault into a panic on this goroutine; the panic record follows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoSigpanic {
    /// The fault as the runtime saw it (g.sig, g.sigcode0, g.sigcode1):
    /// number, name, code and address; never sender fields.
    pub signal: SignalInfo,
    /// Extension: the faulting instruction (g.sigpc), hex.
    pub fault_pc: String,
    /// Extension: the fault came on the system stack (C code of a cgo
    /// call, on Go 1.19): no panic follows, the runtime throws
    /// "unexpected signal during runtime execution".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_system_stack: bool,
    /// The faulting goroutine's frames, the faulting function first.
    pub frames: Vec<Frame>,
}

/// Extension (type "goexit"): a goroutine called runtime.Goexit, which runs
/// its deferred calls and ends it. On the main goroutine it leads to the
/// runtime's "no goroutines (main called runtime.Goexit) - deadlock!".
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoGoexit {
    pub frames: Vec<Frame>,
}

/// Extension (type "oom", and the cause of an OOM kill's incident): the
/// kernel's OOM killer chose this process (`oom:mark_victim`), read at that
/// moment: which memory ran out, how full it was, who asked for more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    /// "cgroup": a memory cgroup reached its limit (the kernel's "Memory
    /// cgroup out of memory"); "global": the system ran out.
    #[serde(deserialize_with = "vocabulary::word")]
    pub scope: Word,
    /// The memory cgroup at its limit (scope "cgroup"), as a path in the
    /// memory controller's hierarchy (v1 or v2).
    pub memcg: Option<String>,
    /// That cgroup's charged memory and limit, in bytes, at the kill.
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// The victim's own memory cgroup (the one at its limit, or below it).
    pub victim_memcg: Option<String>,
    /// The victim's resident memory as the kernel's OOM report counts it.
    pub rss_bytes: u64,
    pub anon_rss_bytes: u64,
    pub file_rss_bytes: u64,
    pub shmem_rss_bytes: u64,
    /// The task whose allocation (or charge) the kernel could not meet: it
    /// ran the OOM killer, and may be another process than the victim.
    pub trigger_pid: u32,
    pub trigger_tid: u32,
    pub trigger_comm: Option<String>,
}

impl OomKill {
    /// "out of memory (memcg /x: 50.0 MiB limit)" / "out of memory (system)".
    pub fn message(&self) -> String {
        match (&self.memcg, self.limit_bytes) {
            (Some(memcg), Some(limit)) if self.scope == "cgroup" => {
                format!("out of memory (memcg {memcg}: {} limit)", mib(limit))
            }
            _ => "out of memory (system)".to_owned(),
        }
    }
}

/// Bytes as "50.0 MiB".
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Extension (type "goroutines"): the goroutine dump of a Go program that
/// dies of a fatal error (`fatal error: …`, every goroutine printed), a
/// fatal panic under GOTRACEBACK=all, or a signal its runtime dumps
/// goroutines for (SIGQUIT, SIGABRT …), read as the runtime printed each
/// goroutine. Written just before the process's `exit` record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoGoroutines {
    /// Goroutines the runtime printed.
    pub printed: u64,
    /// Of those, the ones not recorded here: past crashtrace's bound
    /// (1000 per dump) or lost in a full ring buffer.
    pub left_out: u64,
    /// Which frames the runtime printed, in GOTRACEBACK's words: "all"
    /// (a fatal error of the program's own: runtime frames hidden) or
    /// "system" (a runtime throw or a fatal signal such as SIGQUIT: every
    /// frame, wrappers included). `frames` below are what it walked.
    #[serde(deserialize_with = "vocabulary::word")]
    pub traceback: Word,
    /// Goroutines with the same status, stack and creator, in the order
    /// the runtime printed their first.
    pub groups: Vec<GoroutineGroup>,
}

/// Goroutines that look the same in the runtime's dump (as panicparse
/// groups them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GoroutineGroup {
    pub count: u64,
    pub goids: Vec<u64>,
    /// As the runtime's header prints it: "chan receive", "select",
    /// "running", "semacquire"…
    pub status: String,
    /// How long the longest-waiting of them has waited, in whole minutes,
    /// where the runtime knows (it prints it from 1 minute on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked_to_thread: bool,
    /// The `go` statement that started them (none for goroutine 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<CreatedBy>,
    /// Innermost first, runtime frames included (the runtime's dump hides
    /// them unless GOTRACEBACK=system). Empty for a goroutine running on
    /// another thread (the runtime prints no stack for it either).
    pub frames: Vec<Frame>,
}

/// Where a goroutine was started: `created by F in goroutine N` and the
/// `go` statement's file:line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CreatedBy {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The goroutine that ran the `go` statement (Go 1.21+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goid: Option<u64>,
}

/// `exception` (CONTRACT.md): a C++ throw.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Exception {
    #[serde(deserialize_with = "vocabulary::word")]
    pub language: Word,
    /// `what()` where it can be read without calling code
    /// (`std::runtime_error`, `std::logic_error` and their subclasses);
    /// null otherwise, and `message_unavailable` says why.
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_unavailable: Option<String>,
    /// The thrown type, demangled ("std::runtime_error").
    pub value_type: Option<String>,
    pub location: Option<String>,
    pub frames: Vec<Frame>,
    /// Extension: the unwinder stopped before the outermost frame.
    #[serde(default)]
    pub frames_truncated: bool,
    /// Extension: why the stack is cut short ("the end of the 32 KiB stack
    /// copy", "no unwind information for 0x…", "the 128-frame limit" …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_by: Option<String>,
    /// Extension: throws (or Rust panics) from the same site not recorded
    /// since the last record from it (at most 5 throws, 100 Rust panics a
    /// second per site are kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u32,
    /// Extension, Rust: the thread's name as Rust's panic message says it
    /// ("main" for the main thread, whose comm is the program's name;
    /// "<unnamed>" for a spawned thread without a name, which keeps its
    /// parent's comm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_name: Option<String>,
    /// Extension, C++: this throw repeats an earlier one, by
    /// "std::rethrow_exception" (what `std::future::get` and
    /// `std::exception_ptr` users call) or "throw;" (`__cxa_rethrow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rethrown_by: Option<String>,
    /// Extension, C++: the thread whose throw a rethrow repeats, when that
    /// throw was recorded (the story then starts with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thrown_by_tid: Option<u32>,
    /// The thrown object's address: a rethrow names the same object as its
    /// throw. Not part of the record (an address means nothing later).
    #[serde(skip)]
    pub object: u64,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignalEvent {
    pub signal: SignalInfo,
    pub registers: Registers,
    pub frames: Vec<Frame>,
    /// Extension: the unwinder stopped before the outermost frame (depth
    /// limit, or a frame-pointer chain that left executable memory).
    #[serde(default)]
    pub frames_truncated: bool,
    /// Extension: why the stack is cut short ("the end of the 32 KiB stack
    /// copy", "no unwind information for 0x…", "the 128-frame limit" …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_by: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignalInfo {
    pub number: i32,
    pub name: String,
    /// si_code symbol (SEGV_MAPERR, SI_USER …); null when the kernel gave no siginfo.
    pub code: Option<String>,
    /// Fault address (faults only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Sent signals only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_comm: Option<String>,
    /// Extension: the disposition at delivery: "default", "ignored" or "handler".
    #[serde(deserialize_with = "vocabulary::word")]
    pub disposition: Word,
}

impl SignalInfo {
    pub fn sent_by_other_process(&self, pid: Option<u32>) -> bool {
        self.sender_pid.is_some_and(|s| Some(s) != pid)
    }
}

/// A machine word the contract writes as a hex string (`"0x7f3a…"`):
/// kept as the number, spelled only when serialized (a signal record has
/// 18 of them; formatting each into a `String` up front was a fifth of the
/// analysis thread's time in a signal storm).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hex(pub u64);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| serde::de::Error::custom(format!("not a hex word: {text:?}")))?;
        u64::from_str_radix(digits, 16)
            .map(Hex)
            .map_err(|e| serde::de::Error::custom(format!("not a hex word: {text:?}: {e}")))
    }
}

/// x86_64 user registers as hex strings, pc/sp/fp first as the contract names them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registers {
    pub pc: Hex,
    pub sp: Hex,
    pub fp: Hex,
    pub flags: Hex,
    pub ax: Hex,
    pub bx: Hex,
    pub cx: Hex,
    pub dx: Hex,
    pub si: Hex,
    pub di: Hex,
    pub r8: Hex,
    pub r9: Hex,
    pub r10: Hex,
    pub r11: Hex,
    pub r12: Hex,
    pub r13: Hex,
    pub r14: Hex,
    pub r15: Hex,
}

impl From<&tracer_common::Registers> for Registers {
    fn from(r: &tracer_common::Registers) -> Self {
        Self {
            pc: Hex(r.ip),
            sp: Hex(r.sp),
            fp: Hex(r.bp),
            flags: Hex(r.flags),
            ax: Hex(r.ax),
            bx: Hex(r.bx),
            cx: Hex(r.cx),
            dx: Hex(r.dx),
            si: Hex(r.si),
            di: Hex(r.di),
            r8: Hex(r.r8),
            r9: Hex(r.r9),
            r10: Hex(r.r10),
            r11: Hex(r.r11),
            r12: Hex(r.r12),
            r13: Hex(r.r13),
            r14: Hex(r.r14),
            r15: Hex(r.r15),
        }
    }
}

/// How a process ended, decoded from its wait(2) status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExitStatus {
    Code {
        code: i32,
    },
    Signal {
        signal: i32,
        /// Extension: the signal's name.
        #[serde(deserialize_with = "vocabulary::word")]
        signal_name: Word,
        core_dumped: bool,
    },
}

impl ExitStatus {
    pub fn from_wait_status(status: u32) -> Self {
        let sig = (status & 0x7f) as i32;
        if sig == 0 {
            ExitStatus::Code {
                code: ((status >> 8) & 0xff) as i32,
            }
        } else {
            ExitStatus::Signal {
                signal: sig,
                signal_name: crate::signals::name(sig).unwrap_or("unknown"),
                core_dumped: status & 0x80 != 0,
            }
        }
    }

    /// The status a shell (and `crashtrace run`) reports: the code, or 128+N.
    #[cfg(test)]
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Code { code } => code,
            ExitStatus::Signal { signal, .. } => 128 + signal,
        }
    }

    pub fn describe(self) -> String {
        match self {
            ExitStatus::Code { code } => format!("exited with status {code}"),
            ExitStatus::Signal {
                signal_name,
                core_dumped,
                ..
            } => format!(
                "killed by {signal_name}{}",
                if core_dumped { " (core dumped)" } else { "" }
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Recovered,
    Crashed,
    Killed,
    Exited,
}

impl Outcome {
    /// As the contract spells it ("crashed" …).
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::Crashed => "crashed",
            Outcome::Killed => "killed",
            Outcome::Exited => "exited",
        }
    }

    pub fn verdict(self) -> &'static str {
        match self {
            Outcome::Recovered => "RECOVERED",
            Outcome::Crashed => "CRASHED",
            Outcome::Killed => "KILLED",
            Outcome::Exited => "EXITED",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cause {
    #[serde(rename = "type", deserialize_with = "vocabulary::word")]
    pub kind: Word,
    pub message: String,
    /// Extension: for a fault a runtime turned into a panic (Go), the
    /// fault itself — signal, si_code, address — as the runtime prints it
    /// beside the panic's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalInfo>,
    /// For type "oom": the OOM kill (memory cgroup, usage, limit, the
    /// victim's memory, the task that triggered it), as fields of the cause.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub oom: Option<OomKill>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Thread {
    pub tid: Option<u32>,
    pub goid: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Incident {
    /// An id unique within the output stream, for `related`.
    #[serde(default)]
    pub story: u64,
    /// Other stories this one continues (a panic re-panicked from a
    /// recovered one), by their `story` ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<u64>,
    pub outcome: Outcome,
    pub cause: Cause,
    pub recovered_by: Option<Frame>,
    pub exit: Option<ExitStatus>,
    pub frames: Vec<Frame>,
    pub events: Vec<Record>,
    pub thread: Thread,
    /// A stable signature of the crash for grouping (CONTRACT.md): from
    /// the language, the cause's type (and signal) and the top application
    /// frames' function names — no addresses, no lines, no message — so
    /// equal across builds and hosts for the same bug. 16 hex digits.
    #[serde(default)]
    pub fingerprint: String,
    /// Extension: the goroutine dump the Go runtime printed as the process
    /// died (a `goroutines` record's body), on the process's first
    /// incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goroutines: Option<GoGoroutines>,
}

impl Record {
    /// A `lost` record: `count` records of kind `event` were dropped.
    pub fn lost(clock: &Clock, count: u64, reason: String, event: &'static str) -> Self {
        let ts = clock.now_mono();
        Record {
            schema: SCHEMA,
            kind: "lost",
            time: clock.rfc3339(ts),
            ts_ns: ts,
            pid: None,
            tid: None,
            comm: None,
            exe: None,
            goid: None,
            container: None,
            body: Body::Lost {
                count,
                reason,
                event,
            },
        }
    }
}

/// Reading records back (`crashtrace report`): the same types, parsed.
/// Fields of crashtrace's closed vocabularies (runtimes, sources,
/// dispositions, record and cause types, signal names) are read back as
/// the words crashtrace writes; a word it never writes reads as "unknown".
impl Record {
    pub fn from_value(v: serde_json::Value) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        use serde_json::from_value;
        #[derive(Deserialize)]
        struct Common {
            schema: String,
            #[serde(rename = "type")]
            kind: String,
            time: String,
            ts_ns: u64,
            pid: Option<u32>,
            tid: Option<u32>,
            comm: Option<String>,
            exe: Option<String>,
            goid: Option<u64>,
            #[serde(flatten)]
            container: Container,
        }
        #[derive(Deserialize)]
        struct Exit {
            exit: ExitStatus,
        }
        #[derive(Deserialize)]
        struct Lost {
            count: u64,
            reason: String,
            #[serde(deserialize_with = "vocabulary::word")]
            event: Word,
        }
        let common: Common = from_value(v.clone())?;
        if !common.schema.starts_with("crashtrace.") {
            return Err(serde_json::Error::custom("not a crashtrace record"));
        }
        let body = match common.kind.as_str() {
            "attach" => Body::Attach(from_value(v)?),
            "signal" => Body::Signal(Box::new(from_value(v)?)),
            "exit" => Body::Exit {
                exit: from_value::<Exit>(v)?.exit,
            },
            "panic" => Body::Panic(from_value(v)?),
            "recover" => Body::Recover(from_value(v)?),
            "fatal" => Body::Fatal(from_value(v)?),
            "sigpanic" => Body::Sigpanic(from_value(v)?),
            "goexit" => Body::Goexit(from_value(v)?),
            "goroutines" => Body::Goroutines(from_value(v)?),
            "oom" => Body::Oom(from_value(v)?),
            "crashloop" => Body::CrashLoop(from_value(v)?),
            "exception" => Body::Exception(from_value(v)?),
            "incident" => Body::Incident(Box::new(from_value(v)?)),
            "lost" => {
                let l: Lost = from_value(v)?;
                Body::Lost {
                    count: l.count,
                    reason: l.reason,
                    event: l.event,
                }
            }
            other => {
                return Err(serde_json::Error::custom(format!(
                    "unknown record type {other:?}"
                )));
            }
        };
        Ok(Record {
            schema: SCHEMA,
            kind: body.kind(),
            time: common.time,
            ts_ns: common.ts_ns,
            pid: common.pid,
            tid: common.tid,
            comm: common.comm,
            exe: common.exe,
            goid: common.goid,
            container: (common.container != Container::default())
                .then(|| std::sync::Arc::new(common.container)),
            body,
        })
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Record::from_value(v).map_err(serde::de::Error::custom)
    }
}

mod vocabulary {
    use serde::Deserialize as _;

    /// Every word crashtrace writes in a closed-vocabulary field.
    const WORDS: &[&str] = &[
        // record and cause types, lost events
        "attach",
        "signal",
        "exit",
        "panic",
        "recover",
        "fatal",
        "sigpanic",
        "goexit",
        "exception",
        "incident",
        "lost",
        "signal_sender",
        "fork",
        "exec",
        "go",
        "stack",
        "module",
        "rust_panic",
        "rust_panic_message",
        "goroutine",
        "goroutines",
        "rate_limit",
        "crashloop",
        "export",
        "output",
        // runtimes, debug info, reasons, sources, languages, dispositions
        "native",
        "dwarf",
        "gopclntab",
        "symtab",
        "none",
        "run",
        "throw",
        "c++",
        "rust",
        "default",
        "ignored",
        "handler",
        "oom",
        // OOM kills' scopes
        "cgroup",
        "global",
        // goroutine dumps' traceback levels
        "all",
        "system",
    ];

    pub fn word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        let text = String::deserialize(d)?;
        Ok(WORDS
            .iter()
            .copied()
            .chain((1..=64).filter_map(crate::signals::name))
            .find(|w| *w == text)
            .unwrap_or("unknown"))
    }
}

/// Kernel monotonic timestamps → wall-clock RFC 3339.
#[derive(Clone, Copy)]
pub struct Clock {
    /// realtime − monotonic, in ns, measured once at start.
    offset_ns: i128,
}

impl Clock {
    // Not a Default: it measures the clocks' offset now.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let mono = monotonic_ns();
        let real = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Self {
            offset_ns: real - mono as i128,
        }
    }

    pub fn now_mono(&self) -> u64 {
        monotonic_ns()
    }

    pub fn rfc3339(&self, ts_ns: u64) -> String {
        let unix = (ts_ns as i128 + self.offset_ns).max(0) as u128;
        let t = SystemTime::UNIX_EPOCH
            + Duration::new((unix / 1_000_000_000) as u64, (unix % 1_000_000_000) as u32);
        humantime::format_rfc3339_nanos(t).to_string()
    }
}

/// CLOCK_MONOTONIC in ns: the kernel's `bpf_ktime_get_ns` clock.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(
            ExitStatus::from_wait_status(3 << 8),
            ExitStatus::Code { code: 3 }
        );
        assert_eq!(
            ExitStatus::from_wait_status(11 | 0x80),
            ExitStatus::Signal {
                signal: 11,
                signal_name: "SIGSEGV",
                core_dumped: true
            }
        );
        assert_eq!(ExitStatus::from_wait_status(15).shell_status(), 143);
        assert_eq!(
            ExitStatus::from_wait_status(15).describe(),
            "killed by SIGTERM"
        );
    }

    #[test]
    fn exit_serializes_as_contract() {
        let v = serde_json::to_value(ExitStatus::Code { code: 3 }).unwrap();
        assert_eq!(v, serde_json::json!({"code": 3}));
        let v = serde_json::to_value(ExitStatus::from_wait_status(6 | 0x80)).unwrap();
        assert_eq!(v["signal"], 6);
        assert_eq!(v["core_dumped"], true);
    }

    #[test]
    fn outcome_words_are_the_serialized_ones() {
        for o in [
            Outcome::Recovered,
            Outcome::Crashed,
            Outcome::Killed,
            Outcome::Exited,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.word());
        }
    }

    #[test]
    fn clock_formats_rfc3339_utc_nanos() {
        let c = Clock::new();
        let s = c.rfc3339(c.now_mono());
        assert!(
            s.ends_with('Z') && s.len() == "2026-11-22T23:12:21.123456789Z".len(),
            "{s}"
        );
    }
}

/// `--redact REGEX`: text of messages (panic values, fatal errors,
/// exception what(), Rust panic messages, incident causes) that matches is
/// replaced before any output or export: panic messages carry user data.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    patterns: Vec<regex::Regex>,
}

impl Redactor {
    pub const MASK: &'static str = "[redacted]";

    pub fn new(patterns: &[String]) -> Result<Self, regex::Error> {
        Ok(Self {
            patterns: patterns
                .iter()
                .map(|p| regex::Regex::new(p))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every match masked.
    pub fn mask_text(&self, text: &str) -> String {
        let mut t = text.to_owned();
        self.mask(&mut t);
        t
    }

    fn mask(&self, text: &mut String) {
        for p in &self.patterns {
            if p.is_match(text) {
                *text = p.replace_all(text, Self::MASK).into_owned();
            }
        }
    }

    /// Masks every message of `record` (and of an incident's events).
    pub fn apply(&self, record: &mut Record) {
        match &mut record.body {
            Body::Panic(p) => self.mask(&mut p.message),
            Body::Fatal(f) => self.mask(&mut f.message),
            Body::Exception(e) => {
                if let Some(m) = &mut e.message {
                    self.mask(m);
                }
            }
            Body::Incident(inc) => {
                self.mask(&mut inc.cause.message);
                for e in &mut inc.events {
                    self.apply(e);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;

    #[test]
    fn messages_are_masked_everywhere_they_appear() {
        let r = Redactor::new(&["user=\\S+".into(), "\\d{16}".into()]).unwrap();
        let mut rec = Record {
            schema: SCHEMA,
            kind: "panic",
            time: "t".into(),
            ts_ns: 0,
            pid: Some(1),
            tid: Some(1),
            comm: None,
            exe: None,
            goid: Some(1),
            container: None,
            body: Body::Panic(GoPanic {
                message: "card 4111111111111111 declined for user=alice@example.com".into(),
                value_type: Some("string".into()),
                frames: Vec::new(),
                after_recovered: false,
            }),
        };
        r.apply(&mut rec);
        let Body::Panic(p) = &rec.body else {
            unreachable!()
        };
        assert_eq!(p.message, "card [redacted] declined for [redacted]");
        assert!(Redactor::new(&["(".into()]).is_err());
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    fn frame(function: &str) -> Frame {
        Frame {
            pc: "0x401000".into(),
            function: Some(function.into()),
            file: Some("/src/app.c".into()),
            line: Some(7),
            inlined: false,
            module: Some("/bin/app".into()),
            tail_call: false,
            file_offset: Some("0x1000".into()),
        }
    }

    fn record(body: Body) -> Record {
        Record {
            schema: SCHEMA,
            kind: body.kind(),
            time: "2026-12-01T00:00:00.000000001Z".into(),
            ts_ns: 42,
            pid: Some(7),
            tid: Some(8),
            comm: Some("app".into()),
            exe: Some("/bin/app".into()),
            goid: None,
            container: Some(std::sync::Arc::new(Container {
                cgroup: Some("/system.slice/app.service".into()),
                container_id: None,
                ns_pid: Some(1),
                memory_cgroup: Some("/app".into()),
            })),
            body,
        }
    }

    /// Every record type crashtrace writes reads back into the same record
    /// (what `report` relies on): serialized again, it is the same JSON.
    #[test]
    fn every_record_type_reads_back_as_written() {
        let signal = SignalInfo {
            number: 11,
            name: "SIGSEGV".into(),
            code: Some("SEGV_MAPERR".into()),
            addr: Some("0x0".into()),
            sender_pid: None,
            sender_comm: None,
            disposition: "handler",
        };
        let zero = tracer_common::Registers::default();
        let signal_record = record(Body::Signal(Box::new(SignalEvent {
            signal: signal.clone(),
            registers: Registers::from(&zero),
            frames: vec![frame("handle")],
            frames_truncated: false,
            truncated_by: None,
        })));
        let exit = ExitStatus::from_wait_status(11 | 0x80);
        let dump = GoGoroutines {
            printed: 1001,
            left_out: 1,
            traceback: "all",
            groups: vec![GoroutineGroup {
                count: 2,
                goids: vec![18, 19],
                status: "chan receive".into(),
                wait_minutes: Some(3),
                locked_to_thread: true,
                created_by: Some(CreatedBy {
                    function: Some("main.main".into()),
                    file: Some("/src/main.go".into()),
                    line: Some(10),
                    goid: Some(1),
                }),
                frames: vec![frame("main.worker")],
            }],
        };
        let bodies = vec![
            Body::Attach(Attach {
                runtime: "go",
                runtime_version: Some("go1.24.11".into()),
                module: None,
                debuginfo: "gopclntab",
                probes: vec!["raw_tp/signal_deliver".into()],
                reason: "exec",
                probes_late: Some("too late".into()),
                gotraceback: None,
            }),
            signal_record.body.clone(),
            Body::Exit { exit },
            Body::Panic(GoPanic {
                message: "boom".into(),
                value_type: Some("string".into()),
                frames: vec![frame("main.main")],
                after_recovered: false,
            }),
            Body::Recover(GoRecover {
                recovered_by: Some(frame("main.f.func1")),
                frames: vec![],
            }),
            Body::Fatal(GoFatal {
                message: "concurrent map writes".into(),
                source: "throw",
                recovered: true,
                frames: vec![],
                on_system_stack: true,
            }),
            Body::Sigpanic(GoSigpanic {
                signal,
                fault_pc: "0x401000".into(),
                on_system_stack: true,
                frames: vec![],
            }),
            Body::Goexit(GoGoexit { frames: vec![] }),
            Body::Goroutines(dump.clone()),
            Body::Oom(OomKill {
                scope: "cgroup",
                memcg: Some("/app".into()),
                usage_bytes: Some(52_428_800),
                limit_bytes: Some(52_428_800),
                victim_memcg: Some("/app/worker".into()),
                rss_bytes: 50_000_000,
                anon_rss_bytes: 49_000_000,
                file_rss_bytes: 1_000_000,
                shmem_rss_bytes: 0,
                trigger_pid: 7,
                trigger_tid: 8,
                trigger_comm: Some("alloc".into()),
            }),
            Body::Exception(Exception {
                language: "c++",
                message: None,
                message_unavailable: Some("what() …".into()),
                value_type: Some("std::bad_cast".into()),
                location: None,
                frames: vec![],
                frames_truncated: true,
                truncated_by: Some("the end of the 32 KiB stack copy".into()),
                suppressed: 3,
                thread_name: Some("main".into()),
                rethrown_by: None,
                thrown_by_tid: None,
                object: 0,
            }),
            Body::Incident(Box::new(Incident {
                story: 1,
                related: vec![],
                outcome: Outcome::Crashed,
                cause: Cause {
                    kind: "signal",
                    message: "SIGSEGV".into(),
                    signal: None,
                    oom: None,
                },
                recovered_by: None,
                exit: Some(exit),
                frames: vec![frame("handle")],
                events: vec![signal_record.clone()],
                thread: Thread {
                    tid: Some(8),
                    goid: None,
                },
                goroutines: Some(dump),
                fingerprint: String::new(),
            })),
            Body::Lost {
                count: 3,
                reason: "ring buffer full".into(),
                event: "signal",
            },
        ];
        for body in bodies {
            let written = serde_json::to_value(record(body)).unwrap();
            let read =
                Record::from_value(written.clone()).unwrap_or_else(|e| panic!("{e}: {written:#}"));
            assert_eq!(serde_json::to_value(&read).unwrap(), written);
        }
        assert!(
            Record::from_value(serde_json::json!({"schema": "other", "type": "exit"})).is_err()
        );
    }
}

#[cfg(test)]
mod hex_tests {
    use super::Hex;

    #[test]
    fn words_are_written_and_read_back_as_the_contract_spells_them() {
        for (value, text) in [
            (0, "\"0x0\""),
            (0x7f3a_0010, "\"0x7f3a0010\""),
            (u64::MAX, "\"0xffffffffffffffff\""),
        ] {
            assert_eq!(serde_json::to_string(&Hex(value)).unwrap(), text);
            assert_eq!(serde_json::from_str::<Hex>(text).unwrap(), Hex(value));
        }
        assert!(serde_json::from_str::<Hex>("\"401000\"").is_err());
        assert!(serde_json::from_str::<Hex>("\"0xzz\"").is_err());
    }
}
