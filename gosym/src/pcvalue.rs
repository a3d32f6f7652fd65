//! Pc-value tables (`pctab`: sp delta, file, line, inline-tree index per
//! pc range), decoded as the runtime's `pcvalue` does, with a small cache.
//!
//! A table is a run of (value delta, pc delta) varint pairs from the
//! function's entry, so a lookup decodes from the start up to the pc. The
//! addresses a symbolizer is given cluster in functions (a profile, a batch
//! of a binary's addresses, the frames of several crashes) and each answer
//! reads three tables (inline index, file, line), so the rows decoded for
//! one lookup are kept for the next ones: the runtime keeps a cache for
//! the same reason (`pcvalueCache`). Rows are decoded only as far as a
//! lookup needs, so a single lookup costs what it did without the cache.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::varint;

/// Tables kept per thread: the three of an answer, for a physical function
/// and an inlined body or two.
const SLOTS_PER_THREAD: usize = 8;

/// One table, decoded as far as lookups have needed.
#[derive(Default)]
struct Decoded {
    /// The table's cache id, the offset of the table in pctab, and the
    /// entry of the function it was decoded for (the linker shares
    /// identical tables between functions).
    key: (u64, u32, u64),
    /// (end pc, value) of each row decoded so far, in pc order.
    rows: Vec<(u64, i32)>,
    /// Where decoding stopped: offset into pctab, the value and pc there.
    next: usize,
    val: i32,
    cur: u64,
    /// The table's end was reached (or it is corrupt): no more rows.
    ended: bool,
}

impl Decoded {
    fn reset(&mut self, key: (u64, u32, u64), start: usize) {
        self.key = key;
        self.rows.clear();
        self.next = start;
        self.val = -1;
        self.cur = key.2;
        self.ended = false;
    }

    /// The value at `pc`, decoding more rows of `pctab` when needed.
    fn value(&mut self, pctab: &[u8], min_lc: u64, pc: u64) -> Option<i32> {
        if let Some(&(end, _)) = self.rows.last()
            && pc < end
        {
            let i = self.rows.partition_point(|&(end, _)| end <= pc);
            return self.rows.get(i).map(|&(_, v)| v);
        }
        while !self.ended {
            match self.step(pctab, min_lc) {
                Some(end) if pc < end => return Some(self.val),
                Some(_) => {}
                None => self.ended = true,
            }
        }
        None
    }

    /// Decodes one row: its end pc.
    fn step(&mut self, pctab: &[u8], min_lc: u64) -> Option<u64> {
        let p = pctab.get(self.next..)?;
        let (uvdelta, n) = varint(p)?;
        if uvdelta == 0 && !self.rows.is_empty() {
            return None;
        }
        let (pcdelta, m) = varint(p.get(n..)?)?;
        let delta = ((uvdelta >> 1) as i32) ^ -((uvdelta & 1) as i32);
        let end = self
            .cur
            .checked_add(u64::from(pcdelta).checked_mul(min_lc)?)?;
        self.next += n + m;
        self.val = self.val.wrapping_add(delta);
        self.cur = end;
        self.rows.push((end, self.val));
        Some(end)
    }
}

/// The cache: a few tables per thread, the least recently used replaced.
/// Per thread, not per table behind a lock: the symbolizer answers from
/// several threads at once, and a shared lock taken several times an
/// answer would cost more than it saves.
#[derive(Default)]
struct Slots {
    slots: Vec<(u64, Decoded)>,
    clock: u64,
}

thread_local! {
    static SLOTS: std::cell::RefCell<Slots> = std::cell::RefCell::default();
}

/// One table of pc-value tables' cache key: unique for the process's
/// lifetime, so a table dropped and another made at the same address
/// never finds the first one's rows.
pub(crate) struct PcValueCache {
    id: u64,
}

impl Default for PcValueCache {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl PcValueCache {
    /// The value of the table at `table_off` (from the start of `pctab`)
    /// at `pc`, for the function entered at `entry`.
    pub(crate) fn value(
        &self,
        pctab: &[u8],
        min_lc: u64,
        table_off: u32,
        entry: u64,
        pc: u64,
    ) -> Option<i32> {
        let key = (self.id, table_off, entry);
        SLOTS.with(|cell| {
            let Ok(mut cache) = cell.try_borrow_mut() else {
                // Re-entered (cannot happen today): decode without caching.
                let mut d = Decoded::default();
                d.reset(key, table_off as usize);
                return d.value(pctab, min_lc, pc);
            };
            cache.clock += 1;
            let now = cache.clock;
            let slots = &mut cache.slots;
            let i = match slots.iter().position(|(_, d)| d.key == key) {
                Some(i) => i,
                None if slots.len() < SLOTS_PER_THREAD => {
                    slots.push((0, Decoded::default()));
                    let i = slots.len() - 1;
                    slots[i].1.reset(key, table_off as usize);
                    i
                }
                None => {
                    let (i, _) = slots
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (used, _))| *used)?;
                    slots[i].1.reset(key, table_off as usize);
                    i
                }
            };
            let (used, decoded) = slots.get_mut(i)?;
            *used = now;
            decoded.value(pctab, min_lc, pc)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (value delta, pc delta) pairs as the linker writes them.
    fn table(rows: &[(i32, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |mut v: u32| {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        };
        for &(dv, dpc) in rows {
            put(((dv << 1) ^ (dv >> 31)) as u32);
            put(dpc);
        }
        put(0);
        out
    }

    #[test]
    fn values_equal_a_decode_from_the_start_in_any_order() {
        // value 10 on [0x100, 0x110), 12 on [0x110, 0x130), 7 on [0x130, 0x131)
        let mut pctab = vec![0xaa; 3];
        pctab.extend(table(&[(11, 0x10), (2, 0x20), (-5, 1)]));
        let cache = PcValueCache::default();
        let expect = |pc: u64| match pc {
            0x100..0x110 => Some(10),
            0x110..0x130 => Some(12),
            0x130 => Some(7),
            _ => None,
        };
        for pc in [0x131u64, 0x100, 0x12f, 0x110, 0x130, 0x105, 0x200, 0x10f] {
            assert_eq!(cache.value(&pctab, 1, 3, 0x100, pc), expect(pc), "{pc:#x}");
        }
        // The same table for another function (shared by the linker).
        assert_eq!(cache.value(&pctab, 1, 3, 0x1000, 0x1011), Some(12));
        assert_eq!(cache.value(&pctab, 1, 3, 0x100, 0x111), Some(12));
        // Another table's bytes at the same offset: its own rows.
        let mut other = vec![0xaa; 3];
        other.extend(table(&[(1, 0x40)]));
        let second = PcValueCache::default();
        assert_eq!(second.value(&other, 1, 3, 0x100, 0x12f), Some(0));
        assert_eq!(cache.value(&pctab, 1, 3, 0x100, 0x12f), Some(12));
    }

    #[test]
    fn more_tables_than_slots_and_corrupt_ones() {
        let mut pctab = Vec::new();
        let mut offs = Vec::new();
        for i in 0..20 {
            offs.push(pctab.len() as u32);
            pctab.extend(table(&[(i + 1, 4), (1, 4)]));
        }
        let cache = PcValueCache::default();
        for round in 0..3 {
            for (i, &off) in offs.iter().enumerate() {
                let v = i as i32;
                assert_eq!(cache.value(&pctab, 1, off, 0, 5), Some(v + 1), "{round}");
                assert_eq!(cache.value(&pctab, 1, off, 0, 1), Some(v), "{round}");
            }
        }
        // Cut short, or pointing past the end: no value, no panic.
        assert_eq!(cache.value(&[0x96], 1, 0, 0, 0), None);
        assert_eq!(cache.value(&pctab, 1, 10_000, 0, 0), None);
    }
}
