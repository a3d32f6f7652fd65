//! Kernel structure offsets from the running kernel's BTF.
//!
//! Rust eBPF programs get no CO-RE field relocations, so the programs read
//! `task_struct` and `signal_struct` fields at offsets we look up here and
//! write into their read-only data before loading.

use anyhow::{Context as _, Result, anyhow, bail};
use btf_rs::{Btf, Type};
use tracer_common::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

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
    })
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
    }
}
