//! Loads the embedded eBPF object, attaches the signal and process-lifetime
//! tracepoints, and owns the maps userspace shares with them.
//!
//! Every program and link is owned by the `Ebpf` value inside
//! [`KernelProbes`]: tp_btf links are file descriptors, so they go away when
//! it is dropped or when crashtrace dies, SIGKILL included. Nothing is pinned.

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::BtfTracePoint,
};
use tracer_common::{EventKind, TracedProcess};

use super::btf::{VMLINUX_BTF, kernel_offsets};

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// (program name in the object, kernel tracepoint)
const TRACEPOINTS: &[(&str, &str)] = &[
    ("signal_deliver", "signal_deliver"),
    ("signal_generate", "signal_generate"),
    ("sched_process_exit", "sched_process_exit"),
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exec", "sched_process_exec"),
];

pub struct KernelProbes {
    // Keeps programs and links alive; dropped last.
    _ebpf: Ebpf,
    traced: HashMap<MapData, u32, TracedProcess>,
    lost: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
}

impl KernelProbes {
    /// Loads and attaches everything. `ring_bytes` must be a power-of-two
    /// multiple of the page size.
    pub fn load(ring_bytes: u32) -> Result<Self> {
        let kernel_btf = btf_rs::Btf::from_file(VMLINUX_BTF).with_context(|| {
            format!("reading kernel BTF {VMLINUX_BTF} (needs CONFIG_DEBUG_INFO_BTF)")
        })?;
        let offsets = kernel_offsets(&kernel_btf)?;
        let aya_btf = aya::Btf::from_sys_fs().context("parsing kernel BTF")?;

        let mut ebpf = EbpfLoader::new()
            .btf(&aya_btf)
            .override_global("OFFSETS", &offsets, true)
            .map_max_entries("EVENTS", ring_bytes)
            .load(EBPF_OBJECT)
            .context("loading the eBPF programs into the kernel")?;

        for (prog, tracepoint) in TRACEPOINTS {
            let program: &mut BtfTracePoint = ebpf
                .program_mut(prog)
                .with_context(|| format!("program {prog} missing from the eBPF object"))?
                .try_into()
                .with_context(|| format!("program {prog} is not a tp_btf program"))?;
            program
                .load(tracepoint, &aya_btf)
                .with_context(|| format!("verifying program {prog}"))?;
            program
                .attach()
                .with_context(|| format!("attaching to tracepoint {tracepoint}"))?;
        }

        let traced = HashMap::try_from(ebpf.take_map("TRACED").context("map TRACED missing")?)?;
        let lost = PerCpuArray::try_from(ebpf.take_map("LOST").context("map LOST missing")?)?;
        let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
        Ok(Self {
            _ebpf: ebpf,
            traced,
            lost,
            events: Some(events),
        })
    }

    /// The ring buffer, handed to the drain task once.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Starts filtering `pid`'s events in. Fork following is done in the kernel.
    pub fn trace(&mut self, pid: u32, follow_forks: bool) -> Result<()> {
        let value = TracedProcess {
            follow_forks: u32::from(follow_forks),
            _pad: 0,
        };
        self.traced
            .insert(&pid, &value, 0)
            .with_context(|| format!("adding pid {pid} to the traced set"))
    }

    pub fn untrace(&mut self, pid: u32) {
        // Absent already when the kernel saw it exit: nothing to do.
        let _ = self.traced.remove(&pid);
    }

    /// Records of `kind` the kernel could not queue so far, summed over CPUs.
    pub fn lost_count(&self, kind: EventKind) -> Result<u64> {
        let values = self
            .lost
            .get(&(kind as u32), 0)
            .context("reading the drop counters")?;
        Ok(values.iter().sum())
    }
}
