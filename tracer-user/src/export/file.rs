//! NDJSON (or human) records appended to a file a log shipper tails:
//! created 0600, one write per record, reopened on SIGHUP after logrotate
//! moved it, and rotated by size when asked (path → path.1 → … path.N).

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result};

use crate::{output::Format, record::Record};

pub struct FileSink {
    path: PathBuf,
    format: Format,
    file: File,
    written: u64,
    /// Rotate when the file would grow past this many bytes (0: never).
    max_bytes: u64,
    /// Rotated files kept.
    keep: u32,
    line: Vec<u8>,
    /// Records that could not be written (a full disk, say), and whether
    /// the last write failed (said once when it starts, once when it ends).
    pub dropped: u64,
    failing: bool,
}

impl FileSink {
    pub fn open(path: PathBuf, format: Format, max_bytes: u64, keep: u32) -> Result<Self> {
        let file = open_append(&path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path,
            format,
            file,
            written,
            max_bytes,
            keep: keep.max(1),
            line: Vec::with_capacity(4096),
            dropped: 0,
            failing: false,
        })
    }

    /// The file's path, naming it in reports.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Writes one record; a failure is counted (and said when writing
    /// starts and stops failing), never passed on: tracing goes on. A
    /// report of what exporters lost (`counted` false) that cannot be
    /// written is not itself counted, or a full disk would report its own
    /// reports without end.
    pub fn offer(&mut self, record: &Record, counted: bool) {
        match self.write(record) {
            Ok(()) if self.failing => {
                self.failing = false;
                log::warn!(
                    "{}: writing again ({} records lost so far)",
                    self.path.display(),
                    self.dropped
                );
            }
            Ok(()) => {}
            Err(err) => {
                if counted {
                    self.dropped += 1;
                }
                if !self.failing {
                    self.failing = true;
                    log::warn!("{err:#}: records are counted as lost until it works again");
                }
            }
        }
    }

    fn write(&mut self, record: &Record) -> Result<()> {
        self.line.clear();
        match self.format {
            Format::Ndjson => {
                serde_json::to_writer(&mut self.line, record)
                    .with_context(|| format!("encoding a {} record", record.kind))?;
                self.line.push(b'\n');
            }
            Format::Human => crate::output::render_human(&mut self.line, record)?,
        }
        if self.max_bytes > 0
            && self.written > 0
            && self.written + self.line.len() as u64 > self.max_bytes
        {
            self.rotate()?;
        }
        // One write per record: a tailing reader never sees half a line.
        if let Err(err) = self.file.write_all(&self.line) {
            // Part of the line may be in (a full disk): cut it off, so the
            // file stays whole lines and the next record starts clean.
            let _ = self.file.set_len(self.written);
            return Err(err).with_context(|| format!("writing {}", self.path.display()));
        }
        self.written += self.line.len() as u64;
        Ok(())
    }

    /// The file was moved away (logrotate's create mode): start a new one
    /// at the path. Nothing is lost: records before this went to the old
    /// file (still open until now), records after to the new one.
    pub fn reopen(&mut self) -> Result<()> {
        self.file = open_append(&self.path)?;
        self.written = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(&self.path, numbered(1))
            .with_context(|| format!("rotating {}", self.path.display()))?;
        self.reopen()
    }
}

fn open_append(path: &PathBuf) -> Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open output file {}", path.display()))?;
    // Records carry program data: private even if the file existed.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    Ok(f)
}
