//! What crashtrace needs from the kernel's permission model, checked up
//! front so a user without it gets one line naming the missing capability
//! rather than an EPERM from deep inside the loader.

use std::fs;

/// Capabilities needed to load and attach the programs and to read other
/// processes' memory maps and binaries.
const REQUIRED: &[(u32, &str)] = &[(39, "CAP_BPF"), (38, "CAP_PERFMON"), (19, "CAP_SYS_PTRACE")];
const CAP_SYS_ADMIN: u32 = 21;

/// The names of required capabilities missing from this process's effective set.
pub fn missing_capabilities() -> Vec<&'static str> {
    let effective = effective_capabilities().unwrap_or(0);
    missing_from(effective)
}

fn missing_from(effective: u64) -> Vec<&'static str> {
    let has = |bit: u32| effective & (1u64 << bit) != 0;
    REQUIRED
        .iter()
        .filter(|(bit, _)| {
            // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.
            !(has(*bit) || (*bit != 19 && has(CAP_SYS_ADMIN)))
        })
        .map(|(_, name)| *name)
        .collect()
}

fn effective_capabilities() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        assert!(missing_from(u64::MAX).is_empty());
    }

    #[test]
    fn nobody_misses_all() {
        assert_eq!(
            missing_from(0),
            vec!["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"]
        );
    }

    #[test]
    fn sys_admin_covers_bpf_and_perfmon_not_ptrace() {
        assert_eq!(missing_from(1 << CAP_SYS_ADMIN), vec!["CAP_SYS_PTRACE"]);
    }
}
