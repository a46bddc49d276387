//! [`RangeTable`]: a fixed, lock-free table of disjoint address ranges, one word a range.
//!
//! `Mmap` records there the hugetlb-backed prefix of each live chunk (`mmap/huge.rs`), so that
//! `decommit`, `move_pages` and `deallocate`, which only get an address range, can tell
//! whether it is hugetlb memory.
//!
//! # Invariant
//! A non-zero slot holds exactly one range, packed in one word (start and length in units of
//! `1 << UNIT_SHIFT` bytes): the range of one live chunk, or of one being made or released by
//! the thread that owns it. The ranges of the table never overlap, because the chunks they
//! belong to are disjoint. A range's slot is claimed before its chunk is handed to anyone and
//! freed after its owner's last use, so a lookup by a thread holding part of a live chunk is
//! exact: it finds that chunk's range if it has one, and no other range overlaps.
//!
//! # Orderings, and why each suffices
//! - [`claim`](RangeTable::claim) is a `Relaxed` CAS from 0. The claiming thread publishes
//!   nothing through the slot: whoever later looks the range up got the chunk through an
//!   ordered hand-over (the `BaseAlloc` contract), which carries the claim with it.
//! - [`forget`](RangeTable::forget) is a `Release` store of 0, paired with the `Acquire` loads
//!   of [`overlapping`](RangeTable::overlapping). A word is read whole, so a lookup never pairs
//!   one range's start with another's length.
//! - A chunk unmapped before another reused its addresses had its slot freed before its
//!   `munmap`, which the kernel's address-space lock orders before the `mmap` of the new
//!   chunk, and so before that chunk's hand-over to a thread looking it up: that thread does
//!   not see the old range.
//! - `any` is set (`Relaxed`) before the first claim and never cleared; a thread that holds a
//!   range got its chunk, hence the flag, through the same ordered hand-over. Until then a
//!   lookup is one load.
//!
//! Modelled under loom by `loom_tests/range_table.rs`: a lookup after the hand-over of a chunk
//! while other threads claim and forget slots, and a reused address range.
#![cfg_attr(ferroc_loom, allow(dead_code))]

use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Ranges are packed in units of `1 << UNIT_SHIFT` bytes (2 MiB: every hugetlb range is
/// aligned to that): the start in the high bits, the length in the low [`LEN_BITS`].
pub(crate) const UNIT_SHIFT: u32 = 21;
/// Bits of a packed range's length (up to 512 TiB with 2 MiB units).
const LEN_BITS: u32 = 28;

/// A table of at most `N` disjoint ranges (see the module docs).
pub(crate) struct RangeTable<const N: usize> {
    slots: [AtomicU64; N],
    /// Set once any range has been claimed, never cleared.
    any: AtomicBool,
}

impl<const N: usize> RangeTable<N> {
    /// An empty table.
    #[cfg(not(ferroc_loom))]
    pub(crate) const fn new() -> Self {
        RangeTable {
            slots: [const { AtomicU64::new(0) }; N],
            any: AtomicBool::new(false),
        }
    }

    /// An empty table (loom's atomics have no `const` constructor).
    #[cfg(ferroc_loom)]
    pub(crate) fn new() -> Self {
        RangeTable {
            slots: core::array::from_fn(|_| AtomicU64::new(0)),
            any: AtomicBool::new(false),
        }
    }

    /// Records `[start, start + len)` in a free slot; `None` when the table is full or the
    /// range cannot be packed (not in whole units, empty, or too large).
    pub(crate) fn claim(&self, start: usize, len: usize) -> Option<usize> {
        let word = pack(start, len)?;
        self.any.store(true, Ordering::Relaxed);
        self.slots.iter().position(|slot| {
            slot.load(Ordering::Relaxed) == 0
                && slot
                    .compare_exchange(0, word, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Frees slot `i` (a slot [`claim`](Self::claim) returned to the caller).
    pub(crate) fn release(&self, i: usize) {
        self.slots[i].store(0, Ordering::Release);
    }

    /// Frees the slot of the range that starts at `start`, if there is one (before its chunk
    /// is unmapped).
    pub(crate) fn forget(&self, start: usize) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let found = self.slots.iter().position(|slot| {
            let word = slot.load(Ordering::Relaxed);
            word != 0 && unpack(word).0 == start
        });
        if let Some(i) = found {
            self.release(i);
        }
    }

    /// The recorded range `[begin, end)` that overlaps `[ptr, ptr + len)`, if any (exact for a
    /// range of a live chunk the caller holds: see the module docs).
    #[inline]
    pub(crate) fn overlapping(&self, ptr: usize, len: usize) -> Option<(usize, usize)> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.scan(ptr, ptr.saturating_add(len))
    }

    #[cold]
    fn scan(&self, begin: usize, end: usize) -> Option<(usize, usize)> {
        self.slots.iter().find_map(|slot| {
            let word = slot.load(Ordering::Acquire);
            let (s, e) = unpack(word);
            (word != 0 && s < end && begin < e).then_some((s, e))
        })
    }

    /// Whether slot `i` is free (a snapshot, for tests).
    #[cfg(all(test, not(ferroc_loom)))]
    pub(crate) fn is_free(&self, i: usize) -> bool {
        self.slots[i].load(Ordering::Relaxed) == 0
    }
}

/// One word for `[start, start + len)`, or `None` if it does not fit one.
fn pack(start: usize, len: usize) -> Option<u64> {
    let unit = (1usize << UNIT_SHIFT) - 1;
    if start & unit != 0 || len & unit != 0 {
        return None;
    }
    let (s, l) = ((start >> UNIT_SHIFT) as u64, (len >> UNIT_SHIFT) as u64);
    (l != 0 && l < 1 << LEN_BITS && s < 1 << (64 - LEN_BITS)).then_some(s << LEN_BITS | l)
}

/// The range `[start, end)` of a packed word.
fn unpack(word: u64) -> (usize, usize) {
    let start = ((word >> LEN_BITS) as usize) << UNIT_SHIFT;
    let len = ((word & ((1 << LEN_BITS) - 1)) as usize) << UNIT_SHIFT;
    (start, start + len)
}

#[cfg(all(test, not(ferroc_loom)))]
mod tests {
    use super::*;

    const UNIT: usize = 1 << UNIT_SHIFT;

    #[test]
    fn packing_round_trips() {
        let start = 0x7f00_0000_0000usize;
        let word = pack(start, 3 * UNIT).unwrap();
        assert_eq!(unpack(word), (start, start + 3 * UNIT));
        assert_eq!(pack(start, 0), None);
        assert_eq!(pack(start + 4096, UNIT), None, "not in whole units");
        assert_eq!(pack(start, UNIT << LEN_BITS), None, "too long");
    }

    #[test]
    fn claims_lookups_and_forgets() {
        let t = RangeTable::<2>::new();
        assert_eq!(t.overlapping(0, usize::MAX), None);
        let a = t.claim(4 * UNIT, 2 * UNIT).unwrap();
        let b = t.claim(10 * UNIT, UNIT).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.claim(20 * UNIT, UNIT), None, "full");
        assert_eq!(t.overlapping(5 * UNIT, 1), Some((4 * UNIT, 6 * UNIT)));
        assert_eq!(
            t.overlapping(6 * UNIT, 4 * UNIT),
            None,
            "touching is not overlapping"
        );
        assert_eq!(
            t.overlapping(9 * UNIT, 2 * UNIT),
            Some((10 * UNIT, 11 * UNIT))
        );
        t.forget(4 * UNIT);
        assert!(t.is_free(a));
        assert_eq!(t.overlapping(5 * UNIT, 1), None);
        t.release(b);
        assert_eq!(t.overlapping(0, usize::MAX), None);
    }
}
