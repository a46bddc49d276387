//! The purge clock of an arena: its deadline ([`Deadline`]) and the per-slab release stamps,
//! read and written through [`PurgeView`], lock-free.
//!
//! A released slab is marked *pending* and stamped with its release time; the arena's
//! deadline is the earliest time one of its pending slabs becomes due. Whoever finds the
//! deadline passed takes it (one CAS) and scans the arena: it decommits each pending slab whose
//! own delay has passed and makes the earliest deadline of the rest the arena's next one.
//!
//! # Invariants
//! - **No deadline is lost.** Once a release has scheduled its deadline `at`, either the
//!   arena's deadline is at most `at`, or a purger took a deadline after that schedule (in the
//!   deadline's modification order) and its scan sees the released slab: it purges the slab or
//!   schedules the slab's own deadline again. So a pending slab is never left without a
//!   deadline that covers it, unless someone else owns it at the moment of the scan: a claim
//!   takes it for good, another purger purges it; only a recycler (`Arenas::warm_up`) that
//!   took it for a moment and could not move its pages gives it back still pending without a
//!   deadline, and the arena's next scan (after any release into it, or a forced purge)
//!   picks it up.
//! - **One purger per deadline.** A deadline is taken by a CAS from the value read to "none",
//!   so of the threads that find the same deadline passed exactly one runs the scan.
//! - A slab's stamp is written only by its owner, before it gives the slab up, and read only
//!   by a purger that owns the slab (it claimed its *used* bit), so a stamp never races.
//!
//! # Orderings
//! - Every write of the deadline is a read-modify-write (`fetch_min`, the taking CAS, `swap`),
//!   so each one continues the release sequence of every earlier `Release` one.
//!   [`Deadline::schedule`] is a `Release` `fetch_min`, even when it leaves the value as it was
//!   (an earlier deadline stays): the releaser's *pending* bits and stamps are written before
//!   it. [`Deadline::take_due`] and [`Deadline::take`] are `Acquire`: the purger that takes a
//!   deadline written at or after a schedule synchronises with that schedule and sees its
//!   pending bits in its scan. That is the "no deadline is lost" invariant. (A `Relaxed`
//!   schedule that found an earlier deadline and wrote nothing would let a purger take that
//!   earlier deadline, miss the new pending bit in its scan, and drop the new deadline.)
//! - The first load in [`Deadline::take_due`] is `Relaxed`: it only guides the CAS, which
//!   fails on anything newer.
//! - The stamps are `Relaxed`: the releaser writes them before the `Release` of the slab's
//!   *used* bit ([`ferroc_base::bitmap::Bitmap::release`]), and the purger reads a stamp only
//!   after it claimed that bit with an `Acquire` CAS, which reads that release or a later one.
//!
//! Modelled under loom by `loom_tests/purge_clock.rs`: a release racing a purger (no deadline
//! lost, stamps seen), and two purgers racing for one due deadline (exactly one scans).
#![cfg_attr(ferroc_loom, allow(dead_code))]

use core::cell::Cell;

use ferroc_base::{
    bitmap::Bitmap,
    sync::atomic::{AtomicU64, Ordering},
};

/// The value of a [`Deadline`] with nothing scheduled.
const NONE: u64 = u64::MAX;

/// When an arena's pending slabs are next due (base clock, ms), or none.
pub(crate) struct Deadline(AtomicU64);

impl Deadline {
    ferroc_base::const_unless_loom! {
        /// No deadline.
        pub(crate) fn new() -> Self {
            Deadline(AtomicU64::new(NONE))
        }
    }

    /// Makes `at` the deadline if it is earlier than the one set (or none is).
    #[inline]
    pub(crate) fn schedule(&self, at: u64) {
        self.0.fetch_min(at, Ordering::Release);
    }

    /// Takes the deadline if it has passed at time `now`: `true` for exactly one of the
    /// threads that find the same deadline passed, which must then scan the arena.
    #[inline]
    pub(crate) fn take_due(&self, now: u64) -> bool {
        let at = self.0.load(Ordering::Relaxed);
        at != NONE
            && at <= now
            && self
                .0
                .compare_exchange(at, NONE, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the deadline whatever it is (a forced purge scans the arena anyway).
    pub(crate) fn take(&self) {
        self.0.swap(NONE, Ordering::Acquire);
    }

    /// The deadline, if one is set (a snapshot).
    #[cfg(test)]
    pub(crate) fn get(&self) -> Option<u64> {
        let at = self.0.load(Ordering::Relaxed);
        (at != NONE).then_some(at)
    }
}

/// The purge state of one arena: its *used* and *pending* bitmaps, the release stamps of its
/// slabs (one per slab) and its deadline.
pub(crate) struct PurgeView<'a> {
    used: Bitmap<'a>,
    pending: Bitmap<'a>,
    stamps: &'a [AtomicU64],
    deadline: &'a Deadline,
}

impl<'a> PurgeView<'a> {
    /// A view over one arena's state; `stamps` has one entry per bit of the bitmaps.
    #[inline]
    pub(crate) fn new(
        used: Bitmap<'a>,
        pending: Bitmap<'a>,
        stamps: &'a [AtomicU64],
        deadline: &'a Deadline,
    ) -> Self {
        debug_assert!(stamps.len() >= used.len());
        PurgeView {
            used,
            pending,
            stamps,
            deadline,
        }
    }

    /// Gives back the owned slabs `index..index + count` as pending purge, released at `now`
    /// (stamped, and the arena's deadline moved to `now + delay` if that is earlier); without
    /// a clock (`now` is `None`) they wait for a forced purge.
    pub(crate) fn release(&self, index: usize, count: usize, now: Option<u64>, delay: u64) {
        if let Some(now) = now {
            for stamp in &self.stamps[index..index + count] {
                stamp.store(now, Ordering::Relaxed);
            }
        }
        self.pending.set(index, count);
        self.used.release(index, count);
        if let Some(now) = now {
            // The earliest deadline of the arena's pending slabs, so a shorter delay set later
            // is not stuck behind an earlier, longer one.
            self.deadline.schedule(now.saturating_add(delay));
        }
    }

    /// Scans the arena for pending slabs that nobody has claimed meanwhile and, at time `now`,
    /// were released at least `delay` ago (all of them when `now` is `None`). Calls
    /// `purge(index, count)` for each stretch of consecutive such slabs while owning them
    /// (it must clear their *pending* bits), then gives them back. The earliest deadline of
    /// the slabs left pending becomes the arena's next one.
    pub(crate) fn purge_due_slabs(
        &self,
        now: Option<u64>,
        delay: u64,
        mut purge: impl FnMut(usize, usize),
    ) {
        let next = Cell::new(NONE);
        // Takes slab `j` for the purger if it is free, pending and due. Its pending bit and
        // stamp are only changed by its owner, so once we own it the second look is final (it
        // may have been reused and purged meanwhile).
        let take = |j: usize| {
            if !self.pending.is_set(j, 1) || !self.used.try_claim_at(j, 1) {
                return false;
            }
            let due = match now {
                None => true,
                Some(now) => {
                    let at = self.stamps[j].load(Ordering::Relaxed).saturating_add(delay);
                    if at > now {
                        next.set(next.get().min(at));
                    }
                    at <= now
                }
            };
            let still = due && self.pending.is_set(j, 1);
            if !still {
                self.used.release(j, 1);
            }
            still
        };
        let slabs = self.used.len();
        let mut i = 0;
        while i < slabs {
            if !take(i) {
                i += 1;
                continue;
            }
            let mut end = i + 1;
            while end < slabs && take(end) {
                end += 1;
            }
            purge(i, end - i);
            self.used.release(i, end - i);
            i = end;
        }
        if next.get() != NONE {
            self.deadline.schedule(next.get());
        }
    }
}

#[cfg(all(test, not(ferroc_loom)))]
mod tests {
    use super::*;

    #[test]
    fn deadline_keeps_the_earliest_and_is_taken_once() {
        let d = Deadline::new();
        assert_eq!(d.get(), None);
        assert!(!d.take_due(u64::MAX - 1), "nothing scheduled");
        d.schedule(20);
        d.schedule(30);
        assert_eq!(d.get(), Some(20));
        d.schedule(10);
        assert_eq!(d.get(), Some(10));
        assert!(!d.take_due(9));
        assert!(d.take_due(10));
        assert!(!d.take_due(10), "taken once");
        assert_eq!(d.get(), None);
        d.schedule(5);
        d.take();
        assert_eq!(d.get(), None);
    }

    #[test]
    fn purge_scan_takes_due_stretches_and_reschedules_the_rest() {
        let (used, pending) = ([AtomicU64::new(0)], [AtomicU64::new(0)]);
        let stamps: [AtomicU64; 6] = Default::default();
        let deadline = Deadline::new();
        let view = PurgeView::new(
            Bitmap::new(&used, 6),
            Bitmap::new(&pending, 6),
            &stamps,
            &deadline,
        );
        let (used, pending) = (Bitmap::new(&used, 6), Bitmap::new(&pending, 6));
        assert!(used.try_claim_at(0, 6));
        view.release(0, 2, Some(0), 10);
        view.release(2, 1, Some(50), 10);
        view.release(3, 2, Some(1), 10);
        assert_eq!(deadline.get(), Some(10));
        assert!(deadline.take_due(20));
        let mut purged = std::vec::Vec::new();
        view.purge_due_slabs(Some(20), 10, |i, n| {
            pending.clear(i, n);
            purged.push((i, n));
        });
        assert_eq!(purged, [(0, 2), (3, 2)]);
        assert_eq!(deadline.get(), Some(60), "slab 2 is due at 60");
        assert!(pending.is_set(2, 1) && pending.count_set() == 1);
        assert_eq!(used.count_set(), 1, "slab 5 is still owned");
    }
}
