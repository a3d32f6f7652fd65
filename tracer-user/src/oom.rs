//! OOM kills: the kernel's `oom:mark_victim` record of a traced process,
//! told as the kernel's own report tells it ("Memory cgroup out of memory:
//! Killed process N" or a global "Out of memory"), with the memory cgroup
//! that reached its limit, its usage and limit, the victim's resident
//! memory and the task whose allocation could not be met.

use tracer_common::{OOM_MEMCG_LEVELS, OomMemcg, OomRecord};

use crate::record::{Body, CgroupPaths, Clock, OomKill, Record};

/// x86-64 pages.
const PAGE: u64 = 4096;

/// A page counter's "no limit" (`PAGE_COUNTER_MAX`, LONG_MAX / PAGE_SIZE):
/// anything this large is no limit anyone set.
const UNLIMITED_PAGES: u64 = 1 << 50;

/// How close to its limit a memory cgroup is when the OOM killer runs for
/// it: a charge fails when it does not fit, so usage may stay below the
/// limit by up to the charge (a huge page: 512 pages) plus the per-CPU
/// charge batch.
const AT_LIMIT_SLACK_PAGES: u64 = 1024;

/// The memory cgroup that ran out: the nearest of the victim's memory
/// cgroup and its parents that has a limit and is at it. None: the system
/// ran out (a global OOM), or nothing is known of the cgroups.
pub fn memcg_at_limit(levels: &[OomMemcg]) -> Option<usize> {
    levels.iter().position(|l| {
        l.max_pages < UNLIMITED_PAGES && l.usage_pages + AT_LIMIT_SLACK_PAGES >= l.max_pages
    })
}

/// The `oom` record of an OOM kill of `r.header.pid`.
pub fn record(
    r: &OomRecord,
    memcgs: &mut CgroupPaths,
    clock: &Clock,
    exe: Option<String>,
) -> Record {
    let levels = &r.memcg[..(r.levels as usize).min(OOM_MEMCG_LEVELS)];
    let at_limit = memcg_at_limit(levels);
    let (memcg, usage_bytes, limit_bytes) = match at_limit.map(|i| &levels[i]) {
        Some(l) => (
            memcgs.path_of(l.cgroup_id),
            Some(l.usage_pages * PAGE),
            Some(l.max_pages * PAGE),
        ),
        None => (None, None, None),
    };
    let victim_memcg = levels.first().and_then(|l| memcgs.path_of(l.cgroup_id));
    let (anon, file, shmem) = (
        r.anon_pages * PAGE,
        r.file_pages * PAGE,
        r.shmem_pages * PAGE,
    );
    let trigger_comm = crate::probes::records::comm_bytes(&r.trigger_comm);
    crate::runtimes::kernel_record(
        clock,
        &r.header,
        exe,
        None,
        Body::Oom(OomKill {
            scope: if at_limit.is_some() {
                "cgroup"
            } else {
                "global"
            },
            memcg,
            usage_bytes,
            limit_bytes,
            victim_memcg,
            rss_bytes: anon + file + shmem,
            anon_rss_bytes: anon,
            file_rss_bytes: file,
            shmem_rss_bytes: shmem,
            trigger_pid: r.trigger_pid,
            trigger_tid: r.trigger_tid,
            trigger_comm: (!trigger_comm.is_empty()).then_some(trigger_comm),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(usage_pages: u64, max_pages: u64) -> OomMemcg {
        OomMemcg {
            cgroup_id: 1,
            usage_pages,
            max_pages,
        }
    }

    #[test]
    fn the_cgroup_at_its_limit_ran_out_else_the_system() {
        let root = level(900_000, 2_251_799_813_685_247);
        // The victim's own cgroup at its 50 MiB limit.
        assert_eq!(memcg_at_limit(&[level(12_800, 12_800), root]), Some(0));
        // Below its limit by a huge page's charge: still at it.
        assert_eq!(memcg_at_limit(&[level(12_288, 12_800), root]), Some(0));
        // A parent's limit: the child has room, the parent has none.
        assert_eq!(
            memcg_at_limit(&[level(5_000, 100_000), level(25_600, 25_600), root]),
            Some(1)
        );
        // Limits far from reached, or none: the system ran out.
        assert_eq!(memcg_at_limit(&[level(100, 100_000), root]), None);
        assert_eq!(memcg_at_limit(&[root]), None);
        assert_eq!(memcg_at_limit(&[]), None);
    }
}
