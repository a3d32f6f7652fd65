//! `crashtrace run` and `crashtrace attach`: start or find the processes,
//! then pump the ring buffer until they are gone or the user stops us.

use std::{ffi::OsString, io, os::unix::process::CommandExt as _, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use nix::{
    sys::{
        ptrace,
        signal::{Signal, kill},
        wait::{WaitStatus, waitpid},
    },
    unistd::Pid,
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    task::JoinHandle,
};

use crate::{
    Failure,
    cli::{AttachArgs, Common, RunArgs},
    output::{Output, warn},
    probes::kernel::KernelProbes,
    session::Session,
};

/// How often drop counters and process liveness are checked, and processes
/// that exec'd are looked at again (their libraries are mapped by then).
pub const TICK: Duration = Duration::from_millis(50);
/// What `--otlp` exports: one log record per crash story, and reports of
/// what was lost.
const EXPORTED_TYPES: [&str; 2] = ["incident", "lost"];
/// How long exporters may take to deliver what they hold at exit.
const EXPORT_FLUSH: Duration = Duration::from_secs(3);
/// How long a process that looks gone may take to deliver its exit record.
const EXIT_RECORD_GRACE: Duration = Duration::from_secs(1);

pub fn open_session(common: &Common) -> Result<(Session, AsyncFd<RingBuf<MapData>>), Failure> {
    let redactor = crate::record::Redactor::new(&common.redact)
        .map_err(|e| Failure::Usage(format!("--redact: {e}")))?;
    let out = Output::new(common.format, common.output.as_deref()).map_err(Failure::Other)?;
    let mut probes =
        KernelProbes::load(common.ring_buffer_kib * 1024).map_err(Failure::from_load)?;
    let ring = probes
        .take_events()
        .context("ring buffer already taken")
        .map_err(Failure::Other)?;
    // SAFETY: the RingBuf owns its map fd and keeps it open for as long as
    // the AsyncFd that wraps it exists.
    let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .context("polling the ring buffer")
        .map_err(Failure::Other)?;
    let mut session = Session::new(probes, out);
    session.verbose = common.verbose && !common.quiet;
    session.redactor = redactor;
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
        session.exporters.add_sink(sink);
    }
    Ok((session, ring))
}

pub fn drain(session: &mut Session, ring: &mut RingBuf<MapData>) -> Result<()> {
    while let Some(item) = ring.next() {
        session.handle_raw(&item)?;
    }
    Ok(())
}

pub async fn run(common: &Common, args: &RunArgs) -> Result<i32, Failure> {
    let (mut session, mut ring) = open_session(common)?;
    let (program, rest) = args
        .argv
        .split_first()
        .ok_or_else(|| Failure::Usage("run needs a PROGRAM".into()))?;

    let follow_forks = !args.no_follow_forks;
    let mut traced = Ok(());
    let started = spawn_to_entry(program, rest, |pid| {
        traced = session.probes.trace(pid.as_raw() as u32, follow_forks);
    });
    let child = match started {
        Ok(Started::AtEntry(pid)) => pid,
        Ok(Started::Ended(status)) => {
            drain(&mut session, ring.get_mut()).map_err(Failure::Other)?;
            return Ok(status);
        }
        Err(err) => {
            let status = if err.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            warn(&format!(
                "cannot start {}: {err}",
                Path::new(program).display()
            ));
            return Ok(status);
        }
    };
    let pid = child.as_raw() as u32;
    let attached = traced.and_then(|()| session.attach(pid, "run", follow_forks));
    // Resume even if attaching failed, so the program runs either way.
    ptrace::detach(child, None)
        .with_context(|| format!("resuming pid {pid}"))
        .map_err(Failure::Other)?;
    if let Err(err) = attached {
        warn(&format!(
            "tracing pid {pid} failed, it runs untraced: {err:#}"
        ));
    }

    let waiter: JoinHandle<io::Result<i32>> = tokio::task::spawn_blocking(move || wait_exit(child));
    tokio::pin!(waiter);
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Failure::Other(e.into()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Failure::Other(e.into()))?;
    let mut tick = tokio::time::interval(TICK);

    let status = loop {
        tokio::select! {
            // Records first; DWARF warm-up only when nothing else is ready.
            biased;
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(|e| Failure::Other(e.into()))?;
                // Clear first, then drain: a record submitted after the
                // drain raises a fresh edge (the kernel notifies only when
                // we had caught up, so a missed edge would strand it).
                guard.clear_ready();
                drain(&mut session, guard.get_inner_mut()).map_err(Failure::Other)?;
            }
            _ = tick.tick() => session.poll_lost().map_err(Failure::Other)?,
            // Like time(1): Ctrl-C reaches the program through the terminal;
            // we wait for it to act on it.
            _ = sigint.recv() => {}
            // A SIGTERM aimed at us is meant for the program we wrap.
            _ = sigterm.recv() => { let _ = kill(child, Signal::SIGTERM); }
            res = &mut waiter => {
                break res.map_err(|e| Failure::Other(e.into()))?
                    .context("waiting for the program").map_err(Failure::Other)?;
            }
            _ = std::future::ready(()), if session.has_idle_work() => session.idle_step(),
        }
    };
    // The kernel wrote the exit record before the parent could reap: drain it.
    drain(&mut session, ring.get_mut()).map_err(Failure::Other)?;
    session.finish().map_err(Failure::Other)?;
    session
        .close_exporters(EXPORT_FLUSH)
        .await
        .map_err(Failure::Other)?;
    if common.verbose && !common.quiet {
        eprintln!("{}", session.summary());
    }
    Ok(status)
}

/// Where the child is when we let it go.
enum Started {
    /// Stopped at its entry point: ld.so has mapped every startup library.
    AtEntry(Pid),
    /// It ended before reaching its entry point (e.g. a constructor crashed).
    Ended(i32),
}

/// fork + PTRACE_TRACEME + execve, then run the dynamic loader up to the
/// program's entry point with a one-shot breakpoint, so the memory map we
/// snapshot holds the shared libraries too. The kernel-side filter is set at
/// the exec stop (`on_exec_stop`), before the program's first instruction.
fn spawn_to_entry(
    program: &OsString,
    args: &[OsString],
    mut on_exec_stop: impl FnMut(Pid),
) -> io::Result<Started> {
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
        WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
        other => {
            return Err(io::Error::other(format!(
                "unexpected state after exec: {other:?}"
            )));
        }
    }
    on_exec_stop(pid);

    let Some(entry) = auxv_entry(pid) else {
        return Ok(Started::AtEntry(pid)); // no AT_ENTRY: snapshot what we have
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
                    return Ok(Started::AtEntry(pid));
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

pub async fn attach(common: &Common, args: &AttachArgs) -> Result<i32, Failure> {
    let mut pids = Vec::with_capacity(args.pids.len());
    for &pid in &args.pids {
        let tgid = process_of(pid)
            .ok_or_else(|| Failure::Other(anyhow::anyhow!("no such process: {pid}")))?;
        if tgid != pid && !common.quiet {
            warn(&format!(
                "{pid} is a thread of process {tgid}: tracing the process"
            ));
        }
        if !pids.contains(&tgid) {
            pids.push(tgid);
        }
    }
    // Each file must be an ELF executable we can read: a typo is a usage
    // error now, not a silent wait for processes that never come.
    for exe in &args.exes {
        crate::symbolize::ElfModule::open(exe, &exe.to_string_lossy())
            .map_err(|e| Failure::Usage(format!("--exe {}: {e:#}", exe.display())))?;
    }
    let (mut session, mut ring) = open_session(common)?;
    for &pid in &pids {
        session
            .attach(pid, "attach", args.follow_forks)
            .with_context(|| format!("attaching to pid {pid}"))
            .map_err(Failure::Other)?;
    }
    for exe in &args.exes {
        let running = session
            .watch(exe)
            .with_context(|| format!("watching {}", exe.display()))
            .map_err(Failure::Other)?;
        for pid in running {
            if pids.contains(&pid) {
                continue;
            }
            // It may exit between the scan and the attach: not an error.
            if let Err(err) = session.attach_as(pid, "attach", true, true)
                && !common.quiet
                && process_of(pid).is_some()
            {
                warn(&format!("pid {pid}: {err:#}"));
            }
        }
    }
    // With --exe, processes come and go: run until Ctrl-C or SIGTERM.
    let until_interrupted = !args.exes.is_empty();

    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| Failure::Other(e.into()))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Failure::Other(e.into()))?;
    let mut tick = tokio::time::interval(TICK);
    let mut interrupted = false;
    let mut gone_since = None;
    loop {
        tokio::select! {
            // Records first; DWARF warm-up only when nothing else is ready.
            biased;
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(|e| Failure::Other(e.into()))?;
                // Clear first, then drain: a record submitted after the
                // drain raises a fresh edge (the kernel notifies only when
                // we had caught up, so a missed edge would strand it).
                guard.clear_ready();
                drain(&mut session, guard.get_inner_mut()).map_err(Failure::Other)?;
            }
            _ = tick.tick() => session.poll_lost().map_err(Failure::Other)?,
            _ = sigint.recv() => { interrupted = true; break; }
            _ = sigterm.recv() => { interrupted = true; break; }
            _ = std::future::ready(()), if session.has_idle_work() => session.idle_step(),
        }
        if until_interrupted {
            continue;
        }
        // Done when every process's exit record has arrived. A process that
        // looks gone (a zombie leader while its other threads still exit,
        // or reaped) gets a moment for its exit record: the last thread's
        // exit writes it.
        if args
            .pids
            .iter()
            .all(|&pid| session.exit_status(pid).is_some())
        {
            break;
        }
        if args
            .pids
            .iter()
            .all(|&pid| session.exit_status(pid).is_some() || gone(pid))
        {
            let since = *gone_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > EXIT_RECORD_GRACE {
                break;
            }
        }
    }
    drain(&mut session, ring.get_mut()).map_err(Failure::Other)?;
    session.finish().map_err(Failure::Other)?;
    session
        .close_exporters(EXPORT_FLUSH)
        .await
        .map_err(Failure::Other)?;
    // Dropping the session detaches every program (links are fds).
    if !common.quiet || interrupted {
        eprintln!("{}", session.summary());
    }
    Ok(0)
}

/// The process (thread group) `pid` belongs to, if it exists: a thread id
/// names its process.
fn process_of(pid: u32) -> Option<u32> {
    if pid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Exited and reaped, or a zombie: either way it will run no more code.
/// (A fallback for when its exit record was lost.)
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}
