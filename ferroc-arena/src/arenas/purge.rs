//! Release and purge: [`Arenas::deallocate`] gives a run back as pending purge (stamped, the
//! arena's deadline moved up, see [`crate::purge_clock`]), and the purges decommit the pending
//! slabs whose delay has passed ([`Arenas::purge`], or the next release that finds a deadline
//! passed).

use ferroc_base::{BaseAlloc, sync::atomic::Ordering};

use super::{Arena, Arenas, SlabRun, Source};
use crate::sizes::SLAB_SHIFT;

impl<B: BaseAlloc> Arenas<B> {
    /// Gives a run back. Its slabs are purged once the purge delay has passed.
    pub fn deallocate(&self, slabs: SlabRun<B>) {
        match slabs.source {
            Source::Base(chunk) => {
                self.direct_runs.fetch_sub(1, Ordering::Relaxed);
                self.direct_bytes
                    .fetch_sub(chunk.layout().size(), Ordering::Relaxed);
                drop(chunk);
            }
            Source::Arena { .. } => {
                // A run of other arenas is left alone: its own arenas release it when they drop.
                if let Some((arena, index)) = self.own_run(&slabs.source) {
                    self.release_run(arena, index, slabs.count);
                }
            }
        }
    }

    /// Gives back the owned run `index..index + count` of `arena`: purged at once when the
    /// delay is 0, else marked pending and purged once the delay has passed.
    pub(super) fn release_run(&self, arena: &Arena<B>, index: usize, count: usize) {
        let delay = self.purge_delay_ms.load(Ordering::Relaxed);
        if delay == 0 {
            self.purge_run(arena, index, count);
            arena.used().release(index, count);
            return;
        }
        let now = self.base.now_ms();
        arena.purge_view().release(index, count, now, delay);
        if let Some(now) = now {
            self.purge_due(now);
        }
    }

    /// Decommits an owned run and records that it is no longer committed (and zeroed, if the
    /// base says so).
    fn purge_run(&self, arena: &Arena<B>, index: usize, count: usize) {
        // SAFETY: the caller owns the run (its used bits), which lies inside the arena's chunk
        // and is slab-, hence page-aligned; nothing reads its contents any more.
        let zeroed = unsafe {
            self.base
                .decommit(arena.slab_address(index), count << SLAB_SHIFT)
        };
        arena.committed().clear(index, count);
        arena.pending().clear(index, count);
        if zeroed {
            arena.dirty().clear(index, count);
        }
    }

    /// Purges the arenas whose deadline has passed at time `now`.
    fn purge_due(&self, now: u64) {
        for arena in self.iter() {
            if arena.purge_at.take_due(now) {
                self.purge_arena(arena, Some(now));
            }
        }
    }

    /// Decommits the pending slabs of an arena that nobody has claimed meanwhile and, at time
    /// `now`, were released at least the purge delay ago (all of them when `now` is `None`),
    /// one base call per stretch of consecutive such slabs. The earliest deadline of the
    /// slabs left pending becomes the arena's next one.
    fn purge_arena(&self, arena: &Arena<B>, now: Option<u64>) {
        let delay = self.purge_delay_ms.load(Ordering::Relaxed);
        arena
            .purge_view()
            .purge_due_slabs(now, delay, |index, count| {
                self.purge_run(arena, index, count)
            });
    }

    /// Decommits free slabs: all of them if `force`, else those whose delay has passed.
    /// Returns whether anything was pending.
    pub fn purge(&self, force: bool) -> bool {
        let mut any = false;
        for arena in self.iter() {
            any |= arena.pending().count_set() != 0;
            if force {
                arena.purge_at.take();
                self.purge_arena(arena, None);
            }
        }
        if !force && let Some(now) = self.base.now_ms() {
            self.purge_due(now);
        }
        any
    }
}
