//! Kernel structure offsets from the running kernel's BTF.
//!
//! Rust eBPF programs get no CO-RE field relocations, so the programs read
//! `task_struct` and `signal_struct` fields at offsets we look up here and
//! write into their read-only data before loading.

use anyhow::{Context as _, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use tracer_common::{KernelOffsets, OFFSET_UNKNOWN};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The offsets of this boot's kernel, kept where a reboot clears them
/// (/run is a tmpfs): reading them back costs a file read, parsing the
/// kernel's BTF for them ~230 ms (release build) at every start.
const OFFSETS_CACHE_DIR: &str = "/run/crashtrace";
const OFFSETS_CACHE: &str = "/run/crashtrace/kernel-offsets";

/// The running kernel's offsets: from this boot's cache, else from its
/// BTF (then kept in the cache, when it can be written).
pub fn kernel_offsets_cached() -> Result<KernelOffsets> {
    let key = cache_key();
    if let Some(key) = &key
        && let Ok(bytes) = std::fs::read(OFFSETS_CACHE)
        && let Some(offsets) = decode_offsets(&bytes, key)
    {
        return Ok(offsets);
    }
    let btf = Btf::from_file(VMLINUX_BTF).with_context(|| {
        format!("reading kernel BTF {VMLINUX_BTF} (needs CONFIG_DEBUG_INFO_BTF)")
    })?;
    let offsets = kernel_offsets(&btf)?;
    if let Some(key) = &key {
        // Best effort: without a cache the next start parses again.
        let _ = store_offsets(&offsets, key);
    }
    Ok(offsets)
}

/// What the cached offsets are valid for: this boot (its id), this kernel,
/// this crashtrace (its version, and this file's code that computes them:
/// a build that reads other fields or reads them otherwise does not take
/// an older build's values).
fn cache_key() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(format!(
        "crashtrace {} offsets {:016x} boot {} kernel {}\n",
        env!("CARGO_PKG_VERSION"),
        SOURCE_HASH,
        boot.trim(),
        release.trim()
    ))
}

/// FNV-1a of this file's source and of the struct's size.
const SOURCE_HASH: u64 = {
    let bytes = include_str!("btf.rs").as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ std::mem::size_of::<KernelOffsets>() as u64;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
};

fn decode_offsets(bytes: &[u8], key: &str) -> Option<KernelOffsets> {
    let body = bytes.strip_prefix(key.as_bytes())?;
    if body.len() != std::mem::size_of::<KernelOffsets>() {
        return None;
    }
    // SAFETY: KernelOffsets is repr(C) plain u32 fields (any bit pattern
    // is a value) and `body` has exactly its size; read unaligned.
    Some(unsafe { std::ptr::read_unaligned(body.as_ptr().cast::<KernelOffsets>()) })
}

fn encode_offsets(offsets: &KernelOffsets, key: &str) -> Vec<u8> {
    // SAFETY: a repr(C) struct of u32s, viewed as its bytes.
    let raw = unsafe {
        std::slice::from_raw_parts(
            (offsets as *const KernelOffsets).cast::<u8>(),
            std::mem::size_of::<KernelOffsets>(),
        )
    };
    let mut out = key.as_bytes().to_vec();
    out.extend_from_slice(raw);
    out
}

/// Written to a temporary file and renamed: a reader sees the whole file
/// or none. Private to root (0700 directory, 0600 file).
fn store_offsets(offsets: &KernelOffsets, key: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(OFFSETS_CACHE_DIR)?;
    let tmp = format!("{OFFSETS_CACHE}.{}", std::process::id());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, &encode_offsets(offsets, key))?;
    std::fs::rename(&tmp, OFFSETS_CACHE)
}

pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets> {
    let task = named_struct(btf, "task_struct")?;
    let signal = named_struct(btf, "signal_struct")?;
    let binprm = named_struct(btf, "linux_binprm")?;
    let file = named_struct(btf, "file")?;
    let inode = named_struct(btf, "inode")?;
    let sb = named_struct(btf, "super_block")?;
    let mm = named_struct(btf, "mm_struct")?;
    let pid = named_struct(btf, "pid")?;
    let upid = named_struct(btf, "upid")?;
    Ok(KernelOffsets {
        task_pid: member_offset(btf, &task, "pid")?,
        task_tgid: member_offset(btf, &task, "tgid")?,
        task_signal: member_offset(btf, &task, "signal")?,
        task_exit_code: member_offset(btf, &task, "exit_code")?,
        signal_flags: member_offset(btf, &signal, "flags")?,
        signal_group_exit_code: member_offset(btf, &signal, "group_exit_code")?,
        signal_live: member_offset(btf, &signal, "live")?,
        binprm_file: member_offset(btf, &binprm, "file")?,
        file_inode: member_offset(btf, &file, "f_inode")?,
        inode_ino: member_offset(btf, &inode, "i_ino")?,
        inode_sb: member_offset(btf, &inode, "i_sb")?,
        sb_dev: member_offset(btf, &sb, "s_dev")?,
        task_mm: member_offset(btf, &task, "mm")?,
        mm_start_code: member_offset(btf, &mm, "start_code")?,
        mm_end_code: member_offset(btf, &mm, "end_code")?,
        binprm_filename: member_offset(btf, &binprm, "filename")?,
        task_thread_pid: member_offset(btf, &task, "thread_pid")?,
        pid_level: member_offset(btf, &pid, "level")?,
        pid_numbers: member_offset(btf, &pid, "numbers")?,
        upid_size: upid.size() as u32,
        mm_saved_auxv: member_offset(btf, &mm, "saved_auxv")?,
        task_comm: member_offset(btf, &task, "comm")?,
        ..oom_offsets(btf)
    })
}

/// The fields the OOM-kill record reads (victim's memory and memory
/// cgroup). A kernel without memory cgroups (or an older rss_stat layout)
/// leaves them [`OFFSET_UNKNOWN`]: the record says less, nothing fails.
fn oom_offsets(btf: &Btf) -> KernelOffsets {
    let unknown = KernelOffsets {
        mm_rss_stat: OFFSET_UNKNOWN,
        task_cgroups: OFFSET_UNKNOWN,
        ..KernelOffsets::default()
    };
    let rss = || -> Result<(u32, u32, u32)> {
        let mm = named_struct(btf, "mm_struct")?;
        let counter = named_struct(btf, "percpu_counter")?;
        Ok((
            member_offset(btf, &mm, "rss_stat")?,
            counter.size() as u32,
            member_offset(btf, &counter, "count")?,
        ))
    };
    let memcg = || -> Result<[u32; 11]> {
        let task = named_struct(btf, "task_struct")?;
        let css_set = named_struct(btf, "css_set")?;
        let css = named_struct(btf, "cgroup_subsys_state")?;
        let cgroup = named_struct(btf, "cgroup")?;
        let kn = named_struct(btf, "kernfs_node")?;
        let mem_cgroup = named_struct(btf, "mem_cgroup")?;
        let counter = named_struct(btf, "page_counter")?;
        Ok([
            member_offset(btf, &task, "cgroups")?,
            member_offset(btf, &css_set, "subsys")?,
            enum_value(btf, "cgroup_subsys_id", "memory_cgrp_id")?,
            member_offset(btf, &css, "cgroup")?,
            member_offset(btf, &css, "parent")?,
            member_offset(btf, &cgroup, "kn")?,
            member_offset(btf, &kn, "id")?,
            member_offset(btf, &mem_cgroup, "css")?,
            member_offset(btf, &mem_cgroup, "memory")?,
            member_offset(btf, &counter, "usage")?,
            member_offset(btf, &counter, "max")?,
        ])
    };
    let mut off = unknown;
    // enum mm_counter_type: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS,
    // MM_SHMEMPAGES — in this order since Linux 4.5.
    if let Ok((rss_stat, stride, count)) = rss() {
        off.mm_rss_stat = rss_stat;
        off.rss_stat_stride = stride;
        off.percpu_counter_count = count;
        off.mm_filepages = 0;
        off.mm_anonpages = 1;
        off.mm_shmempages = 3;
    }
    if let Ok(
        [
            task_cgroups,
            css_set_subsys,
            memory_cgrp_id,
            css_cgroup,
            css_parent,
            cgroup_kn,
            kernfs_node_id,
            memcg_css,
            memcg_memory,
            page_counter_usage,
            page_counter_max,
        ],
    ) = memcg()
    {
        off.task_cgroups = task_cgroups;
        off.css_set_subsys = css_set_subsys;
        off.memory_cgrp_id = memory_cgrp_id;
        off.css_cgroup = css_cgroup;
        off.css_parent = css_parent;
        off.cgroup_kn = cgroup_kn;
        off.kernfs_node_id = kernfs_node_id;
        off.memcg_css = memcg_css;
        off.memcg_memory = memcg_memory;
        off.page_counter_usage = page_counter_usage;
        off.page_counter_max = page_counter_max;
    }
    off
}

/// The value of `member` in the enum named `name`.
fn enum_value(btf: &Btf, name: &str, member: &str) -> Result<u32> {
    btf.resolve_types_by_name(name)
        .with_context(|| format!("kernel BTF has no type {name}"))?
        .into_iter()
        .find_map(|t| match t {
            Type::Enum(e) => e
                .members
                .iter()
                .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == member))
                .map(|m| m.val()),
            _ => None,
        })
        .ok_or_else(|| anyhow!("kernel BTF: no {member} in enum {name}"))
}

fn named_struct(btf: &Btf, name: &str) -> Result<btf_rs::Struct> {
    btf.resolve_types_by_name(name)
        .with_context(|| format!("kernel BTF has no type {name}"))?
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })
        .ok_or_else(|| anyhow!("kernel BTF has no struct {name}"))
}

/// Byte offset of `field` in `s`, looking through anonymous struct/union
/// members (randomized layouts wrap task_struct's fields in one).
fn member_offset(btf: &Btf, s: &btf_rs::Struct, field: &str) -> Result<u32> {
    find_member(btf, s, field, 0)?.ok_or_else(|| anyhow!("kernel BTF: no field {field} in struct"))
}

fn find_member(btf: &Btf, s: &btf_rs::Struct, field: &str, base_bits: u32) -> Result<Option<u32>> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let bits = base_bits + m.bit_offset();
        if name == field {
            if !bits.is_multiple_of(8) || m.bitfield_size().is_some_and(|b| b != 0) {
                bail!("kernel BTF: field {field} is a bitfield");
            }
            return Ok(Some(bits / 8));
        }
        if name.is_empty() {
            match btf.resolve_chained_type(m)? {
                Type::Struct(inner) | Type::Union(inner) => {
                    if let Some(off) = find_member(btf, &inner, field, bits)? {
                        return Ok(Some(off));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cached_offsets_are_read_back_only_for_their_key() {
        let offsets = super::KernelOffsets {
            task_pid: 1234,
            page_counter_max: 77,
            ..Default::default()
        };
        let bytes = super::encode_offsets(&offsets, "key A\n");
        let back = super::decode_offsets(&bytes, "key A\n").unwrap();
        assert_eq!((back.task_pid, back.page_counter_max), (1234, 77));
        assert!(super::decode_offsets(&bytes, "key B\n").is_none());
        assert!(super::decode_offsets(&bytes[..bytes.len() - 1], "key A\n").is_none());
    }

    use super::*;

    /// Against this machine's kernel: the offsets must be inside the structs
    /// and distinct. (Needs /sys/kernel/btf/vmlinux, present on every
    /// supported kernel.)
    #[test]
    fn offsets_from_running_kernel() {
        let btf = Btf::from_file(VMLINUX_BTF).expect("kernel BTF");
        let off = kernel_offsets(&btf).expect("offsets");
        let task = named_struct(&btf, "task_struct").unwrap();
        assert!(off.task_pid > 0 && (off.task_pid as usize) < task.size());
        assert_eq!(off.task_tgid, off.task_pid + 4, "pid and tgid are adjacent");
        assert_ne!(off.signal_flags, off.signal_group_exit_code);
        // This kernel has memory cgroups (v1 or v2) and percpu rss counters.
        assert_ne!(off.task_cgroups, OFFSET_UNKNOWN);
        assert_ne!(off.mm_rss_stat, OFFSET_UNKNOWN);
        assert!(off.rss_stat_stride >= 8, "{}", off.rss_stat_stride);
        assert!(off.memory_cgrp_id > 0 && off.memory_cgrp_id < 16);
        assert_ne!(off.page_counter_usage, off.page_counter_max);
    }
}
