//! A live process as /proc shows it, read while it lives.
//!
//! [`Capture::take`] is what the capture thread does the moment a process
//! execs: the memory map and an open descriptor for every mapped file, and
//! nothing parsed. A process may die a millisecond later; what was captured
//! is enough to symbolize its crash afterwards, from files it no longer
//! holds, whatever the rest of crashtrace was busy with meanwhile.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use tracer_common::WatchedFile;

use crate::{
    maps::{self, MapEntry},
    record::Container,
};

/// A file's identity: device and inode (what /proc/PID/maps and the
/// kernel name it by), with size and modification time so that a file
/// rewritten in place is a new file, not a stale cached one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev` as userspace sees it (glibc's `makedev` encoding).
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileId {
    pub fn of(file: &std::fs::File) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let m = file.metadata()?;
        Ok(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }

    pub fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// A mapped file, opened while its process lived.
pub struct OpenFile {
    pub id: FileId,
    pub file: File,
    /// The path the process knows it by (its mount namespace).
    pub path: String,
}

/// What was read of a process at one moment: its executable mappings, the
/// files behind them (open), its executable's path, its place (cgroup,
/// namespace pid).
pub struct Capture {
    pub pid: u32,
    /// readlink /proc/PID/exe, without " (deleted)".
    pub exe: Option<String>,
    /// Executable mappings, in address order.
    pub mappings: Vec<MapEntry>,
    /// One per distinct file among them (by device and inode).
    pub files: Vec<OpenFile>,
    pub container: Option<Container>,
    pub comm: Option<String>,
    /// Its working directory (resolves the relative path of a later exec).
    pub cwd: Option<PathBuf>,
    /// GOTRACEBACK in its environment (how much a Go runtime prints of
    /// its stacks, read once at its start).
    pub gotraceback: Option<String>,
}

impl Capture {
    /// Reads `pid` now. Fails when it is gone (or its memory is: a dying
    /// process's maps read empty, and no capture beats an empty one).
    pub fn take(pid: u32) -> std::io::Result<Self> {
        // The executable first: the one file a short-lived process is
        // sure to have, open before anything else can be lost.
        let exe_file = File::open(format!("/proc/{pid}/exe")).ok();
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
        // The link goes when the process exits, perhaps between the open
        // above and here; the open file names the same path.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .or_else(|| {
                let fd = std::os::fd::AsRawFd::as_raw_fd(exe_file.as_ref()?);
                std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
            })
            .map(|p| {
                let s = p.to_string_lossy().into_owned();
                s.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(s)
            });
        let mappings: Vec<MapEntry> = maps::parse(&text)
            .into_iter()
            .filter(MapEntry::executable)
            .collect();
        if mappings.is_empty() {
            return Err(std::io::Error::other(format!(
                "pid {pid} has no executable mappings (exiting?)"
            )));
        }
        let mut files: Vec<OpenFile> = Vec::new();
        if let (Some(file), Some(path)) = (exe_file, &exe)
            && let Ok(id) = FileId::of(&file)
        {
            files.push(OpenFile {
                id,
                file,
                path: path.clone(),
            });
        }
        for m in mappings.iter().filter(|m| m.is_file()) {
            let Some(dev) = m.dev_number() else { continue };
            if files.iter().any(|f| f.id.inode() == (dev, m.inode)) {
                continue;
            }
            if let Some(f) = open_mapped(pid, m, dev) {
                files.push(f);
            }
        }
        Ok(Self {
            pid,
            exe,
            mappings,
            files,
            container: Container::of_process(pid),
            comm: comm(pid),
            cwd: std::fs::read_link(format!("/proc/{pid}/cwd")).ok(),
            gotraceback: environ_var(pid, "GOTRACEBACK"),
        })
    }
}

/// `name`'s value in `pid`'s initial environment (/proc/PID/environ: what
/// it was started with, which is what a runtime reads at its start).
pub fn environ_var(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env_value(&environ, name)
}

fn env_value(environ: &[u8], name: &str) -> Option<String> {
    environ.split(|&b| b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

/// The file behind a mapping of `pid`: through /proc/PID/map_files (deleted
/// files, other mount namespaces), else /proc/PID/root/PATH, else PATH on
/// this host; each checked to be the mapped file (device and inode).
fn open_mapped(pid: u32, m: &MapEntry, dev: u64) -> Option<OpenFile> {
    let path = m.file_path()?.to_string_lossy().into_owned();
    let candidates = [
        PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)),
        PathBuf::from(format!("/proc/{pid}/root{path}")),
        PathBuf::from(&path),
    ];
    candidates.iter().find_map(|c| {
        let file = File::open(c).ok()?;
        let id = FileId::of(&file).ok()?;
        (id.inode() == (dev, m.inode)).then(|| OpenFile {
            id,
            file,
            path: path.clone(),
        })
    })
}

/// The process's `comm`.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// The process (thread group) `pid` belongs to, if it exists: a thread id
/// names its process.
pub fn process_of(pid: u32) -> Option<u32> {
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
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// A kernel thread (no memory of its own, nothing to trace).
pub fn is_kernel_thread(pid: u32) -> bool {
    // PF_KTHREAD in the flags field of /proc/PID/stat (the 9th).
    const PF_KTHREAD: u64 = 0x0020_0000;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().nth(6)?.parse::<u64>().ok()
        })
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// A file's identity as the kernel's exec path sees it: (`s_dev` in the
/// kernel's encoding, `(major << 20) | minor`, inode).
pub fn file_key(path: &Path) -> Result<WatchedFile> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok(kernel_file_key((meta.dev(), meta.ino())))
}

/// A file's (device as `stat` gives it, inode) as the kernel's exec path
/// keys it ([`file_key`]).
pub fn kernel_file_key((dev, ino): (u64, u64)) -> WatchedFile {
    [
        (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev)),
        ino,
    ]
}

/// The processes whose executable is the file `key` names (the kernel's
/// device encoding and inode).
pub fn processes_running(key: WatchedFile) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| file_key(Path::new(&format!("/proc/{pid}/exe"))).is_ok_and(|k| k == key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::env_value;

    #[test]
    fn an_environment_variable_is_found_by_its_whole_name() {
        let environ = b"PATH=/bin\0GOTRACEBACK_X=1\0GOTRACEBACK=crash\0EMPTY=\0";
        assert_eq!(env_value(environ, "GOTRACEBACK").as_deref(), Some("crash"));
        assert_eq!(env_value(environ, "EMPTY").as_deref(), Some(""));
        assert_eq!(env_value(environ, "PAT"), None);
        assert_eq!(env_value(b"", "PATH"), None);
    }
}
