//! The table layouts by Go version (runtime/symtab.go, runtime2.go and
//! symtabinl.go of each version).

/// `.gopclntab` format, by the magic at its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Go 1.18–1.19 (`0xfffffff0`).
    Go118,
    /// Go 1.20 and later (`0xfffffff1`): `_func.startLine` added, inline
    /// tree entries reshaped.
    Go120,
}

/// `_func` fields by 32-bit word index (same in both formats).
pub const PCSP: usize = 4;
pub const NPCDATA: usize = 7;
pub const PCFILE: usize = 5;
pub const PCLN: usize = 6;
pub const CU_OFFSET: usize = 8;

impl Format {
    pub fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            0xffff_fff0 => Some(Self::Go118),
            0xffff_fff1 => Some(Self::Go120),
            _ => None,
        }
    }

    pub fn magic(self) -> u32 {
        match self {
            Self::Go118 => 0xffff_fff0,
            Self::Go120 => 0xffff_fff1,
        }
    }

    /// Size of `_func` up to and including `nfuncdata` (its last byte); the
    /// pcdata and funcdata offsets follow.
    pub fn func_size(self) -> usize {
        match self {
            Self::Go118 => 40,
            Self::Go120 => 44,
        }
    }

    pub fn func_id_offset(self) -> usize {
        self.func_size() - 4
    }

    /// `_func.flag` (abi.FuncFlag), the byte after the funcID.
    pub fn func_flag_offset(self) -> usize {
        self.func_size() - 3
    }

    /// Size of one `inlinedCall`.
    pub fn inlined_call_size(self) -> usize {
        match self {
            Self::Go118 => 20,
            Self::Go120 => 16,
        }
    }

    /// Offsets of (name offset, parentPc) in an `inlinedCall`.
    pub fn inlined_call_fields(self) -> (usize, usize) {
        match self {
            Self::Go118 => (12, 16),
            Self::Go120 => (4, 8),
        }
    }
}

/// The runtime's `readvarint`: (value, bytes used).
pub fn varint(p: &[u8]) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    for (i, &b) in p.iter().enumerate().take(5) {
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(varint(&[0x80]), None);
        assert_eq!(varint(&[]), None);
    }
}
