//! Huge blocks: larger than `LARGE_MAX`, or aligned more than any class: a run of slabs each.
//!
//! A huge run's first slab starts with a header like any slab's (`slab.rs`), owned by nobody
//! (`NO_OWNER`), whose only shard is slot 0 (`FLAG_HUGE`, one block, every unit slot
//! pointing back to it). The block starts right after the header, aligned; a block aligned to
//! a slab or more starts one slab into the run (`huge_geometry`).
//! - **Allocate** (`allocate_huge`): a run of its own from the arenas, zeroed or
//!   not (`allocate_zeroed` only writes zeros over one that is not).
//! - **Free** (`free_huge`): whichever thread frees the block gives the run back.
//! - **Reallocate** (`reallocate_huge`): a block that stays huge keeps its run when
//!   the slab count is unchanged, grows or shrinks it in place, or moves its pages to a new
//!   run without a copy (`Arenas::move_into`) where the base can; otherwise it is copied.

use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::{
    BaseAlloc,
    sizes::{SLAB_SHIFT, SLAB_SIZE},
};
use ferroc_base::align_up;

use crate::{
    Context,
    shard::Shard,
    slab::{Slab, header_size, init_huge},
};

impl<B: BaseAlloc> Context<'_, B> {
    /// Where a huge block of `size` bytes aligned to `align` lies in its run: the block's
    /// offset from the run's start, the run's alignment and its offset for it, and how many
    /// slabs the run has.
    fn huge_geometry(size: usize, align: usize) -> Option<(usize, usize, usize, usize)> {
        let header = header_size::<B>();
        let (offset, run_align, run_offset) = if align >= SLAB_SIZE {
            (SLAB_SIZE, align, SLAB_SIZE)
        } else {
            // At least 16-aligned, like every block of 16 bytes or more (the header's size is
            // only a multiple of 8).
            (align_up(header, align.max(16))?, SLAB_SIZE, 0)
        };
        let total = offset.checked_add(size.max(1))?;
        Some((offset, run_align, run_offset, total.div_ceil(SLAB_SIZE)))
    }

    /// Serves a huge block (or one whose alignment no class has) from a run of its own.
    /// Returns the block and whether it reads zero.
    #[cold]
    pub(crate) fn allocate_huge(&self, size: usize, align: usize) -> Option<(NonNull<u8>, bool)> {
        let (offset, run_align, run_offset, count) = Self::huge_geometry(size, align)?;
        let run = self
            .arenas
            .allocate(count, run_align, run_offset, true)
            .ok()?;
        let zeroed = run.is_zeroed();
        let usable = (count << SLAB_SHIFT) - offset;
        // SAFETY: a committed run that is ours alone; `offset` is past the header and inside
        // the run (`huge_geometry`).
        let (block, _) = unsafe { init_huge(run, offset) };
        self.stats.alloc_huge(usable);
        self.arenas.count_huge(1, (count << SLAB_SHIFT) as isize);
        Some((block, zeroed))
    }

    /// Frees a huge block: its run goes back to the arenas. Any context may free it (the
    /// global instances' read-only placeholder too, which does not count it).
    ///
    /// # Safety
    ///
    /// `shard` is the huge shard of `slab`, and its block is freed once.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free_huge(&self, slab: &Slab, shard: &Shard) {
        // A read-only placeholder (the global allocator's sentinel) is shared between threads:
        // it must not even count. Any other context counts its frees, allocated or not.
        if !self.read_only {
            self.stats.free_huge(shard.block_size.get());
        }
        // SAFETY: a huge slab of our arenas (base `B`) holds one block, now freed (this fn's
        // contract): the run and its token are nobody's but ours.
        let run = unsafe { slab.take_run::<B>() };
        self.arenas.count_huge(-1, -(run.size() as isize));
        self.arenas.deallocate(run);
    }

    /// Resizes a huge block that stays huge without copying where possible: same run, run
    /// grown or shrunk in place, or a new run its pages move to. `None` to let the caller
    /// allocate, copy and free (an alignment the run does not have); `Some(None)` when out of
    /// memory (the block intact).
    ///
    /// # Safety
    ///
    /// `ptr` is a live huge block of `slab` holding `old_size` bytes, aligned to `new.align()`.
    #[cold]
    pub(crate) unsafe fn reallocate_huge(
        &self,
        slab: &Slab,
        ptr: NonNull<u8>,
        old_size: usize,
        new: Layout,
    ) -> Option<Option<NonNull<u8>>> {
        let (offset, run_align, run_offset, count) = Self::huge_geometry(new.size(), new.align())?;
        if ptr.as_ptr() as usize - slab.addr() != offset {
            // Laid out for another alignment: the block must move to a run of its own.
            return None;
        }
        let shard = &slab.shards[0];
        let old_usable = shard.block_size.get();
        // SAFETY: a huge slab of our arenas (base `B`); its token is taken only by the block's
        // single owner, which the caller is; it is stored back (or the run given up) on every
        // path below.
        let mut run = unsafe { slab.take_run::<B>() };
        let old_run_bytes = run.size() as isize;
        let resized = count == run.count()
            || self.arenas.shrink_in_place(&mut run, count)
            || self
                .arenas
                .grow_in_place(&mut run, count, true)
                .unwrap_or(false);
        if resized {
            let usable = (run.count() << SLAB_SHIFT) - offset;
            // SAFETY: the token of this very slab, taken above.
            unsafe { slab.store_run::<B>(run) };
            shard.block_size.set(usable);
            self.stats.free_huge(old_usable);
            self.stats.alloc_huge(usable);
            self.arenas
                .count_huge(0, ((count << SLAB_SHIFT) as isize) - old_run_bytes);
            return Some(Some(ptr));
        }
        if count < run.count() {
            // A run from the base cannot shrink: keep it while it is at least half used.
            // SAFETY: the token of this very slab, taken above and not given up.
            unsafe { slab.store_run::<B>(run) };
            return (new.size() >= old_usable / 2).then_some(Some(ptr));
        }
        let Ok(to) = self.arenas.allocate(count, run_align, run_offset, false) else {
            // SAFETY: the token of this very slab, taken above and not given up.
            unsafe { slab.store_run::<B>(run) };
            return Some(None);
        };
        // SAFETY: the old run holds only this block, which nobody uses while we move it.
        let copied_from = match unsafe { self.arenas.move_into(run, &to) } {
            Ok(()) => None,
            Err(run) => {
                if self.arenas.commit(&to).is_err() {
                    self.arenas.deallocate(to);
                    // SAFETY: the token of this very slab, which `move_into` handed back
                    // untouched.
                    unsafe { slab.store_run::<B>(run) };
                    return Some(None);
                }
                Some(run)
            }
        };
        let usable = (count << SLAB_SHIFT) - offset;
        // SAFETY: a committed run that is ours alone; `offset` is past the header. After a move
        // the header written over is the old block's, and the block's bytes are untouched.
        let (block, _) = unsafe { init_huge(to, offset) };
        if let Some(run) = copied_from {
            // SAFETY: distinct live memory; the old block holds `old_size` bytes.
            unsafe { core::ptr::copy_nonoverlapping(ptr.as_ptr(), block.as_ptr(), old_size) };
            self.arenas.deallocate(run);
        }
        self.stats.free_huge(old_usable);
        self.stats.alloc_huge(usable);
        self.arenas
            .count_huge(0, ((count << SLAB_SHIFT) as isize) - old_run_bytes);
        Some(Some(block))
    }
}
