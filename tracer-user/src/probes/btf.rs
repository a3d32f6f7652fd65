//! Kernel structure offsets from the running kernel's BTF.
//!
//! Rust eBPF programs get no CO-RE field relocations, so the programs read
//! `task_struct` and `signal_struct` fields at offsets we look up here and
//! write into their read-only data before loading.
//!
//! The BTF is read by [`Btf`] below, which knows only what the offsets
//! need (structs, unions, enums, the modifiers between them): one pass
//! over the type section. btf_rs, which builds every type of the kernel's
//! 5 MB of BTF, took ~230 ms of a boot's first start for the same answers
//! (it stays, in the tests, as the check of this reader).

use anyhow::{Context as _, Result, anyhow, bail};
use tracer_common::{KernelOffsets, OFFSET_UNKNOWN};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The offsets of this boot's kernel, kept where a reboot clears them
/// (/run is a tmpfs): reading them back costs a file read, reading the
/// kernel's BTF for them ~6 ms (release build).
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
    let btf = std::fs::read(VMLINUX_BTF)
        .map_err(anyhow::Error::from)
        .and_then(Btf::parse)
        .with_context(|| {
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

fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets> {
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
        upid_size: upid.size(),
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
            counter.size(),
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
    btf.find_named(name, |t| {
        (t.kind == KIND_ENUM)
            .then(|| {
                t.records(8)
                    .find(|r| btf.name(u32_at(r, 0)) == Some(member))
                    .map(|r| u32_at(r, 4))
            })
            .flatten()
    })
    .ok_or_else(|| anyhow!("kernel BTF: no {member} in enum {name}"))
}

fn named_struct<'a>(btf: &'a Btf, name: &str) -> Result<BtfType<'a>> {
    btf.find_named(name, |t| (t.kind == KIND_STRUCT && t.vlen > 0).then_some(t))
        .ok_or_else(|| anyhow!("kernel BTF has no struct {name}"))
}

/// Byte offset of `field` in `s`, looking through anonymous struct/union
/// members (randomized layouts wrap task_struct's fields in one).
fn member_offset(btf: &Btf, s: &BtfType<'_>, field: &str) -> Result<u32> {
    find_member(btf, s, field, 0, 0)?
        .ok_or_else(|| anyhow!("kernel BTF: no field {field} in struct"))
}

/// Anonymous members nested deeper than this are not looked into (the
/// kernel's go two or three deep).
const MAX_NESTING: u32 = 8;

fn find_member(
    btf: &Btf,
    s: &BtfType<'_>,
    field: &str,
    base_bits: u32,
    depth: u32,
) -> Result<Option<u32>> {
    for m in s.members() {
        let name = btf.name(m.name_off).unwrap_or_default();
        let Some(bits) = base_bits.checked_add(m.bit_offset) else {
            continue; // damaged: past any struct
        };
        if name == field {
            if !bits.is_multiple_of(8) || m.bitfield_size.is_some_and(|b| b != 0) {
                bail!("kernel BTF: field {field} is a bitfield");
            }
            return Ok(Some(bits / 8));
        }
        if name.is_empty()
            && depth < MAX_NESTING
            && let Some(inner) = btf.resolved(m.type_id)
            && (inner.kind == KIND_STRUCT || inner.kind == KIND_UNION)
            && let Some(off) = find_member(btf, &inner, field, bits, depth + 1)?
        {
            return Ok(Some(off));
        }
    }
    Ok(None)
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// A kernel BTF blob (little-endian, as on the machines we run on), with
/// where each type's record starts, by type id.
struct Btf {
    data: Vec<u8>,
    types: std::ops::Range<usize>,
    strings: std::ops::Range<usize>,
    /// Offset in `data` of type id `i + 1` (id 0 is void).
    starts: Vec<u32>,
}

/// One type's record: its kind, name, size (or referred type) and the
/// `vlen` entries that follow it.
#[derive(Clone, Copy)]
struct BtfType<'a> {
    kind: u8,
    kind_flag: bool,
    vlen: usize,
    name_off: u32,
    /// `size` for structs, unions and enums; the referred type's id for
    /// modifiers and typedefs.
    size_or_type: u32,
    /// The bytes after the 12-byte header.
    rest: &'a [u8],
}

/// A struct's or union's member.
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    /// With the struct's kind flag only (0 for a member that is no
    /// bitfield).
    bitfield_size: Option<u32>,
}

impl BtfType<'_> {
    /// The record's `vlen` entries of `size` bytes each.
    fn records(&self, size: usize) -> impl Iterator<Item = &[u8]> {
        self.rest.chunks_exact(size).take(self.vlen)
    }

    /// A struct's or union's members. With the kind flag, a member's
    /// offset word is its bitfield size (top 8 bits) and bit offset (low
    /// 24).
    fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.records(12).map(|m| {
            let offset = u32_at(m, 8);
            let (bit_offset, bitfield_size) = if self.kind_flag {
                (offset & 0x00ff_ffff, Some(offset >> 24))
            } else {
                (offset, None)
            };
            Member {
                name_off: u32_at(m, 0),
                type_id: u32_at(m, 4),
                bit_offset,
                bitfield_size,
            }
        })
    }

    fn size(&self) -> u32 {
        self.size_or_type
    }
}

impl Btf {
    fn parse(data: Vec<u8>) -> Result<Self> {
        let magic = data
            .get(..2)
            .map(|m| u16::from_le_bytes([m[0], m[1]]))
            .unwrap_or(0);
        if magic != BTF_MAGIC {
            bail!("not little-endian BTF (magic {magic:#x})");
        }
        let hdr_len = u32_at(&data, 4) as usize;
        let section = |off: usize, len: usize| -> Result<std::ops::Range<usize>> {
            let start = hdr_len
                .checked_add(u32_at(&data, off) as usize)
                .context("BTF header")?;
            let end = start
                .checked_add(u32_at(&data, len) as usize)
                .context("BTF header")?;
            if end > data.len() {
                bail!("BTF section past the end of the data");
            }
            Ok(start..end)
        };
        let types = section(8, 12)?;
        let strings = section(16, 20)?;
        let mut starts = Vec::with_capacity(types.len() / 32);
        let mut at = types.start;
        while at + 12 <= types.end {
            let info = u32_at(&data, at + 4);
            let (kind, vlen) = ((info >> 24 & 0x1f) as u8, (info & 0xffff) as usize);
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                other => bail!("BTF type kind {other} unknown (type {})", starts.len() + 1),
            };
            starts.push(u32::try_from(at).context("BTF past 4 GiB")?);
            at += 12 + extra;
        }
        if at != types.end {
            bail!("BTF type section cut short");
        }
        Ok(Self {
            data,
            types,
            strings,
            starts,
        })
    }

    /// The type with id `id` (None for void and ids past the last).
    fn get(&self, id: u32) -> Option<BtfType<'_>> {
        let start = *self.starts.get((id as usize).checked_sub(1)?)? as usize;
        let end = self
            .starts
            .get(id as usize)
            .map_or(self.types.end, |&s| s as usize);
        let record = self.data.get(start..end)?;
        let info = u32_at(record, 4);
        Some(BtfType {
            kind: (info >> 24 & 0x1f) as u8,
            kind_flag: info >> 31 != 0,
            vlen: (info & 0xffff) as usize,
            name_off: u32_at(record, 0),
            size_or_type: u32_at(record, 8),
            rest: record.get(12..)?,
        })
    }

    /// Type `id` past typedefs and qualifiers.
    fn resolved(&self, mut id: u32) -> Option<BtfType<'_>> {
        for _ in 0..MAX_NESTING * 4 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// The string at `off` of the string section.
    fn name(&self, off: u32) -> Option<&str> {
        let strings = self.data.get(self.strings.clone())?;
        let s = strings.get(off as usize..)?;
        let len = s.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&s[..len]).ok()
    }

    /// The first of the types named `name`, in id order, for which `f`
    /// gives something.
    fn find_named<'a, T>(
        &'a self,
        name: &str,
        mut f: impl FnMut(BtfType<'a>) -> Option<T>,
    ) -> Option<T> {
        (1..=self.starts.len() as u32)
            .filter_map(|id| self.get(id))
            .filter(|t| t.name_off != 0 && self.name(t.name_off) == Some(name))
            .find_map(&mut f)
    }
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

    fn running_kernel() -> Btf {
        Btf::parse(std::fs::read(VMLINUX_BTF).expect("kernel BTF")).expect("BTF parsed")
    }

    /// Against this machine's kernel: the offsets must be inside the structs
    /// and distinct. (Needs /sys/kernel/btf/vmlinux, present on every
    /// supported kernel.)
    #[test]
    fn offsets_from_running_kernel() {
        let btf = running_kernel();
        let off = kernel_offsets(&btf).expect("offsets");
        let task = named_struct(&btf, "task_struct").unwrap();
        assert!(off.task_pid > 0 && off.task_pid < task.size());
        assert_eq!(off.task_tgid, off.task_pid + 4, "pid and tgid are adjacent");
        assert_ne!(off.signal_flags, off.signal_group_exit_code);
        // This kernel has memory cgroups (v1 or v2) and percpu rss counters.
        assert_ne!(off.task_cgroups, OFFSET_UNKNOWN);
        assert_ne!(off.mm_rss_stat, OFFSET_UNKNOWN);
        assert!(off.rss_stat_stride >= 8, "{}", off.rss_stat_stride);
        assert!(off.memory_cgrp_id > 0 && off.memory_cgrp_id < 16);
        assert_ne!(off.page_counter_usage, off.page_counter_max);
    }

    /// Damaged BTF is an error or fewer offsets, never a panic: the
    /// running kernel's, cut short and with bytes overwritten in its
    /// header, type records and strings.
    #[test]
    fn damaged_btf_is_no_panic() {
        let good = std::fs::read(VMLINUX_BTF).expect("kernel BTF");
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..24 {
            let mut data = good.clone();
            if round % 3 == 0 {
                data.truncate((next() as usize) % good.len());
            }
            for _ in 0..1 + round {
                // Mostly the header and the first types, where a wrong
                // length or kind shifts every record after it.
                let at = if next() % 2 == 0 {
                    (next() as usize) % 4096
                } else {
                    (next() as usize) % good.len()
                };
                if let Some(b) = data.get_mut(at) {
                    *b = next() as u8;
                }
            }
            if let Ok(btf) = Btf::parse(data) {
                let _ = kernel_offsets(&btf);
            }
        }
        assert!(Btf::parse(Vec::new()).is_err());
        assert!(Btf::parse(good[..24].to_vec()).is_err());
    }

    /// Every type of the running kernel's BTF read as btf_rs reads it: the
    /// same number of types; each struct's and union's name, size and
    /// members (name, type, bit offset, bitfield size); each enum's
    /// members and values; each typedef's and qualifier's target.
    #[test]
    fn every_type_reads_as_btf_rs_reads_it() {
        use btf_rs::{BtfType as _, Type};
        let ours = running_kernel();
        let theirs = btf_rs::Btf::from_file(VMLINUX_BTF).expect("btf_rs");
        let (mut structs, mut enums) = (0, 0);
        for id in 1..=ours.starts.len() as u32 {
            let t = ours.get(id).expect("every id has a type");
            let name = |off: u32| ours.name(off).unwrap_or_default().to_owned();
            match theirs.resolve_type_by_id(id).expect("btf_rs has the type") {
                Type::Struct(s) | Type::Union(s) => {
                    assert!(t.kind == KIND_STRUCT || t.kind == KIND_UNION, "type {id}");
                    assert_eq!(t.size() as usize, s.size(), "type {id}");
                    let members: Vec<_> = t
                        .members()
                        .map(|m| (name(m.name_off), m.type_id, m.bit_offset, m.bitfield_size))
                        .collect();
                    let expected: Vec<_> = s
                        .members
                        .iter()
                        .map(|m| {
                            (
                                theirs.resolve_name(m).unwrap_or_default(),
                                m.get_type_id().unwrap_or(0),
                                m.bit_offset(),
                                m.bitfield_size(),
                            )
                        })
                        .collect();
                    assert_eq!(members, expected, "type {id}");
                    structs += 1;
                }
                Type::Enum(e) => {
                    assert_eq!(t.kind, KIND_ENUM, "type {id}");
                    let members: Vec<_> = t
                        .records(8)
                        .map(|m| (name(u32_at(m, 0)), u32_at(m, 4)))
                        .collect();
                    let expected: Vec<_> = e
                        .members
                        .iter()
                        .map(|m| (theirs.resolve_name(m).unwrap_or_default(), m.val()))
                        .collect();
                    assert_eq!(members, expected, "type {id}");
                    enums += 1;
                }
                Type::Typedef(x) => assert_eq!(
                    (t.kind, t.size_or_type),
                    (KIND_TYPEDEF, x.get_type_id().unwrap_or(0)),
                    "type {id}"
                ),
                Type::Const(x) => assert_eq!(
                    (t.kind, t.size_or_type),
                    (KIND_CONST, x.get_type_id().unwrap_or(0)),
                    "type {id}"
                ),
                Type::Volatile(x) => assert_eq!(
                    (t.kind, t.size_or_type),
                    (KIND_VOLATILE, x.get_type_id().unwrap_or(0)),
                    "type {id}"
                ),
                _ => {}
            }
        }
        assert!(
            theirs
                .resolve_type_by_id(ours.starts.len() as u32 + 1)
                .is_err()
        );
        assert!(
            structs > 1000 && enums > 100,
            "{structs} structs, {enums} enums"
        );
    }
}
