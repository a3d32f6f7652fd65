//! Which processes are traced beyond the ones named on the command line:
//! files watched by identity (`attach --exe`, the daemon's exe selector),
//! and the daemon's selectors decided at exec (cgroup, container, "every Go
//! program", everything). The kernel matches watched files and comms
//! itself; the rest are decided here from exec records.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
};

use tracer_common::WatchedFile;

/// What the daemon's config selects, as process work applies it.
#[derive(Debug, Default, Clone)]
pub struct SelectConfig {
    /// Executables named now (globs expanded).
    pub executables: Vec<PathBuf>,
    /// Whether files picked at exec by other selectors stay watched.
    pub keep_others: bool,
    pub comms: Vec<String>,
    pub exec: Option<ExecSelect>,
    pub max_watched_files: usize,
    pub max_records_per_sec: Option<u32>,
    pub crashloop: Option<crate::crashloop::Rule>,
}

/// Files watched, as the kernel keys them, and the paths they were named by.
#[derive(Default)]
pub struct Watched {
    paths: HashMap<WatchedFile, PathBuf>,
    pub max: usize,
}

impl Watched {
    pub fn new() -> Self {
        Self {
            paths: HashMap::new(),
            max: usize::MAX,
        }
    }

    pub fn contains(&self, key: &WatchedFile) -> bool {
        self.paths.contains_key(key)
    }

    pub fn path(&self, key: &WatchedFile) -> Option<&PathBuf> {
        self.paths.get(key)
    }

    pub fn insert(&mut self, key: WatchedFile, path: PathBuf) {
        self.paths.insert(key, path);
    }

    pub fn remove(&mut self, key: &WatchedFile) {
        self.paths.remove(key);
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn full(&self) -> bool {
        self.paths.len() >= self.max
    }

    pub fn list(&self) -> Vec<(WatchedFile, PathBuf)> {
        self.paths.iter().map(|(k, p)| (*k, p.clone())).collect()
    }
}

/// The daemon's exec-time selectors.
#[derive(Debug, Default, Clone)]
pub struct ExecSelect {
    /// Cgroup path patterns: a process in a matching cgroup or below it.
    pub cgroups: Vec<glob::Pattern>,
    /// Container id prefixes.
    pub containers: Vec<String>,
    pub go: bool,
    pub all: bool,
    /// Files already judged (file-wide selectors only).
    pub decided: HashMap<WatchedFile, bool>,
}

impl ExecSelect {
    /// Whether where a process runs (its cgroup) can select it.
    pub fn by_place(&self) -> bool {
        !self.cgroups.is_empty() || !self.containers.is_empty()
    }

    /// A cgroup path selected by a pattern (it or an ancestor matches) or
    /// holding a selected container.
    pub fn matches_place(&self, cgroup: &str) -> bool {
        let mut at = cgroup;
        loop {
            if self.cgroups.iter().any(|p| p.matches(at)) {
                return true;
            }
            match at.rfind('/') {
                Some(0) | None => break,
                Some(i) => at = &at[..i],
            }
        }
        crate::record::container_id(cgroup)
            .is_some_and(|id| self.containers.iter().any(|c| id.starts_with(c.as_str())))
    }
}

/// Keys of `wanted` paths, for forgetting files no longer named.
pub fn keys_of(paths: &[PathBuf]) -> HashSet<WatchedFile> {
    paths
        .iter()
        .filter_map(|p| crate::procfs::file_key(p).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ExecSelect;

    #[test]
    fn cgroup_patterns_match_the_cgroup_or_an_ancestor_and_containers_by_prefix() {
        let id = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708";
        let s = ExecSelect {
            cgroups: vec![
                glob::Pattern::new("/system.slice/app.service").unwrap(),
                glob::Pattern::new("/kubepods.slice/*/pod-web*").unwrap(),
            ],
            containers: vec!["4f1c2a3b5d6e".into()],
            ..Default::default()
        };
        assert!(s.matches_place("/system.slice/app.service"));
        assert!(s.matches_place("/system.slice/app.service/worker"));
        assert!(!s.matches_place("/system.slice/app.service2"));
        assert!(s.matches_place("/kubepods.slice/burstable/pod-web-7/ctr"));
        assert!(!s.matches_place("/kubepods.slice/burstable/pod-db-1"));
        assert!(s.matches_place(&format!("/system.slice/docker-{id}.scope")));
        assert!(!s.matches_place("/user.slice/user-0.slice/session-3.scope"));
    }
}
