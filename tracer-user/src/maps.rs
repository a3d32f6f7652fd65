//! Parsing of `/proc/PID/maps`.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// "maj:min" of the file's device.
    pub dev: String,
    pub inode: u64,
    pub pathname: Option<String>,
}

impl MapEntry {
    pub fn executable(&self) -> bool {
        self.perms.as_bytes().get(2) == Some(&b'x')
    }

    /// A regular file backs this mapping (not anonymous, [heap], [vdso] …).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.pathname.as_deref().is_some_and(|p| p.starts_with('/'))
    }

    /// The device as `stat` gives it (`st_dev`), from "maj:min".
    pub fn dev_number(&self) -> Option<u64> {
        let (major, minor) = self.dev.split_once(':')?;
        let major = u32::from_str_radix(major, 16).ok()?;
        let minor = u32::from_str_radix(minor, 16).ok()?;
        Some(libc::makedev(major, minor))
    }

    /// The path without the " (deleted)" suffix the kernel adds to unlinked files.
    pub fn file_path(&self) -> Option<PathBuf> {
        let p = self.pathname.as_deref()?;
        Some(PathBuf::from(p.strip_suffix(" (deleted)").unwrap_or(p)))
    }
}

/// Parses one line; `None` for a malformed one (the caller skips it).
pub fn parse_line(line: &str) -> Option<MapEntry> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let pathname = fields.next().map(str::trim_start).filter(|s| !s.is_empty());
    let (start, end) = range.split_once('-')?;
    Some(MapEntry {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms: perms.to_owned(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: dev.to_owned(),
        inode: inode.parse().ok()?,
        pathname: pathname.map(str::to_owned),
    })
}

pub fn parse(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_anonymous_lines() {
        let text = "\
55d4c3a00000-55d4c3a01000 r--p 00000000 fe:01 1234                       /usr/bin/cat
55d4c3a01000-55d4c3a05000 r-xp 00001000 fe:01 1234                       /usr/bin/cat
7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00 0                          [stack]
7f0000000000-7f0000001000 rw-p 00000000 00:00 0 
7f1000000000-7f1000002000 r-xp 00002000 fe:01 99                         /tmp/my lib.so (deleted)
garbage line";
        let maps = parse(text);
        assert_eq!(maps.len(), 5);
        assert!(maps[1].executable() && maps[1].is_file());
        assert_eq!(maps[1].offset, 0x1000);
        assert_eq!(maps[1].inode, 1234);
        assert_eq!(maps[2].pathname.as_deref(), Some("[stack]"));
        assert!(!maps[2].is_file());
        assert_eq!(maps[3].pathname, None);
        assert_eq!(maps[4].file_path(), Some(PathBuf::from("/tmp/my lib.so")));
    }
}
