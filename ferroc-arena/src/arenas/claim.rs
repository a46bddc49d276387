//! Claiming: [`Arenas::allocate`] finds a run in an arena (warm slabs first, else the first
//! fit), makes the claimed slabs usable ([`Arenas::commit`], the warm-up of recycling), and
//! serves the runs no arena can hold straight from the base (direct runs).

use core::{alloc::Layout, ptr::NonNull};

use ferroc_base::{BaseAlloc, align_up, sync::atomic::Ordering};

use super::{Arena, Arenas, MAX_WORDS, SlabRun, Source};
use crate::{
    Error,
    sizes::{MAX_ARENA_SLABS, SLAB_SHIFT, SLAB_SIZE},
};

impl<B: BaseAlloc> Arenas<B> {
    /// Allocates a run of `count` slabs whose address plus `offset` is a multiple of `align`
    /// (`align` a power of two; `offset` a multiple of the slab size below `count` slabs).
    /// The run is committed if `commit` is true; it is zeroed if [`SlabRun::is_zeroed`] says so.
    /// A run that fits in no arena and is larger than the next arena to be made is served
    /// straight from the base ([`SlabRun::is_direct`]).
    pub fn allocate(
        &self,
        count: usize,
        align: usize,
        offset: usize,
        commit: bool,
    ) -> Result<SlabRun<B>, Error<B::Error>> {
        if count == 0
            || !align.is_power_of_two()
            || !offset.is_multiple_of(SLAB_SIZE)
            || offset >> SLAB_SHIFT >= count
        {
            return Err(Error::TooLarge);
        }
        let align = align.max(SLAB_SIZE);
        // Slabs an arena needs beyond `count` to be sure to find an aligned start.
        let slack = (align >> SLAB_SHIFT) - 1;
        let needed = count.checked_add(slack).ok_or(Error::TooLarge)?;
        if needed > MAX_ARENA_SLABS {
            return self.allocate_direct(count, align, offset);
        }
        for arena in self.iter() {
            if let Some(run) = self.claim_in(arena, count, align, offset, commit)? {
                return Ok(run);
            }
        }
        if needed > self.next_arena_slabs() {
            // Bigger than the arena that would be made next: an arena of its own size would
            // break the growth sequence and stay reserved after the run is freed.
            return self.allocate_direct(count, align, offset);
        }
        loop {
            let arena = self.grow(needed)?;
            if let Some(run) = self.claim_in(arena, count, align, offset, commit)? {
                return Ok(run);
            }
        }
    }

    /// Tries to claim an aligned run in one arena. `Ok(None)` if it has no room.
    fn claim_in(
        &self,
        arena: &Arena<B>,
        count: usize,
        align: usize,
        offset: usize,
        commit: bool,
    ) -> Result<Option<SlabRun<B>>, Error<B::Error>> {
        let step = align >> SLAB_SHIFT;
        // The first index whose address + offset is aligned.
        let first = align_up(arena.start + offset, align).ok_or(Error::TooLarge)? - offset;
        let phase = ((first - arena.start) >> SLAB_SHIFT) % step;
        // A committed run: free slabs still resident (pending purge) first, they cost no page
        // faults and no new resident memory. An uncommitted one (its owner fills it another
        // way, e.g. by moving pages in): slabs with nothing resident first, so none is wasted.
        // Then the first fit.
        let warm = Self::find_window(arena, count, step, phase, commit)
            .filter(|&i| arena.used().try_claim_at(i, count));
        let Some(index) = warm.or_else(|| arena.used().claim(count, step, phase)) else {
            return Ok(None);
        };
        let zeroed = self.take_claimed(arena, index, count, commit)?;
        self.raise_peaks();
        Ok(Some(SlabRun {
            ptr: arena.slab_address(index),
            count,
            zeroed,
            source: Source::of(arena, index),
        }))
    }

    /// In a snapshot of the arena, the start `i` (with `i % step == phase`) of a run of
    /// `count` free slabs: if `warm`, the one holding the most slabs pending purge (the lowest
    /// such start; the first made of pending slabs only), or `None` if no free run holds any;
    /// if not, the lowest one holding none, or `None` if nothing is pending (plain first fit
    /// does as well) or every free run holds some.
    fn find_window(
        arena: &Arena<B>,
        count: usize,
        step: usize,
        phase: usize,
        warm_first: bool,
    ) -> Option<usize> {
        let (used, pending) = (arena.used(), arena.pending());
        let mut free_words = [0u64; MAX_WORDS];
        let mut warm_words = [0u64; MAX_WORDS];
        let mut any = false;
        for w in 0..arena.words {
            free_words[w] = !used.word(w);
            warm_words[w] = pending.word(w) & free_words[w];
            any |= warm_words[w] != 0;
        }
        if !any {
            return None;
        }
        let bit = |words: &[u64; MAX_WORDS], i: usize| (words[i / 64] >> (i % 64)) & 1 != 0;
        // Free slabs ending at `i`, and how many of the last `count` of them are warm.
        let (mut free_len, mut warm) = (0usize, 0usize);
        let mut best: Option<(usize, usize)> = None;
        for i in 0..arena.slabs {
            if !bit(&free_words, i) {
                (free_len, warm) = (0, 0);
                continue;
            }
            free_len += 1;
            warm += usize::from(bit(&warm_words, i));
            if free_len > count {
                warm -= usize::from(bit(&warm_words, i - count));
            }
            if free_len >= count {
                let start = i + 1 - count;
                if start % step != phase {
                    continue;
                }
                if !warm_first {
                    if warm == 0 {
                        return Some(start);
                    }
                    continue;
                }
                if warm > best.map_or(0, |(w, _)| w) {
                    best = Some((warm, start));
                    if warm == count {
                        break;
                    }
                }
            }
        }
        best.map(|(_, start)| start)
    }

    /// Makes the just-claimed slabs `index..index + count` usable: no longer pending purge,
    /// committed and warmed up if `commit`. Returns whether they read zero. On a failed commit
    /// they go back (the slabs committed so far stay committed and pending purge, so they are
    /// decommitted later and not forgotten).
    pub(super) fn take_claimed(
        &self,
        arena: &Arena<B>,
        index: usize,
        count: usize,
        commit: bool,
    ) -> Result<bool, Error<B::Error>> {
        arena.pending().clear(index, count);
        if commit && !arena.committed().is_set(index, count) {
            self.commit_run(arena, index, count)
                .inspect_err(|_| self.release_run(arena, index, count))?;
        }
        if commit {
            self.warm_up(arena, index, count);
        }
        let zeroed = arena.dirty().is_clear(index, count);
        // Dirty from the moment it is usable: an uncommitted run becomes dirty when committed.
        if commit {
            arena.dirty().set(index, count);
        }
        Ok(zeroed)
    }

    /// Commits the uncommitted slabs of an owned run.
    pub(super) fn commit_run(
        &self,
        arena: &Arena<B>,
        index: usize,
        count: usize,
    ) -> Result<(), Error<B::Error>> {
        for i in index..index + count {
            if arena.committed().is_set(i, 1) {
                continue;
            }
            // SAFETY: slab `i` is inside the arena's chunk and owned by us.
            unsafe { self.base.commit(arena.slab_address(i), SLAB_SIZE) }.map_err(Error::Base)?;
            arena.committed().set(i, 1);
        }
        Ok(())
    }

    /// Commits every slab of a run that is not committed yet (for owners that allocated it
    /// uncommitted and now need the memory).
    pub fn commit(&self, slabs: &SlabRun<B>) -> Result<(), Error<B::Error>> {
        match slabs.source {
            Source::Arena { .. } => {
                let (arena, index) = self.own_run(&slabs.source).ok_or(Error::Foreign)?;
                // Not warmed up: the run may have been reported zeroed.
                self.commit_run(arena, index, slabs.count)?;
                arena.dirty().set(index, slabs.count);
                self.raise_peaks();
                Ok(())
            }
            Source::Base(ref chunk) => {
                // SAFETY: the whole chunk is ours.
                unsafe { self.base.commit(chunk.pointer(), chunk.layout().size()) }
                    .map_err(Error::Base)
            }
        }
    }

    /// Serves a run straight from the base.
    fn allocate_direct(
        &self,
        count: usize,
        align: usize,
        offset: usize,
    ) -> Result<SlabRun<B>, Error<B::Error>> {
        let size = count.checked_mul(SLAB_SIZE).ok_or(Error::TooLarge)?;
        let extra = align - SLAB_SIZE;
        let layout =
            Layout::from_size_align(size.checked_add(extra).ok_or(Error::TooLarge)?, SLAB_SIZE)
                .map_err(|_| Error::TooLarge)?;
        let chunk = self.base.allocate(layout, true).map_err(Error::Base)?;
        let base = chunk.pointer().as_ptr() as usize;
        let start = align_up(base + offset, align).ok_or(Error::TooLarge)? - offset;
        self.direct_runs.fetch_add(1, Ordering::Relaxed);
        self.direct_bytes
            .fetch_add(chunk.layout().size(), Ordering::Relaxed);
        self.raise_peaks();
        Ok(SlabRun {
            // SAFETY: `start` lies inside the chunk (at most `extra` bytes past its start).
            ptr: unsafe { NonNull::new_unchecked(start as *mut u8) },
            count,
            zeroed: chunk.is_zeroed(),
            source: Source::Base(chunk),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroc_base::Mmap;

    #[test]
    fn slabs_are_aligned_disjoint_and_reused() {
        let arenas = Arenas::new(Mmap);
        let a = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        let b = arenas.allocate(3, SLAB_SIZE, 0, true).unwrap();
        assert_eq!(a.pointer().as_ptr() as usize % SLAB_SIZE, 0);
        assert!(a.is_zeroed() && b.is_zeroed());
        assert!(a.pointer().as_ptr() as usize + SLAB_SIZE <= b.pointer().as_ptr() as usize);
        // SAFETY: the slab is ours and committed.
        unsafe { a.pointer().as_ptr().write(1) };
        let pa = a.pointer();
        arenas.deallocate(a);
        let c = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        assert_eq!(c.pointer(), pa);
        assert!(!c.is_zeroed(), "reused before purge: not zeroed");
        arenas.deallocate(c);
        assert!(arenas.purge(true));
        let d = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        assert_eq!(d.pointer(), pa);
        assert!(d.is_zeroed(), "purged with MADV_DONTNEED: zeroed again");
        // SAFETY: the slab is ours and committed.
        let first = unsafe { *d.pointer().as_ptr() };
        assert_eq!(first, 0);
        arenas.deallocate(d);
        arenas.deallocate(b);
        assert_eq!(arenas.stats().slabs_in_use, 0);
    }

    #[test]
    fn aligned_runs_with_offset() {
        let arenas = Arenas::new(Mmap);
        for align_shift in [SLAB_SHIFT + 1, SLAB_SHIFT + 3, 30] {
            let align = 1usize << align_shift;
            let r = arenas.allocate(2, align, SLAB_SIZE, true).unwrap();
            assert_eq!(
                (r.pointer().as_ptr() as usize + SLAB_SIZE) % align,
                0,
                "{r:?}"
            );
            arenas.deallocate(r);
        }
        let huge = arenas
            .allocate(MAX_ARENA_SLABS + 1, SLAB_SIZE, 0, true)
            .unwrap();
        assert!(huge.is_direct());
        assert_eq!(arenas.stats().direct_runs, 1);
        arenas.deallocate(huge);
        assert_eq!(arenas.stats().direct_runs, 0);
    }
}
