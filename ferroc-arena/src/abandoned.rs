//! The set of abandoned slabs of one arena.
//!
//! When a thread's context dies while some of its slabs still hold live blocks, those slabs are
//! *abandoned*: their blocks stay valid, any thread may still free into them, and another
//! context may *reclaim* them and allocate from them again.
//!
//! # Why a bitmap, and why it is free of ABA
//! The set is one bit per slab of the arena (the arena's *abandoned* bitmap): set by
//! [`AbandonedSet::abandon`], taken by [`AbandonedSet::reclaim`] with a single CAS on the
//! 64-bit word holding it that clears one set bit. It is ABA-free by construction, not by a
//! tag or an epoch:
//! - A slab's identity is its bit index, fixed for the life of the arena; the set stores no
//!   pointer, so there is nothing to free, recycle, or dereference after it changed.
//! - The value a reclaimer's CAS installs (`word & !bit`) is computed from the word it
//!   compared against and nothing else. In a Treiber stack of slab pointers the CAS installs
//!   a `next` link read from the old top node, which is stale if that node was popped and
//!   pushed again meanwhile (A-B-A): that is the bug a tag or an epoch exists to prevent.
//! - If the word went from A to B and back to A between a reclaimer's load and its CAS (the
//!   slab was reclaimed and abandoned again, or other bits came and went), the CAS succeeds
//!   on a word whose bit *is* set now, meaning the slab is abandoned now: taking it is exactly
//!   right. A successful CAS clears a bit that was set in the very value it replaced, so two
//!   reclaimers can never both take the same abandonment.
//!
//! A reclaim scans a few words per arena (one per 64 slabs), which is cheap next to what a
//! reclaim then does with the slab.
//!
//! # Orderings
//! - `abandon` sets the bit with `Release`: everything the abandoning thread wrote into the
//!   slab's header (its shards' lists, the owner reset) happens-before the reclaimer's use.
//! - `reclaim` takes the bit with an `Acquire` CAS, pairing with that release.
//! - `count` is a hint to skip scanning when nothing is abandoned; it is incremented *after* the
//!   bit is set and decremented *after* a bit is taken, so it never reads zero while a bit
//!   stays set for long: a reclaimer that reads a stale zero only misses a slab that the next
//!   reclaim finds. Two reclaimers racing an abandoner can briefly take it below zero (it
//!   wraps, as atomics do); the abandoner's increment brings it back, and a wrapped count only
//!   costs a scan. It uses `Relaxed` because it guards no data.
//!
//! Modelled under loom by `loom_tests/abandoned.rs`.

use ferroc_base::{
    bitmap::Bitmap,
    sync::atomic::{AtomicUsize, Ordering},
};

/// One arena's abandoned bits plus the arenas-wide count of abandoned slabs.
pub struct AbandonedSet<'a> {
    bits: Bitmap<'a>,
    count: &'a AtomicUsize,
}

impl<'a> AbandonedSet<'a> {
    /// A view of the abandoned bits `bits` and the shared counter `count`.
    pub fn new(bits: Bitmap<'a>, count: &'a AtomicUsize) -> Self {
        AbandonedSet { bits, count }
    }

    /// Marks slab `index` abandoned. The caller owns the slab and gives up ownership.
    pub fn abandon(&self, index: usize) {
        debug_assert!(self.bits.is_clear(index, 1), "slab abandoned twice");
        self.bits.set(index, 1);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one abandoned slab, whose index is returned to its new, sole owner.
    pub fn reclaim(&self) -> Option<usize> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let index = self.bits.take_one(0, self.bits.len())?;
        self.count.fetch_sub(1, Ordering::Relaxed);
        Some(index)
    }

    /// Takes slab `index` if it is abandoned.
    pub fn reclaim_at(&self, index: usize) -> bool {
        let taken = self.bits.take_one(index, 1).is_some();
        if taken {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        taken
    }
}
