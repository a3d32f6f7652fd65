//! Decoding of ring-buffer records. The bytes come from the kernel but are
//! still checked: a short or unknown record is an error, never a panic.

use tracer_common::{CxxRecord, ModuleRecord, RustPanicMessageRecord, RustPanicRecord};
use tracer_common::{
    EventKind, ExecRecord, ExitRecord, ForkRecord, GoRecord, GoroutineRecord, Header, OomRecord,
    STACK_SNAPSHOT_BYTES, SignalGenerateRecord, SignalRecord, StackRecord,
};

pub enum KernelRecord {
    SignalDeliver(Box<SignalRecord>),
    SignalGenerate(SignalGenerateRecord),
    Exit(ExitRecord),
    Fork(ForkRecord),
    Exec(Box<ExecRecord>),
    Go(Box<GoRecord>),
    Goroutine(Box<GoroutineRecord>),
    Oom(Box<OomRecord>),
    Stack(StackSnapshot),
    Module(Box<ModuleRecord>),
    Cxx(Box<CxxRecord>),
    RustPanic(Box<RustPanicRecord>),
    RustPanicMessage(Box<RustPanicMessageRecord>),
}

impl KernelRecord {
    /// The kernel header: kind, and the task that wrote the record.
    pub fn header(&self) -> &Header {
        match self {
            Self::SignalDeliver(r) => &r.header,
            Self::SignalGenerate(r) => &r.header,
            Self::Exit(r) => &r.header,
            Self::Fork(r) => &r.header,
            Self::Exec(r) => &r.header,
            Self::Go(r) => &r.header,
            Self::Goroutine(r) => &r.header,
            Self::Oom(r) => &r.header,
            Self::Stack(r) => &r.header,
            Self::Module(r) => &r.header,
            Self::Cxx(r) => &r.header,
            Self::RustPanic(r) => &r.header,
            Self::RustPanicMessage(r) => &r.header,
        }
    }
}

/// A thread's user stack bytes from `sp` up (a [`StackRecord`], only the
/// filled part).
pub struct StackSnapshot {
    pub header: Header,
    pub sp: u64,
    /// Bytes from sp that could not be read (`data` holds garbage there).
    pub hole: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("{kind:?} record of {len} bytes, expected {expected}")]
    Truncated {
        kind: EventKind,
        len: usize,
        expected: usize,
    },
}

/// Copies a `T` out of `bytes` when it is long enough.
fn read<T: Copy>(bytes: &[u8], kind: EventKind) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    if bytes.len() < expected {
        return Err(DecodeError::Truncated {
            kind,
            len: bytes.len(),
            expected,
        });
    }
    // SAFETY: length checked; T is a #[repr(C)] POD record valid for any bits.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn decode(bytes: &[u8]) -> Result<KernelRecord, DecodeError> {
    if bytes.len() < size_of::<Header>() {
        return Err(DecodeError::Short(bytes.len()));
    }
    let raw_kind = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let kind = EventKind::from_u32(raw_kind).ok_or(DecodeError::UnknownKind(raw_kind))?;
    Ok(match kind {
        EventKind::SignalDeliver => KernelRecord::SignalDeliver(Box::new(read(bytes, kind)?)),
        EventKind::SignalGenerate => KernelRecord::SignalGenerate(read(bytes, kind)?),
        EventKind::Exit => KernelRecord::Exit(read(bytes, kind)?),
        EventKind::Fork => KernelRecord::Fork(read(bytes, kind)?),
        EventKind::Exec => KernelRecord::Exec(Box::new(read(bytes, kind)?)),
        EventKind::Go => KernelRecord::Go(Box::new(read(bytes, kind)?)),
        EventKind::Goroutine => KernelRecord::Goroutine(Box::new(read(bytes, kind)?)),
        EventKind::Oom => KernelRecord::Oom(Box::new(read(bytes, kind)?)),
        EventKind::Module => KernelRecord::Module(Box::new(read(bytes, kind)?)),
        EventKind::Cxx => KernelRecord::Cxx(Box::new(read(bytes, kind)?)),
        EventKind::RustPanic => KernelRecord::RustPanic(Box::new(read(bytes, kind)?)),
        EventKind::RustPanicMessage => KernelRecord::RustPanicMessage(Box::new(read(bytes, kind)?)),
        EventKind::Stack => {
            let data_at = std::mem::offset_of!(StackRecord, data);
            if bytes.len() < data_at {
                return Err(DecodeError::Truncated {
                    kind,
                    len: bytes.len(),
                    expected: data_at,
                });
            }
            let header: Header = read(bytes, kind)?;
            let word =
                |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
            let sp = word(std::mem::offset_of!(StackRecord, sp));
            let len_at = std::mem::offset_of!(StackRecord, len);
            let len = u32::from_ne_bytes(bytes[len_at..len_at + 4].try_into().unwrap_or([0; 4]));
            let len = (len as usize).min(STACK_SNAPSHOT_BYTES);
            let data = bytes
                .get(data_at..data_at + len)
                .ok_or(DecodeError::Truncated {
                    kind,
                    len: bytes.len(),
                    expected: data_at + len,
                })?
                .to_vec();
            let hole_at = std::mem::offset_of!(StackRecord, hole);
            let hole = u32::from_ne_bytes(bytes[hole_at..hole_at + 4].try_into().unwrap_or([0; 4]));
            KernelRecord::Stack(StackSnapshot {
                header,
                sp,
                hole: (hole as usize).min(data.len()),
                data,
            })
        }
    })
}

/// The `comm` bytes up to the first NUL, lossily as UTF-8.
pub fn comm(header: &Header) -> String {
    comm_bytes(&header.comm)
}

/// A task's `comm` up to the first NUL, lossily as UTF-8.
pub fn comm_bytes(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32) -> Vec<u8> {
        let h = Header {
            kind,
            pid: 42,
            tid: 43,
            _pad: 0,
            ts_ns: 7,
            comm: *b"worker\0\0\0\0\0\0\0\0\0\0",
        };
        // SAFETY: reading a POD value's bytes.
        unsafe {
            std::slice::from_raw_parts((&h as *const Header).cast::<u8>(), size_of::<Header>())
        }
        .to_vec()
    }

    #[test]
    fn rejects_short_and_unknown() {
        assert_eq!(decode(&[1, 0]).err(), Some(DecodeError::Short(2)));
        assert_eq!(
            decode(&header(99)).err(),
            Some(DecodeError::UnknownKind(99))
        );
        assert!(matches!(
            decode(&header(EventKind::SignalDeliver as u32)).err(),
            Some(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn decodes_exit() {
        let mut bytes = header(EventKind::Exit as u32);
        bytes.extend_from_slice(&(3u32 << 8).to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        match decode(&bytes) {
            Ok(KernelRecord::Exit(e)) => {
                assert_eq!(e.status, 3 << 8);
                assert_eq!(e.header.pid, 42);
                assert_eq!(comm(&e.header), "worker");
            }
            _ => panic!("not an exit record"),
        }
    }
}
