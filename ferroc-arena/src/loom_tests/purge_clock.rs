//! Loom models of the purge clock ([`Deadline`] and [`PurgeView`]): the real release and purge
//! scan of `Arenas::release_run` / `Arenas::purge_due`, over a two-slab arena.

use crate::purge_clock::{Deadline, PurgeView};
use ferroc_base::{bitmap::Bitmap, sync::atomic::AtomicU64};
use loom::sync::Arc;
use std::vec::Vec;

/// The purge delay of the models (ms).
const DELAY: u64 = 10;
/// The purgers' clock: every slab released in the models is due by then.
const LATE: u64 = 100;

/// One arena's purge state: *used* and *pending* bits of two slabs, their stamps, the deadline.
struct Arena {
    used: [AtomicU64; 1],
    pending: [AtomicU64; 1],
    stamps: [AtomicU64; 2],
    deadline: Deadline,
}

impl Arena {
    /// Both slabs owned; slab 0 is then released at time 0 (due at `DELAY`), slab 1 stays
    /// with its owner.
    fn new() -> Arc<Self> {
        let a = Arena {
            used: [AtomicU64::new(0b11)],
            pending: [AtomicU64::new(0)],
            stamps: [AtomicU64::new(0), AtomicU64::new(0)],
            deadline: Deadline::new(),
        };
        a.view().release(0, 1, Some(0), DELAY);
        Arc::new(a)
    }

    fn view(&self) -> PurgeView<'_> {
        PurgeView::new(self.used(), self.pending(), &self.stamps, &self.deadline)
    }

    fn used(&self) -> Bitmap<'_> {
        Bitmap::new(&self.used, 2)
    }

    fn pending(&self) -> Bitmap<'_> {
        Bitmap::new(&self.pending, 2)
    }

    /// What `Arenas::purge_due` does for one arena at `now`: takes the deadline if it has
    /// passed and scans. Returns the slabs purged (`purge_run` clears their pending bits),
    /// checking each was due by its own stamp.
    fn purge_due(&self, now: u64) -> Option<Vec<usize>> {
        if !self.deadline.take_due(now) {
            return None;
        }
        let mut purged = Vec::new();
        self.view()
            .purge_due_slabs(Some(now), DELAY, |index, count| {
                for j in index..index + count {
                    let stamp = self.stamps[j].load(ferroc_base::sync::atomic::Ordering::Relaxed);
                    assert!(stamp + DELAY <= now, "slab {j} purged before its delay");
                    purged.push(j);
                }
                self.pending().clear(index, count);
            });
        Some(purged)
    }
}

/// The owner of slab 1 releases it at time 5 (its deadline, 15, is later than the arena's,
/// 10, so the schedule changes nothing) while a purger at time 100 takes the arena's deadline
/// and scans. No deadline is lost: afterwards slab 1 is either purged or still pending with a
/// deadline that covers it. The purger that saw slab 1 read the stamp its owner wrote. Slab 0
/// is purged exactly when the purger took the deadline.
#[test]
fn loom_purge_release_vs_purger() {
    ferroc_base::loom_model("purge_release_vs_purger", || {
        let arena = Arena::new();
        let owner = {
            let arena = arena.clone();
            loom::thread::spawn(move || arena.view().release(1, 1, Some(5), DELAY))
        };
        let purger = {
            let arena = arena.clone();
            loom::thread::spawn(move || arena.purge_due(LATE))
        };
        owner.join().unwrap();
        let purged = purger.join().unwrap();
        assert_eq!(
            purged.as_ref().is_some_and(|p| p.contains(&0)),
            purged.is_some(),
            "slab 0 is purged by whoever takes the deadline"
        );
        if !purged.is_some_and(|p| p.contains(&1)) {
            assert!(arena.pending().is_set(1, 1));
            assert!(
                arena.deadline.get().is_some_and(|at| at <= 5 + DELAY),
                "the deadline of slab 1 was lost"
            );
        }
        assert_eq!(
            arena.used().count_set(),
            0,
            "the purger gave every slab back"
        );
    });
}

/// Two purgers find the arena's deadline passed at the same time: exactly one takes it and
/// scans, and slab 0 is purged once.
#[test]
fn loom_purge_one_purger() {
    ferroc_base::loom_model("purge_one_purger", || {
        let arena = Arena::new();
        let purgers: Vec<_> = (0..2)
            .map(|_| {
                let arena = arena.clone();
                loom::thread::spawn(move || arena.purge_due(LATE))
            })
            .collect();
        let scans: Vec<Vec<usize>> = purgers
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect();
        assert_eq!(scans, [[0]], "exactly one purger scans, and purges slab 0");
        assert_eq!(arena.deadline.get(), None);
        assert_eq!(arena.used().count_set(), 1, "slab 1 is still owned");
    });
}
