//! `crashtrace run` and `crashtrace attach`: start or find the processes,
//! then pump the ring buffer until they are gone or the user stops us.

use std::{ffi::OsString, io, os::unix::process::CommandExt as _, path::Path, time::Duration};

use anyhow::Context as _;
use nix::{
    sys::{
        ptrace,
        signal::{Signal, kill},
        wait::{WaitStatus, waitpid},
    },
    unistd::Pid,
};
use tokio::{
    signal::unix::{SignalKind, signal},
    task::JoinHandle,
};

use crate::{
    Failure,
    cli::{AttachArgs, RunArgs, Settings},
    output::{Output, Stream},
    pipeline::{Export, Options, Tracer},
    procfs,
};

/// What `--otlp` exports: one log record per crash story, and reports of
/// what was lost.
const EXPORTED_TYPES: [&str; 2] = ["incident", "lost"];
/// How long exporters may take to deliver what they hold at exit.
pub const EXPORT_FLUSH: Duration = Duration::from_secs(3);
/// How long a process that looks gone may take to deliver its exit record.
const EXIT_RECORD_GRACE: Duration = Duration::from_secs(1);
/// How often `attach` looks whether its processes are gone.
const LIVENESS: Duration = Duration::from_millis(50);

/// Starts the pipeline with the options every tracing command shares.
pub fn start(common: &Settings, out: Output) -> Result<Tracer, Failure> {
    let redactor = crate::record::Redactor::new(&common.redact)
        .map_err(|e| Failure::Usage(format!("--redact: {e}")))?;
    let mut exporters = crate::export::Exporters::default();
    if let Some(url) = &common.otlp {
        let resource = crate::export::otlp::Resource {
            service_name: crate::export::service_name(None),
            host_name: Some(crate::export::hostname()),
            extra: Vec::new(),
        };
        let sink = crate::export::sinks::spawn_otlp(
            url,
            resource,
            EXPORTED_TYPES.map(str::to_owned).to_vec(),
        )
        .map_err(|e| Failure::Usage(format!("--otlp: {e:#}")))?;
        exporters.add_sink(sink);
    }
    Tracer::start(
        Options {
            ring_bytes: common.ring_buffer_kib * 1024,
            verbose: common.verbose && !common.quiet,
            redactor,
        },
        Export::new(out, exporters),
    )
}

/// `-o PATH`, else `default` (stdout for attach, stderr for run).
fn output(common: &Settings, default: Stream) -> Result<Output, Failure> {
    Output::new_or(common.format, common.output.as_deref(), default)
        .map(|o| {
            o.with_all_frames(common.all_frames)
                .with_color(common.color)
                .with_all_events(common.verbose)
                .with_time(false, common.utc)
        })
        .map_err(Failure::Other)
}

pub async fn run(common: &Settings, args: &RunArgs) -> Result<i32, Failure> {
    let mut tracer = start(common, output(common, Stream::Stderr)?)?;
    let (program, rest) = args
        .argv
        .split_first()
        .ok_or_else(|| Failure::Usage("run needs a PROGRAM".into()))?;

    let follow_forks = args.forks.follow();
    let child = match spawn_stopped(program, rest) {
        Ok(pid) => pid,
        Err(err) => {
            let status = if err.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            log::warn!("cannot start {}: {err}", Path::new(program).display());
            let summary = tracer.finish(EXPORT_FLUSH).await;
            if common.verbose && !common.quiet {
                eprintln!("{}", summary.line(true));
            }
            return Ok(status);
        }
    };
    let pid = child.as_raw() as u32;
    // In the kernel's traced set before its first instruction.
    let traced = tracer.trace(pid, follow_forks).await;
    let started = run_to_entry(child);
    let attached = match (&traced, &started) {
        (Ok(()), Ok(Started::AtEntry)) => tracer.attach(pid, "run", follow_forks, false).await,
        (Err(err), _) => Err(anyhow::anyhow!("{err:#}")),
        _ => Ok(()),
    };
    let status = match started {
        Ok(Started::Ended(status)) => status,
        Err(err) => {
            log::warn!("starting {}: {err}", Path::new(program).display());
            let _ = kill(child, Signal::SIGKILL);
            let _ = wait_exit(child);
            126
        }
        Ok(Started::AtEntry) => {
            // Resume even if attaching failed, so the program runs either way.
            if let Err(err) = ptrace::detach(child, None) {
                log::warn!("resuming pid {pid}: {err}");
            }
            if let Err(err) = attached {
                log::warn!("tracing pid {pid} failed, it runs untraced: {err:#}");
            }
            let waiter: JoinHandle<io::Result<i32>> =
                tokio::task::spawn_blocking(move || wait_exit(child));
            let mut sigterm =
                signal(SignalKind::terminate()).map_err(|e| Failure::Other(e.into()))?;
            let mut sigint =
                signal(SignalKind::interrupt()).map_err(|e| Failure::Other(e.into()))?;
            let waited = tracer
                .serve(async {
                    tokio::pin!(waiter);
                    loop {
                        tokio::select! {
                            res = &mut waiter => break res,
                            // Like time(1): Ctrl-C reaches the program through
                            // the terminal; we wait for it to act on it.
                            _ = sigint.recv() => {}
                            // A SIGTERM aimed at us is meant for the program we wrap.
                            _ = sigterm.recv() => { let _ = kill(child, Signal::SIGTERM); }
                        }
                    }
                })
                .await;
            match waited {
                Ok(Ok(status)) => status,
                Ok(Err(err)) => {
                    log::warn!("waiting for the program: {err}");
                    1
                }
                Err(err) => {
                    log::warn!("waiting for the program: {err}");
                    1
                }
            }
        }
    };
    // The kernel wrote the exit record before the parent could reap: the
    // pipeline drains it on the way out.
    let summary = tracer.finish(EXPORT_FLUSH).await;
    if common.verbose && !common.quiet {
        eprintln!("{}", summary.line(true));
    }
    Ok(status)
}

/// Where the child is when we let it go.
enum Started {
    /// Stopped at its entry point: ld.so has mapped every startup library.
    AtEntry,
    /// It ended before reaching its entry point (e.g. a constructor crashed).
    Ended(i32),
}

/// fork + PTRACE_TRACEME + execve: the child stops at its exec, before its
/// first instruction (where the caller adds it to the kernel's filter).
fn spawn_stopped(program: &OsString, args: &[OsString]) -> io::Result<Pid> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| ptrace::traceme().map_err(io::Error::from));
    }
    let child = cmd.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    // std's Child never reaps on drop; we wait with waitpid ourselves.
    drop(child);
    match waitpid(pid, None).map_err(io::Error::from)? {
        WaitStatus::Stopped(_, Signal::SIGTRAP) => Ok(pid),
        other => Err(io::Error::other(format!(
            "unexpected state after exec: {other:?}"
        ))),
    }
}

/// Runs the dynamic loader up to the program's entry point with a one-shot
/// breakpoint, so the memory map we read then holds the shared libraries
/// too.
fn run_to_entry(pid: Pid) -> io::Result<Started> {
    let Some(entry) = auxv_entry(pid) else {
        return Ok(Started::AtEntry); // no AT_ENTRY: read what we have
    };
    let addr = entry as ptrace::AddressType;
    let orig = ptrace::read(pid, addr).map_err(io::Error::from)?;
    let patched = (orig & !0xff) | 0xcc; // int3
    ptrace::write(pid, addr, patched).map_err(io::Error::from)?;
    let mut inject: Option<Signal> = None;
    loop {
        ptrace::cont(pid, inject.take()).map_err(io::Error::from)?;
        match waitpid(pid, None).map_err(io::Error::from)? {
            WaitStatus::Stopped(_, Signal::SIGTRAP) => {
                let mut regs = ptrace::getregs(pid).map_err(io::Error::from)?;
                if regs.rip == entry + 1 {
                    regs.rip = entry;
                    ptrace::setregs(pid, regs).map_err(io::Error::from)?;
                    ptrace::write(pid, addr, orig).map_err(io::Error::from)?;
                    return Ok(Started::AtEntry);
                }
                inject = Some(Signal::SIGTRAP);
            }
            // A signal during startup: deliver it as if we were not there.
            WaitStatus::Stopped(_, sig) => inject = Some(sig),
            WaitStatus::Exited(_, code) => return Ok(Started::Ended(code)),
            WaitStatus::Signaled(_, sig, _) => return Ok(Started::Ended(128 + sig as i32)),
            _ => {}
        }
    }
}

/// AT_ENTRY from /proc/PID/auxv.
fn auxv_entry(pid: Pid) -> Option<u64> {
    const AT_ENTRY: u64 = 9;
    let bytes = std::fs::read(format!("/proc/{pid}/auxv")).ok()?;
    bytes.as_chunks::<16>().0.iter().find_map(|pair| {
        let key = u64::from_ne_bytes(pair[..8].try_into().ok()?);
        let val = u64::from_ne_bytes(pair[8..].try_into().ok()?);
        (key == AT_ENTRY).then_some(val)
    })
}

/// The shell-style status of `pid`: its exit code, or 128+N for signal N.
fn wait_exit(pid: Pid) -> io::Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn attach(common: &Settings, args: &AttachArgs) -> Result<i32, Failure> {
    let mut pids = Vec::with_capacity(args.pids.len());
    for &pid in &args.pids {
        let tgid = procfs::process_of(pid)
            .ok_or_else(|| Failure::Other(anyhow::anyhow!("no such process: {pid}")))?;
        if tgid != pid && !common.quiet {
            log::warn!("{pid} is a thread of process {tgid}: tracing the process");
        }
        if !pids.contains(&tgid) {
            pids.push(tgid);
        }
    }
    // Each file must be an ELF executable we can read: said now, not a
    // silent wait for processes that never come. A bad file is a failure
    // (1), as for `symbolize` and `probes`; a bad flag is a usage error (2).
    for exe in &args.exes {
        crate::symbolize::ElfModule::open(exe, &exe.to_string_lossy())
            .map_err(|e| Failure::Other(anyhow::anyhow!("--exe {}: {e:#}", exe.display())))?;
    }
    let mut tracer = start(common, output(common, Stream::Stdout)?)?;
    for &pid in &pids {
        if let Err(err) = tracer
            .attach(pid, "attach", args.forks.follow(), false)
            .await
            .with_context(|| format!("attaching to pid {pid}"))
        {
            let _ = tracer.finish(EXPORT_FLUSH).await;
            return Err(Failure::Other(err));
        }
    }
    for exe in &args.exes {
        let running = match tracer
            .watch(exe.clone(), args.forks.follow())
            .await
            .with_context(|| format!("watching {}", exe.display()))
        {
            Ok(r) => r,
            Err(err) => {
                let _ = tracer.finish(EXPORT_FLUSH).await;
                return Err(Failure::Other(err));
            }
        };
        for pid in running {
            if pids.contains(&pid) {
                continue;
            }
            // It may exit between the scan and the attach: not an error.
            if let Err(err) = tracer
                .attach(pid, "attach", args.forks.follow(), true)
                .await
                && !common.quiet
                && procfs::process_of(pid).is_some()
            {
                log::warn!("pid {pid}: {err:#}");
            }
        }
    }
    // With --exe, processes come and go: run until Ctrl-C or SIGTERM.
    let until_interrupted = !args.exes.is_empty();

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Failure::Other(e.into()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Failure::Other(e.into()))?;
    let mut liveness = tokio::time::interval(LIVENESS);
    let mut gone_since = None;
    let interrupted = loop {
        let stop = tracer
            .serve(async {
                tokio::select! {
                    _ = sigint.recv() => true,
                    _ = sigterm.recv() => true,
                    _ = liveness.tick() => false,
                }
            })
            .await;
        if stop {
            break true;
        }
        if until_interrupted {
            continue;
        }
        // Done when every process's exit record has arrived. A process that
        // looks gone (a zombie leader while its other threads still exit,
        // or reaped) gets a moment for its exit record: the last thread's
        // exit writes it.
        if pids.iter().all(|&pid| tracer.exit_status(pid).is_some()) {
            break false;
        }
        if pids
            .iter()
            .all(|&pid| tracer.exit_status(pid).is_some() || procfs::gone(pid))
        {
            let since = *gone_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > EXIT_RECORD_GRACE {
                break false;
            }
        }
    };
    // Stopping the pipeline detaches every program (links are fds).
    let summary = tracer.finish(EXPORT_FLUSH).await;
    if !common.quiet || interrupted {
        eprintln!("{}", summary.line(common.verbose && !common.quiet));
    }
    Ok(0)
}
