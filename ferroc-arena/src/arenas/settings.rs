//! Settings an owner gives its arenas at start-up (the runtime options of `ferroc-global`):
//! the purge delay in force, eager commit (new arenas committed whole when they are made),
//! and reserving arenas up front ([`Arenas::reserve`]).
//!
//! None of them is read on a fast path: eager commit is read when an arena is made, the purge
//! delay when a run is released.

use core::ptr::NonNull;

use ferroc_base::{BaseAlloc, sync::atomic::Ordering};

use super::{Arena, Arenas};
use crate::{
    Error,
    sizes::{MAX_ARENA_SLABS, SLAB_SHIFT, SLAB_SIZE},
};

impl<B: BaseAlloc> Arenas<B> {
    /// The purge delay in force, in ms ([`NEVER_PURGE`](crate::NEVER_PURGE) for never).
    pub fn purge_delay(&self) -> u64 {
        self.purge_delay_ms.load(Ordering::Relaxed)
    }

    /// Whether arenas made from now on are committed whole when they are made, instead of
    /// slab by slab when slabs are first claimed. Off by default. Purged slabs are
    /// decommitted as usual and committed again when claimed.
    pub fn set_eager_commit(&self, on: bool) {
        self.eager_commit.store(on, Ordering::Relaxed);
    }

    /// Whether eager commit is on (see [`set_eager_commit`](Self::set_eager_commit)).
    pub fn eager_commit(&self) -> bool {
        self.eager_commit.load(Ordering::Relaxed)
    }

    /// Makes arenas now until they span at least `bytes` of slabs in all (the arenas made so
    /// far count), each at most the largest arena size; with eager commit on they are
    /// committed too. Returns the bytes of slabs the arenas span afterwards. Memory the base
    /// cannot give is an error, and the arenas made before it stay.
    pub fn reserve(&self, bytes: usize) -> Result<usize, Error<B::Error>> {
        let want = bytes.div_ceil(SLAB_SIZE);
        let mut have: usize = self.iter().map(|a| a.slabs).sum();
        while have < want {
            let arena = self.grow((want - have).min(MAX_ARENA_SLABS))?;
            have += arena.slabs;
        }
        Ok(have << SLAB_SHIFT)
    }

    /// Commits every slab of a new, not yet published arena when eager commit is on (called
    /// by `grow`). A failed commit leaves the slabs uncommitted: they are committed one by one
    /// when claimed, as without eager commit.
    pub(super) fn commit_if_eager(&self, arena: NonNull<Arena<B>>) {
        if !self.eager_commit() {
            return;
        }
        // SAFETY: `make_arena` just wrote the header in full and nothing else reaches the
        // arena before it is published; its chunk lives as long as `self`.
        let arena = unsafe { arena.as_ref() };
        let (first, len) = (arena.slab_address(0), arena.slabs << SLAB_SHIFT);
        // SAFETY: the slabs `0..slabs` lie inside the arena's chunk, start slab-aligned (hence
        // page-aligned) and span whole slabs; nobody owns any of them yet.
        if unsafe { self.base.commit(first, len) }.is_ok() {
            arena.committed().set(0, arena.slabs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizes::MIN_ARENA_SLABS;
    use ferroc_base::Mmap;

    #[test]
    fn eager_commit_commits_whole_arenas() {
        let arenas = Arenas::new(Mmap);
        assert!(!arenas.eager_commit());
        arenas.set_eager_commit(true);
        let run = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        let s = arenas.stats();
        assert_eq!(s.committed, s.reserved);
        assert_eq!(s.reserved, MIN_ARENA_SLABS << SLAB_SHIFT);
        arenas.deallocate(run);

        let lazy = Arenas::new(Mmap);
        let run = lazy.allocate(1, SLAB_SIZE, 0, true).unwrap();
        assert_eq!(lazy.stats().committed, SLAB_SIZE);
        lazy.deallocate(run);
    }

    #[test]
    fn reserve_spans_at_least_what_was_asked() {
        let arenas = Arenas::new(Mmap);
        assert_eq!(arenas.reserve(0).unwrap(), 0);
        assert_eq!(arenas.stats().arenas, 0);
        let want = 100 * SLAB_SIZE + 1;
        let got = arenas.reserve(want).unwrap();
        assert!(got >= want);
        let s = arenas.stats();
        assert_eq!((s.arenas, s.reserved, s.committed), (1, got, 0));
        // Already reserved: nothing more is made.
        assert_eq!(arenas.reserve(want).unwrap(), got);
        assert_eq!(arenas.stats().arenas, 1);
        // A run as large as the reservation fits in it.
        let run = arenas.allocate(101, SLAB_SIZE, 0, false).unwrap();
        assert!(!run.is_direct());
        assert_eq!(arenas.stats().arenas, 1);
        arenas.deallocate(run);
    }

    #[test]
    fn reserve_with_eager_commit_commits() {
        let arenas = Arenas::new(Mmap);
        arenas.set_eager_commit(true);
        let got = arenas.reserve(3 * SLAB_SIZE).unwrap();
        assert_eq!(arenas.stats().committed, got);
    }

    #[test]
    fn never_purge_keeps_free_slabs_until_forced() {
        let arenas = Arenas::new(Mmap);
        arenas.set_purge_delay(crate::NEVER_PURGE);
        assert_eq!(arenas.purge_delay(), u64::MAX);
        let run = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
        arenas.deallocate(run);
        std::thread::sleep(std::time::Duration::from_millis(30));
        // A release and a purge by time, long after the first release: nothing is due.
        let other = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        arenas.deallocate(other);
        assert!(arenas.purge(false), "slabs are pending");
        let s = arenas.stats();
        assert_eq!((s.pending_purge, s.committed), (2, 2 * SLAB_SIZE));
        assert!(arenas.purge(true));
        assert_eq!(arenas.stats().committed, 0);
    }
}
