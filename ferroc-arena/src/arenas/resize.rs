//! Resizing and moving runs: [`Arenas::grow_in_place`] and [`Arenas::shrink_in_place`] over
//! the slabs after a run, [`Arenas::move_into`] (a run's pages moved to another run without a
//! copy), and recycling: the pages of free pending slabs moved into untouched slabs of a new
//! claim ([`Arenas::warm_up`]).

use core::ptr::{self, NonNull};

use ferroc_base::{BaseAlloc, sync::atomic::Ordering};

use super::{Arena, Arenas, SlabRun, Source};
use crate::{
    Error,
    sizes::{SLAB_SHIFT, SLAB_SIZE},
};

impl<B: BaseAlloc> Arenas<B> {
    /// Grows a run in place to `count` slabs by claiming the free slabs right after it
    /// (committing them if `commit`). `Ok(false)`, the run unchanged, when they are not free,
    /// past the arena's end, or the run came straight from the base.
    pub fn grow_in_place(
        &self,
        slabs: &mut SlabRun<B>,
        count: usize,
        commit: bool,
    ) -> Result<bool, Error<B::Error>> {
        let Some((arena, index)) = self.own_run(&slabs.source) else {
            return Ok(false);
        };
        if count <= slabs.count {
            return Ok(count == slabs.count);
        }
        let (from, extra) = (index + slabs.count, count - slabs.count);
        if from + extra > arena.slabs || !arena.used().try_claim_at(from, extra) {
            return Ok(false);
        }
        slabs.zeroed &= self.take_claimed(arena, from, extra, commit)?;
        arena.dirty().set(from, extra);
        slabs.count = count;
        self.raise_peaks();
        Ok(true)
    }

    /// Shrinks a run in place to `count` slabs (at least one), giving the slabs past them
    /// back like [`deallocate`](Self::deallocate) does. `false`, the run unchanged, for a run
    /// straight from the base or a `count` that is not smaller.
    pub fn shrink_in_place(&self, slabs: &mut SlabRun<B>, count: usize) -> bool {
        let Some((arena, index)) = self.own_run(&slabs.source) else {
            return false;
        };
        if count == 0 || count >= slabs.count {
            return false;
        }
        self.release_run(arena, index + count, slabs.count - count);
        slabs.count = count;
        true
    }

    /// Moves the contents of `from` to the start of `to` without copying (the base moves the
    /// pages, see [`BaseAlloc::move_pages`]), then gives `from` back, decommitted and zeroed.
    /// The rest of `to` is committed (and warmed up, see [`allocate`](Self::allocate)), so
    /// `to` may have been allocated uncommitted. `Err(from)`, `from` unchanged, when the base
    /// cannot, `to` is shorter, or committing fails; then `to` may be partly committed.
    ///
    /// # Safety
    ///
    /// Both runs are the caller's; `from` is committed and nothing uses it any more, and
    /// `to`'s contents are not needed.
    pub unsafe fn move_into(&self, from: SlabRun<B>, to: &SlabRun<B>) -> Result<(), SlabRun<B>> {
        if to.count < from.count {
            return Err(from);
        }
        let source = self.own_run(&from.source);
        if source.is_none() && !from.is_direct() {
            return Err(from);
        }
        let target = match to.source {
            Source::Arena { .. } => {
                let Some((arena, index)) = self.own_run(&to.source) else {
                    return Err(from);
                };
                if self.commit_run(arena, index, to.count).is_err() {
                    return Err(from);
                }
                Some((arena, index))
            }
            Source::Base(_) => {
                if self.commit(to).is_err() {
                    return Err(from);
                }
                None
            }
        };
        let moved = Self::move_whole(&self.base, from.ptr, to.ptr, from.count);
        if let Some((arena, index)) = target {
            // Warm up what the move does not cover (only then: a caller that copies writes
            // over the head, and warm pages there would be wasted), and it is all dirty.
            if moved != 0 {
                self.warm_up(arena, index + from.count, to.count - from.count);
            }
            arena.dirty().set(index, to.count);
        }
        if moved == 0 {
            return Err(from);
        }
        match (from.source, source) {
            (Source::Arena { .. }, Some((arena, index))) => {
                // The moved slabs read zero now: neither committed nor dirty, nothing to purge.
                // Any copied ones go back like a freed run.
                arena.committed().clear(index, moved);
                arena.dirty().clear(index, moved);
                arena.used().release(index, moved);
                if moved < from.count {
                    self.release_run(arena, index + moved, from.count - moved);
                }
            }
            (Source::Base(chunk), _) => {
                self.direct_runs.fetch_sub(1, Ordering::Relaxed);
                self.direct_bytes
                    .fetch_sub(chunk.layout().size(), Ordering::Relaxed);
                drop(chunk);
            }
            (Source::Arena { .. }, None) => unreachable!("checked on entry"),
        }
        Ok(())
    }

    /// Moves `count` slabs of pages from `from` to `to`: in one base call, or slab by slab if
    /// the base refuses the whole (the source may span several OS mappings), copying the
    /// slabs from the first one it refuses on. Returns how many leading slabs moved; if none,
    /// nothing was copied either.
    fn move_whole(base: &B, from: NonNull<u8>, to: NonNull<u8>, count: usize) -> usize {
        // SAFETY: the caller's committed runs: disjoint, slab-aligned, unused.
        if unsafe { base.move_pages(from, to, count << SLAB_SHIFT) } {
            return count;
        }
        let slab = |p: NonNull<u8>, k: usize| {
            // SAFETY: slab `k` of a run of at least `count` slabs.
            unsafe { p.add(k << SLAB_SHIFT) }
        };
        for k in 0..count {
            // SAFETY: slab `k < count` of each of the caller's committed runs: disjoint,
            // slab- (hence page-) aligned, unused while this runs.
            if unsafe { base.move_pages(slab(from, k), slab(to, k), SLAB_SIZE) } {
                continue;
            }
            if k != 0 {
                // SAFETY: slabs `k..count` of `from` are still the caller's and intact (the base
                // refused slab `k` and moved none after it), and the same slabs of `to` are
                // the caller's too and do not overlap them.
                unsafe {
                    ptr::copy_nonoverlapping(
                        slab(from, k).as_ptr(),
                        slab(to, k).as_ptr(),
                        (count - k) << SLAB_SHIFT,
                    )
                };
            }
            return k;
        }
        count
    }

    /// Gives the slabs of an owned committed run that were never touched since they last read
    /// zero the pages of free slabs still pending purge (from any arena), moved by the base
    /// without a copy: reusing resident memory instead of faulting in new pages, wherever the
    /// run lies. Stops at the first slab the base cannot move.
    pub(super) fn warm_up(&self, arena: &Arena<B>, index: usize, count: usize) {
        for i in index..index + count {
            if arena.dirty().is_set(i, 1) {
                continue;
            }
            if !self.recycle_into(arena.slab_address(i)) {
                return;
            }
            arena.dirty().set(i, 1);
        }
    }

    /// Moves the pages of one free pending slab into the slab at `target`, leaving that slab
    /// free, decommitted and zeroed. `false` if there is none or the base cannot move pages.
    fn recycle_into(&self, target: NonNull<u8>) -> bool {
        for a in self.iter() {
            let (pending, used) = (a.pending(), a.used());
            for w in 0..a.words {
                let mut bits = pending.word(w) & !used.word(w);
                while bits != 0 {
                    let j = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if !used.try_claim_at(j, 1) {
                        continue;
                    }
                    // Ours now: its pending bit is final.
                    if !pending.is_set(j, 1) {
                        used.release(j, 1);
                        continue;
                    }
                    // SAFETY: slab `j` is free, ours for the moment, committed (pending), and
                    // its contents are garbage; the target is the caller's untouched slab.
                    let moved =
                        unsafe { self.base.move_pages(a.slab_address(j), target, SLAB_SIZE) };
                    if moved {
                        a.committed().clear(j, 1);
                        a.dirty().clear(j, 1);
                        a.pending().clear(j, 1);
                    }
                    used.release(j, 1);
                    return moved;
                }
            }
        }
        false
    }
}
